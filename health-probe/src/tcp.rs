//! `health-probe tcp HOST:PORT`: a plain TCP port check, optionally sending
//! opening data and matching the answer, under one deadline like the native
//! probe.
//!
//! Every outcome falls into one of four classes, printed first on the output
//! line and documented in the README:
//!
//! | class | meaning | reasons |
//! |---|---|---|
//! | `OK` | connected and, if asked, answered right | |
//! | `ERR` | the check could not start | `dns`, `bad-address`, `no-route`, `network` |
//! | `NG` | the peer said no | `refused`, `reset`, `closed`, `wrong-answer` |
//! | `WR` | no answer within `--timeout` | `timeout` |

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use crate::outcome::{Class, Speed};
use crate::probe::{self, ProbeError};
use crate::spec::TcpSpec;
use crate::target;

/// Most bytes of the peer's answer read while looking for a match.
pub(crate) const MAX_ANSWER: usize = 16 * 1024;

/// What one TCP check found.
#[derive(Debug)]
pub struct TcpOutcome {
    /// The address connected to (or last tried).
    pub addr: Option<SocketAddr>,
    /// The outcome's class.
    pub class: Class,
    /// A stable word for the cause within the class (`refused`, `timeout`,
    /// ...); `None` for `OK`.
    pub reason: Option<&'static str>,
    /// One human sentence.
    pub detail: String,
    /// What the peer sent, up to 16 KiB (only read when an answer is
    /// expected).
    pub answer: Vec<u8>,
    /// From start to verdict.
    pub elapsed: Duration,
}

impl TcpOutcome {
    /// The whole check's time against `--warn` / `--crit`.
    pub fn speed(&self, spec: &TcpSpec) -> Speed {
        Speed::of(Some(self.elapsed), spec.warn, spec.crit)
    }
}

/// Runs the check `args` asks for, with blocking sockets.
pub fn run(args: &TcpSpec) -> TcpOutcome {
    let start = Instant::now();
    let deadline = start + args.timeout;
    let mut addr = None;
    let mut answer = Vec::new();
    let result = check(args, deadline, &mut addr, &mut answer);
    TcpOutcome::new(addr, result, answer, start)
}

impl TcpOutcome {
    /// The outcome of a check that began at `start` and ended now with
    /// `result`, by the blocking or the async check alike.
    pub(crate) fn new(
        addr: Option<SocketAddr>,
        result: Result<String, Failure>,
        answer: Vec<u8>,
        start: Instant,
    ) -> TcpOutcome {
        let (class, reason, detail) = match result {
            Ok(detail) => (Class::Ok, None, detail),
            Err((class, reason, detail)) => (class, Some(reason), detail),
        };
        TcpOutcome {
            addr,
            class,
            reason,
            detail,
            answer,
            elapsed: start.elapsed(),
        }
    }
}

pub(crate) type Failure = (Class, &'static str, String);

fn check(
    args: &TcpSpec,
    deadline: Instant,
    tried: &mut Option<SocketAddr>,
    answer: &mut Vec<u8>,
) -> Result<String, Failure> {
    let timeout = humantime::format_duration(args.timeout).to_string();
    let mut stream = open(
        &args.addr,
        args.family,
        args.source.as_ref(),
        deadline,
        &timeout,
        tried,
    )?;
    if let Some(send) = &args.send {
        stream
            .write_all(&send.0)
            .map_err(|e| io_failure(e, "sending", &timeout))?;
    }
    let Some(matcher) = Matcher::of(args) else {
        return Ok(connected(args));
    };
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(done) = matcher.decided(answer) {
            return done;
        }
        let room = (MAX_ANSWER - answer.len()).min(chunk.len());
        let read = stream.read(&mut chunk[..room]).map(|n| &chunk[..n]);
        if let Some(done) = matcher.after_read(answer, read, &timeout) {
            return done;
        }
    }
}

