//! [`HealthServer`]: the running endpoint's handle: its address, drain, and
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::context::Shared;
use crate::metrics::Metrics;
use crate::protocol::Protocol;

/// A running health endpoint.
///
/// Dropping the handle does **not** stop the endpoint (a service that drops
/// it by accident keeps being monitored); call [`HealthServer::shutdown`] or
/// [`HealthServer::shutdown_blocking`] to stop it.
pub struct HealthServer {
    addrs: Vec<(Protocol, SocketAddr)>,
    shared: Arc<Shared>,
    metrics: Metrics,
    done: oneshot::Receiver<()>,
    /// The endpoint's thread; taken when shutting down.
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HealthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthServer")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl HealthServer {
    pub(crate) fn new(
        addrs: Vec<(Protocol, SocketAddr)>,
        shared: Arc<Shared>,
        metrics: Metrics,
        done: oneshot::Receiver<()>,
        thread: JoinHandle<()>,
    ) -> HealthServer {
        HealthServer {
            addrs,
            shared,
            metrics,
            done,
            thread: Some(thread),
        }
    }

    /// The address the native endpoint listens on (with the real port when
    /// bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr_of(Protocol::Native)
            .expect("the native listener always exists")
    }

    /// The endpoint's metrics, to register in the service's own
    /// Prometheus registry ([`Metrics::register`]). The HTTP listener
    /// serves them at `/metrics` in any case.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The HAProxy agent-check address, if [`crate::Builder::agent_bind`] was set.
    pub fn agent_addr(&self) -> Option<SocketAddr> {
        self.addr_of(Protocol::Agent)
    }

    /// The HTTP address, if [`crate::Builder::http_bind`] was set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.addr_of(Protocol::Http)
    }

    /// The gRPC health address, if `Builder::grpc_bind` was set (feature
    /// `grpc`).
    #[cfg(feature = "grpc")]
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.addr_of(Protocol::Grpc)
    }

    fn addr_of(&self, protocol: Protocol) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| *a)
    }

    /// Answers `drain` from now on, so balancers stop sending new work before
    /// a restart. A worse answer from the main thread (`fail`) still wins.
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::Relaxed);
        self.shared.drain_changed.send_replace(());
        tracing::info!(addr = %self.local_addr(), "health endpoint draining");
    }

    /// Stops draining: replies carry the main thread's state again.
    pub fn resume(&self) {
        self.shared.draining.store(false, Ordering::Relaxed);
        self.shared.drain_changed.send_replace(());
        tracing::info!(addr = %self.local_addr(), "health endpoint no longer draining");
    }

    /// Whether [`HealthServer::drain`] is in effect.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes idle connections, lets checks in progress
    /// finish (each is bounded by the answer deadline and write timeout), and
    /// returns when everything has stopped.
    pub async fn shutdown(mut self) {
        self.shared.token.cancel();
        let _ = (&mut self.done).await;
        if let Some(thread) = self.thread.take() {
            // The runtime thread ends right after signalling `done`.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// [`HealthServer::shutdown`] for callers without an async runtime: blocks
    /// the calling thread until the endpoint's thread has stopped. In async
    /// code use `shutdown().await`, which does not hold up a runtime thread.
    pub fn shutdown_blocking(mut self) {
        self.shared.token.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
