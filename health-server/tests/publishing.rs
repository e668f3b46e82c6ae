//! Published landmarks: the main thread pushes, the server enforces freshness.

mod common;

use std::time::Duration;

use common::*;
use health_server::{Landmark, State};

#[test]
fn published_landmark_is_served_with_its_age() {
    let (publisher, rx) = health_server::publisher(Landmark::ok("starting"));
    let server = loopback().spawn(rx).unwrap();
    publisher.publish(Landmark::degraded("feed lagging"));
    std::thread::sleep(Duration::from_millis(20));
    let reply = check(server.local_addr());
    assert_eq!(reply.state, State::Degraded);
    assert_eq!(reply.detail, "feed lagging");
    assert_eq!(reply.answer_us, 0);
    let age = reply.age_us.expect("age of a published landmark");
    assert!((20_000..2_000_000).contains(&age), "{age}");
    server.shutdown_blocking();
}

#[test]
fn stale_landmark_fails_and_fresh_one_recovers() {
    let (publisher, rx) = health_server::publisher(Landmark::ok("tick"));
    let server = loopback()
        .stale_after(Duration::from_millis(150))
        .spawn(rx)
        .unwrap();
    assert_eq!(check(server.local_addr()).state, State::Ok);
    std::thread::sleep(Duration::from_millis(250));
    let reply = check(server.local_addr());
    assert_eq!(reply.state, State::Fail);
    assert!(
        reply
            .detail
            .starts_with("landmark is stale: last published ")
            && reply.detail.ends_with(" ago (limit 150ms)"),
        "{}",
        reply.detail
    );
    publisher.touch();
    let reply = check(server.local_addr());
    assert_eq!(reply.state, State::Ok);
    assert_eq!(reply.detail, "tick");
    server.shutdown_blocking();
}

#[test]
fn dropped_publisher_reports_main_thread_gone() {
    let (publisher, rx) = health_server::publisher(Landmark::ok("tick"));
    let server = loopback().spawn(rx).unwrap();
    drop(publisher);
    let reply = check(server.local_addr());
    assert_eq!(reply.state, State::Fail);
    assert_eq!(reply.detail, "main thread gone");
    server.shutdown_blocking();
}
