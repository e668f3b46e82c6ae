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

use std::time::{Duration, SystemTime};

use health_probe::check::Finding;
use health_probe::stream_async::{self, LandmarkStream, Opened};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::check::{self, Observation};
use crate::config::Target;
use crate::output::{Notice, Output};

/// How often the endpoint is asked to look at the landmark: a hang is
/// pushed within this plus the endpoint's answer deadline.
pub(crate) const PERIOD: Duration = Duration::from_millis(100);

/// The shortest and longest heartbeat the endpoint keeps (PROTOCOL.md
/// section 8.7): the target's interval is asked for, within them.
const HEARTBEAT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));

/// How long a target whose stream the endpoint refused (`busy`: it has as
/// many open as it allows) is polled before it asks again, at least.
const BUSY_BACKOFF: Duration = Duration::from_secs(60);

/// One target's stream, while it has one.
#[derive(Default)]
pub(crate) struct Follow {
    open: Option<LandmarkStream>,
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
        limit: &Semaphore,
        output: &Output,
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
                let Ok(_permit) = limit.acquire().await else {
                    return Next::Closing;
                };
                let at = SystemTime::now();
                let heartbeat = target.interval.clamp(HEARTBEAT.0, HEARTBEAT.1);
                match Box::pin(stream_async::open(spec, PERIOD, heartbeat)).await {
                    Opened::Stream(stream, first) => {
                        self.open = Some(stream);
                        observed(Finding::of_landmark(spec, first), at)
                    }
                    Opened::Failed(outcome) => observed(Finding::of_landmark(spec, outcome), at),
                    Opened::Unsupported => {
                        self.unsupported = true;
                        output.notice(Notice::Warning(format!(
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
                        output.notice(Notice::Warning(format!(
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
        self.last = None;
    }
}

fn observed(found: Finding<'_>, at: SystemTime) -> Observation {
    check::probed(found, at).observation
}
