//! Helpers the probe's integration tests share: running the binary, and
//! what every crate's tests share ([`test_support`]).
#![allow(dead_code)] // each test crate uses its own subset

use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // not every test crate uses them all
pub(crate) use test_support::*;

pub(crate) const PROBE: &str = env!("CARGO_BIN_EXE_health-probe");

/// Runs the probe with `args`; its output and how long it took.
pub(crate) fn run_probe(args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = Command::new(PROBE)
        .args(args)
        .output()
        .expect("run health-probe");
    (out, t.elapsed())
}

/// A fake peer that accepts one connection and runs `behave` on it.
pub(crate) fn fake(behave: impl FnOnce(std::net::TcpStream) + Send + 'static) -> String {
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
