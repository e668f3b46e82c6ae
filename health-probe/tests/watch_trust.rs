//! The watcher under the conditions that used to lose or double an alarm:
//! reload storms over flapping targets, two watchers on one database,
//! signals during start-up, configs at the documented maximum, and an
//! operator who may only read the history.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{watch_config, PROBE};

/// The watcher with `--json`, its stdout lines collected on a thread.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(config: &Path) -> Watcher {
        let mut child = Command::new(PROBE)
            .arg("watch")
            .arg(config)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start health-probe watch");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits until the process holds or handles SIGHUP and SIGTERM (from
    /// `/proc/PID/status`): before that it is still the loader's, in the
    /// microseconds before any code of ours runs.
    fn await_signals_held(&self) {
        let bits = (1u64 << (libc::SIGHUP - 1)) | (1u64 << (libc::SIGTERM - 1));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
                .unwrap_or_default();
            let mask = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                    .unwrap_or(0)
            };
            if (mask("SigBlk:") | mask("SigCgt:")) & bits == bits {
                return;
            }
            std::thread::yield_now();
        }
        panic!("the watcher never held SIGHUP and SIGTERM");
    }

    /// Waits for a line for which `pred` holds, collecting every line.
    fn wait_for(&self, seen: &mut Vec<Value>, within: Duration, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("not seen within {within:?}; seen: {seen:?}"));
            let v: Value = serde_json::from_str(&line).unwrap();
            let hit = pred(&v);
            seen.push(v);
            if hit {
                return;
            }
        }
    }

    /// Everything printed until it exits; `(exit code, how long it took
    /// from now, stderr)`. Panics after `within`.
    fn wait_exit(mut self, seen: &mut Vec<Value>, within: Duration) -> (i32, Duration, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < within,
                "watcher still running after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = start.elapsed();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            seen.push(serde_json::from_str(&line).unwrap());
        }
        let mut err = String::new();
        use std::io::Read;
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
        let code = status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            panic!("killed by signal {:?}; stderr: {err}", status.signal())
        });
        (code, took, err)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port whose banner flips between `UP` and `DOWN` every `period`.
