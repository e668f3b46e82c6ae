//! A landmark target followed by a `watch` stream (`stream = true`, the
//! default for `kind = "landmark"` without vantage points): the endpoint
//! pushes each change of the landmark, a hang within its answer deadline
//! plus [`PERIOD`], and a heartbeat every `interval` when nothing changed
//! (docs/PROTOCOL.md section 5.7). Each frame is one observation, as a
//! check's answer is; so between changes the target costs one small
//! frame per interval instead of a connection and a check.
//!
//! `fall` and `rise` keep their meaning, consecutive looks at the
//! endpoint, the endpoint looking every [`PERIOD`]: while the last frame
//! disagrees with the alarm, it is observed again every period (no
//! frame to the contrary means the endpoint still sees it so), so a hang
//! is raised `fall - 1` periods after it is pushed.
//!
//! A stream that cannot be opened or is lost (reset, refused, no frame
//! within the heartbeat plus the timeout) is a failed observation, as a
//! failed check is, and is opened again at the target's next tick. An
//! endpoint that answers `watch` with `unknown_type` (one older than it),
//! or with a landmark that is no stream's frame (one that took it for a
//! check), is polled from then on, until the target is reloaded; one that
//! answers `busy` (it has as many streams open as it allows) is polled
//! for a minute, then asked again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use health_probe::check::Finding;
use health_probe::stream_async::{self, LandmarkStream, Opened};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::check::{self, Observation};
use crate::config::Target;
use crate::output::{Notice, Output};

/// How often the endpoint is asked to look at the landmark (the shortest
/// period it keeps): a hang is pushed within this plus the endpoint's
/// answer deadline, and raised one period later with `fall = 2`, within
/// the deadline plus 100 ms.
pub(crate) const PERIOD: Duration = Duration::from_millis(50);

/// The shortest and longest heartbeat the endpoint keeps (PROTOCOL.md
/// section 8.7): the target's interval is asked for, within them.
const HEARTBEAT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));

/// How long a target whose stream the endpoint refused (`busy`: it has as
/// many open as it allows) is polled before it asks again, at least.
const BUSY_BACKOFF: Duration = Duration::from_secs(60);

/// Descriptors kept back from streams, besides `max_in_flight`'s checks:
/// the listener's connections, the database, actions, the resolver.
const RESERVE_FDS: u64 = 1024;

/// How many streams may be open at once: each holds a descriptor for as
/// long as it is open, where a polled target holds one only while it is
/// checked. Targets past it are polled, said once.
pub(crate) struct Budget {
    permits: Arc<Semaphore>,
    size: usize,
    told: AtomicBool,
}

impl Budget {
    /// The budget of a watcher with `max_in_flight` checks: its open-file
    /// limit (raised to the hard limit first) less those and a reserve.
    pub(crate) fn new(max_in_flight: usize) -> Budget {
        let fds = raise_open_files();
        let size = fds.saturating_sub(max_in_flight as u64 + RESERVE_FDS) as usize;
        Budget {
            permits: Arc::new(Semaphore::new(size.min(Semaphore::MAX_PERMITS))),
            size,
            told: AtomicBool::new(false),
        }
    }
}

/// Raises the soft open-file limit to the hard one (at most 2^20, the
/// kernel's usual `nr_open`), as servers holding many connections do;
/// the soft limit in force after.
fn raise_open_files() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    let want = lim.rlim_max.min(1 << 20);
    if lim.rlim_cur < want {
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given, nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return want;
        }
    }
    lim.rlim_cur
}

/// What opening a stream draws on: the check permits (`max_in_flight`),
/// the streams' budget, and where warnings go.
pub(crate) struct Room<'a> {
    pub limit: &'a Semaphore,
    pub budget: &'a Budget,
    pub output: &'a Output,
}

/// One target's stream, while it has one.
#[derive(Default)]
pub(crate) struct Follow {
    open: Option<LandmarkStream>,
    /// Its place in the [`Budget`], while it is open.
    place: Option<OwnedSemaphorePermit>,
    /// The endpoint does not stream: the target is polled.
    unsupported: bool,
    /// The endpoint refused the stream (`busy`): polled until then.
    busy_until: Option<Instant>,
    /// The last frame's observation, seen again while the alarm has not
    /// caught up with it.
    last: Option<Observation>,
}

