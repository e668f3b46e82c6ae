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
//! kind = "landmark"       # landmark | tcp | ping
//! addr = "10.0.0.5:9100"
//! on_raise = "systemctl restart epg"
//! ```
//!
//! The full key reference is in `docs/WATCH.md`.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use health_proto::State;
use serde::Deserialize;
use toml::Spanned;

use crate::cli::{FamilyArgs, ModeArgs, Payload, PingArgs, TcpArgs};

/// Where history is kept when the config does not say.
pub const DEFAULT_DATABASE: &str = "/var/lib/health-probe/watch.db";

/// Most targets one watcher runs; each costs a task and a status row.
pub const MAX_TARGETS: usize = 100_000;

/// A config problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
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
pub struct ConfigErrors {
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

/// What kind of check a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Landmark,
    Tcp,
    Ping,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Landmark => "landmark",
            Kind::Tcp => "tcp",
            Kind::Ping => "ping",
        }
    }
}

/// A duration written like `"500ms"`, `"10s"`, `"1m"` (humantime), at most
/// [`crate::duration::MAX_SPAN`] (`keep_history`); waits are held to
/// [`crate::duration::MAX_WAIT`] where they are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        crate::duration::within(&s, crate::duration::MAX_SPAN, "50 years")
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// Settings a target may set and `[defaults]` may give to all.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub fall: Option<Spanned<u32>>,
    pub rise: Option<Spanned<u32>>,
    pub pause_after_errors: Option<Spanned<u32>>,
    pub on_raise: Option<String>,
    pub on_clear: Option<String>,
    pub action_timeout: Option<Spanned<Dur>>,
}

impl Common {
    /// `self` where set, else `defaults`.
    fn or(&self, defaults: &Common) -> Common {
        Common {
            interval: self.interval.clone().or_else(|| defaults.interval.clone()),
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
        }
    }
}

/// One `[[target]]` table as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub name: Spanned<String>,
    pub kind: Spanned<Kind>,
    /// landmark and tcp: `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`.
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
    // ping
    pub count: Option<Spanned<u16>>,
    pub ping_interval: Option<Spanned<Dur>>,
    pub min_replies: Option<Spanned<u16>>,
    // as in [defaults]; serde's flatten would lose the spans
    pub interval: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub fall: Option<Spanned<u32>>,
    pub rise: Option<Spanned<u32>>,
    pub pause_after_errors: Option<Spanned<u32>>,
    pub on_raise: Option<String>,
    pub on_clear: Option<String>,
    pub action_timeout: Option<Spanned<Dur>>,
}

impl RawTarget {
    /// The settings `[defaults]` may also give.
    fn common(&self) -> Common {
        Common {
            interval: self.interval.clone(),
            timeout: self.timeout.clone(),
            fall: self.fall.clone(),
            rise: self.rise.clone(),
            pause_after_errors: self.pause_after_errors.clone(),
            on_raise: self.on_raise.clone(),
            on_clear: self.on_clear.clone(),
            action_timeout: self.action_timeout.clone(),
        }
    }

    /// The check itself, without the settings `[defaults]` may give.
    fn check_only(&self) -> RawTarget {
        RawTarget {
            interval: None,
            timeout: None,
            fall: None,
            rise: None,
            pause_after_errors: None,
            on_raise: None,
            on_clear: None,
            action_timeout: None,
            ..self.clone()
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    database: Option<Spanned<String>>,
    max_in_flight: Option<Spanned<u32>>,
    keep_history: Option<Spanned<Dur>>,
    #[serde(default)]
    defaults: Common,
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
}

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    pub database: PathBuf,
    /// Most checks running at once, over all targets.
    pub max_in_flight: usize,
    /// History older than this is deleted.
    pub keep_history: Duration,
    pub targets: Vec<Target>,
}

/// A validated target.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub kind: Kind,
    /// What is checked, as printed: `ADDR` or `HOST`.
    pub addr: String,
    pub check: Check,
    pub interval: Duration,
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
    /// The target as written (see [`Target::same_as`]).
    pub written: RawTarget,
}

