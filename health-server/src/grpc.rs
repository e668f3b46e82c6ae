//! gRPC health v1 (`grpc.health.v1.Health`: Check, Watch, List) on its own
//! port (`Builder::grpc_bind`, feature `grpc`), so Kubernetes' gRPC
//! probes, Envoy and `grpc_health_probe` can check the service. Each
//! answer asks the main thread like every other port (`Context::check`);
//! a landmark maps onto the serving status per component: `ok` and
//! `degraded` are SERVING (serving, if impaired), `drain` and `fail`
//! NOT_SERVING. The service name is the component, `""` the whole
//! service.
//!
//! The connection is admitted, allow-listed and counted like the others
//! (it is idle from the start: a newcomer may evict it), then served by
//! hyper's HTTP/2 with tonic's gRPC framing, bounded: 16 streams at once,
//! 16 KiB of headers, 4 KiB messages, HTTP/2 pings every 20 s answered
//! within 10 s. Watch is a `watch` stream (docs/PROTOCOL.md section 8.7)
//! under the same limits per source, pushing each change of status.
//!
//! The messages and the service's routing are written here rather than
//! generated: tonic-health's generated service has no `List`, and
//! generating our own would need `protoc` in every build. The three
//! methods follow grpc/grpc-proto's `grpc/health/v1/health.proto`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::Stream;
use health_proto::{ErrorCode, State};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::{Grpc, ServerStreamingService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::admission::{Slot, Source};
use crate::conn::Conn;
use crate::context::Context;
use crate::watch::{self as stream, DEFAULT_PERIOD};

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthCheckRequest {
    /// The service (here: the component); `""` is the whole service.
    #[prost(string, tag = "1")]
    pub(crate) service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub(crate) struct HealthCheckResponse {
    #[prost(enumeration = "ServingStatus", tag = "1")]
    pub(crate) status: i32,
}

/// `grpc.health.v1.HealthListRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthListRequest {}

/// `grpc.health.v1.HealthListResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthListResponse {
    #[prost(map = "string, message", tag = "1")]
    pub(crate) statuses: HashMap<String, HealthCheckResponse>,
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum ServingStatus {
    Unknown = 0,
    Serving = 1,
    NotServing = 2,
    /// Watch only: the service (component) is not known.
    ServiceUnknown = 3,
}

/// A landmark state as a serving status.
fn serving(state: State) -> ServingStatus {
    match state {
        State::Ok | State::Degraded => ServingStatus::Serving,
        State::Drain | State::Fail => ServingStatus::NotServing,
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

/// Most gRPC streams (calls) at once on one connection.
const MAX_CALLS: u32 = 16;
/// Most bytes of one request's headers.
const MAX_HEADERS: u32 = 16 * 1024;
/// Largest message decoded: the requests are a service name.
const MAX_MESSAGE: usize = 4096;
/// HTTP/2 pings: every so often, answered within so long, or closed.
const PING_EVERY: Duration = Duration::from_secs(20);
const PING_WITHIN: Duration = Duration::from_secs(10);
/// How long a closing connection may take to end its calls.
const CLOSING: Duration = Duration::from_secs(1);
/// Status changes a Watch may have queued for a slow reader.
const WATCH_QUEUE: usize = 4;

/// The health service for one connection.
#[derive(Clone)]
struct Health {
    ctx: Arc<Context>,
    peer: SocketAddr,
    shutdown: CancellationToken,
}

/// Serves one admitted gRPC connection, `first` being what was read from
/// it at accept, until it ends, is evicted, or the server shuts down.
pub(crate) async fn serve(
    conn: Conn,
    first: BytesMut,
    ctx: &Arc<Context>,
    mut slot: Slot,
    shutdown: CancellationToken,
) {
    let peer = conn.peer();
    // An idle place from the start: calls are short (Check, List) or
    // bounded by the stream limits (Watch), and a flood of connections
    // must not keep a check out.
    slot.idle();
    let evicted = slot.evicted_owned();
    let stream = match conn.into_stream() {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "gRPC connection lost at accept");
            return;
        }
    };
    let service = Health {
        ctx: Arc::clone(ctx),
        peer,
        shutdown: shutdown.clone(),
    };
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CALLS)
        .max_header_list_size(MAX_HEADERS)
        .keep_alive_interval(PING_EVERY)
        .keep_alive_timeout(PING_WITHIN);
    let io = TokioIo::new(Prefixed { first, stream });
    let served = http2.serve_connection(io, hyper_util::service::TowerToHyperService::new(service));
    tokio::pin!(served);
    let closing = tokio::select! {
        done = &mut served => {
            if let Err(e) = done {
                tracing::debug!(%peer, error = %e, "gRPC connection ended");
            }
            return;
        }
        _ = evicted => true,
        _ = shutdown.cancelled() => false,
    };
    served.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSING, served).await;
    if closing {
        tracing::trace!(%peer, "idle gRPC connection evicted for a newcomer");
    }
    drop(slot);
}

impl Service<http::Request<hyper::body::Incoming>> for Health {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let me = self.clone();
        Box::pin(async move {
            Ok(match req.uri().path() {
                "/grpc.health.v1.Health/Check" => grpc().unary(Check(me), req).await,
                "/grpc.health.v1.Health/Watch" => grpc().server_streaming(Watch(me), req).await,
                "/grpc.health.v1.Health/List" => grpc().unary(List(me), req).await,
                _ => Status::unimplemented("not a method of grpc.health.v1.Health").into_http(),
            })
        })
    }
}

