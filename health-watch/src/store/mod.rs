//! Alarm history in an embedded SQLite database (rusqlite, bundled
//! SQLite): every raise, clear, pause, resume and removal, and the outcome
//! of every action, so history survives restarts and `health-probe report`
//! can export it.
//!
//! The watcher writes from one thread of its own ([`Store::spawn`]), in
//! batches, so no check ever waits on the disk. The database is in WAL
//! mode: `health-probe report` reads while the watcher writes.

use crate::event::{ActionOutcome, Event, Hold, UNREACHABLE};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

mod alarm_time;
mod history;
pub(crate) mod silences;
mod writer;

pub(crate) use alarm_time::{alarm_intervals, insert_observed, observed, uptime};
pub(crate) use history::{history_each, HistoryRow};
pub(crate) use writer::{Found, Health, Store, MAX_BACKLOG};

/// Schema version in `PRAGMA user_version`: 2 added silences
/// (`silences.rs`).
const SCHEMA_VERSION: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database {path}: cannot create its folder: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("database {path} has schema version {found}, newer than this health-probe knows ({SCHEMA_VERSION})")]
    Newer { path: String, found: i64 },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{path} is not a watcher's history (no schema in it)")]
    NotHistory { path: String },
    #[error("database {path} is in use by another watcher ({holder}): stop it, or give this watcher a database of its own")]
    Locked { path: String, holder: String },
    #[error("database {path}: cannot lock {lock}: {source}")]
    Lock {
        path: String,
        lock: String,
        source: std::io::Error,
    },
}

/// One alarm event, as recorded.
#[derive(Debug, Clone)]
pub(crate) struct EventRecord {
    pub time: SystemTime,
    pub target: String,
    pub kind: &'static str,
    pub addr: String,
    pub event: Event,
    pub class: Option<&'static str>,
    pub reason: Option<&'static str>,
    pub detail: String,
    pub rtt: Option<Duration>,
    /// What lies behind the event, in a row: failures (raise), successes
    /// (clear) or ERR outcomes (pause).
    pub count: u32,
    /// The silence that held it: a raise while silenced, or the clear of
    /// such a raise.
    pub silence: Option<i64>,
    /// Held: a raise a silence or a raised parent holds, or the clear of
    /// such a raise. No action, no alert (not recorded: the class and
    /// `silence` say why).
    pub held: bool,
    /// A `remind` that Alertmanager is told of too (`remind_alertmanager`;
    /// not recorded).
    pub remind_alert: bool,
}

/// How an action ended.
#[derive(Debug, Clone)]
pub(crate) struct ActionRecord {
    pub event_id: i64,
    pub command: String,
    pub started: SystemTime,
    pub duration: Duration,
    pub outcome: ActionOutcome,
    pub exit_code: Option<i32>,
    pub output: String,
}

pub(crate) fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// `t` to the millisecond, as the database keeps it.
pub(crate) fn round_ms(t: SystemTime) -> SystemTime {
    from_ms(ms(t))
}

/// Creates the folder `path` is in, if missing.
fn folder(path: &Path) -> Result<(), StoreError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
            path: path.display().to_string(),
            source,
        }),
        None => Ok(()),
    }
}

/// The one watcher a database may have: an exclusive `flock` on
/// `DATABASE.lock` beside it, which holds the watcher's pid. The kernel
/// lets go of it when the process ends, however it ends; actions do not
/// inherit it (the file is close-on-exec).
#[derive(Debug)]
pub(crate) struct Lock {
    _file: std::fs::File,
}

