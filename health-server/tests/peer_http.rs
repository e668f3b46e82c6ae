//! The HTTP endpoint against real HTTP clients: curl and Nagios check_http
//! (Debian's monitoring-plugins-basic). Also machine-checks the Kubernetes
//! manifests of docs/KUBERNETES.md: their httpGet paths answer 200 on a
//! healthy service, and their exec commands run and pass.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use health_server::{HealthServer, Landmark};

const CHECK_HTTP: &str = "/usr/lib/nagios/plugins/check_http";

fn endpoint() -> (HealthServer, Arc<Mutex<Landmark>>) {
    let state = Arc::new(Mutex::new(Landmark::ok("serving")));
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .http_bind("127.0.0.1:0".parse().unwrap())
        .answer_deadline(Duration::from_millis(200))
        .spawn(rx)
        .unwrap();
    let s = Arc::clone(&state);
    answering(asks, move || s.lock().unwrap().clone());
    (server, state)
}

fn run(program: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(program).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn curl_sees_status_and_landmark() {
    if !require("curl") {
        return;
    }
    let (server, state) = endpoint();
    let base = format!("http://{}", server.http_addr().unwrap());
    let code = |path: &str| {
        run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("{base}{path}"),
            ],
        )
        .1
    };
    assert_eq!(code("/healthz"), "200");
    let (rc, body) = run("curl", &["-fsS", &format!("{base}/readyz")]);
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["state"], "ok");
    *state.lock().unwrap() = Landmark::drain("restart");
    assert_eq!(code("/livez"), "200");
    assert_eq!(code("/readyz"), "503");
    assert_eq!(
        run(
            "curl",
            &["-fsS", "-o", "/dev/null", &format!("{base}/readyz")]
        )
        .0,
        22
    );
    assert_eq!(code("/nope"), "404");
    server.shutdown_blocking();
}

#[test]
fn nagios_check_http_ok_and_critical() {
    if !require(CHECK_HTTP) {
        return;
    }
    let (server, state) = endpoint();
    let port = server.http_addr().unwrap().port().to_string();
    let check = |path: &str| run(CHECK_HTTP, &["-I", "127.0.0.1", "-p", &port, "-u", path]);
    let (rc, out) = check("/healthz");
    assert_eq!(rc, 0, "{out}");
    assert!(out.starts_with("HTTP OK"), "{out}");
    *state.lock().unwrap() = Landmark::fail("disk full");
    let (rc, out) = check("/healthz");
    assert_eq!(rc, 2, "{out}");
    assert!(out.contains("503"), "{out}");
    server.shutdown_blocking();
}

#[test]
fn kubernetes_manifests_in_docs_work() {
    let (server, _state) = endpoint();
    let http = server.http_addr().unwrap();
    let native = server.local_addr();
    // The probe binary sits beside this test's `deps/` directory.
    let exe = std::env::current_exe().unwrap();
    let probe = exe.parent().unwrap().parent().unwrap().join("health-probe");
    let mut paths = 0;
    let mut commands = 0;
    for block in doc_blocks("KUBERNETES.md", "yaml") {
        for line in block.lines().map(str::trim) {
            if let Some(path) = line.strip_prefix("path: ") {
                let mut s = connect(http);
                use std::io::{Read, Write};
                write!(s, "GET {path} HTTP/1.1\r\nHost: k\r\n\r\n").unwrap();
                let mut resp = String::new();
                s.read_to_string(&mut resp).unwrap();
                assert!(resp.starts_with("HTTP/1.1 200 "), "{path}: {resp}");
                paths += 1;
            }
            if let Some(cmd) = line.strip_prefix("command: ") {
                let argv: Vec<String> =
                    serde_json::from_str(cmd).expect("exec command is a JSON array");
                assert_eq!(argv[0], "/usr/bin/health-probe");
                // Built by `cargo test --workspace`, the README's command.
                assert!(
                    probe.exists(),
                    "{} not built: run cargo test --workspace",
                    probe.display()
                );
                let args: Vec<String> = argv[1..]
                    .iter()
                    .map(|a| a.replace("127.0.0.1:9100", &native.to_string()))
                    .collect();
                let status = Command::new(&probe).args(&args).status().unwrap();
                assert!(status.success(), "{cmd} failed against a healthy service");
                commands += 1;
            }
        }
    }
    assert!(
        paths >= 2 && commands >= 2,
        "paths {paths}, commands {commands}"
    );
    server.shutdown_blocking();
}
