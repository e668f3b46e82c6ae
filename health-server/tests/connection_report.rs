//! The connection report end to end, over the protocol, on real loopback
//! connections: states (ESTABLISHED, CLOSE_WAIT, TIME_WAIT), filters,
//! grouping, past moments and ranges, thresholds on the landmark, the
//! frame limit with 10,000 connections, and the errors.
#![cfg(feature = "connections")]

mod common;

use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use health_proto::blocking::{read_frame, write_frame};
use health_proto::{
    ConnectionReport, ConnectionsRequest, ErrorCode, Grouping, Request, Response, SnapshotReport,
    DEFAULT_MAX_PAYLOAD,
};
use health_server::{connections, HealthServer, Landmark, State, TcpState};
use socket2::{Domain, Socket, Type};

/// Snapshots this often in these tests.
const PERIOD: Duration = Duration::from_millis(50);

fn ask_on(stream: &mut TcpStream, request: ConnectionsRequest) -> Response {
    write_frame(stream, &Request::Connections(request).to_frame(77)).unwrap();
    let frame = read_frame(stream, DEFAULT_MAX_PAYLOAD).expect("a reply");
    assert_eq!(frame.request_id, 77);
    Response::from_frame(&frame).expect("a well-formed reply")
}

fn report(addr: SocketAddr, request: ConnectionsRequest) -> ConnectionReport {
    match ask_on(&mut connect(addr), request) {
        Response::ConnectionReport(r) => r,
        other => panic!("expected a connection report, got {other:?}"),
    }
}

fn latest(addr: SocketAddr, request: ConnectionsRequest) -> SnapshotReport {
    let mut r = report(addr, request);
    assert_eq!(r.snapshots.len(), 1, "{r:?}");
    r.snapshots.remove(0)
}

/// Polls the latest snapshot until `pred` holds, at most 5 s.
fn until(addr: SocketAddr, pred: impl Fn(&SnapshotReport) -> bool) -> SnapshotReport {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = report(addr, ConnectionsRequest::default());
        if let Some(s) = r.snapshots.last() {
            if pred(s) || Instant::now() > deadline {
                return s.clone();
            }
        }
        assert!(Instant::now() < deadline, "no snapshot within 5 s: {r:?}");
        std::thread::sleep(PERIOD);
    }
}

