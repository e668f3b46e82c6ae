//! The watcher's outgoing HTTP/1.1 requests: alerts posted to an
//! Alertmanager, checks asked of a remote vantage point's `/probe`.
//!
//! Each request is one connection with hyper's client (neither is sent
//! often enough for a pool to save more than it holds), whose reply body
//! is read only up to a bound the caller gives. The caller bounds the
//! whole exchange in time, name resolution included.

use axum::http::{Request, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("no reply within {0}")]
    Timeout(String),
    #[error("closed the connection before replying")]
    Closed,
    #[error("answered {0}: {1}")]
    Status(StatusCode, String),
}

/// Sends `request` to `authority` (`host:port`, each of its addresses
/// tried in turn) and reads the reply: its status and at most `max_body`
/// bytes of its body (what is past them is left unread). Not bounded in
/// time: the caller's timeout is.
pub(crate) async fn exchange(
    authority: &str,
    request: Request<Full<Bytes>>,
    max_body: usize,
) -> Result<(StatusCode, Bytes), HttpError> {
    let addrs: Vec<_> = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| HttpError::Resolve(authority.to_string(), e))?
        .collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or_else(|| HttpError::Connect(authority.to_string(), last))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let talk = async {
        let reply = sender.send_request(request).await?;
        let status = reply.status();
        let body = Limited::new(reply.into_body(), max_body)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, HttpError>((status, body))
    };
    // The connection is driven beside the exchange. It may end first and
    // cleanly once the reply is in (HTTP/1.0, or `Connection: close`): the
    // reply is then read from what it delivered, and only a connection
    // closed before any reply is an error.
    tokio::pin!(talk, conn);
    tokio::select! {
        r = &mut talk => r,
        c = &mut conn => {
            c?;
            talk.await.map_err(|e| match e {
                HttpError::Http(h) if h.is_canceled() || h.is_incomplete_message() => {
                    HttpError::Closed
                }
                e => e,
            })
        }
    }
}

/// The `User-Agent` of every request.
pub(crate) const USER_AGENT: &str = concat!("health-probe-watch/", env!("CARGO_PKG_VERSION"));

/// An HTTP service (an Alertmanager, a remote watcher): where to connect
/// and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    /// The URL as written, trimmed (it holds no credentials): for logs and
    /// the metrics' `alertmanager` and `vantage` labels.
    pub shown: String,
    /// `host:port`, to resolve and connect to, and for the `Host` header.
    pub authority: String,
    /// The request path: the URL's path (a `--web.route-prefix`) followed
    /// by the API's (`/api/v2/alerts`, `/probe`).
    pub path: String,
}

/// `http://HOST[:PORT][/PREFIX]`, the base URL of a service (`what`), and
/// the request path `api` under it.
pub(crate) fn http_url(text: &str, what: &str, api: &str) -> Result<HttpUrl, String> {
    let text = text.trim();
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("is not a URL ({e}); write http://HOST:PORT"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!("https is not supported: give http://, to {what} on a trusted network or a local TLS proxy"))
        }
        _ => return Err("must start with http://".into()),
    }
    let authority = uri.authority().ok_or("has no host")?;
    if authority.as_str().contains('@') {
        return Err("credentials in the URL are not supported".into());
    }
    if authority.host().is_empty() {
        return Err("has no host".into());
    }
    if uri.query().is_some() {
        return Err("must not have a query (?...)".into());
    }
    let port = authority.port_u16().unwrap_or(80);
    if port == 0 {
        return Err("port 0 is not a port to send to".into());
    }
    let prefix = uri.path().trim_end_matches('/');
    Ok(HttpUrl {
        shown: text.trim_end_matches('/').to_string(),
        authority: format!("{}:{port}", authority.host()),
        path: format!("{prefix}{api}"),
    })
}
