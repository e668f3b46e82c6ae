//! `health-probe connections` against a real health server recording a
//! loopback service's connections: the tables, the filters, grouping,
//! past moments, JSON, and the failures' exit codes and messages.

mod common;

use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use health_proto::ConnectionReport;
use health_server::{connections, HealthServer, Landmark};

/// A service port with 2 ESTABLISHED clients, 3 in CLOSE_WAIT and 1 in
/// TIME_WAIT, recorded every 50 ms as service `epg`.
struct Scene {
    server: HealthServer,
    addr: String,
    port: u16,
    _held: Vec<TcpStream>,
    _svc: TcpListener,
    _asks: std::thread::JoinHandle<()>,
}

fn scene() -> Scene {
    let svc = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = svc.local_addr().unwrap();
    let (asks, rx) = health_server::channel();
    let server = health_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .connections(
            connections::Config::new()
                .port(to.port(), "epg")
                .period(Duration::from_millis(50)),
        )
        .spawn(rx)
        .unwrap();
    let answering = std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(Landmark::ok("serving"));
        }
    });
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(to).unwrap());
        held.push(svc.accept().unwrap().0);
    }
    for _ in 0..3 {
        let c = TcpStream::connect(to).unwrap();
        held.push(svc.accept().unwrap().0);
        drop(c);
    }
    {
        let mut c = TcpStream::connect(to).unwrap();
        let s = svc.accept().unwrap().0;
        s.shutdown(Shutdown::Both).unwrap();
        drop(s);
        let _ = c.read(&mut [0u8; 4]);
    }
    let scene = Scene {
        addr: server.local_addr().to_string(),
        server,
        port: to.port(),
        _held: held,
        _svc: svc,
        _asks: answering,
    };
    // Until a snapshot shows them all (the kernel moves states on its own
    // time), at most 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (out, _) = run_probe(&["connections", &scene.addr, "--json"]);
        let r: ConnectionReport = serde_json::from_slice(&out.stdout).unwrap();
        let n = |st: &str| {
            r.snapshots.first().map_or(0, |s| {
                s.connections
                    .iter()
                    .filter(|c| c.state.as_str() == st)
                    .count()
            })
        };
        if (n("ESTABLISHED"), n("CLOSE_WAIT"), n("TIME_WAIT")) == (2, 3, 1) {
            return scene;
        }
        assert!(Instant::now() < deadline, "states never settled: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn lists_filters_groups_and_answers_json() {
    let scene = scene();
    let port = scene.port.to_string();

    let (out, _) = run_probe(&["connections", &scene.addr]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let heading = lines.next().unwrap();
    assert!(heading.starts_with("snapshot 20"), "{text}");
    assert!(heading.ends_with("ago): 7 connections"), "{text}");
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["STATE", "CLIENT", "LOCAL", "SERVICE", "RECV-Q", "SEND-Q", "RTT", "RETRANS"]
    );
    assert_eq!(text.matches("CLOSE_WAIT").count(), 3, "{text}");
    assert_eq!(text.matches(" epg ").count(), 7, "{text}");
    assert!(text.contains("0.0.0.0:0 "), "the listener: {text}");

    // --state (ss's spelling), --port by number and by service name.
    for port in [port.as_str(), "epg"] {
        let (out, _) = run_probe(&[
            "connections",
            &scene.addr,
            "--state",
            "close-wait",
            "--port",
            port,
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.lines().next().unwrap().ends_with(": 3 connections"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 2 + 3, "{text}");
    }
    let (out, _) = run_probe(&["connections", &scene.addr, "--client", "192.0.2.0/24"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out)
        .lines()
        .next()
        .unwrap()
        .ends_with(": 0 connections"));
    assert_eq!(stdout(&out).lines().count(), 1, "no table for nothing");

    // Grouped by state: a count per state.
    let (out, _) = run_probe(&["connections", &scene.addr, "--group-by", "state"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["CLOSE_WAIT", "3"],
            vec!["ESTABLISHED", "2"],
            vec!["TIME_WAIT", "1"],
            vec!["LISTEN", "1"]
        ],
        "{text}"
    );
    // Grouped by client: one client address, a column per state.
    let (out, _) = run_probe(&["connections", &scene.addr, "--group-by", "client"]);
    let text = stdout(&out);
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("CLIENT     TOTAL  ESTABLISHED"),
        "{text}"
    );
    let row: Vec<&str> = text.lines().nth(2).unwrap().split_whitespace().collect();
    // ESTABLISHED, TIME_WAIT, CLOSE_WAIT, LISTEN (the listener's row).
    assert_eq!(row, ["127.0.0.1", "6", "2", "1", "3", "0"], "{text}");

    // JSON: the protocol's report.
    let (out, _) = run_probe(&["connections", &scene.addr, "--json", "--limit", "2"]);
    assert_eq!(code(&out), 0);
    let r: ConnectionReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r.snapshots[0].matched, 7);
    assert_eq!(r.snapshots[0].connections.len(), 2);
    assert!(r.truncated);
    let (out, _) = run_probe(&["connections", &scene.addr, "--limit", "2"]);
    assert!(
        stdout(&out).contains("truncated: listed 2 of 7 connections; narrow with"),
        "{}",
        stdout(&out)
    );
    scene.server.shutdown_blocking();
}

#[test]
fn past_moments_ranges_and_failures() {
    let scene = scene();
    std::thread::sleep(Duration::from_millis(200));
    let (out, _) = run_probe(&[
        "connections",
        &scene.addr,
        "--since",
        "1m",
        "--group-by",
        "state",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let snapshots = stdout(&out).matches("snapshot ").count();
    assert!(
        snapshots >= 2,
        "a range shows every snapshot: {}",
        stdout(&out)
    );

    // A moment before the server started: nothing kept, exit 1, and what
    // is kept.
    let (out, _) = run_probe(&["connections", &scene.addr, "--at", "10m"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "health-probe: connections {}: no snapshot kept for 20",
            scene.addr
        )) && err.contains("; the server keeps 20")
            && err.contains(", one every 50ms"),
        "{err}"
    );
    // This second, as a UTC time of day: the snapshot in force then
    // (the server has been recording for over a second).
    std::thread::sleep(Duration::from_millis(1100));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = format!(
        "{:02}:{:02}:{:02}",
        now / 3600 % 24,
        now / 60 % 60,
        now % 60
    );
    let (out, _) = run_probe(&["connections", &scene.addr, "--at", &clock]);
    assert_eq!(code(&out), 0, "{clock}: {}", stderr(&out));
    let heading = stdout(&out).lines().next().unwrap_or_default().to_string();
    assert!(heading.ends_with("ago): 7 connections"), "{heading}");
    scene.server.shutdown_blocking();

    // A server that does not record connections.
    let (asks, rx) = health_server::channel();
    let plain = health_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let addr = plain.local_addr().to_string();
    let (out, _) = run_probe(&["connections", &addr]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        format!("health-probe: connections {addr}: server answered error not_collecting: this server does not collect connections (server-error)\n")
    );
    plain.shutdown_blocking();
    drop(asks);
    // Nothing listening; bad arguments.
    let (out, _) = run_probe(&["connections", &free_port()]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).ends_with("connection refused (refused)\n"),
        "{}",
        stderr(&out)
    );
    let (out, _) = run_probe(&["connections", "127.0.0.1:1", "--state", "ESTAB"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("unknown TCP state \"ESTAB\""),
        "{}",
        stderr(&out)
    );
}
