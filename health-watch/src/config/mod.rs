//! The watcher's TOML configuration: parsed with serde, then validated as a
//! whole, every error carrying the line and column it is about.
//!
//! ```toml
//! database = "/var/lib/health-probe/watch.db"
//! max_in_flight = 256
//! keep_history = "400d"
//!
//! [defaults]              # every target inherits these
//! interval = "10s"
//! timeout = "1s"
//! fall = 2
//! rise = 2
//!
//! [[target]]
//! name = "epg-1"
//! kind = "landmark"       # landmark | tcp | ping | tls
//! addr = "10.0.0.5:9100"
//! on_raise = "systemctl restart epg"
//! ```
//!
//! The full key reference is in `docs/WATCH.md`.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub(crate) use health_probe::check::{Check, Kind};

mod alerting;
mod depends;
mod document;
mod http;
mod kinds;
mod maintenance;
mod module;
mod remind;
mod stream;
mod validate;
mod vantage;

#[cfg(test)]
pub(crate) use alerting::alertmanager_url;
pub(crate) use alerting::{Alerting, AlertmanagerUrl};
pub(crate) use http::Access;
pub(crate) use module::{Module, BUILT_IN as BUILT_IN_MODULES};
pub(crate) use remind::Reminders;

/// Where history is kept when the config does not say.
pub(crate) const DEFAULT_DATABASE: &str = "/var/lib/health-probe/watch.db";

/// Most targets one watcher runs; each costs a task and a status row.
pub(crate) const MAX_TARGETS: usize = 100_000;

/// Whether the watcher can write its history at `database`: the file if
/// it exists, else the folder it would be made in (or the nearest folder
/// above that exists, where the missing ones would be made). For
/// `--check-config`, which otherwise touches nothing: a file made and
/// removed at once in that folder is the only sure test (permissions,
/// ACLs, read-only mounts alike).
pub(crate) fn writable(database: &Path) -> Result<(), String> {
    let shown = database.display();
    if database.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(database)
            .map(drop)
            .map_err(|e| format!("database {shown} cannot be written: {e}"));
    }
    let mut folder = database.parent().filter(|p| !p.as_os_str().is_empty());
    while let Some(f) = folder.filter(|f| !f.exists()) {
        folder = f.parent().filter(|p| !p.as_os_str().is_empty());
    }
    let folder = folder.unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".health-probe-check")
        .tempfile_in(folder)
        .map(drop)
        .map_err(|e| {
            format!(
                "database {shown}: the folder {} cannot be written: {e}",
                folder.display()
            )
        })
}

/// A config problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Every problem found in one file, in file order.
#[derive(Debug)]
pub(crate) struct ConfigErrors {
    pub path: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                e.line,
                e.column,
                e.message
            )?;
        }
        Ok(())
    }
}

/// A target's `kind`, read by its name (`health_probe::check::Kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KindName(pub Kind);

impl<'de> Deserialize<'de> for KindName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<KindName, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map(KindName)
            .map_err(|_| serde::de::Error::unknown_variant(&s, &Kind::NAMES))
    }
}

/// A duration written like `"500ms"`, `"10s"`, `"1m"` (humantime), at most
/// [`health_probe::duration::MAX_SPAN`] (`keep_history`); waits are held to
/// [`health_probe::duration::MAX_WAIT`] where they are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        health_probe::duration::within(&s, health_probe::duration::MAX_SPAN, "50 years")
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// Settings a target may set and `[defaults]` may give to all.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Common {
    pub interval: Option<Spanned<Dur>>,
    pub jitter: Option<Spanned<String>>,
    pub timeout: Option<Spanned<Dur>>,
    pub fall: Option<Spanned<u32>>,
    pub rise: Option<Spanned<u32>>,
    pub pause_after_errors: Option<Spanned<u32>>,
    pub on_raise: Option<String>,
    pub on_clear: Option<String>,
    pub action_timeout: Option<Spanned<Dur>>,
    pub flap_changes: Option<Spanned<u32>>,
    pub flap_window: Option<Spanned<Dur>>,
    pub remind_every: Option<Spanned<Dur>>,
    pub max_reminders: Option<Spanned<u32>>,
    pub on_remind: Option<String>,
    pub remind_alertmanager: Option<Spanned<bool>>,
    pub source: Option<Spanned<Vec<String>>>,
    pub source_mode: Option<Spanned<String>>,
    pub vantage: Option<Spanned<Vec<String>>>,
    pub vantage_module: Option<Spanned<String>>,
    pub quorum: Option<Spanned<u32>>,
    pub on_path: Option<String>,
    pub stream: Option<Spanned<bool>>,
}

