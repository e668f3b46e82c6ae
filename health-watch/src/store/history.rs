//! The history as `health-probe report` and the pages read it: events
//! with their actions' outcomes, and for each clear how long its alarm
//! lasted and how much of that was down (not maintenance).

use std::time::SystemTime;

use rusqlite::{params, Connection};

use super::{from_ms, ms, silences, StoreError};
use crate::event::UNREACHABLE;
use crate::silence::{self, Matcher};

/// Most silences read to tell maintenance from downtime.
const MAX_SILENCES: usize = 100_000;

/// A row of `health-probe report`.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct HistoryRow {
    pub id: i64,
    pub time: String,
    #[serde(skip)]
    pub time_ms: i64,
    pub target: String,
    pub kind: String,
    pub addr: String,
    pub event: String,
    pub class: Option<String>,
    pub reason: Option<String>,
    pub detail: String,
    pub rtt_ms: Option<f64>,
    pub count: u32,
    /// For a clear: how long the alarm it clears lasted.
    pub alarm_secs: Option<f64>,
    pub action_command: Option<String>,
    pub action_outcome: Option<String>,
    pub action_exit_code: Option<i32>,
    pub action_ms: Option<i64>,
    /// The silence that held this raise (or the clear of a held raise):
    /// no action ran, no alert was sent.
    pub silence: Option<i64>,
    /// For a clear: how much of its alarm was down, that is not under a
    /// silence or maintenance window.
    pub down_secs: Option<f64>,
    /// For a `path-cleared`: how long the path fault lasted (never down
    /// time: the server answered other vantage points).
    pub path_secs: Option<f64>,
}

/// History for `health-probe report` and the pages: events since `since`,
/// oldest first, optionally of one target, each with its action's outcome,
/// handed to `each` as it is read, none kept: memory does not grow with the
/// history. Stops at the first error `each` returns.
pub(crate) fn history_each<E: From<StoreError>>(
    conn: &Connection,
    since: SystemTime,
    target: Option<&str>,
    mut each: impl FnMut(HistoryRow) -> Result<(), E>,
) -> Result<(), E> {
    // A history from before silences (schema 1, read as it stands) has no
    // `silence_id`.
    let silence_id = if has_silence_id(conn).map_err(StoreError::from)? {
        "e.silence_id"
    } else {
        "NULL"
    };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT e.id, e.time_ms, e.target, e.kind, e.addr, e.event, e.class, e.reason,
                e.detail, e.rtt_us, e.count,
                CASE WHEN e.event = 'clear' THEN
                    (SELECT r.time_ms FROM events r
                     WHERE r.target = e.target AND r.event IN ('raise', 'carried') AND r.id < e.id
                     ORDER BY r.id DESC LIMIT 1)
                END,
                a.command, a.outcome, a.exit_code, a.duration_ms, {silence_id},
                CASE WHEN e.event = 'clear' THEN
                    (SELECT CASE WHEN r.class = ?3 THEN
                                (SELECT x.time_ms FROM events x
                                 WHERE x.target = e.target AND x.event = 'released'
                                   AND x.id > r.id AND x.id < e.id
                                 ORDER BY x.id LIMIT 1)
                            ELSE r.time_ms END
                     FROM events r
                     WHERE r.target = e.target AND r.event IN ('raise', 'carried') AND r.id < e.id
                     ORDER BY r.id DESC LIMIT 1)
                END,
                CASE WHEN e.event = 'path-cleared' THEN
                    (SELECT r.time_ms FROM events r
                     WHERE r.target = e.target AND r.event = 'path' AND r.id < e.id
                     ORDER BY r.id DESC LIMIT 1)
                END
         FROM events e
         LEFT JOIN actions a ON a.id = (SELECT max(id) FROM actions WHERE event_id = e.id)
         WHERE e.time_ms >= ?1 AND (?2 IS NULL OR e.target = ?2)
         ORDER BY e.time_ms, e.id"
        ))
        .map_err(StoreError::from)?;
    let maintenance = Maintenance::read(conn)?;
    let mut rows = stmt
        .query(params![ms(since), target, UNREACHABLE])
        .map_err(StoreError::from)?;
    while let Some(r) = rows.next().map_err(StoreError::from)? {
        let mut row = history_row(r).map_err(StoreError::from)?;
        // Down from the raise, or for an alarm raised `unreachable`, from
        // its release (never, if it cleared held); less maintenance.
        let down_from: Option<i64> = r.get(17).map_err(StoreError::from)?;
        if row.alarm_secs.is_some() {
            let end = from_ms(row.time_ms);
            row.down_secs = Some(match down_from {
                Some(start) => {
                    let start = from_ms(start).min(end);
                    let span = end.duration_since(start).unwrap_or_default();
                    let kept = maintenance.of(&row.target, (start, end));
                    span.saturating_sub(kept).as_secs_f64()
                }
                None => 0.0,
            });
        }
        each(row)?;
    }
    Ok(())
}

/// Whether the events have a `silence_id` (schema 2 and later).
fn has_silence_id(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'silence_id'")?
        .exists([])
}

/// Every silence's stretch, by matcher: what of an alarm was maintenance.
struct Maintenance(Vec<(Matcher, Vec<(SystemTime, SystemTime)>)>);

impl Maintenance {
    fn read(conn: &Connection) -> Result<Maintenance, StoreError> {
        let all = silences::within(
            conn,
            SystemTime::UNIX_EPOCH,
            SystemTime::now(),
            MAX_SILENCES,
        )?;
        let mut by_matcher: std::collections::BTreeMap<String, Vec<(SystemTime, SystemTime)>> =
            Default::default();
        for s in all {
            by_matcher
                .entry(s.matcher)
                .or_default()
                .push((s.from, s.until));
        }
        Ok(Maintenance(
            by_matcher
                .into_iter()
                .map(|(m, spans)| (Matcher::new(&m), spans))
                .collect(),
        ))
    }

    /// How much of `span` silences covered for `target`.
    fn of(&self, target: &str, span: (SystemTime, SystemTime)) -> std::time::Duration {
        let mut spans: Vec<(SystemTime, SystemTime)> = self
            .0
            .iter()
            .filter(|(m, _)| m.matches(target))
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        silence::overlap(span, &silence::merge(&mut spans))
    }
}

fn history_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryRow> {
    {
        let time_ms: i64 = r.get(1)?;
        let raised_ms: Option<i64> = r.get(11)?;
        let path_ms: Option<i64> = r.get(18)?;
        Ok(HistoryRow {
            id: r.get(0)?,
            time: humantime::format_rfc3339_millis(from_ms(time_ms)).to_string(),
            time_ms,
            target: r.get(2)?,
            kind: r.get(3)?,
            addr: r.get(4)?,
            event: r.get(5)?,
            class: r.get(6)?,
            reason: r.get(7)?,
            detail: r.get(8)?,
            rtt_ms: r.get::<_, Option<i64>>(9)?.map(|us| us as f64 / 1000.0),
            count: r.get(10)?,
            alarm_secs: raised_ms.map(|t| (time_ms - t) as f64 / 1000.0),
            action_command: r.get(12)?,
            action_outcome: r.get(13)?,
            action_exit_code: r.get(14)?,
            action_ms: r.get(15)?,
            silence: r.get(16)?,
            down_secs: None,
            path_secs: path_ms.map(|t| (time_ms - t) as f64 / 1000.0),
        })
    }
}
