//! Silences and maintenance windows: stretches of time in which some
//! targets are still checked and shown, but a raise runs no action and
//! sends no alert, and the time counts as maintenance, not downtime.
//!
//! A [`Silence`] covers the targets its matcher names (a name, or a
//! pattern with `*` and `?`) from `from` until `until`. Silences are made
//! at run time (`health-probe silence add`, `POST /api/v1/silences`) or by
//! the config's `[[maintenance]]` windows ([`Window`]) as each opens; all
//! are rows of the history database, so they survive restarts and the
//! report and uptime can read them afterwards.
//!
//! The running watcher keeps those in force in a [`Board`] (`silencer`
//! fills it); a target's task asks it whether a raise is held
//! ([`Board::covering`]) and waits on it for the moment a held raise is
//! due ([`Board::changes`]).

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use wildmatch::WildMatch;

mod window;

pub(crate) use window::{parse_schedule, Window, MAX_WINDOW};

/// Most silences in force or to come that the watcher keeps (and that
/// may be added): each is matched against a target at every raise.
pub(crate) const MAX_ACTIVE: usize = 10_000;

/// Longest reason kept, in bytes (cut at a character boundary).
pub(crate) const MAX_REASON: usize = 1024;

/// Longest matcher, in bytes: a target's name is at most this long too.
pub(crate) const MAX_MATCHER: usize = 256;

/// Who made a silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `health-probe silence add`.
    Cli,
    /// `POST /api/v1/silences`.
    Api,
    /// A `[[maintenance]]` window of the config, by its name.
    Window(String),
}

impl Origin {
    /// As the database and the API write it: `cli`, `api`,
    /// `maintenance:NAME`.
    pub(crate) fn as_text(&self) -> String {
        match self {
            Origin::Cli => "cli".into(),
            Origin::Api => "api".into(),
            Origin::Window(name) => format!("maintenance:{name}"),
        }
    }

    /// Read back from [`Origin::as_text`]; an unknown word is taken as the
    /// CLI's (a newer watcher's origin, shown as made by hand).
    pub(crate) fn from_text(text: &str) -> Origin {
        match text {
            "api" => Origin::Api,
            t => match t.strip_prefix("maintenance:") {
                Some(name) => Origin::Window(name.to_string()),
                None => Origin::Cli,
            },
        }
    }
}

/// One silence, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Silence {
    /// The database's id; 0 for a window's silence not written yet.
    pub id: i64,
    /// A target's name, or a pattern with `*` and `?`.
    pub matcher: String,
    pub from: SystemTime,
    pub until: SystemTime,
    pub reason: String,
    /// Who asked for it (`--author`, `$USER`, the API's user).
    pub author: String,
    pub origin: Origin,
    pub created: SystemTime,
}

impl Silence {
    /// Whether it is in force at `at`.
    pub(crate) fn in_force(&self, at: SystemTime) -> bool {
        self.from <= at && at < self.until
    }
}

/// A silence as the API and `silence list --json` give it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SilenceView {
    pub id: i64,
    /// The target's name or the pattern.
    pub target: String,
    pub from: String,
    pub until: String,
    pub reason: String,
    pub author: String,
    /// `cli`, `api` or `maintenance:NAME`.
    pub origin: String,
    pub created: String,
    /// In force now (not ended, not to come).
    pub in_force: bool,
}

impl SilenceView {
    pub(crate) fn of(s: &Silence, now: SystemTime) -> SilenceView {
        let at = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
        SilenceView {
            id: s.id,
            target: s.matcher.clone(),
            from: at(s.from),
            until: at(s.until),
            reason: s.reason.clone(),
            author: s.author.clone(),
            origin: s.origin.as_text(),
            created: at(s.created),
            in_force: s.in_force(now),
        }
    }
}

