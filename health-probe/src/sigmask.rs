//! SIGHUP, SIGTERM and SIGINT held (blocked) on the calling thread, and
//! let go again: `health-probe` holds them before it execs the watcher (a
//! blocked mask survives exec) so that a signal sent during the watcher's
//! start-up waits in the kernel instead of killing it; the watcher lets go
//! once its handlers are in place, and its actions start with nothing held.
//!
//! std has no call for signal masks; `pthread_sigmask` is used directly
//! (one call each way), rather than adding a crate for it.

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