fn count(s: &SnapshotReport, state: TcpState) -> usize {
    s.connections.iter().filter(|c| c.state == state).count()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A service listening on a loopback port, and a health server recording
/// that port as `svc` with `cfg`'s other settings.
fn service(cfg: connections::Config) -> (TcpListener, HealthServer, MainThread) {
    let svc = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = svc.local_addr().unwrap().port();
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .connections(cfg.port(port, "svc").period(PERIOD))
        .spawn(rx)
        .unwrap();
    let main = answering(asks, || Landmark::ok("serving"));
    (svc, server, main)
}

#[test]
fn states_filters_groups_moments_and_ranges_over_the_protocol() {
    let (svc, server, _main) = service(connections::Config::new());
    let addr = server.local_addr();
    let to = svc.local_addr().unwrap();
    let started_ms = now_ms();

    // 2 clients from 127.0.0.2 and 1 from 127.0.0.3, ESTABLISHED.
    let mut clients = Vec::new();
    let mut served = Vec::new();
    for from in ["127.0.0.2", "127.0.0.2", "127.0.0.3"] {
        clients.push(connect_from(from, to));
        served.push(svc.accept().unwrap().0);
    }
    // 2 clients from 127.0.0.4 that closed while the service keeps its
    // end open: CLOSE_WAIT.
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let c = connect_from("127.0.0.4", to);
        stuck.push(svc.accept().unwrap().0);
        drop(c);
    }
    // 1 connection the service closed first: TIME_WAIT on its side.
    {
        let mut c = connect_from("127.0.0.5", to);
        let s = svc.accept().unwrap().0;
        s.shutdown(Shutdown::Both).unwrap();
        drop(s);
        let _ = c.read(&mut [0u8; 8]);
    }
    let s = until(addr, |s| {
        count(s, TcpState::Established) == 3
            && count(s, TcpState::CloseWait) == 2
            && count(s, TcpState::TimeWait) == 1
    });
    assert_eq!(count(&s, TcpState::Established), 3, "{s:#?}");
    assert_eq!(count(&s, TcpState::CloseWait), 2, "{s:#?}");
    assert_eq!(count(&s, TcpState::TimeWait), 1, "{s:#?}");
    assert_eq!(count(&s, TcpState::Listen), 1, "{s:#?}");
    assert_eq!(s.matched, 7);
    let mine = clients[0].local_addr().unwrap().to_string();
    let row = s.connections.iter().find(|c| c.client == mine).unwrap();
    assert_eq!(
        (row.local.as_str(), row.service.as_str()),
        (to.to_string().as_str(), "svc")
    );
    assert!(row.rtt_us.is_some(), "{row:?}");
    // The moment that snapshot was taken, to ask for it again later.
    let established_ms = s.taken_ms;

    // Filters: states, client network, port, service.
    let only = |request: ConnectionsRequest| latest(addr, request);
    let cw = only(ConnectionsRequest {
        states: vec![TcpState::CloseWait],
        ..Default::default()
    });
    assert_eq!(cw.matched, 2);
    assert!(cw
        .connections
        .iter()
        .all(|c| c.client.starts_with("127.0.0.4:")));
    let from2 = only(ConnectionsRequest {
        client: Some("127.0.0.2/32".parse().unwrap()),
        ..Default::default()
    });
    assert_eq!(from2.matched, 2);
    let both = only(ConnectionsRequest {
        states: vec![TcpState::Established, TcpState::TimeWait],
        client: Some("127.0.0.0/29".parse().unwrap()),
        port: Some(to.port()),
        ..Default::default()
    });
    assert_eq!(both.matched, 4);
    let other_port = only(ConnectionsRequest {
        port: Some(to.port().wrapping_add(1)),
        ..Default::default()
    });
    assert_eq!(other_port.matched, 0);
    assert_eq!(
        only(ConnectionsRequest {
            service: Some("svc".into()),
            ..Default::default()
        })
        .matched,
        7
    );

    // Grouping: by state, by client (top 1), by subnet, by port.
    let group = |by, top| {
        only(ConnectionsRequest {
            group_by: Some(by),
            top,
            ..Default::default()
        })
        .groups
        .into_iter()
        .map(|g| (g.key, g.total))
        .collect::<Vec<_>>()
    };
    assert_eq!(
        group(Grouping::State, None),
        [
            ("ESTABLISHED".to_string(), 3),
            ("CLOSE_WAIT".to_string(), 2),
            ("TIME_WAIT".to_string(), 1),
            ("LISTEN".to_string(), 1)
        ]
    );
    // 127.0.0.2 and .4 both hold 2: ties in address order.
    assert_eq!(
        group(Grouping::Client, Some(2)),
        [("127.0.0.2".to_string(), 2), ("127.0.0.4".to_string(), 2)]
    );
    let subnets = latest(
        addr,
        ConnectionsRequest {
            group_by: Some(Grouping::Subnet),
            prefix: Some(8),
            states: vec![TcpState::Established, TcpState::CloseWait],
            ..Default::default()
        },
    );
    assert_eq!(subnets.groups.len(), 1);
    assert_eq!(subnets.groups[0].key, "127.0.0.0/8");
    assert_eq!(subnets.groups[0].states[&TcpState::CloseWait], 2);
    assert_eq!(
        group(Grouping::Port, None),
        [(format!("{} (svc)", to.port()), 7)]
    );

    // History: the clients leave and the service closes their sockets;
    // the moment before still shows them, a range shows both.
    drop(clients);
    drop(served);
    drop(stuck);
    let after = until(addr, |s| count(s, TcpState::Established) == 0);
    assert_eq!(count(&after, TcpState::Established), 0, "{after:#?}");
    let then = report(
        addr,
        ConnectionsRequest {
            at_ms: Some(established_ms),
            states: vec![TcpState::Established],
            ..Default::default()
        },
    );
    assert_eq!(then.snapshots.len(), 1, "{then:?}");
    assert_eq!(then.snapshots[0].matched, 3, "{then:?}");
    assert!(then.snapshots[0].taken_ms <= established_ms);
    let range = report(
        addr,
        ConnectionsRequest {
            from_ms: Some(started_ms),
            states: vec![TcpState::Established],
            group_by: Some(Grouping::State),
            ..Default::default()
        },
    );
    assert!(range.snapshots.len() >= 2, "{range:?}");
    assert!(range
        .snapshots
        .windows(2)
        .all(|w| w[0].taken_ms < w[1].taken_ms));
    assert!(range.snapshots.iter().any(|s| s.matched == 3));
    assert_eq!(range.snapshots.last().unwrap().matched, 0);
    assert_eq!(range.period_ms, PERIOD.as_millis() as u64);
    assert!(range.oldest_ms.unwrap() <= range.snapshots[0].taken_ms);
    // Before the history began: nothing, and the bounds say what is kept.
    let before = report(
        addr,
        ConnectionsRequest {
            at_ms: Some(started_ms - 60_000),
            ..Default::default()
        },
    );
    assert!(before.snapshots.is_empty());
    assert!(before.oldest_ms.is_some() && before.newest_ms.is_some());
    server.shutdown_blocking();
}

