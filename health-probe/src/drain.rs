//! `health-probe ADDR --wait-drained --timeout 10m`: for deploy scripts
//! behind a balancer. Checks the endpoint once a second until its landmark
//! is `drain` and it counts no client still established on the service's
//! ports (the reply's `established`, docs/PROTOCOL.md §8.4), then exits 0;
//! exits 1 when `--timeout` passes first, or at once when the endpoint
//! drains without counting its clients (no connection recorder). Each
//! change of what it sees is one line on stdout (none with `--quiet`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use health_proto::State;

use crate::spec::{LandmarkSettings, LandmarkSpec};
use crate::text::shown;

/// Time between two checks, and the longest one check may take.
const EVERY: Duration = Duration::from_secs(1);

/// What one check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Draining, with this many clients still established.
    Draining(u32),
    /// Draining, without a count: the endpoint records no connections.
    Uncounted,
    /// Not draining: its state.
    Not(State),
    /// No landmark: why.
    NoAnswer(String),
}

impl Seen {
    fn line(&self) -> String {
        match self {
            Seen::Draining(1) => "draining: 1 client still established".into(),
            Seen::Draining(n) => format!("draining: {n} clients still established"),
            Seen::Uncounted => "draining, but the endpoint does not count its clients".into(),
            Seen::Not(state) => format!("not draining: state {state}"),
            Seen::NoAnswer(why) => format!("no landmark: {why}"),
        }
    }
}

fn look(spec: &LandmarkSpec, within: Duration) -> Seen {
    let settings = LandmarkSettings {
        timeout: within.clamp(Duration::from_millis(10), EVERY),
        ..LandmarkSettings::clone(spec)
    };
    let Ok(one) = LandmarkSpec::new(settings) else {
        return Seen::NoAnswer("bad settings".into());
    };
    match crate::probe::run(&one).result {
        Ok(reply) if reply.state == State::Drain => match reply.established {
            Some(n) => Seen::Draining(n),
            None => Seen::Uncounted,
        },
        Ok(reply) => Seen::Not(reply.state),
        Err(e) => Seen::NoAnswer(e.to_string()),
    }
}

/// Waits, at most `spec.timeout`, until `spec.addr` is drained.
pub(crate) fn wait(spec: &LandmarkSpec, quiet: bool) -> ExitCode {
    let start = Instant::now();
    let deadline = start + spec.timeout;
    let mut told: Option<Seen> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() && told.is_some() {
            let last = told.map(|s| s.line()).unwrap_or_default();
            eprintln!(
                "health-probe: {} not drained within {}: {}",
                shown(&spec.addr),
                humantime::format_duration(spec.timeout),
                shown(&last)
            );
            return ExitCode::from(1);
        }
        let seen = look(spec, left);
        match &seen {
            Seen::Draining(0) => {
                if !quiet {
                    println!(
                        "{}: drained: no client established, after {}",
                        shown(&spec.addr),
                        humantime::format_duration(Duration::from_secs(start.elapsed().as_secs()))
                    );
                }
                return ExitCode::SUCCESS;
            }
            Seen::Uncounted => {
                eprintln!(
                    "health-probe: {} drains but does not count its clients: its endpoint needs a connection recorder (Builder::connections)",
                    shown(&spec.addr)
                );
                return ExitCode::from(1);
            }
            _ => {}
        }
        if !quiet && told.as_ref() != Some(&seen) {
            println!("{}: {}", shown(&spec.addr), shown(&seen.line()));
        }
        told = Some(seen);
        std::thread::sleep(EVERY.min(deadline.saturating_duration_since(Instant::now())));
    }
}
