//! A target's path faults over rounds: `path` once `fall` rounds in a row
//! had some vantage points failing but too few for a server fault, and
//! `path-cleared` once `rise` rounds in a row had none such. A path fault
//! that comes and goes is bounded as flapping alarms are: once
//! `flap_changes` `path` events fell within `flap_window`, a new one is
//! not told until the window has room again. Pure state, no I/O.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

/// `flap_changes` within `flap_window`.
pub(crate) type FlapLimit = (u32, Duration);

use super::{Ballot, Vote};

/// What a round changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathChange {
    /// A path fault stands (`path`).
    Raise,
    /// It is over (`path-cleared`).
    Clear,
}

/// How each vantage point stood at its last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PointState {
    /// Not checked yet.
    Unknown,
    Passed,
    Failed,
    /// It could not answer.
    NoAnswer,
}

/// One target's path faults.
#[derive(Debug, Clone)]
pub(crate) struct PathState {
    /// Rounds in a row with a path fault.
    faulty: u32,
    /// Rounds in a row without one.
    clean: u32,
    /// A `path` told and not yet cleared: since when.
    pub since: Option<SystemTime>,
    /// Each point's last word, in the order of the target's points.
    pub points: Vec<PointState>,
    /// The points failing when the path fault was last seen.
    pub failing: Vec<bool>,
    /// The points' names, in their order.
    pub names: Vec<String>,
    /// When the last `path` events were told, within the flap window.
    told: VecDeque<SystemTime>,
}

impl PathState {
    pub(crate) fn new(names: Vec<String>) -> PathState {
        let points = names.len();
        PathState {
            names,
            faulty: 0,
            clean: 0,
            since: None,
            told: VecDeque::new(),
            points: vec![PointState::Unknown; points],
            failing: vec![false; points],
        }
    }

    /// Takes in one round's vote.
    pub(crate) fn observe(
        &mut self,
        vote: &Vote,
        fall: u32,
        rise: u32,
        flap: Option<FlapLimit>,
    ) -> Option<PathChange> {
        for (state, ballot) in self.points.iter_mut().zip(&vote.ballots) {
            *state = match ballot {
                Ballot::Checked(o) if o.failed() => PointState::Failed,
                Ballot::Checked(_) => PointState::Passed,
                Ballot::Abstained(_) => PointState::NoAnswer,
                Ballot::Unasked => *state,
            };
        }
        if vote.path_fault() {
            self.faulty = self.faulty.saturating_add(1);
            self.clean = 0;
            self.failing = vote.ballots.iter().map(Ballot::failed).collect();
            if self.since.is_none() && self.faulty >= fall && self.room(vote.at, flap) {
                self.since = Some(vote.at);
                self.told.push_back(vote.at);
                return Some(PathChange::Raise);
            }
        } else {
            self.clean = self.clean.saturating_add(1);
            self.faulty = 0;
            if self.since.is_some() && self.clean >= rise {
                self.since = None;
                self.failing.iter_mut().for_each(|f| *f = false);
                return Some(PathChange::Clear);
            }
        }
        None
    }

    /// Whether another `path` may be told at `now`.
    fn room(&mut self, now: SystemTime, flap: Option<FlapLimit>) -> bool {
        let Some((changes, window)) = flap else {
            return true;
        };
        while let Some(first) = self.told.front() {
            match now.duration_since(*first) {
                Ok(age) if age > window => self.told.pop_front(),
                _ => break,
            };
        }
        self.told.len() < changes as usize
    }

    /// Whether `path` stands.
    pub(crate) fn raised(&self) -> bool {
        self.since.is_some()
    }
}
