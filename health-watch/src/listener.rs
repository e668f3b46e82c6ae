//! The HTTP listener's connections (`http_listen`): who gets one, and for
//! how long. The same discipline as the health endpoint's ports
//! (docs/PROTOCOL.md §8.1-8.2), with the endpoint's own admission
//! ([`health_server::admission`]):
//!
//! - **Deferred accept.** A client that connects and says nothing waits
//!   in the kernel ([`DEFER_ACCEPT_SECS`]), costing no descriptor and no
//!   place; a scrape is accepted the moment its request arrives.
//! - **Idle connections give way.** A connection is *busy* from the moment
//!   its request's head is in until its reply's last byte is handed to the
//!   kernel, and *idle* whenever the listener waits for its peer: between
//!   keep-alive requests, and while a head trickles in. When a newcomer
//!   would pass [`PER_SOURCE`] connections from its source, or [`TOTAL`]
//!   in all, the oldest idle one gives way. So idle or slow peers, any
//!   number of them, from any address (the scraper's own included), cannot
//!   keep a scrape out; only a listener whose every connection is busy
//!   refuses one, with a 503.
//! - **Everything ends, and is bounded.** A request head must arrive within
//!   [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD`] bytes; a connection lives at
//!   most [`CONNECTION_LIFETIME`].
//!
//! Evictions and refusals are said as one warning per ten seconds at most,
//! never a line per connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use health_server::admission::{Admission, Limits, Slot};
use health_server::AllowList;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, SockRef, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::output::{Notice, Output};

/// Connections held at once.
pub(crate) const TOTAL: usize = 512;
/// Connections one source (an IPv4 address, an IPv6 /64) holds before its
/// idle ones give way to its newcomers.
pub(crate) const PER_SOURCE: usize = 64;
/// Seconds a connection that has sent nothing waits in the kernel before
/// it is accepted (and then held idle).
const DEFER_ACCEPT_SECS: libc::c_int = 10;
/// Listen backlog: the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;
/// Time for a request's head to arrive.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection stays open, however busy.
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Most bytes buffered for a connection's request head (hyper's default
/// is about 400 KiB): every route takes a short URL and a few headers, and
/// [`TOTAL`] connections trickling heads in hold at most 8 MiB.
const MAX_HEAD: usize = 16 * 1024;

/// Binds `addr` for the listener (an address in use is a start-up error),
/// with deferred accept and `TCP_NODELAY` for the connections it accepts.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    health_server::admission::defer_accept(&socket, DEFER_ACCEPT_SECS)?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Accepts on `listener` until `stop`, serving `app` to the clients
/// `allow` lets in, within admission's limits.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    allow: AllowList,
    output: Arc<Output>,
    stop: CancellationToken,
) {
    let admission = Arc::new(Admission::new(Limits {
        total: TOTAL,
        per_source: PER_SOURCE,
    }));
    let mut summary = tokio::time::interval(health_server::admission::SUMMARY_EVERY);
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            _ = summary.tick() => {
                say(&admission, &output, false);
                continue;
            }
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, most likely: an idle connection gives
                // its own back; said once, then a pause rather than a spin.
                admission.shed_one();
                if !failing {
                    output.notice(Notice::Error(format!("http_listen: cannot accept: {e}")));
                    failing = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        failing = false;
        if !allow.allows(peer.ip()) {
            continue;
        }
        let slot = match admission.admit(peer.ip(), silent(&stream)) {
            Ok(slot) => slot,
            Err(_) => {
                // Every connection is busy (answering): say so, and close.
                let body = format!(
                    "the watcher's HTTP listener holds {TOTAL} connections, all busy: try again\n"
                );
                let _ = stream.try_write(
                    format!(
                        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
                continue;
            }
        };
        tokio::spawn(connection(stream, slot, app.clone(), stop.clone()));
    }
    say(&admission, &output, true);
}

/// Whether the client has sent nothing yet (a peek that would block).
fn silent(stream: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    matches!(
        SockRef::from(stream).peek(&mut byte),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock
    )
}

/// Warns of the evictions and refusals of the last period, if any.
fn say(admission: &Admission, output: &Output, force: bool) {
    if let Some(s) = admission.summary(force) {
        output.notice(Notice::Warning(format!(
            "http_listen full: {} idle connections closed for newcomers and {} refused in {}s (most from {}; limits {TOTAL} connections, {PER_SOURCE} per source)",
            s.evicted, s.refused, s.seconds, s.most_evicted
        )));
    }
}

/// Serves one connection until it ends, is evicted, outlives
/// [`CONNECTION_LIFETIME`], or the listener stops.
async fn connection(stream: TcpStream, slot: Slot, app: Router, stop: CancellationToken) {
    let evicted = slot.evicted_owned();
    let place = Place::new(slot);
    let io = TokioIo::new(Watched {
        stream,
        place: place.clone(),
    });
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        // The head is in: the connection is busy until the reply is sent.
        let answering = place.busy();
        let app = app.clone();
        async move {
            let Some(answering) = answering else {
                // Evicted while its head trickled in.
                let mut gone = Response::new(Body::from("evicted\n"));
                *gone.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return Ok::<_, std::convert::Infallible>(gone);
            };
            let response = app.oneshot(request.map(Body::new)).await?;
            Ok(response.map(|body| {
                Body::new(Answering {
                    body,
                    _answering: answering,
                })
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(io, service);
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = evicted => {}
        _ = tokio::time::timeout(CONNECTION_LIFETIME, conn) => {}
    }
}

/// A connection's place in admission, with whether a request is being
/// answered on it.
#[derive(Debug, Clone)]
struct Place(Arc<Mutex<PlaceState>>);

#[derive(Debug)]
struct PlaceState {
    slot: Slot,
    /// A request is being answered.
    answering: bool,
    /// Marked idle since it was last busy.
    idle: bool,
}

impl Place {
    fn new(slot: Slot) -> Place {
        Place(Arc::new(Mutex::new(PlaceState {
            slot,
            answering: false,
            idle: false,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, PlaceState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request's head is in: busy until the returned guard is dropped
    /// (with the reply's body); `None` if the connection was evicted.
    fn busy(&self) -> Option<AnsweringGuard> {
        let mut s = self.lock();
        if !s.slot.busy() {
            return None;
        }
        s.answering = true;
        s.idle = false;
        Some(AnsweringGuard(self.clone()))
    }

    /// The listener waits for the peer: idle, unless a request is being
    /// answered.
    fn waiting(&self) {
        let mut s = self.lock();
        if !s.answering && !s.idle {
            s.idle = true;
            s.slot.idle();
        }
    }
}

/// Held while a request is answered (its reply's body included).
#[derive(Debug)]
struct AnsweringGuard(Place);

impl Drop for AnsweringGuard {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.answering = false;
        // Through idle between requests, even with the next one already
        // in: a source let in over its limit is trimmed back here.
        s.idle = true;
        s.slot.idle();
    }
}

/// The connection's socket, telling its [`Place`] when a read must wait
/// for the peer.
struct Watched {
    stream: TcpStream,
    place: Place,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if polled.is_pending() {
            self.place.waiting();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A reply's body, holding its connection busy until it is dropped (sent
/// whole, or the connection gone).
struct Answering {
    body: Body,
    _answering: AnsweringGuard,
}

impl http_body::Body for Answering {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
