//! Helpers the probe's integration tests share: running the binary, reading
//! its output, peers that never answer, and network namespaces.
#![allow(dead_code)] // each test crate uses its own subset

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub mod watcher;

pub const PROBE: &str = env!("CARGO_BIN_EXE_health-probe");

/// Runs the probe with `args`; its output and how long it took.
pub fn run_probe(args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = Command::new(PROBE)
        .args(args)
        .output()
        .expect("run health-probe");
    (out, t.elapsed())
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A loopback address nothing listens on right now.
pub fn free_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A listener that never accepts, with its accept queue filled: the kernel
/// drops further SYNs, so a connect gets no answer. Keep the returned
/// socket and fillers alive for the test.
pub fn unanswered_listener() -> (SocketAddr, socket2::Socket, Vec<TcpStream>) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break, // the queue is full
        }
    }
    (addr, sock, fillers)
}

/// Runs `program args` in a new network namespace (`unshare --net`): no
/// routes, no DNS reachable. Needs root; `None` with a note where
/// namespaces cannot be made, which fails the test under CI.
pub fn in_new_netns(program: &str, args: &[&str]) -> Option<Output> {
    let out = Command::new("unshare")
        .arg("--net")
        .arg(program)
        .args(args)
        .output();
    match out {
        Ok(o) if !String::from_utf8_lossy(&o.stderr).starts_with("unshare:") => Some(o),
        other => {
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot create a network namespace in CI: {other:?}"
            );
            eprintln!("SKIPPED: cannot create a network namespace: {other:?}");
            None
        }
    }
}

/// An endpoint on a free loopback port whose main thread answers `landmark`.
pub fn serving(landmark: health_server::Landmark) -> (health_server::HealthServer, String) {
    let (asks, rx) = health_server::channel();
    let server = health_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .answer_deadline(Duration::from_millis(200))
        .spawn(rx)
        .unwrap();
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(landmark.clone());
        }
    });
    let addr = server.local_addr().to_string();
    (server, addr)
}

/// A fake peer that accepts one connection and runs `behave` on it.
pub fn fake(behave: impl FnOnce(std::net::TcpStream) + Send + 'static) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        if let Ok((s, _)) = l.accept() {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            behave(s);
        }
    });
    addr
}

/// A fresh scratch folder for one watcher test (`tag` names it) and a
/// config there: a `database` in the folder, then `targets` (TOML).
/// Returns the folder and the config's path.
pub fn watch_config(tag: &str, targets: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("hp-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("watch.toml");
    let db = dir.join("watch.db").display().to_string();
    std::fs::write(&config, format!("database = {db:?}\n{targets}")).unwrap();
    (dir, config)
}
