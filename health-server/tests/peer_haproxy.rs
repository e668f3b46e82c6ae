//! The real HAProxy (Debian's package) following the landmark, both ways of
//! docs/HAPROXY.md: agent-check and tcp-check with the native protocol. The
//! configuration run is the document's, with loopback addresses and short
//! intervals substituted in. Every `haproxy` block of the document must
//! also pass `haproxy -c`.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use health_server::{Landmark, Weight};
use test_support::haproxy::{Haproxy, Ports, ServerStat};

#[test]
fn documented_configs_pass_haproxy_check() {
    if !require("haproxy") {
        return;
    }
    let dir = test_support::scratch("haproxy-c");
    for (i, block) in doc_blocks("HAPROXY.md", "haproxy").iter().enumerate() {
        let path = dir.join(format!("block{i}.cfg"));
        std::fs::write(&path, block).unwrap();
        let out = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docs/HAPROXY.md block {i} fails haproxy -c:\n{block}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The check is not a formality: a broken line is refused.
    let path = dir.join("broken.cfg");
    std::fs::write(&path, "backend b\n    tcp-check expect nonsense\n").unwrap();
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn haproxy_follows_the_landmark_both_ways() {
    if !require("haproxy") {
        return;
    }
    // The endpoint, with a main thread the test can set or hang.
    let state = Arc::new(Mutex::new(Landmark::ok("serving")));
    let hung = Arc::new(AtomicBool::new(false));
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .agent_bind("127.0.0.1:0".parse().unwrap())
        .answer_deadline(Duration::from_millis(200))
        .spawn(rx)
        .unwrap();
    let (s, h) = (Arc::clone(&state), Arc::clone(&hung));
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            while h.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            ask.answer(s.lock().unwrap().clone());
        }
    });
    // The service's own port, which HAProxy's plain `check` connects to.
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    let service_addr = service.local_addr().unwrap();
    std::thread::spawn(move || for _ in service.incoming() {});

    let cfg = test_support::haproxy::documented_config(
        Ports {
            service: service_addr.port(),
            health: server.local_addr().port(),
            agent: server.agent_addr().unwrap().port(),
        },
        "200ms",
    );
    let haproxy = Haproxy::start("follows", &cfg);

    let set = |l: Landmark| *state.lock().unwrap() = l;
    let up = |s: &ServerStat| s.status == "UP";
    let down = |s: &ServerStat| s.status.starts_with("DOWN");

    haproxy.wait_for("be_agent", "UP with weight 100", |s| {
        up(s) && s.weight == "100"
    });
    haproxy.wait_for("be_native", "UP", up);

    set(Landmark::ok("serving").with_weight(Weight::new(50).unwrap()));
    haproxy.wait_for("be_agent", "UP with weight 50", |s| {
        up(s) && s.weight == "50"
    });

    set(Landmark::drain("restart at 03:00"));
    haproxy.wait_for("be_agent", "DRAIN", |s| s.status.starts_with("DRAIN"));
    haproxy.wait_for("be_native", "DOWN (drain is not ok)", down);

    set(Landmark::ok("serving"));
    haproxy.wait_for("be_agent", "UP again", |s| up(s) && s.weight == "100");
    haproxy.wait_for("be_native", "UP again", up);

    set(Landmark::fail("disk full"));
    let s = haproxy.wait_for("be_agent", "DOWN", down);
    assert!(
        s.last_agent.contains("disk full") || s.status.contains("agent"),
        "{s:?}"
    );
    haproxy.wait_for("be_native", "DOWN", down);

    set(Landmark::ok("serving"));
    haproxy.wait_for("be_agent", "UP", up);
    haproxy.wait_for("be_native", "UP", up);

    // A hung main loop: the port still accepts, HAProxy still takes it out.
    hung.store(true, Ordering::SeqCst);
    haproxy.wait_for("be_agent", "DOWN while hung", down);
    haproxy.wait_for("be_native", "DOWN while hung", down);
    hung.store(false, Ordering::SeqCst);
    haproxy.wait_for("be_agent", "UP after recovery", up);
    haproxy.wait_for("be_native", "UP after recovery", up);

    drop(haproxy);
    server.shutdown_blocking();
}
