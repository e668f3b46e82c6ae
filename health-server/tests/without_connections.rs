//! health-server built without its `connections` feature (as
//! `default-features = false` gives it; `.ci/run` tests it so): no netlink
//! crates, no `Builder::connections`, and a `connections` request is told
//! `not_collecting`, saying why, on a connection that stays open for
//! checks. Built with the feature, this file holds no test.
#![cfg(not(feature = "connections"))]

mod common;

use common::*;
use health_proto::blocking::{read_frame, write_frame};
use health_proto::{ConnectionsRequest, ErrorCode, Request, Response, DEFAULT_MAX_PAYLOAD};
use health_server::State;

#[test]
fn a_connections_request_is_told_the_server_has_no_recorder() {
    let (server, _main) = ok_server(loopback());
    let mut s = connect(server.local_addr());
    write_frame(
        &mut s,
        &Request::Connections(ConnectionsRequest::default()).to_frame(7),
    )
    .unwrap();
    let frame = read_frame(&mut s, DEFAULT_MAX_PAYLOAD).expect("a reply");
    assert_eq!(frame.request_id, 7);
    match Response::from_frame(&frame).expect("a well-formed reply") {
        Response::Error(e) => {
            assert_eq!(e.known_code(), Some(ErrorCode::NotCollecting));
            assert!(e.message.contains("feature connections"), "{}", e.message);
        }
        other => panic!("expected not_collecting, got {other:?}"),
    }
    assert_eq!(
        landmark(check_on(&mut s, 8, None).unwrap()).state,
        State::Ok
    );
    server.shutdown_blocking();
}
