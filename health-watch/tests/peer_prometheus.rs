//! The real Prometheus (Debian's package) with two watchers, using
//! docs/PROMETHEUS.md's configuration and rules: it scrapes the first
//! watcher's `/metrics` (a refused target's alarm shows, and the
//! documented `WatchTargetDown` fires), and schedules landmark checks
//! through both watchers' `/probe` with the documented hashmod relabeling,
//! each target keeping its own `instance`. Loopback addresses and a 1 s
//! interval are substituted in; nothing goes to the documented hosts.

use std::net::SocketAddr;
use std::time::Duration;

use health_server::{Builder, HealthServer, Landmark};
use test_support::prometheus::{self, Prometheus};

mod common;
use common::free_port;
use common::watcher::{is, scratch, write_config, Watcher};

/// A watcher with the exporter on a free port and `targets` (TOML).
fn watcher(tag: &str, targets: &str) -> (Watcher, SocketAddr) {
    let dir = scratch(tag);
    let listen: SocketAddr = free_port().parse().unwrap();
    let config = write_config(&dir, &format!("http_listen = \"{listen}\"\n{targets}"));
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    (w, listen)
}

/// An endpoint whose main thread answers `l` (asked, so it never goes
/// stale as a published one would after 5 s).
fn landmark(l: Landmark) -> HealthServer {
    let (asks, rx) = health_server::channel();
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(l.clone());
        }
    });
    Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap()
}

#[test]
fn prometheus_scrapes_the_watcher_and_probes_through_the_fleet() {
    if !prometheus::installed() {
        return;
    }
    let refused = free_port();
    let (mut a, a_addr) = watcher(
        "prom-a",
        &format!(
            "[[target]]\nname = \"refused\"\nkind = \"tcp\"\naddr = \"{refused}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n"
        ),
    );
    let (_b, b_addr) = watcher(
        "prom-b",
        "[[target]]\nname = \"idle\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"1h\"\n",
    );
    a.wait_for(
        "raise refused",
        Duration::from_secs(10),
        is("raise", "refused"),
    );
    let services = [
        landmark(Landmark::ok("fine")),
        landmark(Landmark::ok("fine")),
        landmark(Landmark::degraded("lagging")),
    ];
    let addrs: Vec<String> = services
        .iter()
        .map(|s| s.local_addr().to_string())
        .collect();

    let (config, rules) = prometheus::documented(&[
        // No service endpoint here: a closed loopback port.
        (
            "['10.0.0.5:9101', '10.0.0.6:9101']",
            format!("['127.0.0.1:{}']", free_port()),
        ),
        ("['localhost:9102']", format!("['{a_addr}']")),
        (
            "['10.0.0.5:9100', '10.0.0.6:9100', '10.0.0.7:9100']",
            format!("['{}', '{}', '{}']", addrs[0], addrs[1], addrs[2]),
        ),
        ("watch-a.example.net:9102", a_addr.to_string()),
        ("watch-b.example.net:9102", b_addr.to_string()),
    ]);
    let prom = Prometheus::start("watch", &config, &rules);

    // The watcher's own metrics.
    let raised = r#"watch_alarm_raised{job="watch",target="refused",kind="tcp"}"#;
    prom.wait_for("scraping the watcher", Duration::from_secs(30), || {
        prom.value(raised) == Some(1.0)
    });
    assert_eq!(
        prom.value(r#"watch_target_up{job="watch",target="refused"}"#),
        Some(0.0)
    );
    prom.wait_for("firing WatchTargetDown", Duration::from_secs(15), || {
        prom.firing("WatchTargetDown")
    });

    // Landmark checks through the watchers' /probe, one watcher each.
    let success = |addr: &str| {
        prom.value(&format!(
            r#"probe_success{{job="landmark-probe",instance="{addr}"}}"#
        ))
    };
    prom.wait_for("probing every service", Duration::from_secs(30), || {
        addrs.iter().all(|a| success(a).is_some())
    });
    assert_eq!(success(&addrs[0]), Some(1.0));
    assert_eq!(success(&addrs[1]), Some(1.0));
    // Degraded is not ok: the landmark module expects ok.
    assert_eq!(success(&addrs[2]), Some(0.0));
    assert_eq!(
        prom.value(&format!(
            r#"probe_landmark_state{{instance="{}",state="degraded"}}"#,
            addrs[2]
        )),
        Some(1.0)
    );
    // Each service was probed through exactly one watcher: one series
    // per instance.
    assert_eq!(
        prom.value(r#"count(probe_success{job="landmark-probe"})"#),
        Some(3.0)
    );
}
