//! The checks on a tokio runtime (the `async` feature), for the watcher:
//! the same specs in, the same outcomes out as the blocking
//! [`probe::run`], [`tcp::run`], [`ping::run`] and [`tls::run`], with the
//! same classes,
//! reasons and details through the helpers those share, so thousands of
//! checks run on a few threads.
//!
//! Ping runs the blocking check on tokio's blocking pool: it spends its
//! time waiting between echo requests, and its socket handling (IP error
//! queues, raw fallback) is not worth a second copy.

use std::net::SocketAddr;
use std::time::Instant;

use futures_util::StreamExt;
use health_proto::codec::FrameCodec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::error::{io_error, ProbeError};
use crate::outcome::Class;
use crate::ping::{self, PingOutcome};
use crate::probe::{self, Outcome, MAX_REPLY};
use crate::source::Source;
use crate::spec::{LandmarkSpec, PingSpec, TcpSpec, TlsSpec};
use crate::target::{self, Family};
use crate::tcp::{self, Failure, Matcher, TcpOutcome, MAX_ANSWER};
use crate::tls::{self, Dialog, Handshake, Next, Prepared, TlsOutcome};

/// Runs the landmark check `spec` asks for.
pub async fn landmark(spec: &LandmarkSpec) -> Outcome {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + spec.timeout);
    let timeout = humantime::format_duration(spec.timeout).to_string();
    let mut addr = None;
    let result = landmark_exchange(spec, deadline, &timeout, &mut addr).await;
    Outcome {
        addr,
        result,
        elapsed: start.elapsed(),
    }
}

/// Runs the tcp check `spec` asks for.
pub async fn tcp(spec: &TcpSpec) -> TcpOutcome {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + spec.timeout);
    let timeout = humantime::format_duration(spec.timeout).to_string();
    let mut addr = None;
    let mut answer = Vec::new();
    let result = tcp_exchange(spec, deadline, &timeout, &mut addr, &mut answer).await;
    TcpOutcome::new(addr, result, answer, start)
}

/// Runs the ping check `spec` asks for, on the blocking pool.
pub async fn ping(spec: &PingSpec) -> PingOutcome {
    let owned = spec.clone();
    match tokio::task::spawn_blocking(move || ping::run(&owned)).await {
        Ok(outcome) => outcome,
        Err(e) => ping::failed(Class::Err, "internal", format!("ping task failed: {e}")),
    }
}

/// Runs the tls check `spec` asks for (tokio-rustls for the handshake).
pub async fn tls(spec: &TlsSpec) -> TlsOutcome {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + spec.timeout);
    let timeout = humantime::format_duration(spec.timeout).to_string();
    let mut addr = None;
    let prepared = Prepared::new(spec);
    let result = match &prepared {
        Ok(p) => tls_handshake(spec, p, deadline, &timeout, &mut addr).await,
        Err(failure) => Err(failure.clone()),
    };
    TlsOutcome::new(spec, addr, result, prepared.ok(), start)
}

/// Connect, the STARTTLS dialog if any, the handshake.
async fn tls_handshake(
    spec: &TlsSpec,
    prepared: &Prepared,
    deadline: tokio::time::Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<Handshake, Failure> {
    let mut stream = open(
        &spec.addr,
        spec.family,
        spec.source.as_ref(),
        deadline,
        timeout,
        tried,
    )
    .await?;
    if let Some(protocol) = spec.starttls {
        let mut dialog = Dialog::new(protocol, &prepared.host);
        let mut next = dialog.start();
        let mut chunk = [0u8; 2048];
        loop {
            next = match next {
                Next::Send(bytes) => {
                    tokio::time::timeout_at(deadline, stream.write_all(&bytes))
                        .await
                        .unwrap_or_else(|_| Err(elapsed()))
                        .map_err(|e| tcp::io_failure(e, "STARTTLS", timeout))?;
                    dialog.sent()
                }
                Next::Read => {
                    let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
                        .await
                        .unwrap_or_else(|_| Err(elapsed()))
                        .map_err(|e| tcp::io_failure(e, "STARTTLS answer", timeout))?;
                    dialog.received(&chunk[..n])
                }
                Next::Ready => break,
                Next::Refused(why) => return Err((Class::Ng, "starttls", why)),
            }
        }
    }
    let connector = tokio_rustls::TlsConnector::from(prepared.config.clone());
    let mut session =
        tokio::time::timeout_at(deadline, connector.connect(prepared.name.clone(), stream))
            .await
            .unwrap_or_else(|_| Err(elapsed()))
            .map_err(|e| tls::handshake_failure(e, timeout))?;
    let version = session
        .get_ref()
        .1
        .protocol_version()
        .map(tls::version_name);
    // A polite end, within what is left of the deadline.
    let _ = tokio::time::timeout_at(deadline, session.shutdown()).await;
    Ok(Handshake { version })
}

/// Connects to `addr` (recorded in `tried`) before the deadline, like the
/// blocking [`probe::connect`].
async fn connect(
    addr: SocketAddr,
    source: Option<&Source>,
    deadline: tokio::time::Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<TcpStream, ProbeError> {
    *tried = Some(addr);
    let socket = match source {
        None => None,
        Some(source) => {
            let socket = Source::tcp_socket(source, addr)?;
            socket.set_nonblocking(true).map_err(ProbeError::Network)?;
            Some(tokio::net::TcpSocket::from_std_stream(socket.into()))
        }
    };
    let connecting = async {
        match socket {
            None => TcpStream::connect(addr).await,
            Some(socket) => socket.connect(addr).await,
        }
    };
    match tokio::time::timeout_at(deadline, connecting).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err(probe::connect_error(e, timeout)),
        Err(_) => Err(ProbeError::Timeout {
            stage: "connection",
            timeout: timeout.to_string(),
        }),
    }
}

fn elapsed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline passed")
}

