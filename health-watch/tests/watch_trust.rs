//! The watcher under the conditions that used to lose or double an alarm:
//! reload storms over flapping targets, flapping itself, signals during
//! start-up, configs at the documented maximum, actions that cannot start.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::watcher::{report_json, targets, Flapping, Watcher};
use common::{watch_config, PROBE};

#[test]
fn a_sighup_storm_over_flapping_targets_loses_no_event() {
    let servers: Vec<Flapping> = (0..10)
        .map(|_| Flapping::new(Duration::from_millis(200)))
        .collect();
    let ports: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let settings = |timeout: &str| {
        format!(
            "expect_banner = \"UP\"\ninterval = \"100ms\"\ntimeout = \"{timeout}\"\nfall = 1\nrise = 1\nflap_changes = 0\non_raise = \"true\"\non_clear = \"true\"\n"
        )
    };
    let (dir, config) = watch_config("trust-storm", &targets(100, &ports, &settings("80ms")));
    let text = std::fs::read_to_string(&config).unwrap();
    let mut w = Watcher::quiet(&config);
    w.wait_for("event", Duration::from_secs(10), |v| v["event"] == "raise");
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
    let (code, _, err) = w.wait_exit(Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    let reloads = w.seen.iter().filter(|v| v["event"] == "reload").count();
    // SIGHUPs that arrive during a reload coalesce into one more (as
    // kernel signals do), so a loaded machine sees fewer; a quarter is the
    // floor that says the storm was taken, not dropped.
    assert!(reloads >= 25, "only {reloads} reloads: {err}");

    let history = report_json(&dir.join("watch.db"));
    let printed: std::collections::HashSet<i64> = w
        .seen
        .iter()
        .filter(|v| v["event"] == "raise" || v["event"] == "clear")
        .filter_map(|v| v["id"].as_i64())
        .collect();
    let acted: std::collections::HashSet<i64> = w
        .seen
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
fn signals_during_start_up_are_served_not_fatal() {
    // A config big enough that start-up takes a moment.
    let (dir, config) = watch_config(
        "trust-startup",
        &targets(20_000, &["127.0.0.1:1".to_string()], "interval = \"1h\""),
    );
    // SIGHUP from the first instant the watcher's own code runs: queued,
    // served as a reload once watching.
    let mut w = Watcher::quiet(&config);
    w.await_signals_held();
    w.signal(libc::SIGHUP);
    w.wait_for("event", Duration::from_secs(60), |v| v["event"] == "reload");
    w.signal(libc::SIGTERM);
    let (code, _, err) = w.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0, "{err}");
    // SIGTERM at once: a clean exit, said on stderr.
    for delay in [0, 20, 100] {
        let mut w = Watcher::quiet(&config);
        w.await_signals_held();
        std::thread::sleep(Duration::from_millis(delay));
        w.signal(libc::SIGTERM);
        let (code, took, err) = w.wait_exit(Duration::from_secs(10));
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
    let mut w = Watcher::quiet(&config);
    w.wait_for("event", Duration::from_secs(60), |v| v["event"] == "start");
    // A reload that changes every target, and a SIGTERM in the middle of
    // it: the stop does not wait for the reload.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"1h\"", "\"2h\"")).unwrap();
    w.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(50));
    w.signal(libc::SIGTERM);
    let (code, took, err) = w.wait_exit(Duration::from_secs(30));
    assert_eq!(code, 0, "{err}");
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flapping_target_is_one_event_its_actions_wait_and_the_outcome_is_told() {
    let server = Flapping::new(Duration::from_millis(300));
    let (dir, config) = watch_config(
        "trust-flap",
        &format!(
            "[[target]]\nname = \"flap\"\nkind = \"tcp\"\naddr = \"{}\"\nexpect_banner = \"UP\"\ninterval = \"100ms\"\ntimeout = \"80ms\"\nfall = 1\nrise = 1\nflap_changes = 4\nflap_window = \"10s\"\non_raise = \"true\"\non_clear = \"true\"\n",
            server.addr
        ),
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("event", Duration::from_secs(10), |v| {
        v["event"] == "flapping"
    });
    assert_eq!(w.told("raise") + w.told("clear"), 4, "{:#?}", w.seen);
    // It settles down: a window after it began flapping, it stops, and the
    // raise it held back is told, with its action.
    server.down.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(3));
    let during = w.told("raise") + w.told("clear");
    w.wait_for("event", Duration::from_secs(15), |v| {
        v["event"] == "flapping-stopped"
    });
    assert_eq!(
        w.told("raise") + w.told("clear"),
        during,
        "told while flapping"
    );
    w.wait_for("event", Duration::from_secs(5), |v| {
        v["event"] == "action" && v["for"] == "raise" && v["event_id"].as_i64() > Some(4)
    });
    w.signal(libc::SIGTERM);
    let (code, _, err) = w.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0, "{err}");
    let history = report_json(&dir.join("watch.db"));
    let events: Vec<&str> = history
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "raise",
            "clear",
            "raise",
            "clear",
            "flapping",
            "flapping-stopped",
            "raise"
        ],
        "{history:#?}"
    );
    assert!(history[4]["detail"]
        .as_str()
        .unwrap()
        .starts_with("5 raises and clears within 10s"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_action_that_cannot_start_is_retried_then_an_error() {
    // 140 KiB in one argument: exec fails with E2BIG every time.
    let command = format!("# {}", "x".repeat(140 * 1024));
    let (dir, config) = watch_config(
        "trust-spawn",
        &format!(
            "[[target]]\nname = \"down\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"100ms\"\nfall = 1\non_raise = {command:?}\n"
        ),
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("event", Duration::from_secs(10), |v| v["event"] == "action");
    let action = w.seen.last().unwrap().clone();
    assert_eq!(action["outcome"], "spawn-error", "{action}");
    assert!(
        action["output"].as_str().unwrap().contains("(3 tries)"),
        "{action}"
    );
    let error = w
        .seen
        .iter()
        .find(|v| v["event"] == "error")
        .expect("an error event");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .starts_with("the raise action of down could not start"));
    w.signal(libc::SIGTERM);
    let (code, _, err) = w.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0);
    assert!(
        err.contains("health-probe: error: the raise action of down could not start"),
        "{err}"
    );
    let history = report_json(&dir.join("watch.db"));
    assert_eq!(history[0]["action_outcome"], "spawn-error");
    let _ = std::fs::remove_dir_all(&dir);
}
