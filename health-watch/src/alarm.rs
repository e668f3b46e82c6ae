//! A target's alarm: consecutive failures raise it (`fall`), consecutive
//! successes clear it (`rise`), and `pause_after_errors` ERR outcomes in a
//! row pause the target until a reload. Pure state, no I/O, so every rule
//! is tested on its own.
//!
//! Flap detection, as Nagios does it: a target whose alarm changes (raise
//! or clear) more than `flap.changes` times within `flap.window` is
//! *flapping*. That is one event; its raises and clears are then neither
//! told nor acted on. It stops flapping once it has been flapping for a
//! whole window and the last window saw at most half that many changes;
//! then `flapping-stopped`, and, if the alarm now stands otherwise than
//! last told, the raise or clear that says so (with its action). So a
//! target tells at most `changes + 3` events per window, whatever it does.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use health_probe::outcome::Class;

use crate::check::Observation;
pub(crate) use crate::config::Flap;

/// What an observation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// `fall` failures in a row while clear.
    Raise,
    /// `rise` successes in a row while raised.
    Clear,
    /// `pause_after_errors` ERR outcomes in a row: checks stop until the
    /// watcher is reloaded.
    Pause,
    /// Too many raises and clears lately: they are no longer told.
    Flapping,
    /// Stable again.
    FlappingStopped,
}

/// The thresholds of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    pub fall: u32,
    pub rise: u32,
    /// 0: never pause.
    pub pause_after_errors: u32,
    /// `None`: no flap detection.
    pub flap: Option<Flap>,
}

/// How a target stands, as the live view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    // Ordered by how much attention each needs: the view lists the first
    // ones first.
    Alarm,
    Flapping,
    Paused,
    Failing,
    Recovering,
    Pending,
    Ok,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Alarm => "ALARM",
            Phase::Flapping => "flapping",
            Phase::Paused => "paused",
            Phase::Failing => "failing",
            Phase::Recovering => "recovering",
            Phase::Pending => "pending",
            Phase::Ok => "ok",
        }
    }
}

/// One target's alarm state.
#[derive(Debug, Clone)]
pub(crate) struct Alarm {
    pub raised: bool,
    pub paused: bool,
    /// Failures, successes and ERR outcomes in a row.
    pub fails: u32,
    pub oks: u32,
    pub errs: u32,
    /// When the alarm was last raised or cleared (or the watch began).
    pub since: SystemTime,
    pub checks: u64,
    /// Raises and clears are held back (see the module's docs).
    pub flapping: bool,
    /// When flapping began (or was restored at start-up).
    pub flapping_since: SystemTime,
    /// Whether the alarm stands raised as last told (in events and
    /// actions); differs from `raised` only while flapping.
    pub told_raised: bool,
    /// When the latest raises and clears were, oldest first; at most
    /// `flap.changes + 1`.
    changes: VecDeque<SystemTime>,
}

impl Alarm {
    /// A new target's state; `raised_at` restores an alarm left open by an
    /// earlier run, so it is not raised (nor its action run) twice.
    pub(crate) fn new(raised_at: Option<SystemTime>) -> Alarm {
        Alarm {
            raised: raised_at.is_some(),
            paused: false,
            fails: 0,
            oks: 0,
            errs: 0,
            since: raised_at.unwrap_or_else(SystemTime::now),
            checks: 0,
            flapping: false,
            flapping_since: SystemTime::UNIX_EPOCH,
            told_raised: raised_at.is_some(),
            changes: VecDeque::new(),
        }
    }

    /// A target that was flapping when the watcher stopped: it goes on
    /// flapping for a window from now, as if it had just begun.
    pub(crate) fn still_flapping(mut self, now: SystemTime) -> Alarm {
        self.flapping = true;
        self.flapping_since = now;
        self
    }

    /// The state a changed target (reload) starts from: whether it is
    /// raised, flapping and what was told carry over; counts start afresh.
    pub(crate) fn carried(&self) -> Alarm {
        Alarm {
            fails: 0,
            oks: 0,
            errs: 0,
            checks: 0,
            paused: false,
            ..self.clone()
        }
    }

