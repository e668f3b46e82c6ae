//! An embeddable health endpoint that asks the service's main thread.
//!
//! A TCP port check only proves a socket is listening; a service whose main
//! loop is deadlocked still accepts connections. This endpoint answers each
//! check by asking the main thread for its [`Landmark`] and waiting a bounded
//! time; a main thread that does not answer is reported as `fail`.
//!
//! ```no_run
//! use health_server::Landmark;
//!
//! let (asks, state_rx) = health_server::channel();
//! let server = health_server::spawn(state_rx)?; // listens on 0.0.0.0:9100
//!
//! // In the service's main loop (here a plain thread; see `Asks` for tokio):
//! while let Some(ask) = asks.recv_blocking() {
//!     ask.answer(Landmark::ok("serving 12 clients"));
//! }
//! # drop(server);
//! # Ok::<(), health_server::ServerError>(())
//! ```
//!
//! Modules follow `docs/PROTOCOL.md` section 8: `source` ([`channel`],
//! [`publisher`]) is how the main
//! thread's landmarks reach the server (asked or published), `ask` bounds and
//! shares the asking, `context` is the check every protocol shares,
//! `admission` decides which connections are held when peers try to hold
//! them all, `server` starts the endpoint on its own thread, `accept`
//! accepts within its limits, `conn` does a connection's I/O with the
//! fewest syscalls (read at accept, one send per reply, registered with the
//! reactor only when it must wait), `native` speaks the native
//! protocol with deadlines, `watch` serves its `watch` streams within the
//! limits of `streams`, `agent` and `http` speak HAProxy's agent-check
//! and HTTP from the same landmark, `grpc` (feature `grpc`) gRPC health v1, `metrics` is what `GET /metrics` tells
//! Prometheus ([`Metrics`]), and [`HealthServer`] (`health_server`)
//! is the running endpoint. `protocol` names the languages a listener
//! speaks: a new balancer language is one file beside `agent` and `http`,
//! a `Protocol` variant in `protocol` and one method on [`Builder`].

mod accept;
pub mod admission;
mod agent;
pub mod allow;
mod ask;
mod config;
mod conn;
#[cfg(feature = "connections")]
pub mod connections;
mod context;
mod error;
pub mod exposition;
#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "grpc")]
mod grpc;
mod health_server;
mod http;
mod metrics;
mod native;
mod protocol;
mod server;
mod source;
mod streams;
mod watch;

pub use allow::AllowList;
pub use config::Builder;
pub use error::ServerError;
pub use health_proto::{Component, Landmark, State, TcpState, Weight};
pub use health_server::HealthServer;
pub use metrics::Metrics;
/// The prometheus-client crate [`Metrics::register`] takes a `Registry`
/// of: use this one, and the versions always match.
pub use prometheus_client;
pub use source::{channel, channel_with_wakeup, publisher, Ask, Asks, LandmarkRx, Publisher};

/// Starts a health endpoint with the default settings ([`Builder`] documents
/// them: `0.0.0.0:9100`, 500 ms answer deadline, ...), answering checks from
/// `state_rx`.
///
/// Works with or without a tokio runtime in the caller: the endpoint runs
/// on a thread of its own either way.
pub fn spawn(state_rx: LandmarkRx) -> Result<HealthServer, ServerError> {
    Builder::new().spawn(state_rx)
}
