//! The watcher's history database: kept across restarts and exported by
//! `report`, and under trouble: a second watcher on it, an operator who
//! may only read it, deleted while the watcher runs, a disk that fills up.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::watcher::{is, report, report_json, scratch, write_config, Accepting, Watcher};
use common::{code, free_port, stderr, stdout, watch_config, PROBE};

/// A watcher of one closed port, once its alarm's action has run: the
/// scratch folder, the config, the database, the watcher.
fn alarm_acted_on(
    tag: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
    Watcher,
) {
    let (dir, config) = watch_config(
        tag,
        "[[target]]\nname = \"down\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"100ms\"\nfall = 1\non_raise = \"true\"\n",
    );
    let db = dir.join("watch.db");
    let mut w = Watcher::quiet(&config);
    w.wait_for("event", Duration::from_secs(10), |v| v["event"] == "action");
    (dir, config, db, w)
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
    let mut first = Watcher::quiet(&config);
    first.wait_for("event", Duration::from_secs(10), |v| v["event"] == "start");
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
    let (code, _, _) = first.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0);
    let mut third = Watcher::quiet(&config);
    third.wait_for("event", Duration::from_secs(10), |v| v["event"] == "start");
    third.signal(libc::SIGTERM);
    assert_eq!(third.wait_exit(Duration::from_secs(10)).0, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_reads_a_running_watchers_database_without_write_access() {
    let (dir, _, db, mut w) = alarm_acted_on("trust-ro");
    let root = unsafe { libc::geteuid() } == 0;
    // As an operator who may read the database and its folder, and write
    // neither. The binary is copied beside the database: the checkout it
    // was built in (a `mktemp -d` folder, say) may be closed to others.
    let program = if root {
        let copy = dir.join("health-probe-watch");
        std::fs::copy(PROBE, &copy).unwrap();
        copy
    } else {
        PROBE.into()
    };
    let mut report = Command::new(&program);
    report
        .args(["report", "--format", "json", "--database"])
        .arg(&db);
    if root {
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
    assert_eq!(w.wait_exit(Duration::from_secs(10)).0, 0);
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
fn a_deleted_database_is_noticed_and_recreated_with_its_open_alarms() {
    let (dir, config, db, mut w) = alarm_acted_on("db-deleted");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    // Within a minute (every 10 s, in fact): an error, and a new database
    // that knows the open alarm.
    w.wait_for("event", Duration::from_secs(30), |v| {
        v["event"] == "error" && v["message"].as_str().unwrap_or("").contains("was deleted")
    });
    w.wait_for("event", Duration::from_secs(5), |v| v["event"] == "carried");
    w.signal(libc::SIGTERM);
    let (code, _, err) = w.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("health-probe: error: the history database"),
        "{err}"
    );
    let history = report_json(&db);
    assert_eq!(history[0]["event"], "carried", "{history:#?}");
    // A restart finds the alarm open: no second raise, no second action.
    let mut w = Watcher::quiet(&config);
    w.wait_for("event", Duration::from_secs(10), |v| v["event"] == "start");
    std::thread::sleep(Duration::from_millis(1500));
    w.signal(libc::SIGTERM);
    let (code, _, _) = w.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0);
    assert!(
        !w.seen.iter().any(|v| v["event"] == "raise"),
        "{:#?}",
        w.seen
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `health-probe watch CONFIG` in a mount namespace of its own, with a
/// 256 KiB tmpfs on `db_dir` (where its database is): its actions (same
/// namespace) can fill it and free it. Needs root.
fn on_a_small_disk(db_dir: &std::path::Path, config: &std::path::Path) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "sh", "-c"])
        .arg("mount -t tmpfs -o size=256k tmpfs \"$0\" && exec \"$@\"")
        .arg(db_dir)
        .arg(PROBE)
        .arg("watch")
        .arg(config);
    command
}

#[test]
fn a_full_disk_is_an_error_the_watch_goes_on_and_recovery_is_told() {
    // A 256 KiB tmpfs for the database, in a mount namespace of the
    // watcher's own; its actions (same namespace) fill it and free it.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("SKIPPED: a mount namespace needs root");
        return;
    }
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let free_addr = free.local_addr().unwrap().to_string();
    drop(free);
    let (dir, config) = watch_config("db-full", "");
    let db_dir = dir.join("db");
    std::fs::create_dir_all(&db_dir).unwrap();
    let fill = db_dir.join("fill").display().to_string();
    std::fs::write(
        &config,
        format!(
            "database = \"{db}/watch.db\"\n\
             [[target]]\nname = \"filler\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"100ms\"\nfall = 1\n\
             on_raise = \"dd if=/dev/zero of={fill} bs=4k count=1000 2>/dev/null; true\"\n\
             [[target]]\nname = \"freer\"\nkind = \"tcp\"\naddr = \"{free_addr}\"\ninterval = \"100ms\"\nfall = 1\nrise = 1\n\
             on_clear = \"rm -f {fill}\"\n",
            db = db_dir.display()
        ),
    )
    .unwrap();
    let mut w = Watcher::spawn(on_a_small_disk(&db_dir, &config));
    w.wait_for("event", Duration::from_secs(30), |v| {
        v["event"] == "error"
            && v["message"]
                .as_str()
                .unwrap_or("")
                .contains("cannot write the history")
    });
    // The watch goes on: the freer's recovery is seen, and its action
    // frees the disk; writing resumes, and that is told.
    let _listening = TcpListener::bind(&free_addr).unwrap();
    w.wait_for("event", Duration::from_secs(10), |v| {
        v["event"] == "clear" && v["target"] == "freer"
    });
    w.wait_for("event", Duration::from_secs(30), |v| {
        v["event"] == "warning"
            && v["message"]
                .as_str()
                .unwrap_or("")
                .contains("can be written again")
    });
    w.signal(libc::SIGTERM);
    let (code, _, err) = w.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0, "{err}");
    // Told once, not once per failed write.
    let errors = w.seen.iter().filter(|v| v["event"] == "error").count();
    assert_eq!(errors, 1, "{:#?}", w.seen);
    let _ = std::fs::remove_dir_all(&dir);
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

