//! The listeners: binds the native port and the optional agent and HTTP
//! ports, accepts within one shared connection limit and the allow-list,
//! hands each connection to its protocol ([`crate::connection`],
//! [`crate::agent`], [`crate::http`]), and shuts down gracefully on request.
//!
//! Shaped like mini-redis's `server.rs`: a semaphore bounds connections, and
//! a cancellation token plays the part of its shutdown broadcast.

use std::net::{IpAddr, SocketAddr, TcpListener as StdListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use health_proto::{ErrorCode, ErrorReply, Response};
use ipnet::IpNet;
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::serve_agent;
use crate::ask::{ObserveConfig, Observer};
use crate::connection::{serve_connection, ConnConfig, Context};
use crate::connections::Recorder;
use crate::handle::{HealthServer, Shared};
use crate::http::serve_http;
use crate::{Builder, LandmarkRx, ServerError};

/// Listen backlog: room for a burst of balancer checks arriving at once.
const BACKLOG: i32 = 1024;
/// Connection reports computed at once; more wait their turn. Each is a
/// pass over the snapshots it asks for: milliseconds for one moment, up to
/// the whole history for a range.
const MAX_CONCURRENT_QUERIES: usize = 2;

/// The protocols a listener can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// The native framed protocol (docs/PROTOCOL.md).
    Native,
    /// HAProxy `agent-check` lines ([`crate::agent`]).
    Agent,
    /// HTTP `/healthz`, `/livez`, `/readyz` ([`crate::http`]).
    Http,
}

pub(crate) fn spawn(cfg: Builder, state_rx: LandmarkRx) -> Result<HealthServer, ServerError> {
    if cfg.connections.as_ref().is_some_and(|c| c.ports.is_empty()) {
        return Err(ServerError::NoConnectionPorts);
    }
    let mut listeners = vec![(Protocol::Native, bind(cfg.bind)?)];
    if let Some(addr) = cfg.agent_bind {
        listeners.push((Protocol::Agent, bind(addr)?));
    }
    if let Some(addr) = cfg.http_bind {
        listeners.push((Protocol::Http, bind(addr)?));
    }
    let mut addrs = Vec::new();
    for (protocol, l) in &listeners {
        let addr = l.local_addr().map_err(|source| ServerError::Bind {
            addr: cfg.bind,
            source,
        })?;
        addrs.push((*protocol, addr));
    }
    let shared = Arc::new(Shared {
        draining: AtomicBool::new(false),
        token: CancellationToken::new(),
    });
    let (done_tx, done_rx) = oneshot::channel();
    let serve = serve(listeners, cfg, state_rx, Arc::clone(&shared), done_tx);
    let thread = match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(serve);
            None
        }
        Err(_) => {
            // No runtime in the caller (a plain-thread service): run our own
            // small one, so the service needs no tokio code of its own.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(ServerError::Runtime)?;
            let thread = std::thread::Builder::new()
                .name("health-server".into())
                .spawn(move || rt.block_on(serve))
                .map_err(ServerError::Runtime)?;
            Some(thread)
        }
    };
    Ok(HealthServer::new(addrs, shared, done_rx, thread))
}

/// Binds with SO_REUSEADDR, so a restarted service gets its port back while
/// old connections sit in TIME_WAIT.
fn bind(addr: SocketAddr) -> Result<StdListener, ServerError> {
    let err = |source| ServerError::Bind { addr, source };
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(BACKLOG).map_err(err)?;
    Ok(socket.into())
}

/// What every accept loop shares.
struct Acceptor {
    ctx: Arc<Context>,
    allow: Vec<IpNet>,
    limit: Arc<Semaphore>,
    max_connections: usize,
    tracker: TaskTracker,
    token: CancellationToken,
}

