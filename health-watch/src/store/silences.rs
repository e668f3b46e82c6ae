//! Silences in the history database: the `silences` table, and the
//! `silence_id` of the events a silence held.
//!
//! A silence is never deleted while the history keeps its time: removing
//! one ends it then (`until` becomes the time of removal, if later) and
//! marks it `removed`, so the report and uptime still count the stretch it
//! covered as maintenance.

use std::time::SystemTime;

use rusqlite::{params, Connection, OptionalExtension};

use super::{from_ms, ms, StoreError};
use crate::silence::{Origin, Silence};

/// Adds what silences need to a database made before them (schema 1):
/// the table, and the events' `silence_id`.
pub(super) fn migrate(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS silences (
             id INTEGER PRIMARY KEY,
             matcher TEXT NOT NULL,
             from_ms INTEGER NOT NULL,
             until_ms INTEGER NOT NULL,
             reason TEXT NOT NULL,
             author TEXT NOT NULL,
             origin TEXT NOT NULL,
             created_ms INTEGER NOT NULL,
             removed_ms INTEGER
         );
         CREATE INDEX IF NOT EXISTS silences_by_until ON silences(until_ms);
         CREATE UNIQUE INDEX IF NOT EXISTS silences_of_windows
             ON silences(origin, from_ms, matcher) WHERE origin LIKE 'maintenance:%';",
    )?;
    let has_column = conn
        .prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'silence_id'")?
        .exists([])?;
    if !has_column {
        conn.execute_batch("ALTER TABLE events ADD COLUMN silence_id INTEGER")?;
    }
    Ok(())
}

const COLUMNS: &str = "id, matcher, from_ms, until_ms, reason, author, origin, created_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Silence> {
    Ok(Silence {
        id: r.get(0)?,
        matcher: r.get(1)?,
        from: from_ms(r.get(2)?),
        until: from_ms(r.get(3)?),
        reason: r.get(4)?,
        author: r.get(5)?,
        origin: Origin::from_text(&r.get::<_, String>(6)?),
        created: from_ms(r.get(7)?),
    })
}

/// Records `s`; its id.
pub(crate) fn insert(conn: &Connection, s: &Silence) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO silences (matcher, from_ms, until_ms, reason, author, origin, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        s.matcher,
        ms(s.from),
        ms(s.until),
        s.reason,
        s.author,
        s.origin.as_text(),
        ms(s.created),
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Records a window's silence unless that opening already has it (a
/// restart, a second look in the same second).
pub(crate) fn insert_window(conn: &Connection, s: &Silence) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO silences
             (matcher, from_ms, until_ms, reason, author, origin, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        s.matcher,
        ms(s.from),
        ms(s.until),
        s.reason,
        s.author,
        s.origin.as_text(),
        ms(s.created),
    ])?;
    Ok(())
}

/// Ends silence `id` at `now` (one still to come is ended before it
/// began: it covers nothing). `None` if there is no such silence or it
/// was removed already; else the silence as it was.
pub(crate) fn remove(
    conn: &Connection,
    id: i64,
    now: SystemTime,
) -> Result<Option<Silence>, StoreError> {
    let found = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM silences WHERE id = ?1 AND removed_ms IS NULL"),
            [id],
            row,
        )
        .optional()?;
    if found.is_some() {
        conn.execute(
            "UPDATE silences SET removed_ms = ?2,
                 until_ms = max(min(until_ms, ?2), from_ms)
             WHERE id = ?1",
            params![id, ms(now)],
        )?;
    }
    Ok(found)
}

