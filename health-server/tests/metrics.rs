//! `GET /metrics` on the HTTP listener, with the default settings: the
//! landmark as a one-hot gauge that turns to `fail` on the next scrape
//! after the main loop hangs, checks counted per protocol, the Prometheus
//! text format 0.0.4 or OpenMetrics by `Accept`, label values escaped, the
//! connection recorder's counts, and the same metrics in a service's own
//! registry. `promtool check metrics` (Debian's prometheus package) must
//! accept the exposition.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
#[cfg(feature = "connections")]
use health_server::connections;
use health_server::{HealthServer, Landmark, State};
use test_support::{promtool_accepts, sample};

struct Endpoint {
    server: HealthServer,
    state: Arc<Mutex<Landmark>>,
    hung: Arc<AtomicBool>,
}

fn endpoint(b: health_server::Builder) -> Endpoint {
    let state = Arc::new(Mutex::new(Landmark::ok("serving")));
    let hung = Arc::new(AtomicBool::new(false));
    let (asks, rx) = health_server::channel();
    let server = b
        .http_bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let (s, h) = (Arc::clone(&state), Arc::clone(&hung));
    answering(asks, move || {
        // A hung main loop: nothing answered until it turns again.
        while h.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        s.lock().unwrap().clone()
    });
    Endpoint {
        server,
        state,
        hung,
    }
}

/// A raw HTTP request on a fresh connection: status, headers, body.
fn http(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let text = read_all(addr, request.as_bytes());
    let (head, body) = text.split_once("\r\n\r\n").expect("a full HTTP response");
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head.to_string(), body.to_string())
}

