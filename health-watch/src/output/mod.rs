//! What the watcher tells: plain log lines (stdout not a terminal), a JSON
//! event stream (`--json`), or a live table refreshing in place (stdout a
//! terminal). Every notice goes through [`Output::notice`], whatever the
//! mode.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::alarm::Phase;
use crate::check::Observation;
use crate::event::Event;
use crate::registry::{Registry, Stats};
use crate::store::{ActionRecord, EventRecord};
use health_probe::text::shown;

/// How the watcher reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Log,
    Json,
    Live,
}

/// `1 target`, `5 targets`.
pub(crate) fn targets_counted(n: usize) -> String {
    format!("{n} target{}", if n == 1 { "" } else { "s" })
}

/// Something to tell.
pub(crate) enum Notice {
    Started {
        targets: usize,
        database: String,
        max_in_flight: usize,
    },
    /// An alarm event, with its history id if it was recorded.
    Event {
        id: Option<i64>,
        event: EventRecord,
    },
    Action {
        event: EventRecord,
        record: ActionRecord,
    },
    Check {
        target: String,
        kind: &'static str,
        addr: String,
        observation: Observation,
    },
    Reloaded {
        kept: usize,
        added: usize,
        changed: usize,
        removed: usize,
        resumed: usize,
    },
    ReloadFailed(String),
    /// A silence came into force, or ended (its time was up, or it was
    /// removed).
    Silence {
        silence: crate::silence::Silence,
        in_force: bool,
    },
    Stats(Stats),
    Warning(String),
    /// Something that needs an operator: an action that could not start,
    /// a database that is gone or cannot be written.
    Error(String),
    Stopping(String),
}

/// Lines kept under the live table.
const RECENT: usize = 8;

pub(crate) struct Output {
    mode: Mode,
    recent: Mutex<VecDeque<String>>,
    /// What the live table shows.
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").finish_non_exhaustive()
    }
}

impl Output {
    pub(crate) fn new(mode: Mode, registry: Arc<Registry>) -> Arc<Output> {
        Arc::new(Output {
            mode,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            registry,
        })
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    pub(crate) fn notice(&self, n: Notice) {
        if let (Notice::Error(e), Mode::Json) = (&n, self.mode) {
            // The JSON stream is for programs; a person reads stderr.
            eprintln!("health-probe: error: {}", shown(e));
        }
        match self.mode {
            Mode::Json => print_line(&json_line(&n).to_string()),
            Mode::Log => print_line(&format!(
                "{} {}",
                humantime::format_rfc3339_seconds(SystemTime::now()),
                text(&n)
            )),
            Mode::Live => {
                if matches!(n, Notice::Check { .. } | Notice::Stats(_)) {
                    return;
                }
                let line = format!(
                    "{} {}",
                    humantime::format_rfc3339_seconds(SystemTime::now()),
                    text(&n)
                );
                let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
                if recent.len() == RECENT {
                    recent.pop_front();
                }
                recent.push_back(line);
            }
        }
    }

    /// Draws the live table once, fitted to the terminal.
    pub(crate) fn draw(&self, out: &mut impl Write) -> io::Result<()> {
        use crossterm::{cursor, queue, style, terminal};
        // A pseudo-terminal nobody sized says 0x0.
        let (width, height) = terminal::size()
            .ok()
            .filter(|(w, h)| *w > 0 && *h > 0)
            .unwrap_or((120, 40));
        let (width, height) = (width as usize, height as usize);
        let targets = self.registry.targets();
        let now = SystemTime::now();
        let mut rows: Vec<(Phase, String, [String; 7], String)> = targets
            .iter()
            .map(|t| {
                let row = t.row();
                let phase = row.alarm.phase();
                let (last, rtt, detail) = match &row.last {
                    Some(o) => (
                        match o.reason {
                            Some(r) => format!("{} {r}", o.class.as_str()),
                            None => o.class.as_str().to_string(),
                        },
                        o.rtt.map(ms).unwrap_or_default(),
                        shown(&o.detail).into_owned(),
                    ),
                    None => (String::new(), String::new(), String::new()),
                };
                let since = now
                    .duration_since(row.alarm.since)
                    .map(short)
                    .unwrap_or_default();
                let name = shown(&t.name).into_owned();
                (
                    phase,
                    name.clone(),
                    [
                        name,
                        format!("{} {}", t.kind, shown(&t.addr)),
                        // A held raise says why it ran nothing yet.
                        match row.held {
                            Some(crate::event::Hold::Silence(_)) => {
                                format!("{} (silenced)", phase.as_str())
                            }
                            Some(crate::event::Hold::Unreachable) => {
                                format!("{} (unreachable)", phase.as_str())
                            }
                            None if row.path.as_ref().is_some_and(|p| p.raised()) => {
                                format!("{} (path)", phase.as_str())
                            }
                            None => phase.as_str().to_string(),
                        },
                        since,
                        last,
                        rtt,
                        row.alarms.to_string(),
                    ],
                    detail,
                )
            })
            .collect();
        rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let stats = self.registry.stats();
        let count = |p: Phase| rows.iter().filter(|r| r.0 == p).count();
        let mut lines = vec![format!(
            "health-probe watch: {}, {} in alarm, {} flapping, {} paused, {} failing; {} checks, {} in flight",
            targets_counted(rows.len()),
            count(Phase::Alarm) + count(Phase::Recovering),
            count(Phase::Flapping),
            count(Phase::Paused),
            count(Phase::Failing),
            stats.checks,
            stats.in_flight,
        )];
        let header = ["TARGET", "CHECK", "STATE", "SINCE", "LAST", "RTT", "ALARMS"];
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for (_, _, cells, _) in &rows {
            for (w, c) in widths.iter_mut().zip(cells.iter()) {
                *w = (*w).max(c.chars().count()).min(40);
            }
        }
        let format_row = |cells: &[String], detail: &str| {
            let mut line = String::new();
            for (c, w) in cells.iter().zip(&widths) {
                let c: String = c.chars().take(*w).collect();
                line.push_str(&format!("{c:<w$}  "));
            }
            line.push_str(detail);
            line
        };
        lines.push(String::new());
        lines.push(format_row(&header.map(String::from), "DETAIL"));
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let room = height.saturating_sub(lines.len() + recent.len() + 3).max(1);
        let shown = rows.len().min(room);
        for (_, _, cells, detail) in rows.iter().take(shown) {
            lines.push(format_row(cells, detail));
        }
        if shown < rows.len() {
            lines.push(format!(
                "... {} more (healthy ones last)",
                rows.len() - shown
            ));
        }
        lines.push(String::new());
        lines.extend(recent);
        queue!(out, cursor::MoveTo(0, 0))?;
        for line in lines.iter().take(height) {
            let line: String = line.chars().take(width).collect();
            queue!(
                out,
                style::Print(line),
                terminal::Clear(terminal::ClearType::UntilNewLine),
                cursor::MoveToNextLine(1)
            )?;
        }
        queue!(out, terminal::Clear(terminal::ClearType::FromCursorDown))?;
        out.flush()
    }
}

fn print_line(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{ms:.1}ms")
    }
}

