//! The watcher's signals from its first instant: SIGHUP reloads, SIGTERM
//! and SIGINT stop.
//!
//! Until tokio's handlers are in place, the default action of these
//! signals would kill the process (a `systemctl reload` right after
//! `start`). So they are held (blocked) before anything else, by
//! `health-probe` before it execs the watcher (a blocked mask survives
//! exec) and again by the watcher itself, and released once the handlers
//! are installed: a signal sent in between waits in the kernel and is then
//! served. Children (actions) start with nothing held.
//!
//! std has no call for signal masks; `pthread_sigmask` is used directly
//! (one call each way), rather than adding a crate for it.

use tokio::signal::unix::{signal, Signal, SignalKind};

const HELD: [libc::c_int; 3] = [libc::SIGHUP, libc::SIGTERM, libc::SIGINT];

fn mask(how: libc::c_int, signals: &[libc::c_int]) {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before
    // use; pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Holds SIGHUP, SIGTERM and SIGINT on this thread (and on the threads
/// and programs it starts from now on) until [`release`].
pub fn hold() {
    mask(libc::SIG_BLOCK, &HELD);
}

/// Lets this thread take SIGHUP, SIGTERM and SIGINT again; any that came
/// while held is delivered now.
pub fn release() {
    mask(libc::SIG_UNBLOCK, &HELD);
}

/// For a child between fork and exec: nothing held, whatever thread
/// started it. Async-signal-safe (only sigemptyset and pthread_sigmask).
pub fn release_all_in_child() -> std::io::Result<()> {
    // SAFETY: as in `mask`; sigemptyset and pthread_sigmask are
    // async-signal-safe, so they may run between fork and exec.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    Ok(())
}

/// The handlers, installed on the watcher's runtime.
pub struct Signals {
    pub hup: Signal,
    pub stop: Stop,
}

/// SIGTERM and SIGINT.
pub struct Stop {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers, then releases what [`hold`] held: a signal
    /// that arrived during start-up is served now.
    pub fn install() -> std::io::Result<Signals> {
        let signals = Signals {
            hup: signal(SignalKind::hangup())?,
            stop: Stop {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            },
        };
        release();
        Ok(signals)
    }
}

impl Stop {
    /// The next SIGTERM or SIGINT, named.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