/// `addr`'s one address, connected before `deadline` (no Nagle delay),
/// failures in the four classes: where the tcp and tls checks begin.
pub(crate) fn open(
    addr: &str,
    family: target::Family,
    source: Option<&crate::source::Source>,
    deadline: Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<probe::DeadlineStream, Failure> {
    probe::open(addr, family, source, deadline, timeout, tried).map_err(classify)
}

/// The detail of an OK check that expects no answer.
pub(crate) fn connected(args: &TcpSpec) -> String {
    match &args.send {
        Some(s) => format!("connected, sent {} bytes", s.0.len()),
        None => "connected".into(),
    }
}

/// What the answer must contain or match.
pub(crate) enum Matcher<'a> {
    Banner(&'a [u8]),
    Regex(&'a regex::bytes::Regex),
}

impl<'a> Matcher<'a> {
    /// The matcher `--expect-banner` / `--expect-regex` ask for, if any.
    pub(crate) fn of(args: &'a TcpSpec) -> Option<Matcher<'a>> {
        match (&args.expect_banner, &args.expect_regex) {
            (Some(banner), _) => Some(Matcher::Banner(&banner.0)),
            (None, Some(re)) => Some(Matcher::Regex(re)),
            (None, None) => None,
        }
    }

    /// The check's result, once the answer so far decides it: matched, or
    /// [`MAX_ANSWER`] bytes without a match.
    pub(crate) fn decided(&self, answer: &[u8]) -> Option<Result<String, Failure>> {
        if self.matches(answer) {
            return Some(Ok(format!("connected, answer matched {}", self.describe())));
        }
        (answer.len() >= MAX_ANSWER).then(|| {
            Err((
                Class::Ng,
                "wrong-answer",
                format!(
                    "no match for {} in the first {MAX_ANSWER} bytes",
                    self.describe()
                ),
            ))
        })
    }

    /// Takes one read's result (bytes, an empty slice for end of stream,
    /// or an error) into `answer`, and returns the check's result if that
    /// decides it. Reads of at most `MAX_ANSWER - answer.len()` bytes keep
    /// the answer bounded.
    pub(crate) fn after_read(
        &self,
        answer: &mut Vec<u8>,
        read: io::Result<&[u8]>,
        timeout: &str,
    ) -> Option<Result<String, Failure>> {
        match read {
            Ok([]) if answer.is_empty() => Some(Err((
                Class::Ng,
                "closed",
                "closed without answering".into(),
            ))),
            Ok([]) => Some(Err((
                Class::Ng,
                "wrong-answer",
                format!(
                    "answer did not match {} (peer closed after {} bytes)",
                    self.describe(),
                    answer.len()
                ),
            ))),
            Ok(bytes) => {
                answer.extend_from_slice(bytes);
                self.decided(answer)
            }
            Err(e) if is_timeout(&e) && !answer.is_empty() => Some(Err((
                Class::Ng,
                "wrong-answer",
                format!(
                    "answer did not match {} within {timeout} ({} bytes received)",
                    self.describe(),
                    answer.len()
                ),
            ))),
            Err(e) => Some(Err(io_failure(e, "answer", timeout))),
        }
    }

    fn matches(&self, answer: &[u8]) -> bool {
        match self {
            Matcher::Banner(b) => b.is_empty() || answer.windows(b.len()).any(|w| w == *b),
            Matcher::Regex(re) => re.is_match(answer),
        }
    }

    fn describe(&self) -> String {
        match self {
            Matcher::Banner(b) => format!("{:?}", String::from_utf8_lossy(b)),
            Matcher::Regex(re) => format!("/{}/", re.as_str()),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)
}

pub(crate) fn io_failure(e: io::Error, stage: &str, timeout: &str) -> Failure {
    match e.kind() {
        _ if is_timeout(&e) => (Class::Wr, "timeout", format!("no {stage} within {timeout}")),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => (
            Class::Ng,
            "reset",
            format!("connection reset while {stage}"),
        ),
        _ => (Class::Ng, "reset", format!("{stage} failed: {e}")),
    }
}

/// Maps the shared resolve/connect errors onto the four classes.
pub(crate) fn classify(e: impl std::borrow::Borrow<ProbeError>) -> Failure {
    let e = e.borrow();
    let detail = e.to_string();
    match e {
        ProbeError::Usage(_) => (Class::Err, "bad-address", detail),
        ProbeError::Dns { .. } => (Class::Err, "dns", detail),
        ProbeError::Source(_) => (Class::Err, "source", detail),
        ProbeError::Refused => (Class::Ng, "refused", detail),
        ProbeError::Reset(_) => (Class::Ng, "reset", detail),
        ProbeError::Timeout { .. } => (Class::Wr, "timeout", detail),
        ProbeError::Network(io) if is_unreachable(io) => (Class::Err, "no-route", detail),
        ProbeError::Network(_) | ProbeError::Protocol(_) | ProbeError::Server { .. } => {
            (Class::Err, "network", detail)
        }
    }
}

/// No route, unreachable network or host, or no usable source address: the
/// check cannot even leave this machine.
pub(crate) fn is_unreachable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL)
    ) || matches!(
        e.kind(),
        ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable | ErrorKind::AddrNotAvailable
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_matches_anywhere_in_the_answer() {
        let m = Matcher::Banner(b"SSH-2.0");
        assert!(m.matches(b"SSH-2.0-OpenSSH_9.2\r\n"));
        assert!(m.matches(b"220 hello\r\nSSH-2.0"));
        assert!(!m.matches(b"SSH-1.99"));
        let re = regex::bytes::Regex::new(r"^\+OK|^220 ").unwrap();
        assert!(Matcher::Regex(&re).matches(b"220 mail ESMTP\r\n"));
        assert!(!Matcher::Regex(&re).matches(b"554 no\r\n"));
    }
}
