//! The words of the watcher's history: what happened to a target
//! ([`Event`]) and how an action ended ([`ActionOutcome`]). The database,
//! the JSON lines, the actions' environment (`HEALTH_EVENT`), the
//! exporter's labels and the page all spell them as [`Event::as_str`] and
//! [`ActionOutcome::as_str`] do: promises to scripts (docs/WATCH.md).

use std::fmt;

use crate::alarm::Transition;

/// What happened to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// `fall` failures in a row while clear: the alarm is raised.
    Raise,
    /// `rise` successes in a row while raised: the alarm clears.
    Clear,
    /// `pause_after_errors` ERR outcomes in a row: checks stop.
    Pause,
    /// A paused target checked again after a reload.
    Resume,
    /// Gone from the config (or its check changed): its alarm, if raised,
    /// ends here.
    Removed,
    /// Raising and clearing too often: actions are held.
    Flapping,
    /// Stable again.
    FlappingStopped,
    /// An alarm open when the database was recreated, recorded again at
    /// the time it was raised.
    Carried,
    /// A raise a silence held, its alarm still raised when no silence
    /// covers it any more: its `on_raise` runs and its alert is sent now.
    Released,
    /// An alarm still raised `remind_every` after it was told (and again
    /// each `remind_every`, up to `max_reminders`): `on_remind` runs.
    Remind,
    /// Some vantage points failed, too few for the quorum, `fall` rounds
    /// in a row: the path from them is at fault, not the server (class
    /// [`PATH`]); `on_path` runs.
    Path,
    /// No path fault `rise` rounds in a row; `on_path` runs.
    PathCleared,
}

impl Event {
    /// Every event, in the order the docs list them.
    const ALL: [Event; 12] = [
        Event::Raise,
        Event::Clear,
        Event::Pause,
        Event::Resume,
        Event::Removed,
        Event::Flapping,
        Event::FlappingStopped,
        Event::Carried,
        Event::Released,
        Event::Remind,
        Event::Path,
        Event::PathCleared,
    ];

    /// Its word: `raise`, `clear`, `pause`, `resume`, `removed`,
    /// `flapping`, `flapping-stopped`, `carried`, `released`, `remind`,
    /// `path`, `path-cleared`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Event::Raise => "raise",
            Event::Clear => "clear",
            Event::Pause => "pause",
            Event::Resume => "resume",
            Event::Removed => "removed",
            Event::Flapping => "flapping",
            Event::FlappingStopped => "flapping-stopped",
            Event::Carried => "carried",
            Event::Released => "released",
            Event::Remind => "remind",
            Event::Path => "path",
            Event::PathCleared => "path-cleared",
        }
    }

    /// Whether it opens an alarm (`raise`, `carried`); the alarm stays open
    /// until a `clear` or `removed`.
    pub(crate) fn opens_alarm(self) -> bool {
        matches!(self, Event::Raise | Event::Carried)
    }

    /// Whether a history row's word (as the database holds it) opens an
    /// alarm.
    pub(crate) fn word_opens_alarm(word: &str) -> bool {
        Event::ALL
            .iter()
            .any(|e| e.opens_alarm() && e.as_str() == word)
    }
}

impl From<Transition> for Event {
    fn from(t: Transition) -> Event {
        match t {
            Transition::Raise => Event::Raise,
            Transition::Clear => Event::Clear,
            Transition::Pause => Event::Pause,
            Transition::Flapping => Event::Flapping,
            Transition::FlappingStopped => Event::FlappingStopped,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of a raise while a target it `depends_on` is raised: the
/// target is taken as cut off behind its parent, not down itself.
pub(crate) const UNREACHABLE: &str = "unreachable";

/// The class of a `path` event: the server answers some vantage points.
pub(crate) const PATH: &str = "path";

/// Why the raise of an open alarm ran no action and sent no alert yet:
/// it fires (`released`) once nothing holds it any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// A silence or maintenance window covered the target (its id).
    Silence(i64),
    /// A target it depends on was raised (class [`UNREACHABLE`]).
    Unreachable,
}

impl Hold {
    /// The silence's id, if a silence holds it.
    pub(crate) fn silence(self) -> Option<i64> {
        match self {
            Hold::Silence(id) => Some(id),
            Hold::Unreachable => None,
        }
    }
}

/// How an `on_raise` or `on_clear` action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActionOutcome {
    /// Exited 0.
    Ok,
    /// Exited otherwise, or was killed by a signal.
    Failed,
    /// Still running at `action_timeout`: killed.
    Timeout,
    /// Could not be started.
    SpawnError,
    /// Never started: a newer event of its target came first.
    Superseded,
    /// Cut short, or never started, because the watcher stopped.
    Stopped,
}

impl ActionOutcome {
    /// Every outcome, in the order the exporter lists them.
    pub(crate) const ALL: [ActionOutcome; 6] = [
        ActionOutcome::Ok,
        ActionOutcome::Failed,
        ActionOutcome::Timeout,
        ActionOutcome::SpawnError,
        ActionOutcome::Superseded,
        ActionOutcome::Stopped,
    ];

    /// Its word: `ok`, `failed`, `timeout`, `spawn-error`, `superseded`,
    /// `stopped`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Ok => "ok",
            ActionOutcome::Failed => "failed",
            ActionOutcome::Timeout => "timeout",
            ActionOutcome::SpawnError => "spawn-error",
            ActionOutcome::Superseded => "superseded",
            ActionOutcome::Stopped => "stopped",
        }
    }
}

impl fmt::Display for ActionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_word_is_its_own_and_alarms_open_on_raise_and_carried() {
        let words: std::collections::HashSet<&str> =
            Event::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(words.len(), Event::ALL.len());
        for e in Event::ALL {
            assert_eq!(Event::word_opens_alarm(e.as_str()), e.opens_alarm());
        }
        assert!(Event::Carried.opens_alarm() && !Event::Clear.opens_alarm());
        assert_eq!(
            Event::from(Transition::FlappingStopped).as_str(),
            "flapping-stopped"
        );
        assert_eq!(ActionOutcome::SpawnError.to_string(), "spawn-error");
    }
}
