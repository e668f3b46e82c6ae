//! A check on its own, as keepalived, HAProxy and Kubernetes make them: a
//! half-close after the request is answered and closed at once; requests
//! that arrive in pieces, or one after another on the same connection,
//! are still answered in turn; and the endpoint keeps its own thread, so a
//! host runtime that is blocked cannot hold up a `fail`.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::*;
use health_proto::blocking::read_frame;
use health_proto::{CheckRequest, Request, Response, State, DEFAULT_MAX_PAYLOAD};
use health_server::Landmark;

fn check_bytes(id: u32) -> Vec<u8> {
    Request::Check(CheckRequest::default())
        .to_frame(id)
        .to_bytes()
}

#[test]
fn a_half_closed_check_is_answered_then_closed_at_once() {
    let (server, _main) = ok_server(loopback());
    for _ in 0..3 {
        let mut s = connect(server.local_addr());
        s.write_all(&check_bytes(7)).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let started = Instant::now();
        let frame = read_frame(&mut s, DEFAULT_MAX_PAYLOAD).expect("a reply");
        assert_eq!(frame.request_id, 7);
        assert_eq!(
            landmark(Response::from_frame(&frame).unwrap()).state,
            State::Ok
        );
        // Then the end, at once: not after the 2 s read timeout.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("a clean close");
        assert!(rest.is_empty(), "nothing after the reply: {rest:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "closed after {:?}",
            started.elapsed()
        );
    }
    server.shutdown_blocking();
}

#[test]
fn requests_in_pieces_and_in_turn_are_answered_on_one_connection() {
    let (server, _main) = ok_server(loopback());
    let mut s = connect(server.local_addr());
    // One after another, each read before the next is sent.
    for id in 1..=3 {
        let r = check_on(&mut s, id, None).expect("a reply");
        assert_eq!(landmark(r).state, State::Ok);
    }
    // A request in three pieces, with pauses: the connection waits for the
    // rest within the read timeout.
    let bytes = check_bytes(9);
    for piece in [&bytes[..3], &bytes[3..10], &bytes[10..]] {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let frame = read_frame(&mut s, DEFAULT_MAX_PAYLOAD).expect("a reply");
    assert_eq!(frame.request_id, 9);
    // Two requests in one write (the spec forbids it; the server still
    // answers both, in order), then the half-close.
    let mut two = check_bytes(10);
    two.extend_from_slice(&check_bytes(11));
    s.write_all(&two).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    for id in [10, 11] {
        let frame = read_frame(&mut s, DEFAULT_MAX_PAYLOAD).expect("a reply");
        assert_eq!(frame.request_id, id);
    }
    assert!(is_closed(&mut s));
    server.shutdown_blocking();
}

#[test]
fn a_blocked_host_runtime_cannot_hold_up_a_fail() {
    // A tokio service whose only runtime thread is stuck in a blocking call:
    // its main loop cannot answer. The endpoint, on its own thread, still
    // answers `fail` within the answer deadline (500 ms by default).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (asks, rx) = health_server::channel();
    let server = rt.block_on(async { loopback().spawn(rx).unwrap() });
    let addr = server.local_addr();
    let checker = std::thread::spawn(move || {
        // Let the runtime thread get stuck first.
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let reply = check(addr);
        (reply, started.elapsed())
    });
    rt.block_on(async move {
        let main = tokio::spawn(async move {
            while let Some(ask) = asks.recv().await {
                ask.answer(Landmark::ok("fine"));
            }
        });
        // The bug: a blocking call on the runtime's thread.
        std::thread::sleep(Duration::from_millis(1500));
        drop(main);
    });
    let (reply, took) = checker.join().unwrap();
    assert_eq!(reply.state, State::Fail, "{reply:?}");
    assert!(
        reply.detail.contains("did not answer within 500ms"),
        "{}",
        reply.detail
    );
    assert!(
        took < Duration::from_millis(1200),
        "answered after {took:?}"
    );
    server.shutdown_blocking();
}
