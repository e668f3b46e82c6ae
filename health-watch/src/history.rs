//! `health-probe report`: the watcher's alarm history (raise, clear,
//! pause, resume, removed, with their actions' outcomes) as an aligned
//! table, CSV or JSON.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

use health_probe::cli::{ReportArgs, ReportFormat};

use crate::error::Error;
use crate::store::{self, HistoryRow};

/// Prints the history; an error when the database cannot be read or the
/// history cannot be written out.
pub fn run(args: &ReportArgs) -> Result<(), Error> {
    let conn = open(args).map_err(Error::Report)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = write(
        &conn,
        args.since,
        args.target.as_deref(),
        args.format,
        &mut out,
    );
    match written.and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is not worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Report(e.to_string())),
    }
}

/// The events of the last `since` (of `target` alone, if given) in
/// `conn`, as `--format` asks, written as they are read: what `health-probe
/// report` prints, and what the status page's `/report.csv` and
/// `/report.json` serve. Memory does not grow with the history: CSV and
/// JSON are written row by row, and the aligned table reads the rows
/// twice, once for its columns' widths and once to write them, from one
/// snapshot of the database.
pub(crate) fn write(
    conn: &Connection,
    since: Duration,
    target: Option<&str>,
    format: ReportFormat,
    out: &mut impl Write,
) -> io::Result<()> {
    let since = ago(since);
    let each = |f: &mut dyn FnMut(HistoryRow) -> io::Result<()>| {
        store::history_each(conn, since, target, f)
    };
    match format {
        ReportFormat::Csv => {
            let mut w = ::csv::Writer::from_writer(out);
            w.write_record(CSV_HEADER)?;
            each(&mut |r| Ok(w.write_record(csv_record(&r))?))?;
            w.flush()
        }
        ReportFormat::Json => {
            // The same text as serde_json's pretty array of every row, one
            // row at a time: each row's own pretty text, indented a level
            // (no string in it holds a raw newline: JSON escapes them).
            let mut first = true;
            each(&mut |r| {
                out.write_all(if first { b"[\n" } else { b",\n" })?;
                first = false;
                let text = serde_json::to_string_pretty(&r).map_err(io::Error::from)?;
                for (i, line) in text.lines().enumerate() {
                    if i > 0 {
                        out.write_all(b"\n")?;
                    }
                    write!(out, "  {line}")?;
                }
                Ok(())
            })?;
            out.write_all(if first { b"[]\n" } else { b"\n]\n" })
        }
        ReportFormat::Table => {
            // One read transaction: both passes see the same rows, however
            // many the watcher records meanwhile.
            conn.execute_batch("BEGIN").map_err(io::Error::other)?;
            let columns = TABLE_HEADER.map(health_probe::table::Column::left);
            let mut layout = health_probe::table::Layout::new(&columns);
            let mut any = false;
            each(&mut |r| {
                any = true;
                layout.measure(&table_cells(&r));
                Ok(())
            })?;
            if any {
                layout.header(out)?;
                each(&mut |r| layout.row(out, &table_cells(&r)))?;
            } else {
                writeln!(out, "no events in this period")?;
            }
            conn.execute_batch("COMMIT").map_err(io::Error::other)
        }
    }
}

