//! Checking one target from several vantage points and voting, to tell a
//! server fault from a path fault (docs/WATCH.md, "Vantage points").
//!
//! A target's vantage points are this watcher, once per `source` (an
//! address or interface the check leaves from) or once without one, and
//! each remote watcher in `vantage`, asked through its `/probe`. Each
//! round ([`round`]) asks every remote point and, by `source_mode`, every
//! local source (`all`) or the next one in turn (`alternate`); when any
//! point fails, the local sources not yet asked are asked at once, and
//! every round asks them all while one still fails, so a vote that finds
//! a fault is always of fresh checks.
//!
//! The vote ([`Vote`]): a point that could not answer (a remote watcher
//! down, refusing, too slow) abstains. The round fails, and counts toward
//! `fall`, when at least `quorum` points failed, or every point that
//! answered failed when fewer than `quorum` answered: losing the remote
//! watchers never hides an outage this watcher sees. Fewer failing is a
//! path fault: the round passes, and [`path::PathState`] tells `path` and
//! `path-cleared`.

pub(crate) mod path;
pub(crate) mod remote;

use std::fmt::Write as _;
use std::time::Duration;

use futures_util::future::join_all;
use health_probe::outcome::{Class, Speed};

use health_probe::check::{Check, Kind};

use crate::check::{self, Observation, MAX_DETAIL};
use remote::RemoteProbe;

/// Which local sources a round asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceMode {
    /// One in turn; the others too when a point fails.
    Alternate,
    /// Every one, every round.
    All,
}

/// One vantage point.
#[derive(Debug, Clone)]
pub(crate) enum Point {
    /// This watcher, from a source or from where the routing table says:
    /// the target's check, with that source.
    Local(Check),
    /// Another watcher's `/probe`.
    Remote(RemoteProbe),
}

impl Point {
    /// How the page, the metrics' `vantage` label and the details name
    /// it: `local`, `local:eth1`, `local:192.0.2.10`, or the remote
    /// watcher's URL.
    pub(crate) fn name(&self) -> String {
        match self {
            Point::Local(c) => match c.source() {
                None => "local".into(),
                Some(s) => format!("local:{s}"),
            },
            Point::Remote(r) => r.shown.clone(),
        }
    }
}

/// A target's vantage points and how they vote; only targets with more
/// than one point, or with a source or a remote point, have them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Vantages {
    pub points: Vec<Point>,
    /// Their names, in the same order.
    pub names: Vec<String>,
    pub mode: SourceMode,
    /// Failing points that make a server fault (1 to the number of points).
    pub quorum: usize,
    /// Run on `path` and `path-cleared`.
    pub on_path: Option<String>,
}

impl PartialEq for Point {
    fn eq(&self, other: &Point) -> bool {
        match (self, other) {
            (Point::Local(a), Point::Local(b)) => a.source() == b.source(),
            (Point::Remote(a), Point::Remote(b)) => a == b,
            _ => false,
        }
    }
}

impl Vantages {
    /// `points` voting with `quorum` (a majority when not given).
    pub(crate) fn new(
        points: Vec<Point>,
        mode: SourceMode,
        quorum: Option<usize>,
        on_path: Option<String>,
    ) -> Vantages {
        let names = points.iter().map(Point::name).collect();
        let quorum = quorum.unwrap_or(points.len() / 2 + 1);
        Vantages {
            points,
            names,
            mode,
            quorum,
            on_path,
        }
    }

    fn locals(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.points.len()).filter(|i| matches!(self.points[*i], Point::Local(_)))
    }
}

/// What one point said in a round.
#[derive(Debug, Clone)]
pub(crate) enum Ballot {
    /// It checked: what it found.
    Checked(Observation),
    /// It could not answer, and why: it does not vote.
    Abstained(String),
    /// Not asked this round (`alternate`, nothing failed).
    Unasked,
}

impl Ballot {
    fn failed(&self) -> bool {
        matches!(self, Ballot::Checked(o) if o.failed())
    }
}

/// A round's ballots, counted.
#[derive(Debug, Clone)]
pub(crate) struct Vote {
    /// When the round began.
    pub at: std::time::SystemTime,
    /// Each point's ballot, in the order of [`Vantages::points`].
    pub ballots: Vec<Ballot>,
    /// Points that failed.
    pub failing: usize,
    /// Points that checked.
    pub voters: usize,
    /// Whether enough failed for a server fault.
    pub server_fault: bool,
}

impl Vote {
    /// Counts `ballots` against `quorum`.
    pub(crate) fn count(at: std::time::SystemTime, ballots: Vec<Ballot>, quorum: usize) -> Vote {
        let failing = ballots.iter().filter(|b| b.failed()).count();
        let voters = ballots
            .iter()
            .filter(|b| matches!(b, Ballot::Checked(_)))
            .count();
        let needed = quorum.min(voters).max(1);
        Vote {
            at,
            ballots,
            failing,
            voters,
            server_fault: failing >= needed,
        }
    }

    /// Some failed, too few for a server fault.
    pub(crate) fn path_fault(&self) -> bool {
        self.failing > 0 && !self.server_fault
    }

