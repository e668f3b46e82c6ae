//! gRPC health v1 against the gRPC project's own client (PyPI `grpcio` and
//! `grpcio-health-checking`, which `.ci/run` installs), on the example
//! service's `--grpc` port with the endpoint's defaults: Check of the
//! whole service and of a component, NOT_FOUND for an unknown one, List,
//! and Watch through a hang of the main loop and a drain.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_health_client.py");

/// Whether Python's grpcio and grpcio-health-checking are there; in CI
/// (which installs them) their absence fails the test.
fn grpc_client_installed() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import grpc, grpc_health.v1.health_pb2"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 grpcio and grpcio-health-checking are required in CI (.ci/run installs them)"
        );
        eprintln!("SKIPPED: python3 grpcio and grpcio-health-checking are not installed");
    }
    found
}

fn example() -> PathBuf {
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/landmark_service");
    assert!(dir.exists(), "{} not built", dir.display());
    dir
}

/// The example service with its line protocol, health and gRPC ports.
struct Service {
    child: Child,
    listen: SocketAddr,
    grpc: SocketAddr,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Service {
    let (listen, health, grpc) = (
        test_support::free_addr(),
        test_support::free_addr(),
        test_support::free_addr(),
    );
    let child = Command::new(example())
        .args(["--listen", &listen.to_string()])
        .args(["--health", &health.to_string()])
        .args(["--grpc", &grpc.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(listen).is_err() || TcpStream::connect(grpc).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the service did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Service {
        child,
        listen,
        grpc,
    }
}

impl Service {
    /// One line-protocol command, and its reply.
    fn say(&self, line: &str) -> String {
        let mut s = TcpStream::connect(self.listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        writeln!(s, "{line}").unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).unwrap();
        reply.trim_end().to_string()
    }

    /// The Python client's output for `args`.
    fn client(&self, args: &[&str]) -> String {
        let out = Command::new("python3")
            .arg(CLIENT)
            .arg(self.grpc.to_string())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }
}

#[test]
fn check_list_and_an_unknown_service_with_the_grpc_projects_client() {
    if !grpc_client_installed() {
        return;
    }
    let svc = start();
    assert_eq!(svc.client(&["check", ""]), "SERVING");
    assert_eq!(svc.client(&["check", "connections"]), "SERVING");
    assert_eq!(svc.client(&["check", "no-such-part"]), "ERROR NOT_FOUND");
    assert_eq!(svc.client(&["list"]), "'' SERVING\n'connections' SERVING");
    // Degraded serves; fail does not, for the whole and every component.
    assert_eq!(svc.say("SET degraded cache cold"), "OK");
    assert_eq!(svc.client(&["check", ""]), "SERVING");
    assert_eq!(svc.say("SET fail disk full"), "OK");
    assert_eq!(svc.client(&["check", ""]), "NOT_SERVING");
    assert_eq!(
        svc.client(&["list"]),
        "'' NOT_SERVING\n'connections' NOT_SERVING"
    );
}

#[test]
fn watch_follows_a_hang_and_a_drain_with_the_grpc_projects_client() {
    if !grpc_client_installed() {
        return;
    }
    let svc = start();
    // SERVING, then NOT_SERVING (the hang), SERVING, NOT_SERVING (drain),
    // SERVING: five statuses, each read as it comes.
    let mut watch = Command::new("python3")
        .arg(CLIENT)
        .args([&svc.grpc.to_string(), "watch", "", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, statuses) = mpsc::channel();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), line));
        }
    });
    let next = || {
        statuses
            .recv_timeout(Duration::from_secs(10))
            .expect("a status")
    };
    assert_eq!(next().1, "SERVING");
    // The main loop hung for 2 s: NOT_SERVING within the 1 s period and
    // the 500 ms answer deadline, SERVING again once it answers.
    let hang = Instant::now();
    let hung = std::thread::spawn({
        let listen = svc.listen;
        move || {
            let mut s = TcpStream::connect(listen).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            writeln!(s, "HANG 2000").unwrap();
            let mut reply = String::new();
            BufReader::new(s).read_line(&mut reply).unwrap();
            reply
        }
    });
    let (at, status) = next();
    assert_eq!(status, "NOT_SERVING");
    let took = at.duration_since(hang);
    assert!(took < Duration::from_millis(1900), "{took:?}");
    assert_eq!(next().1, "SERVING");
    assert_eq!(hung.join().unwrap().trim_end(), "OK hung 2000ms");
    assert_eq!(svc.say("SET drain deploying"), "OK");
    assert_eq!(next().1, "NOT_SERVING");
    assert_eq!(svc.say("SET ok"), "OK");
    assert_eq!(next().1, "SERVING");
    assert!(watch.wait().unwrap().success());
}

#[test]
fn watches_are_bounded_per_source_and_garbage_is_closed() {
    if !grpc_client_installed() {
        return;
    }
    let svc = start();
    // Eight Watches from this source (the default), held open...
    let mut held: Vec<Child> = (0..8)
        .map(|_| {
            Command::new("python3")
                .arg(CLIENT)
                .args([&svc.grpc.to_string(), "watch", "", "1000"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut first = Vec::new();
    for w in &mut held {
        let mut line = String::new();
        BufReader::new(w.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        first.push(line.trim_end().to_string());
    }
    assert!(first.iter().all(|l| l == "SERVING"), "{first:?}");
    // ... and the ninth is refused, while a Check is still answered.
    assert_eq!(svc.client(&["watch", "", "1"]), "ERROR RESOURCE_EXHAUSTED");
    assert_eq!(svc.client(&["check", ""]), "SERVING");
    for mut w in held {
        let _ = w.kill();
        let _ = w.wait();
    }
    // Bytes that are no HTTP/2: the connection is closed, not held.
    let mut s = TcpStream::connect(svc.grpc).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let closed = std::io::Read::read_to_end(&mut s, &mut rest);
    assert!(closed.is_ok(), "not closed within 10 s: {closed:?}");
    assert_eq!(svc.client(&["check", ""]), "SERVING");
}

#[test]
fn the_kubernetes_manifests_grpc_services_are_serving() {
    if !grpc_client_installed() {
        return;
    }
    let svc = start();
    let mut services = 0;
    for block in test_support::doc_blocks("KUBERNETES.md", "yaml") {
        let mut in_grpc = false;
        for line in block.lines().map(str::trim) {
            if line == "grpc:" {
                in_grpc = true;
            } else if let Some(service) = line.strip_prefix("service: ").filter(|_| in_grpc) {
                let service: String = serde_json::from_str(service).expect("a quoted service");
                assert_eq!(svc.client(&["check", &service]), "SERVING", "{service:?}");
                services += 1;
                in_grpc = false;
            }
        }
    }
    assert!(
        services >= 2,
        "{services} gRPC probes in docs/KUBERNETES.md"
    );
}