/// The moment `d` ago (the epoch at the latest).
fn ago(d: Duration) -> SystemTime {
    SystemTime::now()
        .checked_sub(d)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The database `args` name, opened read-only.
fn open(args: &ReportArgs) -> Result<Connection, String> {
    let path = database_for(args.database.as_deref(), args.config.as_deref())?;
    if !path.exists() {
        return Err(format!(
            "no history database at {} (give --database or --config)",
            path.display()
        ));
    }
    store::open_read_only(&path).map_err(|e| e.to_string())
}

/// For the pages: how many events the last `since` holds (of `target`
/// alone, if given), from the database at `path`, read-only, and the last
/// `keep` of them, oldest first, each detail cut at `detail` bytes (with
/// `…`). Memory is bounded by `keep`, however long the history.
pub(crate) fn last_rows(
    path: &Path,
    since: Duration,
    target: Option<&str>,
    keep: usize,
    detail: usize,
) -> Result<(usize, Vec<HistoryRow>), String> {
    let conn = store::open_read_only(path).map_err(|e| e.to_string())?;
    let since = ago(since);
    let (mut count, mut last) = (0, std::collections::VecDeque::new());
    store::history_each(&conn, since, target, |mut r| {
        count += 1;
        if r.detail.len() > detail {
            r.detail = format!("{}…", health_probe::text::cut(&r.detail, detail));
        }
        if last.len() == keep {
            last.pop_front();
        }
        last.push_back(r);
        Ok::<_, store::StoreError>(())
    })
    .map_err(|e| e.to_string())?;
    Ok((count, last.into()))
}
const CSV_HEADER: [&str; 20] = [
    "id",
    "time",
    "target",
    "kind",
    "addr",
    "event",
    "class",
    "reason",
    "detail",
    "rtt_ms",
    "count",
    "alarm_secs",
    "action_command",
    "action_outcome",
    "action_exit_code",
    "action_ms",
    "time_unix_ms",
    "silence",
    "down_secs",
    "path_secs",
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn csv_record(r: &HistoryRow) -> [String; 20] {
    [
        r.id.to_string(),
        r.time.clone(),
        r.target.clone(),
        r.kind.clone(),
        r.addr.clone(),
        r.event.clone(),
        opt(&r.class),
        opt(&r.reason),
        r.detail.clone(),
        opt(&r.rtt_ms),
        r.count.to_string(),
        opt(&r.alarm_secs),
        opt(&r.action_command),
        opt(&r.action_outcome),
        opt(&r.action_exit_code),
        opt(&r.action_ms),
        r.time_ms.to_string(),
        opt(&r.silence),
        opt(&r.down_secs),
        opt(&r.path_secs),
    ]
}

const TABLE_HEADER: [&str; 7] = [
    "TIME", "TARGET", "EVENT", "CLASS", "LASTED", "ACTION", "DETAIL",
];

fn table_cells(r: &HistoryRow) -> [String; 7] {
    let class = match (&r.class, &r.reason) {
        (Some(c), Some(x)) => format!("{c} {x}"),
        (Some(c), None) => c.clone(),
        _ => String::new(),
    };
    let action = match (&r.action_outcome, r.action_exit_code, r.silence) {
        (Some(o), Some(c), _) if o != "ok" => format!("{o} ({c})"),
        (Some(o), _, _) => o.clone(),
        (None, _, Some(id)) => format!("silenced ({id})"),
        (None, _, None) => String::new(),
    };
    let span = |s: f64| humantime::format_duration(Duration::from_secs(s as u64)).to_string();
    // An alarm partly under maintenance: how much of it was down.
    let lasted = match (r.alarm_secs, r.down_secs) {
        (Some(a), Some(d)) if (a - d) >= 1.0 => format!("{} ({} down)", span(a), span(d)),
        (Some(a), _) => span(a),
        // A path fault is no down time: it says how long it lasted alone.
        (None, _) => r.path_secs.map(span).unwrap_or_default(),
    };
    [
        r.time.clone(),
        r.target.clone(),
        r.event.clone(),
        class,
        lasted,
        action,
        r.detail.clone(),
    ]
}

/// The database a `health-probe report` reads: `--database`, or the one
/// `--config` names, or the default.
pub(crate) fn database_for(
    database: Option<&Path>,
    config: Option<&Path>,
) -> Result<PathBuf, String> {
    match (database, config) {
        (Some(d), _) => Ok(d.to_path_buf()),
        (None, Some(c)) => crate::config::load(c)
            .map(|c| c.database)
            .map_err(|e| e.to_string().replace('\n', "; ")),
        (None, None) => Ok(PathBuf::from(crate::config::DEFAULT_DATABASE)),
    }
}
