//! The meaning of a config: ranges, which keys go with which kind,
//! addresses, durations, duplicate names. Every problem is collected, none
//! stops the others from being found.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::alerting;
use super::document::Lines;
use super::http;
use super::kinds;
use super::remind;
use super::stream;
use super::vantage;
use super::*;

pub(super) struct Validator<'a> {
    lines: Lines<'a>,
    errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    /// Goes on from the problems `errors` found while reading.
    pub(super) fn new(lines: Lines<'a>, errors: Vec<ConfigError>) -> Validator<'a> {
        Validator { lines, errors }
    }

    /// `config` if no problem was found, else every problem in file order.
    pub(super) fn finish(mut self, config: Config) -> Result<Config, Vec<ConfigError>> {
        if self.errors.is_empty() {
            Ok(config)
        } else {
            self.errors.sort_by_key(|e| (e.line, e.column));
            Err(self.errors)
        }
    }

    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let e = self.lines.error(span.start, message);
        self.errors.push(e);
    }

    /// `count` targets were written; `targets` holds those that could be
    /// read (`None`: its problems are reported already).
    pub(super) fn config(
        &mut self,
        raw: RawSettings,
        defaults: Common,
        count: usize,
        targets: Vec<(Range<usize>, Option<RawTarget>)>,
    ) -> Config {
        let max_in_flight = match &raw.max_in_flight {
            Some(m) if !(1..=65_536).contains(m.get_ref()) => {
                self.error(m.span(), "max_in_flight must be between 1 and 65536");
                1
            }
            Some(m) => *m.get_ref(),
            None => DEFAULT_MAX_IN_FLIGHT,
        };
        let database = match &raw.database {
            Some(d) => self.database(d),
            None => PathBuf::from(DEFAULT_DATABASE),
        };
        let keep_history = self.duration(
            &raw.keep_history,
            DEFAULT_KEEP_HISTORY,
            "keep_history",
            Duration::from_secs(3600),
            Duration::from_secs(100 * 365 * 86_400),
        );
        let probe_max_timeout = self.duration(
            &raw.http_probe_max_timeout,
            http::DEFAULT_PROBE_MAX_TIMEOUT,
            "http_probe_max_timeout",
            Duration::from_millis(10),
            Duration::from_secs(60),
        );
        let mut found = Vec::new();
        let mut warnings = Vec::new();
        let (http_listen, http_access) = http::validate(
            http::RawHttp {
                listen: raw.http_listen.as_ref(),
                allow: raw.http_allow.as_ref(),
                user: raw.http_user.as_ref(),
                password_file: raw.http_password_file.as_ref(),
                probe: raw.http_probe.as_ref(),
                probe_max_timeout,
            },
            |span, message| found.push((span, message)),
            |message| warnings.push(message),
        );
        if let (Some(t), Some(false)) = (
            &raw.http_probe_max_timeout,
            raw.http_probe.as_ref().map(|p| *p.get_ref()),
        ) {
            self.error(t.span(), "http_probe_max_timeout with http_probe = false");
        }
        for (span, message) in found {
            self.error(span, message);
        }
        let resend = self.duration(
            &raw.alertmanager_resend,
            alerting::DEFAULT_RESEND,
            "alertmanager_resend",
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        if let (Some(r), None) = (&raw.alertmanager_resend, &raw.alertmanager_url) {
            self.error(r.span(), "alertmanager_resend without alertmanager_url");
        }
        let mut found = Vec::new();
        let alerting = alerting::validate(
            alerting::RawAlerting {
                url: raw.alertmanager_url.as_ref(),
                resend,
                labels: raw.alertmanager_labels.as_ref(),
            },
            |span, message| found.push((span, message)),
        );
        for (span, message) in found {
            self.error(span, message);
        }
        if count == 0 {
            self.error(0..0, "no [[target]] tables: nothing to watch");
        }
        if count > MAX_TARGETS {
            let span = targets[MAX_TARGETS].0.clone();
            self.error(span, format!("more than {MAX_TARGETS} targets"));
        }
        // Name to where it is first used (a byte offset: the line is only
        // worked out for a message).
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(targets.len());
        let mut valid = Vec::with_capacity(targets.len());
        for (span, t) in targets {
            let Some(t) = t else { continue };
            let name = t.name.get_ref();
            if let Some(first) = seen.get(name) {
                let first = self.lines.line(*first);
                self.error(
                    t.name.span(),
                    format!("target name {name:?} is already used on line {first}"),
                );
            } else {
                seen.insert(name.clone(), t.name.span().start);
            }
            if let Some(target) = self.target(t, &defaults, span) {
                valid.push(target);
            }
        }
        Config {
            database,
            max_in_flight: max_in_flight as usize,
            keep_history,
            http_listen,
            http_access,
            alerting,
            modules: std::collections::BTreeMap::new(),
            maintenance: Vec::new(),
            targets: valid,
            warnings,
        }
    }

    /// A file path that is not a folder and whose folder, if it exists,
    /// is one.
    fn database(&mut self, d: &Spanned<String>) -> PathBuf {
        let path = PathBuf::from(d.get_ref());
        if d.get_ref().trim().is_empty() {
            self.error(d.span(), "database must be a file path");
        } else if path.is_dir() {
            self.error(
                d.span(),
                format!(
                    "database {:?} is a folder: give a file path in it",
                    d.get_ref()
                ),
            );
        } else if let Some(parent) = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && p.exists() && !p.is_dir())
        {
            self.error(
                d.span(),
                format!(
                    "database {:?}: {} is not a folder",
                    d.get_ref(),
                    parent.display()
                ),
            );
        }
        path
    }

    pub(super) fn target(
        &mut self,
        t: RawTarget,
        defaults: &Common,
        span: Range<usize>,
    ) -> Option<Target> {
        let errors_before = self.errors.len();
        let name = t.name.get_ref();
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            self.error(
                t.name.span(),
                "name must be 1 to 128 characters, without control characters",
            );
        } else if name == "." || name == ".." {
            // Its page, /target/NAME, would be a path clients normalise
            // away (/target/.. is /).
            self.error(t.name.span(), format!("name {name:?} is not a target name"));
        }
        let kind = t.kind.get_ref().0;
        let common = t.common().or(defaults);
        let interval = self.duration(
            &common.interval,
            DEFAULT_INTERVAL,
            "interval",
            Duration::from_millis(100),
            Duration::from_secs(86_400),
        );
        let jitter = match &common.jitter {
            None => crate::schedule::DEFAULT_JITTER_PERCENT,
            Some(j) => match percent(j.get_ref()) {
                Some(p) if p <= crate::schedule::MAX_JITTER_PERCENT => p,
                _ => {
                    self.error(
                        j.span(),
                        format!(
                            "jitter must be a percentage of the interval from \"0%\" to \"{}%\", not {:?}",
                            crate::schedule::MAX_JITTER_PERCENT,
                            j.get_ref()
                        ),
                    );
                    crate::schedule::DEFAULT_JITTER_PERCENT
                }
            },
        };
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
        let flap_changes = self.count(
            &common.flap_changes,
            DEFAULT_FLAP_CHANGES,
            "flap_changes",
            0,
        );
        if flap_changes == 1 {
            let at = common
                .flap_changes
                .as_ref()
                .map_or(span.clone(), |s| s.span());
            self.error(at, "flap_changes must be 0 (off) or 2 to 1000");
        }
        let flap_window = self.duration(
            &common.flap_window,
            DEFAULT_FLAP_WINDOW,
            "flap_window",
            Duration::from_secs(10),
            Duration::from_secs(86_400),
        );
        let flap = (flap_changes > 0).then_some(Flap {
            changes: flap_changes,
            window: flap_window,
        });
        let remind = remind::settings(&common, &mut |at, message| self.error(at, message));
        for (cmd, key) in [
            (&common.on_raise, "on_raise"),
            (&common.on_clear, "on_clear"),
            (&common.on_remind, "on_remind"),
        ] {
            if matches!(cmd, Some(c) if c.trim().is_empty()) {
                self.error(
                    span.clone(),
                    format!("{key} is empty: remove it or give a command"),
                );
            }
        }

        let mut found = Vec::new();
        let check = kinds::check(
            &t,
            timeout,
            common.timeout.as_ref().map(Spanned::span),
            span.clone(),
            &mut |at, message| found.push((at, message)),
        );
        let vantage = check.as_ref().and_then(|check| {
            vantage::vantages(&common, check, span, &mut |at, message| {
                found.push((at, message))
            })
        });
        let stream = stream::streamed(&t, &common, kind, vantage.is_some(), &mut |at, m| {
            found.push((at, m))
        });
        for (at, message) in found {
            self.error(at, message);
        }
        let check = check?;
        if self.errors.len() > errors_before {
            return None;
        }
        let written = t.clone();
        Some(Target {
            name: t.name.into_inner(),
            kind,
            addr: check.target().to_string(),
            check,
            interval,
            jitter,
            timeout,
            fall,
            rise,
            pause_after_errors,
            flap,
            on_raise: common.on_raise,
            on_clear: common.on_clear,
            action_timeout,
            remind,
            depends_on: written
                .depends_on
                .as_ref()
                .map(|d| d.get_ref().iter().map(|p| p.get_ref().clone()).collect())
                .unwrap_or_default(),
            vantage,
            stream,
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
}

/// `"10%"` as 10; `None` for anything else.
fn percent(s: &str) -> Option<u8> {
    s.trim().strip_suffix('%')?.trim().parse().ok()
}
