//! When each target was in alarm within a window, from the history's
//! raises and clears, and since when it is watched (the `observed`
//! table): for the status page's uptime.
//!
//! Uptime is counted over the time observed: from a target's first check
//! (the first ever: kept in `observed`, so a restart keeps it), never
//! before. Time in alarm is down, and so is the time from the first check
//! to the first passing one: a target never seen up is 0% up.

use crate::event::{Event, UNREACHABLE};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection};

use super::{from_ms, ms, StoreError};

/// Each target's alarms within `[since, now]`, as `(from, to)`: alarms
/// open at `since` start at `since`, alarms still open end at `now`.
/// Targets never in alarm in the window are absent. An alarm raised as
/// `unreachable` (behind a raised target it depends on) is not down until
/// it is `released`, if it is: until then it is its parent's outage.
pub(crate) fn alarm_intervals(
    conn: &Connection,
    since: SystemTime,
    now: SystemTime,
) -> Result<HashMap<String, Vec<(SystemTime, SystemTime)>>, StoreError> {
    // Per target with an alarm open: since when it is down (`None`: not
    // down yet, held as unreachable).
    let mut open: HashMap<String, Option<SystemTime>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT e.target, e.event, e.class,
                EXISTS (SELECT 1 FROM events r WHERE r.target = e.target
                        AND r.event = 'released' AND r.id > e.id AND r.time_ms < ?1)
         FROM events e WHERE e.id IN (
             SELECT max(id) FROM events
             WHERE time_ms < ?1 AND event IN ('raise', 'carried', 'clear', 'removed')
             GROUP BY target)",
    )?;
    let rows = stmt.query_map(params![ms(since)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, bool>(3)?,
        ))
    })?;
    for row in rows {
        let (target, event, class, released) = row?;
        if Event::word_opens_alarm(&event) {
            let down = released || class.as_deref() != Some(UNREACHABLE);
            open.insert(target, down.then_some(since));
        }
    }
    let mut intervals: HashMap<String, Vec<(SystemTime, SystemTime)>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT target, event, time_ms, class FROM events
         WHERE time_ms >= ?1 AND time_ms <= ?2
           AND event IN ('raise', 'carried', 'clear', 'removed', 'released')
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![ms(since), ms(now)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    for row in rows {
        let (target, event, time, class) = row?;
        let at = from_ms(time).max(since);
        if Event::word_opens_alarm(&event) {
            let down = class.as_deref() != Some(UNREACHABLE);
            open.entry(target).or_insert(down.then_some(at));
        } else if event == Event::Released.as_str() {
            if let Some(start @ None) = open.get_mut(&target) {
                *start = Some(at);
            }
        } else if let Some(Some(start)) = open.remove(&target) {
            intervals.entry(target).or_default().push((start, at));
        }
    }
    for (target, start) in open {
        if let Some(start) = start {
            intervals.entry(target).or_default().push((start, now));
        }
    }
    Ok(intervals)
}

/// Since when a target is watched: its first check, and its first
/// passing check (`None`: never seen up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observed {
    pub first_check: SystemTime,
    pub first_ok: Option<SystemTime>,
}

/// Marks `target` checked at `at` (and passing, if `ok`): the first such
/// marks stay. A target with events from before this table (an older
/// watcher's history) is taken as watched, and up, since its first event.
pub(crate) fn insert_observed(
    conn: &Connection,
    target: &str,
    at: SystemTime,
    ok: bool,
) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO observed (target, first_check_ms, first_ok_ms)
         SELECT ?1, coalesce(min(time_ms), ?2),
                CASE WHEN min(time_ms) IS NOT NULL THEN min(time_ms) WHEN ?3 THEN ?2 END
         FROM events WHERE target = ?1",
    )?
    .execute(params![target, ms(at), ok])?;
    if ok {
        conn.prepare_cached(
            "UPDATE observed SET first_ok_ms = ?2 WHERE target = ?1 AND first_ok_ms IS NULL",
        )?
        .execute(params![target, ms(at)])?;
    }
    Ok(())
}

