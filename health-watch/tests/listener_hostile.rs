//! The watcher's HTTP listener under hostile peers, with its defaults (a
//! config with `http_listen` and one target, nothing tuned): a client
//! that holds a thousand idle and slow connections and 64 probes of a
//! target that never answers, all from the scraper's own address, cannot
//! keep a scrape out or wait it past a second; and the probes it hangs
//! are answered within `http_probe_max_timeout`, whatever scrape timeout
//! the client announced. Real sockets on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

mod common;
use common::free_port;
use common::watcher::{scratch, write_config, Watcher};

/// One scrape of `/metrics` on a new connection: the status code and how
/// long the whole reply took.
fn scrape(listen: SocketAddr) -> (Option<u16>, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok());
    (code, t.elapsed())
}

#[test]
fn idle_slow_and_hung_clients_do_not_delay_scrapes() {
    let _ = rlimit::increase_nofile_limit(8192);
    // A landmark service that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let dir = scratch("listener-hostile");
    let listen: SocketAddr = free_port().parse().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "http_listen = \"{listen}\"\n\n[[target]]\nname = \"t\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n"
        ),
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    let (code, took) = scrape(listen);
    assert_eq!(code, Some(200));
    assert!(took < Duration::from_secs(1), "{took:?}");

    // 63 probes of the silent service, each asking for a minute: with the
    // scrapes below, one source's 64 busy connections at most (a 64th
    // probe would race a scrape for the last place, and one of them would
    // rightly get the listener's 503).
    let hung_at = Instant::now();
    let hung: Vec<std::thread::JoinHandle<(Option<u16>, Duration)>> = (0..63)
        .map(|_| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let mut s = TcpStream::connect(listen).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
                write!(
                    s,
                    "GET /probe?module=landmark&target={silent_addr} HTTP/1.1\r\nHost: x\r\nX-Prometheus-Scrape-Timeout-Seconds: 60\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut text = String::new();
                let _ = s.read_to_string(&mut text);
                (text.split(' ').nth(1).and_then(|c| c.parse().ok()), t.elapsed())
            })
        })
        .collect();
    // 600 connections that say nothing, and 400 that start a request and
    // never finish it: all from 127.0.0.1, as the scrapes below.
    let mut held = Vec::new();
    for i in 0..1000 {
        let mut s = TcpStream::connect(listen).unwrap();
        if i % 5 < 2 {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
        }
        held.push(s);
    }
    // And they keep trickling.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(listen).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\n");
        slow.push(s);
    }

    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let (code, took) = scrape(listen);
        assert_eq!(code, Some(200), "scrape {i} after {took:?}");
        worst = worst.max(took);
        for s in &mut slow {
            let _ = s.write_all(b"X");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(worst < Duration::from_secs(1), "slowest scrape {worst:?}");

    // The hung probes end within the default cap (10 s), not the minute
    // their client asked for.
    for h in hung {
        let (code, took) = h.join().unwrap();
        assert_eq!(code, Some(200));
        assert!(took < Duration::from_secs(15), "a probe took {took:?}");
    }
    assert!(hung_at.elapsed() < Duration::from_secs(20));
    // A head larger than the listener buffers is refused, not stored.
    let mut big = TcpStream::connect(listen).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "GET /metrics HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let _ = big.write_all(head.as_bytes());
    let mut text = String::new();
    let _ = big.read_to_string(&mut text);
    assert!(
        !text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
    // The pressure is said, once per period, not per connection.
    drop(held);
    drop(slow);
    let (code, _) = scrape(listen);
    assert_eq!(code, Some(200));
    w.drain();
    let warnings: Vec<_> = w
        .seen
        .iter()
        .filter(|v| {
            v["event"] == "warning"
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("http_listen full"))
        })
        .collect();
    assert!(warnings.len() <= 3, "{warnings:?}");
    assert_eq!(w.stop(), 0);
    drop(silent);
}
