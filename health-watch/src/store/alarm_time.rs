//! When each target was in alarm within a window, from the history's
//! raises and clears: for the status page's uptime.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection};

use super::{from_ms, ms, StoreError};

/// Each target's alarms within `[since, now]`, as `(from, to)`: alarms
/// open at `since` start at `since`, alarms still open end at `now`.
/// Targets never in alarm in the window are absent.
pub(crate) fn alarm_intervals(
    conn: &Connection,
    since: SystemTime,
    now: SystemTime,
) -> Result<HashMap<String, Vec<(SystemTime, SystemTime)>>, StoreError> {
    let mut open: HashMap<String, SystemTime> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT target, event FROM events WHERE id IN (
             SELECT max(id) FROM events
             WHERE time_ms < ?1 AND event IN ('raise', 'carried', 'clear', 'removed')
             GROUP BY target)",
    )?;
    let rows = stmt.query_map(params![ms(since)], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (target, event) = row?;
        if event == "raise" || event == "carried" {
            open.insert(target, since);
        }
    }
    let mut intervals: HashMap<String, Vec<(SystemTime, SystemTime)>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT target, event, time_ms FROM events
         WHERE time_ms >= ?1 AND time_ms <= ?2
           AND event IN ('raise', 'carried', 'clear', 'removed')
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![ms(since), ms(now)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (target, event, time) = row?;
        let at = from_ms(time).max(since);
        if event == "raise" || event == "carried" {
            open.entry(target).or_insert(at);
        } else if let Some(start) = open.remove(&target) {
            intervals.entry(target).or_default().push((start, at));
        }
    }
    for (target, start) in open {
        intervals.entry(target).or_default().push((start, now));
    }
    Ok(intervals)
}

/// The time of `intervals` that falls after `from`.
pub(crate) fn time_after(intervals: &[(SystemTime, SystemTime)], from: SystemTime) -> Duration {
    intervals
        .iter()
        .map(|(a, b)| b.duration_since((*a).max(from)).unwrap_or_default())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{insert_event, open, EventRecord};

    fn event(target: &str, event: &'static str, at: SystemTime) -> EventRecord {
        EventRecord {
            time: at,
            target: target.into(),
            kind: "tcp",
            addr: "127.0.0.1:1".into(),
            event,
            class: None,
            reason: None,
            detail: String::new(),
            rtt: None,
            count: 0,
        }
    }

    #[test]
    fn alarms_are_clipped_to_the_window() {
        let dir = std::env::temp_dir().join(format!("alarm-time-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = open(&dir.join("w.db")).unwrap();
        let now = SystemTime::now();
        let h = |n: u64| now - Duration::from_secs(n * 3600);
        for e in [
            // Raised before the window, cleared inside: counts from `since`.
            event("a", "raise", h(30)),
            event("a", "clear", h(20)),
            // Raised and cleared inside.
            event("b", "raise", h(10)),
            event("b", "clear", h(9)),
            // Raised inside, still open: counts to `now`.
            event("c", "raise", h(2)),
            // Raised and cleared before the window: nothing.
            event("d", "raise", h(50)),
            event("d", "clear", h(40)),
        ] {
            insert_event(&conn, &e).unwrap();
        }
        let t = alarm_intervals(&conn, h(24), now).unwrap();
        let hours = |target: &str| {
            t.get(target)
                .map(|i| time_after(i, h(24)).as_secs_f64() / 3600.0)
        };
        assert!((hours("a").unwrap() - 4.0).abs() < 0.01, "{t:?}");
        assert!((hours("b").unwrap() - 1.0).abs() < 0.01, "{t:?}");
        assert!((hours("c").unwrap() - 2.0).abs() < 0.01, "{t:?}");
        assert_eq!(hours("d"), None);
        // A shorter window from the same intervals: a's alarm ended before it.
        let last_5h = |target: &str| time_after(&t[target], h(5)).as_secs_f64() / 3600.0;
        assert_eq!(last_5h("a"), 0.0);
        assert!((last_5h("c") - 2.0).abs() < 0.01);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
