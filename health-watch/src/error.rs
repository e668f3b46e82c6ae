//! Why `health-probe watch` or `health-probe report` ends with exit 1:
//! one type, which the binary (`main.rs`) turns into lines on stderr and
//! the exit code, in one place.

use health_probe::text::shown;

/// Why the watcher could not start, or `report` could not read or write
/// the history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config has problems: one line each, `FILE:LINE:COLUMN: what`.
    #[error("{}", .0.join("\n"))]
    Config(Vec<String>),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The database is another watcher's, or cannot be used.
    #[error("{0}")]
    Database(String),
    /// The exporter's address (`http_listen`) cannot be listened on.
    #[error("http_listen {addr}: cannot listen: {source}")]
    Listen {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `report` could not read the history, or write it out.
    #[error("report: {0}")]
    Report(String),
    /// `silence` was given what it cannot take, or could not use the
    /// database.
    #[error("silence: {0}")]
    Silence(String),
}

impl Error {
    /// The lines to print on stderr, escaped: a config's keys and values,
    /// paths and system messages are data.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::Config(lines) => lines.iter().map(|l| shown(l).into_owned()).collect(),
            other => vec![shown(&other.to_string()).into_owned()],
        }
    }
}