impl Target {
    /// Same check, schedule, thresholds and actions: a reload keeps the
    /// running target and its state. Where it sits in the file, and whether
    /// a setting came from `[defaults]`, does not matter.
    pub fn same_as(&self, other: &Target) -> bool {
        let settings = |t: &Target| {
            (
                t.interval,
                t.timeout,
                t.fall,
                t.rise,
                t.pause_after_errors,
                t.on_raise.clone(),
                t.on_clear.clone(),
                t.action_timeout,
            )
        };
        self.written.check_only() == other.written.check_only() && settings(self) == settings(other)
    }
}

/// The check a target runs, with the same arguments as the one-shot
/// `health-probe`, `health-probe tcp` and `health-probe ping`.
#[derive(Debug)]
pub enum Check {
    Landmark {
        component: Option<String>,
        expect: Vec<State>,
        family: crate::target::Family,
    },
    Tcp(TcpArgs),
    Ping(PingArgs),
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_FALL: u32 = 2;
const DEFAULT_RISE: u32 = 2;
const DEFAULT_PAUSE_AFTER_ERRORS: u32 = 4;
const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_IN_FLIGHT: u32 = 256;
const DEFAULT_KEEP_HISTORY: Duration = Duration::from_secs(400 * 86_400);

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
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
pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0);
        vec![located(text, at, e.message().trim().to_string())]
    })?;
    let mut v = Validator {
        text,
        errors: Vec::new(),
    };
    let config = v.config(raw);
    if v.errors.is_empty() {
        Ok(config)
    } else {
        v.errors.sort_by_key(|e| (e.line, e.column));
        Err(v.errors)
    }
}

/// 1-based line and column of byte offset `at`.
fn located(text: &str, at: usize, message: String) -> ConfigError {
    let at = at.min(text.len());
    let before = &text[..text.floor_char_boundary_compat(at)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    ConfigError {
        line,
        column,
        message,
    }
}

/// `str::floor_char_boundary` is not stable on our MSRV.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// A key some kinds only may set: name, where it is set (if it is), the
/// kinds, and how the message names them.
type OwnedKey = (
    &'static str,
    Option<Range<usize>>,
    &'static [Kind],
    &'static str,
);

fn span_of<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
    v.as_ref().map(Spanned::span)
}

