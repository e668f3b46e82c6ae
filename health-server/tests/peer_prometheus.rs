//! The real Prometheus (Debian's package) scraping a service's `/metrics`
//! with docs/PROMETHEUS.md's configuration and alert rules: promtool
//! accepts both as documented; then, with a loopback target, a 1 s
//! interval and the rules' `for:` cut to 1 s, Prometheus sees the landmark
//! turn from `ok` to `fail` within 5 s of the main loop hanging, the
//! alerts fire, and the landmark comes back when the loop turns again.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use health_server::{HealthServer, Landmark};

struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempdir::Dir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 GET (the server closes after the reply): status and body.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).ok()?;
    s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

fn promtool(args: &[&str]) {
    let o = Command::new("promtool").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Prometheus {
    /// Prometheus scraping `target` every second with the documented
    /// configuration and rules, ready to answer queries.
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempdir::Dir::new("prometheus");
        let config = doc_blocks("PROMETHEUS.md", "yaml prometheus-config").remove(0);
        let rules = doc_blocks("PROMETHEUS.md", "yaml prometheus-rules").remove(0);
        // As documented first.
        std::fs::write(dir.0.join("prometheus.yml"), &config).unwrap();
        std::fs::write(dir.0.join("landmark-rules.yml"), &rules).unwrap();
        promtool(&[
            "check",
            "config",
            &dir.0.join("prometheus.yml").display().to_string(),
        ]);
        promtool(&[
            "check",
            "rules",
            &dir.0.join("landmark-rules.yml").display().to_string(),
        ]);
        // Then fast, on loopback.
        let config = config
            .replace("interval: 15s", "interval: 1s")
            .replace("scrape_interval: 5s", "scrape_interval: 1s")
            .replace("scrape_timeout: 2s", "scrape_timeout: 1s")
            .replace(
                "['10.0.0.5:9101', '10.0.0.6:9101']",
                &format!("['{target}']"),
            )
            // No watcher here: its job scrapes a closed loopback port.
            .replace(
                "['localhost:9102']",
                &format!("['127.0.0.1:{}']", free_port()),
            );
        assert!(config.contains(&target.to_string()), "{config}");
        let rules = rules
            .replace("for: 2m", "for: 1s")
            .replace("for: 1m", "for: 1s");
        std::fs::write(dir.0.join("prometheus.yml"), &config).unwrap();
        std::fs::write(dir.0.join("landmark-rules.yml"), &rules).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.0.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.0.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let p = Prometheus { child, addr, dir };
        p.wait_for("ready", Duration::from_secs(30), || {
            get(p.addr, "/-/ready").is_some_and(|(code, _)| code == 200)
        });
        p
    }

    fn wait_for(&self, what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
        let t = Instant::now();
        while !done() {
            if t.elapsed() > within {
                let log =
                    std::fs::read_to_string(self.dir.0.join("prometheus.log")).unwrap_or_default();
                panic!("Prometheus: not {what} within {within:?}; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        t.elapsed()
    }

    /// The value of an instant query with one result, if it has one.
    fn value(&self, query: &str) -> Option<f64> {
        let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
        let (code, body) = get(self.addr, &format!("/api/v1/query?query={q}"))?;
        assert_eq!(code, 200, "{query}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let result = v["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query}: {body}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Whether alert `name` is firing.
    fn firing(&self, name: &str) -> bool {
        let Some((200, body)) = get(self.addr, "/api/v1/alerts") else {
            return false;
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["alerts"].as_array().is_some_and(|alerts| {
            alerts
                .iter()
                .any(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
        })
    }
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
    if !require("prometheus") || !require("promtool") {
        return;
    }
    let hung = Arc::new(AtomicBool::new(false));
    let server = service(Arc::clone(&hung));
    let prom = Prometheus::start(server.http_addr().unwrap());
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
