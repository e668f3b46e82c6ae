//! A hung main loop reaches the real HAProxy (Debian's package) even while
//! the endpoint is flooded: `landmark_service` with its default limits,
//! under the descriptor limit systemd gives a service (1024, so the
//! endpoint holds at most 256 connections), its HTTP port flooded by 600
//! clients re-sending checks, and HAProxy on docs/HAPROXY.md's agent-check
//! config. Healthy under the flood, it stays UP; hung under the flood,
//! HAProxy takes it DOWN within 3 s, because connections the endpoint
//! cannot serve are told `down` once it knows the main thread missed its
//! deadline; recovered, it is UP again. Everything on loopback, the flood
//! bounded in time.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_support::haproxy::{documented_config, Haproxy, Ports};

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>().unwrap().port()
}

/// 600 clients that each connect, ask `GET /healthz`, read the reply (or
/// the close) and go again, until `stop` (or a minute at most).
fn flood(
    http: SocketAddr,
    stop: Arc<AtomicBool>,
    replies: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let until = Instant::now() + Duration::from_secs(60);
            let tasks: Vec<_> = (0..600)
                .map(|_| {
                    let (stop, replies) = (stop.clone(), replies.clone());
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                            let Ok(mut s) = tokio::net::TcpStream::connect(http).await else {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                continue;
                            };
                            let _ = s
                                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                                .await;
                            let mut sink = Vec::new();
                            let read = s.read_to_end(&mut sink);
                            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), read).await {
                                replies.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        });
    })
}

#[test]
fn a_hung_main_loop_reaches_haproxy_under_flood() {
    if !test_support::require("haproxy") || !test_support::require("prlimit") {
        return;
    }
    let (listen, health, agent, http) = (
        test_support::free_port(),
        test_support::free_port(),
        test_support::free_port(),
        test_support::free_port(),
    );
    // systemd's default soft limit for a service's descriptors.
    let child = Command::new("prlimit")
        .args(["--nofile=1024:1024", "--"])
        .arg(test_support::built("landmark_service"))
        .args([
            "--listen", &listen, "--health", &health, "--agent", &agent, "--http", &http,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _service = Service(child);
    let t = Instant::now();
    let mut line = loop {
        if let Ok(s) = TcpStream::connect(&listen) {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the service never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    line.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let cfg = documented_config(
        Ports {
            service: port_of(&listen),
            health: port_of(&health),
            agent: port_of(&agent),
        },
        "500ms",
    );
    let haproxy = Haproxy::start("flood", &cfg);
    let up = |s: &test_support::haproxy::ServerStat| s.status == "UP";
    haproxy.wait_for("be_agent", "UP", up);

    // Healthy under the flood: never taken out.
    let (stop, replies) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let flooding = flood(http.parse().unwrap(), stop.clone(), replies.clone());
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        let s = haproxy.stat("be_agent", "web1").expect("show stat");
        assert_eq!(
            s.status, "UP",
            "a healthy service under flood was taken out: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        replies.load(Ordering::Relaxed) > 1000,
        "the flood did not run"
    );

    // Hung under the flood: DOWN within 3 s.
    writeln!(line, "HANG 6000").unwrap();
    let hung = Instant::now();
    let s = haproxy.wait_for_within(
        "be_agent",
        "DOWN while hung under flood",
        Duration::from_secs(3),
        |s| s.status.starts_with("DOWN"),
    );
    assert!(
        s.last_agent.contains("did not answer") || s.status.contains("agent"),
        "{s:?}"
    );
    eprintln!("DOWN after {:?}: {s:?}", hung.elapsed());
    stop.store(true, Ordering::Relaxed);
    flooding.join().unwrap();
    // The hang ends: back in the pool.
    let mut ack = String::new();
    BufReader::new(&line).read_line(&mut ack).unwrap();
    assert!(ack.starts_with("OK hung"), "{ack}");
    haproxy.wait_for("be_agent", "UP after the hang", up);
}