/// The silences in force at `now` or to come, not removed, earliest
/// first; at most `limit`.
pub(crate) fn active(
    conn: &Connection,
    now: SystemTime,
    limit: usize,
) -> Result<Vec<Silence>, StoreError> {
    // A history from before silences (read as it stands) has none.
    let Ok(mut stmt) = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM silences
         WHERE until_ms > ?1 AND removed_ms IS NULL
         ORDER BY from_ms, id LIMIT ?2"
    )) else {
        return Ok(Vec::new());
    };
    let rows = stmt.query_map(params![ms(now), limit as i64], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every silence that covered part of `[since, until]` (removed ones for
/// the stretch they were in force), earliest first; at most `limit`.
pub(crate) fn within(
    conn: &Connection,
    since: SystemTime,
    until: SystemTime,
    limit: usize,
) -> Result<Vec<Silence>, StoreError> {
    // A history from before silences has no such table: none.
    let Ok(mut stmt) = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM silences
         WHERE until_ms > ?1 AND from_ms < ?2 AND until_ms > from_ms
         ORDER BY from_ms, id LIMIT ?3"
    )) else {
        return Ok(Vec::new());
    };
    let rows = stmt.query_map(params![ms(since), ms(until), limit as i64], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Silences in force now or to come.
pub(crate) fn count_active(conn: &Connection, now: SystemTime) -> Result<usize, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM silences WHERE until_ms > ?1 AND removed_ms IS NULL",
        [ms(now)],
        |r| r.get::<_, i64>(0),
    )? as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn silences_are_kept_ended_on_removal_and_windows_recorded_once() {
        let dir = test_support::scratch("store-silences");
        let conn = super::super::open(&dir.join("w.db")).unwrap();
        let now = from_ms(ms(SystemTime::now()));
        let s = |n: u64| now + Duration::from_secs(n);
        let ago = |n: u64| now - Duration::from_secs(n);
        let silence = |matcher: &str, from, until, origin| Silence {
            id: 0,
            matcher: matcher.into(),
            from,
            until,
            reason: "patching".into(),
            author: "ops".into(),
            origin,
            created: now,
        };
        let a = insert(&conn, &silence("web-*", now, s(3600), Origin::Cli)).unwrap();
        let b = insert(&conn, &silence("db", s(600), s(1200), Origin::Api)).unwrap();
        insert(&conn, &silence("old", ago(900), ago(600), Origin::Cli)).unwrap();
        let w = silence("*", ago(60), s(60), Origin::Window("nightly".into()));
        insert_window(&conn, &w).unwrap();
        insert_window(&conn, &w).unwrap();
        let active_now = active(&conn, now, 100).unwrap();
        assert_eq!(active_now.len(), 3, "{active_now:?}");
        assert_eq!(active_now[0].origin, Origin::Window("nightly".into()));
        assert_eq!(count_active(&conn, now).unwrap(), 3);
        // Removing one in force ends it now; one to come covers nothing.
        assert_eq!(remove(&conn, a, s(10)).unwrap().unwrap().matcher, "web-*");
        assert_eq!(remove(&conn, a, s(10)).unwrap(), None, "removed already");
        assert!(remove(&conn, b, s(10)).unwrap().is_some());
        assert_eq!(remove(&conn, 999, now).unwrap(), None);
        assert_eq!(active(&conn, s(10), 100).unwrap().len(), 1);
        let past = within(&conn, ago(1000), s(20), 100).unwrap();
        let spans: Vec<(&str, SystemTime, SystemTime)> = past
            .iter()
            .map(|s| (s.matcher.as_str(), s.from, s.until))
            .collect();
        assert_eq!(
            spans,
            [
                ("old", ago(900), ago(600)),
                ("*", ago(60), s(60)),
                ("web-*", now, s(10))
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_history_from_before_silences_reads_and_takes_them_once_opened() {
        let dir = test_support::scratch("store-schema-1");
        let path = dir.join("w.db");
        {
            // Schema 1, as a watcher before silences left it.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE events (id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL,
                     target TEXT NOT NULL, kind TEXT NOT NULL, addr TEXT NOT NULL,
                     event TEXT NOT NULL, class TEXT, reason TEXT, detail TEXT NOT NULL,
                     rtt_us INTEGER, count INTEGER NOT NULL);
                 CREATE TABLE actions (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL,
                     command TEXT NOT NULL, started_ms INTEGER NOT NULL,
                     duration_ms INTEGER NOT NULL, outcome TEXT NOT NULL, exit_code INTEGER,
                     output TEXT NOT NULL);
                 INSERT INTO events VALUES (1, 1000, 'a', 'tcp', '127.0.0.1:1', 'raise', 'NG',
                     'refused', 'connection refused', NULL, 2);
                 INSERT INTO events VALUES (2, 61000, 'a', 'tcp', '127.0.0.1:1', 'clear', 'OK',
                     NULL, 'connected', NULL, 2);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        // `report` reads it as it stands.
        let conn = super::super::open_read_only(&path).unwrap();
        let mut rows = Vec::new();
        super::super::history_each(&conn, SystemTime::UNIX_EPOCH, None, |r| {
            rows.push(r);
            Ok::<_, StoreError>(())
        })
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[1].alarm_secs, rows[1].down_secs),
            (Some(60.0), Some(60.0))
        );
        assert!(active(&conn, SystemTime::now(), 10).unwrap().is_empty());
        drop(conn);
        // A watcher opening it adds what silences need.
        let conn = super::super::open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2);
        assert!(active(&conn, SystemTime::now(), 10).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
