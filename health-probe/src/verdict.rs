//! Judging an outcome: healthy or not, and the exit code for the mode.

use health_proto::LandmarkReply;

use crate::check::{Facts, Finding};
use crate::cli::ModeArgs;
use crate::outcome::{Class, Speed};
use crate::probe::{Outcome, ProbeError};
use crate::spec::LandmarkSpec;

/// The probe's decision.
pub(crate) struct Verdict<'a> {
    pub outcome: &'a Outcome,
    /// The landmark's state is one of `--expect`.
    pub healthy: bool,
    /// 0 or 1; with `--dynamic`, 2+weight when healthy with a weight.
    pub exit_code: u8,
}

impl<'a> Verdict<'a> {
    /// Healthy or not by `spec`'s expected states, and the exit code for
    /// `mode`.
    pub(crate) fn judge(spec: &LandmarkSpec, mode: &ModeArgs, outcome: &'a Outcome) -> Verdict<'a> {
        let healthy = matches!(&outcome.result, Ok(r) if spec.expect.contains(&r.state));
        let exit_code = if mode.nagios {
            nagios_status(outcome, healthy) as u8
        } else {
            match (&outcome.result, healthy) {
                (Ok(reply), true) => success_code(mode.dynamic, reply),
                _ => 1,
            }
        };
        Verdict {
            outcome,
            healthy,
            exit_code,
        }
    }

    /// The failure class, if unhealthy: the probe error's, or
    /// `unexpected-state` when the service answered a state not expected.
    pub(crate) fn class(&self) -> Option<&'static str> {
        match &self.outcome.result {
            Err(e) => Some(e.class()),
            Ok(_) if !self.healthy => Some("unexpected-state"),
            Ok(_) => None,
        }
    }

    pub(crate) fn reply(&self) -> Option<&LandmarkReply> {
        self.outcome.result.as_ref().ok()
    }

    pub(crate) fn error(&self) -> Option<&ProbeError> {
        self.outcome.result.as_ref().err()
    }
}

/// Nagios plugin states, with their exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NagiosStatus {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl NagiosStatus {
    pub(crate) fn label(self) -> &'static str {
        match self {
            NagiosStatus::Ok => "OK",
            NagiosStatus::Warning => "WARNING",
            NagiosStatus::Critical => "CRITICAL",
            NagiosStatus::Unknown => "UNKNOWN",
        }
    }
}

/// Expected state: OK. `degraded`/`drain` (or `ok` when not expected):
/// WARNING. `fail`, or no valid answer at all (like check_tcp's refused or
/// timed-out connection): CRITICAL. Bad arguments: UNKNOWN.
pub(crate) fn nagios_status(outcome: &Outcome, healthy: bool) -> NagiosStatus {
    match &outcome.result {
        Ok(_) if healthy => NagiosStatus::Ok,
        Ok(r) if r.state == health_proto::State::Fail => NagiosStatus::Critical,
        Ok(_) => NagiosStatus::Warning,
        Err(ProbeError::Usage(_)) => NagiosStatus::Unknown,
        Err(_) => NagiosStatus::Critical,
    }
}

/// keepalived misc_dynamic: exit 2+w sets the real server's weight to w.
fn success_code(dynamic: bool, reply: &LandmarkReply) -> u8 {
    match (dynamic, reply.weight) {
        (true, Some(w)) => 2 + w.get(),
        _ => 0,
    }
}

/// The exit code of a `tcp` or `ping` check for its mode: Nagios statuses
/// with `--nagios`, otherwise 0 for OK within `--crit` and 1 for anything
/// else (`--dynamic` too: a port or a host has no weight to report).
pub fn class_exit_code(nagios: bool, class: Class, reason: Option<&str>, speed: Speed) -> u8 {
    if nagios {
        return class_nagios_status(class, reason, speed) as u8;
    }
    u8::from(crate::outcome::fails(class, speed))
}

/// The exit code of what a check found, for `mode`: the landmark check's
/// by its state and weight ([`Verdict`]), every other kind's by its class
/// and mark ([`class_exit_code`]).
pub(crate) fn exit_code(found: &Finding<'_>, mode: &ModeArgs) -> u8 {
    match &found.facts {
        Facts::Landmark(spec, outcome) => Verdict::judge(spec, mode, outcome).exit_code,
        _ => class_exit_code(mode.nagios, found.class, found.reason, found.mark),
    }
}

/// OK: OK within `--warn`; WARNING: OK over `--warn`; CRITICAL: NG, WR, OK
/// over `--crit`, or ERR from the network (unresolvable name, no route), as
/// check_tcp and check_ping report them; UNKNOWN: a malformed address or an
/// ICMP socket the system does not allow, like bad arguments.
pub(crate) fn class_nagios_status(
    class: Class,
    reason: Option<&str>,
    speed: Speed,
) -> NagiosStatus {
    match (class, speed) {
        (Class::Ok, Speed::Fine) => NagiosStatus::Ok,
        (Class::Ok, Speed::OverWarn) => NagiosStatus::Warning,
        (Class::Err, _) if matches!(reason, Some("bad-address" | "not-permitted" | "ca")) => {
            NagiosStatus::Unknown
        }
        (Class::Ok, Speed::OverCrit) | (Class::Ng | Class::Wr | Class::Err, _) => {
            NagiosStatus::Critical
        }
    }
}
