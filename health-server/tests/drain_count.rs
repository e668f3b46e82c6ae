//! Drain to zero (docs/PROTOCOL.md §8.4): while the landmark is `drain`,
//! an endpoint recording the service's connections (the recorder's
//! defaults) tells how many clients are still established on the
//! service's ports, counted at most a second before; never otherwise.
#![cfg(feature = "connections")]

mod common;

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{check, loopback};
use health_server::{connections, Landmark, State};

#[test]
fn a_draining_landmark_counts_the_clients_still_established() {
    let svc = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = svc.local_addr().unwrap();
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .connections(connections::Config::new().port(to.port(), "epg"))
        .spawn(rx)
        .unwrap();
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(Landmark::ok("serving"));
        }
    });
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(TcpStream::connect(to).unwrap());
        clients.push(svc.accept().unwrap().0);
    }
    let addr = server.local_addr();
    // Not draining: no count.
    let reply = check(addr);
    assert_eq!((reply.landmark.state, reply.established), (State::Ok, None));
    server.drain();
    let reply = check(addr);
    assert_eq!(
        (reply.landmark.state, reply.established),
        (State::Drain, Some(3))
    );
    // The clients leave: within a second and a bit, the count says so.
    clients.clear();
    let t = Instant::now();
    loop {
        let n = check(addr).established;
        if n == Some(0) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "still {n:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_a_recorder_a_draining_landmark_has_no_count() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(Landmark::ok("serving"));
        }
    });
    server.drain();
    let reply = check(server.local_addr());
    assert_eq!(
        (reply.landmark.state, reply.established),
        (State::Drain, None)
    );
}
