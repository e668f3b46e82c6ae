//! An optional HTTP endpoint for Kubernetes probes and HTTP checkers:
//! `GET /healthz`, `/livez`, `/readyz` answer 200 or 503 with the landmark
//! reply as a JSON body; `GET /metrics` answers Prometheus
//! ([`crate::metrics`]).
//!
//! | path | 200 when the state is | meaning |
//! |---|---|---|
//! | `/livez` | `ok`, `degraded`, `drain` | the main thread answers: do not restart it |
//! | `/readyz` | `ok`, `degraded` | send it traffic (a draining service is live but not ready) |
//! | `/healthz` | `ok`, `degraded` | as `/readyz`, and `?expect=` may change the set |
//!
//! Query parameters: `component=NAME` checks one component (404 if the
//! service has no such component); `expect=ok,degraded` (on `/healthz`)
//! sets the states answered with 200. Requests are parsed with `httparse`;
//! each connection carries one request and is closed after the reply.

use std::net::SocketAddr;

use bytes::BytesMut;
use health_proto::{ErrorCode, State};

use crate::admission::Slot;
use crate::conn::Conn;
use crate::context::{evict, read_while_idle, Context, Waited};

/// Largest request head accepted (request line and headers).
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Most headers parsed; more is a 431.
const MAX_HEADERS: usize = 32;

/// Serves one HTTP request on `conn` (`first` is what accept read of it),
/// then closes it.
pub(crate) async fn serve(mut conn: Conn, first: BytesMut, ctx: &Context, mut slot: Slot) {
    let peer = conn.peer();
    let mut buf = first;
    let read = read_head(&mut conn, &mut buf);
    let waited = read_while_idle(&mut slot, read, ctx.conn.read_timeout, &ctx.shared.token).await;
    let head = match waited {
        Waited::Ready(Ok(head)) => head,
        Waited::Ready(Err(status)) => {
            let body = error_body(status.1);
            respond(&mut conn, peer, ctx, status, b"", (JSON, &body)).await;
            return;
        }
        Waited::Evicted => {
            evict(&conn);
            return;
        }
        Waited::TimedOut => {
            tracing::debug!(%peer, "closing HTTP health connection: no request within the read timeout");
            return;
        }
        Waited::Shutdown => return,
    };
    if head.path.split('?').next() == Some("/metrics") && is_get(&head) {
        // A scrape asks the main thread like a check (shared with any
        // check in flight), so a hung main loop shows on the next scrape.
        let _ = ctx.landmark(None).await;
        let (body, content_type) = crate::exposition::expose(&ctx.exposition, head.openmetrics);
        respond(
            &mut conn,
            peer,
            ctx,
            OK,
            &head.method,
            (content_type, &body),
        )
        .await;
        return;
    }
    let (status, body) = answer(&head, ctx).await;
    respond(&mut conn, peer, ctx, status, &head.method, (JSON, &body)).await;
}

const JSON: &str = "application/json";

fn is_get(head: &Head) -> bool {
    head.method == b"GET" || head.method == b"HEAD"
}

