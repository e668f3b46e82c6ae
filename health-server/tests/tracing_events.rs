//! The tracing events operators rely on: failed, slow and refused checks.
//! Alone in its test binary because it installs a global subscriber.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use health_server::{Landmark, State};

/// A `MakeWriter` collecting tracing output for assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn failed_slow_and_refused_checks_emit_tracing_events() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The server runs on its own runtime thread, so the subscriber must be
    // global for this test binary.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let (asks, rx) = health_server::channel();
    let server = loopback()
        .answer_deadline(Duration::from_millis(100))
        .slow_answer(Duration::from_millis(20))
        .allow("127.0.0.1/32".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let addr = server.local_addr();
    // Hung: several checks, one "did not answer" event for the one ask.
    for _ in 0..3 {
        assert_eq!(check(addr).state, State::Fail);
    }
    // Late answer: a slow-check event.
    let ask = asks.try_recv().expect("the pending ask");
    ask.answer(Landmark::ok("late"));
    // Refused by the allow-list.
    let mut refused = connect_from("127.0.0.2", addr);
    assert!(is_closed(&mut refused));
    server.shutdown_blocking();
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("main thread did not answer within the deadline")
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("slow check: main thread answered late"),
        "{text}"
    );
    assert!(
        text.contains("refused health check: source not in the allow-list"),
        "{text}"
    );
}
