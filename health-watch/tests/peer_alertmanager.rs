//! The real Alertmanager (Debian's package) with the watcher's
//! `alertmanager_url`: docs/PROMETHEUS.md's route, with its webhooks
//! pointed at a receiver in the test and its waits cut to a second, routes
//! a `tcp` target's raise to the chat receiver and a `landmark` target's to
//! the pager, and the clear comes back resolved. A watcher started before
//! its Alertmanager keeps checking, logs and counts the failed posts, and
//! delivers the alert once it answers. Everything stays on loopback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use health_server::Landmark;
use serde_json::Value;
use test_support::alertmanager::{self, Alertmanager, Notification, Webhook};
use test_support::prometheus::get;

mod common;
use common::watcher::{check_config, is, scratch, write_config, Accepting, Watcher};
use common::{doc_blocks, free_port, sample, serving};

/// docs/PROMETHEUS.md's route, checked by amtool as written, then sent to
/// `hook` with its waits cut to a second.
fn documented_route(hook: &Webhook) -> String {
    let written = doc_blocks("PROMETHEUS.md", "yaml alertmanager-config").remove(0);
    alertmanager::check_config(&written);
    let config = written
        .replace("http://pager.example.net:8080/hook", &hook.url("pager"))
        .replace("http://chat.example.net:8080/hook", &hook.url("chat"))
        .replace("group_wait: 10s", "group_wait: 1s")
        .replace("group_interval: 1m", "group_interval: 1s");
    assert!(!config.contains("example.net"), "{config}");
    config
}

/// A config with `http_listen`, alerts to `am` (`extra` keys after), and
/// one tcp target `down` on a closed port checked every 200 ms; the
/// closed port's address too.
fn one_down_target(
    tag: &str,
    listen: SocketAddr,
    am: &str,
    extra: &str,
) -> (std::path::PathBuf, String) {
    let closed = free_port();
    let config = write_config(
        &scratch(tag),
        &format!(
            "http_listen = \"{listen}\"\nalertmanager_url = \"{am}\"\n{extra}\n[[target]]\nname = \"down\"\nkind = \"tcp\"\naddr = \"{closed}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n"
        ),
    );
    (config, closed)
}

/// The one alert of a webhook notification for `target`, if it is one.
fn alert_of<'a>(n: &'a Notification, target: &str) -> Option<&'a Value> {
    n.body["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["target"] == target)
}

fn metrics(listen: SocketAddr) -> String {
    let (code, body) = get(listen, "/metrics").expect("scrape the watcher");
    assert_eq!(code, 200);
    body
}

