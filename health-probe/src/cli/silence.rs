//! `health-probe silence add|list|remove`: the watcher's silences, kept in
//! its history database (run by the `health-probe-watch` binary).

use std::path::PathBuf;
use std::time::Duration;

use super::parse_span;

/// Silence the watcher's alarms for some targets for a while.
///
/// While a silence covers a target it is still checked and shown, but a
/// raise runs no on_raise action and sends no alert, and the time counts
/// as maintenance, not downtime, in the report and the uptime figures. A
/// raise still open when the silence ends fires then (event `released`).
///
/// Silences are kept in the watcher's history database: the running
/// watcher takes one up within a second, and they survive restarts. Run
/// this as a user who may write that database (the watcher's), or use the
/// watcher's HTTP API (`/api/v1/silences`, docs/WATCH.md).
///
/// Exit codes: 0 done; 1 bad arguments, the database cannot be used, or
/// no such silence.
#[derive(Debug, clap::Args)]
pub struct SilenceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SilenceCommand,

    /// The history database [default: /var/lib/health-probe/watch.db].
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "config")]
    pub database: Option<PathBuf>,

    /// Use the database this watch config names.
    #[arg(long, value_name = "CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

/// `health-probe silence` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SilenceCommand {
    /// Silence a target, or every target a pattern matches (`*` any
    /// characters, `?` one), from now for --for, or over --from..--until
    /// (a past stretch too: it corrects the report and uptime afterwards).
    Add(SilenceAdd),
    /// List the silences in force and to come (with --all, also those
    /// ended within --since).
    List(SilenceList),
    /// End a silence now (it stays in the history for the stretch it
    /// covered).
    Remove(SilenceRemove),
}

/// `health-probe silence add`.
#[derive(Debug, clap::Args)]
pub struct SilenceAdd {
    /// A target's name, or a pattern with `*` and `?` (quote it).
    #[arg(value_name = "TARGET|PATTERN")]
    pub matcher: String,

    /// How long, from --from (or now), like 30m, 2h, 1d.
    #[arg(long = "for", value_name = "DUR", value_parser = parse_span, conflicts_with = "until")]
    pub duration: Option<Duration>,

    /// Where it begins: RFC 3339 (2026-12-04T10:00:00Z, or with an offset
    /// like +01:00), or `YYYY-MM-DD HH:MM[:SS]` in local time [default: now].
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,

    /// Where it ends, written as --from.
    #[arg(long, value_name = "TIME", required_unless_present = "duration")]
    pub until: Option<String>,

    /// Why, for whoever reads the page, the report or the list (required).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,

    /// Who asks [default: $SUDO_USER or $USER].
    #[arg(long, value_name = "NAME")]
    pub author: Option<String>,
}

/// `health-probe silence list`.
#[derive(Debug, clap::Args)]
pub struct SilenceList {
    /// Also the silences that ended (or were removed) within --since.
    #[arg(long)]
    pub all: bool,

    /// With --all: how far back, like 10d, 12h.
    #[arg(long, value_name = "DUR", default_value = "10d", value_parser = parse_span)]
    pub since: Duration,

    /// One JSON array, the API's form, instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `health-probe silence remove`.
#[derive(Debug, clap::Args)]
pub struct SilenceRemove {
    /// The silence's id, as `add` and `list` show it.
    #[arg(value_name = "ID")]
    pub id: i64,
}
