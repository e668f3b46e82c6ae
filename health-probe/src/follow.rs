//! `health-probe ADDR --watch`: follows a service's landmark as it
//! changes. It sends a `watch` request (docs/PROTOCOL.md section 5.7) and
//! prints one line per frame the endpoint pushes, the first and each
//! change (heartbeats only prove the stream lives). An endpoint that does
//! not stream (error `unknown_type`, an older server; or a landmark
//! without `push`, a server that took the watch for a check) is polled
//! with a check every `--period` instead, and only changes are printed
//! the same way.
//!
//! With `--until-fail` the first state not in `--expect`, or the loss of
//! the stream, ends the run with exit 1. Without it the run goes on until
//! interrupted: a lost stream is printed as a FAIL line and re-opened
//! after the period.

use std::io::{self, BufReader, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use health_proto::blocking::{read_frame, write_frame};
use health_proto::{LandmarkReply, Push, Request, Response, WatchRequest};
use serde_json::json;

use crate::error::io_error;
use crate::probe::{self, DeadlineStream, ProbeError, MAX_REPLY, REPLY_BUFFER};
use crate::spec::LandmarkSpec;
use crate::text::{quoted, shown};

/// How `--watch` runs, from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowSettings {
    /// Exit 1 at the first state not in `--expect` (or a lost stream).
    pub until_fail: bool,
    /// How often the endpoint should look (and how often a fallback poll
    /// checks); `None`: the endpoint's default, 1 s.
    pub period: Option<Duration>,
    /// The longest the endpoint may stay silent; `None`: its default.
    pub heartbeat: Option<Duration>,
    /// One JSON object per line instead of a text line.
    pub json: bool,
    /// Print nothing; only the exit code tells.
    pub quiet: bool,
}

/// The period of a fallback poll when none was asked for: the endpoint's
/// default period.
const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// What one look found.
#[derive(Debug)]
enum Seen {
    /// A landmark frame (pushed, or a poll's answer).
    Reply(Box<LandmarkReply>),
    /// No stream, or no answer: why.
    Lost(ProbeError),
}

impl Seen {
    /// Whether two looks differ as the endpoint's pushes do: the state,
    /// detail, weight, components or established count, or the reason of
    /// a loss.
    fn differs(&self, other: &Seen) -> bool {
        match (self, other) {
            (Seen::Reply(a), Seen::Reply(b)) => health_proto::watch::changed(a, b),
            (Seen::Lost(a), Seen::Lost(b)) => a.to_string() != b.to_string(),
            _ => true,
        }
    }
}

/// Follows `spec`'s landmark as `settings` ask, until interrupted or (with
/// `--until-fail`) the first unexpected state.
pub(crate) fn run(spec: &LandmarkSpec, settings: &FollowSettings) -> ExitCode {
    let period = settings.period.unwrap_or(DEFAULT_POLL);
    let mut printer = Printer {
        spec,
        settings,
        last: None,
    };
    loop {
        let ended = match stream(spec, settings, &mut printer) {
            Ok(ended) => ended,
            Err(Fallback) => {
                if !settings.quiet {
                    eprintln!(
                        "health-probe: {} does not stream; polling every {}",
                        shown(&spec.addr),
                        humantime::format_duration(period)
                    );
                }
                poll(spec, period, &mut printer)
            }
        };
        if let Some(code) = ended {
            return code;
        }
        std::thread::sleep(period);
    }
}

/// The endpoint answered `watch` with `unknown_type`: poll it instead.
struct Fallback;

/// One stream, from connect to its end: `Ok(Some(code))` when the run is
/// over, `Ok(None)` when the stream was lost and the run goes on.
fn stream(
    spec: &LandmarkSpec,
    settings: &FollowSettings,
    printer: &mut Printer<'_>,
) -> Result<Option<ExitCode>, Fallback> {
    let timeout = humantime::format_duration(spec.timeout).to_string();
    let mut tried = None;
    let request = Request::Watch(WatchRequest {
        component: spec.component.clone(),
        period_ms: settings.period.map(|p| p.as_millis() as u64),
        heartbeat_ms: settings.heartbeat.map(|h| h.as_millis() as u64),
    });
    let (id, frame) = probe::request_frame(&request);
    let opened = open(spec, &frame, &timeout, &mut tried);
    let mut reader = match opened {
        Ok(reader) => reader,
        Err(e) => return Ok(printer.lost(e)),
    };
    // The first frame is due within --timeout, like a check's reply.
    let (mut stage, mut within) = ("reply", timeout.clone());
    let mut first = true;
    loop {
        let reply = read_frame(&mut reader, MAX_REPLY)
            .map_err(|e| match e {
                health_proto::ProtoError::Closed if !first => {
                    ProbeError::Reset("closed by the endpoint: the stream ended")
                }
                e => io_error(e, stage, &within),
            })
            .and_then(|frame| probe::response_to(&frame, id, &within));
        let reply = match reply {
            // A landmark that is no stream's frame: the endpoint answered
            // the watch as a check, and will not push.
            Ok(Response::Landmark(reply)) if first && reply.push.is_none() => return Err(Fallback),
            Ok(Response::Landmark(reply)) => reply,
            Ok(other) => return Ok(printer.lost(probe::unexpected(&other, "landmark"))),
            Err(ProbeError::Server { name, .. }) if name == "unknown_type" && first => {
                return Err(Fallback)
            }
            Err(e) => return Ok(printer.lost(e)),
        };
        first = false;
        // The next frame is due within the heartbeat (the endpoint's, in
        // every frame), with --timeout to spare for the network.
        let heartbeat = Duration::from_millis(reply.heartbeat_ms.unwrap_or(10_000));
        let next = heartbeat + spec.timeout;
        (stage, within) = (
            "frame of the stream",
            humantime::format_duration(next).to_string(),
        );
        reader.get_mut().set_deadline(Instant::now() + next);
        if let Some(code) = printer.seen(Seen::Reply(Box::new(reply))) {
            return Ok(Some(code));
        }
    }
}

