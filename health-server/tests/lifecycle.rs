//! The running endpoint: components, drain, allow-list, IPv6 and shutdown.

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use health_proto::ErrorCode;
use health_server::{Landmark, State};

fn with_components() -> Landmark {
    Landmark::degraded("replica lagging")
        .with_component("db", State::Degraded, "replica lag 12s")
        .with_component("feed", State::Ok, "")
        .with_weight(health_server::Weight::new(50).unwrap())
}

#[test]
fn components_are_checked_by_name() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let _main = answering(asks, with_components);
    let mut s = connect(server.local_addr());
    let db = landmark(check_on(&mut s, 1, Some("db")).unwrap());
    assert_eq!(db.component.as_deref(), Some("db"));
    assert_eq!(db.state, State::Degraded);
    assert_eq!(db.detail, "replica lag 12s");
    assert_eq!(db.weight.map(|w| w.get()), Some(50));
    assert!(db.components.is_empty());
    let feed = landmark(check_on(&mut s, 2, Some("feed")).unwrap());
    assert_eq!(feed.state, State::Ok);
    assert_eq!(
        error_code(check_on(&mut s, 3, Some("cache")).unwrap()),
        ErrorCode::UnknownComponent
    );
    let whole = landmark(check_on(&mut s, 4, Some("")).unwrap());
    assert_eq!(whole.state, State::Degraded);
    assert_eq!(whole.components.len(), 2);
    server.shutdown_blocking();
}

#[test]
fn component_check_of_a_hung_service_fails() {
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .answer_deadline(Duration::from_millis(100))
        .spawn(rx)
        .unwrap();
    let r = landmark(check_on(&mut connect(server.local_addr()), 1, Some("db")).unwrap());
    assert_eq!(r.state, State::Fail);
    assert_eq!(r.component.as_deref(), Some("db"));
    assert_eq!(r.detail, "main thread did not answer within 100ms");
    drop(asks);
    server.shutdown_blocking();
}

#[test]
fn drain_overrides_better_states_but_not_fail() {
    let state = Arc::new(Mutex::new(Landmark::ok("serving")));
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let s = Arc::clone(&state);
    let _main = answering(asks, move || s.lock().unwrap().clone());
    assert_eq!(check(server.local_addr()).state, State::Ok);
    assert!(!server.is_draining());
    server.drain();
    assert!(server.is_draining());
    let r = check(server.local_addr());
    assert_eq!(r.state, State::Drain);
    assert_eq!(r.detail, "draining: serving");
    *state.lock().unwrap() = Landmark::fail("disk full");
    let r = check(server.local_addr());
    assert_eq!(r.state, State::Fail);
    assert_eq!(r.detail, "disk full");
    *state.lock().unwrap() = Landmark::ok("serving");
    server.resume();
    assert_eq!(check(server.local_addr()).state, State::Ok);
    server.shutdown_blocking();
}

#[test]
fn allow_list_closes_others_without_an_answer() {
    let (server, _main) = ok_server(loopback().allow("127.0.0.1/32".parse().unwrap()));
    let addr = server.local_addr();
    let mut allowed = connect_from("127.0.0.1", addr);
    assert_eq!(
        landmark(check_on(&mut allowed, 1, None).unwrap()).state,
        State::Ok
    );
    let mut refused = connect_from("127.0.0.2", addr);
    let _ = refused.write_all(
        &health_proto::Request::Check(Default::default())
            .to_frame(1)
            .to_bytes(),
    );
    let t = Instant::now();
    assert!(is_closed(&mut refused), "refused peer must be closed");
    assert!(t.elapsed() < Duration::from_secs(1));
    server.shutdown_blocking();
}

#[test]
fn serves_ipv6_loopback() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    };
    drop(probe);
    let (server, _main) = ok_server(health_server::Builder::new().bind("[::1]:0".parse().unwrap()));
    assert!(server.local_addr().is_ipv6());
    assert_eq!(check(server.local_addr()).state, State::Ok);
    server.shutdown_blocking();
}

#[test]
fn address_in_use_is_reported_by_spawn() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (_asks, rx) = health_server::channel();
    let err = health_server::Builder::new()
        .bind(taken.local_addr().unwrap())
        .spawn(rx)
        .expect_err("bind must fail");
    assert!(
        err.to_string()
            .starts_with("cannot listen for health checks on 127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn shutdown_finishes_a_check_in_progress_then_stops_listening() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let addr = server.local_addr();
    let _main = answering(asks, || {
        std::thread::sleep(Duration::from_millis(200));
        Landmark::ok("finished")
    });
    // Idle, but accepted: it has sent half a request header.
    let mut idle = connect(addr);
    std::io::Write::write_all(&mut idle, &[0x4c, 0x4d]).unwrap();
    let in_flight = std::thread::spawn(move || check(addr));
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    server.shutdown_blocking();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(in_flight.join().unwrap().detail, "finished");
    assert!(is_closed(&mut idle), "idle connections are closed");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_from_async_code() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let addr = server.local_addr();
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown completes");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    drop(asks);
}
