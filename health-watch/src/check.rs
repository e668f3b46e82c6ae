//! One check of one target, on the watcher's runtime.
//!
//! Landmark and tcp checks are async twins of the one-shot `health-probe`
//! and `health-probe tcp` (same arguments, same classes, reasons and
//! details, through the helpers those share), so thousands run on a few
//! threads. Ping runs the one-shot code on tokio's blocking pool: it spends
//! its time waiting between echo requests, and its socket handling (IP
//! error queues, raw fallback) is not worth a second copy.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use health_proto::codec::FrameCodec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use health_probe::cli::TcpArgs;
use health_probe::outcome::{Class, Speed};
use health_probe::probe::{self, ProbeError, MAX_REPLY};
use health_probe::target;
use health_probe::tcp::{self, Failure, Matcher, MAX_ANSWER};
use health_probe::verdict;

use crate::config::{Check, Target};

/// Most bytes of a check's detail the watcher keeps (and so records with
/// each event, prints and passes on), cut with `...(N more bytes)`: a
/// server cannot grow the history by more than this per event.
pub const MAX_DETAIL: usize = 4096;

/// What one check found, as the watcher keeps, shows and records it.
#[derive(Debug, Clone)]
pub struct Observation {
    pub at: SystemTime,
    pub class: Class,
    /// A stable word within the class (`refused`, `timeout`, ...).
    pub reason: Option<&'static str>,
    pub detail: String,
    /// Landmark and tcp: the whole check; ping: the average round trip.
    pub rtt: Option<Duration>,
    pub speed: Speed,
}

impl Observation {
    /// Counts toward `fall`: anything but OK within `crit`, as the one-shot
    /// check's exit code would say.
    pub fn failed(&self) -> bool {
        verdict::class_exit_code(false, self.class, self.reason, self.speed) != 0
    }
}

/// Runs `target`'s check once.
pub async fn run(target: &Target) -> Observation {
    let at = SystemTime::now();
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + target.timeout;
    let timeout = humantime::format_duration(target.timeout).to_string();
    let (result, rtt, speed) = match &target.check {
        Check::Landmark {
            component,
            expect,
            family,
        } => {
            let reply = landmark(
                &target.addr,
                *family,
                component.as_deref(),
                deadline,
                &timeout,
            )
            .await;
            let (class, reason, detail) = verdict::landmark_class(reply, expect);
            let rtt = start.elapsed();
            ((class, reason, detail), Some(rtt), Speed::Fine)
        }
        Check::Tcp(args) => {
            let result = match tcp_check(args, deadline, &timeout).await {
                Ok(detail) => (Class::Ok, None, detail),
                Err((class, reason, detail)) => (class, Some(reason), detail),
            };
            let rtt = start.elapsed();
            (
                result,
                Some(rtt),
                Speed::of(Some(rtt), args.warn, args.crit),
            )
        }
        Check::Ping(args) => {
            let args = args.clone();
            match tokio::task::spawn_blocking(move || {
                let o = health_probe::ping::run(&args);
                let speed = o.speed(&args);
                (o, speed)
            })
            .await
            {
                Ok((o, speed)) => ((o.class, o.reason, o.detail.clone()), o.avg(), speed),
                Err(e) => (
                    (
                        Class::Err,
                        Some("internal"),
                        format!("ping task failed: {e}"),
                    ),
                    None,
                    Speed::Fine,
                ),
            }
        }
    };
    let (class, reason, detail) = result;
    Observation {
        at,
        class,
        reason,
        detail: match health_probe::text::cut(&detail, MAX_DETAIL) {
            std::borrow::Cow::Borrowed(_) => detail,
            std::borrow::Cow::Owned(cut) => cut,
        },
        rtt,
        speed,
    }
}

/// Connects to `addr` before the deadline, like the one-shot
/// [`probe::connect`].
async fn connect(
    addr: SocketAddr,
    deadline: tokio::time::Instant,
    timeout: &str,
) -> Result<TcpStream, ProbeError> {
    match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
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

/// `addr`'s one address, names resolved by tokio's resolver before
/// `deadline`.
async fn resolve(
    addr: &str,
    family: target::Family,
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

/// The landmark check: `check` request, one framed reply.
async fn landmark(
    addr: &str,
    family: target::Family,
    component: Option<&str>,
    deadline: tokio::time::Instant,
    timeout: &str,
) -> Result<health_proto::LandmarkReply, ProbeError> {
    let addr = resolve(addr, family, deadline).await?;
    let mut stream = connect(addr, deadline, timeout).await?;
    let (id, request) = probe::check_frame(component);
    let bytes = request.to_bytes();
    tokio::time::timeout_at(deadline, stream.write_all(&bytes))
        .await
        .unwrap_or_else(|_| Err(elapsed()))
        .map_err(|e| health_probe::error::io_error(e.into(), "send", timeout))?;
    let mut frames = FramedRead::new(stream, FrameCodec::new(MAX_REPLY));
    let frame = match tokio::time::timeout_at(deadline, frames.next()).await {
        Ok(Some(frame)) => frame,
        Ok(None) => Err(health_proto::ProtoError::Closed),
        Err(_) => Err(elapsed().into()),
    }
    .map_err(|e| health_probe::error::io_error(e, "reply", timeout))?;
    probe::landmark_from(&frame, id, timeout)
}

/// The tcp check: connect, optionally send, read until the answer decides.
async fn tcp_check(
    args: &TcpArgs,
    deadline: tokio::time::Instant,
    timeout: &str,
) -> Result<String, Failure> {
    let addr = resolve(&args.addr, args.family.family(), deadline)
        .await
        .map_err(tcp::classify)?;
    let mut stream = connect(addr, deadline, timeout)
        .await
        .map_err(tcp::classify)?;
    if let Some(send) = &args.send {
        tokio::time::timeout_at(deadline, stream.write_all(&send.0))
            .await
            .unwrap_or_else(|_| Err(elapsed()))
            .map_err(|e| tcp::io_failure(e, "sending", timeout))?;
    }
    let Some(matcher) = Matcher::of(args) else {
        return Ok(tcp::connected(args));
    };
    let mut answer = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(done) = matcher.decided(&answer) {
            return done;
        }
        let room = (MAX_ANSWER - answer.len()).min(chunk.len());
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk[..room]))
            .await
            .unwrap_or_else(|_| Err(elapsed()))
            .map(|n| &chunk[..n]);
        if let Some(done) = matcher.after_read(&mut answer, read, timeout) {
            return done;
        }
    }
}