/// Connects and sends the `watch` request, within `--timeout`. The sending
/// side stays open: the endpoint reads its end as the end of the stream.
fn open(
    spec: &LandmarkSpec,
    frame: &health_proto::Frame,
    timeout: &str,
    tried: &mut Option<std::net::SocketAddr>,
) -> Result<BufReader<DeadlineStream>, ProbeError> {
    let deadline = Instant::now() + spec.timeout;
    let source = spec.source.as_ref();
    let mut stream = probe::open(&spec.addr, spec.family, source, deadline, timeout, tried)?;
    write_frame(&mut stream, frame).map_err(|e| io_error(e, "send", timeout))?;
    Ok(BufReader::with_capacity(REPLY_BUFFER, stream))
}

/// Checks every `period` (an endpoint that does not stream) until the run
/// is over; never `None` unless a check cannot be made at all.
fn poll(spec: &LandmarkSpec, period: Duration, printer: &mut Printer<'_>) -> Option<ExitCode> {
    loop {
        let started = Instant::now();
        let seen = match probe::run(spec).result {
            Ok(reply) => Seen::Reply(Box::new(reply)),
            Err(e) => Seen::Lost(e),
        };
        if let Some(code) = printer.seen(seen) {
            return Some(code);
        }
        std::thread::sleep(period.saturating_sub(started.elapsed()));
    }
}

/// Prints what is seen, once per change, and decides when the run ends.
struct Printer<'a> {
    spec: &'a LandmarkSpec,
    settings: &'a FollowSettings,
    last: Option<Seen>,
}

impl Printer<'_> {
    /// A lost stream: printed as a change, and the end of the run with
    /// `--until-fail`.
    fn lost(&mut self, e: ProbeError) -> Option<ExitCode> {
        self.seen(Seen::Lost(e))
    }

    /// Prints `seen` if it differs from the last; `Some(code)` when the
    /// run ends here.
    fn seen(&mut self, seen: Seen) -> Option<ExitCode> {
        let healthy = match &seen {
            Seen::Reply(r) => self.spec.expect.contains(&r.state),
            Seen::Lost(_) => false,
        };
        let changed = self.last.as_ref().is_none_or(|last| last.differs(&seen));
        if changed && !self.settings.quiet {
            self.print(&seen, healthy);
        }
        self.last = Some(seen);
        (self.settings.until_fail && !healthy).then(|| ExitCode::from(1))
    }

    fn print(&self, seen: &Seen, healthy: bool) {
        let at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let verdict = if healthy { "OK" } else { "FAIL" };
        let spec = self.spec;
        let mut out = io::stdout().lock();
        let _ = if self.settings.json {
            let reply = match seen {
                Seen::Reply(r) => Some(r),
                Seen::Lost(_) => None,
            };
            let error = match seen {
                Seen::Lost(e) => Some(e),
                Seen::Reply(_) => None,
            };
            let line = json!({
                "at": at,
                "verdict": verdict.to_ascii_lowercase(),
                "target": &spec.addr,
                "component": spec.component,
                "push": reply.map(|r| r.push.map_or("poll", Push::as_str)),
                "class": error.map(|e| e.class()),
                "error": error.map(|e| e.to_string()),
                "state": reply.map(|r| r.state.as_str()),
                "detail": reply.map(|r| r.detail.as_str()),
                "weight": reply.and_then(|r| r.weight).map(|w| w.get()),
                "established": reply.and_then(|r| r.established),
                "answer_us": reply.map(|r| r.answer_us),
                "components": reply.map(|r| &r.components),
                "fields": reply.map(|r| &r.fields),
            });
            writeln!(out, "{line}")
        } else {
            let mut s = format!("{at} {verdict} {}", shown(&spec.addr));
            if let Some(c) = &spec.component {
                s.push_str(&format!(" component={}", shown(c)));
            }
            match seen {
                Seen::Reply(r) => {
                    s.push_str(&format!(" state={}", r.state));
                    if let Some(w) = r.weight {
                        s.push_str(&format!(" weight={w}"));
                    }
                    if let Some(n) = r.established {
                        s.push_str(&format!(" established={n}"));
                    }
                    let push = r.push.map_or("poll", Push::as_str);
                    s.push_str(&format!(" push={push} detail={}", quoted(&r.detail)));
                }
                Seen::Lost(e) => {
                    s.push_str(&format!(
                        " class={} detail={}",
                        e.class(),
                        quoted(&e.to_string())
                    ));
                }
            }
            writeln!(out, "{s}")
        };
        let _ = out.flush();
    }
}
