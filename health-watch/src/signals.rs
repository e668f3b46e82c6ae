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
//! The masks themselves are [`health_probe::sigmask`], shared with
//! `health-probe`, which holds them before it execs the watcher.

pub(crate) use health_probe::sigmask::{hold, release, release_all_in_child};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The handlers, installed on the watcher's runtime.
pub(crate) struct Signals {
    pub hup: Signal,
    pub stop: Stop,
}

/// SIGTERM and SIGINT.
pub(crate) struct Stop {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers, then releases what [`hold`] held: a signal
    /// that arrived during start-up is served now.
    pub(crate) fn install() -> std::io::Result<Signals> {
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
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
