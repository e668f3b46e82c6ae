//! The real Prometheus (Debian's package) scraping a service's `/metrics`
//! with docs/PROMETHEUS.md's configuration and alert rules: promtool
//! accepts both as documented; then, with a loopback target, a 1 s
//! interval and the rules' `for:` cut to 1 s, Prometheus sees the landmark
//! turn from `ok` to `fail` within 5 s of the main loop hanging, the
//! alerts fire, and the landmark comes back when the loop turns again.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use health_server::{HealthServer, Landmark};
use test_support::prometheus::{self, Prometheus};

/// Prometheus scraping `target` every second with the documented
/// configuration and rules.
fn start(target: SocketAddr) -> Prometheus {
    // No watcher here: its jobs go to closed loopback ports.
    let closed = || test_support::free_port();
    let (config, rules) = prometheus::documented(&[
        (
            "['10.0.0.5:9101', '10.0.0.6:9101']",
            format!("['{target}']"),
        ),
        ("['localhost:9102']", format!("['{}']", closed())),
        (
            "['10.0.0.5:9100', '10.0.0.6:9100', '10.0.0.7:9100']",
            format!("['{}']", closed()),
        ),
        ("watch-a.example.net:9102", closed()),
        ("watch-b.example.net:9102", closed()),
    ]);
    Prometheus::start("landmark", &config, &rules)
}

fn service(hung: Arc<AtomicBool>) -> HealthServer {
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .http_bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();
    answering(asks, move || {
        while hung.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        Landmark::ok("serving")
    });
    server
}

#[test]
fn prometheus_sees_a_hung_main_loop_and_the_rules_fire() {
    if !prometheus::installed() {
        return;
    }
    let hung = Arc::new(AtomicBool::new(false));
    let server = service(Arc::clone(&hung));
    let prom = start(server.http_addr().unwrap());
    let ok = r#"landmark_state{job="landmark",component="",state="ok"}"#;
    let fail = r#"landmark_state{job="landmark",component="",state="fail"}"#;
    prom.wait_for("scraping ok", Duration::from_secs(30), || {
        prom.value(ok) == Some(1.0)
    });
    assert_eq!(prom.value(fail), Some(0.0));

    hung.store(true, Ordering::SeqCst);
    let took = prom.wait_for("seeing fail", Duration::from_secs(10), || {
        prom.value(fail) == Some(1.0)
    });
    assert!(
        took <= Duration::from_secs(5),
        "fail seen {took:?} after the hang"
    );
    assert_eq!(prom.value(ok), Some(0.0));
    // The scrape itself still succeeds: the endpoint answers fail.
    assert_eq!(prom.value(r#"up{job="landmark"}"#), Some(1.0));
    prom.wait_for("firing HungMainThread", Duration::from_secs(15), || {
        prom.firing("HungMainThread")
    });
    prom.wait_for("firing LandmarkNotOk", Duration::from_secs(15), || {
        prom.firing("LandmarkNotOk")
    });
    assert!(!prom.firing("HealthEndpointDown"));

    hung.store(false, Ordering::SeqCst);
    prom.wait_for("seeing ok again", Duration::from_secs(10), || {
        prom.value(ok) == Some(1.0)
    });
    prom.wait_for("LandmarkNotOk resolved", Duration::from_secs(15), || {
        !prom.firing("LandmarkNotOk")
    });
}