/// `3m12s`, `2h5m`, `4d1h`: two units at most.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn target_label(e: &EventRecord) -> String {
    format!("{} ({} {})", shown(&e.target), e.kind, shown(&e.addr))
}

/// The one-line text form of a notice.
pub(crate) fn text(n: &Notice) -> String {
    match n {
        Notice::Started {
            targets,
            database,
            max_in_flight,
        } => format!(
            "start watching {}, at most {max_in_flight} checks at once, history in {database}",
            targets_counted(*targets)
        ),
        Notice::Event { event: e, .. } => {
            let class = match (e.class, e.reason) {
                (Some(c), Some(r)) => format!(" {c} {r}"),
                (Some(c), None) => format!(" {c}"),
                _ => String::new(),
            };
            let why = match e.event {
                Event::Raise => format!(" after {} failures in a row", e.count),
                Event::Clear => format!(" after {} successes in a row", e.count),
                Event::Pause => format!(
                    " after {} errors in a row; checks resume on reload (SIGHUP)",
                    e.count
                ),
                _ => String::new(),
            };
            let detail = if e.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", shown(&e.detail))
            };
            let held = match (e.event, e.held, e.silence) {
                (Event::Raise, true, _) if e.class == Some(crate::event::UNREACHABLE) => {
                    " [held: a target it depends on is raised; no action, no alert until it clears]"
                        .to_string()
                }
                (Event::Raise, true, Some(id)) => {
                    format!(" [held by silence {id}: no action, no alert while it lasts]")
                }
                (Event::Clear, true, _) => " [its raise was held: no action, no alert]".into(),
                _ => String::new(),
            };
            format!("{} {}{class}{why}{held}{detail}", e.event, target_label(e))
        }
        Notice::Action { event, record } => {
            let exit = record
                .exit_code
                .map(|c| format!(" exit {c}"))
                .unwrap_or_default();
            let output = if record.output.is_empty() {
                String::new()
            } else {
                format!(": {}", shown(record.output.lines().next().unwrap_or("")))
            };
            format!(
                "action {} for {}: {}{exit} in {} `{}`{output}",
                target_label(event),
                event.event,
                record.outcome,
                ms(record.duration),
                shown(&record.command)
            )
        }
        Notice::Check {
            target,
            kind,
            addr,
            observation: o,
        } => {
            let reason = o.reason.map(|r| format!(" {r}")).unwrap_or_default();
            let rtt = o.rtt.map(|d| format!(" rtt={}", ms(d))).unwrap_or_default();
            let slow = o
                .speed
                .label()
                .map(|s| format!(" slow={s}"))
                .unwrap_or_default();
            format!(
                "check {} ({kind} {}) {}{reason}{rtt}{slow}: {}",
                shown(target),
                shown(addr),
                o.class.as_str(),
                shown(&o.detail)
            )
        }
        Notice::Reloaded {
            kept,
            added,
            changed,
            removed,
            resumed,
        } => format!(
            "reload: {kept} kept, {added} added, {changed} changed, {removed} removed, {resumed} resumed"
        ),
        Notice::ReloadFailed(e) => format!(
            "reload failed, still running the previous config: {}",
            shown(&e.to_string())
        ),
        Notice::Stats(s) => format!(
            "stats targets={} checks={} failed={} in_flight={} max_lag_ms={:.1} alarms={} paused={}",
            s.targets,
            s.checks,
            s.failed,
            s.in_flight,
            s.max_lag.as_secs_f64() * 1000.0,
            s.alarms,
            s.paused
        ),
        Notice::Silence { silence: s, in_force } => {
            let by = match &s.origin {
                crate::silence::Origin::Window(name) => format!("maintenance {name}"),
                _ => s.author.clone(),
            };
            if *in_force {
                format!(
                    "silence {} in force for {} until {} (by {}): {}",
                    s.id,
                    shown(&s.matcher),
                    humantime::format_rfc3339_seconds(s.until),
                    shown(&by),
                    shown(&s.reason)
                )
            } else {
                format!("silence {} ended for {}", s.id, shown(&s.matcher))
            }
        }
        Notice::Warning(w) => format!("warning: {}", shown(&w.to_string())),
        Notice::Error(e) => format!("error: {}", shown(&e.to_string())),
        Notice::Stopping(why) => format!("stop: {why}"),
    }
}