#[test]
fn thresholds_flag_the_landmark_and_degrade_it_when_asked() {
    let (svc, server, _main) = service(
        connections::Config::new()
            .state_over(TcpState::CloseWait, 1)
            .client_over(3)
            .degrade_to(State::Drain),
    );
    let addr = server.local_addr();
    let to = svc.local_addr().unwrap();
    let component = |addr| {
        let l = check(addr);
        let c = l.components.get(connections::COMPONENT).cloned();
        (l, c.expect("the connections component"))
    };
    until(addr, |_| true);
    let (l, c) = component(addr);
    assert_eq!((l.state, c.state), (State::Ok, State::Ok), "{l:?}");
    assert_eq!(c.detail, "1 connection: 1 LISTEN");

    // 2 CLOSE_WAIT from one client, then 2 more connections from it.
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let c = connect_from("127.0.0.6", to);
        stuck.push(svc.accept().unwrap().0);
        drop(c);
    }
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let c = connect_from("127.0.0.6", to);
            (c, svc.accept().unwrap().0)
        })
        .collect();
    until(addr, |s| {
        count(s, TcpState::CloseWait) == 2 && count(s, TcpState::Established) == 2
    });
    let (l, c) = component(addr);
    assert_eq!(c.state, State::Degraded);
    assert_eq!(
        c.detail,
        "2 CLOSE_WAIT (over 1); client 127.0.0.6 has 4 connections (over 3)"
    );
    assert_eq!(l.state, State::Drain, "degrade_to(Drain)");
    assert_eq!(l.detail, format!("connections: {}; serving", c.detail));
    // The component can be checked by name, as any other.
    let only = landmark(check_on(&mut connect(addr), 3, Some("connections")).unwrap());
    assert_eq!(only.state, State::Degraded);

    // The service closes them: clear again.
    drop(stuck);
    drop(busy);
    until(addr, |s| {
        count(s, TcpState::CloseWait) == 0 && count(s, TcpState::Established) == 0
    });
    let (l, c) = component(addr);
    assert_eq!((l.state, c.state), (State::Ok, State::Ok), "{l:?} {c:?}");
    assert_eq!(l.detail, "serving");
    server.shutdown_blocking();
}

#[test]
fn a_server_not_recording_and_a_bad_request_get_errors_and_keep_the_connection() {
    let (asks, rx) = health_server::channel();
    let plain = loopback().spawn(rx).unwrap();
    let _main = answering(asks, || Landmark::ok("serving"));
    let mut s = connect(plain.local_addr());
    assert_eq!(
        error_code(ask_on(&mut s, ConnectionsRequest::default())),
        ErrorCode::NotCollecting
    );
    // Still open: a check on the same connection is answered.
    assert_eq!(
        landmark(check_on(&mut s, 2, None).unwrap()).state,
        State::Ok
    );
    assert!(check(plain.local_addr()).components.is_empty());
    plain.shutdown_blocking();

    let (_svc, server, _main) = service(connections::Config::new());
    let mut s = connect(server.local_addr());
    let both = ConnectionsRequest {
        at_ms: Some(1),
        from_ms: Some(1),
        ..Default::default()
    };
    assert_eq!(error_code(ask_on(&mut s, both)), ErrorCode::BadPayload);
    assert!(matches!(
        ask_on(&mut s, ConnectionsRequest::default()),
        Response::ConnectionReport(_)
    ));
    server.shutdown_blocking();

    let (asks, rx) = health_server::channel();
    let none = loopback().connections(connections::Config::new()).spawn(rx);
    assert!(matches!(
        none.err(),
        Some(health_server::ServerError::NoConnectionPorts)
    ));
    drop(asks);
}

