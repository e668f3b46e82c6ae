//! `/report?since=10d[&target=NAME]`: the history `health-probe report`
//! prints, as an HTML table, with `/report.csv` and `/report.json` giving
//! exactly the CLI's `--format csv` and `--format json` output.
//!
//! However long the history, a request holds little: the downloads are
//! written as the rows are read, in pieces of [`CHUNK`] bytes of which at
//! most [`CHUNKS_AHEAD`] wait for a slow client, and the page keeps only
//! the [`MAX_ROWS`] it shows, each detail cut at [`PAGE_DETAIL`] bytes. At most [`MAX_EXPORTS`] read at once (each
//! holds a database connection and a blocking thread); more are answered
//! 503.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use health_probe::cli::ReportFormat;
use maud::html;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::render::{layout, target_link};
use super::Pages;
use crate::history;
use crate::store::{self, HistoryRow};

/// Most rows the HTML table shows (the downloads have them all).
const MAX_ROWS: usize = 2000;
/// Most bytes of a detail the HTML table shows (the downloads, and the
/// target's page, have it whole).
const PAGE_DETAIL: usize = 512;
/// Reports (pages and downloads) read at once.
pub(super) const MAX_EXPORTS: usize = 4;
/// Bytes of a download sent as one piece.
const CHUNK: usize = 64 * 1024;
/// Pieces written ahead of a slow client.
const CHUNKS_AHEAD: usize = 4;

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

/// A place among the [`MAX_EXPORTS`] reads, if one is free.
fn export_place(pages: &Pages) -> Option<OwnedSemaphorePermit> {
    Arc::clone(&pages.exports).try_acquire_owned().ok()
}

/// The answer when no place is free.
fn exports_busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        format!("{MAX_EXPORTS} reports are being read already: try again in a few seconds\n"),
    )
        .into_response()
}

fn unreadable(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the history cannot be read: {e}"),
    )
        .into_response()
}

/// The page's rows: how many events there are, and the last
/// [`MAX_ROWS`] of them.
async fn rows(
    pages: &Arc<Pages>,
    q: &ReportQuery,
) -> Result<(String, usize, Vec<HistoryRow>), Response> {
    let (text, since) = q
        .since()
        .map_err(|e| (StatusCode::BAD_REQUEST, e).into_response())?;
    let place = export_place(pages).ok_or_else(exports_busy)?;
    let path = pages.database.clone();
    let target = q.target.clone();
    let read = tokio::task::spawn_blocking(move || {
        let _place = place;
        history::last_rows(&path, since, target.as_deref(), MAX_ROWS, PAGE_DETAIL)
    })
    .await;
    match read {
        Ok(Ok((count, last))) => Ok((text, count, last)),
        Ok(Err(e)) => Err(unreadable(e)),
        Err(e) => Err(unreadable(e)),
    }
}

pub(super) async fn page(
    State(pages): State<Arc<Pages>>,
    Query(q): Query<ReportQuery>,
) -> Response {
    let (since, count, shown) = match rows(&pages, &q).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let links = q.query(&since);
    let title = match &q.target {
        Some(t) => format!("Report: {t}, last {since}"),
        None => format!("Report: last {since}"),
    };
    let body = html! {
        p class="summary" {
            (count) " events"
            @if count > shown.len() { " (the last " (shown.len()) " shown)" }
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
                @for r in &shown {
                    tr class=(r.event) {
                        td { time datetime=(r.time) { (r.time) } }
                        td { a href=(target_link(&r.target)) { (r.target) } }
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
        @if count == 0 { p { "No events in this period." } }
    };
    Html(layout(&title, body).into_string()).into_response()
}

/// `/report.csv` or `/report.json`: the CLI's output, streamed as it is
/// read from the database on a blocking thread.
async fn download(pages: Arc<Pages>, q: ReportQuery, format: ReportFormat) -> Response {
    let since = match q.since() {
        Ok((_, since)) => since,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let Some(place) = export_place(&pages) else {
        return exports_busy();
    };
    let (chunks, receiver) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_AHEAD);
    let (opened, open_result) = oneshot::channel();
    let path = pages.database.clone();
    let target = q.target;
    tokio::task::spawn_blocking(move || {
        let _place = place;
        let conn = match store::open_read_only(&path) {
            Ok(c) => {
                let _ = opened.send(Ok(()));
                c
            }
            Err(e) => {
                let _ = opened.send(Err(e));
                return;
            }
        };
        let mut out = Chunks {
            sender: chunks.clone(),
            piece: Vec::with_capacity(CHUNK),
        };
        let written = history::write(&conn, since, target.as_deref(), format, &mut out)
            .and_then(|()| out.flush());
        match written {
            // The client went away: nothing to tell.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            // Past the head: the body ends with an error, so the client
            // sees a cut reply, never a short one that looks whole.
            Err(e) => {
                let _ = chunks.blocking_send(Err(e));
            }
            Ok(()) => {}
        }
    });
    match open_result.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return unreadable(e),
        Err(e) => return unreadable(e),
    }
    let kind = match format {
        ReportFormat::Csv => "text/csv; charset=utf-8",
        ReportFormat::Json => "application/json",
        ReportFormat::Table => "text/plain; charset=utf-8",
    };
    let stream = futures_util::stream::unfold(receiver, |mut r| async move {
        r.recv().await.map(|piece| (piece, r))
    });
    ([(header::CONTENT_TYPE, kind)], Body::from_stream(stream)).into_response()
}

/// What a download writes, sent on in pieces of [`CHUNK`] bytes; a send
/// waits while [`CHUNKS_AHEAD`] pieces wait for the client, and fails
/// (`BrokenPipe`) once the client is gone.
struct Chunks {
    sender: mpsc::Sender<io::Result<Bytes>>,
    piece: Vec<u8>,
}

impl Chunks {
    fn send(&mut self) -> io::Result<()> {
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(CHUNK));
        self.sender
            .blocking_send(Ok(Bytes::from(piece)))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.piece.extend_from_slice(buf);
        if self.piece.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.piece.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
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
