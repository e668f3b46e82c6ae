//! One check of one target, on the watcher's runtime: the same specs and
//! outcomes as the one-shot checks, run by `health_probe::nonblocking`,
//! seen as the watcher keeps, shows and records them.

use std::time::{Duration, SystemTime};

use health_probe::nonblocking;
use health_probe::outcome::{Class, Speed};
use health_probe::verdict;
use health_proto::State;

use crate::config::{Check, Target};

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
        verdict::class_exit_code(false, self.class, self.reason, self.speed) != 0
    }
}

/// Runs `target`'s check once.
pub(crate) async fn run(target: &Target) -> Observation {
    observe(&target.check).await.observation
}

/// One check's observation, and the landmark's state and weight when a
/// landmark came back (for `/probe`).
pub(crate) struct Probed {
    pub observation: Observation,
    pub landmark: Option<(State, Option<u8>)>,
}

/// Runs `check` once.
pub(crate) async fn observe(check: &Check) -> Probed {
    let at = SystemTime::now();
    let mut landmark = None;
    let ((class, reason, detail), rtt, speed) = match check {
        Check::Landmark(spec) => {
            let o = nonblocking::landmark(spec).await;
            if let Ok(reply) = &o.result {
                landmark = Some((reply.landmark.state, reply.landmark.weight.map(|w| w.get())));
            }
            let judged = verdict::landmark_class(o.result, &spec.expect);
            (judged, Some(o.elapsed), Speed::Fine)
        }
        Check::Tcp(spec) => {
            let o = nonblocking::tcp(spec).await;
            let speed = o.speed(spec);
            ((o.class, o.reason, o.detail), Some(o.elapsed), speed)
        }
        Check::Ping(spec) => {
            let o = nonblocking::ping(spec).await;
            let (speed, avg) = (o.speed(spec), o.avg());
            ((o.class, o.reason, o.detail), avg, speed)
        }
    };
    let observation = Observation {
        at,
        class,
        reason,
        detail: match health_probe::text::cut(&detail, MAX_DETAIL) {
            std::borrow::Cow::Borrowed(_) => detail,
            std::borrow::Cow::Owned(cut) => cut,
        },
        rtt,
        speed,
    };
    Probed {
        observation,
        landmark,
    }
}
