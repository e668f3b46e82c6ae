//! Landmark targets followed by `watch` streams (`stream`, on by default)
//! against real endpoints with their defaults: a hang raised within the
//! answer deadline and `fall` periods, not an interval later; the
//! recovery cleared as fast; one frame per interval while nothing
//! changes; a lost stream a failed check, reopened; an endpoint that does
//! not stream polled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use health_server::{Builder, HealthServer, Landmark};

mod common;
use common::watcher::{is, scratch, write_config, Watcher};

/// A real endpoint (defaults, on loopback) whose main thread stops
/// answering while `hung` is set.
fn hangable() -> (HealthServer, Arc<AtomicBool>) {
    let (asks, rx) = health_server::channel();
    let server = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let hung = Arc::new(AtomicBool::new(false));
    let h = Arc::clone(&hung);
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            while h.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            ask.answer(Landmark::ok("serving"));
        }
    });
    (server, hung)
}

#[test]
fn a_hang_is_raised_within_the_deadline_and_fall_periods_not_an_interval_later() {
    let dir = scratch("stream-hang");
    let (server, hung) = hangable();
    // Polled every 10 s, a hang would wait up to 10 s for its first
    // failed check and 10 s more for the second (fall = 2).
    let config = write_config(
        &dir,
        &format!(
            r#"
[[target]]
name = "svc"
kind = "landmark"
addr = "{}"
interval = "10s"
"#,
            server.local_addr()
        ),
    );
    let mut w = Watcher::start(&config);
    let first = w.wait_for("first frame", Duration::from_secs(10), |v| {
        v["event"] == "check" && v["target"] == "svc"
    });
    assert_eq!(first["class"], "OK", "{first}");
    std::thread::sleep(Duration::from_millis(300));
    let hang = Instant::now();
    hung.store(true, Ordering::SeqCst);
    let raise = w.wait_for("raise", Duration::from_secs(5), is("raise", "svc"));
    let took = hang.elapsed();
    assert_eq!(raise["count"], 2, "fall = 2: {raise}");
    assert!(
        raise["detail"]
            .as_str()
            .unwrap()
            .contains("main thread did not answer within 500ms"),
        "{raise}"
    );
    // The 500 ms deadline, the 50 ms period, one more period for fall,
    // and room for a loaded machine: far from the 10 s interval.
    assert!(took < Duration::from_millis(2000), "{took:?}");
    let recovered = Instant::now();
    hung.store(false, Ordering::SeqCst);
    w.wait_for("clear", Duration::from_secs(5), is("clear", "svc"));
    assert!(
        recovered.elapsed() < Duration::from_millis(1500),
        "{:?}",
        recovered.elapsed()
    );
    // Quiet, the stream costs one frame per interval: over 2 s with a 10 s
    // interval, no more observation arrives.
    w.drain();
    let before = w.seen.iter().filter(|v| v["event"] == "check").count();
    std::thread::sleep(Duration::from_secs(2));
    w.drain();
    let after = w.seen.iter().filter(|v| v["event"] == "check").count();
    assert_eq!(after, before, "observations without a change");
    assert_eq!(w.stop(), 0);
    server.shutdown_blocking();
}

#[test]
fn a_lost_stream_is_a_failed_check_and_is_reopened() {
    let dir = scratch("stream-lost");
    let (server, _hung) = hangable();
    let addr = server.local_addr();
    let config = write_config(
        &dir,
        &format!(
            r#"
[[target]]
name = "svc"
kind = "landmark"
addr = "{addr}"
interval = "300ms"
"#
        ),
    );
    let mut w = Watcher::start(&config);
    w.wait_for("first frame", Duration::from_secs(10), |v| {
        v["event"] == "check" && v["target"] == "svc" && v["class"] == "OK"
    });
    server.shutdown_blocking();
    let raise = w.wait_for("raise", Duration::from_secs(5), is("raise", "svc"));
    assert_eq!(raise["class"], "NG", "{raise}");
    // The endpoint back on its port: the stream is opened again.
    let (asks, rx) = health_server::channel();
    let back = Builder::new().bind(addr).spawn(rx).unwrap();
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(Landmark::ok("back"));
        }
    });
    let clear = w.wait_for("clear", Duration::from_secs(5), is("clear", "svc"));
    assert_eq!(clear["detail"], "ok: back", "{clear}");
    assert_eq!(w.stop(), 0);
    back.shutdown_blocking();
}

