//! What every check ends in, whatever its kind: one of four classes (OK,
//! ERR, NG, WR; see the README's "Outcome classes") and, for an OK, how its
//! time stands against `--warn` and `--crit`.

use std::time::Duration;

/// The four outcome classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ok,
    Err,
    Ng,
    Wr,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ok => "OK",
            Class::Err => "ERR",
            Class::Ng => "NG",
            Class::Wr => "WR",
        }
    }
}

/// Response-time status against `--warn` / `--crit`, for OK outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    Fine,
    OverWarn,
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