/// While the disk is full a flapping target's raises and clears are
/// printed and kept; when space returns they are written, in order, and
/// that is said once (issue 26, point 8).
#[test]
fn a_full_disk_loses_no_event_and_says_once_when_writing_works_again() {
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("SKIPPED: a mount namespace needs root");
        return;
    }
    let flappy = common::watcher::Flapping::new(Duration::from_millis(300));
    let free_addr = free_port();
    let listen = free_port();
    let (dir, config) = watch_config("db-full-kept", "");
    let db_dir = dir.join("db");
    std::fs::create_dir_all(&db_dir).unwrap();
    let fill = db_dir.join("fill").display().to_string();
    std::fs::write(
        &config,
        format!(
            "database = \"{db}/watch.db\"\nhttp_listen = \"{listen}\"\n\
             [[target]]\nname = \"filler\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"100ms\"\nfall = 1\n\
             on_raise = \"dd if=/dev/zero of={fill} bs=4k count=1000 2>/dev/null; true\"\n\
             [[target]]\nname = \"flappy\"\nkind = \"tcp\"\naddr = \"{flap}\"\nexpect_banner = \"UP\"\ninterval = \"100ms\"\nfall = 1\nrise = 1\nflap_changes = 0\non_raise = \"true\"\n\
             [[target]]\nname = \"freer\"\nkind = \"tcp\"\naddr = \"{free_addr}\"\ninterval = \"100ms\"\nfall = 1\nrise = 1\n\
             on_clear = \"rm -f {fill}\"\n",
            db = db_dir.display(),
            flap = flappy.addr,
        ),
    )
    .unwrap();
    let mut w = Watcher::spawn(on_a_small_disk(&db_dir, &config));
    w.wait_for("error", Duration::from_secs(30), |v| {
        v["event"] == "error"
            && v["message"]
                .as_str()
                .unwrap_or("")
                .contains("cannot write the history")
    });
    // Full for a while: the flapping target goes on raising and clearing.
    std::thread::sleep(Duration::from_secs(4));
    w.drain();
    let while_full = w.count("raise", "flappy") + w.count("clear", "flappy");
    assert!(while_full >= 7, "{while_full} events while full");
    // Space returns (the freer's action); then the flapping stops.
    let _listening = TcpListener::bind(&free_addr).unwrap();
    let back = w.wait_for("warning", Duration::from_secs(30), |v| {
        v["event"] == "warning"
            && v["message"]
                .as_str()
                .unwrap_or("")
                .contains("can be written again")
    });
    assert!(
        back["message"]
            .as_str()
            .unwrap()
            .contains("events kept meanwhile are written"),
        "{back}"
    );
    flappy
        .down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    w.drain();
    let printed: Vec<(String, String)> = w
        .seen
        .iter()
        .filter(|v| v["target"] == "flappy" && (v["event"] == "raise" || v["event"] == "clear"))
        .map(|v| (v["event"].to_string(), v["time"].to_string()))
        .collect();
    // The history, read over the watcher's own listener (the database is
    // on its namespace's tmpfs).
    let (status, body) = test_support::prometheus::get(
        listen.parse().unwrap(),
        "/report.json?since=1h&target=flappy",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
    let recorded: Vec<(String, String)> = rows
        .iter()
        .filter(|v| v["event"] == "raise" || v["event"] == "clear")
        .map(|v| (v["event"].to_string(), v["time"].to_string()))
        .collect();
    assert_eq!(
        recorded, printed,
        "every event printed is recorded, in order"
    );
    // Each raise's action, run while its event waited, is linked to it.
    for raise in rows.iter().filter(|v| v["event"] == "raise") {
        assert!(raise["action_outcome"].is_string(), "{raise}");
    }
    // Ids follow the order of the events.
    let ids: Vec<i64> = rows.iter().map(|v| v["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|p| p[0] < p[1]), "{ids:?}");
    w.signal(libc::SIGTERM);
    let (code, _, err) = w.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0, "{err}");
    // Each said once: not alternating while the disk was full.
    let said = |event: &str, text: &str| {
        w.seen
            .iter()
            .filter(|v| v["event"] == event && v["message"].as_str().unwrap_or("").contains(text))
            .count()
    };
    assert_eq!(
        said("error", "cannot write the history"),
        1,
        "{:#?}",
        w.seen
    );
    assert_eq!(said("warning", "can be written again"), 1, "{:#?}", w.seen);
    let _ = std::fs::remove_dir_all(&dir);
}