    /// The names of the points that failed.
    pub(crate) fn failing_names<'a>(&self, names: &'a [String]) -> Vec<&'a str> {
        self.ballots
            .iter()
            .zip(names)
            .filter(|(b, _)| b.failed())
            .map(|(_, n)| n.as_str())
            .collect()
    }

    /// What the round found, as the alarm takes it: a server fault is a
    /// failure of the worst class seen (NG, then WR, then ERR), anything
    /// else the check of a point that passed. No point answering at all
    /// is an ERR of reason `vantage`. Its detail says how each point
    /// stands.
    pub(crate) fn observation(&self, v: &Vantages) -> Observation {
        let at = self.at;
        let rank = |o: &Observation| match o.class {
            Class::Ng => 0,
            Class::Wr => 1,
            Class::Err => 2,
            Class::Ok => 3,
        };
        let checked = || {
            self.ballots.iter().filter_map(|b| match b {
                Ballot::Checked(o) => Some(o),
                _ => None,
            })
        };
        let pick = if self.server_fault {
            checked().filter(|o| o.failed()).min_by_key(|o| rank(o))
        } else {
            checked().find(|o| !o.failed())
        };
        let mut o = match pick {
            Some(o) => o.clone(),
            None => Observation {
                at,
                class: Class::Err,
                reason: Some("vantage"),
                detail: String::new(),
                rtt: None,
                speed: Speed::Fine,
            },
        };
        o.at = at;
        o.detail = self.summary(v);
        o
    }

    /// `2 of 3 vantage points failed (quorum 2): local: NG refused: ...;
    /// http://b:9115: OK; http://c:9115: abstained: ...`, cut at
    /// [`MAX_DETAIL`].
    fn summary(&self, v: &Vantages) -> String {
        let mut s = format!(
            "{} of {} vantage points failed (quorum {}",
            self.failing, self.voters, v.quorum
        );
        if self.voters < v.points.len() {
            let _ = write!(s, ", {} did not answer", self.count_not_answered());
        }
        s.push(')');
        for (b, name) in self.ballots.iter().zip(&v.names) {
            let _ = match b {
                Ballot::Checked(o) if o.failed() => {
                    write!(s, "; {name}: {} {}", o.class.as_str(), o.detail)
                }
                Ballot::Checked(o) => write!(s, "; {name}: {}", o.detail),
                Ballot::Abstained(why) => write!(s, "; {name}: no answer: {why}"),
                Ballot::Unasked => Ok(()),
            };
        }
        health_probe::text::cut(&s, MAX_DETAIL).into_owned()
    }

    fn count_not_answered(&self) -> usize {
        self.ballots
            .iter()
            .filter(|b| matches!(b, Ballot::Abstained(_)))
            .count()
    }
}

/// What every point checks: the target's kind, address and timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checked<'a> {
    pub kind: Kind,
    pub addr: &'a str,
    pub timeout: Duration,
}

/// One round of `target`'s check from its vantage points; `turn` counts
/// the rounds, for `alternate`, which asks every point anyway while one
/// `failing` at its last check (so a path fault is followed round by
/// round).
pub(crate) async fn round(
    target: Checked<'_>,
    v: &Vantages,
    turn: &mut usize,
    failing: bool,
) -> Vote {
    let at = std::time::SystemTime::now();
    let locals: Vec<usize> = v.locals().collect();
    let chosen = match (v.mode, locals.len()) {
        (SourceMode::Alternate, n) if n > 1 && !failing => Some(locals[*turn % n]),
        _ => None,
    };
    *turn = turn.wrapping_add(1);
    let first: Vec<usize> = (0..v.points.len())
        .filter(|i| chosen.is_none() || !locals.contains(i) || Some(*i) == chosen)
        .collect();
    let mut ballots = vec![Ballot::Unasked; v.points.len()];
    ask(target, v, &first, &mut ballots).await;
    if ballots.iter().any(Ballot::failed) {
        let rest: Vec<usize> = locals
            .iter()
            .copied()
            .filter(|i| matches!(ballots[*i], Ballot::Unasked))
            .collect();
        ask(target, v, &rest, &mut ballots).await;
    }
    Vote::count(at, ballots, v.quorum)
}

/// Asks the points `which` at once, each within the target's timeout.
async fn ask(target: Checked<'_>, v: &Vantages, which: &[usize], ballots: &mut [Ballot]) {
    let asked = join_all(which.iter().map(|&i| ask_one(target, &v.points[i]))).await;
    for (&i, ballot) in which.iter().zip(asked) {
        ballots[i] = ballot;
    }
}

async fn ask_one(target: Checked<'_>, point: &Point) -> Ballot {
    match point {
        Point::Local(check) => Ballot::Checked(check::observe(check).await.observation),
        Point::Remote(r) => r.ask(target.kind, target.addr, target.timeout).await,
    }
}

/// The longest a remote point's answer may take past the check's own
/// timeout: the request, the reply, the remote watcher's scheduling.
pub(crate) const REMOTE_MARGIN: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests;