/// Takes the lock of `database`, or says which process holds it.
pub(crate) fn lock(database: &Path) -> Result<Lock, StoreError> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    folder(database)?;
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = std::path::PathBuf::from(name);
    let failed = |source| StoreError::Lock {
        path: database.display().to_string(),
        lock: lock_path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(failed)?;
    // std's File::try_lock needs a newer Rust than this workspace promises;
    // flock(2) is one call.
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(failed(err));
        }
        let mut text = String::new();
        let _ = file.take(32).read_to_string(&mut text);
        let holder = match text.trim().parse::<u32>() {
            Ok(pid) => format!("pid {pid}"),
            Err(_) => "pid unknown".to_string(),
        };
        return Err(StoreError::Locked {
            path: database.display().to_string(),
            holder,
        });
    }
    file.set_len(0).map_err(failed)?;
    file.rewind().map_err(failed)?;
    writeln!(file, "{}", std::process::id()).map_err(failed)?;
    Ok(Lock { _file: file })
}

/// Opens (creating if needed) the database at `path`.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let shown = path.display().to_string();
    folder(path)?;
    let open_err = |source| StoreError::Open {
        path: shown.clone(),
        source,
    };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    schema_version(&conn, &shown)?;
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS events (
             id INTEGER PRIMARY KEY,
             time_ms INTEGER NOT NULL,
             target TEXT NOT NULL,
             kind TEXT NOT NULL,
             addr TEXT NOT NULL,
             event TEXT NOT NULL,
             class TEXT,
             reason TEXT,
             detail TEXT NOT NULL,
             rtt_us INTEGER,
             count INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS events_by_time ON events(time_ms);
         CREATE INDEX IF NOT EXISTS events_by_target ON events(target, id);
         CREATE TABLE IF NOT EXISTS actions (
             id INTEGER PRIMARY KEY,
             event_id INTEGER NOT NULL REFERENCES events(id),
             command TEXT NOT NULL,
             started_ms INTEGER NOT NULL,
             duration_ms INTEGER NOT NULL,
             outcome TEXT NOT NULL,
             exit_code INTEGER,
             output TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS actions_by_event ON actions(event_id);
         CREATE TABLE IF NOT EXISTS observed (
             target TEXT PRIMARY KEY,
             first_check_ms INTEGER NOT NULL,
             first_ok_ms INTEGER
         );
         CREATE TABLE IF NOT EXISTS watcher (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             pid INTEGER NOT NULL,
             seen_ms INTEGER NOT NULL
         );
         COMMIT;",
    )
    .map_err(open_err)?;
    silences::migrate(&conn).map_err(open_err)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(open_err)?;
    Ok(conn)
}

/// Opens the database at `path` for reading only, as `health-probe report`
/// does: an operator who may read the history but not write it (nor its
/// folder) can report, while the watcher runs or not.
///
/// While the watcher runs, SQLite reads the WAL through the `-shm` file the
/// watcher keeps (readable is enough). With no watcher, there may be no
/// `-shm` and no right to create one: then the file is read as immutable,
/// which is exact since no writer holds it (no `-wal` left behind).
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    use rusqlite::OpenFlags;
    let shown = path.display().to_string();
    let open_err = |source| StoreError::Open {
        path: shown.clone(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let first = Connection::open_with_flags(path, flags).and_then(|c| {
        c.busy_timeout(Duration::from_secs(5))?;
        // Reading the schema is what touches the WAL index.
        c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?;
        Ok(c)
    });
    let conn = match first {
        Ok(c) => c,
        Err(e) if wal_index_missing(path) => {
            let _ = e;
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(uri, flags).map_err(open_err)?
        }
        Err(e) => return Err(open_err(e)),
    };
    if schema_version(&conn, &shown)? == 0 {
        return Err(StoreError::NotHistory { path: shown });
    }
    Ok(conn)
}

/// The schema version in `PRAGMA user_version` (0: none yet); one newer
/// than this health-probe knows is an error.
fn schema_version(conn: &Connection, shown: &str) -> Result<i64, StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| StoreError::Open {
            path: shown.to_string(),
            source,
        })?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Newer {
            path: shown.to_string(),
            found: version,
        });
    }
    Ok(version)
}

