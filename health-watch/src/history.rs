//! `health-probe report`: the watcher's alarm history (raise, clear,
//! pause, resume, removed, with their actions' outcomes) as an aligned
//! table, CSV or JSON.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use health_probe::cli::{ReportArgs, ReportFormat};

use crate::error::Error;
use crate::store::{self, HistoryRow};

/// Prints the history; an error when the database cannot be read or the
/// history cannot be written out.
pub fn run(args: &ReportArgs) -> Result<(), Error> {
    let rows = read(args).map_err(Error::Report)?;
    let mut out = io::stdout().lock();
    let written = write(&rows, args.format, &mut out);
    match written.and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is not worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Report(e.to_string())),
    }
}

/// `rows` as `--format` asks: what `health-probe report` prints, and what
/// the status page's `/report.csv` and `/report.json` serve.
pub(crate) fn write(
    rows: &[HistoryRow],
    format: ReportFormat,
    out: &mut impl Write,
) -> io::Result<()> {
    match format {
        ReportFormat::Table => table(rows, out),
        ReportFormat::Csv => csv(rows, out),
        ReportFormat::Json => serde_json::to_writer_pretty(&mut *out, rows)
            .map_err(io::Error::from)
            .and_then(|_| writeln!(out)),
    }
}

fn read(args: &ReportArgs) -> Result<Vec<HistoryRow>, String> {
    let path = database_for(args.database.as_deref(), args.config.as_deref())?;
    if !path.exists() {
        return Err(format!(
            "no history database at {} (give --database or --config)",
            path.display()
        ));
    }
    rows(&path, args.since, args.target.as_deref())
}

/// The events of the last `since` (of `target` alone, if given), from the
/// database at `path`, read-only.
pub(crate) fn rows(
    path: &Path,
    since: std::time::Duration,
    target: Option<&str>,
) -> Result<Vec<HistoryRow>, String> {
    let conn = store::open_read_only(path).map_err(|e| e.to_string())?;
    let since = SystemTime::now()
        .checked_sub(since)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    store::history(&conn, since, target).map_err(|e| e.to_string())
}

const CSV_HEADER: [&str; 17] = [
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
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn csv(rows: &[HistoryRow], out: &mut impl Write) -> io::Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    for r in rows {
        w.write_record([
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
        ])?;
    }
    w.flush()
}

fn table(rows: &[HistoryRow], out: &mut impl Write) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "no events in this period");
    }
    let header = [
        "TIME", "TARGET", "EVENT", "CLASS", "LASTED", "ACTION", "DETAIL",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let class = match (&r.class, &r.reason) {
                (Some(c), Some(x)) => format!("{c} {x}"),
                (Some(c), None) => c.clone(),
                _ => String::new(),
            };
            let action = match (&r.action_outcome, r.action_exit_code) {
                (Some(o), Some(c)) if o != "ok" => format!("{o} ({c})"),
                (Some(o), _) => o.clone(),
                (None, _) => String::new(),
            };
            [
                r.time.clone(),
                r.target.clone(),
                r.event.clone(),
                class,
                r.alarm_secs
                    .map(|s| {
                        humantime::format_duration(std::time::Duration::from_secs(s as u64))
                            .to_string()
                    })
                    .unwrap_or_default(),
                action,
                r.detail.clone(),
            ]
        })
        .collect();
    let columns = header.map(health_probe::table::Column::left);
    let rows: Vec<Vec<String>> = cells.into_iter().map(Vec::from).collect();
    health_probe::table::write(out, &columns, &rows)
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
