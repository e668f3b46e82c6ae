//! A `[[maintenance]]` window of the config: a cron schedule (in the
//! watcher's local time, as crontab's) and a duration. Each time it opens,
//! the watcher records a silence for each of its matchers, from the
//! opening until the duration has passed.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local};
use croner::Cron;

/// Longest window: a month.
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(31 * 86_400);

/// One validated `[[maintenance]]` table.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub name: String,
    /// Target names or patterns it silences.
    pub targets: Vec<String>,
    /// As written, for messages.
    pub schedule_text: String,
    pub schedule: Cron,
    pub duration: Duration,
    pub reason: String,
}

impl PartialEq for Window {
    fn eq(&self, other: &Window) -> bool {
        (
            &self.name,
            &self.targets,
            &self.schedule_text,
            self.duration,
            &self.reason,
        ) == (
            &other.name,
            &other.targets,
            &other.schedule_text,
            other.duration,
            &other.reason,
        )
    }
}

/// Parses a schedule: crontab's five fields (minute, hour, day of month,
/// month, day of week, with names like `SUN` and `JAN`), or six with
/// seconds first.
pub(crate) fn parse_schedule(text: &str) -> Result<Cron, String> {
    use croner::parser::{CronParser, Seconds, Year};
    let fields = text.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "schedule {text:?} has {fields} fields: give five as crontab does (minute hour day-of-month month day-of-week), or six with seconds first"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| format!("schedule {text:?}: {e}"))
}

impl Window {
    /// The opening in force at `now`, as `(from, until)`: the latest one
    /// at or before `now`, if it has not ended.
    pub(crate) fn current(&self, now: SystemTime) -> Option<(SystemTime, SystemTime)> {
        let local: DateTime<Local> = now.into();
        let start = self.schedule.find_previous_occurrence(&local, true).ok()?;
        let from = SystemTime::from(start);
        let until = from + self.duration;
        (from <= now && now < until).then_some((from, until))
    }

    /// The shortest time between two of the next `n` openings after `now`
    /// (`None`: fewer than two ahead).
    pub(crate) fn shortest_gap(&self, now: SystemTime, n: usize) -> Option<Duration> {
        let local: DateTime<Local> = now.into();
        let starts: Vec<SystemTime> = self
            .schedule
            .iter_after(local)
            .take(n)
            .map(SystemTime::from)
            .collect();
        starts
            .windows(2)
            .filter_map(|w| w[1].duration_since(w[0]).ok())
            .min()
    }

    /// The next opening after `now`.
    pub(crate) fn next(&self, now: SystemTime) -> Option<SystemTime> {
        let local: DateTime<Local> = now.into();
        let start = self.schedule.find_next_occurrence(&local, false).ok()?;
        Some(start.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(schedule: &str, duration: Duration) -> Window {
        Window {
            name: "w".into(),
            targets: vec!["*".into()],
            schedule_text: schedule.into(),
            schedule: parse_schedule(schedule).unwrap(),
            duration,
            reason: String::new(),
        }
    }

    #[test]
    fn a_window_is_in_force_from_each_opening_for_its_duration() {
        // Every 10 s, for 4 s.
        let w = window("*/10 * * * * *", Duration::from_secs(4));
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |s: u64| base + Duration::from_secs(s);
        assert_eq!(w.current(at(0)), Some((at(0), at(4))));
        assert_eq!(w.current(at(3)), Some((at(0), at(4))));
        assert_eq!(w.current(at(4)), None, "until is not in it");
        assert_eq!(w.current(at(9)), None);
        assert_eq!(w.current(at(12)), Some((at(10), at(14))));
        assert_eq!(w.next(at(12)), Some(at(20)));
        assert_eq!(w.shortest_gap(at(12), 10), Some(Duration::from_secs(10)));
    }

    #[test]
    fn schedules_are_crontab_s_five_fields_or_six_with_seconds() {
        assert!(parse_schedule("0 2 * * SUN").is_ok());
        assert!(parse_schedule("30 1 1 * *").is_ok());
        assert!(parse_schedule("*/5 * * * * *").is_ok());
        for bad in [
            "",
            "0 2 * *",
            "0 2 * * * * 2030",
            "61 * * * *",
            "0 2 * * FUNDAY",
        ] {
            assert!(parse_schedule(bad).is_err(), "{bad:?}");
        }
    }
}
