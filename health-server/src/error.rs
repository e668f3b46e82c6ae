//! Errors starting the health endpoint.

use std::net::SocketAddr;

/// Why the health endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listening socket could not be created or bound.
    #[error("cannot listen for health checks on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the system refused it.
        #[source]
        source: std::io::Error,
    },
    /// The connection report was asked for with no port to collect.
    #[cfg(feature = "connections")]
    #[error("the connection report needs at least one port (connections::Config::port)")]
    NoConnectionPorts,
    /// There was no tokio runtime and one could not be started.
    #[error("cannot start the health server's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