    /// Raises and clears within `window` before `now` (of those kept).
    pub(crate) fn changes_within(&self, window: Duration, now: SystemTime) -> u32 {
        let from = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        self.changes.iter().filter(|t| **t > from).count() as u32
    }

    /// Takes in one check's result; what is to be told, in order (at most
    /// three: flapping-stopped, a raise or clear, a pause).
    pub(crate) fn observe(&mut self, o: &Observation, t: &Thresholds) -> Vec<Transition> {
        let raw = self.judge(o, t);
        let Some(flap) = t.flap else {
            self.told_raised = self.raised;
            return raw;
        };
        let mut told = Vec::new();
        for change in raw {
            if change == Transition::Pause {
                told.push(change);
                continue;
            }
            self.changes.push_back(o.at);
            while self.changes.len() > flap.changes as usize + 1 {
                self.changes.pop_front();
            }
            if self.flapping {
                continue;
            }
            if self.changes_within(flap.window, o.at) > flap.changes {
                self.flapping = true;
                self.flapping_since = o.at;
                told.push(Transition::Flapping);
            } else {
                self.told_raised = self.raised;
                told.push(change);
            }
        }
        let flapped_a_window =
            o.at.duration_since(self.flapping_since)
                .is_ok_and(|d| d >= flap.window);
        if self.flapping
            && flapped_a_window
            && self.changes_within(flap.window, o.at) <= flap.changes / 2
        {
            self.flapping = false;
            told.insert(0, Transition::FlappingStopped);
            if self.raised != self.told_raised {
                self.told_raised = self.raised;
                let say = if self.raised {
                    Transition::Raise
                } else {
                    Transition::Clear
                };
                told.insert(1, say);
            }
        }
        told
    }

    /// The fall/rise/pause rules alone.
    fn judge(&mut self, o: &Observation, t: &Thresholds) -> Vec<Transition> {
        let mut changes = Vec::new();
        self.checks += 1;
        if o.failed() {
            self.fails = self.fails.saturating_add(1);
            self.oks = 0;
            self.errs = if o.class == Class::Err {
                self.errs.saturating_add(1)
            } else {
                0
            };
            if !self.raised && self.fails >= t.fall {
                self.raised = true;
                self.since = o.at;
                changes.push(Transition::Raise);
            }
            if t.pause_after_errors > 0 && self.errs >= t.pause_after_errors {
                self.paused = true;
                changes.push(Transition::Pause);
            }
        } else {
            self.oks = self.oks.saturating_add(1);
            self.fails = 0;
            self.errs = 0;
            if self.raised && self.oks >= t.rise {
                self.raised = false;
                self.since = o.at;
                changes.push(Transition::Clear);
            }
        }
        changes
    }

    /// Checks start again, counting afresh; the alarm stays as it was.
    pub(crate) fn resume(&mut self) {
        self.paused = false;
        self.fails = 0;
        self.oks = 0;
        self.errs = 0;
    }