/// gRPC's framing with prost's encoding, messages bounded.
fn grpc<T, U>() -> Grpc<ProstCodec<T, U>>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    Grpc::new(ProstCodec::default())
        .apply_max_message_size_config(Some(MAX_MESSAGE), Some(64 * 1024))
}

struct Check(Health);

impl UnaryService<HealthCheckRequest> for Check {
    type Response = HealthCheckResponse;
    type Future = BoxFuture<Response<HealthCheckResponse>, Status>;

    fn call(&mut self, request: Request<HealthCheckRequest>) -> Self::Future {
        let ctx = Arc::clone(&self.0.ctx);
        Box::pin(async move {
            let name = request.into_inner().service;
            let component = (!name.is_empty()).then_some(name.as_str());
            match ctx.check("grpc", component).await {
                Ok(reply) => Ok(Response::new(response(serving(reply.landmark.state)))),
                Err(e) if e.known_code() == Some(ErrorCode::UnknownComponent) => {
                    Err(Status::not_found(e.message))
                }
                Err(e) => Err(Status::unavailable(e.message)),
            }
        })
    }
}

struct List(Health);

impl UnaryService<HealthListRequest> for List {
    type Response = HealthListResponse;
    type Future = BoxFuture<Response<HealthListResponse>, Status>;

    fn call(&mut self, _: Request<HealthListRequest>) -> Self::Future {
        let ctx = Arc::clone(&self.0.ctx);
        Box::pin(async move {
            let reply = ctx
                .check("grpc", None)
                .await
                .map_err(|e| Status::unavailable(e.message))?;
            let l = &reply.landmark;
            let mut statuses: HashMap<String, HealthCheckResponse> = l
                .components
                .iter()
                .map(|(name, c)| {
                    // A whole-service failure (a hung main thread, a
                    // drain) is every component's too.
                    (
                        name.clone(),
                        response(serving(c.state.max(drained(l.state)))),
                    )
                })
                .collect();
            statuses.insert(String::new(), response(serving(l.state)));
            Ok(Response::new(HealthListResponse { statuses }))
        })
    }
}

/// What a whole-service state makes of a component's: a drain or a fail
/// of the whole is theirs too.
fn drained(whole: State) -> State {
    if whole >= State::Drain {
        whole
    } else {
        State::Ok
    }
}

struct Watch(Health);

/// A Watch's statuses, as they change.
type Statuses = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

impl ServerStreamingService<HealthCheckRequest> for Watch {
    type Response = HealthCheckResponse;
    type ResponseStream = Statuses;
    type Future = BoxFuture<Response<Statuses>, Status>;

    fn call(&mut self, request: Request<HealthCheckRequest>) -> Self::Future {
        let health = self.0.clone();
        Box::pin(async move {
            let ctx = &health.ctx;
            let source = Source::of(health.peer.ip());
            let (permit, start_hub) = ctx
                .streams
                .admit(source, DEFAULT_PERIOD, &ctx.metrics)
                .map_err(|busy| Status::resource_exhausted(busy.message))?;
            if start_hub {
                tokio::spawn(stream::hub(Arc::clone(ctx)));
            }
            let name = request.into_inner().service;
            let (tx, mut rx) = mpsc::channel(WATCH_QUEUE);
            tokio::spawn(async move {
                let _permit = permit;
                watch_statuses(&health, name, tx).await;
            });
            let statuses = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
            Ok(Response::new(Box::pin(statuses) as Statuses))
        })
    }
}

/// Sends `name`'s serving status now and at each change, until the call
/// ends (its receiver dropped) or the server shuts down.
async fn watch_statuses(
    health: &Health,
    name: String,
    tx: mpsc::Sender<Result<HealthCheckResponse, Status>>,
) {
    let ctx = &health.ctx;
    let component = (!name.is_empty()).then_some(name.as_str());
    let status_of =
        |reply: Result<health_proto::LandmarkReply, health_proto::ErrorReply>| match reply {
            Ok(r) => serving(r.landmark.state),
            Err(_) => ServingStatus::ServiceUnknown,
        };
    let mut last = status_of(ctx.check("grpc", component).await);
    let mut hub = ctx.streams.latest.subscribe();
    hub.borrow_and_update();
    let mut drain = ctx.shared.drain_changed.subscribe();
    drain.borrow_and_update();
    if tx.send(Ok(response(last))).await.is_err() {
        return;
    }
    loop {
        let obs = tokio::select! {
            _ = health.shutdown.cancelled() => return,
            _ = tx.closed() => return,
            changed = hub.changed() => match changed {
                Ok(()) => hub.borrow_and_update().clone(),
                Err(_) => return,
            },
            changed = drain.changed() => match changed {
                Ok(()) => hub.borrow().clone(),
                Err(_) => return,
            },
        };
        let Some(obs) = obs else { continue };
        let now = status_of(ctx.reply(&obs, component).await);
        if now != last {
            last = now;
            if tx.send(Ok(response(now))).await.is_err() {
                return;
            }
        }
    }
}

/// The connection, with what was read from it at accept (the start of the
/// client's HTTP/2 preface) given back first.
struct Prefixed {
    first: BytesMut,
    stream: tokio::net::TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.first.is_empty() {
            let n = self.first.len().min(buf.remaining());
            let head = self.first.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