/// Every target's [`Observed`]; empty for a history from before the table.
pub(crate) fn observed(conn: &Connection) -> Result<HashMap<String, Observed>, StoreError> {
    let mut stmt = match conn.prepare("SELECT target, first_check_ms, first_ok_ms FROM observed") {
        Ok(s) => s,
        Err(_) => return Ok(HashMap::new()),
    };
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Observed {
                first_check: from_ms(r.get(1)?),
                first_ok: r.get::<_, Option<i64>>(2)?.map(from_ms),
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The share of `[since, now]` a target was up, in percent, over the part
/// of it observed and not under maintenance: `None` before its first check
/// (or when all of it was maintenance). Down is every alarm interval
/// (`alarms`, as [`alarm_intervals`] gives them) and the time before its
/// first passing check, less what `maintenance` (merged spans, as
/// `silence::spans_by_target` gives them) covers: that time counts
/// neither as up nor as down.
pub(crate) fn uptime(
    observed: &Observed,
    alarms: &[(SystemTime, SystemTime)],
    maintenance: &[(SystemTime, SystemTime)],
    since: SystemTime,
    now: SystemTime,
) -> Option<f64> {
    use crate::silence::{merge, overlap};
    let from = since.max(observed.first_check);
    now.duration_since(from).ok().filter(|w| !w.is_zero())?;
    let clip = |&(a, b): &(SystemTime, SystemTime)| (a.max(from), b.min(now));
    let mut down: Vec<(SystemTime, SystemTime)> = alarms
        .iter()
        .chain([(observed.first_check, observed.first_ok.unwrap_or(now))].iter())
        .map(clip)
        .filter(|(a, b)| a < b)
        .collect();
    // Intervals may overlap (an alarm raised before the first pass).
    let down = merge(&mut down);
    let mut kept: Vec<(SystemTime, SystemTime)> = maintenance
        .iter()
        .map(clip)
        .filter(|(a, b)| a < b)
        .collect();
    let kept = merge(&mut kept);
    let span = |v: &[(SystemTime, SystemTime)]| -> Duration {
        v.iter()
            .map(|(a, b)| b.duration_since(*a).unwrap_or_default())
            .sum()
    };
    let window = now.duration_since(from).unwrap_or_default() - span(&kept);
    if window.is_zero() {
        return None;
    }
    let down_time: Duration = down
        .iter()
        .map(|&d| d.1.duration_since(d.0).unwrap_or_default() - overlap(d, &kept))
        .sum();
    Some(100.0 * (1.0 - (down_time.as_secs_f64() / window.as_secs_f64()).clamp(0.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{insert_event, open, EventRecord};

    fn event(target: &str, event: Event, at: SystemTime) -> EventRecord {
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
            silence: None,
            held: false,
            remind_alert: false,
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
            event("a", Event::Raise, h(30)),
            event("a", Event::Clear, h(20)),
            // Raised and cleared inside.
            event("b", Event::Raise, h(10)),
            event("b", Event::Clear, h(9)),
            // Raised inside, still open: counts to `now`.
            event("c", Event::Raise, h(2)),
            // Raised and cleared before the window: nothing.
            event("d", Event::Raise, h(50)),
            event("d", Event::Clear, h(40)),
        ] {
            insert_event(&conn, &e).unwrap();
        }
        let t = alarm_intervals(&conn, h(24), now).unwrap();
        // Watched, and up, since long before the window.
        let always = Observed {
            first_check: h(100),
            first_ok: Some(h(100)),
        };
        let up = |target: &str, since: SystemTime| {
            uptime(
                &always,
                t.get(target).map_or(&[][..], |i| &i[..]),
                &[],
                since,
                now,
            )
            .unwrap()
        };
        let near = |a: f64, b: f64| (a - b).abs() < 0.01;
        assert!(near(up("a", h(24)), 100.0 * (1.0 - 4.0 / 24.0)), "{t:?}");
        assert!(near(up("b", h(24)), 100.0 * (1.0 - 1.0 / 24.0)), "{t:?}");
        assert!(near(up("c", h(24)), 100.0 * (1.0 - 2.0 / 24.0)), "{t:?}");
        assert_eq!(up("d", h(24)), 100.0);
        // A shorter window from the same intervals: a's alarm ended before it.
        assert_eq!(up("a", h(5)), 100.0);
        assert!(near(up("c", h(5)), 100.0 * (1.0 - 2.0 / 5.0)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unreachable_alarm_is_down_only_once_released() {
        let dir = std::env::temp_dir().join(format!("alarm-unreachable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = open(&dir.join("w.db")).unwrap();
        let now = from_ms(ms(SystemTime::now()));
        let h = |n: u64| now - Duration::from_secs(n * 3600);
        let unreachable = |target: &str, at| EventRecord {
            class: Some(UNREACHABLE),
            ..event(target, Event::Raise, at)
        };
        for e in [
            // Behind its parent for 2 h, then down on its own for 1 h.
            unreachable("a", h(10)),
            event("a", Event::Released, h(8)),
            event("a", Event::Clear, h(7)),
            // Behind its parent, cleared with it: never down.
            unreachable("b", h(6)),
            event("b", Event::Clear, h(5)),
            // Behind its parent and still open: not down.
            unreachable("c", h(2)),
            // Raised before the window, released inside it.
            unreachable("d", h(30)),
            event("d", Event::Released, h(1)),
        ] {
            insert_event(&conn, &e).unwrap();
        }
        let t = alarm_intervals(&conn, h(24), now).unwrap();
        assert_eq!(t["a"], vec![(h(8), h(7))]);
        assert!(!t.contains_key("b") && !t.contains_key("c"), "{t:?}");
        assert_eq!(t["d"], vec![(h(1), now)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn uptime_counts_from_the_first_check_and_down_until_the_first_pass() {
        let now = SystemTime::now();
        let s = |n: u64| now - Duration::from_secs(n);
        let day = s(86_400);
        // Never up, watched for ten minutes, raised after its second check.
        let never = Observed {
            first_check: s(600),
            first_ok: None,
        };
        assert_eq!(uptime(&never, &[(s(595), now)], &[], day, now), Some(0.0));
        // Not checked yet in the window: nothing to say.
        let later = Observed {
            first_check: now + Duration::from_secs(1),
            first_ok: None,
        };
        assert_eq!(uptime(&later, &[], &[], day, now), None);
        // Up from its first check, then an alarm of a quarter of the time
        // observed.
        let watched = Observed {
            first_check: s(400),
            first_ok: Some(s(400)),
        };
        assert_eq!(
            uptime(&watched, &[(s(100), now)], &[], day, now),
            Some(75.0)
        );
        // Failing for its first 100 s (before the first pass), with an
        // alarm inside that: counted once.
        let slow = Observed {
            first_check: s(400),
            first_ok: Some(s(300)),
        };
        assert_eq!(
            uptime(&slow, &[(s(395), s(300))], &[], day, now),
            Some(75.0)
        );
        // Watched long before the window: the window counts whole.
        let old = Observed {
            first_check: s(10 * 86_400),
            first_ok: Some(s(10 * 86_400)),
        };
        let up = uptime(&old, &[(s(8640), now)], &[], day, now).unwrap();
        assert!((up - 90.0).abs() < 0.01, "{up}");
    }

    #[test]
    fn maintenance_is_neither_up_nor_down() {
        let now = SystemTime::now();
        let s = |n: u64| now - Duration::from_secs(n);
        let day = s(86_400);
        let watched = Observed {
            first_check: s(1000),
            first_ok: Some(s(1000)),
        };
        // Down for the last 400 s, 200 s of them in maintenance: 200 s
        // down of 800 s counted.
        let up = uptime(&watched, &[(s(400), now)], &[(s(300), s(100))], day, now);
        assert_eq!(up, Some(75.0));
        // Maintenance while up only shortens the time counted.
        let up = uptime(&watched, &[(s(100), now)], &[(s(1000), s(500))], day, now);
        assert_eq!(up, Some(80.0));
        // All of it maintenance: nothing to say.
        assert_eq!(
            uptime(&watched, &[(s(100), now)], &[(s(2000), now)], day, now),
            None
        );
    }

    #[test]
    fn the_first_marks_stay_and_an_older_history_counts_from_its_first_event() {
        let dir = std::env::temp_dir().join(format!("observed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = open(&dir.join("w.db")).unwrap();
        let now = SystemTime::now();
        let s = |n: u64| from_ms(ms(now - Duration::from_secs(n)));
        insert_observed(&conn, "new", s(50), false).unwrap();
        insert_observed(&conn, "new", s(40), false).unwrap();
        insert_observed(&conn, "new", s(30), true).unwrap();
        insert_observed(&conn, "new", s(20), true).unwrap();
        insert_event(&conn, &event("old", Event::Raise, s(900))).unwrap();
        insert_observed(&conn, "old", s(10), false).unwrap();
        let o = observed(&conn).unwrap();
        assert_eq!(
            o["new"],
            Observed {
                first_check: s(50),
                first_ok: Some(s(30))
            }
        );
        assert_eq!(
            o["old"],
            Observed {
                first_check: s(900),
                first_ok: Some(s(900))
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