/// 10,000 connections: the listing is cut to the frame limit with
/// `truncated` and the full `matched` count; groups count all of them;
/// the per-client threshold sees them.
///
/// The service side stays in SO_REUSEPORT listeners' accept queues
/// (ESTABLISHED in the kernel, no descriptor), so the test needs only the
/// 10,000 client descriptors.
#[test]
fn ten_thousand_connections() {
    const CLIENTS: [&str; 4] = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"];
    const PER_CLIENT: usize = 2500;
    let _ = rlimit::increase_nofile_limit(12_000);
    let first = reuseport_listener("127.0.0.1:0".parse().unwrap());
    let to = first.local_addr().unwrap().as_socket().unwrap();
    // Enough accept queues for all, at three quarters of somaxconn each
    // (the kernel spreads connections over them by hash).
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(128);
    let queues = (CLIENTS.len() * PER_CLIENT).div_ceil((somaxconn * 3 / 4).max(1));
    let listeners: Vec<Socket> = std::iter::once(first)
        .chain((1..queues.max(4)).map(|_| reuseport_listener(to)))
        .collect();
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .connections(
            connections::Config::new()
                .port(to.port(), "svc")
                .period(Duration::from_millis(200))
                .max_per_snapshot(20_000)
                .client_over(2000),
        )
        .spawn(rx)
        .unwrap();
    let _main = answering(asks, || Landmark::ok("serving"));
    let addr = server.local_addr();
    let mut clients = Vec::with_capacity(CLIENTS.len() * PER_CLIENT);
    for from in CLIENTS {
        for _ in 0..PER_CLIENT {
            clients.push(connect_from(from, to));
        }
    }
    let total = CLIENTS.len() * PER_CLIENT;
    let established = ConnectionsRequest {
        states: vec![TcpState::Established],
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let listing = loop {
        let s = latest(addr, established.clone());
        if s.matched as usize == total || Instant::now() > deadline {
            break report(addr, established.clone());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let s = &listing.snapshots[0];
    assert_eq!(s.matched as usize, total);
    assert!(listing.truncated, "10,000 rows cannot fit in 64 KiB");
    assert!(
        s.connections.len() > 100 && s.connections.len() < 1000,
        "{} rows",
        s.connections.len()
    );
    let json = serde_json::to_vec(&listing).unwrap();
    assert!(json.len() <= DEFAULT_MAX_PAYLOAD as usize);

    let by_client = latest(
        addr,
        ConnectionsRequest {
            group_by: Some(Grouping::Client),
            ..established.clone()
        },
    );
    let groups: Vec<(String, u32)> = by_client
        .groups
        .into_iter()
        .map(|g| (g.key, g.total))
        .collect();
    let want: Vec<(String, u32)> = CLIENTS
        .iter()
        .map(|c| (c.to_string(), PER_CLIENT as u32))
        .collect();
    assert_eq!(groups, want);
    let l = check(addr);
    let c = &l.components[connections::COMPONENT];
    assert_eq!(c.state, State::Degraded);
    assert_eq!(
        c.detail,
        "client 127.0.0.11 has 2500 connections (over 2000) and 3 more clients"
    );
    assert_eq!(l.state, State::Ok, "no degrade_to: only the flag");
    one_report_per_source_and_identical_ones_shared(addr);
    drop(clients);
    drop(listeners);
    server.shutdown_blocking();
}

/// Over a history of 10,000-connection snapshots (each range report takes
/// a while): a second report from the same source while the first is
/// computed is `busy`; identical requests from other sources get the same
/// report.
fn one_report_per_source_and_identical_ones_shared(addr: SocketAddr) {
    let range = ConnectionsRequest {
        from_ms: Some(now_ms() - 60_000),
        group_by: Some(Grouping::Subnet),
        ..Default::default()
    };
    let send = |from: &str| {
        let mut c = connect_from(from, addr);
        write_frame(&mut c, &Request::Connections(range.clone()).to_frame(77)).unwrap();
        c
    };
    let read = |mut c: TcpStream| {
        Response::from_frame(&read_frame(&mut c, DEFAULT_MAX_PAYLOAD).unwrap()).unwrap()
    };
    let (a, b) = (send("127.0.0.1"), send("127.0.0.1"));
    let replies = [read(a), read(b)];
    let busy = replies
        .iter()
        .filter(|r| matches!(r, Response::Error(e) if e.known_code() == Some(ErrorCode::Busy)))
        .count();
    assert_eq!(busy, 1, "one of two from one source is busy: {replies:?}");
    assert!(replies
        .iter()
        .any(|r| matches!(r, Response::ConnectionReport(_))));
    let (c, d) = (send("127.0.0.21"), send("127.0.0.22"));
    match (read(c), read(d)) {
        (Response::ConnectionReport(c), Response::ConnectionReport(d)) => {
            assert!(c.snapshots.len() > 1);
            assert_eq!(c, d, "identical requests share one computation");
        }
        other => panic!("expected two reports, got {other:?}"),
    }
}

fn reuseport_listener(addr: SocketAddr) -> Socket {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&addr.into()).unwrap();
    s.listen(4096).unwrap();
    s
}
