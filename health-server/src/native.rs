//! The native protocol (docs/PROTOCOL.md) on one client connection: read a
//! request within the read deadline, answer it from the service's landmark
//! (or its connection report), write the reply within the write deadline,
//! repeat until the peer closes, goes silent, or sends something unusable.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use health_proto::codec::FrameCodec;
use health_proto::{
    ConnectionReport, ConnectionsRequest, ErrorCode, ErrorReply, Frame, Landmark, LandmarkReply,
    ProtoError, Request, Response,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::admission::Slot;
use crate::context::{evict, read_while_idle, Context, Waited};
use crate::text::truncate;

/// Serves one native-protocol connection until it ends.
pub(crate) async fn serve(
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
        let next = match read_while_idle(&mut slot, framed.next(), cfg.read_timeout, &shutdown)
            .await
        {
            Waited::Ready(next) => next,
            Waited::Shutdown => break,
            Waited::Evicted => {
                evict(framed.get_ref(), peer);
                break;
            }
            Waited::TimedOut => {
                tracing::debug!(%peer, "closing health connection: no complete request within the read timeout");
                break;
            }
        };
        let (request_id, response, keep_open) = match next {
            None => break,
            Some(Err(ProtoError::Io(e))) => {
                tracing::debug!(%peer, error = %e, "health connection read error");
                break;
            }
            Some(Err(e)) => {
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
            Some(Ok(frame)) => match Request::from_frame(&frame) {
                Ok(Request::Check(check)) => {
                    let response = match ctx.check("native", check.component()).await {
                        Ok(reply) => Response::Landmark(reply),
                        Err(e) => Response::Error(e),
                    };
                    (frame.request_id, response, true)
                }
                Ok(Request::Connections(request)) => (
                    frame.request_id,
                    connections(ctx, peer, request).await,
                    true,
                ),
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
        let frame = fit(ctx, response, request_id);
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

/// Answers a `connections` request from the recorder's history, on the
/// blocking pool (a report over 100k connections takes milliseconds,
/// too long to hold the runtime's thread), within [`Reports`]' limits.
async fn connections(ctx: &Context, peer: SocketAddr, request: ConnectionsRequest) -> Response {
    let Some(recorder) = &ctx.recorder else {
        return Response::Error(ErrorReply::new(
            ErrorCode::NotCollecting,
            "this server does not collect connections",
        ));
    };
    let max = ctx.conn.max_payload as usize;
    ctx.reports.answer(peer.ip(), recorder, request, max).await
}

/// Encodes `response` within the frame limit: a landmark too large is
/// replaced with a `fail` that says so, an error's message is shortened.
fn fit(ctx: &Context, response: Response, request_id: u32) -> Frame {
    let frame = response.to_frame(request_id);
    let max = ctx.conn.max_payload as usize;
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
