//! The process runs out of file descriptors (the service itself used them
//! up): the endpoint still accepts and answers a check (with its spare
//! descriptor), never spins on EMFILE, and serves again as soon as
//! descriptors come back. In its own test binary: it exhausts this whole
//! process's descriptors.

mod common;

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use health_proto::Request;
use health_server::State;

/// This process's CPU time (user + system), from getrusage: opening
/// /proc would need a descriptor.
fn cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[test]
fn out_of_descriptors_the_endpoint_neither_spins_nor_stops() {
    let (server, _main) = ok_server(loopback());
    let addr = server.local_addr();
    assert_eq!(check(addr).state, State::Ok);
    let request = Request::Check(Default::default()).to_frame(1).to_bytes();
    // Connected now (the kernel holds them until they speak), sent later.
    let mut first = connect(addr);
    let mut second = connect(addr);
    let mut third = connect(addr);
    // The service uses up every descriptor.
    let mut hog = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        hog.push(f);
        assert!(hog.len() < 1 << 20, "no descriptor limit");
    }
    // The spare descriptor lets this one in.
    first.write_all(&request).unwrap();
    let reply = landmark(
        health_proto::Response::from_frame(
            &health_proto::blocking::read_frame(&mut first, 1 << 16).unwrap(),
        )
        .unwrap(),
    );
    assert_eq!(reply.state, State::Ok);
    // Nothing left: this one waits, and the endpoint retries with pauses,
    // not a busy loop.
    second.write_all(&request).unwrap();
    let before = cpu();
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu() - before;
    assert!(
        spent < Duration::from_millis(300),
        "spent {spent:?} of CPU in one second"
    );
    // Descriptors come back: both are answered promptly.
    drop(hog);
    let t = Instant::now();
    third.write_all(&request).unwrap();
    for c in [&mut second, &mut third] {
        let f = health_proto::blocking::read_frame(c, 1 << 16).unwrap();
        let r = landmark(health_proto::Response::from_frame(&f).unwrap());
        assert_eq!(r.state, State::Ok);
    }
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    server.shutdown_blocking();
}
