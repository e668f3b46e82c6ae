//! The watcher's state, apart from how it is shown: every running
//! target's [`Status`] (its alarm, last check, counts, hours and round
//! trips), the counters of the run ([`Stats`]), the actions by outcome, and
//! a generation that moves when what a page shows changes. The target
//! tasks, the watcher and its actions write it; the live table (`output`),
//! `/metrics` (`exporter`) and the status page (`page`) read it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::alarm::Alarm;
use crate::check::Observation;
use crate::event::ActionOutcome;

/// One target: kept by its task, read by the views.
pub(crate) struct Status {
    pub name: String,
    pub kind: &'static str,
    pub addr: String,
    /// The targets it `depends_on`.
    pub parents: Vec<String>,
    pub row: Mutex<Row>,
}

pub(crate) struct Row {
    pub alarm: Alarm,
    pub last: Option<Observation>,
    /// Alarms raised, over the whole history.
    pub alarms: u64,
    /// Checks since the target started, by class ([`CLASSES`] order).
    pub checks: [u64; 4],
    /// The last 24 hours of checks, by hour (the status page's bars).
    pub hours: crate::uptime::Hours,
    /// The last checks' round trips (the status page's chart).
    pub recent: crate::uptime::Recent,
    /// What this run has marked in the history (uptime counts from it).
    pub marked: crate::uptime::Marked,
    /// What held the raise of the alarm now raised (a silence, a raised
    /// parent): its action and alert wait until nothing does (`released`).
    pub held: Option<crate::event::Hold>,
    /// Reminders of the alarm now raised, once it is told.
    pub remind: Option<Remind>,
    /// A target with vantage points: how each stands, and its path fault.
    pub path: Option<Box<crate::vantage::path::PathState>>,
}

/// Where an alarm's reminders stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Remind {
    /// When the alarm was told (raised, or released): reminders are
    /// `remind_every` apart from here.
    pub from: std::time::SystemTime,
    /// The number of the next reminder; 0: not known yet (an alarm found
    /// open at start or kept through a reload), taken as the first one
    /// still ahead, so that none missed meanwhile comes in a burst.
    pub next: u32,
}

/// The classes of a check's outcome, in the order [`Row::checks`] counts
/// them.
pub(crate) const CLASSES: [&str; 4] = ["OK", "WR", "NG", "ERR"];

impl Status {
    pub(crate) fn row(&self) -> MutexGuard<'_, Row> {
        self.row.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counters over the whole run, for `--stats` and the live header.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub checks: u64,
    pub failed: u64,
    pub in_flight: usize,
    /// Worst delay of a check behind its schedule in the period.
    pub max_lag: Duration,
    pub targets: usize,
    pub alarms: usize,
    pub paused: usize,
}

/// Every target and the run's counters.
pub(crate) struct Registry {
    targets: Mutex<Vec<Arc<Status>>>,
    /// The same, by name.
    by_name: Mutex<std::collections::HashMap<String, Arc<Status>>>,
    stats: Mutex<Stats>,
    /// Actions run (or not) since the start, by [`ActionOutcome::ALL`].
    actions: Mutex<[u64; ActionOutcome::ALL.len()]>,
    /// Moves when what the status page shows of a target changes.
    generation: AtomicU64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    pub(crate) fn new() -> Arc<Registry> {
        Arc::new(Registry {
            targets: Mutex::new(Vec::new()),
            by_name: Mutex::new(Default::default()),
            stats: Mutex::new(Stats::default()),
            actions: Mutex::new([0; ActionOutcome::ALL.len()]),
            generation: AtomicU64::new(0),
        })
    }

    /// A target's state, alarm or listing changed (the status page's
    /// `/events` tells its browsers).
    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// How many changes so far.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The targets running now, in the config's order.
    pub(crate) fn set_targets(&self, targets: Vec<Arc<Status>>) {
        let by_name = targets
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect();
        *self.targets.lock().unwrap_or_else(|e| e.into_inner()) = targets;
        *self.by_name.lock().unwrap_or_else(|e| e.into_inner()) = by_name;
        self.changed();
    }

    /// The running target named `name`.
    pub(crate) fn find(&self, name: &str) -> Option<Arc<Status>> {
        self.by_name
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The first of `parents` whose alarm is raised now.
    pub(crate) fn raised_parent(&self, parents: &[String]) -> Option<String> {
        parents
            .iter()
            .find(|p| self.find(p).is_some_and(|s| s.row().alarm.raised))
            .cloned()
    }

    /// Every running target's status.
    pub(crate) fn targets(&self) -> Vec<Arc<Status>> {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The run's latest counters.
    pub(crate) fn set_stats(&self, stats: Stats) {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = stats;
    }

    pub(crate) fn stats(&self) -> Stats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One more action ended with `outcome`.
    pub(crate) fn count_action(&self, outcome: ActionOutcome) {
        self.actions.lock().unwrap_or_else(|e| e.into_inner())[outcome as usize] += 1;
    }

    /// Actions since the start, by [`ActionOutcome::ALL`].
    pub(crate) fn actions(&self) -> [u64; ActionOutcome::ALL.len()] {
        *self.actions.lock().unwrap_or_else(|e| e.into_inner())
    }
}
