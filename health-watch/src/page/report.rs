//! `/report?since=10d[&target=NAME]`: the history `health-probe report`
//! prints, as an HTML table, with `/report.csv` and `/report.json` giving
//! exactly the CLI's `--format csv` and `--format json` output.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use health_probe::cli::ReportFormat;
use maud::html;
use serde::Deserialize;

use super::render::layout;
use super::Pages;
use crate::history;
use crate::store::HistoryRow;

/// Most rows the HTML table shows (the downloads have them all).
const MAX_ROWS: usize = 2000;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ReportQuery {
    since: Option<String>,
    target: Option<String>,
}

impl ReportQuery {
    fn since(&self) -> Result<(String, Duration), String> {
        let text = self.since.as_deref().unwrap_or("10d").trim();
        let d = health_probe::duration::within(text, health_probe::duration::MAX_SPAN, "50 years")
            .map_err(|e| format!("since: {e}"))?;
        Ok((text.to_string(), d))
    }

    /// The query string of the downloads: the same `since` and `target`.
    fn query(&self, since: &str) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("since", since);
        if let Some(t) = &self.target {
            q.append_pair("target", t);
        }
        q.finish()
    }
}

async fn rows(pages: &Arc<Pages>, q: &ReportQuery) -> Result<(String, Vec<HistoryRow>), Response> {
    let (text, since) = q
        .since()
        .map_err(|e| (StatusCode::BAD_REQUEST, e).into_response())?;
    let path = pages.database.clone();
    let target = q.target.clone();
    let read = tokio::task::spawn_blocking(move || history::rows(&path, since, target.as_deref()))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match read {
        Ok(rows) => Ok((text, rows)),
        Err(e) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the history cannot be read: {e}"),
        )
            .into_response()),
    }
}

pub(super) async fn page(
    State(pages): State<Arc<Pages>>,
    Query(q): Query<ReportQuery>,
) -> Response {
    let (since, rows) = match rows(&pages, &q).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let links = q.query(&since);
    let shown = &rows[rows.len().saturating_sub(MAX_ROWS)..];
    let title = match &q.target {
        Some(t) => format!("Report: {t}, last {since}"),
        None => format!("Report: last {since}"),
    };
    let body = html! {
        p class="summary" {
            (rows.len()) " events"
            @if rows.len() > shown.len() { " (the last " (shown.len()) " shown)" }
            " · download as "
            a href=(format!("/report.csv?{links}")) download="report.csv" { "CSV" } " or "
            a href=(format!("/report.json?{links}")) download="report.json" { "JSON" }
            " (what " code { "health-probe report --format csv|json" } " prints)"
        }
        form method="get" action="/report" {
            input type="text" name="since" value=(since) aria-label="since" size="6";
            input type="search" name="target" value=[q.target.as_deref()] placeholder="target (all)" aria-label="target";
            button type="submit" { "Show" }
        }
        table class="events" {
            thead { tr {
                th { "time" } th { "target" } th { "event" } th { "class" } th class="num" { "lasted" }
                th { "action" } th { "detail" }
            } }
            tbody {
                @for r in shown {
                    tr class=(r.event) {
                        td { time datetime=(r.time) { (r.time) } }
                        td { a href=(super::target::link(&r.target)) { (r.target) } }
                        td { (r.event) }
                        td { (r.class.as_deref().unwrap_or("")) " " (r.reason.as_deref().unwrap_or("")) }
                        td class="num" {
                            @if let Some(s) = r.alarm_secs {
                                (humantime::format_duration(Duration::from_secs(s as u64)).to_string())
                            }
                        }
                        td {
                            @if let Some(o) = &r.action_outcome {
                                (o) @if let Some(c) = r.action_exit_code { " (" (c) ")" }
                            }
                        }
                        td class="why" { (r.detail) }
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No events in this period." } }
    };
    Html(layout(&title, body).into_string()).into_response()
}

async fn download(pages: Arc<Pages>, q: ReportQuery, format: ReportFormat) -> Response {
    let rows = match rows(&pages, &q).await {
        Ok((_, rows)) => rows,
        Err(response) => return response,
    };
    let mut out = Vec::new();
    if let Err(e) = history::write(&rows, format, &mut out) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    let kind = match format {
        ReportFormat::Csv => "text/csv; charset=utf-8",
        ReportFormat::Json => "application/json",
        ReportFormat::Table => "text/plain; charset=utf-8",
    };
    ([(header::CONTENT_TYPE, kind)], out).into_response()
}

pub(super) async fn csv(State(pages): State<Arc<Pages>>, Query(q): Query<ReportQuery>) -> Response {
    download(pages, q, ReportFormat::Csv).await
}

pub(super) async fn json(
    State(pages): State<Arc<Pages>>,
    Query(q): Query<ReportQuery>,
) -> Response {
    download(pages, q, ReportFormat::Json).await
}
