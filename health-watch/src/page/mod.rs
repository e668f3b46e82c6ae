//! The status page on `http_listen` (docs/WATCH.md, "Status page"): `/`
//! lists every target, open alarms first, with its state, why, last check,
//! round trip, a bar of its last 24 hours and its uptime over 24 hours and
//! 10 days; complete without JavaScript. `/events` (Server-Sent Events)
//! tells the page's few lines of script when something it shows changed,
//! and the script fetches the list again (`/?fragment=1`), rendered and
//! escaped by the server as the whole page is. `/target/NAME` ([`target`])
//! shows one target's round trips and events; `/report` ([`report`]) the
//! history `health-probe report` prints, with its CSV and JSON.
//!
//! Read-only. Every text from the network or the config goes through
//! maud's escaping ([`render`]); pages hold at most [`PAGE_SIZE`] targets
//! (`?page=N`, `?q=` filters by name or address), and use no asset from
//! outside.

mod group;
mod render;
mod report;
mod silences;
mod target;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::Stream;
use serde::Deserialize;

use crate::registry::{Registry, Row, Status};
use crate::uptime::{Hour, HOURS};

/// Targets on one page.
pub(crate) const PAGE_SIZE: usize = 200;
/// Most silences read for the uptime of 10 days.
const MAX_SILENCES: usize = 100_000;

/// How long uptime read from the history is reused.
const UPTIME_FRESH: Duration = Duration::from_secs(10);
/// How often `/events` looks for a change.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// Longest `q` taken, in bytes.
const MAX_FILTER: usize = 256;
/// `/events` streams open at once: each is a busy connection of the
/// listener for up to its lifetime, which idle ones cannot take over. Past
/// it a browser gets 503, retries in a second, and its page still
/// refreshes every 10 s.
pub(crate) const MAX_EVENT_STREAMS: usize = 16;

/// What the pages read.
struct Pages {
    watched: Arc<Registry>,
    /// The silences in force, for the marks.
    silences: Arc<crate::silence::Board>,
    database: PathBuf,
    uptime: Mutex<Option<(Instant, Arc<Uptime>)>>,
    /// Bounds the `/events` streams.
    streams: Arc<tokio::sync::Semaphore>,
    /// Bounds the reports read at once ([`report::MAX_EXPORTS`]).
    exports: Arc<tokio::sync::Semaphore>,
}

/// Each target's uptime over the last 24 hours and 10 days, in percent,
/// from the history ([`crate::store::uptime`]): counted from its first
/// check; absent before it.
#[derive(Debug, Default)]
struct Uptime {
    shares: HashMap<String, (f64, f64)>,
}

/// The routes, for the exporter's router.
pub(crate) fn router(
    watched: Arc<Registry>,
    silences: Arc<crate::silence::Board>,
    database: PathBuf,
) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/events", get(events))
        .route("/target/{name}", get(target::page))
        .route("/report", get(report::page))
        .route("/silences", get(silences::page))
        .route("/report.csv", get(report::csv))
        .route("/report.json", get(report::json))
        .with_state(Arc::new(Pages {
            watched,
            silences,
            database,
            uptime: Mutex::new(None),
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS)),
            exports: Arc::new(tokio::sync::Semaphore::new(report::MAX_EXPORTS)),
        }))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    q: Option<String>,
    page: Option<usize>,
    fragment: Option<u8>,
}

/// One target as the list shows it, read under its lock.
pub(crate) struct Line {
    pub status: Arc<Status>,
    pub state: render::Shown,
    pub class: Option<&'static str>,
    pub reason: Option<&'static str>,
    pub detail: String,
    pub last: Option<SystemTime>,
    pub rtt: Option<Duration>,
    pub paused: bool,
    pub flapping: bool,
    /// The silence that covers it now.
    pub silenced: Option<crate::silence::Cover>,
    /// What holds the raise of its open alarm (no action, no alert yet).
    pub held: Option<crate::event::Hold>,
    /// The raised target it depends on that it is listed under.
    pub under: Option<String>,
    /// While a path fault stands: the vantage points that fail.
    pub path: Option<Vec<String>>,
    /// A target with vantage points: each one's name and last word.
    pub points: Vec<(String, crate::vantage::path::PointState)>,
    pub day: [Hour; HOURS],
}

/// What the list says of a target: what it is sorted by.
fn shown(row: &Row) -> render::Shown {
    match (row.alarm.raised, row.last.as_ref().map(|o| o.failed())) {
        (true, _) => render::Shown::Alarm,
        (false, Some(true)) => render::Shown::Failing,
        (false, Some(false)) => render::Shown::Up,
        (false, None) => render::Shown::Pending,
    }
}

