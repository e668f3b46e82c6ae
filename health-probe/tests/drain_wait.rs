//! `health-probe ADDR --wait-drained`: against a real health server that
//! records a loopback service's connections (with the recorder's
//! defaults), it waits while clients are still established on the
//! service's port and exits 0 once the last one leaves; it exits 1 with
//! what it last saw when `--timeout` passes, and at once when the endpoint
//! cannot count its clients.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use health_server::{connections, HealthServer, Landmark};

/// A service port with 2 established clients, and its health endpoint
/// (recording the port's connections, if `recorded`).
struct Service {
    server: HealthServer,
    addr: String,
    clients: Vec<TcpStream>,
    _svc: TcpListener,
}

fn service(recorded: bool) -> Service {
    let svc = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = svc.local_addr().unwrap();
    let (asks, rx) = health_server::channel();
    let mut builder = health_server::Builder::new().bind("127.0.0.1:0".parse().unwrap());
    if recorded {
        builder = builder.connections(connections::Config::new().port(to.port(), "epg"));
    }
    let server = builder.spawn(rx).unwrap();
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(Landmark::ok("serving"));
        }
    });
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(TcpStream::connect(to).unwrap());
        clients.push(svc.accept().unwrap().0);
    }
    Service {
        addr: server.local_addr().to_string(),
        server,
        clients,
        _svc: svc,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn it_waits_for_the_last_client_then_exits_0() {
    let mut s = service(true);
    s.server.drain();
    let mut child = Command::new(PROBE)
        .args([&s.addr, "--wait-drained", "--timeout", "20s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(
        first,
        format!("{}: draining: 2 clients still established", s.addr)
    );
    let t = Instant::now();
    s.clients.clear();
    let last = lines.next().unwrap().unwrap();
    assert!(
        last.starts_with(&format!("{}: drained: no client established", s.addr)),
        "{last}"
    );
    assert!(child.wait().unwrap().success());
    // Counted afresh at most a second old, checked once a second.
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn at_the_timeout_it_exits_1_with_what_it_last_saw() {
    let s = service(true);
    s.server.drain();
    let (out, took) = run_probe(&[&s.addr, "--wait-drained", "--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "health-probe: {} not drained within 2s: draining: 2 clients still established",
            s.addr
        )
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // Not draining at all: it says so.
    let s = service(true);
    let (out, _) = run_probe(&[&s.addr, "--wait-drained", "--timeout", "1500ms", "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("not draining: state ok"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_endpoint_that_cannot_count_its_clients_is_told_at_once() {
    let s = service(false);
    s.server.drain();
    let (out, took) = run_probe(&[&s.addr, "--wait-drained", "--timeout", "10m"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(
        text(&out.stderr).contains("does not count its clients"),
        "{}",
        text(&out.stderr)
    );
    // Nor does it go with flags that print a verdict of their own.
    let (out, _) = run_probe(&[&s.addr, "--wait-drained", "--nagios"]);
    assert_eq!(out.status.code(), Some(3));
}
