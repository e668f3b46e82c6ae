//! What every check ends in, whatever its kind: one of four classes (OK,
//! ERR, NG, WR; see the README's "Outcome classes") and, for an OK, how its
//! time stands against `--warn` and `--crit`.

use std::time::Duration;

/// The four outcome classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The check passed.
    Ok,
    /// The check could not start (name, address, route, permission).
    Err,
    /// The peer said no (refused, reset, wrong answer, unexpected state).
    Ng,
    /// No answer within the timeout.
    Wr,
}

impl Class {
    /// `OK`, `ERR`, `NG` or `WR`, as printed and recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ok => "OK",
            Class::Err => "ERR",
            Class::Ng => "NG",
            Class::Wr => "WR",
        }
    }
}

/// Whether a check of `class` with `mark` fails: anything but OK, or OK
/// past its crit mark.
pub fn fails(class: Class, mark: Speed) -> bool {
    !matches!((class, mark), (Class::Ok, Speed::Fine | Speed::OverWarn))
}

/// How an OK outcome stands against its warn and crit marks: its time
/// against `--warn` / `--crit` (tcp, ping), or the time left on its
/// certificates against `--cert-warn` (tls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// Within `--warn` (or no threshold).
    Fine,
    /// Slower than `--warn`, within `--crit`.
    OverWarn,
    /// Slower than `--crit`: the check fails.
    OverCrit,
}

impl Speed {
    /// `time` against the `--warn` / `--crit` thresholds; no time, no verdict.
    pub fn of(time: Option<Duration>, warn: Option<Duration>, crit: Option<Duration>) -> Speed {
        match (time, warn, crit) {
            (Some(t), _, Some(c)) if t > c => Speed::OverCrit,
            (Some(t), Some(w), _) if t > w => Speed::OverWarn,
            _ => Speed::Fine,
        }
    }

    /// The word printed as `slow=...` and in JSON.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Speed::OverCrit => Some("crit"),
            Speed::OverWarn => Some("warn"),
            Speed::Fine => None,
        }
    }
}
