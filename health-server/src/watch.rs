//! `watch` streams (docs/PROTOCOL.md sections 5.7 and 8.7): a client that
//! asks to watch gets a `landmark` frame at once, another each time the
//! landmark changes (a hung main thread is a change to `fail`, pushed when
//! the answer deadline passes), and a heartbeat when nothing changed for
//! its heartbeat, until it closes the connection.
//!
//! The streams share one look at the landmark: a *hub* task, running while
//! any stream is open, observes it (asks the main thread, or reads the
//! published landmark) at the fastest period any stream asked for, and
//! each stream makes its own reply (its component, the endpoint's drain)
//! from that one observation. A thousand streams cost the main thread one
//! answer per period, as a thousand concurrent checks cost it one.
//!
//! Streams are bounded per source and in total ([`Streams::admit`]), on
//! top of the connection limits a stream's connection is under: between
//! pushes it is idle, so a newcomer at its source's limit may evict it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use health_proto::{ErrorCode, ErrorReply, LandmarkReply, Push, Response, WatchRequest};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admission::{Slot, Source};
use crate::ask::{fmt_duration, Observation};
use crate::conn::Conn;
use crate::context::{evict, Context};
use crate::metrics::Metrics;

/// The shortest period a stream may ask for: a hang is pushed at most this
/// long after it began, plus the answer deadline.
pub(crate) const MIN_PERIOD: Duration = Duration::from_millis(100);
/// The longest period a stream may ask for.
pub(crate) const MAX_PERIOD: Duration = Duration::from_secs(60);
/// The period of a stream that does not ask for one.
pub(crate) const DEFAULT_PERIOD: Duration = Duration::from_secs(1);
/// The shortest heartbeat a stream may ask for.
pub(crate) const MIN_HEARTBEAT: Duration = Duration::from_secs(1);
/// The longest heartbeat a stream may ask for.
pub(crate) const MAX_HEARTBEAT: Duration = Duration::from_secs(300);
/// The heartbeat of a stream that does not ask for one.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// The least time between two looks at a published landmark.
const PUBLISHED_GAP: Duration = Duration::from_millis(10);

/// The endpoint's streams: their limits, and the hub they share.
pub(crate) struct Streams {
    per_source: usize,
    total: usize,
    inner: Mutex<Inner>,
    /// The hub's latest observation.
    latest: watch::Sender<Option<Arc<Observation>>>,
    /// Told when the fastest period may have changed.
    replan: Notify,
}

#[derive(Default)]
struct Inner {
    sources: HashMap<Source, usize>,
    open: usize,
    /// The periods of the open streams, with how many asked for each.
    periods: BTreeMap<Duration, usize>,
    hub_running: bool,
}

/// One open stream's place; dropping it gives the place back.
pub(crate) struct Permit {
    streams: Arc<Streams>,
    source: Source,
    period: Duration,
    metrics: Metrics,
}

