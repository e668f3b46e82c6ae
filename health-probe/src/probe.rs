//! One probe: resolve, connect, send a `check`, read the reply, all under a
//! single deadline, with blocking std sockets (no async runtime: the probe
//! is exec'd thousands of times a minute, so start-up cost matters).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use health_proto::blocking::{read_frame, write_frame};
use health_proto::{CheckRequest, ErrorReply, Frame, MessageType, Request, Response};

use crate::error::io_error;
pub use crate::error::ProbeError;
use crate::source::Source;
use crate::spec::LandmarkSpec;
use crate::target;

/// Largest reply payload the probe accepts: well above the server's 64 KiB
/// default, still a firm bound on what a hostile peer can make it allocate.
pub(crate) const MAX_REPLY: u32 = 1024 * 1024;

/// The result of one probe.
#[derive(Debug)]
pub struct Outcome {
    /// The address connected to (or last tried).
    pub addr: Option<SocketAddr>,
    /// The landmark reply, or why there is none.
    pub result: Result<health_proto::LandmarkReply, ProbeError>,
    /// From start to reply (or failure).
    pub elapsed: Duration,
}

/// Runs the landmark check `spec` asks for, with blocking sockets.
pub fn run(spec: &LandmarkSpec) -> Outcome {
    let start = Instant::now();
    let deadline = start + spec.timeout;
    let mut addr = None;
    let result = probe(spec, deadline, &mut addr);
    Outcome {
        addr,
        result,
        elapsed: start.elapsed(),
    }
}

fn probe(
    spec: &LandmarkSpec,
    deadline: Instant,
    tried: &mut Option<SocketAddr>,
) -> Result<health_proto::LandmarkReply, ProbeError> {
    let timeout = humantime::format_duration(spec.timeout).to_string();
    let (id, request) = check_frame(spec.component.as_deref());
    let frame = exchange(
        &spec.addr,
        spec.family,
        spec.source.as_ref(),
        &request,
        deadline,
        &timeout,
        tried,
    )?;
    landmark_from(&frame, id, &timeout)
}