fn line(status: &Arc<Status>, silences: &crate::silence::Board, now: SystemTime) -> Line {
    let silenced = silences.covering(&status.name, now);
    let row = status.row();
    let last = row.last.as_ref();
    let path = row.path.as_ref().filter(|p| p.raised()).map(|p| {
        (p.names.iter().zip(&p.failing))
            .filter(|(_, f)| **f)
            .map(|(n, _)| n.clone())
            .collect()
    });
    // A path fault passes, and says why in its detail.
    let told = |o: &&crate::check::Observation| o.failed() || path.is_some();
    Line {
        status: Arc::clone(status),
        state: shown(&row),
        class: last.filter(|o| o.failed()).map(|o| o.class.as_str()),
        reason: last.filter(|o| o.failed()).and_then(|o| o.reason),
        detail: last
            .filter(told)
            .map(|o| o.detail.clone())
            .unwrap_or_default(),
        last: last.map(|o| o.at),
        rtt: last.and_then(|o| o.rtt),
        paused: row.alarm.paused,
        flapping: row.alarm.flapping,
        silenced,
        held: row.held,
        under: None,
        points: row.path.as_ref().map_or_else(Vec::new, |p| {
            p.names
                .iter()
                .cloned()
                .zip(p.points.iter().copied())
                .collect()
        }),
        path,
        day: row.hours.day(now),
    }
}

async fn index(State(pages): State<Arc<Pages>>, Query(q): Query<ListQuery>) -> Response {
    let now = SystemTime::now();
    let filter =
        q.q.as_deref()
            .map(|f| health_probe::text::cut(f.trim(), MAX_FILTER).to_lowercase())
            .filter(|f| !f.is_empty());
    let all = pages.watched.targets();
    // Every target is sorted by its state alone (and grouped under a
    // raised parent); only the page's are read whole (detail, hours), not
    // 10,000 of them.
    let keys = group::order(&all, |s| {
        filter
            .as_deref()
            .is_none_or(|f| s.name.to_lowercase().contains(f) || s.addr.to_lowercase().contains(f))
    });
    let open = keys
        .iter()
        .filter(|p| p.state == render::Shown::Alarm)
        .count();
    let pages_count = keys.len().div_ceil(PAGE_SIZE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages_count);
    let shown: Vec<Line> = keys
        .iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|p| Line {
            under: p.under.clone(),
            ..line(p.status, &pages.silences, now)
        })
        .collect();
    let uptime = uptime(&pages).await;
    let list = render::List {
        lines: &shown,
        total: all.len(),
        open,
        page,
        pages: pages_count,
        filter: filter.as_deref(),
        now,
        uptime: |name: &str| uptime.shares.get(name).copied(),
    };
    let html = if q.fragment.is_some() {
        render::list(&list).into_string()
    } else {
        render::page(&list).into_string()
    };
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// The uptime read from the history, at most [`UPTIME_FRESH`] old; empty
/// when the history cannot be read.
async fn uptime(pages: &Arc<Pages>) -> Arc<Uptime> {
    if let Some((at, u)) = pages
        .uptime
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        if at.elapsed() < UPTIME_FRESH {
            return Arc::clone(u);
        }
    }
    let path = pages.database.clone();
    let read = tokio::task::spawn_blocking(move || {
        let conn = crate::store::open_read_only(&path).ok()?;
        let now = SystemTime::now();
        let since = |days: u64| now - Duration::from_secs(days * 86_400);
        // One read of the 10 days; the last day is cut from it.
        let intervals = crate::store::alarm_intervals(&conn, since(10), now).ok()?;
        let observed = crate::store::observed(&conn).ok()?;
        // Silences and maintenance windows: neither up nor down.
        let silences = crate::store::silences::within(&conn, since(10), now, MAX_SILENCES).ok()?;
        let kept = crate::silence::spans_by_target(
            &silences,
            observed.keys().map(String::as_str),
            since(10),
            now,
        );
        let shares = observed
            .iter()
            .filter_map(|(target, o)| {
                let alarms = intervals.get(target).map_or(&[][..], |i| &i[..]);
                let kept = kept.get(target).map_or(&[][..], |i| &i[..]);
                let day = crate::store::uptime(o, alarms, kept, since(1), now)?;
                let ten = crate::store::uptime(o, alarms, kept, since(10), now)?;
                Some((target.clone(), (day, ten)))
            })
            .collect();
        Some(Uptime { shares })
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    let read = Arc::new(read);
    *pages.uptime.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((Instant::now(), Arc::clone(&read)));
    read
}

/// `event: change` whenever what the list shows changed; the browser
/// reconnects after a second if the connection ends. At most
/// [`MAX_EVENT_STREAMS`] at once.
async fn events(State(pages): State<Arc<Pages>>) -> Response {
    let Ok(permit) = Arc::clone(&pages.streams).try_acquire_owned() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams open; the page still refreshes every 10 s\n",
        )
            .into_response();
    };
    stream(pages, permit).into_response()
}

/// The stream behind `/events`; it holds `permit` while it lasts.
fn stream(
    pages: Arc<Pages>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = Event::default()
        .retry(Duration::from_secs(1))
        .event("hello")
        .data(pages.watched.generation().to_string());
    let seen = pages.watched.generation();
    let changes =
        futures_util::stream::unfold((pages, seen, permit), |(pages, seen, permit)| async move {
            loop {
                tokio::time::sleep(LOOK_EVERY).await;
                let now = pages.watched.generation();
                if now != seen {
                    let event = Event::default().event("change").data(now.to_string());
                    return Some((Ok(event), (pages, now, permit)));
                }
            }
        });
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok(first) }),
        changes,
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
