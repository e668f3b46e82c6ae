//! `health-probe watch` as operators run it, for what it decides: the real
//! binary against real loopback peers, read through its `--json` event
//! stream: outcome classes, fall and rise, actions, pauses, reloads.
//! (`watch_cli.rs`: how it is run; `watch_database.rs`: its history;
//! `watch_trust.rs`: storms, flapping, signals, big configs.)

use std::time::{Duration, Instant};

use health_server::{Builder, Landmark};
use serde_json::Value;

mod common;
use common::watcher::{is, report, scratch, write_config, Accepting, Watcher};
use common::{free_port, unanswered_listener};

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
    // Both OK targets were checked more than fall times without an alarm
    // (the landmark one streams: its first frame, then a heartbeat a
    // second later, the shortest the endpoint sends).
    for _ in 0..2 {
        w.wait_for("a frame of healthy", Duration::from_secs(5), |v| {
            v["event"] == "check" && v["target"] == "healthy"
        });
    }
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
on_raise = 'echo "begin $HEALTH_EVENT $HEALTH_TARGET $HEALTH_CLASS $HEALTH_REASON $HEALTH_ADDR id=$HEALTH_EVENT_ID" >> {log:?}; sleep 1; echo end >> {log:?}'
on_clear = 'echo "begin $HEALTH_EVENT $HEALTH_TARGET $HEALTH_CLASS" >> {log:?}; sleep 1; echo end >> {log:?}; exit 7'
"#,
        ),
    );
    let mut w = Watcher::start(&config);
    let raise = w.wait_for("raise", Duration::from_secs(10), is("raise", "svc"));
    // Flap the port: events come faster than the 1 s actions finish, so
    // a waiting clear action is superseded by the next raise's.
    for _ in 0..2 {
        let up = Accepting::on(&port, b"");
        w.wait_for("clear", Duration::from_secs(10), is("clear", "svc"));
        drop(up);
        w.wait_for("raise", Duration::from_secs(10), is("raise", "svc"));
    }
    // Then up for good: the clear action runs after the running one.
    let _up = Accepting::on(&port, b"");
    let last = w.wait_for("clear", Duration::from_secs(10), is("clear", "svc"));
    // Wait for this last clear's own action: under load an earlier clear's
    // action may have run to its end too, and must not end the wait early.
    let last_id = last["id"].clone();
    w.wait_for("last clear action", Duration::from_secs(15), |v| {
        v["event"] == "action" && v["event_id"] == last_id
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
    w.drain();
    assert_eq!(w.count("check", "down"), checks);
    assert_eq!(w.stop(), 0);
}
