//! The tracing events operators rely on: failed, slow and refused checks,
//! connection thresholds crossed and cleared. In their own test binary
//! because they need a global subscriber (the server runs on its own
//! threads); each test looks for its own messages in the shared capture.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
#[cfg(feature = "connections")]
use health_server::{connections, TcpState};
use health_server::{Landmark, State};

/// A `MakeWriter` collecting tracing output for assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// The global capture, installed by the first test to ask.
fn logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
    .clone()
}

fn text(logs: &Captured) -> String {
    String::from_utf8(logs.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn failed_slow_and_refused_checks_emit_tracing_events() {
    let logs = logs();

    let (asks, rx) = health_server::channel();
    let server = loopback()
        .answer_deadline(Duration::from_millis(100))
        .slow_answer(Duration::from_millis(20))
        .allow("127.0.0.1/32".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let addr = server.local_addr();
    // Hung: several checks, one "did not answer" event for the one ask.
    for _ in 0..3 {
        assert_eq!(check(addr).state, State::Fail);
    }
    // Late answer: a slow-check event.
    let ask = asks.try_recv().expect("the pending ask");
    ask.answer(Landmark::ok("late"));
    // Refused by the allow-list.
    let mut refused = connect_from("127.0.0.2", addr);
    std::io::Write::write_all(&mut refused, b"LM").unwrap();
    assert!(is_closed(&mut refused));
    server.shutdown_blocking();
    let text = text(&logs);
    assert_eq!(
        text.matches("main thread did not answer within the deadline")
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("slow check: main thread answered late"),
        "{text}"
    );
    assert!(
        text.contains("refused health check: source not in the allow-list"),
        "{text}"
    );
}

#[test]
#[cfg(feature = "connections")]
fn crossing_and_clearing_a_connection_threshold_emit_tracing_events() {
    let logs = logs();
    let svc = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = svc.local_addr().unwrap();
    let (server, _main) = ok_server(
        loopback().connections(
            connections::Config::new()
                .port(to.port(), "svc")
                .period(Duration::from_millis(20))
                .state_over(TcpState::Established, 1),
        ),
    );
    let crossed = "connection threshold crossed";
    let cleared = "connection thresholds no longer crossed";
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !text(&logs).contains(needle) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let pairs: Vec<_> = (0..2)
        .map(|_| {
            let c = connect_from("127.0.0.7", to);
            (c, svc.accept().unwrap().0)
        })
        .collect();
    wait_for(crossed);
    drop(pairs);
    wait_for(cleared);
    server.shutdown_blocking();
    let text = text(&logs);
    let line = text
        .lines()
        .find(|l| l.contains(crossed))
        .unwrap_or_else(|| panic!("no crossing event in {text}"));
    assert!(line.contains("2 ESTABLISHED (over 1)"), "{line}");
    assert_eq!(
        text.matches(crossed).count(),
        1,
        "once per crossing: {text}"
    );
    assert!(text.contains(cleared), "{text}");
}

#[test]
fn evictions_are_summarised_not_logged_one_by_one() {
    let logs = logs();
    let (server, _main) = ok_server(loopback());
    let addr = server.local_addr();
    // 300 connections from one address that send half a header and stop:
    // past the per-source limit of 64, each newcomer evicts the oldest.
    let mut hoarders: Vec<_> = (0..300)
        .map(|_| {
            let mut c = connect(addr);
            std::io::Write::write_all(&mut c, b"LM").unwrap();
            c
        })
        .collect();
    assert_eq!(check(addr).state, State::Ok);
    let t = std::time::Instant::now();
    while closed(&mut hoarders) < 300 - 64 {
        assert!(t.elapsed() < Duration::from_secs(5), "hoarders kept");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The summary is written every 10 s and at shutdown.
    server.shutdown_blocking();
    drop(hoarders);
    let text = text(&logs);
    let summaries: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("health endpoint full"))
        .collect();
    assert_eq!(summaries.len(), 1, "{text}");
    let evicted: u64 = summaries[0]
        .split("evicted=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("an evicted count");
    assert!(evicted >= 300 - 64, "{}", summaries[0]);
    assert!(
        summaries[0].contains("most_evicted=127.0.0.1"),
        "{}",
        summaries[0]
    );
}
