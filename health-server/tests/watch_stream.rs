//! `watch` streams (PROTOCOL.md sections 5.7 and 8.7) with the defaults:
//! pushed on change, on a hang within the period plus the answer
//! deadline, on drain and on publication at once, heartbeats when quiet;
//! bounded per source with the connection left for checks; one ask per
//! period however many streams; ended by the client or the shutdown.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use health_proto::blocking::{read_frame, write_frame};
use health_proto::{ErrorCode, LandmarkReply, Push, Request, Response, WatchRequest};
use health_server::{Landmark, State};

fn watch_request(
    component: Option<&str>,
    period_ms: Option<u64>,
    heartbeat_ms: Option<u64>,
) -> Request {
    Request::Watch(WatchRequest {
        component: component.map(str::to_string),
        period_ms,
        heartbeat_ms,
    })
}

/// Opens a stream from `stream`, returning its first response.
fn open_on(stream: &mut TcpStream, id: u32, request: &Request) -> Response {
    write_frame(stream, &request.to_frame(id)).unwrap();
    next(stream, id)
}

/// The stream's next frame, as a response to `id`.
fn next(stream: &mut TcpStream, id: u32) -> Response {
    let frame = read_frame(stream, 1 << 20).expect("a frame of the stream");
    assert_eq!(frame.request_id, id, "request id not echoed");
    Response::from_frame(&frame).unwrap()
}

/// Frames until one that is not a heartbeat.
fn next_change(stream: &mut TcpStream, id: u32) -> LandmarkReply {
    loop {
        let reply = landmark(next(stream, id));
        if reply.push != Some(Push::Heartbeat) {
            return reply;
        }
    }
}

/// A main thread that answers `ok` unless `hung` is set, when it stops
/// answering (as a deadlocked loop does) until it is cleared.
fn hangable(asks: health_server::Asks, hung: Arc<AtomicBool>) -> MainThread {
    answering_with(asks, move || {
        while hung.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Landmark::ok("serving")
    })
}

fn answering_with(
    asks: health_server::Asks,
    make: impl Fn() -> Landmark + Send + 'static,
) -> MainThread {
    answering(asks, make)
}

#[test]
fn a_hang_is_pushed_within_the_period_and_deadline_and_the_recovery_at_once() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let hung = Arc::new(AtomicBool::new(false));
    let _main = hangable(asks, Arc::clone(&hung));
    let mut s = connect(server.local_addr());
    let first = landmark(open_on(&mut s, 7, &watch_request(None, Some(100), None)));
    assert_eq!(first.push, Some(Push::First));
    assert_eq!((first.state, first.detail.as_str()), (State::Ok, "serving"));
    // What the server chose: the period asked for, its default heartbeat.
    assert_eq!(
        (first.period_ms, first.heartbeat_ms),
        (Some(100), Some(10_000))
    );

    let hang_began = Instant::now();
    hung.store(true, Ordering::SeqCst);
    let fail = next_change(&mut s, 7);
    let took = hang_began.elapsed();
    assert_eq!(fail.push, Some(Push::Change));
    assert_eq!(fail.state, State::Fail);
    assert_eq!(fail.detail, "main thread did not answer within 500ms");
    // Period (100 ms) plus the answer deadline (500 ms), with room for a
    // loaded machine; a poll every 1 s would take up to 1.5 s.
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_millis(1400), "{took:?}");

    let recovered = Instant::now();
    hung.store(false, Ordering::SeqCst);
    let ok = next_change(&mut s, 7);
    assert_eq!((ok.state, ok.push), (State::Ok, Some(Push::Change)));
    // The outstanding ask is answered: pushed at once, not a period later.
    assert!(
        recovered.elapsed() < Duration::from_millis(700),
        "{:?}",
        recovered.elapsed()
    );
    server.shutdown_blocking();
}