impl Common {
    /// `self` where set, else `defaults`.
    fn or(&self, defaults: &Common) -> Common {
        Common {
            interval: self.interval.clone().or_else(|| defaults.interval.clone()),
            jitter: self.jitter.clone().or_else(|| defaults.jitter.clone()),
            timeout: self.timeout.clone().or_else(|| defaults.timeout.clone()),
            fall: self.fall.clone().or_else(|| defaults.fall.clone()),
            rise: self.rise.clone().or_else(|| defaults.rise.clone()),
            pause_after_errors: self
                .pause_after_errors
                .clone()
                .or_else(|| defaults.pause_after_errors.clone()),
            on_raise: self.on_raise.clone().or_else(|| defaults.on_raise.clone()),
            on_clear: self.on_clear.clone().or_else(|| defaults.on_clear.clone()),
            action_timeout: self
                .action_timeout
                .clone()
                .or_else(|| defaults.action_timeout.clone()),
            flap_changes: self
                .flap_changes
                .clone()
                .or_else(|| defaults.flap_changes.clone()),
            flap_window: self
                .flap_window
                .clone()
                .or_else(|| defaults.flap_window.clone()),
            remind_every: self
                .remind_every
                .clone()
                .or_else(|| defaults.remind_every.clone()),
            max_reminders: self
                .max_reminders
                .clone()
                .or_else(|| defaults.max_reminders.clone()),
            on_remind: self
                .on_remind
                .clone()
                .or_else(|| defaults.on_remind.clone()),
            remind_alertmanager: self
                .remind_alertmanager
                .clone()
                .or_else(|| defaults.remind_alertmanager.clone()),
            source: self.source.clone().or_else(|| defaults.source.clone()),
            source_mode: (self.source_mode.clone()).or_else(|| defaults.source_mode.clone()),
            vantage: self.vantage.clone().or_else(|| defaults.vantage.clone()),
            vantage_module: (self.vantage_module.clone())
                .or_else(|| defaults.vantage_module.clone()),
            quorum: self.quorum.clone().or_else(|| defaults.quorum.clone()),
            on_path: self.on_path.clone().or_else(|| defaults.on_path.clone()),
            stream: self.stream.clone().or_else(|| defaults.stream.clone()),
        }
    }
}

/// One `[[target]]` table as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub name: Spanned<String>,
    pub kind: Spanned<KindName>,
    /// landmark, tcp and tls: `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`.
    pub addr: Option<Spanned<String>>,
    /// ping: an IP address or a host name.
    pub host: Option<Spanned<String>>,
    /// Every kind: `"ipv4"` or `"ipv6"`, the family of the address a name
    /// is checked at (as `-4`/`-6`); absent, the resolver's first.
    pub family: Option<Spanned<String>>,
    // landmark
    pub expect: Option<Spanned<Vec<String>>>,
    pub component: Option<Spanned<String>>,
    // tcp
    pub send: Option<Spanned<String>>,
    pub expect_banner: Option<Spanned<String>>,
    pub expect_regex: Option<Spanned<String>>,
    pub warn: Option<Spanned<Dur>>,
    pub crit: Option<Spanned<Dur>>,
    // tls
    pub sni: Option<Spanned<String>>,
    pub starttls: Option<Spanned<String>>,
    pub cert_warn: Option<Spanned<Dur>>,
    pub cert_crit: Option<Spanned<Dur>>,
    pub ca: Option<Spanned<String>>,
    pub insecure: Option<Spanned<bool>>,
    // ping
    pub count: Option<Spanned<u16>>,
    pub ping_interval: Option<Spanned<Dur>>,
    pub min_replies: Option<Spanned<u16>>,
    /// The targets it sits behind (`depends_on`): while one is raised, its
    /// raises are `unreachable`.
    pub depends_on: Option<Spanned<Vec<Spanned<String>>>>,
    // as in [defaults]; serde's flatten would lose the spans
    pub interval: Option<Spanned<Dur>>,
    pub jitter: Option<Spanned<String>>,
    pub timeout: Option<Spanned<Dur>>,
    pub fall: Option<Spanned<u32>>,
    pub rise: Option<Spanned<u32>>,
    pub pause_after_errors: Option<Spanned<u32>>,
    pub on_raise: Option<String>,
    pub on_clear: Option<String>,
    pub action_timeout: Option<Spanned<Dur>>,
    pub flap_changes: Option<Spanned<u32>>,
    pub flap_window: Option<Spanned<Dur>>,
    pub remind_every: Option<Spanned<Dur>>,
    pub max_reminders: Option<Spanned<u32>>,
    pub on_remind: Option<String>,
    pub remind_alertmanager: Option<Spanned<bool>>,
    /// Vantage points (`crate::vantage`): where the check leaves from, and
    /// which watchers check it too.
    pub source: Option<Spanned<Vec<String>>>,
    pub source_mode: Option<Spanned<String>>,
    pub vantage: Option<Spanned<Vec<String>>>,
    pub vantage_module: Option<Spanned<String>>,
    pub quorum: Option<Spanned<u32>>,
    pub on_path: Option<String>,
    /// landmark: followed by a `watch` stream rather than polled
    /// (`crate::stream`); on by default.
    pub stream: Option<Spanned<bool>>,
}

