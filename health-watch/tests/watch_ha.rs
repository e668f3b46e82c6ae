//! Two watchers on the same targets, for high availability, sending to a
//! cluster of two real Alertmanagers (Debian's package, gossiping on
//! loopback): every alert reaches both peers from both watchers, and the
//! receiver is notified once. The watchers' alerts carry the same labels
//! (no per-watcher label unless `alertmanager_labels` adds one), so
//! Alertmanager takes them as one alert, and its peers share what they
//! have notified. docs/WATCH.md, "Alertmanager".

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::alertmanager::{self, Alertmanager, Notification, Webhook};
use test_support::prometheus::get;

mod common;
use common::free_port;
use common::watcher::{is, scratch, write_config, Watcher};

fn addr() -> SocketAddr {
    free_port().parse().unwrap()
}

/// The firing alerts for `target` in `n`.
fn firing_for<'a>(n: &'a Notification, target: &str) -> Vec<&'a Value> {
    n.body["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] == "firing" && a["labels"]["target"] == target)
        .collect()
}

#[test]
fn two_watchers_and_two_alertmanager_peers_notify_once() {
    if !alertmanager::installed() {
        return;
    }
    let hook = Webhook::start();
    let route = format!(
        "route:\n  receiver: hook\n  group_by: [target]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        send_resolved: false\n",
        hook.url("all")
    );
    let (am1, am2, g1, g2) = (addr(), addr(), addr(), addr());
    let _p1 = Alertmanager::start_peer("ha-1", &route, am1, g1, &[g2]);
    let _p2 = Alertmanager::start_peer("ha-2", &route, am2, g2, &[g1]);
    // Both peers see the cluster whole before any alert.
    for (am, peer) in [(am1, &_p1), (am2, &_p2)] {
        peer.wait_for("a cluster of two", Duration::from_secs(30), || {
            get(am, "/api/v2/status").is_some_and(|(_, body)| {
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                v["cluster"]["status"] == "ready"
                    && v["cluster"]["peers"]
                        .as_array()
                        .is_some_and(|p| p.len() == 2)
            })
        });
    }
    let closed = free_port();
    let config = |tag: &str| {
        write_config(
            &scratch(tag),
            &format!(
                "alertmanager_url = [\"http://{am1}\", \"http://{am2}\"]\n\n[[target]]\nname = \"down\"\nkind = \"tcp\"\naddr = \"{closed}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n"
            ),
        )
    };
    let (a, b) = (config("ha-watcher-a"), config("ha-watcher-b"));
    let mut wa = Watcher::quiet(&a);
    let mut wb = Watcher::quiet(&b);
    wa.wait_for("raise", Duration::from_secs(10), is("raise", "down"));
    wb.wait_for("raise", Duration::from_secs(10), is("raise", "down"));
    // Both peers hold the alert, from both watchers, as one.
    for am in [am1, am2] {
        _p1.wait_for("the alert on both peers", Duration::from_secs(10), || {
            get(am, "/api/v2/alerts").is_some_and(|(_, body)| {
                let v: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
                v.iter().filter(|x| x["labels"]["target"] == "down").count() == 1
            })
        });
    }
    let first = hook.wait_for("the notification", Duration::from_secs(20), |n| {
        !firing_for(n, "down").is_empty()
    });
    assert_eq!(firing_for(&first, "down").len(), 1, "{:#?}", first.body);
    // The second peer waits its turn (2 s), finds the first one's
    // notification in the gossiped log, and sends none.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let told: Vec<Notification> = hook
        .received()
        .into_iter()
        .filter(|n| !firing_for(n, "down").is_empty())
        .collect();
    assert_eq!(told.len(), 1, "notified more than once: {told:#?}");
    assert_eq!(wa.stop(), 0);
    assert_eq!(wb.stop(), 0);
}

/// The pitfall the docs warn of, and what keeps the test above honest:
/// two Alertmanagers that do not gossip each notify.
#[test]
fn two_alertmanagers_without_a_cluster_each_notify() {
    if !alertmanager::installed() {
        return;
    }
    let hook = Webhook::start();
    let route = format!(
        "route:\n  receiver: hook\n  group_by: [target]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        send_resolved: false\n",
        hook.url("all")
    );
    let (am1, am2) = (addr(), addr());
    let _p1 = Alertmanager::start("alone-1", &route, am1);
    let _p2 = Alertmanager::start("alone-2", &route, am2);
    let config = write_config(
        &scratch("alone-watcher"),
        &format!(
            "alertmanager_url = [\"http://{am1}\", \"http://{am2}\"]\n\n[[target]]\nname = \"down\"\nkind = \"tcp\"\naddr = \"{}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n",
            free_port()
        ),
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("raise", Duration::from_secs(10), is("raise", "down"));
    let t = Instant::now();
    loop {
        let told = hook
            .received()
            .into_iter()
            .filter(|n| !firing_for(n, "down").is_empty())
            .count();
        if told == 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{told} notifications"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(w.stop(), 0);
}
