//! The typed messages: what a check asks and what a service answers.
//!
//! A [`Landmark`] is the service's own account of its health, produced by its
//! main thread. On the wire it travels inside a [`LandmarkReply`], which adds
//! what the health server measured (how long the main thread took) and which
//! component was asked about. Anything that cannot be answered becomes an
//! [`ErrorReply`] with an [`ErrorCode`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connections::{ConnectionReport, ConnectionsRequest};
pub use crate::error_reply::{ErrorCode, ErrorReply};
use crate::frame::Frame;
use crate::watch::{Push, WatchRequest};
use crate::ProtoError;

/// Message type byte of each frame (header offset 5). Requests have the high
/// bit clear, responses have it set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// Request: "what is your landmark?" Payload: [`CheckRequest`].
    Check = 0x01,
    /// Request: "who is connected to you?" Payload: [`ConnectionsRequest`].
    Connections = 0x02,
    /// Request: "tell me each change of your landmark". Payload:
    /// [`WatchRequest`]; answered by a stream of `landmark` frames.
    Watch = 0x03,
    /// Response: the landmark. Payload: [`LandmarkReply`].
    Landmark = 0x81,
    /// Response: the request could not be answered. Payload: [`ErrorReply`].
    Error = 0x82,
    /// Response: the connections. Payload: [`ConnectionReport`].
    ConnectionReport = 0x83,
}

impl MessageType {
    /// The message type for a raw header byte, if known.
    pub fn from_byte(b: u8) -> Option<MessageType> {
        match b {
            0x01 => Some(MessageType::Check),
            0x02 => Some(MessageType::Connections),
            0x03 => Some(MessageType::Watch),
            0x81 => Some(MessageType::Landmark),
            0x82 => Some(MessageType::Error),
            0x83 => Some(MessageType::ConnectionReport),
            _ => None,
        }
    }
}

/// A service's health state, from best to worst.
///
/// The order is meaningful: when two sources disagree (the main thread says
/// `degraded`, the operator asked for `drain`), the worse one wins.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Serving normally.
    #[default]
    Ok,
    /// Serving, but impaired (for example a cache or replica is down).
    Degraded,
    /// Alive, but asking balancers to send no new work (before a restart).
    Drain,
    /// Not serving: take it out of the pool.
    Fail,
}

impl State {
    /// All states, best first.
    pub const ALL: [State; 4] = [State::Ok, State::Degraded, State::Drain, State::Fail];

    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Degraded => "degraded",
            State::Drain => "drain",
            State::Fail => "fail",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of `ok`, `degraded`, `drain`, `fail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?} (expected ok, degraded, drain or fail)")]
pub struct UnknownState(pub String);

impl FromStr for State {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<State, UnknownState> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// The largest weight: keepalived's `misc_dynamic` maps exit code `2 + w`,
/// and exit codes stop at 255.
pub const MAX_WEIGHT: u8 = 253;

/// A load-balancing weight in `0..=253`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Weight(u8);

/// A weight over [`MAX_WEIGHT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("weight {0} is out of range 0-253")]
pub struct WeightError(pub u32);

impl Weight {
    /// A weight, if `w <= 253`.
    pub fn new(w: u8) -> Result<Weight, WeightError> {
        if w <= MAX_WEIGHT {
            Ok(Weight(w))
        } else {
            Err(WeightError(w.into()))
        }
    }

    /// The weight as a number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Weight {
    type Error = WeightError;
    fn try_from(w: u8) -> Result<Weight, WeightError> {
        Weight::new(w)
    }
}

impl From<Weight> for u8 {
    fn from(w: Weight) -> u8 {
        w.0
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The state of one named part of a service (a database link, a feed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// The component's state.
    pub state: State,
    /// Why, in a few words (empty when there is nothing to say).
    #[serde(default)]
    pub detail: String,
}

/// A service's self-reported health: what its main thread answers when asked.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Landmark {
    /// Overall state.
    pub state: State,
    /// Human-readable detail ("serving 12 clients", "feed stalled 40s").
    #[serde(default)]
    pub detail: String,
    /// Optional load-balancing weight, 0-253.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Weight>,
    /// Optional per-component states, checkable by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, Component>,
    /// Optional free-form fields the service exposes (queue depth, clients,
    /// version); passed through untouched.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
}

impl Landmark {
    /// A landmark in `state` with `detail`.
    pub fn new(state: State, detail: impl Into<String>) -> Landmark {
        Landmark {
            state,
            detail: detail.into(),
            ..Landmark::default()
        }
    }

    /// `ok` with `detail`.
    pub fn ok(detail: impl Into<String>) -> Landmark {
        Landmark::new(State::Ok, detail)
    }

    /// `degraded` with `detail`.
    pub fn degraded(detail: impl Into<String>) -> Landmark {
        Landmark::new(State::Degraded, detail)
    }

    /// `drain` with `detail`.
    pub fn drain(detail: impl Into<String>) -> Landmark {
        Landmark::new(State::Drain, detail)
    }

