//! The agent-check and HTTP endpoints over raw loopback sockets: the same
//! landmark, in HAProxy's and HTTP's words.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use health_server::{HealthServer, Landmark, State, Weight};

struct Endpoint {
    server: HealthServer,
    state: Arc<Mutex<Landmark>>,
}

fn endpoint() -> Endpoint {
    let state = Arc::new(Mutex::new(Landmark::ok("serving")));
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .agent_bind("127.0.0.1:0".parse().unwrap())
        .http_bind("127.0.0.1:0".parse().unwrap())
        .answer_deadline(Duration::from_millis(200))
        .read_timeout(Duration::from_millis(500))
        .spawn(rx)
        .unwrap();
    let s = Arc::clone(&state);
    answering(asks, move || s.lock().unwrap().clone());
    Endpoint { server, state }
}

impl Endpoint {
    fn set(&self, l: Landmark) {
        *self.state.lock().unwrap() = l;
    }

    fn agent(&self) -> String {
        read_all(self.server.agent_addr().unwrap(), b"")
    }

    fn http(&self, request: &str) -> (u16, String) {
        let text = read_all(self.server.http_addr().unwrap(), request.as_bytes());
        let (head, body) = text.split_once("\r\n\r\n").expect("a full HTTP response");
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(head.contains("Content-Type: application/json"), "{head}");
        (code, body.to_string())
    }

    fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let (code, body) = self.http(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        (code, serde_json::from_str(&body).expect("JSON body"))
    }
}

#[test]
fn agent_lines_follow_the_landmark() {
    let e = endpoint();
    assert_eq!(e.agent(), "up ready 100%\n");
    e.set(Landmark::degraded("lag").with_weight(Weight::new(40).unwrap()));
    assert_eq!(e.agent(), "up ready 40%\n");
    e.set(Landmark::drain("restart at 03:00"));
    assert_eq!(e.agent(), "up drain\n");
    e.set(Landmark::fail("disk full"));
    assert_eq!(e.agent(), "down #disk full\n");
    e.set(Landmark::ok("serving"));
    e.server.drain();
    assert_eq!(
        e.agent(),
        "up drain\n",
        "the handle's drain applies to agents too"
    );
    e.server.shutdown_blocking();
}

#[test]
fn agent_reports_a_hung_main_thread_as_down() {
    let (asks, rx) = health_server::channel();
    let server = loopback()
        .agent_bind("127.0.0.1:0".parse().unwrap())
        .answer_deadline(Duration::from_millis(100))
        .spawn(rx)
        .unwrap();
    let line = read_all(server.agent_addr().unwrap(), b"");
    assert_eq!(line, "down #main thread did not answer within 100ms\n");
    drop(asks);
    server.shutdown_blocking();
}

#[test]
fn http_paths_and_states() {
    let e = endpoint();
    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, body) = e.get(path);
        assert_eq!(code, 200, "{path}");
        assert_eq!(body["state"], "ok");
        assert_eq!(body["detail"], "serving");
    }
    e.set(Landmark::degraded("lag"));
    assert_eq!(e.get("/healthz").0, 200);
    assert_eq!(e.get("/healthz?expect=ok").0, 503);
    e.set(Landmark::drain("restart"));
    assert_eq!(e.get("/livez").0, 200, "draining is live");
    assert_eq!(e.get("/readyz").0, 503, "draining is not ready");
    assert_eq!(e.get("/healthz").0, 503);
    assert_eq!(e.get("/healthz?expect=ok,drain").0, 200);
    e.set(Landmark::fail("disk full"));
    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, body) = e.get(path);
        assert_eq!(code, 503, "{path}");
        assert_eq!(body["state"], "fail");
        assert_eq!(body["detail"], "disk full");
    }
    e.server.shutdown_blocking();
}

#[test]
fn http_components_methods_and_errors() {
    let e = endpoint();
    e.set(Landmark::ok("x").with_component("db", State::Degraded, "lag 12s"));
    let (code, body) = e.get("/healthz?component=db");
    assert_eq!(code, 200);
    assert_eq!(body["component"], "db");
    assert_eq!(body["state"], "degraded");
    assert_eq!(e.get("/healthz?component=db&expect=ok").0, 503);
    let (code, body) = e.get("/healthz?component=cache");
    assert_eq!(code, 404);
    assert!(body["error"].as_str().unwrap().contains("cache"));
    assert_eq!(e.get("/nothing-here").0, 404);
    assert_eq!(e.get("/healthz?expect=up").0, 400);
    let (code, _) = e.http("POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(code, 405);
    let (code, body) = e.http("HEAD /healthz HTTP/1.1\r\n\r\n");
    assert_eq!((code, body.as_str()), (200, ""));
    let (code, _) = e.http("this is not http\r\n\r\n");
    assert_eq!(code, 400);
    let huge = format!("GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    let (code, _) = e.http(&huge);
    assert_eq!(code, 431);
    e.server.shutdown_blocking();
}

#[test]
fn http_silent_peer_is_closed_after_the_read_timeout() {
    let e = endpoint();
    let mut s = TcpStream::connect(e.server.http_addr().unwrap()).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap(); // never finishes
    let t = std::time::Instant::now();
    assert!(is_closed(&mut s));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(e.get("/healthz").0, 200, "others still served");
    e.server.shutdown_blocking();
}
