//! Judging an outcome: healthy or not, and the exit code for the mode.

use health_proto::LandmarkReply;

use crate::cli::Cli;
use crate::probe::{Outcome, ProbeError};

/// The probe's decision.
pub struct Verdict {
    pub outcome: Outcome,
    /// The landmark's state is one of `--expect`.
    pub healthy: bool,
    /// 0 or 1; with `--dynamic`, 2+weight when healthy with a weight.
    pub exit_code: u8,
}

impl Verdict {
    pub fn judge(cli: &Cli, outcome: Outcome) -> Verdict {
        let healthy = matches!(&outcome.result, Ok(r) if cli.expect.contains(&r.state));
        let exit_code = match (&outcome.result, healthy) {
            (Ok(reply), true) => success_code(cli.dynamic, reply),
            _ => 1,
        };
        Verdict {
            outcome,
            healthy,
            exit_code,
        }
    }

    /// The failure class, if unhealthy: the probe error's, or
    /// `unexpected-state` when the service answered a state not expected.
    pub fn class(&self) -> Option<&'static str> {
        match &self.outcome.result {
            Err(e) => Some(e.class()),
            Ok(_) if !self.healthy => Some("unexpected-state"),
            Ok(_) => None,
        }
    }

    pub fn reply(&self) -> Option<&LandmarkReply> {
        self.outcome.result.as_ref().ok()
    }

    pub fn error(&self) -> Option<&ProbeError> {
        self.outcome.result.as_ref().err()
    }
}

/// keepalived misc_dynamic: exit 2+w sets the real server's weight to w.
fn success_code(dynamic: bool, reply: &LandmarkReply) -> u8 {
    match (dynamic, reply.weight) {
        (true, Some(w)) => 2 + w.get(),
        _ => 0,
    }
}