pub(crate) type Status = (u16, &'static str);
const OK: Status = (200, "OK");
const BAD_REQUEST: Status = (400, "Bad Request");
const NOT_FOUND: Status = (404, "Not Found");
const METHOD_NOT_ALLOWED: Status = (405, "Method Not Allowed");
const TOO_LARGE: Status = (431, "Request Header Fields Too Large");
const UNAVAILABLE: Status = (503, "Service Unavailable");

pub(crate) struct Head {
    method: Vec<u8>,
    path: String,
    /// The `Accept` header asks for OpenMetrics.
    openmetrics: bool,
}

/// Reads into `buf` until a complete request head is parsed, within
/// [`MAX_HEAD`]. Cancel-safe: what was read stays in `buf`.
async fn read_head(conn: &mut Conn, buf: &mut BytesMut) -> Result<Head, Status> {
    if let Some(head) = parse_head(buf)? {
        return Ok(head);
    }
    loop {
        if buf.len() >= MAX_HEAD {
            return Err(TOO_LARGE);
        }
        let n = conn
            .read(buf, MAX_HEAD - buf.len())
            .await
            .map_err(|_| BAD_REQUEST)?;
        if n == 0 {
            return Err(BAD_REQUEST);
        }
        if let Some(head) = parse_head(buf)? {
            return Ok(head);
        }
    }
}

/// Parses a request head from the bytes received so far: `None` while it is
/// incomplete (and still within [`MAX_HEAD`]).
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<Head>, Status> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Ok(Some(Head {
            method: req.method.unwrap_or("").as_bytes().to_vec(),
            path: req.path.unwrap_or("/").to_string(),
            openmetrics: req.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("accept")
                    && std::str::from_utf8(h.value).is_ok_and(crate::exposition::wants_openmetrics)
            }),
        })),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(TOO_LARGE),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(TOO_LARGE),
        Err(_) => Err(BAD_REQUEST),
    }
}

/// What a well-formed request asks for.
#[derive(Debug)]
pub(crate) struct Route {
    /// States answered with 200.
    pub(crate) healthy: Vec<State>,
    /// The component to check; `None` for the whole service.
    pub(crate) component: Option<String>,
}

/// Maps method, path and query onto a [`Route`], or the error reply.
pub(crate) fn route(head: &Head) -> Result<Route, (Status, String)> {
    if !is_get(head) {
        return Err((
            METHOD_NOT_ALLOWED,
            error_body("only GET and HEAD are served"),
        ));
    }
    let (path, query) = head.path.split_once('?').unwrap_or((&head.path, ""));
    let mut component = None;
    let mut expect = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "component" => component = Some(v.into_owned()),
            "expect" if path == "/healthz" => {
                let states: Result<Vec<State>, _> =
                    v.split(',').map(|s| s.trim().parse::<State>()).collect();
                match states {
                    Ok(s) => expect = Some(s),
                    Err(e) => return Err((BAD_REQUEST, error_body(&e.to_string()))),
                }
            }
            _ => {}
        }
    }
    let healthy: Vec<State> = match (path, expect) {
        ("/livez", _) => vec![State::Ok, State::Degraded, State::Drain],
        ("/readyz", _) | ("/healthz", None) => vec![State::Ok, State::Degraded],
        ("/healthz", Some(e)) => e,
        _ => {
            return Err((
                NOT_FOUND,
                error_body("try /healthz, /livez, /readyz or /metrics"),
            ))
        }
    };
    Ok(Route {
        healthy,
        component: component.filter(|c| !c.is_empty()),
    })
}

/// Routes a request and checks the landmark; returns the status and body.
async fn answer(head: &Head, ctx: &Context) -> (Status, String) {
    let route = match route(head) {
        Ok(route) => route,
        Err(reply) => return reply,
    };
    match ctx.check("http", route.component.as_deref()).await {
        Ok(reply) => {
            let status = if route.healthy.contains(&reply.state) {
                OK
            } else {
                UNAVAILABLE
            };
            (status, serde_json::to_string(&reply).unwrap_or_default())
        }
        Err(e) => {
            let status = if e.known_code() == Some(ErrorCode::UnknownComponent) {
                NOT_FOUND
            } else {
                UNAVAILABLE
            };
            (status, error_body(&e.message))
        }
    }
}

fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

async fn respond(
    conn: &mut Conn,
    peer: SocketAddr,
    ctx: &Context,
    (code, reason): Status,
    method: &[u8],
    (content_type, body): (&str, &str),
) {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != b"HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    let write = async {
        conn.write_all(&out).await?;
        conn.shutdown_write()
    };
    if tokio::time::timeout(ctx.conn.write_timeout, write)
        .await
        .is_err()
    {
        tracing::info!(%peer, "HTTP health reply not taken within the write timeout");
    }
}
