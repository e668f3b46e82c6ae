//! Errors raised while framing or parsing protocol messages.

use crate::error_reply::ErrorCode;

/// Why bytes could not be turned into a protocol message.
///
/// Each variant that a peer can cause maps onto a wire [`ErrorCode`]
/// (see [`ProtoError::code`]) so a server can tell the peer what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The first four bytes are not `LMRK`: the peer speaks another protocol.
    #[error("bad magic {found:02x?}: not a landmark protocol frame")]
    BadMagic {
        /// The four bytes that came instead.
        found: [u8; 4],
    },

    /// The header names a protocol version this side does not implement.
    #[error("unsupported protocol version {found} (this side speaks version {supported})")]
    UnsupportedVersion {
        /// The version in the header.
        found: u8,
        /// The version this side speaks.
        supported: u8,
    },

    /// The header names a message type this side does not know, or one that
    /// is not valid in this direction (a response sent as a request).
    #[error("unknown message type 0x{found:02x}")]
    UnknownType {
        /// The type byte in the header.
        found: u8,
    },

    /// The header announces a payload over the receiver's limit. Nothing of
    /// it has been read or allocated.
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced payload length.
        len: u32,
        /// The receiver's limit.
        max: u32,
    },

    /// The payload is not the JSON the message type requires.
    #[error("malformed {what} payload: {source}")]
    BadPayload {
        /// The message type whose payload it is.
        what: &'static str,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },

    /// The peer closed the connection part-way through a frame.
    #[error("connection closed after {got} of {needed} bytes of a frame")]
    Truncated {
        /// Bytes of the frame received.
        got: usize,
        /// Bytes the frame needed.
        needed: usize,
    },

    /// The peer closed the connection before sending any byte of a frame.
    #[error("connection closed by peer")]
    Closed,

    /// An I/O error from the transport (including read/write timeouts).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ProtoError {
    /// The wire error code to send back for this error, if the peer caused it
    /// and a reply makes sense.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ProtoError::BadMagic { .. } => Some(ErrorCode::BadMagic),
            ProtoError::UnsupportedVersion { .. } => Some(ErrorCode::UnsupportedVersion),
            ProtoError::UnknownType { .. } => Some(ErrorCode::UnknownType),
            ProtoError::TooLarge { .. } => Some(ErrorCode::FrameTooLarge),
            ProtoError::BadPayload { .. } => Some(ErrorCode::BadPayload),
            ProtoError::Truncated { .. } | ProtoError::Closed | ProtoError::Io(_) => None,
        }
    }

    /// Whether the byte stream can still be trusted after this error: true
    /// when the whole frame was consumed, so the next frame starts cleanly.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            ProtoError::UnknownType { .. } | ProtoError::BadPayload { .. }
        )
    }
}