struct Validator<'a> {
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let e = located(self.text, span.start, message.into());
        self.errors.push(e);
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let max_in_flight = match &raw.max_in_flight {
            Some(m) if !(1..=65_536).contains(m.get_ref()) => {
                self.error(m.span(), "max_in_flight must be between 1 and 65536");
                1
            }
            Some(m) => *m.get_ref(),
            None => DEFAULT_MAX_IN_FLIGHT,
        };
        let database = match &raw.database {
            Some(d) if d.get_ref().trim().is_empty() => {
                self.error(d.span(), "database must be a file path");
                PathBuf::new()
            }
            Some(d) => PathBuf::from(d.get_ref()),
            None => PathBuf::from(DEFAULT_DATABASE),
        };
        let keep_history = self.duration(
            &raw.keep_history,
            DEFAULT_KEEP_HISTORY,
            "keep_history",
            Duration::from_secs(3600),
            Duration::from_secs(100 * 365 * 86_400),
        );
        if raw.target.is_empty() {
            self.error(0..0, "no [[target]] tables: nothing to watch");
        }
        if raw.target.len() > MAX_TARGETS {
            let span = raw.target[MAX_TARGETS].span();
            self.error(span, format!("more than {MAX_TARGETS} targets"));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut targets = Vec::with_capacity(raw.target.len());
        for t in raw.target {
            let span = t.span();
            let t = t.into_inner();
            let name = t.name.get_ref().clone();
            if let Some(first) = seen.get(&name) {
                self.error(
                    t.name.span(),
                    format!("target name {name:?} is already used on line {first}"),
                );
            } else {
                seen.insert(
                    name,
                    located(self.text, t.name.span().start, String::new()).line,
                );
            }
            if let Some(target) = self.target(t, &raw.defaults, span) {
                targets.push(target);
            }
        }
        Config {
            database,
            max_in_flight: max_in_flight as usize,
            keep_history,
            targets,
        }
    }

    fn target(&mut self, t: RawTarget, defaults: &Common, span: Range<usize>) -> Option<Target> {
        let errors_before = self.errors.len();
        let name = t.name.get_ref();
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            self.error(
                t.name.span(),
                "name must be 1 to 128 characters, without control characters",
            );
        }
        let kind = *t.kind.get_ref();
        let common = t.common().or(defaults);
        let interval = self.duration(
            &common.interval,
            DEFAULT_INTERVAL,
            "interval",
            Duration::from_millis(100),
            Duration::from_secs(86_400),
        );
        let default_timeout = if kind == Kind::Ping {
            DEFAULT_PING_TIMEOUT
        } else {
            DEFAULT_TIMEOUT
        };
        // Unset, the timeout fits the interval.
        let timeout = self.duration(
            &common.timeout,
            default_timeout.min(interval),
            "timeout",
            Duration::from_millis(10),
            Duration::from_secs(600),
        );
        if timeout > interval {
            let at = common
                .timeout
                .as_ref()
                .or(common.interval.as_ref())
                .map_or(span.clone(), |s| s.span());
            self.error(
                at,
                format!(
                    "timeout {} is longer than interval {}: a check must end before the next is due",
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
            );
        }
        let fall = self.count(&common.fall, DEFAULT_FALL, "fall", 1);
        let rise = self.count(&common.rise, DEFAULT_RISE, "rise", 1);
        let pause_after_errors = self.count(
            &common.pause_after_errors,
            DEFAULT_PAUSE_AFTER_ERRORS,
            "pause_after_errors",
            0,
        );
        let action_timeout = self.duration(
            &common.action_timeout,
            DEFAULT_ACTION_TIMEOUT,
            "action_timeout",
            Duration::from_millis(10),
            Duration::from_secs(3600),
        );
        for (cmd, key) in [
            (&common.on_raise, "on_raise"),
            (&common.on_clear, "on_clear"),
        ] {
            if matches!(cmd, Some(c) if c.trim().is_empty()) {
                self.error(
                    span.clone(),
                    format!("{key} is empty: remove it or give a command"),
                );
            }
        }

        // Keys that belong to some kinds only.
        const LANDMARK: &[Kind] = &[Kind::Landmark];
        const TCP: &[Kind] = &[Kind::Tcp];
        const PING: &[Kind] = &[Kind::Ping];
        let owned: [OwnedKey; 12] = [
            ("expect", span_of(&t.expect), LANDMARK, "landmark"),
            ("component", span_of(&t.component), LANDMARK, "landmark"),
            ("send", span_of(&t.send), TCP, "tcp"),
            ("expect_banner", span_of(&t.expect_banner), TCP, "tcp"),
            ("expect_regex", span_of(&t.expect_regex), TCP, "tcp"),
            (
                "warn",
                span_of(&t.warn),
                &[Kind::Tcp, Kind::Ping],
                "tcp and ping",
            ),
            (
                "crit",
                span_of(&t.crit),
                &[Kind::Tcp, Kind::Ping],
                "tcp and ping",
            ),
            ("count", span_of(&t.count), PING, "ping"),
            ("ping_interval", span_of(&t.ping_interval), PING, "ping"),
            ("min_replies", span_of(&t.min_replies), PING, "ping"),
            ("host", span_of(&t.host), PING, "ping"),
            (
                "addr",
                span_of(&t.addr),
                &[Kind::Landmark, Kind::Tcp],
                "landmark and tcp",
            ),
        ];
        for (key, place, kinds, names) in owned {
            if let Some(place) = place.filter(|_| !kinds.contains(&kind)) {
                let msg = format!("{key} applies to {names} targets, not {}", kind.as_str());
                self.error(place, msg);
            }
        }

        let addr = match (kind, &t.addr, &t.host) {
            (Kind::Ping, _, Some(h)) => self.host(h),
            (Kind::Ping, _, None) => {
                self.error(span.clone(), "ping target needs host = \"IP or NAME\"");
                String::new()
            }
            (_, Some(a), _) => self.addr(a),
            (_, None, _) => {
                self.error(
                    span.clone(),
                    format!("{} target needs addr = \"HOST:PORT\"", kind.as_str()),
                );
                String::new()
            }
        };
        let warn = t.warn.as_ref().map(|w| w.get_ref().0);
        let crit = t.crit.as_ref().map(|c| c.get_ref().0);
        let family = match t.family.as_ref().map(|f| (f, f.get_ref().as_str())) {
            None => FamilyArgs::default(),
            Some((_, "ipv4")) => FamilyArgs {
                ipv4: true,
                ipv6: false,
            },
            Some((_, "ipv6")) => FamilyArgs {
                ipv4: false,
                ipv6: true,
            },
            Some((f, other)) => {
                self.error(
                    f.span(),
                    format!("family must be \"ipv4\" or \"ipv6\", not {other:?}"),
                );
                FamilyArgs::default()
            }
        };
        let check = match kind {
            Kind::Landmark => {
                let expect = match &t.expect {
                    None => vec![State::Ok],
                    Some(list) => {
                        let mut states = Vec::new();
                        for s in list.get_ref() {
                            match s.parse::<State>() {
                                Ok(st) => states.push(st),
                                Err(_) => self.error(list.span(), format!("expect: unknown state {s:?} (use ok, degraded, drain, fail)")),
                            }
                        }
                        if list.get_ref().is_empty() {
                            self.error(list.span(), "expect must name at least one state");
                        }
                        states
                    }
                };
                Check::Landmark {
                    component: t.component.as_ref().map(|c| c.get_ref().clone()),
                    expect,
                    family: family.family(),
                }
            }
            Kind::Tcp => {
                let payload = |this: &mut Self, s: &Option<Spanned<String>>, key: &str| {
                    s.as_ref()
                        .and_then(|s| match crate::tcp::unescape(s.get_ref()) {
                            Ok(b) => Some(Payload(b)),
                            Err(e) => {
                                this.error(s.span(), format!("{key}: {e}"));
                                None
                            }
                        })
                };
                let send = payload(self, &t.send, "send");
                let expect_banner = payload(self, &t.expect_banner, "expect_banner");
                if t.expect_banner.is_some() && t.expect_regex.is_some() {
                    self.error(span.clone(), "give expect_banner or expect_regex, not both");
                }
                let expect_regex = t.expect_regex.as_ref().and_then(|r| {
                    match crate::cli::parse_regex(r.get_ref()) {
                        Ok(re) => Some(re),
                        Err(e) => {
                            self.error(r.span(), format!("expect_regex: {e}"));
                            None
                        }
                    }
                });
                Check::Tcp(TcpArgs {
                    addr: addr.clone(),
                    send,
                    expect_banner,
                    expect_regex,
                    timeout,
                    warn,
                    crit,
                    family,
                    mode: ModeArgs::default(),
                })
            }
            Kind::Ping => {
                let count = t.count.as_ref().map_or(3, |c| *c.get_ref());
                if let Some(c) = &t.count {
                    if !(1..=1000).contains(c.get_ref()) {
                        self.error(c.span(), "count must be between 1 and 1000");
                    }
                }
                let min_replies = t.min_replies.as_ref().map_or(1, |m| *m.get_ref());
                if let Some(m) = &t.min_replies {
                    if *m.get_ref() == 0 || *m.get_ref() > count {
                        self.error(
                            m.span(),
                            format!("min_replies must be between 1 and count ({count})"),
                        );
                    }
                }
                let ping_interval = self.duration(
                    &t.ping_interval,
                    Duration::from_millis(200),
                    "ping_interval",
                    Duration::from_millis(10),
                    Duration::from_secs(60),
                );
                Check::Ping(PingArgs {
                    host: addr.clone(),
                    count,
                    interval: ping_interval,
                    timeout,
                    min_replies,
                    warn,
                    crit,
                    family,
                    mode: ModeArgs::default(),
                })
            }
        };
        if self.errors.len() > errors_before {
            return None;
        }
        let written = t.clone();
        Some(Target {
            name: t.name.into_inner(),
            kind,
            addr,
            check,
            interval,
            timeout,
            fall,
            rise,
            pause_after_errors,
            on_raise: common.on_raise,
            on_clear: common.on_clear,
            action_timeout,
            written,
        })
    }

    fn duration(
        &mut self,
        v: &Option<Spanned<Dur>>,
        default: Duration,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Duration {
        match v {
            None => default,
            Some(d) => {
                let value = d.get_ref().0;
                if value < min || value > max {
                    self.error(
                        d.span(),
                        format!(
                            "{key} must be between {} and {}",
                            humantime::format_duration(min),
                            humantime::format_duration(max)
                        ),
                    );
                    default
                } else {
                    value
                }
            }
        }
    }

    fn count(&mut self, v: &Option<Spanned<u32>>, default: u32, key: &str, min: u32) -> u32 {
        match v {
            None => default,
            Some(n) if *n.get_ref() < min || *n.get_ref() > 1000 => {
                self.error(n.span(), format!("{key} must be between {min} and 1000"));
                default
            }
            Some(n) => *n.get_ref(),
        }
    }

    fn addr(&mut self, a: &Spanned<String>) -> String {
        let s = a.get_ref();
        if crate::target::endpoint(s).is_err() {
            self.error(
                a.span(),
                format!("addr {s:?} is not IP:PORT, [IPv6]:PORT or HOST:PORT"),
            );
        }
        s.clone()
    }

    fn host(&mut self, h: &Spanned<String>) -> String {
        let s = h.get_ref();
        if crate::target::host(s).is_err() {
            self.error(
                h.span(),
                format!("host {s:?} is not an IP address or a host name (no port)"),
            );
        }
        s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn defaults_fill_in_and_targets_override() {
        let c = parse(
            r#"
database = "/tmp/x.db"
[defaults]
interval = "5s"
fall = 3

[[target]]
name = "a"
kind = "landmark"
addr = "127.0.0.1:9100"
expect = ["ok", "degraded"]

[[target]]
name = "b"
kind = "tcp"
addr = "127.0.0.1:25"
expect_banner = "220 "
fall = 1
interval = "1s"

[[target]]
name = "c"
kind = "ping"
host = "::1"
"#,
        )
        .unwrap();
        assert_eq!(c.database, PathBuf::from("/tmp/x.db"));
        assert_eq!(c.max_in_flight, 256);
        let [a, b, p] = &c.targets[..] else { panic!() };
        assert_eq!((a.interval, a.fall, a.rise), (Duration::from_secs(5), 3, 2));
        assert!(
            matches!(&a.check, Check::Landmark { expect, .. } if expect == &[State::Ok, State::Degraded])
        );
        assert_eq!((b.interval, b.fall), (Duration::from_secs(1), 1));
        assert!(
            matches!(&b.check, Check::Tcp(t) if t.expect_banner.as_ref().unwrap().0 == b"220 ")
        );
        assert_eq!(
            (p.timeout, p.pause_after_errors),
            (Duration::from_secs(2), 4)
        );
        assert!(matches!(&p.check, Check::Ping(args) if args.count == 3 && args.host == "::1"));
    }

    #[test]
    fn errors_name_their_line() {
        let e = errors("[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"soon\"\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("line 5, column 12:"), "{e:?}");
        let e =
            errors("[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\nflal = 2\n");
        assert!(
            e[0].starts_with("line 5,") && e[0].contains("unknown field `flal`"),
            "{e:?}"
        );
        let e = errors("[[target]]\nname = \"a\"\nkind = \"smtp\"\n");
        assert!(e[0].starts_with("line 3,"), "{e:?}");
    }

    #[test]
    fn every_semantic_error_is_reported_in_file_order() {
        let e = errors(
            r#"[[target]]
name = "a"
kind = "tcp"
addr = "no-port"
fall = 0

[[target]]
name = "a"
kind = "ping"
host = "10.0.0.1"
expect = ["ok"]

[[target]]
name = "c"
kind = "landmark"
addr = "127.0.0.1:1"
interval = "1s"
timeout = "2s"
"#,
        );
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].starts_with("line 4,") && e[0].contains("not IP:PORT"));
        assert!(e[1].starts_with("line 5,") && e[1].contains("fall must be between 1"));
        assert!(e[2].starts_with("line 8,") && e[2].contains("already used on line 2"));
        assert!(e[3].starts_with("line 11,") && e[3].contains("expect applies to landmark"));
        assert!(e[4].starts_with("line 18,") && e[4].contains("longer than interval"));
    }

    #[test]
    fn empty_config_is_an_error() {
        assert!(errors("")[0].contains("nothing to watch"));
    }

    #[test]
    fn written_form_decides_sameness() {
        let a =
            parse("[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n").unwrap();
        let b = parse("# moved\n\n[defaults]\nfall = 2\n[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n").unwrap();
        let c =
            parse("[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:2\"\n").unwrap();
        // Moved in the file, a default spelled out: the same target.
        assert!(a.targets[0].same_as(&b.targets[0]));
        assert!(!a.targets[0].same_as(&c.targets[0]));
    }
}
