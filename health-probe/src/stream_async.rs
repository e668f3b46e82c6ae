//! A `watch` stream on tokio (the `async` feature), for the watcher's
//! landmark targets: open it (resolve, connect, send `watch`, read the
//! first frame, all under the check's deadline) and read each frame the
//! endpoint pushes under a deadline of its heartbeat plus the timeout,
//! with the same failure classes as a check.
//!
//! Reading a frame is cancel-safe (what was read stays in the stream's
//! buffer, and the deadline counts from the last frame), so a watcher may
//! wait for the next frame beside its own timers. The buffer is given
//! back once a frame is parsed: an open stream holds its socket and no
//! buffer between frames, for watchers with 10,000 of them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use health_proto::{Frame, Header, ProtoError, Request, Response, WatchRequest, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::bytes::BytesMut;

use crate::error::{io_error, ProbeError};
use crate::nonblocking;
use crate::probe::{self, Outcome, MAX_REPLY};
use crate::spec::LandmarkSpec;

/// An open `watch` stream.
#[derive(Debug)]
pub struct LandmarkStream {
    stream: TcpStream,
    /// What was read of the next frame.
    buf: BytesMut,
    id: u32,
    /// The endpoint's heartbeat: the next frame is due within it (plus the
    /// check's timeout) of the last.
    heartbeat: Duration,
    timeout: Duration,
    last_frame: Instant,
}

/// How opening a stream ended.
#[derive(Debug)]
pub enum Opened {
    /// The stream, and its first frame as a check's outcome.
    Stream(LandmarkStream, Outcome),
    /// The endpoint does not stream (it answered `unknown_type`, or a
    /// landmark that is no stream's frame): check it instead.
    Unsupported,
    /// The endpoint has as many streams open as it allows (error `busy`,
    /// its message): check it instead, for now.
    Busy(String),
    /// No stream: the outcome says why, as a failed check would.
    Failed(Outcome),
}

/// Opens a stream of `spec`'s landmark, the endpoint looking every
/// `period` and sending at least every `heartbeat`, within `spec`'s
/// timeout.
pub async fn open(spec: &LandmarkSpec, period: Duration, heartbeat: Duration) -> Opened {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + spec.timeout);
    let timeout = humantime::format_duration(spec.timeout).to_string();
    let mut tried = None;
    let request = Request::Watch(WatchRequest {
        component: spec.component.clone(),
        period_ms: Some(period.as_millis() as u64),
        heartbeat_ms: Some(heartbeat.as_millis() as u64),
    });
    let (id, frame) = probe::request_frame(&request);
    let opened = async {
        let stream = nonblocking::connect_to(spec, deadline, &timeout, &mut tried).await?;
        let mut stream = LandmarkStream {
            stream,
            buf: BytesMut::new(),
            id,
            heartbeat: Duration::ZERO,
            timeout: spec.timeout,
            last_frame: start,
        };
        tokio::time::timeout_at(deadline, stream.stream.write_all(&frame.to_bytes()))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            .map_err(|e| io_error(e.into(), "send", &timeout))?;
        let first = stream.read_frame(deadline, "reply", &timeout).await?;
        Ok::<_, ProbeError>((stream, first))
    }
    .await;
    let outcome = |result| Outcome {
        addr: tried,
        result,
        elapsed: start.elapsed(),
    };
    let (mut stream, first) = match opened {
        Ok(opened) => opened,
        Err(e) => return Opened::Failed(outcome(Err(e))),
    };
    match probe::response_to(&first, id, &timeout) {
        // A landmark that is no stream's frame: the endpoint answered the
        // watch as a check, and will not push (not a server of the spec).
        Ok(Response::Landmark(reply)) if reply.push.is_none() => Opened::Unsupported,
        Ok(Response::Landmark(reply)) => {
            stream.heartbeat = Duration::from_millis(reply.heartbeat_ms.unwrap_or(10_000));
            stream.last_frame = Instant::now();
            Opened::Stream(stream, outcome(Ok(reply)))
        }
        Ok(other) => Opened::Failed(outcome(Err(probe::unexpected(&other, "landmark")))),
        Err(ProbeError::Server { name, .. }) if name == "unknown_type" => Opened::Unsupported,
        Err(ProbeError::Server { name, message }) if name == "busy" => Opened::Busy(message),
        Err(e) => Opened::Failed(outcome(Err(e))),
    }
}

impl LandmarkStream {
    /// The next frame the endpoint pushes, as a check's outcome (its
    /// round trip: the endpoint's wait for the main thread). An error
    /// ends the stream.
    ///
    /// Cancel-safe: cancelled, it keeps what was read, and the frame's
    /// deadline still counts from the last frame.
    pub async fn next(&mut self) -> Outcome {
        let within = self.heartbeat + self.timeout;
        let deadline = tokio::time::Instant::from_std(self.last_frame + within);
        let shown = humantime::format_duration(within).to_string();
        let result = match self
            .read_frame(deadline, "frame of the stream", &shown)
            .await
        {
            Ok(frame) => match probe::response_to(&frame, self.id, &shown) {
                Ok(Response::Landmark(reply)) => Ok(reply),
                Ok(other) => Err(probe::unexpected(&other, "landmark")),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let elapsed = match &result {
            Ok(reply) => Duration::from_micros(reply.answer_us),
            Err(_) => self.last_frame.elapsed(),
        };
        self.last_frame = Instant::now();
        Outcome {
            addr: self.stream.peer_addr().ok(),
            result,
            elapsed,
        }
    }

    /// One frame before `deadline`, of at most [`MAX_REPLY`] bytes of
    /// payload. Cancel-safe.
    async fn read_frame(
        &mut self,
        deadline: tokio::time::Instant,
        stage: &'static str,
        timeout: &str,
    ) -> Result<Frame, ProbeError> {
        loop {
            match Frame::parse(&mut self.buf, MAX_REPLY) {
                Ok(Some(frame)) => {
                    if self.buf.is_empty() {
                        // Give the memory back until the next frame.
                        self.buf = BytesMut::new();
                    }
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => return Err(io_error(e, stage, timeout)),
            }
            // Room for the rest of the frame when its header is in (its
            // length already checked against the limit), else for a
            // header and a typical landmark.
            let want = match Header::parse(&self.buf, MAX_REPLY) {
                Ok(h) => (HEADER_LEN + h.payload_len as usize).saturating_sub(self.buf.len()),
                Err(_) => 512,
            };
            self.buf.reserve(want);
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf));
            match read.await {
                Ok(Ok(0)) if self.buf.is_empty() => {
                    return Err(io_error(ProtoError::Closed, stage, timeout))
                }
                Ok(Ok(0)) => {
                    let got = self.buf.len();
                    return Err(io_error(
                        ProtoError::Truncated {
                            got,
                            needed: got + 1,
                        },
                        stage,
                        timeout,
                    ));
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io_error(e.into(), stage, timeout)),
                Err(_) => {
                    return Err(ProbeError::Timeout {
                        stage,
                        timeout: timeout.to_string(),
                    })
                }
            }
        }
    }

    /// The endpoint's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }
}