async fn serve(
    listeners: Vec<(Protocol, StdListener)>,
    cfg: Builder,
    state_rx: LandmarkRx,
    shared: Arc<Shared>,
    done: oneshot::Sender<()>,
) {
    let observer = Observer::new(
        state_rx.kind,
        ObserveConfig {
            answer_deadline: cfg.answer_deadline,
            stale_after: cfg.stale_after,
            slow_answer: cfg.slow_answer,
        },
    );
    let recorder = cfg.connections.map(|c| Arc::new(Recorder::new(c)));
    if let Some(recorder) = &recorder {
        // The first snapshot before anyone can ask: a report right after
        // start is not empty, and the landmark has its component.
        let recorder = Arc::clone(recorder);
        let _ = tokio::task::spawn_blocking(move || recorder.record()).await;
    }
    let acceptor = Arc::new(Acceptor {
        ctx: Arc::new(Context {
            observer,
            recorder: recorder.clone(),
            queries: Semaphore::new(MAX_CONCURRENT_QUERIES),
            shared: Arc::clone(&shared),
            conn: ConnConfig {
                read_timeout: cfg.read_timeout,
                write_timeout: cfg.write_timeout,
                max_payload: cfg.max_payload,
            },
        }),
        allow: cfg.allow,
        limit: Arc::new(Semaphore::new(cfg.max_connections)),
        max_connections: cfg.max_connections,
        tracker: TaskTracker::new(),
        token: shared.token.clone(),
    });
    if let Some(recorder) = recorder {
        acceptor.tracker.spawn(recorder.run(acceptor.token.clone()));
    }
    for (protocol, listener) in listeners {
        match TcpListener::from_std(listener) {
            Ok(l) => {
                acceptor
                    .tracker
                    .spawn(accept_loop(Arc::clone(&acceptor), protocol, l));
            }
            Err(e) => {
                tracing::error!(error = %e, ?protocol, "health endpoint cannot register its listener");
            }
        }
    }
    acceptor.tracker.close();
    acceptor.tracker.wait().await;
    tracing::debug!("health endpoint stopped");
    let _ = done.send(());
}

async fn accept_loop(a: Arc<Acceptor>, protocol: Protocol, listener: TcpListener) {
    let busy = busy_reply(protocol, a.max_connections);
    let mut backoff = Duration::from_millis(5);
    loop {
        let (stream, peer) = tokio::select! {
            _ = a.token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    backoff = Duration::from_millis(5);
                    conn
                }
                Err(e) => {
                    // Typically EMFILE: keep serving the connections we have
                    // and retry with a growing pause, not a busy loop.
                    tracing::error!(error = %e, "health endpoint cannot accept; retrying");
                    tokio::select! {
                        _ = a.token.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        if !allowed(&a.allow, peer.ip()) {
            tracing::info!(%peer, "refused health check: source not in the allow-list");
            drop(stream);
            continue;
        }
        let Ok(permit) = Arc::clone(&a.limit).try_acquire_owned() else {
            tracing::warn!(
                %peer,
                limit = a.max_connections,
                "refused health check: connection limit reached"
            );
            // Best effort and never blocking: a fresh socket's send buffer
            // takes these few bytes at once.
            let _ = stream.try_write(&busy);
            continue;
        };
        let ctx = Arc::clone(&a.ctx);
        let token = a.token.clone();
        a.tracker.spawn(async move {
            match protocol {
                Protocol::Native => serve_connection(stream, peer, &ctx, token).await,
                Protocol::Agent => serve_agent(stream, peer, &ctx).await,
                Protocol::Http => serve_http(stream, peer, &ctx).await,
            }
            drop(permit);
        });
    }
}

/// What a connection over the limit is told before it is closed. An agent
/// gets nothing: HAProxy does not count an agent failure against the server.
fn busy_reply(protocol: Protocol, max: usize) -> Vec<u8> {
    let message = format!("health endpoint is at its limit of {max} connections");
    match protocol {
        Protocol::Native => Response::Error(ErrorReply::new(ErrorCode::Busy, message))
            .to_frame(0)
            .to_bytes(),
        Protocol::Agent => Vec::new(),
        Protocol::Http => {
            let body = serde_json::json!({ "error": message }).to_string();
            format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
    }
}

/// Whether `ip` may connect: no allow-list, or inside one of its networks.
fn allowed(allow: &[IpNet], ip: IpAddr) -> bool {
    if allow.is_empty() {
        return true;
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    allow.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn allow_list_matches_mapped_ipv4() {
        let allow = ["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        assert!(allowed(&allow, "10.1.2.3".parse().unwrap()));
        assert!(allowed(&allow, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(allowed(&allow, "fd00::1".parse().unwrap()));
        assert!(!allowed(&allow, "11.0.0.1".parse().unwrap()));
        assert!(!allowed(&allow, "::1".parse().unwrap()));
        assert!(allowed(&[], "11.0.0.1".parse().unwrap()));
    }
}
