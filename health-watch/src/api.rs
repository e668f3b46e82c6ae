//! `/api/v1/`: the watcher for automation, in JSON, on `http_listen`,
//! behind its access rules (`http_allow`, basic auth).
//!
//! - `GET /api/v1/silences`: the silences in force or to come.
//! - `POST /api/v1/silences`: adds one, as `health-probe silence add`;
//!   in force from the reply on.
//! - `DELETE /api/v1/silences/{id}`: ends one now.
//! - `GET /api/v1/targets`: every target's state.
//! - `GET /api/v1/alarms`: the targets whose alarm is raised.
//!
//! Fail-closed: the writes need basic auth configured (`http_user`,
//! `http_password_file`), so a listener open to a network without
//! passwords cannot be used to silence alarms; and a JSON content type,
//! which a browser cannot send across sites without a preflight this
//! listener never grants. A body is at most [`MAX_BODY`] bytes; at most
//! [`MAX_WRITES`] writes run at once (more get 503). The lists are written
//! as they are read, in pieces, so 100,000 targets take no more memory
//! per request than a piece.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::{Notify, Semaphore};

use crate::event::Hold;
use crate::registry::{Registry, Status};
use crate::silence::{self, Board, Origin, Silence, SilenceView, MAX_ACTIVE};
use crate::store::{self, silences};

/// Most bytes of a request body.
pub(crate) const MAX_BODY: usize = 16 * 1024;
/// Writes (each a database transaction on a blocking thread) at once.
pub(crate) const MAX_WRITES: usize = 2;
/// Bytes of a list sent as one piece.
const PIECE: usize = 64 * 1024;

/// What the API reads and writes.
pub(crate) struct Api {
    pub watched: Arc<Registry>,
    pub silences: Arc<Board>,
    /// Tells the silencer to look at the database now.
    pub poke: Arc<Notify>,
    pub database: PathBuf,
    /// Basic auth's user, when configured: writes are allowed, made in
    /// its name.
    pub user: Option<String>,
    writes: Semaphore,
}

impl Api {
    pub(crate) fn new(
        watched: Arc<Registry>,
        silences: Arc<Board>,
        poke: Arc<Notify>,
        database: PathBuf,
        user: Option<String>,
    ) -> Api {
        Api {
            watched,
            silences,
            poke,
            database,
            user,
            writes: Semaphore::new(MAX_WRITES),
        }
    }
}

/// The routes, for the exporter's router.
pub(crate) fn router(api: Api) -> Router {
    Router::new()
        .route("/api/v1/silences", get(list_silences).post(add_silence))
        .route("/api/v1/silences/{id}", delete(remove_silence))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/alarms", get(alarms))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(api))
}

/// `{"error": "..."}` with `code`.
fn error(code: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (code, Json(body)).into_response()
}

async fn list_silences(State(api): State<Arc<Api>>) -> Response {
    let now = SystemTime::now();
    let views: Vec<SilenceView> = api
        .silences
        .list()
        .iter()
        .map(|s| SilenceView::of(s, now))
        .collect();
    Json(views).into_response()
}

/// A `POST /api/v1/silences` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    /// A target's name or a pattern.
    target: String,
    /// How long, from `from` (or now): `2h`, `30m`.
    #[serde(rename = "for")]
    duration: Option<String>,
    from: Option<String>,
    until: Option<String>,
    reason: String,
}

impl NewSilence {
    fn silence(&self, now: SystemTime, author: &str) -> Result<Silence, String> {
        let from = match &self.from {
            Some(t) => silence::parse_time(t, now).map_err(|e| format!("from: {e}"))?,
            None => now,
        };
        let until = match (&self.until, &self.duration) {
            (Some(_), Some(_)) => return Err("give for or until, not both".into()),
            (Some(t), None) => silence::parse_time(t, now).map_err(|e| format!("until: {e}"))?,
            (None, Some(d)) => {
                let d = health_probe::duration::span(d).map_err(|e| format!("for: {e}"))?;
                from + d
            }
            (None, None) => return Err("give for (like \"2h\") or until".into()),
        };
        let (from, until) = (store::round_ms(from), store::round_ms(until));
        silence::check_new(&self.target, &self.reason, from, until)?;
        Ok(Silence {
            id: 0,
            matcher: self.target.clone(),
            from,
            until,
            reason: self.reason.clone(),
            author: author.to_string(),
            origin: Origin::Api,
            created: now,
        })
    }
}

/// The answer to a write when writes are not allowed (no basic auth).
fn forbidden() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "silences over HTTP need basic auth: set http_user and http_password_file",
    )
}