/// Resolves `addr` to the one address it tests, connects, sends `request`
/// and reads one reply frame, all before `deadline` (`timeout` is its
/// length, for messages).
#[allow(clippy::too_many_arguments)]
pub(crate) fn exchange(
    addr: &str,
    family: target::Family,
    source: Option<&Source>,
    request: &Frame,
    deadline: Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<Frame, ProbeError> {
    let mut stream = open(addr, family, source, deadline, timeout, tried)?;
    write_frame(&mut stream, request).map_err(|e| io_error(e, "send", timeout))?;
    // One request on this connection: say so (a half-close), and the
    // server closes as soon as its reply is out, with no wait for ours.
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
    // Buffered: header and payload arrive together and are taken in one
    // recv (and one deadline arming), not one each.
    let mut reply = io::BufReader::with_capacity(REPLY_BUFFER, &mut stream);
    read_frame(&mut reply, MAX_REPLY).map_err(|e| io_error(e, "reply", timeout))
}

/// Bytes the reply is read in at once: a landmark reply is a few hundred.
pub(crate) const REPLY_BUFFER: usize = 4096;

/// A `check` request for `component` and the fresh id it carries.
pub(crate) fn check_frame(component: Option<&str>) -> (u32, Frame) {
    request_frame(&Request::Check(CheckRequest {
        component: component.map(str::to_string),
    }))
}

/// `request` in a frame with a fresh id, and the id.
pub(crate) fn request_frame(request: &Request) -> (u32, Frame) {
    let id = request_id();
    (id, request.to_frame(id))
}

/// The landmark in the reply to request `id`, or why there is none.
pub(crate) fn landmark_from(
    frame: &Frame,
    id: u32,
    timeout: &str,
) -> Result<health_proto::LandmarkReply, ProbeError> {
    match response_to(frame, id, timeout)? {
        Response::Landmark(reply) => Ok(reply),
        other => Err(unexpected(&other, "landmark")),
    }
}

/// The reply to request `id`: its response, an error reply as
/// [`ProbeError::Server`], or why it is not one.
pub(crate) fn response_to(frame: &Frame, id: u32, timeout: &str) -> Result<Response, ProbeError> {
    // Errors found before a request is read (busy, bad header) carry id 0
    // by the spec; accept those, so the server's reason is shown.
    let is_early_error = frame.request_id == 0 && frame.kind == MessageType::Error as u8;
    if frame.request_id != id && !is_early_error {
        return Err(ProbeError::Protocol(format!(
            "reply is for request {:#x}, not {id:#x}",
            frame.request_id
        )));
    }
    match Response::from_frame(frame).map_err(|e| io_error(e, "reply", timeout))? {
        Response::Error(e) => Err(server_error(e)),
        other => Ok(other),
    }
}

/// A reply of another type than the request asked for.
pub(crate) fn unexpected(response: &Response, wanted: &str) -> ProbeError {
    let got = match response {
        Response::Landmark(_) => "landmark",
        Response::Error(_) => "error",
        Response::ConnectionReport(_) => "connection_report",
    };
    ProbeError::Protocol(format!("expected a {wanted} reply, got {got}"))
}

fn server_error(e: ErrorReply) -> ProbeError {
    ProbeError::Server {
        name: e.code_name(),
        message: e.message,
    }
}

/// `addr`'s one address (of `family`, or of `source`'s), resolved and
/// connected before `deadline` (recorded in `tried`), with no Nagle delay:
/// where every check over TCP and a `watch` stream begin.
pub(crate) fn open(
    addr: &str,
    family: target::Family,
    source: Option<&Source>,
    deadline: Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<DeadlineStream, ProbeError> {
    let addr = target::resolve(addr, Source::family(source, family, addr)?, deadline)?;
    let stream = connect(addr, source, deadline, timeout, tried)?;
    let _ = stream.get_ref().set_nodelay(true);
    Ok(stream)
}

/// Connects to `addr` (recorded in `tried`) before `deadline`.
pub(crate) fn connect(
    addr: SocketAddr,
    source: Option<&Source>,
    deadline: Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<DeadlineStream, ProbeError> {
    *tried = Some(addr);
    let remaining = remaining(deadline).ok_or_else(|| ProbeError::Timeout {
        stage: "connection",
        timeout: timeout.to_string(),
    })?;
    let connected = match source {
        None => TcpStream::connect_timeout(&addr, remaining),
        Some(source) => {
            let socket = Source::tcp_socket(source, addr)?;
            socket
                .connect_timeout(&addr.into(), remaining)
                .map(|()| TcpStream::from(socket))
        }
    };
    connected
        .map(|stream| DeadlineStream { stream, deadline })
        .map_err(|e| connect_error(e, timeout))
}

pub(crate) fn connect_error(e: io::Error, timeout: &str) -> ProbeError {
    match e.kind() {
        ErrorKind::ConnectionRefused => ProbeError::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => ProbeError::Timeout {
            stage: "connection",
            timeout: timeout.to_string(),
        },
        ErrorKind::ConnectionReset => ProbeError::Reset("reset by peer"),
        _ => ProbeError::Network(e),
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

/// A request id that differs between runs, so a stale or crossed reply is
/// caught.
fn request_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// A socket whose every read and write is bounded by what is left of one
/// overall deadline. std sockets only offer per-call timeouts; this turns
/// them into a deadline, which no crate does for blocking std streams.
pub(crate) struct DeadlineStream {
    stream: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    pub(crate) fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// Moves the deadline: a stream's reads each get their own.
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    fn arm(&self, read: bool) -> io::Result<()> {
        let left = remaining(self.deadline)
            .ok_or_else(|| io::Error::new(ErrorKind::TimedOut, "deadline passed"))?;
        if read {
            self.stream.set_read_timeout(Some(left))
        } else {
            self.stream.set_write_timeout(Some(left))
        }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(true)?;
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(false)?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