#[test]
fn heartbeats_come_when_nothing_changes_within_the_server_bounds() {
    let (server, _main) = ok_server(loopback());
    let mut s = connect(server.local_addr());
    // Asked for 10 ms each: the server keeps its bounds (50 ms, 1 s).
    let first = landmark(open_on(&mut s, 3, &watch_request(None, Some(10), Some(10))));
    assert_eq!(
        (first.period_ms, first.heartbeat_ms),
        (Some(50), Some(1000))
    );
    let started = Instant::now();
    let beat = landmark(next(&mut s, 3));
    assert_eq!(beat.push, Some(Push::Heartbeat));
    assert_eq!((beat.state, beat.detail.as_str()), (State::Ok, "fine"));
    let gap = started.elapsed();
    assert!(gap >= Duration::from_millis(900), "{gap:?}");
    assert!(gap < Duration::from_millis(2500), "{gap:?}");
    // An empty payload: the whole service, the server's defaults.
    let mut s = connect(server.local_addr());
    let frame = Request::Watch(WatchRequest::default()).to_frame(4);
    assert!(frame.payload.is_empty());
    let first = landmark(open_on(&mut s, 4, &Request::Watch(WatchRequest::default())));
    assert_eq!(
        (first.period_ms, first.heartbeat_ms),
        (Some(1000), Some(10_000))
    );
    server.shutdown_blocking();
}

#[test]
fn streams_are_bounded_per_source_and_the_refused_connection_still_checks() {
    let (server, _main) = ok_server(loopback());
    let addr = server.local_addr();
    let open = |src: &str| -> (TcpStream, Response) {
        let mut s = connect_from(src, addr);
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let r = open_on(&mut s, 9, &watch_request(None, None, None));
        (s, r)
    };
    // The default: 8 streams from one source.
    let mut held: Vec<TcpStream> = (0..8)
        .map(|_| {
            let (s, r) = open("127.0.0.1");
            assert_eq!(landmark(r).push, Some(Push::First));
            s
        })
        .collect();
    let (mut refused, r) = open("127.0.0.1");
    let Response::Error(e) = r else {
        panic!("expected busy, got {r:?}")
    };
    assert_eq!(e.known_code(), Some(ErrorCode::Busy));
    assert_eq!(
        e.message,
        "too many watch streams from this source (limit 8)"
    );
    // Its connection stays open, for checks.
    let checked = landmark(check_on(&mut refused, 10, None).unwrap());
    assert_eq!(checked.state, State::Ok);
    assert_eq!(checked.push, None, "a check's answer is no stream frame");
    // Another source is not held back.
    let (_other, r) = open("127.0.0.2");
    assert_eq!(landmark(r).push, Some(Push::First));
    // A stream closed gives its place back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, r) = open("127.0.0.1");
        if let Response::Landmark(l) = r {
            assert_eq!(l.push, Some(Push::First));
            held.push(s);
            break;
        }
        assert!(Instant::now() < deadline, "the place was never given back");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.shutdown_blocking();
}

#[test]
fn many_streams_share_one_ask_per_period() {
    let (server, main) = ok_server(loopback());
    let addr = server.local_addr();
    let mut streams: Vec<TcpStream> = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .flat_map(|src| (0..8).map(move |_| *src))
        .map(|src| {
            let mut s = connect_from(src, addr);
            s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
            landmark(open_on(&mut s, 5, &watch_request(None, Some(100), None)));
            s
        })
        .collect();
    let before = main.asks_answered.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    let asked = main.asks_answered.load(Ordering::SeqCst) - before;
    // 32 streams looking every 100 ms: about 20 asks in 2 s, not 640.
    assert!((10..=40).contains(&asked), "{asked} asks");
    streams.clear();
    server.shutdown_blocking();
}

#[test]
fn drain_and_publication_are_pushed_at_once_not_a_period_later() {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    let _main = answering(asks, || Landmark::ok("serving"));
    let mut s = connect(server.local_addr());
    // The longest period: only the drain itself can explain a quick push.
    let first = landmark(open_on(&mut s, 2, &watch_request(None, Some(60_000), None)));
    assert_eq!(first.period_ms, Some(60_000));
    let asked = Instant::now();
    server.drain();
    let drained = next_change(&mut s, 2);
    assert_eq!(
        (drained.state, drained.detail.as_str()),
        (State::Drain, "draining: serving")
    );
    server.resume();
    let back = next_change(&mut s, 2);
    assert_eq!(back.state, State::Ok);
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    server.shutdown_blocking();

    let (publisher, rx) = health_server::publisher(Landmark::ok("tick"));
    let server = loopback().spawn(rx).unwrap();
    let mut s = connect(server.local_addr());
    landmark(open_on(&mut s, 2, &watch_request(None, Some(60_000), None)));
    let published = Instant::now();
    publisher.publish(Landmark::degraded("feed lagging"));
    let changed = next_change(&mut s, 2);
    assert_eq!(
        (changed.state, changed.detail.as_str()),
        (State::Degraded, "feed lagging")
    );
    assert!(published.elapsed() < Duration::from_secs(3));
    // The publisher gone: pushed as the main thread gone.
    drop(publisher);
    let gone = next_change(&mut s, 2);
    assert_eq!(
        (gone.state, gone.detail.as_str()),
        (State::Fail, "main thread gone")
    );
    server.shutdown_blocking();
}