/// No watcher's files beside the database: no `-wal`, no `-shm`.
fn wal_index_missing(path: &Path) -> bool {
    let beside = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name).exists()
    };
    !beside("-wal") && !beside("-shm")
}

/// `path` for a `file:` URI: `%`, `?` and `#` escaped.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// What the watcher needs from history when it starts.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    /// Targets whose latest alarm event is a raise: still in alarm.
    pub open_alarms: HashMap<String, OpenAlarm>,
    /// Alarms ever raised, per target.
    pub raised: HashMap<String, u64>,
    /// Targets that were flapping when the watcher stopped.
    pub flapping: std::collections::HashSet<String>,
}

/// An alarm open when the watcher stopped: the raise (or `carried`)
/// event that opened it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpenAlarm {
    pub since: SystemTime,
    pub class: Option<String>,
    pub reason: Option<String>,
    pub detail: String,
    /// What held its raise, if no `released` followed: its action and
    /// alert are still due.
    pub held: Option<crate::event::Hold>,
}

pub(crate) fn restore(conn: &Connection) -> Result<Restored, StoreError> {
    let mut out = Restored::default();
    let mut stmt = conn.prepare(
        "SELECT e.target, e.event, e.time_ms, e.class, e.reason, e.detail,
                CASE WHEN NOT EXISTS (SELECT 1 FROM events r
                                      WHERE r.target = e.target AND r.event = 'released'
                                        AND r.id > e.id)
                     THEN coalesce(e.silence_id, CASE WHEN e.class = ?1 THEN 0 END) END
         FROM events e WHERE e.id IN (
             SELECT max(id) FROM events WHERE event IN ('raise', 'carried', 'clear', 'removed')
             GROUP BY target)",
    )?;
    let rows = stmt.query_map([UNREACHABLE], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            OpenAlarm {
                since: from_ms(r.get::<_, i64>(2)?),
                class: r.get(3)?,
                reason: r.get(4)?,
                detail: r.get(5)?,
                // 0: no silence, but held as unreachable (a raised parent).
                held: match r.get::<_, Option<i64>>(6)? {
                    Some(0) => Some(Hold::Unreachable),
                    Some(id) => Some(Hold::Silence(id)),
                    None => None,
                },
            },
        ))
    })?;
    for row in rows {
        let (target, event, open) = row?;
        if Event::word_opens_alarm(&event) {
            out.open_alarms.insert(target, open);
        }
    }
    let mut stmt = conn.prepare(
        "SELECT target FROM events WHERE event = 'flapping' AND id IN (
             SELECT max(id) FROM events
             WHERE event IN ('flapping', 'flapping-stopped', 'removed')
             GROUP BY target)",
    )?;
    for target in stmt.query_map([], |r| r.get::<_, String>(0))? {
        out.flapping.insert(target?);
    }
    let mut stmt =
        conn.prepare("SELECT target, count(*) FROM events WHERE event = 'raise' GROUP BY target")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (target, n) = row?;
        out.raised.insert(target, n.max(0) as u64);
    }
    Ok(out)
}

/// Deletes history older than `before` (events, their actions, silences
/// ended by then); returns the events deleted.
pub(crate) fn prune(conn: &Connection, before: SystemTime) -> Result<usize, StoreError> {
    let cut = ms(before);
    conn.execute(
        "DELETE FROM actions WHERE event_id IN (SELECT id FROM events WHERE time_ms < ?1)",
        [cut],
    )?;
    conn.execute("DELETE FROM silences WHERE until_ms < ?1", [cut])?;
    Ok(conn.execute("DELETE FROM events WHERE time_ms < ?1", [cut])?)
}

pub(crate) fn insert_event(conn: &Connection, e: &EventRecord) -> Result<i64, rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO events (time_ms, target, kind, addr, event, class, reason, detail, rtt_us, count,
                             silence_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        ms(e.time),
        e.target,
        e.kind,
        e.addr,
        e.event.as_str(),
        e.class,
        e.reason,
        e.detail,
        e.rtt.map(|d| d.as_micros() as i64),
        e.count,
        e.silence,
    ])?;
    Ok(conn.last_insert_rowid())
}

