//! The sock_diag collector against real loopback connections in known TCP
//! states: ESTABLISHED, CLOSE_WAIT, TIME_WAIT and LISTEN, IPv4 and IPv6,
//! with the kernel's state and port filters and the `max` cap.
#![cfg(feature = "connections")]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use health_server::connections::{collect, Connection, TcpState};

/// Polls `collect` until `pred` holds (states change asynchronously in the
/// kernel), at most 2 s.
fn until(
    ports: &[u16],
    states: &[TcpState],
    pred: impl Fn(&[Connection]) -> bool,
) -> Vec<Connection> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let got = collect(ports, states, 10_000)
            .expect("sock_diag dump")
            .connections;
        if pred(&got) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(conns: &[Connection], state: TcpState) -> usize {
    conns.iter().filter(|c| c.state == state).count()
}

#[test]
fn established_close_wait_time_wait_and_listen_on_the_service_port() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();

    // 3 established clients, one with unread data queued at the service.
    let mut clients = Vec::new();
    let mut served = Vec::new();
    for _ in 0..3 {
        clients.push(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        served.push(listener.accept().unwrap().0);
    }
    clients[0].write_all(b"hello, unread").unwrap();
    // 2 clients that closed while the service keeps its end: CLOSE_WAIT.
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        stuck.push(listener.accept().unwrap().0);
        drop(c);
    }
    // 1 connection the service closed first: TIME_WAIT on its side.
    {
        let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let s = listener.accept().unwrap().0;
        s.shutdown(Shutdown::Both).unwrap();
        drop(s);
        let mut sink = [0u8; 8];
        let _ = c.read(&mut sink);
    }
    // Noise on another port is filtered out in the kernel.
    let _noise = TcpStream::connect(other.local_addr().unwrap()).unwrap();

    let all = until(&[port], &TcpState::ALL, |c| {
        count(c, TcpState::CloseWait) == 2 && count(c, TcpState::TimeWait) == 1
    });
    assert!(all.iter().all(|c| c.local.port() == port), "{all:#?}");
    assert_eq!(count(&all, TcpState::Established), 3, "{all:#?}");
    assert_eq!(count(&all, TcpState::CloseWait), 2, "{all:#?}");
    assert_eq!(count(&all, TcpState::TimeWait), 1, "{all:#?}");
    assert_eq!(count(&all, TcpState::Listen), 1, "{all:#?}");

    // Clients are named by their own address and port.
    let client0: SocketAddr = clients[0].local_addr().unwrap();
    let c0 = all.iter().find(|c| c.remote == client0).expect("client 0");
    assert_eq!(c0.state, TcpState::Established);
    assert_eq!(c0.recv_queue, 13, "the service has not read 13 bytes");
    assert!(c0.rtt_us.is_some() && c0.retransmits == Some(0), "{c0:?}");
    let tw = all.iter().find(|c| c.state == TcpState::TimeWait).unwrap();
    assert_eq!(tw.rtt_us, None, "TIME_WAIT sockets carry no tcp_info");
    let l = all.iter().find(|c| c.state == TcpState::Listen).unwrap();
    assert_eq!(
        (l.rtt_us, l.retransmits),
        (None, None),
        "a listener has no round trip"
    );

    // The kernel's state filter.
    let cw = collect(&[port], &[TcpState::CloseWait], 100).unwrap();
    assert_eq!(cw.connections.len(), 2);
    assert!(!cw.truncated);
    // The cap: the rest are counted as truncated, not kept.
    let capped = collect(&[port], &[TcpState::Established, TcpState::CloseWait], 4).unwrap();
    assert_eq!(capped.connections.len(), 4);
    assert!(capped.truncated);
    drop((clients, served, stuck));
}

#[test]
fn ipv6_and_several_ports() {
    let Ok(v6) = TcpListener::bind("[::1]:0") else {
        eprintln!("SKIPPED: no IPv6 loopback");
        return;
    };
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let (p6, p4) = (
        v6.local_addr().unwrap().port(),
        v4.local_addr().unwrap().port(),
    );
    let a = TcpStream::connect(v6.local_addr().unwrap()).unwrap();
    let _a = v6.accept().unwrap();
    let b = TcpStream::connect(v4.local_addr().unwrap()).unwrap();
    let _b = v4.accept().unwrap();
    let got = until(&[p6, p4], &[TcpState::Established], |c| c.len() == 2);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got.iter().any(|c| c.remote == a.local_addr().unwrap()),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|c| c.remote == b.local_addr().unwrap()),
        "{got:#?}"
    );
    assert!(collect(&[], &TcpState::ALL, 10)
        .unwrap()
        .connections
        .is_empty());
}