#[test]
fn the_documented_watcher_keys_are_accepted() {
    let block = doc_blocks("PROMETHEUS.md", "toml").remove(0);
    let dir = scratch("am-doc");
    let config = write_config(
        &dir,
        &format!("{block}\n[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n"),
    );
    let o = check_config(&config);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn alertmanager_routes_the_watchers_alarms_and_their_clears() {
    if !alertmanager::installed() {
        return;
    }
    let hook = Webhook::start();
    let am: SocketAddr = free_port().parse().unwrap();
    let _am = Alertmanager::start("route", &documented_route(&hook), am);
    let (_service, service) = serving(Landmark::fail("disk full"));
    let closed = free_port();
    let listen: SocketAddr = free_port().parse().unwrap();
    let dir = scratch("am-route");
    let config = write_config(
        &dir,
        &format!(
            r#"http_listen = "{listen}"
alertmanager_url = "http://{am}"
alertmanager_resend = "10s"
alertmanager_labels = {{ team = "edge" }}

[defaults]
interval = "200ms"
timeout = "150ms"

[[target]]
name = "chat-tcp"
kind = "tcp"
addr = "{closed}"

[[target]]
name = "pager-landmark"
kind = "landmark"
addr = "{service}"
"#
        ),
    );
    let mut w = Watcher::quiet(&config);
    let raised = w.wait_for("raise", Duration::from_secs(10), is("raise", "chat-tcp"));
    w.wait_for(
        "raise",
        Duration::from_secs(10),
        is("raise", "pager-landmark"),
    );

    let n = hook.wait_for("chat-tcp firing", Duration::from_secs(20), |n| {
        n.path == "/chat" && n.body["status"] == "firing" && alert_of(n, "chat-tcp").is_some()
    });
    let alert = alert_of(&n, "chat-tcp").unwrap();
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], "HealthProbeAlarm");
    assert_eq!(labels["kind"], "tcp");
    assert_eq!(labels["address"], closed.as_str());
    assert_eq!(labels["class"], raised["class"]);
    assert_eq!(labels["reason"], "refused");
    assert_eq!(labels["team"], "edge");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("chat-tcp (tcp "),
        "{alert}"
    );
    let n = hook.wait_for("pager-landmark firing", Duration::from_secs(20), |n| {
        n.path == "/pager" && alert_of(n, "pager-landmark").is_some()
    });
    let alert = alert_of(&n, "pager-landmark").unwrap();
    assert_eq!(alert["labels"]["kind"], "landmark");
    assert_eq!(alert["labels"]["reason"], "unexpected-state");
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("disk full"),
        "{alert}"
    );

    // The port opens: the tcp alarm clears, and its alert is resolved.
    let _open = Accepting::on(&closed, b"");
    let cleared = w.wait_for("clear", Duration::from_secs(10), is("clear", "chat-tcp"));
    let n = hook.wait_for("chat-tcp resolved", Duration::from_secs(20), |n| {
        n.path == "/chat" && n.body["status"] == "resolved" && alert_of(n, "chat-tcp").is_some()
    });
    let alert = alert_of(&n, "chat-tcp").unwrap();
    assert_eq!(alert["status"], "resolved");
    let ended = humantime::parse_rfc3339_weak(alert["endsAt"].as_str().unwrap()).unwrap();
    let clear_time = humantime::parse_rfc3339_weak(cleared["time"].as_str().unwrap()).unwrap();
    let apart = ended
        .duration_since(clear_time)
        .unwrap_or_else(|e| e.duration());
    assert!(apart < Duration::from_secs(1), "{alert} vs {cleared}");

    // Routed, not copied: each alert went to its own receiver only.
    for n in hook.received() {
        let wrong = if n.path == "/chat" {
            "pager-landmark"
        } else {
            "chat-tcp"
        };
        assert!(alert_of(&n, wrong).is_none(), "{n:?}");
    }
    let body = metrics(listen);
    let am_label = format!("alertmanager=\"http://{am}\"");
    let posted_ok = sample(
        &body,
        &format!("watch_alertmanager_posts_total{{{am_label},outcome=\"ok\"}}"),
    );
    assert!(posted_ok.unwrap() >= 2.0, "{body}");
    assert_eq!(
        sample(
            &body,
            &format!("watch_alertmanager_pending_alerts{{{am_label}}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&body, "watch_alertmanager_alerts{state=\"firing\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "watch_alertmanager_alerts{state=\"resolved\"}"),
        Some(1.0)
    );
    test_support::promtool_accepts(&body);
    assert_eq!(w.stop(), 0);
}

#[test]
fn a_watcher_keeps_checking_while_alertmanager_is_away_and_delivers_when_it_answers() {
    if !alertmanager::installed() {
        return;
    }
    let am: SocketAddr = free_port().parse().unwrap();
    let listen: SocketAddr = free_port().parse().unwrap();
    let (config, _) = one_down_target("am-away", listen, &format!("http://{am}/"), "");
    let mut w = Watcher::quiet(&config);
    w.wait_for("raise", Duration::from_secs(10), is("raise", "down"));
    let e = w.wait_for("error", Duration::from_secs(10), |v| {
        v["event"] == "error"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cannot send 1 alert to Alertmanager"))
    });
    assert!(e["message"].as_str().unwrap().contains("refused"), "{e}");
    // Checks go on at their pace while posts fail.
    let checks =
        |body: &str| sample(body, "watch_checks_total{target=\"down\",class=\"NG\"}").unwrap();
    let before = checks(&metrics(listen));
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let body = metrics(listen);
    let done = checks(&body) - before;
    let expected = t.elapsed().as_secs_f64() / 0.2;
    assert!(done >= expected - 3.0, "{done} checks in {:?}", t.elapsed());
    let am_label = format!("alertmanager=\"http://{am}\"");
    let failed = sample(
        &body,
        &format!("watch_alertmanager_posts_total{{{am_label},outcome=\"error\"}}"),
    )
    .unwrap();
    assert!(failed >= 1.0, "{body}");
    assert_eq!(
        sample(
            &body,
            &format!("watch_alertmanager_pending_alerts{{{am_label}}}")
        ),
        Some(1.0)
    );

    // Alertmanager comes up: the alert is delivered at the next try.
    let hook = Webhook::start();
    let route = format!(
        "route:\n  receiver: hook\n  group_wait: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n",
        hook.url("hook")
    );
    let _am = Alertmanager::start("away", &route, am);
    hook.wait_for("firing", Duration::from_secs(30), |n| {
        n.body["status"] == "firing" && alert_of(n, "down").is_some()
    });
    w.wait_for("back", Duration::from_secs(10), |v| {
        v["event"] == "warning"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.contains("takes alerts again"))
    });
    assert_eq!(
        sample(
            &metrics(listen),
            &format!("watch_alertmanager_pending_alerts{{{am_label}}}")
        ),
        Some(0.0)
    );
    assert_eq!(w.stop(), 0);
}

/// An alarm open for many resend intervals stays firing at Alertmanager:
/// each resend pushes its `endsAt` on, so the receiver never hears it
/// resolved until the alarm clears (issue 26, point 1).
#[test]
fn an_open_alarm_is_never_reported_resolved_and_its_clear_is() {
    if !alertmanager::installed() {
        return;
    }
    let hook = Webhook::start();
    let am: SocketAddr = free_port().parse().unwrap();
    let route = format!(
        "route:\n  receiver: hook\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        send_resolved: true\n",
        hook.url("hook")
    );
    let _am = Alertmanager::start("resend", &route, am);
    let listen: SocketAddr = free_port().parse().unwrap();
    let resend = Duration::from_secs(1);
    let (config, closed) = one_down_target(
        "am-resend",
        listen,
        &format!("http://{am}"),
        "alertmanager_resend = \"1s\"",
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("raise", Duration::from_secs(10), is("raise", "down"));
    hook.wait_for("firing", Duration::from_secs(20), |n| {
        n.body["status"] == "firing" && alert_of(n, "down").is_some()
    });
    // Past four resends (the `endsAt` of any one post) and more: six, plus
    // Alertmanager's own group interval.
    let open = Instant::now();
    std::thread::sleep(resend * 7);
    let resolved =
        |n: &Notification| alert_of(n, "down").is_some_and(|a| a["status"] == "resolved");
    assert!(
        !hook.received().iter().any(resolved),
        "reported resolved while the alarm is open: {:?}",
        hook.received()
    );
    let body = metrics(listen);
    assert_eq!(
        sample(&body, "watch_alarm_raised{target=\"down\",kind=\"tcp\"}"),
        Some(1.0)
    );
    let am_label = format!("alertmanager=\"http://{am}\"");
    let sent = sample(
        &body,
        &format!("watch_alertmanager_alerts_sent_total{{{am_label}}}"),
    )
    .unwrap();
    let intervals = open.elapsed().as_secs_f64() / resend.as_secs_f64();
    assert!(
        sent >= intervals - 2.0,
        "{sent} sends in {intervals:.1} resends"
    );

    // The clear is reported resolved.
    let _open = Accepting::on(&closed, b"");
    w.wait_for("clear", Duration::from_secs(10), is("clear", "down"));
    hook.wait_for("resolved", Duration::from_secs(20), resolved);
    assert_eq!(w.stop(), 0);
}

/// A receiver that answers 200 and closes the connection (HTTP/1.0, or
/// 1.1 with `Connection: close`), as small webhook relays and proxies do,
/// has taken the alerts: every post counts as delivered (point 2).
#[test]
fn a_receiver_that_replies_and_closes_has_taken_the_alerts() {
    let (am, posts) = test_support::replying_receiver(vec![
        b"HTTP/1.0 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    ]);
    let listen: SocketAddr = free_port().parse().unwrap();
    let (config, _) = one_down_target(
        "am-closes",
        listen,
        &format!("http://{am}"),
        "alertmanager_resend = \"1s\"",
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("raise", Duration::from_secs(10), is("raise", "down"));
    let t = Instant::now();
    while posts.load(std::sync::atomic::Ordering::SeqCst) < 4 {
        assert!(t.elapsed() < Duration::from_secs(15), "too few posts");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The receiver counts a post before it replies: wait for the last one
    // to be delivered (nothing pending) before reading the counts.
    let am_label = format!("alertmanager=\"http://{am}\"");
    let pending = |body: &str| {
        sample(
            body,
            &format!("watch_alertmanager_pending_alerts{{{am_label}}}"),
        )
    };
    let t = Instant::now();
    let body = loop {
        let body = metrics(listen);
        if pending(&body) == Some(0.0) || t.elapsed() > Duration::from_secs(5) {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let count = |outcome: &str| {
        sample(
            &body,
            &format!("watch_alertmanager_posts_total{{{am_label},outcome=\"{outcome}\"}}"),
        )
        .unwrap()
    };
    assert!(count("ok") >= 3.0, "{body}");
    assert_eq!(count("error"), 0.0, "{body}");
    assert_eq!(pending(&body), Some(0.0), "{body}");
    w.drain();
    assert_eq!(w.told("error"), 0, "{:?}", w.seen);
    assert_eq!(w.stop(), 0);
}
