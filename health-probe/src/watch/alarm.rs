//! A target's alarm: consecutive failures raise it (`fall`), consecutive
//! successes clear it (`rise`), and `pause_after_errors` ERR outcomes in a
//! row pause the target until a reload. Pure state, no I/O, so every rule
//! is tested on its own.

use std::time::SystemTime;

use crate::tcp::Class;

use super::check::Observation;

/// What an observation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `fall` failures in a row while clear.
    Raise,
    /// `rise` successes in a row while raised.
    Clear,
    /// `pause_after_errors` ERR outcomes in a row: checks stop until the
    /// watcher is reloaded.
    Pause,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Raise => "raise",
            Transition::Clear => "clear",
            Transition::Pause => "pause",
        }
    }
}

/// The thresholds of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub fall: u32,
    pub rise: u32,
    /// 0: never pause.
    pub pause_after_errors: u32,
}

/// How a target stands, as the live view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    // Ordered by how much attention each needs: the view lists the first
    // ones first.
    Alarm,
    Paused,
    Failing,
    Recovering,
    Pending,
    Ok,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Alarm => "ALARM",
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
pub struct Alarm {
    pub raised: bool,
    pub paused: bool,
    /// Failures, successes and ERR outcomes in a row.
    pub fails: u32,
    pub oks: u32,
    pub errs: u32,
    /// When the alarm was last raised or cleared (or the watch began).
    pub since: SystemTime,
    pub checks: u64,
}

impl Alarm {
    /// A new target's state; `raised_at` restores an alarm left open by an
    /// earlier run, so it is not raised (nor its action run) twice.
    pub fn new(raised_at: Option<SystemTime>) -> Alarm {
        Alarm {
            raised: raised_at.is_some(),
            paused: false,
            fails: 0,
            oks: 0,
            errs: 0,
            since: raised_at.unwrap_or_else(SystemTime::now),
            checks: 0,
        }
    }

    /// Takes in one check's result; at most a raise and a pause at once.
    pub fn observe(&mut self, o: &Observation, t: &Thresholds) -> Vec<Transition> {
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
    pub fn resume(&mut self) {
        self.paused = false;
        self.fails = 0;
        self.oks = 0;
        self.errs = 0;
    }

    /// What lies behind `change`, in a row: failures for a raise,
    /// successes for a clear, ERR outcomes for a pause.
    pub fn run_length(&self, change: Transition) -> u32 {
        match change {
            Transition::Raise => self.fails,
            Transition::Clear => self.oks,
            Transition::Pause => self.errs,
        }
    }

    pub fn phase(&self) -> Phase {
        match self {
            Alarm { paused: true, .. } => Phase::Paused,
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
    use crate::tcp::Speed;
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
}
