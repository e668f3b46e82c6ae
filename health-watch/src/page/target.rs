//! `/target/NAME`: one target: its state and why, a chart of its last
//! checks' round trips (kept in memory, [`crate::uptime::Recent`]), and
//! its events of the last 10 days from the history: on a time line, with
//! the round trip of the check behind each, and listed with their
//! actions.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};

use super::render::layout;
use super::Pages;
use crate::history;
use crate::uptime::Sample;

/// Events listed, the latest first.
const EVENTS: usize = 100;
/// Events on the time line at most (the latest): a target that flaps for
/// 10 days cannot make a page, or its memory, grow without bound.
const CHART_EVENTS: usize = 2000;
/// Most bytes of an event's detail shown.
const DETAIL: usize = 512;
/// How far back the events go.
const EVENTS_SINCE: Duration = Duration::from_secs(10 * 86_400);
const CHART_WIDTH: f64 = 720.0;
const CHART_HEIGHT: f64 = 160.0;
/// Room on the left for the axis labels.
const LEFT: f64 = 56.0;

pub(super) async fn page(State(pages): State<Arc<Pages>>, Path(name): Path<String>) -> Response {
    let Some(status) = pages.watched.targets().into_iter().find(|s| s.name == name) else {
        let body = html! { p { "No target named “" (name) "” is watched." } p { a href="/" { "All targets" } } };
        return (
            StatusCode::NOT_FOUND,
            Html(layout("Unknown target", body).into_string()),
        )
            .into_response();
    };
    let now = std::time::SystemTime::now();
    let line = super::line(&status, &pages.silences, now);
    let (samples, alarms, checks) = {
        let row = status.row();
        (row.recent.samples(), row.alarms, row.checks)
    };
    let path = pages.database.clone();
    let target = name.clone();
    let events = tokio::task::spawn_blocking(move || {
        history::last_rows(&path, EVENTS_SINCE, Some(&target), CHART_EVENTS, DETAIL)
            .map(|(_, rows)| rows)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let body = html! {
        table class="facts" {
            tr { th { "kind" } td { (status.kind) } }
            tr { th { "address" } td class="addr" { (status.addr) } }
            tr { th { "state" } td class=(line.state.word()) { span class="badge" { (line.state.word()) }
                @if line.paused { " " span class="mark" { "paused" } }
                @if line.flapping { " " span class="mark" { "flapping" } }
                @if let Some(c) = &line.silenced { " " span class="mark" title=(super::render::silence_title(c)) { "silenced" } } } }
            @if let Some(c) = line.class {
                tr { th { "why" } td class="why" { strong { (c) " " (line.reason.unwrap_or("")) } " " (line.detail) } }
            }
            @if !line.points.is_empty() {
                tr { th { "vantage points" } td {
                    @for (i, (name, state)) in line.points.iter().enumerate() {
                        @if i > 0 { " · " }
                        (name) ": " (point_word(*state))
                    }
                    @if line.path.is_some() { " " span class="mark" { "path fault" } }
                } }
            }
            tr { th { "alarms raised" } td { (alarms) } }
            tr { th { "checks" } td {
                (crate::registry::CLASSES.iter().zip(checks).map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(" · "))
            } }
        }
        h2 { "Round trip, last " (samples.len()) " checks" }
        (chart(&samples))
        h2 { "Events, last 10 days" }
        @if let Ok(rows) = &events { (history_chart(rows, now)) }
        @match &events {
            Err(e) => p { "The history cannot be read: " (e) },
            Ok(rows) if rows.is_empty() => p { "No events." },
            Ok(rows) => table class="events" {
                thead { tr { th { "time" } th { "event" } th { "class" } th class="num" { "RTT" } th { "action" } th { "detail" } } }
                tbody {
                    @for r in rows.iter().rev().take(EVENTS) {
                        tr class=(r.event) {
                            td { time datetime=(r.time) { (r.time) } }
                            td { (r.event) }
                            td { (r.class.as_deref().unwrap_or("")) " " (r.reason.as_deref().unwrap_or("")) }
                            td class="num" { @if let Some(ms) = r.rtt_ms { (format!("{ms:.1} ms")) } }
                            td {
                                @if let Some(o) = &r.action_outcome {
                                    (o) @if let Some(c) = r.action_exit_code { " (" (c) ")" }
                                    @if let Some(cmd) = &r.action_command { br; code { (cmd) } }
                                }
                            }
                            td class="why" { (r.detail) }
                        }
                    }
                }
            },
        }
        p { a href=(format!("/report?target={}", form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>())) { "This target's report" } }
    };
    Html(layout(&name, body).into_string()).into_response()
}

/// The round trips as a line, failed checks as red marks along the top.
fn chart(samples: &[Sample]) -> Markup {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return html! { p { "No check yet." } };
    };
    // Scaled to the passed checks: a timeout would flatten the line.
    let max_us = samples
        .iter()
        .filter(|s| !s.failed())
        .filter_map(|s| s.rtt())
        .map(|d| d.as_micros() as f64)
        .fold(1.0, f64::max);
    // One step per check, oldest on the left: checks come at the target's
    // interval, and several may share a second.
    let step = (CHART_WIDTH - LEFT - 4.0) / (samples.len().max(2) - 1) as f64;
    let x = |i: usize| LEFT + step * i as f64;
    let y = |us: f64| 4.0 + (CHART_HEIGHT - 20.0) * (1.0 - us / max_us);
    let points: Vec<String> = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.failed())
        .filter_map(|(i, s)| {
            s.rtt()
                .map(|d| format!("{:.1},{:.1}", x(i), y(d.as_micros() as f64)))
        })
        .collect();
    let time = |at: u32| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(u64::from(at)))
            .to_string()
    };
    html! {
        svg class="chart" width=(CHART_WIDTH) height=(CHART_HEIGHT) viewBox=(format!("0 0 {CHART_WIDTH} {CHART_HEIGHT}"))
            role="img" aria-label=(format!("round trip of the last {} checks, at most {:.1} ms", samples.len(), max_us / 1000.0)) {
            line class="axis" x1=(LEFT) y1=(y(0.0)) x2=(CHART_WIDTH) y2=(y(0.0)) {}
            text x="2" y=(y(max_us) + 10.0) { (format!("{:.1} ms", max_us / 1000.0)) }
            text x="2" y=(y(0.0)) { "0 ms" }
            text x=(LEFT) y=(CHART_HEIGHT - 2.0) { (time(first.at)) }
            text x=(CHART_WIDTH - 4.0) y=(CHART_HEIGHT - 2.0) text-anchor="end" { (time(last.at)) }
            polyline class="rtt" points=(points.join(" ")) {}
            @for (i, _) in samples.iter().enumerate().filter(|(_, s)| s.failed()) {
                rect class="fail" x=(format!("{:.1}", x(i) - 1.0)) y="0" width="3" height="6" {}
            }
        }
    }
}

