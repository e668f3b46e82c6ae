//! `remind_every`, `max_reminders`, `on_remind`, `remind_alertmanager`:
//! what an alarm that stays raised does again, and how often.

use std::ops::Range;
use std::time::Duration;

use super::Common;

/// Shortest `remind_every`.
const MIN_EVERY: Duration = Duration::from_secs(1);
/// Longest `remind_every`.
const MAX_EVERY: Duration = Duration::from_secs(30 * 86_400);
/// Most `max_reminders`.
const MAX_COUNT: u32 = 10_000;

/// A target's reminders: none unless `every` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reminders {
    /// `remind_every`: the time from the raise (or its release) to the
    /// first reminder, and between reminders.
    pub every: Option<Duration>,
    /// `max_reminders`: `None`, no end while the alarm stands.
    pub max: Option<u32>,
    /// `on_remind`: the command each reminder runs.
    pub command: Option<String>,
    /// `remind_alertmanager`: each reminder changes the alert's `reminder`
    /// label, which Alertmanager notifies as a new alert.
    pub alertmanager: bool,
}

/// The reminders `common` asks for; each value out of range is told to
/// `error` at its place.
pub(super) fn settings(common: &Common, error: &mut impl FnMut(Range<usize>, String)) -> Reminders {
    let every = match &common.remind_every {
        None => None,
        Some(d) if !(MIN_EVERY..=MAX_EVERY).contains(&d.get_ref().0) => {
            error(
                d.span(),
                format!(
                    "remind_every must be between {} and {}",
                    humantime::format_duration(MIN_EVERY),
                    humantime::format_duration(MAX_EVERY)
                ),
            );
            None
        }
        Some(d) => Some(d.get_ref().0),
    };
    let max = match &common.max_reminders {
        None => None,
        Some(n) if !(1..=MAX_COUNT).contains(n.get_ref()) => {
            error(
                n.span(),
                format!("max_reminders must be between 1 and {MAX_COUNT}"),
            );
            None
        }
        Some(n) => Some(*n.get_ref()),
    };
    Reminders {
        every,
        max,
        command: common.on_remind.clone(),
        alertmanager: common
            .remind_alertmanager
            .as_ref()
            .is_some_and(|b| *b.get_ref()),
    }
}
