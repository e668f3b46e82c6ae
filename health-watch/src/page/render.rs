//! The status page's HTML, with maud: every value spliced in is escaped
//! (names and addresses from the config, details from the network), and
//! the style and script are this file's own, inline: no asset from
//! outside.

use std::time::SystemTime;

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::Line;
use crate::uptime::HOURS;

/// The list's title, and the end of every other page's.
const SITE: &str = "health-probe watch";
const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("live.js");
/// Width of one hour in the 24-hour bar.
const HOUR_WIDTH: usize = 6;
/// Most characters of a detail shown in the list (the rest in its title).
const DETAIL_SHOWN: usize = 120;

/// What the list says of a target, in the order it is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Shown {
    /// The alarm is raised.
    Alarm,
    /// The last check failed; not enough in a row to raise the alarm.
    Failing,
    /// Not checked yet.
    Pending,
    /// The last check passed.
    Up,
}

impl Shown {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Shown::Alarm => "alarm",
            Shown::Failing => "failing",
            Shown::Pending => "pending",
            Shown::Up => "up",
        }
    }
}

/// One page of the list and what surrounds it.
pub(crate) struct List<'a, U: Fn(&str) -> Option<(f64, f64)>> {
    pub lines: &'a [Line],
    pub total: usize,
    pub open: usize,
    pub page: usize,
    pub pages: usize,
    pub filter: Option<&'a str>,
    pub now: SystemTime,
    /// A target's uptime over 24 hours and 10 days, when the history
    /// could be read.
    pub uptime: U,
}

/// The address of target `name`'s page (`/target/NAME`).
pub(crate) fn target_link(name: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    // The path form of `name`: `+` is a space only in queries.
    format!("/target/{}", encoded.replace('+', "%20"))
}

/// The frame every page shares: its title, the style, links to the list
/// and the report.
pub(crate) fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) @if title != SITE { " · " (SITE) } }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { (title) }
                    nav { a href="/" { "All targets" } " · " a href="/report" { "Report" } " · " a href="/silences" { "Silences" } }
                }
                (body)
            }
        }
    }
}

/// The whole list page: its filter, the list, and the script that keeps
/// it live.
pub(crate) fn page<U: Fn(&str) -> Option<(f64, f64)>>(l: &List<'_, U>) -> Markup {
    layout(
        SITE,
        html! {
            form method="get" action="/" class="filter" {
                input type="search" name="q" value=[l.filter] placeholder="filter: name or address" aria-label="filter";
                button type="submit" { "Filter" }
            }
            main id="targets" { (list(l)) }
            footer { "Read-only. Updates live while this page is open; without JavaScript, reload it." }
            script { (PreEscaped(SCRIPT)) }
        },
    )
}

/// What the uptime columns count, said under the list.
const UPTIME_NOTE: &str = "Uptime: the share of the last 24 hours or 10 days out of alarm, counted from the target's first check (time before it is not counted); until its first passing check a target counts as down. Time under a silence or maintenance window counts as neither up nor down. — before its first check.";

/// The list: what `/?fragment=1` returns for the script to put in place.
pub(crate) fn list<U: Fn(&str) -> Option<(f64, f64)>>(l: &List<'_, U>) -> Markup {
    html! {
        p class="summary" {
            strong { (l.total) } " targets · "
            strong class=[(l.open > 0).then_some("bad")] { (l.open) }
            @if l.open == 1 { " alarm open" } @else { " alarms open" }
            @if let Some(f) = l.filter { " · filtered by “" (f) "”" }
            " · as of " time datetime=(rfc3339(l.now)) { (clock(l.now)) }
        }
        table {
            thead {
                tr {
                    th { "target" } th { "kind" } th { "address" } th { "state" } th { "why" }
                    th { "last check" } th class="num" { "RTT" } th { "last 24 h" }
                    th class="num" title=(UPTIME_NOTE) { "24 h*" }
                    th class="num" title=(UPTIME_NOTE) { "10 d*" }
                }
            }
            tbody {
                @for line in l.lines { (row(line, l)) }
            }
        }
        @if l.lines.is_empty() { p { "No target matches." } }
        p class="note" { "* " (UPTIME_NOTE) }
        @if l.pages > 1 { (pager(l)) }
    }
}

