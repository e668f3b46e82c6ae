//! The `error` reply (PROTOCOL.md 5.3): the numeric codes a server answers
//! with when a request cannot be answered, and the payload that carries one.

use serde::{Deserialize, Serialize};

/// Numeric error codes carried in an [`ErrorReply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The frame did not start with the magic.
    BadMagic = 1,
    /// The frame's version is not spoken by the receiver.
    UnsupportedVersion = 2,
    /// The message type is unknown or not valid as a request.
    UnknownType = 3,
    /// The payload length exceeds the receiver's limit.
    FrameTooLarge = 4,
    /// The payload is not valid JSON for the message type.
    BadPayload = 5,
    /// The component asked for is not in the service's landmark.
    UnknownComponent = 6,
    /// The server is at its connection limit; try again later.
    Busy = 7,
    /// A `connections` request to a server that does not collect them.
    NotCollecting = 8,
    /// A `connections` request from a source the server does not let read
    /// its connection reports.
    NotAllowed = 9,
}

impl ErrorCode {
    /// All codes, in numeric order.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::BadMagic,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownType,
        ErrorCode::FrameTooLarge,
        ErrorCode::BadPayload,
        ErrorCode::UnknownComponent,
        ErrorCode::Busy,
        ErrorCode::NotCollecting,
        ErrorCode::NotAllowed,
    ];

    /// The code for a wire number, if known.
    pub fn from_u16(n: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| *c as u16 == n)
    }

    /// The snake_case name used in logs and CLI output.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadMagic => "bad_magic",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::BadPayload => "bad_payload",
            ErrorCode::UnknownComponent => "unknown_component",
            ErrorCode::Busy => "busy",
            ErrorCode::NotCollecting => "not_collecting",
            ErrorCode::NotAllowed => "not_allowed",
        }
    }
}

/// Payload of an `error` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Numeric [`ErrorCode`]; receivers must accept codes they do not know.
    pub code: u16,
    /// Human-readable explanation.
    #[serde(default)]
    pub message: String,
}

impl ErrorReply {
    /// An error reply with a known code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            code: code as u16,
            message: message.into(),
        }
    }

    /// The code, if this side knows it.
    pub fn known_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u16(self.code)
    }

    /// The code's name, or `code N` for codes this side does not know.
    pub fn code_name(&self) -> String {
        match self.known_code() {
            Some(c) => c.name().to_string(),
            None => format!("code {}", self.code),
        }
    }
}
