//! One check of one target, on the watcher's runtime: the same specs and
//! outcomes as the one-shot checks, run by `Check::run_async`,
//! seen as the watcher keeps, shows and records them.

use std::time::{Duration, SystemTime};

use health_probe::outcome::{Class, Speed};
use health_proto::State;

use health_probe::check::{Check, Finding};

/// Most bytes of a check's detail the watcher keeps (and so records with
/// each event, prints and passes on), cut with `...(N more bytes)`: a
/// server cannot grow the history by more than this per event.
pub(crate) const MAX_DETAIL: usize = 4096;

/// What one check found, as the watcher keeps, shows and records it.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    pub at: SystemTime,
    pub class: Class,
    /// A stable word within the class (`refused`, `timeout`, ...).
    pub reason: Option<&'static str>,
    pub detail: String,
    /// Landmark and tcp: the whole check; ping: the average round trip.
    pub rtt: Option<Duration>,
    pub speed: Speed,
}

impl Observation {
    /// Counts toward `fall`: anything but OK within `crit`, as the one-shot
    /// check's exit code would say.
    pub(crate) fn failed(&self) -> bool {
        health_probe::outcome::fails(self.class, self.speed)
    }
}

/// One check's observation, and what `/probe` shows besides: the
/// landmark's state and weight when a landmark came back, the
/// certificates' earliest expiry (Unix seconds) and the TLS version when a
/// tls check read them.
pub(crate) struct Probed {
    pub observation: Observation,
    pub landmark: Option<(State, Option<u8>)>,
    pub cert_expiry: Option<i64>,
    pub tls_version: Option<&'static str>,
}

/// Runs `check` once.
pub(crate) async fn observe(check: &Check) -> Probed {
    let at = SystemTime::now();
    let found = check.run_async().await;
    probed(found, at)
}

/// What `found` (begun `at`) is to the watcher.
pub(crate) fn probed(found: Finding<'_>, at: SystemTime) -> Probed {
    let landmark = found
        .landmark()
        .map(|r| (r.landmark.state, r.landmark.weight.map(|w| w.get())));
    let cert_expiry = found.cert().map(|c| c.earliest_unix());
    let tls_version = found.tls_version();
    let detail = match health_probe::text::cut(&found.detail, MAX_DETAIL) {
        std::borrow::Cow::Borrowed(_) => found.detail,
        std::borrow::Cow::Owned(cut) => cut,
    };
    Probed {
        observation: Observation {
            at,
            class: found.class,
            reason: found.reason,
            detail,
            rtt: found.rtt,
            speed: found.mark,
        },
        landmark,
        cert_expiry,
        tls_version,
    }
}