#[test]
fn an_endpoint_that_does_not_stream_is_polled() {
    let dir = scratch("stream-old");
    let up = Arc::new(AtomicBool::new(true));
    let addr = test_support::older::endpoint(Arc::clone(&up));
    let config = write_config(
        &dir,
        &format!(
            r#"
[[target]]
name = "old"
kind = "landmark"
addr = "{addr}"
interval = "200ms"
"#
        ),
    );
    let mut w = Watcher::start(&config);
    let warning = w.wait_for("warning", Duration::from_secs(10), |v| {
        v["event"] == "warning"
    });
    assert!(
        warning["message"].as_str().unwrap().contains(
            "does not stream (it does not answer watch with a stream); checked every 200ms instead"
        ),
        "{warning}"
    );
    // Polled: a check every interval.
    for _ in 0..3 {
        let c = w.wait_for("check", Duration::from_secs(5), |v| {
            v["event"] == "check" && v["target"] == "old"
        });
        assert_eq!(c["class"], "OK", "{c}");
    }
    up.store(false, Ordering::SeqCst);
    let raise = w.wait_for("raise", Duration::from_secs(5), is("raise", "old"));
    assert_eq!(raise["detail"], "fail: old server down", "{raise}");
    assert_eq!(w.stop(), 0);
}

#[test]
fn targets_past_the_endpoints_stream_limit_are_polled_not_failed() {
    let dir = scratch("stream-busy");
    let (server, _hung) = hangable();
    // Ten targets on one endpoint, from one source: its default limit is
    // 8 streams per source.
    let targets: String = (0..10)
        .map(|i| {
            format!(
                "[[target]]\nname = \"svc{i}\"\nkind = \"landmark\"\naddr = \"{}\"\ninterval = \"300ms\"\n",
                server.local_addr()
            )
        })
        .collect();
    let config = write_config(&dir, &targets);
    let mut w = Watcher::start(&config);
    for _ in 0..2 {
        let refused = w.wait_for("a refusal", Duration::from_secs(10), |v| {
            v["event"] == "warning"
                && v["message"].as_str().is_some_and(|m| {
                    m.contains("refused a stream (too many watch streams from this source (limit 8)); checked every 300ms for 1m before asking again")
                })
        });
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .starts_with("target svc"),
            "{refused}"
        );
    }
    // Every target is checked, and none fails.
    std::thread::sleep(Duration::from_secs(2));
    w.drain();
    for i in 0..10 {
        let name = format!("svc{i}");
        let checks: Vec<_> = w
            .seen
            .iter()
            .filter(|v| v["event"] == "check" && v["target"] == name.as_str())
            .collect();
        assert!(!checks.is_empty(), "{name} never checked");
        assert!(
            checks.iter().all(|c| c["class"] == "OK"),
            "{name}: {checks:?}"
        );
    }
    assert_eq!(w.seen.iter().filter(|v| v["event"] == "raise").count(), 0);
    assert_eq!(w.stop(), 0);
    server.shutdown_blocking();
}

#[test]
fn streams_past_the_open_file_limit_are_polled_said_once() {
    let dir = scratch("stream-budget");
    let (server, _hung) = hangable();
    let targets: String = (0..8)
        .map(|i| {
            format!(
                "[[target]]\nname = \"svc{i}\"\nkind = \"landmark\"\naddr = \"{}\"\ninterval = \"300ms\"\n",
                server.local_addr()
            )
        })
        .collect();
    let config = write_config(&dir, &format!("max_in_flight = 16\n{targets}"));
    // 1045 descriptors, less 16 checks and the 1024 kept back: 5 streams.
    let mut command = std::process::Command::new("sh");
    command.args([
        "-c",
        "ulimit -n 1045 && exec \"$0\" \"$@\"",
        common::PROBE,
        "watch",
        config.to_str().unwrap(),
        "--log-checks",
    ]);
    let mut w = Watcher::spawn(command);
    let told = w.wait_for("the budget said", Duration::from_secs(10), |v| {
        v["event"] == "warning"
    });
    assert!(
        told["message"]
            .as_str()
            .unwrap()
            .starts_with("5 streams open, as many as this watcher's open-file limit allows"),
        "{told}"
    );
    std::thread::sleep(Duration::from_secs(2));
    w.drain();
    let warnings = w.seen.iter().filter(|v| v["event"] == "warning").count();
    assert_eq!(warnings, 1, "said once");
    for i in 0..8 {
        let name = format!("svc{i}");
        let checks: Vec<_> = (w.seen.iter())
            .filter(|v| v["event"] == "check" && v["target"] == name.as_str())
            .collect();
        assert!(!checks.is_empty(), "{name} never checked");
        assert!(checks.iter().all(|c| c["class"] == "OK"), "{checks:?}");
    }
    assert_eq!(w.stop(), 0);
    server.shutdown_blocking();
}