fn event_json(e: &EventRecord) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("target".into(), json!(e.target));
    m.insert("kind".into(), json!(e.kind));
    m.insert("addr".into(), json!(e.addr));
    m.insert("class".into(), json!(e.class));
    m.insert("reason".into(), json!(e.reason));
    m.insert("detail".into(), json!(e.detail));
    m.insert(
        "rtt_ms".into(),
        json!(e.rtt.map(|d| d.as_secs_f64() * 1000.0)),
    );
    m.insert("count".into(), json!(e.count));
    m.insert("silence".into(), json!(e.silence));
    m.insert("held".into(), json!(e.held));
    m
}

/// The JSON form of a notice: one object, `event` first says what it is.
pub(crate) fn json_line(n: &Notice) -> serde_json::Value {
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    match n {
        Notice::Started {
            targets,
            database,
            max_in_flight,
        } => json!({"event": "start", "time": time, "targets": targets,
                    "database": database, "max_in_flight": max_in_flight}),
        Notice::Event { id, event } => {
            let mut m = event_json(event);
            m.insert("event".into(), json!(event.event.as_str()));
            m.insert(
                "time".into(),
                json!(humantime::format_rfc3339_millis(event.time).to_string()),
            );
            m.insert("id".into(), json!(id));
            serde_json::Value::Object(m)
        }
        Notice::Action { event, record } => json!({
            "event": "action", "time": time, "target": event.target,
            "for": event.event.as_str(), "event_id": record.event_id,
            "command": record.command, "outcome": record.outcome.as_str(),
            "exit_code": record.exit_code,
            "duration_ms": record.duration.as_secs_f64() * 1000.0,
            "output": record.output,
        }),
        Notice::Check {
            target,
            kind,
            addr,
            observation: o,
        } => json!({
            "event": "check",
            "time": humantime::format_rfc3339_millis(o.at).to_string(),
            "target": target, "kind": kind, "addr": addr,
            "class": o.class.as_str(), "reason": o.reason, "detail": o.detail,
            "rtt_ms": o.rtt.map(|d| d.as_secs_f64() * 1000.0),
            "slow": o.speed.label(), "failed": o.failed(),
        }),
        Notice::Reloaded {
            kept,
            added,
            changed,
            removed,
            resumed,
        } => json!({"event": "reload", "time": time, "kept": kept, "added": added,
                    "changed": changed, "removed": removed, "resumed": resumed}),
        Notice::ReloadFailed(e) => json!({"event": "reload-failed", "time": time, "error": e}),
        Notice::Stats(s) => json!({
            "event": "stats", "time": time, "targets": s.targets, "checks": s.checks,
            "failed": s.failed, "in_flight": s.in_flight,
            "max_lag_ms": s.max_lag.as_secs_f64() * 1000.0,
            "alarms": s.alarms, "paused": s.paused,
        }),
        Notice::Silence {
            silence: s,
            in_force,
        } => json!({
            "event": if *in_force { "silence" } else { "silence-ended" },
            "time": time, "id": s.id, "target": s.matcher,
            "from": humantime::format_rfc3339_seconds(s.from).to_string(),
            "until": humantime::format_rfc3339_seconds(s.until).to_string(),
            "reason": s.reason, "author": s.author, "origin": s.origin.as_text(),
        }),
        Notice::Warning(w) => json!({"event": "warning", "time": time, "message": w}),
        Notice::Error(e) => json!({"event": "error", "time": time, "message": e}),
        Notice::Stopping(why) => json!({"event": "stop", "time": time, "reason": why}),
    }
}

#[cfg(test)]
mod tests;
