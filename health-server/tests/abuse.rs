//! Abuse: thousands of idle connections, garbage, half frames, absurd
//! lengths, slow readers that never read, floods over the connection limit,
//! and a probe storm against a hung main loop. Through all of it the
//! endpoint keeps giving correct verdicts within its deadlines, and its open
//! files and memory come back down afterwards.
//!
//! The scenarios run one after another in a single test, because they
//! measure this whole process (fd count, RSS) and must not overlap. The
//! endpoint runs with the defaults (`Builder::new()`), as users run it.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use health_proto::{Header, Request};
use health_server::{HealthServer, Landmark, State};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Waits (bounded) until the fd count is back to `baseline` (+2 slack for
/// sockets the runtime may still be closing).
fn fds_settle(baseline: usize, what: &str) {
    let t = Instant::now();
    while open_fds() > baseline + 2 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what}: {} fds open, baseline {baseline}",
            open_fds()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A check that must be answered correctly and quickly while abuse goes on.
fn healthy_check(addr: SocketAddr, what: &str) {
    let t = Instant::now();
    let r = check(addr);
    assert_eq!(r.state, State::Ok, "{what}: {r:?}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{what}: check took {:?}",
        t.elapsed()
    );
}

struct Setup {
    server: HealthServer,
    hung: Arc<AtomicBool>,
    asks: Arc<AtomicUsize>,
}

fn setup() -> Setup {
    let (asks_rx, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let hung = Arc::new(AtomicBool::new(false));
    let asks = Arc::new(AtomicUsize::new(0));
    let (h, a) = (Arc::clone(&hung), Arc::clone(&asks));
    std::thread::spawn(move || {
        while let Some(ask) = asks_rx.recv_blocking() {
            a.fetch_add(1, Ordering::SeqCst);
            while h.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            ask.answer(Landmark::ok("y".repeat(20_000)).with_field("n", 1));
        }
    });
    Setup { server, hung, asks }
}

fn idle_connections(s: &Setup, n: usize) {
    let addr = s.server.local_addr();
    let before = open_fds();
    // Silent: the kernel keeps them (deferred accept); the server holds no
    // descriptor for any of them, only this process's client ends exist.
    let silent: Vec<TcpStream> = (0..n).map(|_| connect(addr)).collect();
    healthy_check(addr, "during a silent flood");
    assert!(
        open_fds() <= before + n + 2,
        "the server took descriptors for silent connections: {} open, {before} before, {n} clients",
        open_fds()
    );
    // Idle after half a header: accepted, then closed, evicted for
    // newcomers (at most 64 from one address are held) or by the read
    // timeout.
    let idle: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut c = connect(addr);
            c.write_all(b"LM").unwrap();
            c
        })
        .collect();
    healthy_check(addr, "during an idle flood");
    for mut c in idle {
        assert!(is_closed(&mut c), "an idle connection was left open");
    }
    drop(silent);
}

fn garbage_and_broken_frames(s: &Setup) {
    let addr = s.server.local_addr();
    let check_bytes = Request::Check(Default::default()).to_frame(1).to_bytes();
    let mut absurd = bytes::BytesMut::new();
    Header {
        kind: 1,
        request_id: 1,
        payload_len: u32::MAX,
    }
    .write(&mut absurd);
    let mut version = check_bytes.clone();
    version[4] = 9;
    let inputs: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02garbage\xff\xfe".to_vec(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        check_bytes[..7].to_vec(), // half a header
        check_bytes[..15].to_vec(),
        absurd.to_vec(),
        version,
        vec![b'L'; 100_000],
    ];
    let conns: Vec<TcpStream> = (0..700)
        .map(|i| {
            let mut c = connect(addr);
            let _ = c.write_all(&inputs[i % inputs.len()]);
            c
        })
        .collect();
    healthy_check(addr, "during garbage");
    for mut c in conns {
        // Each is answered with an error frame and closed, or closed by the
        // read timeout (half frames): never left hanging.
        assert!(is_closed(&mut c), "a broken connection was left open");
    }
}