/// `addr`'s one address, connected before `deadline`, failures in the
/// four classes: where the tcp and tls checks begin (as the blocking
/// [`tcp::open`]).
async fn open(
    addr: &str,
    family: Family,
    source: Option<&Source>,
    deadline: tokio::time::Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<TcpStream, Failure> {
    resolve_and_connect(addr, family, source, deadline, timeout, tried)
        .await
        .map_err(tcp::classify)
}

/// `addr`'s one address (of `family`, or of `source`'s), resolved and
/// connected before `deadline` (recorded in `tried`): where every check
/// and a `watch` stream begin.
async fn resolve_and_connect(
    addr: &str,
    family: Family,
    source: Option<&Source>,
    deadline: tokio::time::Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<TcpStream, ProbeError> {
    let family = Source::family(source, family, addr)?;
    let addr = resolve(addr, family, deadline).await?;
    connect(addr, source, deadline, timeout, tried).await
}

/// `addr`'s one address, names resolved by tokio's resolver before
/// `deadline`.
async fn resolve(
    addr: &str,
    family: Family,
    deadline: tokio::time::Instant,
) -> Result<SocketAddr, ProbeError> {
    target::resolve_async(addr, family, |host, port| async move {
        tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port)))
            .await
            .ok()
            .map(|found| found.map(Vec::from_iter))
    })
    .await
}

/// `spec`'s one address, connected before `deadline` (recorded in
/// `tried`): where a landmark check and a `watch` stream begin.
pub(crate) async fn connect_to(
    spec: &LandmarkSpec,
    deadline: tokio::time::Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<TcpStream, ProbeError> {
    let source = spec.source.as_ref();
    resolve_and_connect(&spec.addr, spec.family, source, deadline, timeout, tried).await
}

/// `check` request, one framed reply.
async fn landmark_exchange(
    spec: &LandmarkSpec,
    deadline: tokio::time::Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<health_proto::LandmarkReply, ProbeError> {
    let mut stream = connect_to(spec, deadline, timeout, tried).await?;
    let (id, request) = probe::check_frame(spec.component.as_deref());
    let bytes = request.to_bytes();
    tokio::time::timeout_at(deadline, stream.write_all(&bytes))
        .await
        .unwrap_or_else(|_| Err(elapsed()))
        .map_err(|e| io_error(e.into(), "send", timeout))?;
    // One request on this connection: a half-close says so (as the
    // blocking probe does).
    let _ = stream.shutdown().await;
    let mut frames = FramedRead::new(stream, FrameCodec::new(MAX_REPLY));
    let frame = match tokio::time::timeout_at(deadline, frames.next()).await {
        Ok(Some(frame)) => frame,
        Ok(None) => Err(health_proto::ProtoError::Closed),
        Err(_) => Err(elapsed().into()),
    }
    .map_err(|e| io_error(e, "reply", timeout))?;
    probe::landmark_from(&frame, id, timeout)
}

/// Connect, optionally send, read until the answer decides.
async fn tcp_exchange(
    spec: &TcpSpec,
    deadline: tokio::time::Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
    answer: &mut Vec<u8>,
) -> Result<String, Failure> {
    let mut stream = open(
        &spec.addr,
        spec.family,
        spec.source.as_ref(),
        deadline,
        timeout,
        tried,
    )
    .await?;
    if let Some(send) = &spec.send {
        tokio::time::timeout_at(deadline, stream.write_all(&send.0))
            .await
            .unwrap_or_else(|_| Err(elapsed()))
            .map_err(|e| tcp::io_failure(e, "sending", timeout))?;
    }
    let Some(matcher) = Matcher::of(spec) else {
        return Ok(tcp::connected(spec));
    };
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(done) = matcher.decided(answer) {
            return done;
        }
        let room = (MAX_ANSWER - answer.len()).min(chunk.len());
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk[..room]))
            .await
            .unwrap_or_else(|_| Err(elapsed()))
            .map(|n| &chunk[..n]);
        if let Some(done) = matcher.after_read(answer, read, timeout) {
            return done;
        }
    }
}
