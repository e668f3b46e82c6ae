//! When a target's checks run. Each target has its own phase within its
//! interval, derived from its name, so that thousands of targets at one
//! interval are spread over it and a restart keeps each where it was
//! (keepalived's `warmup` and HAProxy's `spread-checks` spread checks for
//! the same reason). On top of it each check moves later by a random part
//! of `jitter` (10% of the interval unless set), so targets whose phases
//! fall close do not stay together.
//!
//! The slots stay on the target's own grid. A check that ends past its
//! next slot (a timeout as long as the interval, a full `max_in_flight`, a
//! stalled machine) runs the next one at once, as before, so a hung peer
//! is still checked back to back; but the slot after that is again of the
//! target's own phase. Before, the late target took the instant it ran as
//! its phase, and every target late after one stall stayed in step with
//! the others from then on.

use std::time::Duration;

use tokio::time::Instant;

/// `jitter` unless set: 10% of the interval.
pub(crate) const DEFAULT_JITTER_PERCENT: u8 = 10;
/// The most `jitter` may be.
pub(crate) const MAX_JITTER_PERCENT: u8 = 50;

/// One target's slots.
#[derive(Debug)]
pub(crate) struct Schedule {
    /// The current slot, on the target's grid.
    slot: Instant,
    interval: Duration,
    /// Percent of the interval a check may move later.
    jitter: u8,
    /// xorshift64 state, seeded by the name (never zero).
    rng: u64,
}

/// FNV-1a of `name`: a fixed, dependency-free spread; not a security
/// boundary.
fn hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl Schedule {
    /// `name`'s slots every `interval` from `now`, its first one at its
    /// phase: the same part of the interval at every start.
    pub(crate) fn new(name: &str, interval: Duration, jitter: u8, now: Instant) -> Schedule {
        let h = hash(name);
        let phase = interval.mul_f64((h % 10_000) as f64 / 10_000.0);
        Schedule {
            slot: now + phase,
            interval,
            jitter: jitter.min(MAX_JITTER_PERCENT),
            rng: h | 1,
        }
    }

    /// When the first slot's check runs.
    pub(crate) fn first(&mut self) -> Instant {
        self.jittered()
    }

    /// When the next check runs, one ended at `now`: its next slot moved
    /// later by its jitter, or `now` when that slot has passed (its slot
    /// then the last of its phase at or before `now`).
    pub(crate) fn next(&mut self, now: Instant) -> Instant {
        self.slot += self.interval;
        if self.slot < now {
            self.out_of_turn(now);
            return now;
        }
        self.jittered()
    }

    /// The current slot, moved later by a random part of the jitter.
    fn jittered(&mut self) -> Instant {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let part = (self.rng % 1_000_000) as f64 / 1_000_000.0;
        self.slot + self.interval.mul_f64(part * f64::from(self.jitter) / 100.0)
    }

    /// A target checked at `now` out of turn (late, or resumed after a
    /// pause): its slot goes back to the last of its phase at or before
    /// `now`, so that [`Schedule::next`] keeps the phase.
    pub(crate) fn out_of_turn(&mut self, now: Instant) {
        if self.slot > now {
            // Before its first slot: that one comes next.
            self.slot = self.slot.checked_sub(self.interval).unwrap_or(self.slot);
            return;
        }
        self.slot += self.interval * self.slots_behind(now).saturating_sub(1);
    }

    /// Whole intervals from the slot to just past `now` (at least 1).
    fn slots_behind(&self, now: Instant) -> u32 {
        let behind = now.saturating_duration_since(self.slot).as_nanos();
        let n = behind / self.interval.as_nanos().max(1) + 1;
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks per 100 ms slot of one interval, for `n` targets.
    fn per_100ms(n: usize, interval: Duration, jitter: u8) -> Vec<u32> {
        let start = Instant::now();
        let buckets = (interval.as_millis() / 100) as usize;
        let mut counts = vec![0u32; buckets];
        for i in 0..n {
            let mut s = Schedule::new(&format!("target-{i}"), interval, jitter, start);
            // The second slot, as a running watcher is.
            s.first();
            let at = s.next(start).duration_since(start + interval);
            let k = (at.as_millis() / 100) as usize % buckets;
            counts[k] += 1;
        }
        counts
    }

    #[test]
    fn ten_thousand_targets_are_spread_over_their_interval() {
        for jitter in [0, DEFAULT_JITTER_PERCENT, MAX_JITTER_PERCENT] {
            let counts = per_100ms(10_000, Duration::from_secs(10), jitter);
            let mean = 10_000.0 / counts.len() as f64;
            let max = *counts.iter().max().unwrap() as f64;
            let min = *counts.iter().min().unwrap() as f64;
            assert!(
                max <= 2.0 * mean,
                "jitter {jitter}%: {max} in one 100 ms against a mean of {mean}"
            );
            assert!(
                min >= mean / 2.0,
                "jitter {jitter}%: {min} in one 100 ms against a mean of {mean}"
            );
        }
    }

    #[test]
    fn a_restart_keeps_each_phase_and_jitter_stays_within_its_share() {
        let interval = Duration::from_secs(10);
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(3600);
        let mut a = Schedule::new("epg-1", interval, 0, t0);
        let mut b = Schedule::new("epg-1", interval, 0, t1);
        assert_eq!(a.first() - t0, b.first() - t1);
        let mut j = Schedule::new("epg-1", interval, DEFAULT_JITTER_PERCENT, t0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let due = j.next(t0);
            let moved = due - j.slot;
            assert!(moved < interval / 10, "{moved:?}");
            seen.insert(moved);
        }
        assert!(seen.len() > 90, "the jitter hardly varies: {seen:?}");
    }

    #[test]
    fn a_late_check_runs_at_once_and_the_next_keeps_its_phase() {
        let interval = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut s = Schedule::new("late", interval, 0, t0);
        let first = s.first();
        let at = |secs: u64, ms: u64| first + Duration::from_secs(secs) + Duration::from_millis(ms);
        // The check ended 25 s after its slot, past the +10 s and +20 s
        // slots: the next runs at once...
        assert_eq!(s.next(at(25, 0)), at(25, 0));
        // ... and the one after it at +30 s, the target's own phase.
        assert_eq!(s.next(at(25, 100)), at(30, 0));
        // A check as long as the interval (a hung peer): back to back.
        assert_eq!(s.next(at(40, 50)), at(40, 50));
        assert_eq!(s.next(at(50, 100)), at(50, 100));
        // Quick again: +60 s.
        assert_eq!(s.next(at(50, 110)), at(60, 0));
        // Checked out of turn at +67 s (a resume): the next slot is +70 s.
        s.out_of_turn(at(67, 0));
        assert_eq!(s.next(at(67, 10)), at(70, 0));
    }
}