#[test]
fn a_component_stream_and_an_unknown_component() {
    let (server, _main) = ok_server_with(|| {
        Landmark::ok("fine").with_component("db", State::Degraded, "replica lag")
    });
    let mut s = connect(server.local_addr());
    let first = landmark(open_on(&mut s, 6, &watch_request(Some("db"), None, None)));
    assert_eq!(first.component.as_deref(), Some("db"));
    assert_eq!(
        (first.state, first.detail.as_str()),
        (State::Degraded, "replica lag")
    );
    // Unknown: error 6, and the connection goes on.
    let mut s = connect(server.local_addr());
    let r = open_on(&mut s, 8, &watch_request(Some("cache"), None, None));
    assert_eq!(error_code(r), ErrorCode::UnknownComponent);
    assert_eq!(
        landmark(check_on(&mut s, 9, None).unwrap()).state,
        State::Ok
    );
    server.shutdown_blocking();
}

fn ok_server_with(
    make: impl Fn() -> Landmark + Send + 'static,
) -> (health_server::HealthServer, MainThread) {
    let (asks, rx) = health_server::channel();
    let server = loopback().spawn(rx).unwrap();
    (server, answering(asks, make))
}

#[test]
fn the_client_ends_its_stream_and_the_shutdown_ends_them_all() {
    let (server, _main) = ok_server(loopback());
    let addr: SocketAddr = server.local_addr();
    // Anything sent after `watch` ends the stream.
    let mut s = connect(addr);
    landmark(open_on(&mut s, 1, &watch_request(None, None, None)));
    s.write_all(b"more").unwrap();
    assert!(is_closed(&mut s));
    // A half-close too: the client said it is done.
    let mut s = connect(addr);
    landmark(open_on(&mut s, 1, &watch_request(None, None, None)));
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(is_closed(&mut s));
    // The places are back: 8 more from the same source.
    let mut held: Vec<TcpStream> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while held.len() < 8 {
        let mut s = connect(addr);
        match open_on(&mut s, 1, &watch_request(None, None, None)) {
            Response::Landmark(_) => held.push(s),
            _ => {
                assert!(Instant::now() < deadline, "places not given back");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    // Counted: 8 open now, and every stream's first frame.
    let text = metrics_text(&server);
    assert!(text.contains("\nhealth_watch_streams 8\n"), "{text}");
    assert!(
        text.contains("health_watch_pushes_total{push=\"first\"} 10\n"),
        "{text}"
    );
    let stopping = Instant::now();
    server.shutdown_blocking();
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopping.elapsed()
    );
    for s in &mut held {
        assert!(is_closed(s));
    }
}

fn metrics_text(server: &health_server::HealthServer) -> String {
    let mut registry = health_server::prometheus_client::registry::Registry::default();
    server.metrics().register(&mut registry);
    let mut text = String::new();
    health_server::prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

#[test]
fn a_stream_gives_way_to_a_newcomer_like_any_idle_connection() {
    let (server, _main) = ok_server(loopback());
    let addr = server.local_addr();
    let mut stream = connect_from("127.0.0.6", addr);
    landmark(open_on(&mut stream, 1, &watch_request(None, None, None)));
    // 64 more from the same source (the default per-source limit), each
    // holding half a request: the oldest idle connection, the stream,
    // gives way to the last of them.
    let half = &Request::Check(Default::default()).to_frame(2).to_bytes()[..8];
    let mut held = Vec::new();
    for _ in 0..64 {
        let mut s = connect_from("127.0.0.6", addr);
        s.write_all(half).unwrap();
        held.push(s);
    }
    assert!(is_closed(&mut stream), "the stream was not evicted");
    // And a fresh check from that source is served.
    let mut s = connect_from("127.0.0.6", addr);
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(
        landmark(check_on(&mut s, 3, None).unwrap()).state,
        State::Ok
    );
    server.shutdown_blocking();
}