async fn add_silence(
    State(api): State<Arc<Api>>,
    body: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(user) = api.user.clone() else {
        return forbidden();
    };
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let now = store::round_ms(SystemTime::now());
    let s = match new.silence(now, &user) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let written = write(&api, move |conn| {
        if s.until > now && silences::count_active(conn, now)? >= MAX_ACTIVE {
            return Ok(Err(format!(
                "{MAX_ACTIVE} silences are in force or to come already: remove some first"
            )));
        }
        let id = silences::insert(conn, &s)?;
        Ok(Ok(Silence { id, ..s }))
    })
    .await;
    match written {
        Ok(Ok(s)) => {
            let added = s.clone();
            api.silences.amend(now, |list| list.push(added));
            api.poke.notify_one();
            (StatusCode::CREATED, Json(SilenceView::of(&s, now))).into_response()
        }
        Ok(Err(e)) => error(StatusCode::CONFLICT, e),
        Err(r) => r,
    }
}

async fn remove_silence(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
    if api.user.is_none() {
        return forbidden();
    }
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, "the id is a number");
    };
    let now = store::round_ms(SystemTime::now());
    match write(&api, move |conn| silences::remove(conn, id, now)).await {
        Ok(Some(s)) => {
            api.silences.amend(now, |list| list.retain(|k| k.id != id));
            api.poke.notify_one();
            Json(SilenceView::of(&s, now)).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no silence {id} in force or to come"),
        ),
        Err(r) => r,
    }
}

/// Runs `f` on the database on a blocking thread, one of [`MAX_WRITES`].
async fn write<T: Send + 'static>(
    api: &Api,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    let Ok(_place) = api.writes.try_acquire() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "other writes are under way: try again in a second",
        ));
    };
    let database = api.database.clone();
    let done = tokio::task::spawn_blocking(move || {
        let conn = store::open(&database)?;
        f(&conn)
    })
    .await;
    match done {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        Err(e) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// One target as `/api/v1/targets` and `/api/v1/alarms` give it.
#[derive(Debug, serde::Serialize)]
struct TargetView<'a> {
    name: &'a str,
    kind: &'a str,
    addr: &'a str,
    /// `ok`, `failing`, `alarm`, `pending`.
    state: &'static str,
    raised: bool,
    /// When the alarm was raised (or last cleared).
    since: String,
    paused: bool,
    flapping: bool,
    /// The silence that covers it now.
    silenced: Option<i64>,
    /// The silence that holds its open alarm's raise.
    held: Option<i64>,
    /// Its open alarm's raise is held behind a raised target it depends
    /// on (class `unreachable`).
    unreachable: bool,
    last_check: Option<String>,
    class: Option<&'static str>,
    reason: Option<&'static str>,
    detail: Option<String>,
    rtt_ms: Option<f64>,
}

fn view(s: &Status, board: &Board, now: SystemTime) -> (bool, Vec<u8>) {
    let silenced = board.covering(&s.name, now).map(|c| c.id);
    let row = s.row();
    let last = row.last.as_ref();
    let state = match (row.alarm.raised, last.map(|o| o.failed())) {
        (true, _) => "alarm",
        (false, Some(true)) => "failing",
        (false, Some(false)) => "ok",
        (false, None) => "pending",
    };
    let v = TargetView {
        name: &s.name,
        kind: s.kind,
        addr: &s.addr,
        state,
        raised: row.alarm.raised,
        since: humantime::format_rfc3339_seconds(row.alarm.since).to_string(),
        paused: row.alarm.paused,
        flapping: row.alarm.flapping,
        silenced,
        held: row.held.and_then(Hold::silence),
        unreachable: row.held == Some(Hold::Unreachable),
        last_check: last.map(|o| humantime::format_rfc3339_millis(o.at).to_string()),
        class: last.map(|o| o.class.as_str()),
        reason: last.and_then(|o| o.reason),
        detail: last.map(|o| o.detail.clone()),
        rtt_ms: last.and_then(|o| o.rtt).map(|d| d.as_secs_f64() * 1000.0),
    };
    (row.alarm.raised, serde_json::to_vec(&v).unwrap_or_default())
}

async fn targets(State(api): State<Arc<Api>>) -> Response {
    listing(api, false)
}

async fn alarms(State(api): State<Arc<Api>>) -> Response {
    listing(api, true)
}

/// A JSON array of the targets (only those raised, if `raised_only`),
/// written a piece at a time as the client takes it.
fn listing(api: Arc<Api>, raised_only: bool) -> Response {
    let all = Arc::new(api.watched.targets());
    let now = SystemTime::now();
    let state = (all, 0usize, false, Some(api));
    let stream =
        futures_util::stream::unfold(state, move |(all, mut i, mut any, api)| async move {
            let api = api?;
            let mut piece = Vec::with_capacity(PIECE + 1024);
            if i == 0 {
                piece.push(b'[');
            }
            while i < all.len() && piece.len() < PIECE {
                let (raised, json) = view(&all[i], &api.silences, now);
                i += 1;
                if raised_only && !raised {
                    continue;
                }
                if any {
                    piece.push(b',');
                }
                any = true;
                piece.extend_from_slice(&json);
            }
            let more = if i >= all.len() {
                piece.extend_from_slice(b"]\n");
                None
            } else {
                Some(api)
            };
            Some((
                Ok::<_, std::io::Error>(Bytes::from(piece)),
                (all, i, any, more),
            ))
        });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