impl RawTarget {
    /// The settings `[defaults]` may also give.
    fn common(&self) -> Common {
        Common {
            interval: self.interval.clone(),
            jitter: self.jitter.clone(),
            timeout: self.timeout.clone(),
            fall: self.fall.clone(),
            rise: self.rise.clone(),
            pause_after_errors: self.pause_after_errors.clone(),
            on_raise: self.on_raise.clone(),
            on_clear: self.on_clear.clone(),
            action_timeout: self.action_timeout.clone(),
            flap_changes: self.flap_changes.clone(),
            flap_window: self.flap_window.clone(),
            remind_every: self.remind_every.clone(),
            max_reminders: self.max_reminders.clone(),
            on_remind: self.on_remind.clone(),
            remind_alertmanager: self.remind_alertmanager.clone(),
            source: self.source.clone(),
            source_mode: self.source_mode.clone(),
            vantage: self.vantage.clone(),
            vantage_module: self.vantage_module.clone(),
            quorum: self.quorum.clone(),
            on_path: self.on_path.clone(),
            stream: self.stream.clone(),
        }
    }

    /// The check itself, without the settings `[defaults]` may give.
    fn check_only(&self) -> RawTarget {
        RawTarget {
            interval: None,
            jitter: None,
            timeout: None,
            fall: None,
            rise: None,
            pause_after_errors: None,
            on_raise: None,
            on_clear: None,
            action_timeout: None,
            flap_changes: None,
            flap_window: None,
            depends_on: None,
            remind_every: None,
            max_reminders: None,
            on_remind: None,
            remind_alertmanager: None,
            source: None,
            source_mode: None,
            vantage: None,
            vantage_module: None,
            quorum: None,
            on_path: None,
            stream: None,
            ..self.clone()
        }
    }
}

/// The top-level keys, as written (`[defaults]` and `[[target]]` are read
/// apart, so that a problem in one does not hide the others).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    database: Option<Spanned<String>>,
    max_in_flight: Option<Spanned<u32>>,
    keep_history: Option<Spanned<Dur>>,
    http_listen: Option<Spanned<String>>,
    http_allow: Option<Spanned<Vec<String>>>,
    http_user: Option<Spanned<String>>,
    http_password_file: Option<Spanned<String>>,
    http_probe: Option<Spanned<bool>>,
    http_probe_max_timeout: Option<Spanned<Dur>>,
    alertmanager_url: Option<Spanned<alerting::OneOrMany>>,
    alertmanager_resend: Option<Spanned<Dur>>,
    alertmanager_labels: Option<Spanned<std::collections::BTreeMap<String, String>>>,
}

/// A validated configuration.
#[derive(Debug)]
pub(crate) struct Config {
    pub database: PathBuf,
    /// Most checks running at once, over all targets.
    pub max_in_flight: usize,
    /// History older than this is deleted.
    pub keep_history: Duration,
    /// Where the exporter listens (`/metrics`); off when `None`.
    pub http_listen: Option<SocketAddr>,
    /// Who may use it.
    pub http_access: Access,
    /// Where alarms are sent; off when `None`.
    pub alerting: Option<Alerting>,
    /// `[module.NAME]`: checks `/probe` runs besides the built-in ones.
    pub modules: std::collections::BTreeMap<String, Module>,
    /// `[[maintenance]]`: recurring windows that silence targets.
    pub maintenance: Vec<crate::silence::Window>,
    pub targets: Vec<Target>,
    /// What is allowed but unwise (a listener open to all, a password
    /// file others can read): said at start and by `--check-config`.
    pub warnings: Vec<String>,
}

/// Flapping: more than `changes` raises and clears within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flap {
    pub changes: u32,
    pub window: Duration,
}