/// What [`Follow::next`] came to.
pub(crate) enum Next {
    /// An observation: the stream's first frame, a frame, the last frame
    /// again, or a stream that could not be opened or was lost.
    Observed(Observation),
    /// Check the target instead, this time.
    Poll,
    /// The watcher is closing.
    Closing,
}

impl Follow {
    /// The next observation of `target`: the stream opened at `tick` (when
    /// it is not open), or its next frame, or the last frame again after a
    /// period while the alarm (`raised` or not) disagrees with it; or that
    /// the target is polled this time (an endpoint that does not stream,
    /// or refused it lately).
    pub(crate) async fn next(
        &mut self,
        room: Room<'_>,
        target: &Target,
        tick: Instant,
        raised: bool,
    ) -> Next {
        let Some(spec) = target.check.landmark_spec() else {
            return Next::Poll;
        };
        let polled = self.unsupported || self.busy_until.is_some_and(|t| Instant::now() < t);
        if polled && self.open.is_none() {
            return Next::Poll;
        }
        let confirming = (self.last.as_ref()).is_some_and(|last| last.failed() != raised);
        let observation = match &mut self.open {
            None => {
                tokio::time::sleep_until(tick).await;
                let Ok(_permit) = room.limit.acquire().await else {
                    return Next::Closing;
                };
                let Ok(place) = Arc::clone(&room.budget.permits).try_acquire_owned() else {
                    self.busy_until = Some(Instant::now() + BUSY_BACKOFF.max(target.interval));
                    if !room.budget.told.swap(true, Ordering::Relaxed) {
                        room.output.notice(Notice::Warning(format!(
                            "{} streams open, as many as this watcher's open-file limit allows (ulimit -n, less max_in_flight and 1024); other landmark targets are polled",
                            room.budget.size
                        )));
                    }
                    return Next::Poll;
                };
                let at = SystemTime::now();
                let heartbeat = target.interval.clamp(HEARTBEAT.0, HEARTBEAT.1);
                match Box::pin(stream_async::open(spec, PERIOD, heartbeat)).await {
                    Opened::Stream(stream, first) => {
                        self.open = Some(stream);
                        self.place = Some(place);
                        observed(Finding::of_landmark(spec, first), at)
                    }
                    Opened::Failed(outcome) => observed(Finding::of_landmark(spec, outcome), at),
                    Opened::Unsupported => {
                        self.unsupported = true;
                        room.output.notice(Notice::Warning(format!(
                            "target {}: {} does not stream (it does not answer watch with a stream); checked every {} instead",
                            target.name,
                            target.addr,
                            humantime::format_duration(target.interval)
                        )));
                        return Next::Poll;
                    }
                    Opened::Busy(why) => {
                        // Said once per refusal, not per poll.
                        let backoff = BUSY_BACKOFF.max(target.interval);
                        self.busy_until = Some(Instant::now() + backoff);
                        room.output.notice(Notice::Warning(format!(
                            "target {}: {} refused a stream ({}); checked every {} for {} before asking again",
                            target.name,
                            target.addr,
                            health_probe::text::cut(&why, 256),
                            humantime::format_duration(target.interval),
                            humantime::format_duration(backoff)
                        )));
                        return Next::Poll;
                    }
                }
            }
            Some(stream) => {
                let again = async {
                    match &self.last {
                        Some(last) if confirming => {
                            tokio::time::sleep(PERIOD).await;
                            let mut o = last.clone();
                            o.at = SystemTime::now();
                            o
                        }
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    o = again => o,
                    outcome = stream.next() => {
                        let at = SystemTime::now();
                        let lost = outcome.result.is_err();
                        let o = observed(Finding::of_landmark(spec, outcome), at);
                        if lost {
                            self.open = None;
                            self.place = None;
                        }
                        o
                    }
                }
            }
        };
        self.last = Some(observation.clone());
        Next::Observed(observation)
    }

    /// Closes the stream (the target pauses, or stops).
    pub(crate) fn close(&mut self) {
        self.open = None;
        self.place = None;
        self.last = None;
    }
}

fn observed(found: Finding<'_>, at: SystemTime) -> Observation {
    check::probed(found, at).observation
}
