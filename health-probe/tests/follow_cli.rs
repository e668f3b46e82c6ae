//! `health-probe ADDR --watch`: against a real health server with its
//! defaults it prints the first landmark and each change the endpoint
//! pushes (a hang within the period plus the answer deadline), and with
//! `--until-fail` exits 1 at the first unexpected state; a lost stream is
//! a FAIL line; an endpoint that does not stream (one that answers
//! `watch` with `unknown_type`, as servers before it do) is polled.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use health_server::{HealthServer, Landmark, State};

/// A real endpoint whose main thread answers `state` (ok unless told) and
/// stops answering while `hung` is set.
struct Service {
    server: HealthServer,
    hung: Arc<AtomicBool>,
    degraded: Arc<AtomicBool>,
}

fn service() -> Service {
    let (asks, rx) = health_server::channel();
    let server = health_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let hung = Arc::new(AtomicBool::new(false));
    let degraded = Arc::new(AtomicBool::new(false));
    let (h, d) = (Arc::clone(&hung), Arc::clone(&degraded));
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            while h.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            ask.answer(if d.load(Ordering::SeqCst) {
                Landmark::degraded("replica lag")
            } else {
                Landmark::ok("serving")
            });
        }
    });
    Service {
        server,
        hung,
        degraded,
    }
}

/// The probe running with `args`, its stdout lines arriving on a channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(args: &[&str]) -> Follower {
        let mut child = Command::new(PROBE)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run health-probe");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    fn line(&self, within: Duration) -> String {
        self.lines
            .recv_timeout(within)
            .expect("a line from health-probe --watch")
    }

    /// Waits for the exit, at most `within`: its code and stderr.
    fn exit(mut self, within: Duration) -> (i32, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (status.code().unwrap_or(-1), err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("health-probe --watch did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn until_fail_exits_at_a_hang_within_the_period_and_the_deadline() {
    let svc = service();
    let addr = svc.server.local_addr().to_string();
    let f = Follower::start(&[&addr, "--watch", "--until-fail", "--period", "100ms"]);
    let first = f.line(Duration::from_secs(5));
    assert!(
        first.contains(&format!(
            " OK {addr} state=ok push=first detail=\"serving\""
        )),
        "{first}"
    );
    // A time stamp first: RFC 3339, UTC, milliseconds.
    assert!(
        first.as_bytes()[4] == b'-' && first[..24].ends_with('Z'),
        "{first}"
    );
    let hang = Instant::now();
    svc.hung.store(true, Ordering::SeqCst);
    let fail = f.line(Duration::from_secs(5));
    let took = hang.elapsed();
    assert!(
        fail.contains(&format!(
            " FAIL {addr} state=fail push=change detail=\"main thread did not answer within 500ms\""
        )),
        "{fail}"
    );
    assert!(took < Duration::from_millis(1500), "{took:?}");
    let (code, err) = f.exit(Duration::from_secs(2));
    assert_eq!(code, 1, "{err}");
    svc.hung.store(false, Ordering::SeqCst);
    svc.server.shutdown_blocking();
}

#[test]
fn changes_are_printed_and_expected_ones_go_on_and_a_lost_stream_is_a_fail_line() {
    let svc = service();
    let addr = svc.server.local_addr().to_string();
    let f = Follower::start(&[
        &addr,
        "--watch",
        "--expect",
        "ok,degraded,drain",
        "--json",
        "--heartbeat",
        "1s",
    ]);
    let json = |line: String| -> serde_json::Value { serde_json::from_str(&line).unwrap() };
    let first = json(f.line(Duration::from_secs(5)));
    assert_eq!(
        (first["push"].as_str(), first["state"].as_str()),
        (Some("first"), Some("ok"))
    );
    assert_eq!(first["verdict"], "ok");
    svc.degraded.store(true, Ordering::SeqCst);
    // The default period is 1 s: the change comes within it.
    let degraded = json(f.line(Duration::from_secs(5)));
    assert_eq!(degraded["push"], "change");
    assert_eq!(
        (degraded["state"].as_str(), degraded["detail"].as_str()),
        (Some("degraded"), Some("replica lag"))
    );
    assert_eq!(degraded["verdict"], "ok", "degraded is expected here");
    svc.server.drain();
    let drain = json(f.line(Duration::from_secs(5)));
    assert_eq!(
        (drain["state"].as_str(), drain["detail"].as_str()),
        (Some("drain"), Some("draining: replica lag"))
    );
    // Heartbeats (every 1 s) print nothing: no change.
    assert!(f.lines.recv_timeout(Duration::from_millis(2500)).is_err());
    // The endpoint gone: a FAIL line with the failure class, and the
    // probe keeps trying.
    svc.server.shutdown_blocking();
    let lost = json(f.line(Duration::from_secs(5)));
    assert_eq!(lost["verdict"], "fail");
    assert!(
        lost["class"].is_string() && lost["error"].is_string(),
        "{lost}"
    );
    // Re-opened after the period: refused now, a new reason, one line;
    // then nothing while it stays so.
    let refused = json(f.line(Duration::from_secs(5)));
    assert_eq!(refused["class"], "refused", "{refused}");
    assert!(
        f.lines.recv_timeout(Duration::from_millis(2500)).is_err(),
        "one line per change"
    );
}

#[test]
fn an_endpoint_that_does_not_stream_is_polled() {
    let up = Arc::new(AtomicBool::new(true));
    let addr = test_support::older::endpoint(Arc::clone(&up));
    let f = Follower::start(&[&addr, "--watch", "--until-fail", "--period", "100ms"]);
    let first = f.line(Duration::from_secs(5));
    assert!(
        first.contains(" OK ") && first.contains("push=poll detail=\"old server\""),
        "{first}"
    );
    up.store(false, Ordering::SeqCst);
    let down = f.line(Duration::from_secs(5));
    assert!(
        down.contains(" FAIL ") && down.contains("state=fail push=poll"),
        "{down}"
    );
    let (code, err) = f.exit(Duration::from_secs(2));
    assert_eq!(code, 1);
    assert!(
        err.contains("does not stream; polling every 100ms"),
        "{err}"
    );
}

#[test]
fn watch_flags_need_watch_and_have_help() {
    let (out, _) = run_probe(&["127.0.0.1:9", "--until-fail"]);
    assert_eq!(out.status.code(), Some(1));
    let (out, _) = run_probe(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--watch", "--until-fail", "--period", "--heartbeat"] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let _ = State::Ok;
}