/// A validated target.
#[derive(Debug)]
pub(crate) struct Target {
    pub name: String,
    pub kind: Kind,
    /// What is checked, as printed: `ADDR` or `HOST`.
    pub addr: String,
    pub check: Check,
    pub interval: Duration,
    /// Percent of the interval a check may run later than its slot
    /// (`crate::schedule`).
    pub jitter: u8,
    pub timeout: Duration,
    /// Failures in a row that raise the alarm.
    pub fall: u32,
    /// Successes in a row that clear it.
    pub rise: u32,
    /// ERR outcomes in a row that pause the target; 0 never pauses.
    pub pause_after_errors: u32,
    pub on_raise: Option<String>,
    pub on_clear: Option<String>,
    pub action_timeout: Duration,
    /// Flap detection; `None` when `flap_changes = 0`.
    pub flap: Option<Flap>,
    /// Reminders of an alarm that stays raised.
    pub remind: Reminders,
    /// The targets it depends on (`depends_on`).
    pub depends_on: Vec<String>,
    /// Its vantage points, when it has a source or more than one point
    /// (`None`: checked once, from here, as the routing table says).
    pub vantage: Option<Box<crate::vantage::Vantages>>,
    /// Followed by a `watch` stream (landmark only; `crate::stream`).
    pub stream: bool,
    /// The target as written (see [`Target::same_as`]).
    pub written: RawTarget,
}

impl Target {
    /// Same check, schedule, thresholds and actions: a reload keeps the
    /// running target and its state. Where it sits in the file, and whether
    /// a setting came from `[defaults]`, does not matter.
    pub(crate) fn same_as(&self, other: &Target) -> bool {
        let settings = |t: &Target| {
            (
                t.interval,
                t.jitter,
                t.timeout,
                t.fall,
                t.rise,
                t.pause_after_errors,
                t.on_raise.clone(),
                t.on_clear.clone(),
                t.action_timeout,
                t.flap,
                t.depends_on.clone(),
                t.remind.clone(),
            )
        };
        self.written.check_only() == other.written.check_only()
            && settings(self) == settings(other)
            && self.vantage == other.vantage
            && self.stream == other.stream
    }
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_FALL: u32 = 2;
const DEFAULT_RISE: u32 = 2;
const DEFAULT_PAUSE_AFTER_ERRORS: u32 = 4;
const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Flapping: more than this many raises and clears ...
pub(crate) const DEFAULT_FLAP_CHANGES: u32 = 6;
/// ... within this long.
pub(crate) const DEFAULT_FLAP_WINDOW: Duration = Duration::from_secs(600);
const DEFAULT_MAX_IN_FLIGHT: u32 = 256;
const DEFAULT_KEEP_HISTORY: Duration = Duration::from_secs(400 * 86_400);

/// Reads and validates `path`.
pub(crate) fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        path: path.to_path_buf(),
        errors: vec![ConfigError {
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }],
    })?;
    parse(&text).map_err(|errors| ConfigErrors {
        path: path.to_path_buf(),
        errors,
    })
}

/// Parses and validates config text; every error found, in file order.
pub(crate) fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let lines = document::Lines::new(text);
    let doc = document::parse(text, &lines)?;
    let mut errors = Vec::new();
    let span = doc.span();
    let mut top = doc.into_inner();
    let targets = document::take_tables(&mut top, "target", &lines, &mut errors);
    let modules = module::take(&mut top, &lines, &mut errors);
    let windows = maintenance::take(&mut top, &lines, &mut errors);
    let defaults = document::take_tables(&mut top, "defaults", &lines, &mut errors);
    let settings: Option<RawSettings> =
        document::read(toml::Spanned::new(span, top), &lines, &mut errors);
    if let Some(second) = defaults.get(1) {
        errors.push(lines.error(second.span().start, "[defaults] is given more than once"));
    }
    let defaults: Option<Common> = match defaults.into_iter().next() {
        None => Some(Common::default()),
        Some(d) => document::read(d, &lines, &mut errors),
    };
    let count = targets.len();
    let targets: Vec<(Range<usize>, Option<RawTarget>)> = targets
        .into_iter()
        .map(|t| (t.span(), document::read(t, &lines, &mut errors)))
        .collect();
    let mut v = validate::Validator::new(lines, errors);
    let mut config = v.config(
        settings.unwrap_or_default(),
        defaults.unwrap_or_default(),
        count,
        targets,
    );
    config.modules = module::validate(&mut v, modules);
    depends::check(&mut v, &config.targets);
    config.maintenance = {
        let names = config.targets.iter().map(|t| t.name.as_str()).collect();
        maintenance::validate(&mut v, windows, &names)
    };
    v.finish(config)
}

#[cfg(test)]
mod tests;
