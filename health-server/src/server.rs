//! The listener: binds, accepts within the connection limit and the
//! allow-list, hands each connection to [`crate::connection`], and shuts
//! down gracefully on request.
//!
//! Shaped like mini-redis's `server.rs`: a semaphore bounds connections, and
//! a cancellation token plays the part of its shutdown broadcast.

use std::net::{IpAddr, SocketAddr, TcpListener as StdListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use health_proto::{ErrorCode, ErrorReply, Response};
use ipnet::IpNet;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ask::{ObserveConfig, Observer};
use crate::connection::{serve_connection, ConnConfig, Context};
use crate::handle::{HealthServer, Shared};
use crate::{Builder, LandmarkRx, ServerError};

/// Listen backlog: room for a burst of balancer checks arriving at once.
const BACKLOG: i32 = 1024;

pub(crate) fn spawn(cfg: Builder, state_rx: LandmarkRx) -> Result<HealthServer, ServerError> {
    let listener = bind(cfg.bind)?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: cfg.bind,
        source,
    })?;
    let shared = Arc::new(Shared {
        draining: AtomicBool::new(false),
        token: CancellationToken::new(),
    });
    let (done_tx, done_rx) = oneshot::channel();
    let serve = serve(listener, cfg, state_rx, Arc::clone(&shared), done_tx);
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
    Ok(HealthServer::new(local_addr, shared, done_rx, thread))
}

/// Binds with SO_REUSEADDR, so a restarted service gets its port back while
/// old connections sit in TIME_WAIT.
fn bind(addr: SocketAddr) -> Result<StdListener, ServerError> {
    let err = |source| ServerError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(BACKLOG).map_err(err)?;
    Ok(socket.into())
}

async fn serve(
    listener: StdListener,
    cfg: Builder,
    state_rx: LandmarkRx,
    shared: Arc<Shared>,
    done: oneshot::Sender<()>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "health endpoint cannot register its listener");
            let _ = done.send(());
            return;
        }
    };
    let observer = Observer::new(
        state_rx.kind,
        ObserveConfig {
            answer_deadline: cfg.answer_deadline,
            stale_after: cfg.stale_after,
            slow_answer: cfg.slow_answer,
        },
    );
    let ctx = Arc::new(Context {
        observer,
        shared: Arc::clone(&shared),
        conn: ConnConfig {
            read_timeout: cfg.read_timeout,
            write_timeout: cfg.write_timeout,
            max_payload: cfg.max_payload,
        },
    });
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let busy = Response::Error(ErrorReply::new(
        ErrorCode::Busy,
        format!(
            "health endpoint is at its limit of {} connections",
            cfg.max_connections
        ),
    ))
    .to_frame(0)
    .to_bytes();
    let tracker = TaskTracker::new();
    let token = shared.token.clone();
    let mut backoff = Duration::from_millis(5);

    loop {
        let (stream, peer) = tokio::select! {
            _ = token.cancelled() => break,
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
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        if !allowed(&cfg.allow, peer.ip()) {
            tracing::info!(%peer, "refused health check: source not in the allow-list");
            drop(stream);
            continue;
        }
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!(
                %peer,
                limit = cfg.max_connections,
                "refused health check: connection limit reached"
            );
            // Best effort and never blocking: a fresh socket's send buffer
            // takes these few bytes at once.
            let _ = stream.try_write(&busy);
            continue;
        };
        let ctx = Arc::clone(&ctx);
        let token = token.clone();
        tracker.spawn(async move {
            serve_connection(stream, peer, &ctx, token).await;
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    tracing::debug!("health endpoint stopped");
    let _ = done.send(());
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
