//! `health-probe watch` and `health-probe report` as operators run them:
//! the real binary against real loopback peers (and ping inside a network
//! namespace the test creates), read through its `--json` event stream and
//! its SQLite history.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use health_server::{Builder, Landmark};
use serde_json::Value;

mod common;
use common::{code, free_port, stderr, stdout, unanswered_listener, PROBE};

/// A scratch folder for one test's config and database.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hp-watch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `targets` (TOML) after a `database` line into `dir/watch.toml`.
fn write_config(dir: &Path, targets: &str) -> PathBuf {
    let path = dir.join("watch.toml");
    let db = dir.join("watch.db");
    std::fs::write(
        &path,
        format!("database = {:?}\n{targets}", db.display().to_string()),
    )
    .unwrap();
    path
}

/// A running watcher with `--json --log-checks`, its events read on a
/// thread.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<Value>,
    /// Indices in `seen` that `wait_for` returned.
    returned: std::collections::HashSet<usize>,
}

impl Watcher {
    fn start(config: &Path) -> Watcher {
        Watcher::start_with(config, &[])
    }

    fn start_with(config: &Path, extra: &[&str]) -> Watcher {
        let mut child = Command::new(PROBE)
            .arg("watch")
            .arg(config)
            .args(["--json", "--log-checks"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
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
        Watcher {
            child,
            lines,
            seen: Vec::new(),
            returned: Default::default(),
        }
    }

    /// The first event not returned before for which `pred` holds, from
    /// those already read or those still to come; panics with everything
    /// seen after `within`.
    fn wait_for(&mut self, what: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) =
            (0..self.seen.len()).find(|i| !self.returned.contains(i) && pred(&self.seen[*i]))
        {
            self.returned.insert(i);
            return self.seen[i].clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                    self.seen.push(v.clone());
                    if pred(&v) {
                        self.returned.insert(self.seen.len() - 1);
                        return v;
                    }
                }
                Err(_) => panic!(
                    "no {what} within {within:?}; events seen:\n{}",
                    self.seen
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }

    /// Events of `event` kind for `target` seen so far.
    fn count(&self, event: &str, target: &str) -> usize {
        self.seen
            .iter()
            .filter(|v| v["event"] == event && v["target"] == target)
            .count()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then the exit code (within 5 s).
    fn stop(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "watch did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(event: &'static str, target: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == event && v["target"] == target
}

/// A port that accepts (and closes) every connection, until dropped.
struct Accepting {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl Accepting {
    /// Listens on `addr` ("127.0.0.1:0" for any port), answering each
    /// connection with `banner`.
    fn on(addr: &str, banner: &'static [u8]) -> Accepting {
        let l = TcpListener::bind(addr).unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(banner);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Accepting { addr, stop }
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The thread drops the listener within one poll.
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn report(args: &[&str]) -> std::process::Output {
    Command::new(PROBE)
        .arg("report")
        .args(args)
        .output()
        .expect("run health-probe report")
}

#[test]
fn each_outcome_class_raises_with_its_class_and_ok_never_does() {
    let dir = scratch("classes");
    let ok = Accepting::on("127.0.0.1:0", b"220 ready\r\n");
    let wrong = Accepting::on("127.0.0.1:0", b"554 go away\r\n");
    let (silent, _sock, _fill) = unanswered_listener();
    let (publisher, rx) = health_server::publisher(Landmark::drain("deploying"));
    let server = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let (healthy_pub, rx) = health_server::publisher(Landmark::ok("fine"));
    let healthy = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let config = write_config(
        &dir,
        &format!(
            r#"
[defaults]
interval = "200ms"
timeout = "150ms"
pause_after_errors = 0

[[target]]
name = "ok"
kind = "tcp"
addr = "{ok}"
expect_banner = "220 "

[[target]]
name = "refused"
kind = "tcp"
addr = "{refused}"

[[target]]
name = "wrong-answer"
kind = "tcp"
addr = "{wrong}"
expect_regex = "^220 "

[[target]]
name = "silent"
kind = "tcp"
addr = "{silent}"

[[target]]
name = "dns"
kind = "tcp"
addr = "no-such-host.invalid:80"

[[target]]
name = "draining"
kind = "landmark"
addr = "{drain}"

[[target]]
name = "healthy"
kind = "landmark"
addr = "{healthy}"
expect = ["ok", "degraded"]
"#,
            ok = ok.addr,
            refused = free_port(),
            wrong = wrong.addr,
            drain = server.local_addr(),
            healthy = healthy.local_addr(),
        ),
    );
    let mut w = Watcher::start(&config);
    let want = [
        ("refused", "NG", "refused"),
        ("wrong-answer", "NG", "wrong-answer"),
        ("silent", "WR", "timeout"),
        ("dns", "ERR", "dns"),
        ("draining", "NG", "unexpected-state"),
    ];
    for (target, class, reason) in want {
        let raise = w.wait_for(
            &format!("raise of {target}"),
            Duration::from_secs(10),
            |v| v["event"] == "raise" && v["target"] == target,
        );
        assert_eq!(raise["class"], class, "{raise}");
        assert_eq!(raise["reason"], reason, "{raise}");
        assert_eq!(raise["count"], 2, "default fall is 2: {raise}");
        assert!(raise["id"].as_i64().unwrap() > 0, "recorded: {raise}");
    }
    // Both OK targets were checked more than fall times without an alarm.
    w.wait_for("a third ok check", Duration::from_secs(5), |_| true);
    for target in ["ok", "healthy"] {
        let checks: Vec<&Value> = w
            .seen
            .iter()
            .filter(|v| v["event"] == "check" && v["target"] == target)
            .collect();
        assert!(checks.len() >= 2, "{target}: {checks:?}");
        assert!(
            checks
                .iter()
                .all(|c| c["class"] == "OK" && c["failed"] == false),
            "{checks:?}"
        );
        assert_eq!(w.count("raise", target), 0);
    }
    let draining = w
        .seen
        .iter()
        .find(|v| v["event"] == "raise" && v["target"] == "draining")
        .unwrap();
    assert_eq!(draining["detail"], "drain: deploying");
    drop((publisher, healthy_pub));
    assert_eq!(w.stop(), 0);
}

#[test]
fn fall_raises_rise_clears_and_crit_counts_as_failure() {
    let dir = scratch("thresholds");
    let port = free_port();
    let config = write_config(
        &dir,
        &format!(
            r#"
[[target]]
name = "svc"
kind = "tcp"
addr = "{port}"
interval = "150ms"
timeout = "100ms"
fall = 3
rise = 4
"#
        ),
    );
    let mut w = Watcher::start(&config);
    let raise = w.wait_for("raise", Duration::from_secs(10), is("raise", "svc"));
    assert_eq!(raise["count"], 3);
    let failures_before = w
        .seen
        .iter()
        .filter(|v| v["event"] == "check" && v["target"] == "svc")
        .count();
    assert_eq!(
        failures_before, 3,
        "raised on the third failure, not before"
    );
    let up = Accepting::on(&port, b"");
    let clear = w.wait_for("clear", Duration::from_secs(10), is("clear", "svc"));
    assert_eq!(
        (clear["count"].clone(), clear["class"].clone()),
        (4.into(), "OK".into())
    );
    let oks = w
        .seen
        .iter()
        .skip_while(|v| v["event"] != "raise")
        .filter(|v| v["event"] == "check" && v["class"] == "OK")
        .count();
    assert_eq!(oks, 4, "cleared on the fourth success in a row");
    drop(up);
    assert_eq!(w.stop(), 0);

    // A port that answers, but slower than crit, fails like a refusal.
    let dir = scratch("crit");
    let slow = Accepting::on("127.0.0.1:0", b"");
    let config = write_config(
        &dir,
        &format!(
            r#"
[[target]]
name = "slow"
kind = "tcp"
addr = "{}"
interval = "100ms"
crit = "1ns"
"#,
            slow.addr
        ),
    );
    let mut w = Watcher::start(&config);
    let raise = w.wait_for(
        "raise over crit",
        Duration::from_secs(10),
        is("raise", "slow"),
    );
    assert_eq!(raise["class"], "OK", "{raise}");
    let check = w.seen.iter().find(|v| v["event"] == "check").unwrap();
    assert_eq!(
        (check["slow"].clone(), check["failed"].clone()),
        ("crit".into(), true.into())
    );
    assert_eq!(w.stop(), 0);
}

#[test]
fn actions_see_the_event_run_one_at_a_time_and_time_out() {
    let dir = scratch("actions");
    let log = dir.join("actions.log");
    let port = free_port();
    let config = write_config(
        &dir,
        &format!(
            r#"
[[target]]
name = "svc"
kind = "tcp"
addr = "{port}"
interval = "100ms"
timeout = "80ms"
fall = 1
rise = 1
on_raise = 'echo "begin $HEALTH_EVENT $HEALTH_TARGET $HEALTH_CLASS $HEALTH_REASON $HEALTH_ADDR id=$HEALTH_EVENT_ID" >> {log:?}; sleep 0.4; echo end >> {log:?}'
on_clear = 'echo "begin $HEALTH_EVENT $HEALTH_TARGET $HEALTH_CLASS" >> {log:?}; sleep 0.4; echo end >> {log:?}; exit 7'
"#,
        ),
    );
    let mut w = Watcher::start(&config);
    let raise = w.wait_for("raise", Duration::from_secs(10), is("raise", "svc"));
    // Flap the port: events come faster than the 0.4 s actions finish, so
    // a waiting clear action is superseded by the next raise's.
    for _ in 0..2 {
        let up = Accepting::on(&port, b"");
        w.wait_for("clear", Duration::from_secs(10), is("clear", "svc"));
        drop(up);
        w.wait_for("raise", Duration::from_secs(10), is("raise", "svc"));
    }
    // Then up for good: the clear action runs after the running one.
    let _up = Accepting::on(&port, b"");
    w.wait_for("clear", Duration::from_secs(10), is("clear", "svc"));
    w.wait_for("clear action", Duration::from_secs(10), |v| {
        v["event"] == "action" && v["for"] == "clear" && v["outcome"] != "superseded"
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Never two at once: every begin is followed by its end.
    for pair in lines.chunks(2) {
        assert!(
            pair[0].starts_with("begin ") && pair.get(1) == Some(&"end"),
            "{lines:?}"
        );
    }
    let first = format!(
        "begin raise svc NG refused {port} id={}",
        raise["id"].as_i64().unwrap()
    );
    assert_eq!(lines[0], first);
    assert!(lines.contains(&"begin clear svc OK"), "{lines:?}");
    // 6 events, fewer runs: waiting actions were superseded by newer ones.
    let outcomes: Vec<String> = w
        .seen
        .iter()
        .filter(|v| v["event"] == "action")
        .map(|v| v["outcome"].as_str().unwrap().to_string())
        .collect();
    assert!(outcomes.iter().any(|o| o == "superseded"), "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| *o != "superseded").count(),
        lines.len() / 2,
        "{outcomes:?}"
    );
    let failed_clear = w
        .seen
        .iter()
        .find(|v| v["event"] == "action" && v["for"] == "clear" && v["outcome"] == "failed")
        .expect("a clear action ran and exited 7");
    assert_eq!(failed_clear["exit_code"], 7);
    assert_eq!(w.stop(), 0);

    // Timeouts: the action is killed, its whole process group with it.
    let dir = scratch("action-timeout");
    let marker = dir.join("survivor");
    let port = free_port();
    let config = write_config(
        &dir,
        &format!(
            r#"
[[target]]
name = "svc"
kind = "tcp"
addr = "{port}"
interval = "100ms"
fall = 1
action_timeout = "300ms"
on_raise = '(sleep 1; touch {marker:?}) & echo started; sleep 5'
"#,
        ),
    );
    let mut w = Watcher::start(&config);
    let t = Instant::now();
    let action = w.wait_for(
        "timed-out action",
        Duration::from_secs(10),
        is("action", "svc"),
    );
    assert_eq!(action["outcome"], "timeout", "{action}");
    assert_eq!(action["output"], "started");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        !marker.exists(),
        "the action's background child outlived its timeout"
    );
    assert_eq!(w.stop(), 0);
    let o = report(&[
        "--database",
        dir.join("watch.db").to_str().unwrap(),
        "--format",
        "json",
    ]);
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows[0]["action_outcome"], "timeout", "{rows}");
}

#[test]
fn errors_in_a_row_pause_and_sighup_resumes() {
    let dir = scratch("pause");
    let config = write_config(
        &dir,
        r#"
[[target]]
name = "nowhere"
kind = "tcp"
addr = "no-such-host.invalid:80"
interval = "100ms"
pause_after_errors = 3

[[target]]
name = "refused"
kind = "tcp"
addr = "127.0.0.1:1"
interval = "100ms"
pause_after_errors = 1
"#,
    );
    let mut w = Watcher::start(&config);
    let pause = w.wait_for("pause", Duration::from_secs(10), is("pause", "nowhere"));
    assert_eq!(
        (pause["class"].clone(), pause["reason"].clone()),
        ("ERR".into(), "dns".into())
    );
    assert_eq!(pause["count"], 3);
    // Paused: no more checks of it, while the other target goes on (NG
    // never pauses).
    let checks = w.count("check", "nowhere");
    assert_eq!(checks, 3);
    for _ in 0..5 {
        w.wait_for(
            "check of refused",
            Duration::from_secs(5),
            is("check", "refused"),
        );
    }
    assert_eq!(w.count("check", "nowhere"), 3);
    assert_eq!(w.count("pause", "refused"), 0);
    w.signal(libc::SIGHUP);
    let reload = w.wait_for("reload", Duration::from_secs(5), |v| v["event"] == "reload");
    assert_eq!(
        (reload["kept"].clone(), reload["resumed"].clone()),
        (2.into(), 1.into())
    );
    w.wait_for("resume", Duration::from_secs(5), is("resume", "nowhere"));
    w.wait_for(
        "pause again",
        Duration::from_secs(10),
        is("pause", "nowhere"),
    );
    assert_eq!(w.count("check", "nowhere"), 6);
    // The alarm was raised once, not again after the resume.
    assert_eq!(w.count("raise", "nowhere"), 1);
    assert_eq!(w.stop(), 0);
}

#[test]
fn sighup_reload_keeps_unchanged_targets_and_rejects_a_bad_config() {
    let dir = scratch("reload");
    let up = Accepting::on("127.0.0.1:0", b"");
    let down = free_port();
    let base = format!(
        r#"
[defaults]
interval = "100ms"
fall = 1

[[target]]
name = "down"
kind = "tcp"
addr = "{down}"

[[target]]
name = "up"
kind = "tcp"
addr = "{}"
"#,
        up.addr
    );
    let config = write_config(&dir, &base);
    let mut w = Watcher::start(&config);
    w.wait_for("raise", Duration::from_secs(10), is("raise", "down"));

    // A broken config changes nothing.
    write_config(&dir, &format!("{base}\n[[target]]\nname = \"x\"\n"));
    w.signal(libc::SIGHUP);
    let failed = w.wait_for("reload-failed", Duration::from_secs(5), |v| {
        v["event"] == "reload-failed"
    });
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("watch.toml:17:1:") && error.contains("missing field `kind`"),
        "{error}"
    );

    // Moved in the file, a default spelled out: kept. "up" changed
    // (another interval), "new" added.
    write_config(
        &dir,
        &format!(
            r#"
[defaults]
interval = "100ms"
fall = 1
rise = 2

[[target]]
name = "new"
kind = "tcp"
addr = "{down}"

[[target]]
name = "up"
kind = "tcp"
addr = "{}"
interval = "150ms"

[[target]]
name = "down"
kind = "tcp"
addr = "{down}"
"#,
            up.addr
        ),
    );
    w.signal(libc::SIGHUP);
    let reload = w.wait_for("reload", Duration::from_secs(5), |v| v["event"] == "reload");
    assert_eq!(
        [
            &reload["kept"],
            &reload["added"],
            &reload["changed"],
            &reload["removed"]
        ],
        [1, 1, 1, 0],
        "{reload}"
    );
    w.wait_for("raise of new", Duration::from_secs(5), is("raise", "new"));
    for _ in 0..5 {
        w.wait_for("check of down", Duration::from_secs(5), is("check", "down"));
    }
    // Kept its raised alarm: not raised a second time.
    assert_eq!(w.count("raise", "down"), 1);

    // Removed: recorded, and no more checks.
    write_config(
        &dir,
        &format!(
            "[[target]]\nname = \"up\"\nkind = \"tcp\"\naddr = \"{}\"\n",
            up.addr
        ),
    );
    w.signal(libc::SIGHUP);
    w.wait_for("removed", Duration::from_secs(5), is("removed", "down"));
    let reload = w.wait_for("reload", Duration::from_secs(5), |v| v["event"] == "reload");
    assert_eq!(reload["removed"], 2, "{reload}");
    let checks = w.count("check", "down");
    std::thread::sleep(Duration::from_millis(400));
    while let Ok(line) = w.lines.try_recv() {
        w.seen.push(serde_json::from_str(&line).unwrap());
    }
    assert_eq!(w.count("check", "down"), checks);
    assert_eq!(w.stop(), 0);
}

#[test]
fn history_survives_a_restart_and_report_exports_it() {
    let dir = scratch("restart");
    let port = free_port();
    let config = write_config(
        &dir,
        &format!(
            r#"
[[target]]
name = "svc"
kind = "tcp"
addr = "{port}"
interval = "100ms"
on_raise = "true"

[[target]]
name = "other"
kind = "tcp"
addr = "127.0.0.1:1"
interval = "100ms"
"#
        ),
    );
    let mut w = Watcher::start(&config);
    w.wait_for("raise", Duration::from_secs(10), is("raise", "svc"));
    w.wait_for("raise", Duration::from_secs(10), is("raise", "other"));
    w.wait_for("action", Duration::from_secs(10), is("action", "svc"));
    assert_eq!(w.stop(), 0);

    // A new run remembers the open alarm: no second raise, no second
    // action; the recovery clears it.
    let mut w = Watcher::start(&config);
    for _ in 0..4 {
        w.wait_for("check", Duration::from_secs(5), is("check", "svc"));
    }
    assert_eq!(w.count("raise", "svc"), 0);
    let up = Accepting::on(&port, b"");
    let clear = w.wait_for("clear", Duration::from_secs(10), is("clear", "svc"));
    assert_eq!(clear["class"], "OK");
    drop(up);
    assert_eq!(w.stop(), 0);

    let db = dir.join("watch.db");
    let db = db.to_str().unwrap();
    let o = report(&["--database", db, "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let events: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["target"].as_str().unwrap(), r["event"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events.iter().filter(|e| **e == ("svc", "raise")).count(),
        1,
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&("svc", "clear")), "{events:?}");
    let clear = rows.last().unwrap();
    assert!(clear["alarm_secs"].as_f64().unwrap() > 0.2, "{clear}");
    let raise = rows
        .iter()
        .find(|r| r["event"] == "raise" && r["target"] == "svc")
        .unwrap();
    assert_eq!(
        (
            raise["action_command"].clone(),
            raise["action_outcome"].clone(),
            raise["action_exit_code"].clone()
        ),
        ("true".into(), "ok".into(), 0.into())
    );

    // --target, CSV, table; --since leaves older events out.
    let o = report(&["--database", db, "--target", "svc", "--format", "csv"]);
    let text = stdout(&o);
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("id,time,target,kind,addr,event,class,reason,detail"));
    let rest: Vec<&str> = lines.collect();
    assert_eq!(rest.len(), 2, "{text}");
    assert!(rest.iter().all(|l| l.contains(",svc,tcp,")), "{text}");
    let o = report(&["--database", db]);
    let text = stdout(&o);
    assert!(
        text.starts_with("TIME") && text.contains("svc") && text.contains("other"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    let o = report(&["--database", db, "--since", "1s"]);
    assert_eq!(stdout(&o).trim(), "no events in this period");
    // Through the config, as systemd's environment would.
    let o = report(&["--config", config.to_str().unwrap(), "--format", "json"]);
    assert_eq!(
        serde_json::from_slice::<Vec<Value>>(&o.stdout)
            .unwrap()
            .len(),
        rows.len()
    );
}

#[test]
fn a_target_gone_from_the_config_closes_its_open_alarm_at_start() {
    let dir = scratch("gone");
    let config = write_config(
        &dir,
        "[[target]]\nname = \"old\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"100ms\"\n",
    );
    let mut w = Watcher::start(&config);
    w.wait_for("raise", Duration::from_secs(10), is("raise", "old"));
    assert_eq!(w.stop(), 0);
    let up = Accepting::on("127.0.0.1:0", b"");
    write_config(
        &dir,
        &format!(
            "[[target]]\nname = \"new\"\nkind = \"tcp\"\naddr = \"{}\"\n",
            up.addr
        ),
    );
    let mut w = Watcher::start(&config);
    let removed = w.wait_for("removed", Duration::from_secs(5), is("removed", "old"));
    assert!(removed["detail"]
        .as_str()
        .unwrap()
        .contains("not in the config"));
    assert_eq!(w.stop(), 0);
}

#[test]
fn config_errors_are_line_numbered_and_check_config_validates() {
    let dir = scratch("config");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1\"\nrise = 0\n",
    )
    .unwrap();
    let o = Command::new(PROBE)
        .arg("watch")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    let p = path.display();
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            format!("health-probe: {p}:4:8: addr \"127.0.0.1\" is not IP:PORT, [IPv6]:PORT or HOST:PORT"),
            format!("health-probe: {p}:5:8: rise must be between 1 and 1000"),
        ],
        "{err}"
    );
    std::fs::write(
        &path,
        "[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let o = Command::new(PROBE)
        .args(["watch", "--check-config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("valid, 1 targets"), "{}", stdout(&o));
    let o = Command::new(PROBE)
        .args(["watch", "/nonexistent/watch.toml"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
    let o = report(&["--database", "/nonexistent/watch.db"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn plain_log_lines_when_not_a_terminal() {
    let dir = scratch("plain");
    let config = write_config(
        &dir,
        "[[target]]\nname = \"svc\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"100ms\"\n",
    );
    let mut child = Command::new(PROBE)
        .args(["watch", config.to_str().unwrap(), "--stats", "200ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(900));
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with(&format!(
            "start watching 1 targets, at most 256 checks at once, history in {}",
            dir.join("watch.db").display()
        )),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains(
            " raise svc (tcp 127.0.0.1:1) NG refused after 2 failures in a row: connection refused"
        )),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains(" stats targets=1 checks=")),
        "{text}"
    );
    assert!(lines.last().unwrap().ends_with("stop: SIGINT"), "{text}");
}

#[test]
fn live_table_on_a_terminal() {
    let dir = scratch("live");
    let up = Accepting::on("127.0.0.1:0", b"");
    let config = write_config(
        &dir,
        &format!(
            "[[target]]\nname = \"down-svc\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"100ms\"\n\
             [[target]]\nname = \"up-svc\"\nkind = \"tcp\"\naddr = \"{}\"\ninterval = \"100ms\"\n",
            up.addr
        ),
    );
    // util-linux `script` gives the watcher a pseudo-terminal.
    let o = Command::new("script")
        .args([
            "-qefc",
            &format!("timeout -s INT 2.5 {PROBE} watch {}", config.display()),
            "/dev/null",
        ])
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .env("LINES", "30")
        .output();
    let Ok(o) = o else {
        assert!(std::env::var_os("CI").is_none(), "script(1) is missing");
        eprintln!("SKIPPED: no script(1)");
        return;
    };
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(
        screen.contains("\x1b[?1049h"),
        "alternate screen: {screen:?}"
    );
    assert!(screen.contains("TARGET"), "{screen:?}");
    let alarm_row = screen
        .lines()
        .find(|l| l.contains("down-svc") && l.contains("ALARM"));
    assert!(alarm_row.is_some(), "{screen:?}");
    assert!(alarm_row.unwrap().contains("NG refused"), "{screen:?}");
    assert!(screen.contains("up-svc"), "{screen:?}");
    assert!(
        screen.contains("raise down-svc"),
        "recent events under the table: {screen:?}"
    );
    // Back on the normal screen, the last counters stay.
    assert!(screen.contains("\x1b[?1049l"), "{screen:?}");
    assert!(screen.contains("stats targets=2"), "{screen:?}");
}

#[test]
fn ping_targets_in_a_network_namespace() {
    let dir = scratch("ping");
    let config = write_config(
        &dir,
        r#"
[defaults]
interval = "300ms"

[[target]]
name = "lo"
kind = "ping"
host = "127.0.0.1"
count = 2
ping_interval = "20ms"
timeout = "250ms"

[[target]]
name = "unrouted"
kind = "ping"
host = "10.99.0.1"
timeout = "250ms"
pause_after_errors = 2
"#,
    );
    let script = format!(
        "ip link set lo up; timeout -s TERM 2.5 {PROBE} watch {} --json --log-checks || true",
        config.display()
    );
    let Some(o) = common::in_new_netns("sh", &["-ec", &script]) else {
        return;
    };
    let events: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of = |target: &str, event: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|v| v["target"] == target && v["event"] == event)
            .collect()
    };
    let lo = of("lo", "check");
    assert!(lo.len() >= 3, "{events:?}\n{}", stderr(&o));
    assert!(
        lo.iter()
            .all(|c| c["class"] == "OK" && c["rtt_ms"].as_f64().is_some()),
        "{lo:?}"
    );
    assert!(of("lo", "raise").is_empty());
    let raise = of("unrouted", "raise");
    assert_eq!(raise.len(), 1, "{events:?}");
    assert_eq!(
        (raise[0]["class"].clone(), raise[0]["reason"].clone()),
        ("ERR".into(), "no-route".into())
    );
    assert_eq!(of("unrouted", "pause").len(), 1, "{events:?}");
    assert_eq!(
        of("unrouted", "check").len(),
        2,
        "paused after 2 errors: {events:?}"
    );
}

#[test]
fn health_probe_watch_is_health_probe_watch() {
    // `health-probe watch` execs the watcher binary: same pid, same exit.
    let o = Command::new(PROBE)
        .args(["watch", "--help"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("--check-config"));
    let o = Command::new(PROBE)
        .args(["report", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&o).contains("--format <FORMAT>"), "{}", stdout(&o));
}

#[test]
fn contrib_example_config_and_systemd_unit_are_valid() {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib");
    let o = Command::new(PROBE)
        .args(["watch", "--check-config"])
        .arg(contrib.join("watch.toml"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("valid, 5 targets"), "{}", stdout(&o));

    // The unit as installed, pointing at this build: systemd's own checker
    // must find nothing (unknown keys, missing programs, bad syntax).
    let unit = std::fs::read_to_string(contrib.join("health-probe-watch.service")).unwrap();
    let dir = scratch("unit");
    let path = dir.join("health-probe-watch.service");
    std::fs::write(&path, unit.replace("/usr/bin/health-probe", PROBE)).unwrap();
    let o = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "systemd-analyze: {e}");
            eprintln!("SKIPPED: no systemd-analyze: {e}");
            return;
        }
    };
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "systemd-analyze verify complained");
}
