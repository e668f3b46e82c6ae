//! Why a check got no usable answer: [`ProbeError`], each with a stable
//! failure class (printed on stderr and in `--json`, documented in the
//! README), shared by the probe, name resolution and the watcher. And why
//! `health-probe connections` printed no report: [`ConnectionsError`].

use std::io::{self, ErrorKind};

use health_proto::ProtoError;

/// Why a probe got no usable landmark. Each has a failure class, printed on
/// stderr and in `--json`, and documented in the README.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The address is malformed (the message says how).
    #[error("{0}")]
    Usage(String),
    /// The name did not resolve (to an address of the family asked for).
    #[error("cannot resolve {host}: {reason}")]
    Dns {
        /// The name.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// Nothing listens on the port.
    #[error("connection refused")]
    Refused,
    /// The deadline passed.
    #[error("no {stage} within {timeout}")]
    Timeout {
        /// What did not come: `connection`, `reply`, ...
        stage: &'static str,
        /// The deadline, as the user wrote it.
        timeout: String,
    },
    /// The peer reset or closed the connection (how, in a few words).
    #[error("connection {0}")]
    Reset(&'static str),
    /// Any other socket error (no route, ...).
    #[error("{0}")]
    Network(io::Error),
    /// The reply is not a valid answer to the request.
    #[error("malformed reply: {0}")]
    Protocol(String),
    /// The check's source could not be used (`--source`, `source`).
    #[error("{0}")]
    Source(String),
    /// The server answered with an error reply.
    #[error("server answered error {name}: {message}")]
    Server {
        /// The error code's name (`busy`, `unsupported_version`, ...).
        name: String,
        /// The server's message.
        message: String,
    },
}

impl ProbeError {
    /// The failure class: a stable word for scripts and log searches.
    pub fn class(&self) -> &'static str {
        match self {
            ProbeError::Usage(_) => "usage",
            ProbeError::Dns { .. } => "dns",
            ProbeError::Refused => "refused",
            ProbeError::Timeout { .. } => "timeout",
            ProbeError::Reset(_) => "reset",
            ProbeError::Network(_) => "network",
            ProbeError::Protocol(_) => "protocol",
            ProbeError::Server { .. } => "server-error",
            ProbeError::Source(_) => "source",
        }
    }
}

/// Why `health-probe connections` printed no report (exit 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionsError {
    /// The request got no report.
    #[error("connections {addr}: {} ({})", crate::text::shown(&.error.to_string()), .error.class())]
    Ask {
        /// The endpoint, as given.
        addr: String,
        /// Why there is no report.
        error: ProbeError,
    },
    /// The report came, but no snapshot for the time asked.
    #[error("connections {addr}: {why}")]
    NoSnapshot {
        /// The endpoint, as given.
        addr: String,
        /// What was asked and what the service keeps.
        why: String,
    },
    /// Writing the report to stdout failed.
    #[error("connections: cannot print: {0}")]
    Print(#[source] io::Error),
}

impl ConnectionsError {
    /// Worth a line on stderr: not a closed pipe (`| head`).
    pub fn is_worth_telling(&self) -> bool {
        !matches!(self, ConnectionsError::Print(e) if e.kind() == ErrorKind::BrokenPipe)
    }
}

pub(crate) fn io_error(e: ProtoError, stage: &'static str, timeout: &str) -> ProbeError {
    match e {
        ProtoError::Io(e) => match e.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock => ProbeError::Timeout {
                stage,
                timeout: timeout.to_string(),
            },
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                ProbeError::Reset("reset by peer")
            }
            _ => ProbeError::Network(e),
        },
        ProtoError::Closed => ProbeError::Reset("closed by peer before replying"),
        ProtoError::Truncated { got, needed } => ProbeError::Protocol(format!(
            "connection closed after {got} of {needed} bytes of the reply"
        )),
        other => ProbeError::Protocol(other.to_string()),
    }
}
