//! The languages a listener speaks, and what the server needs to know of
//! each: whether its peers speak first (then silent connections wait in
//! the kernel), how to say "busy" to a connection admission refuses, and
//! which module serves a connection.
//!
//! A new balancer language is one file beside [`crate::native`],
//! [`crate::agent`] and [`crate::http`] (its `serve`), a variant here with
//! its three answers, and one method on [`crate::Builder`] that calls
//! `listen` (with an accessor on [`crate::HealthServer`] for the port it
//! bound).

use std::sync::Arc;

use bytes::BytesMut;
use health_proto::{ErrorCode, ErrorReply, Landmark, Response};
use tokio_util::sync::CancellationToken;

use crate::admission::Slot;
use crate::conn::Conn;
use crate::context::Context;
use crate::{agent, http, native};

/// The protocols a listener can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// The native framed protocol (docs/PROTOCOL.md).
    Native,
    /// HAProxy `agent-check` lines ([`crate::agent`]).
    Agent,
    /// HTTP `/healthz`, `/livez`, `/readyz` ([`crate::http`]).
    Http,
    /// gRPC health v1 (`crate::grpc`, feature `grpc`).
    #[cfg(feature = "grpc")]
    Grpc,
}

impl Protocol {
    /// Every client sends a request before it expects anything: a
    /// connection that says nothing can wait in the kernel (deferred
    /// accept). HAProxy's agent may send nothing at all.
    pub(crate) fn peers_speak_first(self) -> bool {
        match self {
            Protocol::Native | Protocol::Http => true,
            // The HTTP/2 preface.
            #[cfg(feature = "grpc")]
            Protocol::Grpc => true,
            Protocol::Agent => false,
        }
    }

    /// What a connection over the limit is told before it is closed. An
    /// agent gets nothing: HAProxy does not count an agent failure against
    /// the server.
    pub(crate) fn busy_reply(self, message: &str) -> Vec<u8> {
        match self {
            Protocol::Native => Response::Error(ErrorReply::new(ErrorCode::Busy, message))
                .to_frame(0)
                .to_bytes(),
            Protocol::Agent => Vec::new(),
            // Nothing can be said before an HTTP/2 handshake: closed, as a
            // gRPC client retries a refused connection.
            #[cfg(feature = "grpc")]
            Protocol::Grpc => Vec::new(),
            Protocol::Http => {
                let body = serde_json::json!({ "error": message }).to_string();
                format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
        }
    }

    /// What a connection over the limit is told while the server already
    /// knows the service is down (`fail`, see
    /// [`crate::ask::Observer::known_failure`]): the failure itself, in the
    /// port's language, so a balancer hears it even when the endpoint is
    /// flooded. An agent gets `down #...`; a native check already read
    /// (`first`) gets its `fail` landmark, anything else `busy`; HTTP a
    /// 503 that says why.
    pub(crate) fn failed_reply(self, fail: &Landmark, first: &[u8]) -> Vec<u8> {
        match self {
            Protocol::Agent => agent::agent_line(fail).into_bytes(),
            Protocol::Http => self.busy_reply(&fail.detail),
            #[cfg(feature = "grpc")]
            Protocol::Grpc => Vec::new(),
            Protocol::Native => {
                native::failed_reply(fail, first).unwrap_or_else(|| self.busy_reply(&fail.detail))
            }
        }
    }

    /// Serves one admitted connection, `first` being what was read from
    /// it at accept, until it is done, evicted or the server shuts down
    /// (`token`).
    pub(crate) async fn serve(
        self,
        conn: Conn,
        first: BytesMut,
        ctx: &Arc<Context>,
        slot: Slot,
        token: CancellationToken,
    ) {
        match self {
            Protocol::Native => native::serve(conn, first, ctx, slot, token).await,
            Protocol::Agent => agent::serve(conn, ctx, slot).await,
            Protocol::Http => http::serve(conn, first, ctx, slot).await,
            #[cfg(feature = "grpc")]
            Protocol::Grpc => crate::grpc::serve(conn, first, ctx, slot, token).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use health_proto::{CheckRequest, Request, State};

    #[test]
    fn a_known_failure_is_told_in_each_language() {
        let fail = Landmark::fail("main thread did not answer within 500ms");
        // Native: the check read at accept gets its fail, with its id and
        // component.
        let check = Request::Check(CheckRequest {
            component: Some("db".into()),
        })
        .to_frame(42)
        .to_bytes();
        let reply = Protocol::Native.failed_reply(&fail, &check);
        let frame = health_proto::blocking::read_frame(&mut &reply[..], 1 << 20).unwrap();
        assert_eq!(frame.request_id, 42);
        match Response::from_frame(&frame).unwrap() {
            Response::Landmark(l) => {
                assert_eq!(l.landmark.state, State::Fail);
                assert_eq!(l.component.as_deref(), Some("db"));
                assert!(l.landmark.detail.contains("did not answer"));
            }
            other => panic!("{other:?}"),
        }
        // Half a frame, or none: busy, as before.
        for first in [&check[..10], b"", b"garbage that is no frame"] {
            let reply = Protocol::Native.failed_reply(&fail, first);
            assert_eq!(reply, Protocol::Native.busy_reply(&fail.detail));
        }
        assert_eq!(
            Protocol::Agent.failed_reply(&fail, b""),
            b"down #main thread did not answer within 500ms\n"
        );
        let http = String::from_utf8(Protocol::Http.failed_reply(&fail, b"GET /")).unwrap();
        assert!(http.starts_with("HTTP/1.1 503 "), "{http}");
        assert!(http.contains("did not answer"), "{http}");
    }
}