impl Endpoint {
    fn scrape(&self) -> String {
        let (code, head, body) = http(
            self.server.http_addr().unwrap(),
            "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(code, 200, "{head}\n{body}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        body
    }
}

fn state_of(body: &str, component: &str) -> Vec<(&'static str, f64)> {
    State::ALL
        .iter()
        .map(|s| {
            let series = format!(
                "landmark_state{{component=\"{component}\",state=\"{}\"}}",
                s.as_str()
            );
            (
                s.as_str(),
                sample(body, &series).unwrap_or_else(|| panic!("no {series} in\n{body}")),
            )
        })
        .collect()
}

#[test]
fn a_hung_main_loop_shows_as_fail_on_the_next_scrape() {
    let e = endpoint(loopback());
    let body = e.scrape();
    assert_eq!(
        state_of(&body, ""),
        [
            ("ok", 1.0),
            ("degraded", 0.0),
            ("drain", 0.0),
            ("fail", 0.0)
        ]
    );
    assert_eq!(sample(&body, "health_asks_total"), Some(1.0));
    assert_eq!(sample(&body, "health_asks_unanswered_total"), Some(0.0));
    assert_eq!(sample(&body, "landmark_answer_seconds_count"), Some(1.0));
    promtool_accepts(&body);

    e.hung.store(true, Ordering::SeqCst);
    let t = Instant::now();
    let body = e.scrape();
    // The default answer deadline, 500 ms, bounds the scrape.
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(
        state_of(&body, ""),
        [
            ("ok", 0.0),
            ("degraded", 0.0),
            ("drain", 0.0),
            ("fail", 1.0)
        ]
    );
    // Still hung: the next scrape waits on the same ask (no new one), now
    // counted as unanswered.
    let body = e.scrape();
    assert_eq!(state_of(&body, "")[3], ("fail", 1.0));
    assert_eq!(sample(&body, "health_asks_total"), Some(2.0), "{body}");
    assert_eq!(
        sample(&body, "health_asks_unanswered_total"),
        Some(1.0),
        "{body}"
    );

    e.hung.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let body = e.scrape();
        if state_of(&body, "")[0] == ("ok", 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn checks_are_counted_per_protocol_and_outcome() {
    let e = endpoint(loopback().agent_bind("127.0.0.1:0".parse().unwrap()));
    check(e.server.local_addr());
    check(e.server.local_addr());
    let http_addr = e.server.http_addr().unwrap();
    assert_eq!(http(http_addr, "GET /healthz HTTP/1.1\r\n\r\n").0, 200);
    *e.state.lock().unwrap() = Landmark::fail("disk full");
    assert_eq!(http(http_addr, "GET /readyz HTTP/1.1\r\n\r\n").0, 503);
    let agent = read_all(e.server.agent_addr().unwrap(), b"");
    assert!(agent.starts_with("down"), "{agent}");
    // An unknown component is an error, counted as such.
    assert_eq!(
        http(http_addr, "GET /healthz?component=nosuch HTTP/1.1\r\n\r\n").0,
        404
    );

    let body = e.scrape();
    let n = |labels: &str| sample(&body, &format!("health_checks_total{{{labels}}}"));
    assert_eq!(n("protocol=\"native\",outcome=\"ok\""), Some(2.0), "{body}");
    assert_eq!(n("protocol=\"http\",outcome=\"ok\""), Some(1.0), "{body}");
    assert_eq!(n("protocol=\"http\",outcome=\"fail\""), Some(1.0), "{body}");
    assert_eq!(
        n("protocol=\"agent\",outcome=\"fail\""),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        n("protocol=\"http\",outcome=\"error\""),
        Some(1.0),
        "{body}"
    );
    // Scrapes are not checks.
    assert!(!body.contains("outcome=\"drain\""), "{body}");
    for reason in ["allow_list", "source_full", "full"] {
        let series = format!("health_connections_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(sample(&body, &series), Some(0.0), "{body}");
    }
    for reason in ["per_source", "total", "descriptors"] {
        let series = format!("health_connections_evicted_total{{reason=\"{reason}\"}}");
        assert_eq!(sample(&body, &series), Some(0.0), "{body}");
    }
    promtool_accepts(&body);
}

#[test]
fn components_weight_and_drain_with_hostile_names_escaped() {
    let e = endpoint(loopback());
    *e.state.lock().unwrap() = Landmark::degraded("slow feed")
        .with_weight(health_server::Weight::new(40).unwrap())
        .with_component("feed", State::Fail, "no data")
        .with_component("a\"b\\c\nd</script>", State::Ok, "");
    let body = e.scrape();
    assert_eq!(state_of(&body, "")[1], ("degraded", 1.0));
    assert_eq!(state_of(&body, "feed")[3], ("fail", 1.0));
    // Quote, backslash and newline escaped as the format says; the line
    // stays one sample.
    assert_eq!(state_of(&body, "a\\\"b\\\\c\\nd</script>")[0], ("ok", 1.0));
    assert_eq!(sample(&body, "landmark_weight"), Some(40.0));
    promtool_accepts(&body);

    // Draining raises the whole service's state, as checks answer it.
    e.server.drain();
    let body = e.scrape();
    assert_eq!(state_of(&body, "")[2], ("drain", 1.0), "{body}");
    e.server.resume();
    let body = e.scrape();
    assert_eq!(state_of(&body, "")[1], ("degraded", 1.0), "{body}");
}

#[test]
fn openmetrics_when_the_scraper_asks_for_it() {
    let e = endpoint(loopback());
    let (code, head, body) = http(
        e.server.http_addr().unwrap(),
        "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n",
    );
    assert_eq!(code, 200);
    assert!(
        head.contains("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    // OpenMetrics names a counter family without `_total`.
    assert!(body.contains("# TYPE health_asks counter\n"), "{body}");
    assert!(body.contains("\nhealth_asks_total 1\n"), "{body}");
    // The 0.0.4 text names it with `_total`, and has no EOF.
    let text = e.scrape();
    assert!(
        text.contains("# TYPE health_asks_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    // HEAD: the headers only; other methods are refused.
    let (code, _, body) = http(
        e.server.http_addr().unwrap(),
        "HEAD /metrics HTTP/1.1\r\n\r\n",
    );
    assert_eq!((code, body.as_str()), (200, ""));
    let (code, _, _) = http(
        e.server.http_addr().unwrap(),
        "POST /metrics HTTP/1.1\r\n\r\n",
    );
    assert_eq!(code, 405);
}

#[test]
#[cfg(feature = "connections")]
fn the_recorder_counts_connections_per_port_and_state() {
    let svc = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = svc.local_addr().unwrap().port();
    let _clients: Vec<_> = (0..3)
        .map(|_| {
            let c = std::net::TcpStream::connect(svc.local_addr().unwrap()).unwrap();
            (c, svc.accept().unwrap().0)
        })
        .collect();
    let e = endpoint(loopback().connections(connections::Config::new().port(port, "epg")));
    let body = e.scrape();
    let n = |state: &str| {
        sample(
            &body,
            &format!("tcp_connections{{port=\"{port}\",service=\"epg\",state=\"{state}\"}}"),
        )
    };
    assert_eq!(n("ESTABLISHED"), Some(3.0), "{body}");
    assert_eq!(n("LISTEN"), Some(1.0), "{body}");
    assert_eq!(n("CLOSE_WAIT"), Some(0.0), "{body}");
    // The recorder's component is a component like the service's own.
    assert_eq!(state_of(&body, "connections")[0], ("ok", 1.0), "{body}");
    promtool_accepts(&body);
}

#[test]
fn a_service_registers_the_same_metrics_in_its_own_registry() {
    let e = endpoint(loopback());
    let mut registry = health_server::prometheus_client::registry::Registry::default();
    e.server.metrics().register(&mut registry);
    check(e.server.local_addr());
    let mut text = String::new();
    health_server::prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("landmark_state{component=\"\",state=\"ok\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("health_checks_total{protocol=\"native\",outcome=\"ok\"} 1\n"),
        "{text}"
    );
}
