//! Uptime as the status page shows it: each target's checks over the last
//! 24 hours by hour ([`Hours`]) and its last checks' round trips
//! ([`Recent`]), kept in memory with its status row. The uptime figures
//! over 24 hours and 10 days come from the history
//! ([`crate::store::uptime`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::check::Observation;

/// Whether this run has marked a target checked, and passing, in the
/// history: where its uptime counts from ([`crate::store::uptime`]).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Marked {
    pub checked: bool,
    pub passed: bool,
}

/// Hours kept per target.
pub(crate) const HOURS: usize = 24;

/// The worst outcome of an hour's checks, best first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Worst {
    /// No check that hour (the watcher was not running, or the target was
    /// new or paused).
    #[default]
    NoData,
    /// Every check passed.
    Ok,
    /// Passed, but slower than `warn`.
    Slow,
    /// At least one check failed.
    Failed,
}

impl Worst {
    pub(crate) fn of(o: &Observation) -> Worst {
        if o.failed() {
            Worst::Failed
        } else if o.speed == health_probe::outcome::Speed::OverWarn {
            Worst::Slow
        } else {
            Worst::Ok
        }
    }

    /// Its CSS class on the page.
    pub(crate) fn class(self) -> &'static str {
        match self {
            Worst::NoData => "n",
            Worst::Ok => "o",
            Worst::Slow => "s",
            Worst::Failed => "f",
        }
    }
}

/// One hour of one target's checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hour {
    /// Hours since the Unix epoch.
    pub at: u64,
    pub passed: u32,
    pub failed: u32,
    pub worst: Worst,
}

/// A target's last [`HOURS`] hours of checks: a ring indexed by hour.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hours {
    ring: [Hour; HOURS],
}

fn hour_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 3600)
}

impl Hours {
    /// Counts one check.
    pub(crate) fn record(&mut self, o: &Observation) {
        let at = hour_of(o.at);
        let slot = &mut self.ring[(at % HOURS as u64) as usize];
        if slot.at != at {
            *slot = Hour {
                at,
                ..Hour::default()
            };
        }
        let worst = Worst::of(o);
        if worst == Worst::Failed {
            slot.failed = slot.failed.saturating_add(1);
        } else {
            slot.passed = slot.passed.saturating_add(1);
        }
        slot.worst = slot.worst.max(worst);
    }

    /// The [`HOURS`] hours up to the one holding `now`, oldest first; an
    /// hour with no check is [`Worst::NoData`].
    pub(crate) fn day(&self, now: SystemTime) -> [Hour; HOURS] {
        let last = hour_of(now);
        std::array::from_fn(|i| {
            let at = (last + 1 + i as u64).saturating_sub(HOURS as u64);
            let slot = self.ring[(at % HOURS as u64) as usize];
            if slot.at == at {
                slot
            } else {
                Hour {
                    at,
                    ..Hour::default()
                }
            }
        })
    }
}

/// Checks kept per target for its round-trip chart.
pub(crate) const RECENT: usize = 200;

/// One check for the chart: 8 bytes, so 200 per target cost 1.6 KB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Seconds since the Unix epoch.
    pub at: u32,
    /// The round trip in microseconds (saturating), with the top bit set
    /// when the check failed; `u32::MAX >> 1` when it had none.
    packed: u32,
}

const FAILED_BIT: u32 = 1 << 31;
const NO_RTT: u32 = FAILED_BIT - 1;

impl Sample {
    pub(crate) fn failed(self) -> bool {
        self.packed & FAILED_BIT != 0
    }

    pub(crate) fn rtt(self) -> Option<Duration> {
        let us = self.packed & !FAILED_BIT;
        (us != NO_RTT).then(|| Duration::from_micros(u64::from(us)))
    }
}

/// A target's last [`RECENT`] checks, oldest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recent {
    samples: std::collections::VecDeque<Sample>,
}

impl Recent {
    pub(crate) fn record(&mut self, o: &Observation) {
        if self.samples.capacity() == 0 {
            self.samples.reserve_exact(RECENT);
        }
        if self.samples.len() == RECENT {
            self.samples.pop_front();
        }
        let at =
            o.at.duration_since(UNIX_EPOCH)
                .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        let us = o.rtt.map_or(NO_RTT, |d| {
            u32::try_from(d.as_micros())
                .unwrap_or(NO_RTT - 1)
                .min(NO_RTT - 1)
        });
        let failed = if o.failed() { FAILED_BIT } else { 0 };
        self.samples.push_back(Sample {
            at,
            packed: us | failed,
        });
    }

    pub(crate) fn samples(&self) -> Vec<Sample> {
        self.samples.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use health_probe::outcome::{Class, Speed};

    fn check(at: SystemTime, class: Class, speed: Speed) -> Observation {
        Observation {
            at,
            class,
            reason: None,
            detail: String::new(),
            rtt: None,
            speed,
        }
    }

    #[test]
    fn each_hour_keeps_its_worst_outcome_and_old_hours_give_way() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000 * 3600 + 1800);
        let mut h = Hours::default();
        h.record(&check(now, Class::Ok, Speed::Fine));
        h.record(&check(now, Class::Ok, Speed::OverWarn));
        let hour_ago = now - Duration::from_secs(3600);
        h.record(&check(hour_ago, Class::Ng, Speed::Fine));
        h.record(&check(hour_ago, Class::Ok, Speed::Fine));
        let day = h.day(now);
        assert_eq!(day[HOURS - 1].worst, Worst::Slow);
        assert_eq!((day[HOURS - 1].passed, day[HOURS - 1].failed), (2, 0));
        assert_eq!(day[HOURS - 2].worst, Worst::Failed);
        assert_eq!((day[HOURS - 2].passed, day[HOURS - 2].failed), (1, 1));
        assert!(day[..HOURS - 2].iter().all(|h| h.worst == Worst::NoData));
        // A day later the same slot holds the new hour only.
        let tomorrow = now + Duration::from_secs(24 * 3600);
        h.record(&check(tomorrow, Class::Ok, Speed::Fine));
        let day = h.day(tomorrow);
        assert_eq!(
            (day[HOURS - 1].worst, day[HOURS - 1].passed),
            (Worst::Ok, 1)
        );
        assert_eq!(day[HOURS - 2].worst, Worst::NoData);
    }

    #[test]
    fn recent_keeps_the_last_checks_with_their_round_trip() {
        let now = SystemTime::now();
        let mut r = Recent::default();
        for i in 0..(RECENT as u64 + 5) {
            let mut o = check(
                now,
                if i % 2 == 0 { Class::Ok } else { Class::Ng },
                Speed::Fine,
            );
            o.rtt = Some(Duration::from_micros(i));
            r.record(&o);
        }
        let s = r.samples();
        assert_eq!(s.len(), RECENT);
        assert_eq!(s[0].rtt(), Some(Duration::from_micros(5)));
        assert!(s[0].failed());
        assert!(!s[1].failed());
        let mut o = check(now, Class::Wr, Speed::Fine);
        o.rtt = None;
        r.record(&o);
        assert_eq!(r.samples().last().unwrap().rtt(), None);
        o.rtt = Some(Duration::from_secs(1 << 40));
        r.record(&o);
        assert!(r.samples().last().unwrap().rtt().is_some());
    }
}