/// The last 10 days from the history: each event at its time, at the
/// height of its check's round trip, red for a raise, green for a clear.
fn history_chart(rows: &[crate::store::HistoryRow], now: std::time::SystemTime) -> Markup {
    let end = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let start = end - EVENTS_SINCE.as_secs_f64() * 1000.0;
    let max_ms = rows.iter().filter_map(|r| r.rtt_ms).fold(0.001, f64::max);
    let x = |ms: i64| {
        LEFT + (CHART_WIDTH - LEFT - 4.0) * ((ms as f64 - start) / (end - start)).clamp(0.0, 1.0)
    };
    let y = |ms: f64| 4.0 + (CHART_HEIGHT - 20.0) * (1.0 - ms / max_ms);
    let day = |days_ago: u64| {
        humantime::format_rfc3339_seconds(now - Duration::from_secs(days_ago * 86_400))
            .to_string()
            .get(..10)
            .unwrap_or_default()
            .to_string()
    };
    html! {
        svg class="chart history" width=(CHART_WIDTH) height=(CHART_HEIGHT) viewBox=(format!("0 0 {CHART_WIDTH} {CHART_HEIGHT}"))
            role="img" aria-label=(format!("{} events over the last 10 days", rows.len())) {
            line class="axis" x1=(LEFT) y1=(y(0.0)) x2=(CHART_WIDTH) y2=(y(0.0)) {}
            text x="2" y=(y(max_ms) + 10.0) { (format!("{max_ms:.1} ms")) }
            text x="2" y=(y(0.0)) { "0 ms" }
            text x=(LEFT) y=(CHART_HEIGHT - 2.0) { (day(10)) }
            text x=(CHART_WIDTH - 4.0) y=(CHART_HEIGHT - 2.0) text-anchor="end" { (day(0)) }
            @for r in rows {
                circle class=(r.event) cx=(format!("{:.1}", x(r.time_ms))) cy=(format!("{:.1}", y(r.rtt_ms.unwrap_or(0.0)))) r="3" {
                    title { (r.time) " " (r.event) }
                }
            }
        }
    }
}

/// How a vantage point stood at its last check, in a word.
fn point_word(state: crate::vantage::path::PointState) -> &'static str {
    use crate::vantage::path::PointState;
    match state {
        PointState::Unknown => "not checked yet",
        PointState::Passed => "passes",
        PointState::Failed => "fails",
        PointState::NoAnswer => "no answer",
    }
}
