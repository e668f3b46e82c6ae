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
//! Streams are bounded per source and in total (`streams.rs`), on
//! top of the connection limits a stream's connection is under: between
//! pushes it is idle, so a newcomer at its source's limit may evict it.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use health_proto::{LandmarkReply, Push, Response, WatchRequest};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admission::{Slot, Source};
use crate::ask::fmt_duration;
use crate::conn::Conn;
use crate::context::{evict, Context};

/// The shortest period a stream may ask for: a hang is pushed at most this
/// long after it began, plus the answer deadline.
pub(crate) const MIN_PERIOD: Duration = Duration::from_millis(50);
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

/// Looks at the landmark at the fastest period of the open streams, at
/// once when a published landmark changes, and publishes each observation
/// to the streams; ends when the last stream closes or the endpoint stops.
pub(crate) async fn hub(ctx: Arc<Context>) {
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
    let admitted = ctx
        .streams
        .admit(Source::of(peer.ip()), period, &ctx.metrics);
    let permit = match admitted {
        Ok((permit, start_hub)) => {
            if start_hub {
                tokio::spawn(hub(Arc::clone(ctx)));
            }
            permit
        }
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
                Ok(reply) if !health_proto::watch::changed(&last, &reply) => last = reply,
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