/// A connection whose receive buffer is pinned small. Linux autotunes
/// receive buffers up to `tcp_rmem`'s maximum (32 MiB here), which would let
/// a reader that never reads swallow tens of megabytes without the server
/// ever blocking.
fn connect_small_rcvbuf(addr: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    sock.connect_timeout(&addr.into(), IO_TIMEOUT).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn slow_readers(s: &Setup, baseline_fds: usize) {
    let addr = s.server.local_addr();
    let req = Request::Check(Default::default()).to_frame(1).to_bytes();
    // 2000 replies of ~20 KB each (40 MB) per reader, into a pinned 64 KiB
    // receive buffer, and the readers never read.
    let readers: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = connect_small_rcvbuf(addr);
            c.set_write_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            for _ in 0..2000 {
                if c.write_all(&req).is_err() {
                    break;
                }
            }
            c
        })
        .collect();
    healthy_check(addr, "during slow readers");
    // The server's ends must close (write timeout) while the clients still
    // hold theirs and read nothing: watched on the server's side, in this
    // process, as the fd count falling to the clients' sockets alone.
    let t = Instant::now();
    while open_fds() > baseline_fds + readers.len() + 2 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the server kept {} connections to readers that never read",
            open_fds() - baseline_fds - readers.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(readers);
}

fn storm_while_hung(s: &Setup) {
    let addr = s.server.local_addr();
    s.hung.store(true, Ordering::SeqCst);
    let before = s.asks.load(Ordering::SeqCst);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| {
                        let t = Instant::now();
                        let r = check(addr);
                        (r.state, r.landmark.detail, t.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for (state, detail, took) in t.join().unwrap() {
            assert_eq!(state, State::Fail);
            assert_eq!(detail, "main thread did not answer within 500ms");
            assert!(took < Duration::from_millis(900), "{took:?}");
        }
    }
    assert_eq!(
        s.asks.load(Ordering::SeqCst) - before,
        1,
        "a hung main thread sees one ask"
    );
    s.hung.store(false, Ordering::SeqCst);
    healthy_check(addr, "after the hang");
}

#[test]
fn abuse_keeps_verdicts_right_and_resources_bounded() {
    // Room for the test's own 3000 client sockets on machines with a low
    // `ulimit -n`.
    let _ = rlimit::increase_nofile_limit(16_384);
    let s = setup();
    let addr = s.server.local_addr();
    healthy_check(addr, "warm-up");
    let fds = open_fds();
    let rss_start = rss_kib();

    idle_connections(&s, 3000);
    fds_settle(fds, "after 3000 idle connections");
    let rss_after_first = rss_kib();
    // 3000 connections came and went: what stays is bounded (each idle
    // connection starts with a 256-byte buffer, not tokio-util's 8 KiB).
    assert!(
        rss_after_first <= rss_start + 32 * 1024,
        "RSS grew from {rss_start} KiB to {rss_after_first} KiB over 3000 idle connections"
    );
    // The same flood again must not grow memory further: nothing leaks per
    // connection.
    idle_connections(&s, 3000);
    fds_settle(fds, "after the second idle flood");
    let rss_after_second = rss_kib();
    assert!(
        rss_after_second <= rss_after_first + 8 * 1024,
        "RSS grew from {rss_after_first} KiB to {rss_after_second} KiB over a repeated flood"
    );

    garbage_and_broken_frames(&s);
    fds_settle(fds, "after garbage");
    slow_readers(&s, fds);
    fds_settle(fds, "after slow readers");
    storm_while_hung(&s);
    fds_settle(fds, "after the storm");

    let rss_end = rss_kib();
    assert!(
        rss_end <= rss_after_first + 16 * 1024,
        "RSS grew from {rss_after_first} KiB to {rss_end} KiB across the abuse"
    );
    s.server.shutdown_blocking();
}