    /// `fail` with `detail`.
    pub fn fail(detail: impl Into<String>) -> Landmark {
        Landmark::new(State::Fail, detail)
    }

    /// Sets the weight.
    pub fn with_weight(mut self, weight: Weight) -> Landmark {
        self.weight = Some(weight);
        self
    }

    /// Adds or replaces a component's state.
    pub fn with_component(
        mut self,
        name: impl Into<String>,
        state: State,
        detail: impl Into<String>,
    ) -> Landmark {
        self.components.insert(
            name.into(),
            Component {
                state,
                detail: detail.into(),
            },
        );
        self
    }

    /// Adds or replaces a free-form field.
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Landmark {
        self.fields.insert(key.into(), value.into());
        self
    }
}

/// Payload of a `check` request. An empty payload means `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckRequest {
    /// Component to check; absent or empty means the whole service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
}

impl CheckRequest {
    /// The component asked for, treating `""` as "the whole service".
    pub fn component(&self) -> Option<&str> {
        self.component.as_deref().filter(|c| !c.is_empty())
    }
}

/// Payload of a `landmark` response: the service's landmark, plus what the
/// server measured and which component was asked about. On the wire the
/// landmark's members sit at the top level of the JSON object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LandmarkReply {
    /// The component this reply is about; absent for the whole service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The landmark: for a component check, that component's state and
    /// detail with the service's weight and fields, and no components.
    #[serde(flatten)]
    pub landmark: Landmark,
    /// Microseconds the server waited for the main thread's answer (the
    /// answer deadline when it did not answer; 0 for published landmarks).
    #[serde(default)]
    pub answer_us: u64,
    /// Microseconds since a published landmark was last updated; absent when
    /// the main thread was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_us: Option<u64>,
    /// While the endpoint drains and records the service's connections:
    /// how many clients are still ESTABLISHED on the service's ports.
    /// Drained at 0 (`health-probe ADDR --wait-drained`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established: Option<u32>,
    /// On a frame of a `watch` stream: why it was sent. Absent on the
    /// answer to a `check`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    /// On a frame of a `watch` stream: the period in force, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_ms: Option<u64>,
    /// On a frame of a `watch` stream: the heartbeat in force, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
}

impl LandmarkReply {
    /// A whole-service reply carrying `landmark`.
    pub fn whole(landmark: Landmark, answer_us: u64) -> LandmarkReply {
        LandmarkReply {
            component: None,
            landmark,
            answer_us,
            age_us: None,
            established: None,
            push: None,
            period_ms: None,
            heartbeat_ms: None,
        }
    }
}

impl std::ops::Deref for LandmarkReply {
    type Target = Landmark;
    fn deref(&self) -> &Landmark {
        &self.landmark
    }
}

/// A request, as sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `check`: the landmark state.
    Check(CheckRequest),
    /// `connections`: who is connected.
    Connections(ConnectionsRequest),
    /// `watch`: a stream of landmarks, pushed on change.
    Watch(WatchRequest),
}

/// A response, as sent by a server.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// The answer to `check`.
    Landmark(LandmarkReply),
    /// The request could not be answered.
    Error(ErrorReply),
    /// The answer to `connections`.
    ConnectionReport(ConnectionReport),
}

fn payload<T: Serialize>(value: &T) -> Bytes {
    // Serialising these plain structs into a Vec cannot fail: every map key
    // is a string and no type has a fallible Serialize impl.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// Parses a payload, which must be a JSON object (section 5): serde would
/// otherwise read an array as the struct's members in order, so that
/// `["db"]` became a check of the component `db`.
fn parse<'a, T: Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T, ProtoError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ProtoError::BadPayload {
            what,
            source: <serde_json::Error as serde::de::Error>::custom(
                "a payload must be a JSON object",
            ),
        });
    }
    serde_json::from_slice(bytes).map_err(|source| ProtoError::BadPayload { what, source })
}

impl Request {
    /// Encodes this request as a frame with `request_id`.
    pub fn to_frame(&self, request_id: u32) -> Frame {
        match self {
            Request::Check(c) => Frame {
                kind: MessageType::Check as u8,
                request_id,
                // The whole-service check is the 16-byte header alone, so
                // balancers can send it as one fixed binary string.
                payload: match c.component() {
                    None => Bytes::new(),
                    Some(_) => payload(c),
                },
            },
            Request::Connections(c) => Frame {
                kind: MessageType::Connections as u8,
                request_id,
                payload: payload(c),
            },
            Request::Watch(w) => Frame {
                kind: MessageType::Watch as u8,
                request_id,
                // Like a check: the whole service with the server's
                // defaults is the header alone.
                payload: if *w == WatchRequest::default() {
                    Bytes::new()
                } else {
                    payload(w)
                },
            },
        }
    }

