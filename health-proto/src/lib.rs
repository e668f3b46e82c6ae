//! The landmark health-check wire protocol, version 1.
//!
//! A monitoring client (the `health-probe` CLI, a load balancer) sends a
//! [`Request`] and the service answers with a [`Response`]: either the
//! service's [`Landmark`] (its self-reported state, as answered by its main
//! thread) or an [`ErrorReply`] with a numeric [`ErrorCode`]. An operator
//! may also ask who is connected to the service ([`ConnectionsRequest`],
//! answered by a [`ConnectionReport`]).
//!
//! Every message travels in a [`Frame`]: a fixed 16-byte [`Header`] (magic,
//! version, message type, request id, payload length) followed by a JSON
//! payload. `docs/PROTOCOL.md` in the repository is the normative
//! specification; its test vectors are checked against this crate.
//!
//! Layers, each in its own module:
//! - [`frame`]: the byte layout. Checks that a frame is complete and within
//!   the payload limit *from the header alone*, before anything is allocated.
//! - [`message`]: the typed payloads and how they map onto frames.
//! - [`connections`]: the connection report's request and reply payloads.
//! - [`watch`]: the `watch` request, a stream of landmarks pushed on change.
//! - [`codec`] (feature `codec`, on by default): tokio-util `Decoder`/`Encoder`
//!   for async servers.
//! - [`blocking`]: deadline-friendly read/write helpers over `std::io` for
//!   clients without an async runtime.
//! - [`text`]: text cut to a byte bound on a character boundary.

pub mod blocking;
#[cfg(feature = "codec")]
pub mod codec;
pub mod connections;
mod error;
mod error_reply;
pub mod frame;
pub mod message;
pub mod text;
pub mod watch;

pub use connections::{
    ConnectionReport, ConnectionRow, ConnectionsRequest, GroupRow, Grouping, SnapshotReport,
    TcpState,
};
pub use error::ProtoError;
pub use frame::{Frame, Header, DEFAULT_MAX_PAYLOAD, HEADER_LEN, MAGIC, VERSION};
pub use message::{
    CheckRequest, Component, ErrorCode, ErrorReply, Landmark, LandmarkReply, MessageType, Request,
    Response, State, Weight, WeightError, MAX_WEIGHT,
};
pub use watch::{Push, WatchRequest};
