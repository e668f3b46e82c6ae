//! What every protocol shares: the landmark check itself (asking the main
//! thread, a component's view, draining), the settings of a connection,
//! the state the handle shares with the tasks, and how a connection waits
//! while it may be evicted. The native protocol ([`crate::native`]),
//! HAProxy's agent ([`crate::agent`]) and HTTP ([`crate::http`]) each
//! speak it in their own words.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use health_proto::{
    ConnectionReport, ErrorCode, ErrorReply, Frame, Landmark, LandmarkReply, Response, State,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::admission::Slot;
use crate::ask::{Observation, Observer};
use crate::conn::Conn;
#[cfg(feature = "connections")]
use crate::connections::{reports::Reports, Recorder};
use crate::metrics::Metrics;
use crate::streams::Streams;
use health_proto::text::truncate;

/// State shared between the handle and the server's tasks.
pub(crate) struct Shared {
    pub(crate) draining: AtomicBool,
    /// Told each time `draining` is set or cleared, so that watch streams
    /// push the change at once.
    pub(crate) drain_changed: watch::Sender<()>,
    pub(crate) token: CancellationToken,
}

/// The deadlines and frame limit of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnConfig {
    pub(crate) read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) max_payload: u32,
}

/// What every connection shares.
pub(crate) struct Context {
    pub(crate) observer: Observer,
    /// The connection report, when the service turned it on.
    #[cfg(feature = "connections")]
    pub(crate) recorder: Option<Arc<Recorder>>,
    /// Bounds and shares the connection reports computed.
    #[cfg(feature = "connections")]
    pub(crate) reports: Reports,
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: ConnConfig,
    pub(crate) metrics: Metrics,
    /// The `watch` streams, their limits and the hub they share.
    pub(crate) streams: Arc<Streams>,
    /// What `GET /metrics` serves: [`Metrics`] in a registry of its own.
    pub(crate) exposition: prometheus_client::registry::Registry,
}

impl Context {
    /// Answers a check on `protocol` for the whole service (`None`) or one
    /// component, and counts it.
    pub(crate) async fn check(
        &self,
        protocol: &'static str,
        component: Option<&str>,
    ) -> Result<LandmarkReply, ErrorReply> {
        let reply = self.landmark(component).await;
        self.metrics
            .check(protocol, reply.as_ref().ok().map(|r| r.landmark.state));
        reply
    }

    /// The landmark for the whole service (`None`) or one component; the
    /// whole service's goes to the metrics' gauges.
    pub(crate) async fn landmark(
        &self,
        component: Option<&str>,
    ) -> Result<LandmarkReply, ErrorReply> {
        let obs = self.observer.observe().await;
        self.reply(&obs, component).await
    }

    /// The reply `obs` makes for the whole service (`None`) or one
    /// component, drained when the endpoint drains.
    pub(crate) async fn reply(
        &self,
        obs: &Observation,
        component: Option<&str>,
    ) -> Result<LandmarkReply, ErrorReply> {
        #[cfg(feature = "connections")]
        let landmark = match (&self.recorder, obs.from_service) {
            (Some(recorder), true) => {
                let mut l = Landmark::clone(&obs.landmark);
                recorder.mark(&mut l);
                Arc::new(l)
            }
            _ => Arc::clone(&obs.landmark),
        };
        #[cfg(not(feature = "connections"))]
        let landmark = Arc::clone(&obs.landmark);
        let draining = self.shared.draining.load(Ordering::Relaxed);
        self.metrics.landmark(Arc::clone(&landmark), draining);
        let landmark = &*landmark;
        let mut reply = match component {
            Some(name) if obs.from_service => match landmark.components.get(name) {
                Some(c) => LandmarkReply {
                    component: Some(name.to_string()),
                    landmark: Landmark {
                        state: c.state,
                        detail: c.detail.clone(),
                        weight: landmark.weight,
                        components: Default::default(),
                        fields: landmark.fields.clone(),
                    },
                    answer_us: obs.answer_us,
                    age_us: obs.age_us,
                    ..LandmarkReply::default()
                },
                None => {
                    return Err(ErrorReply::new(
                        ErrorCode::UnknownComponent,
                        format!("no component named {:?}", truncate(name, 64)),
                    ))
                }
            },
            _ => LandmarkReply {
                component: component.map(str::to_string),
                landmark: landmark.clone(),
                answer_us: obs.answer_us,
                age_us: obs.age_us,
                ..LandmarkReply::default()
            },
        };
        let l = &mut reply.landmark;
        if draining && l.state < State::Drain {
            l.state = State::Drain;
            l.detail = if l.detail.is_empty() {
                "draining".to_string()
            } else {
                format!("draining: {}", l.detail)
            };
        }
        // Draining (the endpoint's drain or the service's own landmark):
        // how many clients are still on the service's ports, when the
        // recorder can count them.
        #[cfg(feature = "connections")]
        if reply.landmark.state == State::Drain {
            if let Some(recorder) = &self.recorder {
                reply.established = recorder.established().await;
            }
        }
        Ok(reply)
    }
}

