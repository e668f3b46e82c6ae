//! Reminders in real time, with the real Alertmanager (Debian's package):
//! an alarm that stays raised runs `on_remind` every `remind_every`, at
//! most `max_reminders` times, with the reminder's number in its
//! environment, and with `remind_alertmanager` each reminder moves the
//! alert's `reminder` label, which Alertmanager notifies anew. A clear
//! stops them. Everything stays on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use test_support::alertmanager::{self, Alertmanager, Notification, Webhook};

mod common;
use common::free_port;
use common::watcher::{is, report_json, scratch, write_config, Accepting, Watcher};

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn at(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v["time"].as_str().unwrap()).unwrap()
}

/// The `reminder` labels of the firing alerts of `n`.
fn reminders(n: &Notification) -> Vec<String> {
    n.body["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] == "firing")
        .map(|a| {
            a["labels"]["reminder"]
                .as_str()
                .unwrap_or("none")
                .to_string()
        })
        .collect()
}

#[test]
fn a_standing_alarm_reminds_every_interval_up_to_the_most_and_alertmanager_hears_it() {
    if !alertmanager::installed() {
        return;
    }
    let hook = Webhook::start();
    let am: SocketAddr = free_port().parse().unwrap();
    let _am = Alertmanager::start(
        "remind-am",
        &format!(
            "route:\n  receiver: hook\n  group_by: [target]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        send_resolved: true\n",
            hook.url("all")
        ),
        am,
    );
    let dir = scratch("remind");
    let actions = dir.join("actions");
    let up = Accepting::on("127.0.0.1:0", b"");
    let addr = up.addr.clone();
    drop(up);
    let config = write_config(
        &dir,
        &format!(
            "alertmanager_url = \"http://{am}\"\nalertmanager_resend = \"1s\"\n\n[defaults]\nremind_every = \"1s\"\nmax_reminders = 2\non_remind = \"echo $HEALTH_EVENT $HEALTH_REMINDER $HEALTH_COUNT >> {}\"\nremind_alertmanager = true\n\n[[target]]\nname = \"down\"\nkind = \"tcp\"\naddr = \"{addr}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n",
            actions.display()
        ),
    );
    let mut w = Watcher::quiet(&config);
    let raised = w.wait_for("raise", Duration::from_secs(5), is("raise", "down"));
    let first = w.wait_for("reminder 1", Duration::from_secs(3), is("remind", "down"));
    let second = w.wait_for("reminder 2", Duration::from_secs(3), is("remind", "down"));
    assert_eq!(
        (first["count"].as_u64(), second["count"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(
        second["detail"]
            .as_str()
            .unwrap()
            .starts_with("reminder 2 of 2"),
        "{second}"
    );
    // On the clock from the raise, a second apart.
    for (n, r) in [(1u64, &first), (2, &second)] {
        let after = at(r).duration_since(at(&raised)).unwrap();
        let want = Duration::from_secs(n);
        assert!(
            after >= want && after < want + Duration::from_millis(500),
            "{n}: {after:?}"
        );
    }
    // No third one.
    std::thread::sleep(Duration::from_millis(1600));
    w.drain();
    assert_eq!(w.count("remind", "down"), 2);
    let t = std::time::Instant::now();
    while lines(&actions).len() < 2 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lines(&actions), ["remind 1 1", "remind 2 2"]);
    // Alertmanager was told of each: the alert fired with reminder 2.
    hook.wait_for("the second reminder", Duration::from_secs(10), |n| {
        reminders(n).contains(&"2".to_string())
    });
    assert!(hook
        .received()
        .iter()
        .all(|n| !reminders(n).contains(&"3".to_string())));
    // A clear stops them and resolves the alert with its latest labels.
    let _up = Accepting::on(&addr, b"");
    w.wait_for("clear", Duration::from_secs(5), is("clear", "down"));
    hook.wait_for("resolved", Duration::from_secs(10), |n| {
        n.body["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["status"] == "resolved" && a["labels"]["reminder"] == "2")
    });
    assert_eq!(w.stop(), 0);
    let history = report_json(&dir.join("watch.db"));
    let words: Vec<&str> = history
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(words, ["raise", "remind", "remind", "clear"], "{history:?}");
    assert_eq!(history[2]["action_outcome"], "ok");
    let _ = std::fs::remove_dir_all(&dir);
}