pub(crate) fn insert_action(conn: &Connection, a: &ActionRecord) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO actions (event_id, command, started_ms, duration_ms, outcome, exit_code, output)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        a.event_id,
        a.command,
        ms(a.started),
        a.duration.as_millis() as i64,
        a.outcome.as_str(),
        a.exit_code,
        a.output,
    ])?;
    Ok(())
}

/// For writers that read the history as they write (`history::write`).
impl From<StoreError> for std::io::Error {
    fn from(e: StoreError) -> std::io::Error {
        std::io::Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event [`history_each`] gives, collected.
    fn history(
        conn: &Connection,
        since: SystemTime,
        target: Option<&str>,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let mut rows = Vec::new();
        history_each(conn, since, target, |r| {
            rows.push(r);
            Ok::<_, StoreError>(())
        })?;
        Ok(rows)
    }
    use rusqlite::OptionalExtension;

    fn last_event(conn: &Connection, target: &str) -> Result<Option<String>, StoreError> {
        Ok(conn
            .query_row(
                "SELECT event FROM events WHERE target = ?1 ORDER BY id DESC LIMIT 1",
                [target],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn event(target: &str, event: Event, at_ms: i64) -> EventRecord {
        EventRecord {
            time: from_ms(at_ms),
            target: target.into(),
            kind: "tcp",
            addr: "127.0.0.1:1".into(),
            event,
            class: Some("NG"),
            reason: Some("refused"),
            detail: "connection refused".into(),
            rtt: Some(Duration::from_micros(1500)),
            count: 2,
            silence: None,
            held: false,
            remind_alert: false,
        }
    }

    #[test]
    fn open_alarms_and_history_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("hp-store-{}", std::process::id()));
        let path = dir.join("sub/watch.db");
        let _ = std::fs::remove_dir_all(&dir);
        {
            let conn = open(&path).unwrap();
            let a = insert_event(&conn, &event("a", Event::Raise, 1_000)).unwrap();
            insert_event(&conn, &event("b", Event::Raise, 2_000)).unwrap();
            insert_event(&conn, &event("a", Event::Clear, 61_000)).unwrap();
            insert_event(&conn, &event("c", Event::Raise, 3_000)).unwrap();
            insert_event(&conn, &event("c", Event::Removed, 4_000)).unwrap();
            insert_event(&conn, &event("d", Event::Flapping, 5_000)).unwrap();
            insert_event(&conn, &event("e", Event::Flapping, 5_000)).unwrap();
            insert_event(&conn, &event("e", Event::FlappingStopped, 6_000)).unwrap();
            insert_action(
                &conn,
                &ActionRecord {
                    event_id: a,
                    command: "true".into(),
                    started: from_ms(1_000),
                    duration: Duration::from_millis(7),
                    outcome: ActionOutcome::Ok,
                    exit_code: Some(0),
                    output: String::new(),
                },
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let r = restore(&conn).unwrap();
        assert_eq!(r.open_alarms.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(r.open_alarms["b"].since, from_ms(2_000));
        assert_eq!(r.raised["a"], 1);
        assert_eq!(r.flapping.iter().collect::<Vec<_>>(), ["d"]);
        let h = history(&conn, from_ms(0), Some("a")).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].action_outcome.as_deref(), Some("ok"));
        assert_eq!(h[1].alarm_secs, Some(60.0));
        assert_eq!(h[0].rtt_ms, Some(1.5));
        assert_eq!(history(&conn, from_ms(2_500), None).unwrap().len(), 6);
        assert_eq!(prune(&conn, from_ms(2_500)).unwrap(), 2);
        assert_eq!(history(&conn, from_ms(0), None).unwrap().len(), 6);
        assert_eq!(last_event(&conn, "c").unwrap().as_deref(), Some("removed"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