/// Checks what a new silence is asked for (by the CLI or the API): a
/// matcher and a reason of sane size, an end after its start, at most a
/// year long. The text it returns is the whole problem.
pub(crate) fn check_new(
    matcher: &str,
    reason: &str,
    from: SystemTime,
    until: SystemTime,
) -> Result<(), String> {
    if matcher.is_empty() || matcher.len() > MAX_MATCHER || matcher.chars().any(char::is_control) {
        return Err(format!(
            "the target or pattern must be 1 to {MAX_MATCHER} bytes, no control characters"
        ));
    }
    if reason.trim().is_empty() {
        return Err(
            "a reason is required: say why, for whoever reads the page or the report".into(),
        );
    }
    if reason.len() > MAX_REASON || reason.chars().any(|c| c.is_control() && c != ' ') {
        return Err(format!(
            "the reason must be at most {MAX_REASON} bytes, no control characters"
        ));
    }
    match until.duration_since(from) {
        Ok(d) if d.is_zero() => Err("it must end after it begins".into()),
        Err(_) => Err("it must end after it begins".into()),
        Ok(d) if d > MAX_SILENCE => Err("a silence lasts at most 366 days".into()),
        Ok(_) => Ok(()),
    }
}

/// Longest silence.
pub(crate) const MAX_SILENCE: Duration = Duration::from_secs(366 * 86_400);

/// Reads a time as the CLI and the API take it: `now`, RFC 3339 with `Z`
/// or an offset, or `YYYY-MM-DD HH:MM[:SS]` (or with `T`) in local time.
pub(crate) fn parse_time(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    use chrono::{DateTime, Local, NaiveDateTime, TimeZone};
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.into());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return match Local.from_local_datetime(&naive) {
                chrono::LocalResult::Single(t) => Ok(t.into()),
                chrono::LocalResult::Ambiguous(..) => Err(format!(
                    "{} happens twice in local time (a clock change): give an offset",
                    health_probe::text::quoted(text)
                )),
                chrono::LocalResult::None => Err(format!(
                    "{} does not exist in local time (a clock change)",
                    health_probe::text::quoted(text)
                )),
            };
        }
    }
    Err(format!(
        "{}: give RFC 3339 (2026-12-04T10:00:00Z, or +01:00) or YYYY-MM-DD HH:MM in local time",
        health_probe::text::quoted(text)
    ))
}

/// Whether `matcher` has a wildcard (`*` or `?`): a pattern, not a name.
pub(crate) fn is_pattern(matcher: &str) -> bool {
    matcher.contains(['*', '?'])
}

/// A matcher, compiled once.
#[derive(Debug, Clone)]
pub(crate) struct Matcher(WildMatch);

impl Matcher {
    pub(crate) fn new(matcher: &str) -> Matcher {
        Matcher(WildMatch::new(matcher))
    }

    pub(crate) fn matches(&self, target: &str) -> bool {
        self.0.matches(target)
    }
}

/// What holds a target's raise: the silence in force that ends last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cover {
    pub id: i64,
    pub until: SystemTime,
    pub reason: String,
    pub origin: Origin,
}

/// The silences in force or to come, as the running watcher knows them.
pub(crate) struct Board {
    list: RwLock<Arc<Vec<(Silence, Matcher)>>>,
    /// Moves when the list changes.
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board").finish_non_exhaustive()
    }
}

impl Board {
    pub(crate) fn new() -> Arc<Board> {
        Arc::new(Board {
            list: RwLock::new(Arc::new(Vec::new())),
            changed: watch::Sender::new(0),
        })
    }

