//! Admission with the defaults (`Builder::new()`): peers that hold
//! connections open cannot keep a fresh check out, on any port; a source
//! whose every connection is busy is refused with `busy`, and other sources
//! are still served.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use health_proto::{ErrorCode, Request, Response, State};
use health_server::Landmark;

/// `Builder::max_per_source`'s documented default.
const DEFAULT_MAX_PER_SOURCE: usize = 64;

/// Opens `n` connections that have sent `first` (nothing, or part of a
/// request) and then say nothing more.
fn hoard(addr: SocketAddr, n: usize, first: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut c = connect(addr);
            c.write_all(first).unwrap();
            c
        })
        .collect()
}

#[test]
fn idle_hoarders_on_the_checkers_own_address_cannot_keep_a_check_out() {
    let _ = rlimit::increase_nofile_limit(8192);
    let (server, _main) = ok_server(loopback());
    let addr = server.local_addr();
    // Half a header each: accepted at once, then silent.
    let mut hoarders = hoard(addr, 1000, b"LM");
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(check(addr).state, State::Ok);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    // All but the per-source limit's worth were pushed out for newcomers.
    let t = Instant::now();
    while closed(&mut hoarders) < 1000 - DEFAULT_MAX_PER_SOURCE {
        assert!(t.elapsed() < Duration::from_secs(5), "hoarders kept");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.shutdown_blocking();
}

#[test]
fn idle_hoarders_cannot_keep_http_or_agent_checks_out() {
    let _ = rlimit::increase_nofile_limit(8192);
    let (server, _main) = ok_server(
        loopback()
            .http_bind("127.0.0.1:0".parse().unwrap())
            .agent_bind("127.0.0.1:0".parse().unwrap()),
    );
    let http = server.http_addr().unwrap();
    let agent = server.agent_addr().unwrap();
    // Half an HTTP request head each, on the HTTP port; plain connections
    // on the agent port (whose replies nobody reads).
    let _http_hoarders = hoard(http, 500, b"GET /healthz HTTP/1.1\r\n");
    let mut agent_hoarders = hoard(agent, 500, b"");
    // The agent port answers every connection at once, so these cannot
    // stay idle: until the server has taken them all in, they are up to
    // 500 agent checks being answered at once from the checker's own
    // address, and a source whose every connection is busy is refused by
    // design (the last test). Let them be answered first; the HTTP
    // hoarders stay.
    for c in &mut agent_hoarders {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.read_to_end(&mut Vec::new());
    }
    for _ in 0..10 {
        let t = Instant::now();
        let mut c = connect(http);
        c.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        let mut c = connect(agent);
        let mut line = String::new();
        c.read_to_string(&mut line).unwrap();
        assert_eq!(line, "up ready 100%\n");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    server.shutdown_blocking();
}

#[test]
fn a_source_whose_every_connection_is_busy_is_refused_and_others_are_served() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let addr = server.local_addr();
    // The main thread hangs: every check waits the 500 ms answer deadline,
    // busy all that time.
    let hang = std::thread::spawn(move || {
        let held = asks.recv_blocking();
        std::thread::sleep(Duration::from_secs(2));
        drop(held);
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(Landmark::ok("back"));
        }
    });
    let request = Request::Check(Default::default()).to_frame(7).to_bytes();
    let busy: Vec<TcpStream> = (0..DEFAULT_MAX_PER_SOURCE)
        .map(|_| {
            let mut c = connect(addr);
            c.write_all(&request).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // One more from the same address: nothing of its own is idle to give
    // way, so it is told busy at once, with request id 0.
    let mut refused = connect(addr);
    refused.write_all(&request).unwrap();
    let f = health_proto::blocking::read_frame(&mut refused, 1 << 16).unwrap();
    assert_eq!(f.request_id, 0);
    match Response::from_frame(&f).unwrap() {
        Response::Error(e) => {
            assert_eq!(e.known_code(), Some(ErrorCode::Busy));
            assert!(e.message.contains("from this source"), "{}", e.message);
        }
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(is_closed(&mut refused));
    // Another address is served (the verdict of a hung main thread).
    let mut other = connect_from("127.0.0.2", addr);
    let r = landmark(check_on(&mut other, 1, None).unwrap());
    assert_eq!(r.state, State::Fail);
    assert_eq!(r.detail, "main thread did not answer within 500ms");
    drop(busy);
    server.shutdown_blocking();
    hang.join().unwrap();
}
