//! Admission with the defaults (`Builder::new()`): peers that hold
//! connections open cannot keep a fresh check out, on any port; a source
//! whose every connection is busy lets a newcomer in over its limit and is
//! trimmed back as they finish, even when they pipeline their checks.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use health_proto::{Request, Response, State};
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
    // address. Let them be answered first; the HTTP hoarders stay.
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
fn a_source_whose_every_connection_is_busy_is_let_in_over_its_limit_and_trimmed_back() {
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
    let mut conns: Vec<TcpStream> = (0..DEFAULT_MAX_PER_SOURCE)
        .map(|_| {
            let mut c = connect(addr);
            c.write_all(&request).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // One more from the same address: nothing of its own is idle to give
    // way, so it is let in over the limit and answered like the others,
    // with the verdict of a hung main thread, within the deadline.
    let t = Instant::now();
    let mut over = connect(addr);
    let r = landmark(check_on(&mut over, 1, None).unwrap());
    assert_eq!(r.state, State::Fail);
    assert_eq!(r.detail, "main thread did not answer within 500ms");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    conns.push(over);
    // Every connection got its answer; as they turn idle, the source is
    // trimmed back to its limit: exactly one of them is closed.
    for c in &mut conns[..DEFAULT_MAX_PER_SOURCE] {
        let f = health_proto::blocking::read_frame(c, 1 << 16).unwrap();
        assert_eq!(f.request_id, 7);
        match Response::from_frame(&f).unwrap() {
            Response::Landmark(l) => assert_eq!(l.state, State::Fail),
            other => panic!("expected a landmark, got {other:?}"),
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(closed(&mut conns), 1);
    // Another address is served.
    let mut other = connect_from("127.0.0.2", addr);
    let r = landmark(check_on(&mut other, 1, None).unwrap());
    assert_eq!(r.state, State::Fail);
    drop(conns);
    server.shutdown_blocking();
    hang.join().unwrap();
}

#[test]
fn a_source_that_pipelines_checks_is_held_to_its_limit() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (server, _main) = ok_server(loopback());
    let addr = server.local_addr();
    // 100 connections from one address, each with thousands of checks sent
    // at once (as many as the kernel takes without blocking) and its
    // replies read as they come: all busy, so all are let in, and each
    // passes through idle between its answers, where the source is trimmed
    // back to its limit, while the checks keep coming.
    let request = Request::Check(Default::default()).to_frame(3).to_bytes();
    let burst: Vec<u8> = request
        .iter()
        .copied()
        .cycle()
        .take(request.len() * 10_000)
        .collect();
    let (answered, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let conns: Vec<TcpStream> = (0..100)
        .map(|_| {
            let c = connect(addr);
            c.set_nonblocking(true).unwrap();
            let _ = (&c).write(&burst);
            c.set_nonblocking(false).unwrap();
            let mut reader = c.try_clone().unwrap();
            let (answered, closed) = (Arc::clone(&answered), Arc::clone(&closed));
            std::thread::spawn(move || {
                let mut first = true;
                loop {
                    match health_proto::blocking::read_frame(&mut reader, 1 << 16) {
                        Ok(_) if std::mem::take(&mut first) => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                closed.fetch_add(1, Ordering::SeqCst);
            });
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Every first check was answered: a fresh request is never put at stake.
    assert_eq!(answered.load(Ordering::SeqCst), 100);
    let open = conns.len() - closed.load(Ordering::SeqCst);
    assert!(
        open <= DEFAULT_MAX_PER_SOURCE,
        "{open} connections of one source still held"
    );
    for c in &conns {
        let _ = c.shutdown(std::net::Shutdown::Both);
    }
    server.shutdown_blocking();
}
