//! Garbage, foreign protocols, wrong versions, oversized and half frames,
//! silent peers, slow readers and floods: each gets a clear answer or a
//! bounded close, and everyone else keeps being served.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use health_proto::{ErrorCode, Frame, Landmark, Request, State};

#[test]
fn garbage_gets_bad_magic_at_once_and_a_close() {
    let (server, _main) = ok_server(loopback());
    let t = Instant::now();
    let (mut s, r) = send_raw(server.local_addr(), b"GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(error_code(r), ErrorCode::BadMagic);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "rejected without waiting"
    );
    assert!(is_closed(&mut s));
    assert_eq!(check(server.local_addr()).state, State::Ok);
    server.shutdown_blocking();
}

#[test]
fn unsupported_version_is_answered_in_version_1_with_id_0() {
    let (server, _main) = ok_server(loopback());
    let mut bytes = Request::Check(Default::default()).to_frame(9).to_bytes();
    bytes[4] = 2;
    let mut s = connect(server.local_addr());
    s.write_all(&bytes).unwrap();
    let frame = health_proto::blocking::read_frame(&mut s, 1 << 16).unwrap();
    assert_eq!(frame.request_id, 0);
    let r = health_proto::Response::from_frame(&frame).unwrap();
    match r {
        health_proto::Response::Error(e) => {
            assert_eq!(e.known_code(), Some(ErrorCode::UnsupportedVersion));
            assert!(e.message.contains("version 2"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert!(is_closed(&mut s));
    server.shutdown_blocking();
}

#[test]
fn oversized_frame_rejected_from_its_header() {
    let (server, _main) = ok_server(loopback().max_payload(1024));
    let mut head = bytes::BytesMut::new();
    health_proto::Header {
        kind: 1,
        request_id: 4,
        payload_len: 1025,
    }
    .write(&mut head);
    // Only the header is sent: the error must not wait for the payload.
    let (mut s, r) = send_raw(server.local_addr(), &head);
    assert_eq!(error_code(r), ErrorCode::FrameTooLarge);
    assert!(is_closed(&mut s));
    // Exactly at the limit is fine (a component name padded to 1024 bytes).
    let name = "x".repeat(1024 - r#"{"component":""}"#.len());
    let mut s = connect(server.local_addr());
    let r = check_on(&mut s, 5, Some(&name)).unwrap();
    assert_eq!(error_code(r), ErrorCode::UnknownComponent);
    server.shutdown_blocking();
}

#[test]
fn unknown_type_and_bad_payload_keep_the_connection() {
    let (server, _main) = ok_server(loopback());
    let mut s = connect(server.local_addr());
    let odd = Frame {
        kind: 0x42,
        request_id: 11,
        payload: bytes::Bytes::from_static(b"{}"),
    };
    s.write_all(&odd.to_bytes()).unwrap();
    let f = health_proto::blocking::read_frame(&mut s, 1 << 16).unwrap();
    assert_eq!(f.request_id, 11);
    assert_eq!(
        error_code(health_proto::Response::from_frame(&f).unwrap()),
        ErrorCode::UnknownType
    );
    let bad = Frame {
        kind: 1,
        request_id: 12,
        payload: bytes::Bytes::from_static(b"{not json"),
    };
    s.write_all(&bad.to_bytes()).unwrap();
    let f = health_proto::blocking::read_frame(&mut s, 1 << 16).unwrap();
    assert_eq!(f.request_id, 12);
    assert_eq!(
        error_code(health_proto::Response::from_frame(&f).unwrap()),
        ErrorCode::BadPayload
    );
    // Same connection still answers checks.
    assert_eq!(
        landmark(check_on(&mut s, 13, None).unwrap()).state,
        State::Ok
    );
    server.shutdown_blocking();
}

#[test]
fn half_frame_peers_are_closed_after_the_read_timeout() {
    let (server, _main) = ok_server(loopback().read_timeout(Duration::from_millis(300)));
    let addr = server.local_addr();
    let mut silent = connect(addr);
    let mut half = connect(addr);
    let bytes = Request::Check(Default::default()).to_frame(1).to_bytes();
    half.write_all(&bytes[..10]).unwrap();
    // Others are served meanwhile.
    assert_eq!(check(addr).state, State::Ok);
    let t = Instant::now();
    assert!(is_closed(&mut half));
    let waited = t.elapsed();
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    // A slow-loris peer trickling bytes is bounded by the same deadline.
    let mut trickle = connect(addr);
    let t = Instant::now();
    for b in &bytes[..15] {
        if trickle.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(is_closed(&mut trickle));
    assert!(t.elapsed() < Duration::from_secs(2));
    // A silent peer waits in the kernel (deferred accept), past the read
    // timeout, and is answered whenever it speaks.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        landmark(check_on(&mut silent, 5, None).unwrap()).state,
        State::Ok
    );
    server.shutdown_blocking();
}

#[test]
fn a_peer_that_never_reads_is_cut_off_by_the_write_timeout() {
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .write_timeout(Duration::from_millis(300))
        .spawn(rx)
        .unwrap();
    let big = "x".repeat(60_000);
    let _main = answering(asks, move || Landmark::ok(big.clone()));
    let mut s = connect(server.local_addr());
    // Send many checks and read none of the ~60 KB replies: socket buffers
    // fill, the server's write times out, and it closes the connection.
    let req = Request::Check(Default::default()).to_frame(1).to_bytes();
    let t = Instant::now();
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for _ in 0..2000 {
        if s.write_all(&req).is_err() {
            break;
        }
    }
    assert_eq!(
        check(server.local_addr()).state,
        State::Ok,
        "others still served"
    );
    // Wait until the server has stopped sending (the bytes waiting for us
    // stop growing: its write is stuck), however slowly a loaded machine
    // produced them, then past its write timeout.
    let waiting = |s: &std::net::TcpStream| {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int to the pointer given.
        unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &mut n) };
        n
    };
    let (mut last, mut still_since) = (waiting(&s), Instant::now());
    while still_since.elapsed() < Duration::from_millis(500)
        && t.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
        let now = waiting(&s);
        if now != last {
            (last, still_since) = (now, Instant::now());
        }
    }
    std::thread::sleep(Duration::from_millis(600));
    // Now drain what was buffered: the stream ends well before 2000 replies.
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection not closed by the server: {e}"),
        }
    }
    assert!(total < 2000 * 60_000, "{total}");
    assert!(t.elapsed() < Duration::from_secs(25));
    server.shutdown_blocking();
}

#[test]
fn landmark_over_the_frame_limit_is_reported_as_fail() {
    let (asks, rx) = health_server::channel();
    let server = loopback().max_payload(512).spawn(rx).unwrap();
    let _main = answering(asks, || Landmark::ok("y".repeat(600)));
    let reply = check(server.local_addr());
    assert_eq!(reply.state, State::Fail);
    assert!(
        reply.detail.starts_with("landmark too large: ")
            && reply.detail.ends_with("exceeds the 512-byte frame limit"),
        "{}",
        reply.detail
    );
    server.shutdown_blocking();
}

#[test]
fn several_requests_on_one_connection_echo_their_ids() {
    let (server, main) = ok_server(loopback());
    let mut s = connect(server.local_addr());
    for id in [7, 8, u32::MAX] {
        assert_eq!(
            landmark(check_on(&mut s, id, None).unwrap()).state,
            State::Ok
        );
    }
    assert_eq!(
        main.asks_answered.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    server.shutdown_blocking();
}