    /// Replaces the list (those ended are dropped); the waiting targets
    /// hear of it only if it differs.
    pub(crate) fn set(&self, mut silences: Vec<Silence>, now: SystemTime) {
        silences.retain(|s| s.until > now);
        silences.sort_by(|a, b| (a.from, a.id, &a.matcher).cmp(&(b.from, b.id, &b.matcher)));
        silences.truncate(MAX_ACTIVE);
        {
            let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
            if list.len() == silences.len() && list.iter().zip(&silences).all(|(a, b)| a.0 == *b) {
                return;
            }
            *list = Arc::new(
                silences
                    .into_iter()
                    .map(|s| {
                        let m = Matcher::new(&s.matcher);
                        (s, m)
                    })
                    .collect(),
            );
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Changes the list by `f` at once (a silence added or removed here),
    /// before the silencer reads it back from the database.
    pub(crate) fn amend(&self, now: SystemTime, f: impl FnOnce(&mut Vec<Silence>)) {
        let mut list = self.list();
        f(&mut list);
        self.set(list, now);
    }

    /// The silences in force or to come, earliest first.
    pub(crate) fn list(&self) -> Vec<Silence> {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner()).clone();
        list.iter().map(|(s, _)| s.clone()).collect()
    }

    /// How many silences are in force or to come.
    pub(crate) fn len(&self) -> usize {
        self.list.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The silence that holds `target`'s raise at `at`, if any: of those
    /// in force, the one that ends last.
    pub(crate) fn covering(&self, target: &str, at: SystemTime) -> Option<Cover> {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner()).clone();
        list.iter()
            .filter(|(s, m)| s.in_force(at) && m.matches(target))
            .max_by_key(|(s, _)| (s.until, s.id))
            .map(|(s, _)| Cover {
                id: s.id,
                until: s.until,
                reason: s.reason.clone(),
                origin: s.origin.clone(),
            })
    }

    /// Word of every change of the list.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Each target's maintenance within `[since, now]`, merged: the spans of
/// `silences` whose matcher matches it, clipped to the window. Targets
/// with none are absent. A matcher is tried once per target, however many
/// spans it has (a daily window has ten in ten days).
pub(crate) fn spans_by_target<'a>(
    silences: &[Silence],
    targets: impl IntoIterator<Item = &'a str>,
    since: SystemTime,
    now: SystemTime,
) -> std::collections::HashMap<String, Vec<(SystemTime, SystemTime)>> {
    let mut by_matcher: std::collections::BTreeMap<&str, Vec<(SystemTime, SystemTime)>> =
        Default::default();
    for s in silences {
        let (a, b) = (s.from.max(since), s.until.min(now));
        if a < b {
            by_matcher.entry(&s.matcher).or_default().push((a, b));
        }
    }
    let compiled: Vec<(Matcher, &Vec<(SystemTime, SystemTime)>)> = by_matcher
        .iter()
        .map(|(m, spans)| (Matcher::new(m), spans))
        .collect();
    let mut out = std::collections::HashMap::new();
    for target in targets {
        let mut spans: Vec<(SystemTime, SystemTime)> = compiled
            .iter()
            .filter(|(m, _)| m.matches(target))
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        if !spans.is_empty() {
            out.insert(target.to_string(), merge(&mut spans));
        }
    }
    out
}

/// `spans` sorted and merged where they overlap or touch.
pub(crate) fn merge(spans: &mut [(SystemTime, SystemTime)]) -> Vec<(SystemTime, SystemTime)> {
    spans.sort();
    let mut out: Vec<(SystemTime, SystemTime)> = Vec::with_capacity(spans.len());
    for &(a, b) in spans.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// How much of `span` the merged `spans` cover.
pub(crate) fn overlap(
    span: (SystemTime, SystemTime),
    spans: &[(SystemTime, SystemTime)],
) -> Duration {
    spans
        .iter()
        .map(|&(a, b)| {
            let (a, b) = (a.max(span.0), b.min(span.1));
            b.duration_since(a).unwrap_or_default()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(id: i64, matcher: &str, from: SystemTime, until: SystemTime) -> Silence {
        Silence {
            id,
            matcher: matcher.into(),
            from,
            until,
            reason: format!("reason {id}"),
            author: "ops".into(),
            origin: Origin::Cli,
            created: from,
        }
    }

    #[test]
    fn the_silence_in_force_that_ends_last_covers_a_matching_target() {
        let now = SystemTime::now();
        let s = |n: u64| now + Duration::from_secs(n);
        let board = Board::new();
        let mut changes = board.changes();
        board.set(
            vec![
                silence(1, "web-*", s(0), s(100)),
                silence(2, "web-1", s(0), s(200)),
                silence(3, "db-?", s(50), s(300)),
                silence(4, "gone", now - Duration::from_secs(10), s(0)),
            ],
            now,
        );
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert_eq!(board.list().len(), 3, "the ended one is dropped");
        assert_eq!(board.covering("web-1", s(1)).unwrap().id, 2);
        assert_eq!(board.covering("web-22", s(1)).unwrap().id, 1);
        assert_eq!(board.covering("web-22", s(100)), None, "until is not in it");
        assert_eq!(board.covering("db-1", s(10)), None, "not yet");
        assert_eq!(board.covering("db-1", s(60)).unwrap().until, s(300));
        assert_eq!(board.covering("db-12", s(60)), None, "? is one character");
        assert_eq!(board.covering("xweb-1", s(1)), None);
        // The same list again is no change.
        board.set(board.list(), now);
        assert!(!changes.has_changed().unwrap());
    }

    #[test]
    fn spans_are_per_target_merged_and_clipped() {
        let now = SystemTime::now();
        let ago = |n: u64| now - Duration::from_secs(n);
        let list = [
            silence(1, "web-*", ago(500), ago(300)),
            silence(2, "web-1", ago(400), ago(200)),
            silence(3, "web-*", ago(2000), ago(1500)),
            silence(4, "db", ago(50), now + Duration::from_secs(60)),
        ];
        let spans = spans_by_target(&list, ["web-1", "web-2", "db", "other"], ago(1000), now);
        assert_eq!(spans["web-1"], vec![(ago(500), ago(200))]);
        assert_eq!(spans["web-2"], vec![(ago(500), ago(300))]);
        assert_eq!(spans["db"], vec![(ago(50), now)]);
        assert!(!spans.contains_key("other"));
        assert_eq!(
            overlap((ago(450), ago(100)), &spans["web-1"]),
            Duration::from_secs(250)
        );
    }

    #[test]
    fn times_and_new_silences_are_checked() {
        let now = SystemTime::now();
        let t = |s: &str| parse_time(s, now);
        assert_eq!(t("now"), Ok(now));
        let z = t("2026-12-04T10:00:00Z").unwrap();
        assert_eq!(t("2026-12-04T11:00:00+01:00"), Ok(z));
        assert!(t("2026-12-04 10:00").is_ok() && t("2026-12-04T10:00:30").is_ok());
        for bad in ["", "yesterday", "2026-13-01 10:00", "10:00"] {
            assert!(t(bad).is_err(), "{bad:?}");
        }
        let h = |n: u64| now + Duration::from_secs(n * 3600);
        assert!(check_new("web-*", "patching", now, h(2)).is_ok());
        assert!(check_new("", "patching", now, h(2)).is_err());
        assert!(
            check_new("web\n1", "x", now, h(2)).is_err(),
            "control characters"
        );
        assert!(check_new("web-1", "x\u{1b}[2J", now, h(2)).is_err());
        assert!(
            check_new("web-1", "  ", now, h(2)).is_err(),
            "a reason is required"
        );
        assert!(check_new("web-1", "x", h(2), h(1)).is_err());
        assert!(check_new("web-1", "x", now, now).is_err());
        assert!(check_new("web-1", "x", now, h(24 * 367)).is_err());
        assert!(check_new(&"w".repeat(MAX_MATCHER + 1), "x", now, h(1)).is_err());
    }

    #[test]
    fn origins_read_back_as_written() {
        for o in [Origin::Cli, Origin::Api, Origin::Window("sunday".into())] {
            assert_eq!(Origin::from_text(&o.as_text()), o);
        }
        assert!(is_pattern("web-*") && is_pattern("db-?") && !is_pattern("web-1"));
    }
}