    /// Parses a request frame.
    pub fn from_frame(frame: &Frame) -> Result<Request, ProtoError> {
        match MessageType::from_byte(frame.kind) {
            Some(MessageType::Check) => {
                if frame.payload.is_empty() {
                    Ok(Request::Check(CheckRequest::default()))
                } else {
                    // `"component":""` is the whole service (section 5.1):
                    // parsed as no component, as it encodes, so a parsed
                    // request is the same value as its own round trip.
                    let mut check: CheckRequest = parse("check", &frame.payload)?;
                    check.component = check.component.filter(|c| !c.is_empty());
                    Ok(Request::Check(check))
                }
            }
            Some(MessageType::Connections) => {
                if frame.payload.is_empty() {
                    Ok(Request::Connections(ConnectionsRequest::default()))
                } else {
                    parse("connections", &frame.payload).map(Request::Connections)
                }
            }
            Some(MessageType::Watch) => {
                if frame.payload.is_empty() {
                    Ok(Request::Watch(WatchRequest::default()))
                } else {
                    // As for a check, `"component":""` is the whole
                    // service, parsed as it encodes.
                    let mut watch: WatchRequest = parse("watch", &frame.payload)?;
                    watch.component = watch.component.filter(|c| !c.is_empty());
                    Ok(Request::Watch(watch))
                }
            }
            _ => Err(ProtoError::UnknownType { found: frame.kind }),
        }
    }
}

impl Response {
    /// Encodes this response as a frame answering `request_id`.
    pub fn to_frame(&self, request_id: u32) -> Frame {
        let (kind, payload) = match self {
            Response::Landmark(l) => (MessageType::Landmark, payload(l)),
            Response::Error(e) => (MessageType::Error, payload(e)),
            Response::ConnectionReport(r) => (MessageType::ConnectionReport, payload(r)),
        };
        Frame {
            kind: kind as u8,
            request_id,
            payload,
        }
    }

    /// Parses a response frame.
    pub fn from_frame(frame: &Frame) -> Result<Response, ProtoError> {
        match MessageType::from_byte(frame.kind) {
            Some(MessageType::Landmark) => {
                parse("landmark", &frame.payload).map(Response::Landmark)
            }
            Some(MessageType::Error) => parse("error", &frame.payload).map(Response::Error),
            Some(MessageType::ConnectionReport) => {
                parse("connection_report", &frame.payload).map(Response::ConnectionReport)
            }
            _ => Err(ProtoError::UnknownType { found: frame.kind }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_bounds() {
        assert!(Weight::new(253).is_ok());
        assert!(Weight::new(254).is_err());
        let r: Result<LandmarkReply, _> =
            serde_json::from_str(r#"{"state":"ok","weight":254,"answer_us":1}"#);
        assert!(r.is_err());
    }

    #[test]
    fn states_parse_and_order() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>().unwrap(), s);
        }
        assert!("OK".parse::<State>().is_err());
        assert!(State::Ok < State::Degraded && State::Drain < State::Fail);
    }

    #[test]
    fn a_json_array_is_not_a_payload() {
        for (kind, payload) in [
            (1u8, &br#"["connections"]"#[..]),
            (2, br#"[["ESTABLISHED"]]"#),
            (1, b" 7"),
            (1, b"null"),
        ] {
            let f = Frame {
                kind,
                request_id: 9,
                payload: Bytes::copy_from_slice(payload),
            };
            let e = Request::from_frame(&f).unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::BadPayload), "{e}");
            assert!(e.to_string().contains("JSON object"), "{e}");
        }
        let f = Frame {
            kind: 1,
            request_id: 9,
            payload: Bytes::from_static(b" {\"component\":\"db\"}"),
        };
        assert!(Request::from_frame(&f).is_ok());
    }

    #[test]
    fn empty_check_payload_is_whole_service() {
        let f = Frame {
            kind: 1,
            request_id: 3,
            payload: Bytes::new(),
        };
        assert_eq!(
            Request::from_frame(&f).unwrap(),
            Request::Check(CheckRequest::default())
        );
        let c = CheckRequest {
            component: Some(String::new()),
        };
        assert_eq!(c.component(), None);
        // An empty component on the wire parses as the whole service, and
        // survives its own round trip (found by the frame_decoder fuzzer,
        // with trailing whitespace after the object).
        let f = Frame {
            kind: 1,
            request_id: 4,
            payload: Bytes::from_static(b"{\"component\":\"\"}\r\r"),
        };
        let parsed = Request::from_frame(&f).unwrap();
        assert_eq!(parsed, Request::Check(CheckRequest::default()));
        assert_eq!(Request::from_frame(&parsed.to_frame(4)).unwrap(), parsed);
    }

    #[test]
    fn response_type_is_not_a_request() {
        let f = Response::Error(ErrorReply::new(ErrorCode::Busy, "x")).to_frame(1);
        assert!(matches!(
            Request::from_frame(&f),
            Err(ProtoError::UnknownType { found: 0x82 })
        ));
    }
}