fn row<U: Fn(&str) -> Option<(f64, f64)>>(line: &Line, l: &List<'_, U>) -> Markup {
    let s = &line.status;
    let why = match (line.class, line.reason) {
        (Some(c), Some(r)) => format!("{c} {r}"),
        (Some(c), None) => c.to_string(),
        _ => String::new(),
    };
    let detail = health_probe::text::cut(&line.detail, DETAIL_SHOWN);
    html! {
        tr class=(line.state.word()) data-target=(s.name) {
            td class="name" {
                @if let Some(p) = &line.under { span class="under" title=(format!("depends on {p}, which is raised")) { "↳ " } }
                a href=(target_link(&s.name)) { (s.name) }
                @if line.paused { " " span class="mark" title="paused after errors in a row; a reload resumes it" { "paused" } }
                @if line.flapping { " " span class="mark" title="raising and clearing too often: actions held" { "flapping" } }
                @if let Some(c) = &line.silenced { " " span class="mark" title=(silence_title(c)) { "silenced" } }
                @if line.held == Some(crate::event::Hold::Unreachable) { " " span class="mark" title="raised while a target it depends on was raised: no action, no alert until that one clears" { "unreachable" } }
                @if let Some(p) = &line.path { " " span class="mark" title=(format!("path fault: fails from {} only, too few vantage points for the quorum", p.join(", "))) { "path" } }
            }
            td { (s.kind) }
            td class="addr" { (s.addr) }
            td class="state" { span class="badge" { (line.state.word()) } }
            td class="why" title=(line.detail) {
                @if !why.is_empty() { strong { (why) } " " }
                (detail)
            }
            td {
                @match line.last {
                    Some(at) => time datetime=(rfc3339(at)) { (clock(at)) },
                    None => "—",
                }
            }
            td class="num" {
                @match line.rtt {
                    Some(rtt) => (format!("{:.1} ms", rtt.as_secs_f64() * 1000.0)),
                    None => "—",
                }
            }
            td { (bar(line)) }
            @match (l.uptime)(&s.name) {
                Some((day, ten)) => {
                    td class="num" { (percent(day)) }
                    td class="num" { (percent(ten)) }
                }
                None => { td class="num" { "—" } td class="num" { "—" } }
            }
        }
    }
}

/// What a silenced mark says when pointed at.
pub(crate) fn silence_title(c: &crate::silence::Cover) -> String {
    let by = match &c.origin {
        crate::silence::Origin::Window(name) => format!("maintenance window {name}"),
        _ => format!("silence {}", c.id),
    };
    format!(
        "{by} until {}: {}; raises run no action and send no alert",
        rfc3339(c.until),
        health_probe::text::cut(&c.reason, 200)
    )
}

/// The last 24 hours, an hour per bar, coloured by its worst check.
fn bar(line: &Line) -> Markup {
    let width = HOURS * HOUR_WIDTH;
    html! {
        svg class="day" width=(width) height="14" viewBox=(format!("0 0 {width} 14")) role="img"
            aria-label=(day_label(line)) {
            @for (i, h) in line.day.iter().enumerate() {
                rect class=(h.worst.class()) x=(i * HOUR_WIDTH) y="0" width=(HOUR_WIDTH - 1) height="14" {}
            }
        }
    }
}

fn day_label(line: &Line) -> String {
    let (passed, failed) = line.day.iter().fold((0u64, 0u64), |(p, f), h| {
        (p + u64::from(h.passed), f + u64::from(h.failed))
    });
    format!("last 24 hours: {passed} checks passed, {failed} failed")
}

fn pager<U: Fn(&str) -> Option<(f64, f64)>>(l: &List<'_, U>) -> Markup {
    let link = |page: usize| match l.filter {
        Some(f) => format!(
            "/?page={page}&q={}",
            form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>()
        ),
        None => format!("/?page={page}"),
    };
    html! {
        nav class="pages" aria-label="pages" {
            @if l.page > 1 { a href=(link(l.page - 1)) rel="prev" { "← previous" } " " }
            "page " (l.page) " of " (l.pages)
            @if l.page < l.pages { " " a href=(link(l.page + 1)) rel="next" { "next →" } }
        }
    }
}

/// Rounded down: a target that spent a second in alarm is not "100.00%".
fn percent(p: f64) -> String {
    if p >= 100.0 {
        "100%".into()
    } else {
        format!("{:.2}%", (p * 100.0).floor() / 100.0)
    }
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `HH:MM:SSZ`, or the date too when not today.
fn clock(t: SystemTime) -> String {
    let full = rfc3339(t);
    let today = rfc3339(SystemTime::now());
    if full.get(..10) == today.get(..10) {
        full.get(11..).unwrap_or(&full).to_string()
    } else {
        full.replace('T', " ")
    }
}
