//! One client connection: read a request within the read deadline, answer it
//! from the service's landmark, write the reply within the write deadline,
//! repeat until the peer closes, goes silent, or sends something unusable.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use health_proto::codec::FrameCodec;
use health_proto::{
    ConnectionReport, ConnectionsRequest, ErrorCode, ErrorReply, Frame, Landmark, LandmarkReply,
    ProtoError, Request, Response, State,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::admission::Slot;
use crate::ask::Observer;
use crate::connections::reports::Reports;
use crate::connections::Recorder;
use crate::handle::Shared;

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
    pub(crate) recorder: Option<Arc<Recorder>>,
    /// Bounds and shares the connection reports computed.
    pub(crate) reports: Reports,
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: ConnConfig,
}

pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Context,
    mut slot: Slot,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let cfg = ctx.conn;
    // Start small: a whole-service check is a 16-byte header, and the
    // decoder reserves more only when a header announces a payload. Idle
    // connections then cost little (tokio-util's default is 8 KiB each).
    let mut framed = Framed::with_capacity(stream, FrameCodec::new(cfg.max_payload), 256);
    loop {
        // A request already received is answered without the connection
        // ever being idle (evictable); otherwise it is idle while it waits.
        let next = match framed.next().now_or_never() {
            Some(next) => Ok(next),
            None => {
                slot.idle();
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    _ = slot.evicted() => {
                        evict(framed.get_ref(), peer);
                        break;
                    }
                    next = tokio::time::timeout(cfg.read_timeout, framed.next()) => next,
                }
            }
        };
        if !slot.busy() {
            evict(framed.get_ref(), peer);
            break;
        }
        let (request_id, response, keep_open) = match next {
            Err(_) => {
                tracing::debug!(%peer, "closing health connection: no complete request within the read timeout");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(ProtoError::Io(e)))) => {
                tracing::debug!(%peer, error = %e, "health connection read error");
                break;
            }
            Ok(Some(Err(e))) => {
                // Header-level error: the stream cannot be resynchronised.
                tracing::info!(%peer, error = %e, "bad health check request");
                match e.code() {
                    Some(code) => (
                        0,
                        Response::Error(ErrorReply::new(code, e.to_string())),
                        false,
                    ),
                    None => break,
                }
            }
            Ok(Some(Ok(frame))) => match Request::from_frame(&frame) {
                Ok(Request::Check(check)) => {
                    let response = match ctx.check(check.component()).await {
                        Ok(reply) => Response::Landmark(reply),
                        Err(e) => Response::Error(e),
                    };
                    (frame.request_id, response, true)
                }
                Ok(Request::Connections(request)) => {
                    (frame.request_id, ctx.connections(peer, request).await, true)
                }
                Err(e) => {
                    tracing::info!(%peer, error = %e, "bad health check request");
                    let code = e.code().unwrap_or(ErrorCode::BadPayload);
                    (
                        frame.request_id,
                        Response::Error(ErrorReply::new(code, e.to_string())),
                        e.is_recoverable(),
                    )
                }
            },
        };
        let frame = ctx.fit(response, request_id);
        match tokio::time::timeout(cfg.write_timeout, framed.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "health connection write error");
                break;
            }
            Err(_) => {
                tracing::info!(%peer, "closing health connection: reply not taken within the write timeout");
                break;
            }
        }
        if !keep_open {
            break;
        }
    }
}

/// Closes an evicted connection with a reset: the peer learns at once, and
/// no TIME_WAIT is left behind for a connection that was hoarding a place.
pub(crate) fn evict(stream: &TcpStream, peer: SocketAddr) {
    tracing::trace!(%peer, "idle health connection evicted for a newcomer");
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

impl Context {
    /// Answers a check for the whole service (`None`) or one component.
    pub(crate) async fn check(&self, component: Option<&str>) -> Result<LandmarkReply, ErrorReply> {
        let obs = self.observer.observe().await;
        let marked;
        let mut landmark: &Landmark = &obs.landmark;
        if let (Some(recorder), true) = (&self.recorder, obs.from_service) {
            let mut l = Landmark::clone(landmark);
            recorder.mark(&mut l);
            marked = l;
            landmark = &marked;
        }
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
            },
        };
        let l = &mut reply.landmark;
        if self.shared.draining.load(Ordering::Relaxed) && l.state < State::Drain {
            l.state = State::Drain;
            l.detail = if l.detail.is_empty() {
                "draining".to_string()
            } else {
                format!("draining: {}", l.detail)
            };
        }
        Ok(reply)
    }

    /// Answers a `connections` request from the recorder's history, on the
    /// blocking pool (a report over 100k connections takes milliseconds,
    /// too long to hold the runtime's thread), within [`Reports`]' limits.
    async fn connections(&self, peer: SocketAddr, request: ConnectionsRequest) -> Response {
        let Some(recorder) = &self.recorder else {
            return Response::Error(ErrorReply::new(
                ErrorCode::NotCollecting,
                "this server does not collect connections",
            ));
        };
        let max = self.conn.max_payload as usize;
        self.reports.answer(peer.ip(), recorder, request, max).await
    }

    /// Encodes `response` within the frame limit: a landmark too large is
    /// replaced with a `fail` that says so, an error's message is shortened.
    fn fit(&self, response: Response, request_id: u32) -> Frame {
        let frame = response.to_frame(request_id);
        let max = self.conn.max_payload as usize;
        if frame.payload.len() <= max {
            return frame;
        }
        let fitted = match response {
            Response::Landmark(_) => {
                let reason = format!(
                    "landmark too large: {} bytes exceeds the {max}-byte frame limit",
                    frame.payload.len()
                );
                tracing::warn!(
                    size = frame.payload.len(),
                    max,
                    "check failed: landmark too large"
                );
                Response::Landmark(LandmarkReply::whole(Landmark::fail(reason), 0))
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

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
