//! The native protocol (docs/PROTOCOL.md) on one client connection: read a
//! request within the read deadline, answer it from the service's landmark
//! (or its connection report), write the reply within the write deadline,
//! repeat until the peer closes, goes silent, or sends something unusable.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use health_proto::codec::FrameCodec;
use health_proto::{
    ConnectionsRequest, ErrorCode, ErrorReply, Frame, Landmark, LandmarkReply, ProtoError, Request,
    Response,
};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::admission::Slot;
use crate::conn::Conn;
use crate::context::{evict, read_while_idle, Context, Waited};
use crate::watch;

/// Most bytes one read adds to a connection's buffer. What the buffer holds
/// is bounded by one frame (its header is checked against the payload
/// limit before the payload is read) plus one read.
const READ_MAX: usize = 4096;

/// Serves one native-protocol connection until it ends; `buf` holds what
/// was read from it at accept.
pub(crate) async fn serve(
    mut conn: Conn,
    mut buf: BytesMut,
    ctx: &Arc<Context>,
    mut slot: Slot,
    shutdown: CancellationToken,
) {
    let peer = conn.peer();
    let cfg = ctx.conn;
    let mut codec = FrameCodec::new(cfg.max_payload);
    loop {
        let next = next_frame(&mut conn, &mut codec, &mut buf);
        let next = match read_while_idle(&mut slot, next, cfg.read_timeout, &shutdown).await {
            Waited::Ready(next) => next,
            Waited::Shutdown => break,
            Waited::Evicted => {
                evict(&conn);
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
                Ok(Request::Watch(request)) => {
                    let id = frame.request_id;
                    match watch::serve(&mut conn, ctx, &mut slot, &shutdown, id, request).await {
                        // Not begun: answered, and the connection goes on.
                        Some(refused) => (id, refused, true),
                        // Begun and ended: the connection with it.
                        None => break,
                    }
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
        // Header and payload in one buffer: one send.
        let reply = ctx.fit(response, request_id).to_bytes();
        match tokio::time::timeout(cfg.write_timeout, conn.write_all(&reply)).await {
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

/// The next request: from the bytes already read when they hold one, else
/// read from the connection (at once when something has arrived, such as
/// the end of a peer that half-closed after its request). `None` when the
/// peer has closed between requests. Cancel-safe: what was read stays in
/// `buf`.
async fn next_frame(
    conn: &mut Conn,
    codec: &mut FrameCodec,
    buf: &mut BytesMut,
) -> Option<Result<Frame, ProtoError>> {
    loop {
        match codec.decode(buf) {
            Ok(Some(frame)) => return Some(Ok(frame)),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        match conn.read(buf, READ_MAX).await {
            Ok(0) => return codec.decode_eof(buf).transpose(),
            Ok(_) => {}
            Err(e) => return Some(Err(ProtoError::Io(e))),
        }
    }
}

/// The `fail` reply to the check in `first` (what a refused connection
/// sent at once), for [`crate::protocol::Protocol::failed_reply`]; `None`
/// when `first` holds no whole check request.
pub(crate) fn failed_reply(fail: &Landmark, first: &[u8]) -> Option<Vec<u8>> {
    let mut buf = BytesMut::from(first);
    let frame = FrameCodec::new(u32::MAX).decode(&mut buf).ok()??;
    let Ok(Request::Check(check)) = Request::from_frame(&frame) else {
        return None;
    };
    let reply = Response::Landmark(LandmarkReply {
        component: check.component().map(str::to_string),
        landmark: fail.clone(),
        ..LandmarkReply::default()
    });
    Some(reply.to_frame(frame.request_id).to_bytes())
}

/// Answers a `connections` request from the recorder's history, on the
/// blocking pool (a report over 100k connections takes milliseconds,
/// too long to hold the runtime's thread), within [`Reports`]' limits.
/// Without the `connections` feature, every request is told so.
#[cfg(not(feature = "connections"))]
async fn connections(_: &Context, _: SocketAddr, _: ConnectionsRequest) -> Response {
    Response::Error(ErrorReply::new(
        ErrorCode::NotCollecting,
        "this server was built without connection reports (feature connections)",
    ))
}

#[cfg(feature = "connections")]
async fn connections(ctx: &Context, peer: SocketAddr, request: ConnectionsRequest) -> Response {
    let Some(recorder) = &ctx.recorder else {
        return Response::Error(ErrorReply::new(
            ErrorCode::NotCollecting,
            "this server does not collect connections",
        ));
    };
    if !recorder.cfg.readers.allows(peer.ip()) {
        tracing::info!(%peer, "refused a connection report: source not allowed to read them");
        return Response::Error(ErrorReply::new(
            ErrorCode::NotAllowed,
            "this server does not let this source read its connection reports",
        ));
    }
    let max = ctx.conn.max_payload as usize;
    ctx.reports.answer(peer.ip(), recorder, request, max).await
}