impl Streams {
    pub(crate) fn new(total: usize, per_source: usize) -> Arc<Streams> {
        Arc::new(Streams {
            per_source,
            total,
            inner: Mutex::new(Inner::default()),
            latest: watch::Sender::new(None),
            replan: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a stream from `source` looking every `period`, starting
    /// the hub if it is not running; the `busy` error when the source or
    /// the endpoint is at its limit.
    fn admit(
        self: &Arc<Self>,
        ctx: &Arc<Context>,
        source: Source,
        period: Duration,
    ) -> Result<Permit, ErrorReply> {
        let mut inner = self.lock();
        let from_source = inner.sources.get(&source).copied().unwrap_or(0);
        if from_source >= self.per_source {
            return Err(ErrorReply::new(
                ErrorCode::Busy,
                format!(
                    "too many watch streams from this source (limit {})",
                    self.per_source
                ),
            ));
        }
        if inner.open >= self.total {
            return Err(ErrorReply::new(
                ErrorCode::Busy,
                format!("too many watch streams (limit {})", self.total),
            ));
        }
        *inner.sources.entry(source).or_default() += 1;
        inner.open += 1;
        let fastest = inner.periods.keys().next().copied();
        *inner.periods.entry(period).or_default() += 1;
        if !inner.hub_running {
            inner.hub_running = true;
            tokio::spawn(hub(Arc::clone(ctx)));
        } else if fastest.is_none_or(|f| period < f) {
            // The hub sleeps out the old period; it must look sooner now.
            // (A stream that closes needs no wake: the hub's next look
            // reads the periods left, and stops when none is.)
            self.replan.notify_one();
        }
        drop(inner);
        ctx.metrics.stream_opened();
        Ok(Permit {
            streams: Arc::clone(self),
            source,
            period,
            metrics: ctx.metrics.clone(),
        })
    }

    /// The fastest period of the open streams; `None` (and the hub marked
    /// stopped, under the same lock as [`Streams::admit`] starts it) when
    /// none is open.
    fn fastest_or_stop(&self) -> Option<Duration> {
        let mut inner = self.lock();
        let fastest = inner.periods.keys().next().copied();
        if fastest.is_none() {
            inner.hub_running = false;
        }
        fastest
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut inner = self.streams.lock();
        if let Some(n) = inner.sources.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                inner.sources.remove(&self.source);
            }
        }
        inner.open = inner.open.saturating_sub(1);
        if let Some(n) = inner.periods.get_mut(&self.period) {
            *n -= 1;
            if *n == 0 {
                inner.periods.remove(&self.period);
            }
        }
        drop(inner);
        self.metrics.stream_closed();
    }
}

/// Looks at the landmark at the fastest period of the open streams, at
/// once when a published landmark changes, and publishes each observation
/// to the streams; ends when the last stream closes or the endpoint stops.
async fn hub(ctx: Arc<Context>) {
    let streams = &ctx.streams;
    let mut published = ctx.observer.published();
    while let Some(period) = streams.fastest_or_stop() {
        let started = Instant::now();
        if let Some(rx) = &mut published {
            rx.borrow_and_update();
        }
        let obs = tokio::select! {
            _ = ctx.shared.token.cancelled() => break,
            obs = ctx.observer.observe() => obs,
        };
        streams.latest.send_replace(Some(obs));
        let publication = async {
            match &mut published {
                // Err: the publisher is gone, itself a change to push.
                Some(rx) => rx.changed().await.is_err(),
                // Asked: only the period wakes the hub.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctx.shared.token.cancelled() => break,
            _ = tokio::time::sleep_until(started + period) => {}
            _ = streams.replan.notified() => {}
            gone = publication => {
                if gone {
                    published = None;
                }
                // A service publishing very fast is looked at no more
                // often than this.
                tokio::time::sleep_until(started + PUBLISHED_GAP).await;
            }
        }
    }
}

/// The period and heartbeat in force for `request`: what it asked for,
/// within the server's bounds, or the defaults.
fn settings(request: &WatchRequest) -> (Duration, Duration) {
    let period = request
        .period()
        .unwrap_or(DEFAULT_PERIOD)
        .clamp(MIN_PERIOD, MAX_PERIOD);
    let heartbeat = request
        .heartbeat()
        .unwrap_or(DEFAULT_HEARTBEAT)
        .clamp(MIN_HEARTBEAT, MAX_HEARTBEAT);
    (period, heartbeat)
}

/// What makes two replies of a stream different: the landmark the client
/// acts on, not its free-form `fields` or the timings.
fn same(a: &LandmarkReply, b: &LandmarkReply) -> bool {
    a.landmark.state == b.landmark.state
        && a.landmark.detail == b.landmark.detail
        && a.landmark.weight == b.landmark.weight
        && a.landmark.components == b.landmark.components
        && a.established == b.established
}

/// Most bytes read from a streaming client: anything it sends ends the
/// stream, so one is enough to know.
const READ_MAX: usize = 64;

/// Serves a `watch` request on `conn`. `Some(error)` when the stream could
/// not begin (the source or the endpoint at its stream limit, an unknown
/// component): the caller answers it and the connection goes on. `None`
/// when the stream began and has ended: the caller closes the connection.
pub(crate) async fn serve(
    conn: &mut Conn,
    ctx: &Arc<Context>,
    slot: &mut Slot,
    shutdown: &CancellationToken,
    request_id: u32,
    request: WatchRequest,
) -> Option<Response> {
    let peer = conn.peer();
    let (period, heartbeat) = settings(&request);
    let component = request.component();
    let permit = match ctx.streams.admit(ctx, Source::of(peer.ip()), period) {
        Ok(permit) => permit,
        Err(busy) => {
            tracing::info!(%peer, reason = %busy.message, "refused a watch stream");
            return Some(Response::Error(busy));
        }
    };
    let stamp = |mut reply: LandmarkReply, push: Push| {
        reply.push = Some(push);
        reply.period_ms = Some(period.as_millis() as u64);
        reply.heartbeat_ms = Some(heartbeat.as_millis() as u64);
        ctx.metrics.pushed(push);
        reply
    };
    // The first frame is a check's answer, fresh (sharing an ask in flight).
    let mut last = match ctx.check("native", component).await {
        Ok(reply) => reply,
        Err(e) => return Some(Response::Error(e)),
    };
    let mut hub = ctx.streams.latest.subscribe();
    hub.borrow_and_update();
    let mut drain = ctx.shared.drain_changed.subscribe();
    drain.borrow_and_update();
    tracing::debug!(%peer, period = %fmt_duration(period), heartbeat = %fmt_duration(heartbeat), "watch stream started");
    let mut frame = Response::Landmark(stamp(last.clone(), Push::First));
    let mut sink = BytesMut::new();
    // Between pushes the connection is idle: a newcomer may evict it.
    slot.idle();
    loop {
        let bytes = ctx.fit(frame, request_id).to_bytes();
        match tokio::time::timeout(ctx.conn.write_timeout, conn.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "watch stream write error");
                break;
            }
            Err(_) => {
                tracing::info!(%peer, "closing watch stream: push not taken within the write timeout");
                break;
            }
        }
        let sent = Instant::now();
        let next = loop {
            let obs = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return None,
                _ = slot.evicted() => {
                    evict(conn);
                    return None;
                }
                _ = conn.read(&mut sink, READ_MAX) => {
                    // The client closed, or sent something after `watch`
                    // (it may not): either way the stream is over.
                    tracing::debug!(%peer, "watch stream ended by the client");
                    return None;
                }
                _ = tokio::time::sleep_until(sent + heartbeat) => {
                    break Response::Landmark(stamp(last.clone(), Push::Heartbeat));
                }
                changed = hub.changed() => match changed {
                    Ok(()) => hub.borrow_and_update().clone(),
                    Err(_) => return None,
                },
                changed = drain.changed() => match changed {
                    Ok(()) => hub.borrow().clone(),
                    Err(_) => return None,
                },
            };
            let Some(obs) = obs else { continue };
            match ctx.reply(&obs, component).await {
                Ok(reply) if same(&reply, &last) => last = reply,
                Ok(reply) => {
                    last = reply;
                    break Response::Landmark(stamp(last.clone(), Push::Change));
                }
                // The component is gone from the landmark: say so, and
                // end the stream.
                Err(e) => {
                    let bytes = ctx.fit(Response::Error(e), request_id).to_bytes();
                    let _ =
                        tokio::time::timeout(ctx.conn.write_timeout, conn.write_all(&bytes)).await;
                    return None;
                }
            }
        };
        frame = next;
    }
    drop(permit);
    None
}
