//! `[[maintenance]]` tables: recurring windows in which some targets are
//! silenced (`crate::silence`).
//!
//! ```toml
//! [[maintenance]]
//! name = "sunday-patching"
//! targets = ["db-*", "web-1"]   # names, or patterns with * and ?
//! schedule = "0 2 * * SUN"      # crontab's fields, local time
//! duration = "2h"
//! reason = "OS patches"
//! ```

use std::collections::HashSet;
use std::ops::Range;

use serde::Deserialize;
use toml::de::DeTable;
use toml::Spanned;

use super::document::{self, Lines};
use super::validate::Validator;
use super::{ConfigError, Dur};
use crate::silence::{self, Window, MAX_MATCHER, MAX_REASON, MAX_WINDOW};

/// Most windows in one config.
const MAX_WINDOWS: usize = 1000;
/// Openings looked at for the shortest time between two.
const GAPS_LOOKED_AT: usize = 60;
/// Most names and patterns in one window.
const MAX_MATCHERS: usize = 1000;

/// One `[[maintenance]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWindow {
    name: Spanned<String>,
    targets: Spanned<Vec<Spanned<String>>>,
    schedule: Spanned<String>,
    duration: Spanned<Dur>,
    reason: Option<Spanned<String>>,
}

/// The `[[maintenance]]` tables, taken out of `top` and read (each with
/// where it is; `None`: its problems are reported already).
pub(super) fn take(
    top: &mut DeTable<'_>,
    lines: &Lines<'_>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(Range<usize>, Option<RawWindow>)> {
    document::take_tables(top, "maintenance", lines, errors)
        .into_iter()
        .map(|t| (t.span(), document::read(t, lines, errors)))
        .collect()
}

/// The windows, each checked: a unique name, names of targets the config
/// has (patterns may match none yet), a schedule cron can read, a
/// duration from a second to a month.
pub(super) fn validate(
    v: &mut Validator<'_>,
    raw: Vec<(Range<usize>, Option<RawWindow>)>,
    targets: &HashSet<&str>,
) -> Vec<Window> {
    if let Some((span, _)) = raw.get(MAX_WINDOWS) {
        v.error(
            span.clone(),
            format!("more than {MAX_WINDOWS} [[maintenance]] windows"),
        );
    }
    let mut names = HashSet::new();
    let mut windows = Vec::new();
    for raw in raw.into_iter().filter_map(|(_, w)| w) {
        let mut ok = true;
        let name = raw.name.get_ref();
        let well_named = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !well_named {
            v.error(
                raw.name.span(),
                format!(
                    "maintenance name {} must be 1 to 64 letters, digits, _, - or .",
                    health_probe::text::quoted(name)
                ),
            );
            ok = false;
        } else if !names.insert(name.clone()) {
            v.error(
                raw.name.span(),
                format!("maintenance {name} is given twice"),
            );
            ok = false;
        }
        let list = raw.targets.get_ref();
        if list.is_empty() {
            v.error(
                raw.targets.span(),
                "targets must name at least one target or pattern",
            );
            ok = false;
        }
        if list.len() > MAX_MATCHERS {
            v.error(
                raw.targets.span(),
                format!("more than {MAX_MATCHERS} targets"),
            );
            ok = false;
        }
        for m in list {
            let text = m.get_ref();
            let shown = health_probe::text::quoted(text);
            if text.is_empty() || text.len() > MAX_MATCHER || text.chars().any(char::is_control) {
                v.error(
                    m.span(),
                    format!(
                        "target {shown} must be 1 to {MAX_MATCHER} bytes, no control characters"
                    ),
                );
                ok = false;
            } else if !silence::is_pattern(text) && !targets.contains(text.as_str()) {
                v.error(
                    m.span(),
                    format!("no target is named {shown} (a pattern uses * or ?)"),
                );
                ok = false;
            }
        }
        let schedule = match silence::parse_schedule(raw.schedule.get_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                v.error(raw.schedule.span(), e);
                None
            }
        };
        let duration = raw.duration.get_ref().0;
        if duration.as_secs() < 1 || duration > MAX_WINDOW {
            v.error(raw.duration.span(), "duration must be from 1s to 31d");
            ok = false;
        }
        let reason = match &raw.reason {
            Some(r) if r.get_ref().len() > MAX_REASON => {
                v.error(
                    r.span(),
                    format!("reason is longer than {MAX_REASON} bytes"),
                );
                ok = false;
                String::new()
            }
            Some(r) => r.get_ref().clone(),
            None => format!("maintenance {name}"),
        };
        if let (true, Some(schedule)) = (ok, schedule) {
            let window = Window {
                name: name.clone(),
                targets: list.iter().map(|m| m.get_ref().clone()).collect(),
                schedule_text: raw.schedule.get_ref().clone(),
                schedule,
                duration,
                reason,
            };
            // Openings that overlap would each be a silence of their own:
            // one window is in force once at a time.
            let gap = window.shortest_gap(std::time::SystemTime::now(), GAPS_LOOKED_AT);
            match gap {
                Some(gap) if duration > gap => v.error(
                    raw.duration.span(),
                    format!(
                        "duration {} is longer than the time between openings ({}): they would overlap",
                        humantime::format_duration(duration),
                        humantime::format_duration(gap)
                    ),
                ),
                _ => windows.push(window),
            }
        }
    }
    windows
}