    /// What lies behind `change`, in a row: failures for a raise,
    /// successes for a clear, ERR outcomes for a pause.
    pub(crate) fn run_length(&self, change: Transition) -> u32 {
        match change {
            Transition::Raise => self.fails,
            Transition::Clear => self.oks,
            Transition::Pause => self.errs,
            Transition::Flapping | Transition::FlappingStopped => self.changes.len() as u32,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        match self {
            Alarm { paused: true, .. } => Phase::Paused,
            Alarm { flapping: true, .. } => Phase::Flapping,
            Alarm {
                raised: true, oks, ..
            } if *oks > 0 => Phase::Recovering,
            Alarm { raised: true, .. } => Phase::Alarm,
            Alarm { fails, .. } if *fails > 0 => Phase::Failing,
            Alarm { checks: 0, .. } => Phase::Pending,
            _ => Phase::Ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use health_probe::outcome::Speed;
    use std::time::Duration;

    fn obs(class: Class) -> Observation {
        Observation {
            at: SystemTime::now(),
            class,
            reason: (class != Class::Ok).then_some("x"),
            detail: String::new(),
            rtt: None,
            speed: Speed::Fine,
        }
    }

    const T: Thresholds = Thresholds {
        fall: 2,
        rise: 3,
        pause_after_errors: 4,
        flap: None,
    };

    #[test]
    fn fall_failures_raise_and_rise_successes_clear() {
        let mut a = Alarm::new(None);
        assert_eq!(a.phase(), Phase::Pending);
        assert!(a.observe(&obs(Class::Ok), &T).is_empty());
        assert!(a.observe(&obs(Class::Ng), &T).is_empty());
        assert_eq!(a.phase(), Phase::Failing);
        // A success in between starts the count again.
        assert!(a.observe(&obs(Class::Ok), &T).is_empty());
        assert!(a.observe(&obs(Class::Wr), &T).is_empty());
        assert_eq!(a.observe(&obs(Class::Ng), &T), [Transition::Raise]);
        assert_eq!(a.run_length(Transition::Raise), 2);
        assert_eq!(a.phase(), Phase::Alarm);
        assert!(a.observe(&obs(Class::Ng), &T).is_empty());
        assert!(a.observe(&obs(Class::Ok), &T).is_empty());
        assert!(a.observe(&obs(Class::Ok), &T).is_empty());
        assert_eq!(a.phase(), Phase::Recovering);
        assert_eq!(a.observe(&obs(Class::Ok), &T), [Transition::Clear]);
        assert_eq!(a.phase(), Phase::Ok);
    }

    #[test]
    fn a_slow_ok_over_crit_is_a_failure() {
        let mut a = Alarm::new(None);
        let mut slow = obs(Class::Ok);
        slow.speed = Speed::OverCrit;
        slow.rtt = Some(Duration::from_millis(900));
        a.observe(&slow, &T);
        assert_eq!(a.observe(&slow, &T), [Transition::Raise]);
        slow.speed = Speed::OverWarn;
        assert!(a.observe(&slow, &T).is_empty());
        assert_eq!(a.oks, 1);
    }

    #[test]
    fn errs_in_a_row_pause_and_resume_counts_afresh() {
        let mut a = Alarm::new(None);
        a.observe(&obs(Class::Err), &T);
        assert_eq!(a.observe(&obs(Class::Err), &T), [Transition::Raise]);
        // An NG in between breaks the run of ERRs, not the failures.
        a.observe(&obs(Class::Ng), &T);
        for _ in 0..3 {
            assert!(a.observe(&obs(Class::Err), &T).is_empty());
        }
        assert_eq!(a.observe(&obs(Class::Err), &T), [Transition::Pause]);
        // 7 failures in a row, of which the last 4 were ERR.
        assert_eq!(a.run_length(Transition::Raise), 7);
        assert_eq!(a.run_length(Transition::Pause), 4);
        assert_eq!(a.phase(), Phase::Paused);
        a.resume();
        assert_eq!(a.phase(), Phase::Alarm);
        assert_eq!((a.fails, a.errs), (0, 0));
    }

    #[test]
    fn fall_one_and_pause_one_give_both_at_once() {
        let t = Thresholds {
            fall: 1,
            rise: 1,
            pause_after_errors: 1,
            flap: None,
        };
        let mut a = Alarm::new(None);
        assert_eq!(
            a.observe(&obs(Class::Err), &t),
            [Transition::Raise, Transition::Pause]
        );
    }

    #[test]
    fn a_restored_alarm_is_not_raised_again() {
        let mut a = Alarm::new(Some(SystemTime::UNIX_EPOCH));
        assert_eq!(a.phase(), Phase::Alarm);
        assert!(a.observe(&obs(Class::Ng), &T).is_empty());
        assert!(a.observe(&obs(Class::Ng), &T).is_empty());
        for _ in 0..2 {
            a.observe(&obs(Class::Ok), &T);
        }
        assert_eq!(a.observe(&obs(Class::Ok), &T), [Transition::Clear]);
    }

    #[test]
    fn pausing_never_with_zero() {
        let t = Thresholds {
            pause_after_errors: 0,
            ..T
        };
        let mut a = Alarm::new(None);
        for _ in 0..50 {
            assert!(!a.observe(&obs(Class::Err), &t).contains(&Transition::Pause));
        }
    }

    fn at(o: Class, secs: u64) -> Observation {
        Observation {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs),
            ..obs(o)
        }
    }

    const FLAP: Thresholds = Thresholds {
        fall: 1,
        rise: 1,
        pause_after_errors: 0,
        flap: Some(Flap {
            changes: 6,
            window: Duration::from_secs(600),
        }),
    };

    #[test]
    fn the_seventh_change_in_a_window_is_flapping_and_actions_stop() {
        let mut a = Alarm::new(None);
        let mut told = Vec::new();
        for i in 0..20 {
            let class = if i % 2 == 0 { Class::Ng } else { Class::Ok };
            told.extend(a.observe(&at(class, i * 10), &FLAP));
        }
        use Transition::*;
        assert_eq!(told, [Raise, Clear, Raise, Clear, Raise, Clear, Flapping]);
        assert_eq!(a.phase(), Phase::Flapping);
        // Last told: clear; now: clear (20 checks, the last an OK).
        assert!(!a.raised && !a.told_raised);
    }

    #[test]
    fn flapping_stops_after_a_window_and_tells_how_the_alarm_stands() {
        let mut a = Alarm::new(None);
        for i in 0..8 {
            let class = if i % 2 == 0 { Class::Ng } else { Class::Ok };
            a.observe(&at(class, i), &FLAP);
        }
        assert!(a.flapping);
        // It settles failing: no raise is told while flapping.
        assert!(a.observe(&at(Class::Ng, 8), &FLAP).is_empty());
        assert!(a.raised && !a.told_raised);
        // Still within the window of its start: flapping.
        assert!(a.observe(&at(Class::Ng, 300), &FLAP).is_empty());
        // A window after it began, with no change since: stopped, and the
        // raise it held back is told now.
        assert_eq!(
            a.observe(&at(Class::Ng, 609), &FLAP),
            [Transition::FlappingStopped, Transition::Raise]
        );
        assert_eq!(a.phase(), Phase::Alarm);
        // It is told nothing twice.
        assert!(a.observe(&at(Class::Ng, 700), &FLAP).is_empty());
    }

    #[test]
    fn a_flap_that_ends_as_it_began_tells_only_that_it_stopped() {
        let mut a = Alarm::new(None);
        for i in 0..8 {
            let class = if i % 2 == 0 { Class::Ng } else { Class::Ok };
            a.observe(&at(class, i), &FLAP);
        }
        assert!(a.observe(&at(Class::Ok, 100), &FLAP).is_empty());
        assert_eq!(
            a.observe(&at(Class::Ok, 700), &FLAP),
            [Transition::FlappingStopped]
        );
    }

    #[test]
    fn a_restored_flapper_flaps_a_window_from_the_restart() {
        let now = at(Class::Ok, 0).at;
        let mut a = Alarm::new(Some(now)).still_flapping(now);
        assert!(a.observe(&at(Class::Ok, 10), &FLAP).is_empty());
        assert!(!a.raised && a.told_raised && a.flapping);
        assert_eq!(
            a.observe(&at(Class::Ok, 600), &FLAP),
            [Transition::FlappingStopped, Transition::Clear]
        );
    }

    /// Whatever a target does, it tells at most `changes + 3` events per
    /// window: the bound docs/WATCH.md gives for the database's growth.
    #[test]
    fn events_told_are_bounded_per_window_whatever_the_pattern() {
        let day = 86_400;
        let windows = day / 600;
        let bound = (6 + 3) * (windows + 1);
        // Every check a change; bursts of 7 then quiet; bursts of 4 (just
        // under flapping again after a stop); one change a minute.
        let patterns: [&dyn Fn(u64) -> bool; 4] = [
            &|s| s % 2 == 0,
            &|s| (s % 700) < 7 && s % 2 == 0,
            &|s| (s % 620) < 4 && s % 2 == 0,
            &|s| (s / 60) % 2 == 0,
        ];
        for (n, fails) in patterns.iter().enumerate() {
            let mut a = Alarm::new(None);
            let mut told = 0u64;
            for s in 0..day {
                let class = if fails(s) { Class::Ng } else { Class::Ok };
                told += a.observe(&at(class, s), &FLAP).len() as u64;
            }
            assert!(
                told <= bound,
                "pattern {n}: {told} events in a day > {bound}"
            );
        }
    }
}
