//! Silences and maintenance windows, in real time, with the real
//! Alertmanager (Debian's package): a raise while silenced is recorded and
//! shown but runs no action and sends no alert; it fires (`released`) the
//! moment the silence is removed or the window ends; a past stretch marked
//! afterwards counts as maintenance, not downtime, in the report; and
//! `/api/v1/` does the same over HTTP, behind basic auth, with the
//! defaults. Everything stays on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use test_support::alertmanager::{self, Alertmanager, Webhook};
use test_support::prometheus::get;

mod common;
use common::watcher::{http, is, report_json, scratch, silence, write_config, Accepting, Watcher};
use common::{free_port, PROBE};

/// Alertmanager sending everything to `hook`, its waits cut to a second.
fn alertmanager_to(hook: &Webhook) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: [target]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        send_resolved: true\n",
        hook.url("all")
    )
}

/// The alerts Alertmanager holds now for `target`.
fn alerts_for(am: SocketAddr, target: &str) -> Vec<Value> {
    let Some((200, body)) = get(am, "/api/v2/alerts") else {
        return Vec::new();
    };
    let all: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
    all.into_iter()
        .filter(|a| a["labels"]["target"] == target)
        .collect()
}

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The id `silence add` printed.
fn added_id(out: &str) -> i64 {
    out.strip_prefix("silence ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no id in {out:?}"))
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A target `down` on a closed port, raised after 3 s of failures (time
/// to silence it first), with an `on_raise` that appends its event to
/// `actions`.
fn held_config(dir: &Path, extra: &str) -> (PathBuf, PathBuf) {
    let actions = dir.join("actions");
    let config = write_config(
        dir,
        &format!(
            "{extra}\n[[target]]\nname = \"down\"\nkind = \"tcp\"\naddr = \"{}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfall = 15\non_raise = \"echo $HEALTH_EVENT >> {}\"\n",
            free_port(),
            actions.display()
        ),
    );
    (config, actions)
}

#[test]
fn a_silenced_raise_runs_nothing_until_the_silence_is_removed_then_fires() {
    if !alertmanager::installed() {
        return;
    }
    let hook = Webhook::start();
    let am: SocketAddr = free_port().parse().unwrap();
    let _am = Alertmanager::start("silence-am", &alertmanager_to(&hook), am);
    let listen: SocketAddr = free_port().parse().unwrap();
    let dir = scratch("silence-cli");
    let (config, actions) = held_config(
        &dir,
        &format!("http_listen = \"{listen}\"\nalertmanager_url = \"http://{am}\""),
    );
    let cfg = config.to_str().unwrap();
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    let out = ok(&silence(&[
        "add",
        "do*",
        "--for",
        "1h",
        "--reason",
        "db upgrade",
        "--author",
        "ops",
        "--config",
        cfg,
    ]));
    assert!(out.contains("it matches 1 target"), "{out}");
    let id = added_id(&out);
    // The running watcher takes it up within a second.
    let told = w.wait_for("silence", Duration::from_secs(3), |v| {
        v["event"] == "silence"
    });
    assert_eq!(
        (told["id"].as_i64(), told["target"].as_str()),
        (Some(id), Some("do*"))
    );
    let raised = w.wait_for("raise", Duration::from_secs(10), is("raise", "down"));
    assert_eq!(raised["silence"].as_i64(), Some(id), "{raised}");
    // Held: no action, no alert, while it is shown and counted.
    std::thread::sleep(Duration::from_secs(3));
    assert!(lines(&actions).is_empty(), "{:?}", lines(&actions));
    assert!(alerts_for(am, "down").is_empty());
    let (_, metrics) = get(listen, "/metrics").unwrap();
    assert!(
        metrics.contains("watch_target_silenced{target=\"down\",kind=\"tcp\"} 1"),
        "{metrics}"
    );
    let (_, page) = get(listen, "/").unwrap();
    assert!(
        page.contains(">silenced<") && page.contains("db upgrade"),
        "{page}"
    );
    let (_, page) = get(listen, "/silences").unwrap();
    assert!(
        page.contains("do*") && page.contains("in force") && page.contains("db upgrade"),
        "{page}"
    );
    let listed = ok(&silence(&["list", "--config", cfg]));
    assert!(
        listed.contains("do*") && listed.contains("in force") && listed.contains("ops"),
        "{listed}"
    );
    // Removed: the raise fires at once, its action and its alert.
    let out = ok(&silence(&["remove", &id.to_string(), "--config", cfg]));
    assert!(out.starts_with(&format!("silence {id} removed")), "{out}");
    let released = w.wait_for("released", Duration::from_secs(3), is("released", "down"));
    assert_eq!(released["silence"].as_i64(), Some(id));
    w.wait_for("silence-ended", Duration::from_secs(3), |v| {
        v["event"] == "silence-ended"
    });
    let t = std::time::Instant::now();
    while lines(&actions).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lines(&actions), ["released"]);
    _am.wait_for("the released alert", Duration::from_secs(10), || {
        !alerts_for(am, "down").is_empty()
    });
    let o = silence(&["remove", &id.to_string(), "--config", cfg]);
    assert_eq!(o.status.code(), Some(1), "removed already");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("no silence {id}")));
    assert_eq!(w.stop(), 0);
    let history = report_json(&dir.join("watch.db"));
    let words: Vec<(&str, Option<i64>)> = history
        .iter()
        .map(|r| (r["event"].as_str().unwrap(), r["silence"].as_i64()))
        .collect();
    assert_eq!(
        words,
        [("raise", Some(id)), ("released", Some(id))],
        "{history:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `S M H * * *` for the second `at` (UTC), a 6-field schedule that
/// opens once a day, at that second.
fn schedule_at(at: SystemTime) -> String {
    let s = at.duration_since(UNIX_EPOCH).unwrap().as_secs();
    format!("{} {} {} * * *", s % 60, (s / 60) % 60, (s / 3600) % 24)
}

#[test]
fn a_window_holds_a_raise_inside_it_and_fires_it_when_it_ends() {
    let dir = scratch("silence-window");
    let up = Accepting::on("127.0.0.1:0", b"");
    let actions = dir.join("actions");
    // A whole second, 2 to 3 s from now.
    let secs = (SystemTime::now() + Duration::from_secs(3))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let opens = UNIX_EPOCH + Duration::from_secs(secs);
    let config = write_config(
        &dir,
        &format!(
            "[[maintenance]]\nname = \"patching\"\ntargets = [\"svc\"]\nschedule = \"{}\"\nduration = \"4s\"\nreason = \"kernel update\"\n\n[[target]]\nname = \"svc\"\nkind = \"tcp\"\naddr = \"{}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\non_raise = \"echo $HEALTH_EVENT >> {}\"\n",
            schedule_at(opens),
            up.addr,
            actions.display()
        ),
    );
    let checked = Command::new(PROBE)
        .args(["watch", config.to_str().unwrap(), "--check-config"])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let said = ok(&checked);
    assert!(
        said.contains("maintenance patching:") && said.contains("for 4s"),
        "{said}"
    );
    let mut command = Command::new(PROBE);
    command.arg("watch").arg(&config).env("TZ", "UTC");
    let mut w = Watcher::spawn(command);
    let open = w.wait_for("the window", Duration::from_secs(10), |v| {
        v["event"] == "silence"
    });
    assert_eq!(open["origin"], "maintenance:patching", "{open}");
    assert_eq!(open["reason"], "kernel update");
    let id = open["id"].as_i64().unwrap();
    // Down inside the window: the raise is held.
    drop(up);
    let raised = w.wait_for("raise", Duration::from_secs(3), is("raise", "svc"));
    assert_eq!(raised["silence"].as_i64(), Some(id));
    // It fires when the window ends, within a second of it.
    let released = w.wait_for("released", Duration::from_secs(8), is("released", "svc"));
    let at = humantime::parse_rfc3339(released["time"].as_str().unwrap()).unwrap();
    let ends = opens + Duration::from_secs(4);
    let late = at
        .duration_since(ends)
        .unwrap_or_else(|e| panic!("{:?} early", e.duration()));
    assert!(late < Duration::from_secs(1), "{late:?} after the window");
    let t = std::time::Instant::now();
    while lines(&actions).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lines(&actions), ["released"]);
    assert_eq!(w.stop(), 0);
    // The window's opening is in the history, once.
    let listed = ok(&silence(&[
        "list",
        "--all",
        "--json",
        "--config",
        config.to_str().unwrap(),
    ]));
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["origin"], "maintenance:patching");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_window_opening_removed_stays_removed() {
    let dir = scratch("silence-window-removed");
    let secs = (SystemTime::now() + Duration::from_secs(3))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let opens = UNIX_EPOCH + Duration::from_secs(secs);
    let config = write_config(
        &dir,
        &format!(
            "[[maintenance]]\nname = \"long\"\ntargets = [\"svc\"]\nschedule = \"{}\"\nduration = \"1h\"\n\n[[target]]\nname = \"svc\"\nkind = \"tcp\"\naddr = \"{}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n",
            schedule_at(opens),
            free_port()
        ),
    );
    let cfg = config.to_str().unwrap();
    let mut command = Command::new(PROBE);
    command.arg("watch").arg(&config).env("TZ", "UTC");
    let mut w = Watcher::spawn(command);
    let open = w.wait_for("the window", Duration::from_secs(10), |v| {
        v["event"] == "silence"
    });
    let id = open["id"].as_i64().unwrap().to_string();
    ok(&silence(&["remove", &id, "--config", cfg]));
    w.wait_for("its end", Duration::from_secs(3), |v| {
        v["event"] == "silence-ended"
    });
    // The window is still open by the clock, but this opening is over.
    std::thread::sleep(Duration::from_secs(2));
    w.drain();
    assert_eq!(w.told("silence"), 1, "it came back: {:?}", w.seen);
    assert_eq!(
        ok(&silence(&["list", "--config", cfg])).trim(),
        "no silences"
    );
    assert_eq!(w.stop(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_past_stretch_marked_afterwards_is_maintenance_not_downtime_in_the_report() {
    let dir = scratch("silence-past");
    let up = Accepting::on("127.0.0.1:0", b"");
    let addr = up.addr.clone();
    drop(up);
    let config = write_config(
        &dir,
        &format!(
            "[[target]]\nname = \"svc\"\nkind = \"tcp\"\naddr = \"{addr}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n"
        ),
    );
    let cfg = config.to_str().unwrap();
    let mut w = Watcher::quiet(&config);
    w.wait_for("raise", Duration::from_secs(5), is("raise", "svc"));
    std::thread::sleep(Duration::from_secs(2));
    let _up = Accepting::on(&addr, b"");
    w.wait_for("clear", Duration::from_secs(5), is("clear", "svc"));
    assert_eq!(w.stop(), 0);
    let db = dir.join("watch.db");
    let clear = |rows: &[Value]| rows.iter().find(|r| r["event"] == "clear").unwrap().clone();
    let before = clear(&report_json(&db));
    let lasted = before["alarm_secs"].as_f64().unwrap();
    assert!(lasted >= 2.0, "{before}");
    assert_eq!(before["down_secs"].as_f64(), Some(lasted));
    // Marked afterwards as maintenance, the whole alarm and a bit more
    // (the end is written to the second: one past the clear).
    std::thread::sleep(Duration::from_millis(1100));
    let from = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(60));
    let until = humantime::format_rfc3339_seconds(SystemTime::now());
    let out = ok(&silence(&[
        "add",
        "svc",
        "--from",
        &from.to_string(),
        "--until",
        &until.to_string(),
        "--reason",
        "planned failover",
        "--config",
        cfg,
    ]));
    assert!(out.contains("over already"), "{out}");
    let after = clear(&report_json(&db));
    assert_eq!(after["alarm_secs"].as_f64(), Some(lasted));
    assert_eq!(after["down_secs"].as_f64(), Some(0.0), "{after}");
    let table = ok(&common::watcher::report(&[
        "--database",
        db.to_str().unwrap(),
    ]));
    assert!(table.contains("(0s down)"), "{table}");
    let listed = ok(&silence(&["list", "--all", "--config", cfg]));
    assert!(
        listed.contains("ended") && listed.contains("planned failover"),
        "{listed}"
    );
    assert_eq!(
        ok(&silence(&["list", "--config", cfg])).trim(),
        "no silences"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn silence_refuses_bad_arguments_and_a_missing_database() {
    let dir = scratch("silence-usage");
    let db = dir.join("none.db");
    let db = db.to_str().unwrap();
    for (args, says) in [
        (
            &["add", "x", "--reason", "r", "--database", db][..],
            "--until",
        ),
        (
            &["add", "x", "--for", "1h", "--database", db][..],
            "--reason",
        ),
        (
            &[
                "add",
                "x",
                "--for",
                "1h",
                "--until",
                "now",
                "--reason",
                "r",
                "--database",
                db,
            ][..],
            "--for",
        ),
        (
            &["add", "x", "--for", "1h", "--reason", "r", "--database", db][..],
            "does not exist",
        ),
        (
            &["add", "x", "--for", "1h", "--reason", " ", "--database", db][..],
            "reason is required",
        ),
        (
            &[
                "add",
                "x",
                "--from",
                "tomorrow",
                "--for",
                "1h",
                "--reason",
                "r",
                "--database",
                db,
            ][..],
            "--from",
        ),
        (
            &[
                "add",
                "x",
                "--for",
                "400d",
                "--reason",
                "r",
                "--database",
                db,
            ][..],
            "366 days",
        ),
        (&["remove", "abc", "--database", db][..], "ID"),
    ] {
        let o = silence(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `Authorization: Basic` for ops:secret.
const AUTH: &str = "Authorization: Basic b3BzOnNlY3JldA==\r\n";
const JSON: &str = "Content-Type: application/json\r\n";

#[test]
fn the_api_adds_lists_and_removes_silences_behind_basic_auth() {
    let dir = scratch("silence-api");
    let password = dir.join("password");
    std::fs::write(&password, "secret\n").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let listen: SocketAddr = free_port().parse().unwrap();
    let (config, actions) = held_config(
        &dir,
        &format!(
            "http_listen = \"{listen}\"\nhttp_user = \"ops\"\nhttp_password_file = {:?}",
            password.display().to_string()
        ),
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    let body = r#"{"target": "down", "for": "1h", "reason": "rack move"}"#;
    // Without the password: 401; without the JSON type: refused.
    assert_eq!(http(listen, "POST", "/api/v1/silences", JSON, body).0, 401);
    let (code, _, said) = http(listen, "POST", "/api/v1/silences", AUTH, body);
    assert_eq!(code, 415, "{said}");
    for (bad, says) in [
        (r#"{"target": "down", "reason": "x"}"#, "for"),
        (r#"{"target": "", "for": "1h", "reason": "x"}"#, "target"),
        (r#"{"target": "down", "for": "1h", "reason": ""}"#, "reason"),
        (r#"{"target": "down", "for": "soon", "reason": "x"}"#, "for"),
        (
            r#"{"target": "down", "for": "1h", "reason": "x", "extra": 1}"#,
            "extra",
        ),
        ("[", "EOF"),
    ] {
        let (code, _, said) = http(
            listen,
            "POST",
            "/api/v1/silences",
            &format!("{AUTH}{JSON}"),
            bad,
        );
        assert!((400..500).contains(&code), "{bad}: {code} {said}");
        assert!(said.contains(says), "{bad}: {said}");
    }
    let big = format!(
        r#"{{"target": "down", "for": "1h", "reason": "{}"}}"#,
        "x".repeat(20_000)
    );
    let (code, _, _) = http(
        listen,
        "POST",
        "/api/v1/silences",
        &format!("{AUTH}{JSON}"),
        &big,
    );
    assert_eq!(code, 413);
    let (code, _, made) = http(
        listen,
        "POST",
        "/api/v1/silences",
        &format!("{AUTH}{JSON}"),
        body,
    );
    assert_eq!(code, 201, "{made}");
    let made: Value = serde_json::from_str(&made).unwrap();
    let id = made["id"].as_i64().unwrap();
    assert_eq!(
        (made["author"].as_str(), made["origin"].as_str()),
        (Some("ops"), Some("api"))
    );
    // In force at once (the API pokes the silencer).
    let (_, _, listed) = http(listen, "GET", "/api/v1/silences", AUTH, "");
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["in_force"], true);
    let raised = w.wait_for("raise", Duration::from_secs(10), is("raise", "down"));
    assert_eq!(raised["silence"].as_i64(), Some(id));
    let (_, _, alarms) = http(listen, "GET", "/api/v1/alarms", AUTH, "");
    let alarms: Vec<Value> = serde_json::from_str(&alarms).unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(
        (alarms[0]["held"].as_i64(), alarms[0]["silenced"].as_i64()),
        (Some(id), Some(id))
    );
    let (_, _, targets) = http(listen, "GET", "/api/v1/targets", AUTH, "");
    let targets: Vec<Value> = serde_json::from_str(&targets).unwrap();
    assert_eq!(targets[0]["state"], "alarm");
    assert!(lines(&actions).is_empty());
    let path = format!("/api/v1/silences/{id}");
    assert_eq!(http(listen, "DELETE", &path, "", "").0, 401);
    let (code, _, gone) = http(listen, "DELETE", &path, AUTH, "");
    assert_eq!(code, 200, "{gone}");
    w.wait_for("released", Duration::from_secs(3), is("released", "down"));
    assert_eq!(http(listen, "DELETE", &path, AUTH, "").0, 404);
    assert_eq!(
        http(listen, "DELETE", "/api/v1/silences/x", AUTH, "").0,
        400
    );
    assert_eq!(w.stop(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_basic_auth_the_api_reads_but_never_writes() {
    let dir = scratch("silence-api-open");
    let listen: SocketAddr = free_port().parse().unwrap();
    let (config, _) = held_config(&dir, &format!("http_listen = \"{listen}\""));
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    let body = r#"{"target": "down", "for": "1h", "reason": "x"}"#;
    let (code, _, said) = http(listen, "POST", "/api/v1/silences", JSON, body);
    assert_eq!(code, 403, "{said}");
    assert!(said.contains("http_user"), "{said}");
    assert_eq!(http(listen, "DELETE", "/api/v1/silences/1", "", "").0, 403);
    let (code, _, listed) = http(listen, "GET", "/api/v1/silences", "", "");
    assert_eq!((code, listed.trim()), (200, "[]"));
    let (code, _, targets) = http(listen, "GET", "/api/v1/targets", "", "");
    assert_eq!(code, 200);
    let targets: Vec<Value> = serde_json::from_str(&targets).unwrap();
    assert_eq!(targets[0]["name"], "down");
    assert_eq!(w.stop(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