struct Flapping {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl Flapping {
    fn new(period: Duration) -> Flapping {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let start = Instant::now();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let up = (start.elapsed().as_millis() / period.as_millis()) % 2 == 0;
                        let _ = s.write_all(if up { b"UP\r\n" } else { b"DOWN\r\n" });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Flapping { addr, stop }
    }
}

impl Drop for Flapping {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn report_json(db: &Path) -> Vec<Value> {
    let out = Command::new(PROBE)
        .args(["report", "--since", "1d", "--format", "json", "--database"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `n` tcp targets on the `ports`, round robin, with `settings` each.
fn targets(n: usize, ports: &[String], settings: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[target]]\nname = \"t{i}\"\nkind = \"tcp\"\naddr = \"{}\"\n{settings}\n",
                ports[i % ports.len()]
            )
        })
        .collect()
}

#[test]
fn a_sighup_storm_over_flapping_targets_loses_no_event() {
    let servers: Vec<Flapping> = (0..10)
        .map(|_| Flapping::new(Duration::from_millis(200)))
        .collect();
    let ports: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let settings = |timeout: &str| {
        format!(
            "expect_banner = \"UP\"\ninterval = \"100ms\"\ntimeout = \"{timeout}\"\nfall = 1\nrise = 1\non_raise = \"true\"\non_clear = \"true\"\n"
        )
    };
    let (dir, config) = watch_config("trust-storm", &targets(100, &ports, &settings("80ms")));
    let text = std::fs::read_to_string(&config).unwrap();
    let w = Watcher::start(&config);
    let mut seen = Vec::new();
    w.wait_for(&mut seen, Duration::from_secs(10), |v| {
        v["event"] == "raise"
    });
    // 100 reloads 90 ms apart, each changing every target (its timeout).
    for i in 0..100 {
        let timeout = if i % 2 == 0 { "70ms" } else { "80ms" };
        std::fs::write(
            &config,
            text.replace("timeout = \"80ms\"", &format!("timeout = \"{timeout}\"")),
        )
        .unwrap();
        w.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(90));
    }
    w.signal(libc::SIGTERM);
    let (code, _, err) = w.wait_exit(&mut seen, Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    let reloads = seen.iter().filter(|v| v["event"] == "reload").count();
    assert!(reloads >= 50, "only {reloads} reloads: {err}");

    let history = report_json(&dir.join("watch.db"));
    let printed: std::collections::HashSet<i64> = seen
        .iter()
        .filter(|v| v["event"] == "raise" || v["event"] == "clear")
        .filter_map(|v| v["id"].as_i64())
        .collect();
    let acted: std::collections::HashSet<i64> = seen
        .iter()
        .filter(|v| v["event"] == "action")
        .filter_map(|v| v["event_id"].as_i64())
        .collect();
    let alarms: Vec<&Value> = history
        .iter()
        .filter(|r| r["event"] == "raise" || r["event"] == "clear")
        .collect();
    assert!(
        alarms.len() > 300,
        "only {} raise/clear events",
        alarms.len()
    );
    for r in &alarms {
        let id = r["id"].as_i64().unwrap();
        assert!(
            printed.contains(&id),
            "event {id} recorded, never printed: {r}"
        );
        assert!(
            r["action_outcome"].is_string(),
            "event {id} has no action outcome: {r}"
        );
        assert!(
            acted.contains(&id),
            "event {id}'s action was never told: {r}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_watcher_on_the_same_database_refuses_naming_the_first() {
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = up.local_addr().unwrap().to_string();
    let (dir, config) = watch_config(
        "trust-two",
        &format!(
            "[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"{addr}\"\ninterval = \"200ms\"\n"
        ),
    );
    let first = Watcher::start(&config);
    let mut seen = Vec::new();
    first.wait_for(&mut seen, Duration::from_secs(10), |v| {
        v["event"] == "start"
    });
    let second = Command::new(PROBE)
        .arg("watch")
        .arg(&config)
        .arg("--plain")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in use by another watcher")
            && err.contains(&format!("pid {}", first.child.id())),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // The first goes on; once it is gone, the database is free again.
    first.signal(libc::SIGTERM);
    let (code, _, _) = first.wait_exit(&mut seen, Duration::from_secs(10));
    assert_eq!(code, 0);
    let third = Watcher::start(&config);
    third.wait_for(&mut seen, Duration::from_secs(10), |v| {
        v["event"] == "start"
    });
    third.signal(libc::SIGTERM);
    assert_eq!(third.wait_exit(&mut seen, Duration::from_secs(10)).0, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_reads_a_running_watchers_database_without_write_access() {
    let (dir, config) = watch_config(
        "trust-ro",
        "[[target]]\nname = \"down\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"100ms\"\nfall = 1\non_raise = \"true\"\n",
    );
    let db = dir.join("watch.db");
    let w = Watcher::start(&config);
    let mut seen = Vec::new();
    w.wait_for(&mut seen, Duration::from_secs(10), |v| {
        v["event"] == "action"
    });
    let root = unsafe { libc::geteuid() } == 0;
    let mut report = Command::new(PROBE);
    report
        .args(["report", "--format", "json", "--database"])
        .arg(&db);
    if root {
        // As an operator who may read the database and its folder, and
        // write neither.
        use std::os::unix::process::CommandExt;
        report.uid(65534).gid(65534);
    }
    let out = report.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows
        .iter()
        .any(|r| r["event"] == "raise" && r["action_outcome"] == "ok"));
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait_exit(&mut seen, Duration::from_secs(10)).0, 0);
    // Once the watcher is gone (its WAL files with it), too.
    let out = report.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn signals_during_start_up_are_served_not_fatal() {
    // A config big enough that start-up takes a moment.
    let (dir, config) = watch_config(
        "trust-startup",
        &targets(20_000, &["127.0.0.1:1".to_string()], "interval = \"1h\""),
    );
    // SIGHUP from the first instant the watcher's own code runs: queued,
    // served as a reload once watching.
    let w = Watcher::start(&config);
    w.await_signals_held();
    w.signal(libc::SIGHUP);
    let mut seen = Vec::new();
    w.wait_for(&mut seen, Duration::from_secs(60), |v| {
        v["event"] == "reload"
    });
    w.signal(libc::SIGTERM);
    let (code, _, err) = w.wait_exit(&mut seen, Duration::from_secs(10));
    assert_eq!(code, 0, "{err}");
    // SIGTERM at once: a clean exit, said on stderr.
    for delay in [0, 20, 100] {
        let w = Watcher::start(&config);
        w.await_signals_held();
        std::thread::sleep(Duration::from_millis(delay));
        w.signal(libc::SIGTERM);
        let mut seen = Vec::new();
        let (code, took, err) = w.wait_exit(&mut seen, Duration::from_secs(10));
        assert_eq!(code, 0, "after {delay} ms: {err}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_documented_maximum_of_targets_checks_starts_and_stops() {
    let (dir, config) = watch_config(
        "trust-max",
        &targets(100_000, &["127.0.0.1:1".to_string()], "interval = \"1h\""),
    );
    let out = Command::new(PROBE)
        .args(["watch", "--check-config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid, 100000 targets"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w = Watcher::start(&config);
    let mut seen = Vec::new();
    w.wait_for(&mut seen, Duration::from_secs(60), |v| {
        v["event"] == "start"
    });
    // A reload that changes every target, and a SIGTERM in the middle of
    // it: the stop does not wait for the reload.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"1h\"", "\"2h\"")).unwrap();
    w.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(50));
    w.signal(libc::SIGTERM);
    let (code, took, err) = w.wait_exit(&mut seen, Duration::from_secs(30));
    assert_eq!(code, 0, "{err}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
