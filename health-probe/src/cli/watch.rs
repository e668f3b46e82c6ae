//! `health-probe watch` and `health-probe report`: their flags (run by the
//! `health-probe-watch` binary).

use std::time::Duration;

use super::{parse_span, parse_timeout};

/// Watch many targets (landmark, tcp and ping checks) in one process,
/// raising and clearing alarms with fall/rise thresholds, recording them in
/// SQLite and running actions on them.
///
/// CONFIG is a TOML file (keys in docs/WATCH.md), validated at start with
/// line-numbered errors. SIGHUP reloads it: unchanged targets keep their
/// state, paused targets resume. SIGTERM or SIGINT stops the watcher.
///
/// Output: a live table when stdout is a terminal, one log line per event
/// otherwise, one JSON object per event with --json.
///
/// Exit codes: 0 stopped by SIGTERM/SIGINT (or --check-config found the
/// config valid); 1 the config or the database is not usable.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The TOML config: targets, thresholds, actions, database.
    #[arg(value_name = "CONFIG")]
    pub config: std::path::PathBuf,

    /// Validate CONFIG and that its database can be written (making
    /// nothing), print a summary and any warnings, and exit: 0 valid, 1
    /// not (for systemd's ExecStartPre and before a reload).
    #[arg(long)]
    pub check_config: bool,

    /// One JSON object per line on stdout for every event (raise, clear,
    /// pause, resume, removed, action, reload, stats), for other tools.
    #[arg(long)]
    pub json: bool,

    /// Plain log lines even when stdout is a terminal.
    #[arg(long, conflicts_with = "json")]
    pub plain: bool,

    /// Also report every check's result, not only events.
    #[arg(long)]
    pub log_checks: bool,

    /// Report counters every DUR: checks, failures, checks in flight,
    /// worst lag behind schedule, alarms, paused targets.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub stats: Option<Duration>,
}

/// Export the watcher's alarm history: raise, clear, pause, resume and
/// removed events with their class, detail, how long each alarm lasted and
/// what its action did.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The history database [default: /var/lib/health-probe/watch.db].
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub database: Option<std::path::PathBuf>,

    /// Use the database this watch config names.
    #[arg(long, value_name = "CONFIG")]
    pub config: Option<std::path::PathBuf>,

    /// Events from this long ago until now, like 10d, 12h, 30m.
    #[arg(long, value_name = "DUR", default_value = "10d", value_parser = parse_span)]
    pub since: Duration,

    /// Only this target's events.
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,

    /// How to write the events.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
}

/// `health-probe report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned columns.
    Table,
    /// RFC 4180 with a header row.
    Csv,
    /// An array of objects.
    Json,
}