impl Context {
    /// Encodes `response` within the frame limit: a landmark too large is
    /// replaced with a `fail` that says so, an error's message is
    /// shortened.
    pub(crate) fn fit(&self, response: Response, request_id: u32) -> Frame {
        let frame = response.to_frame(request_id);
        let max = self.conn.max_payload as usize;
        if frame.payload.len() <= max {
            return frame;
        }
        let fitted = match response {
            Response::Landmark(reply) => {
                let reason = format!(
                    "landmark too large: {} bytes exceeds the {max}-byte frame limit",
                    frame.payload.len()
                );
                tracing::warn!(
                    size = frame.payload.len(),
                    max,
                    "check failed: landmark too large"
                );
                // A stream's frame keeps what says it is one.
                Response::Landmark(LandmarkReply {
                    push: reply.push,
                    period_ms: reply.period_ms,
                    heartbeat_ms: reply.heartbeat_ms,
                    ..LandmarkReply::whole(Landmark::fail(reason), 0)
                })
            }
            Response::Error(e) => Response::Error(ErrorReply {
                code: e.code,
                message: truncate(&e.message, max / 4).to_string(),
            }),
            // The query fits its report within the limit; should it not,
            // say so rather than send a frame the client must refuse.
            Response::ConnectionReport(r) => Response::ConnectionReport(ConnectionReport {
                snapshots: Vec::new(),
                truncated: true,
                ..r
            }),
        };
        fitted.to_frame(request_id)
    }
}

/// How waiting for a request ended.
pub(crate) enum Waited<T> {
    /// It came, and the connection is busy (not evictable) from here on.
    Ready(T),
    /// Not within the read timeout.
    TimedOut,
    /// A newcomer needed the place: close with [`evict`].
    Evicted,
    /// The endpoint is shutting down.
    Shutdown,
}

/// Waits for `read` (a request) within `timeout`. A fresh connection's
/// first request is taken without the connection ever being idle; a later
/// one already in passes through idle (the source's limit is enforced
/// there); otherwise the connection is idle (evictable) while it waits.
pub(crate) async fn read_while_idle<F: Future>(
    slot: &mut Slot,
    read: F,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Waited<F::Output> {
    let mut read = std::pin::pin!(read);
    let got = match read.as_mut().now_or_never() {
        Some(got) => {
            slot.pass_through_idle();
            got
        }
        None => {
            slot.idle();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Waited::Shutdown,
                _ = slot.evicted() => return Waited::Evicted,
                got = tokio::time::timeout(timeout, read) => match got {
                    Ok(got) => got,
                    Err(_) => return Waited::TimedOut,
                },
            }
        }
    };
    if slot.busy() {
        Waited::Ready(got)
    } else {
        Waited::Evicted
    }
}

/// Closes an evicted connection with a reset: the peer learns at once, and
/// no TIME_WAIT is left behind for a connection that was hoarding a place.
pub(crate) fn evict(conn: &Conn) {
    tracing::trace!(peer = %conn.peer(), "idle health connection evicted for a newcomer");
    conn.reset_on_close();
}
