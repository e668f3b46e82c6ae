//! Admission's rules, on slots without sockets.

use super::*;

fn admission(total: usize, per_source: usize) -> Arc<Admission> {
    Arc::new(Admission::new(Limits { total, per_source }))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn sources_group_ipv6_by_64_and_unmap_ipv4() {
    assert_eq!(
        Source::of(ip("::ffff:10.0.0.1")),
        Source::of(ip("10.0.0.1"))
    );
    assert_eq!(
        Source::of(ip("2001:db8::1")),
        Source::of(ip("2001:db8::ffff:1"))
    );
    assert_ne!(
        Source::of(ip("2001:db8::1")),
        Source::of(ip("2001:db8:0:1::1"))
    );
    assert_ne!(Source::of(ip("10.0.0.1")), Source::of(ip("10.0.0.2")));
    assert_eq!(Source::of(ip("2001:db8::7")).to_string(), "2001:db8::/64");
}

/// Admits and marks the slot as its connection would.
fn admitted(a: &Arc<Admission>, from: &str, idle: bool) -> Slot {
    let mut slot = a.admit(ip(from), false).unwrap();
    if idle {
        slot.idle();
    } else {
        assert!(slot.busy());
    }
    slot
}

#[test]
fn a_full_source_loses_its_oldest_idle_connection() {
    let a = admission(100, 3);
    let mut slots: Vec<Slot> = (0..3).map(|_| admitted(&a, "10.0.0.1", true)).collect();
    let fresh = admitted(&a, "10.0.0.1", false);
    assert!(slots[0].is_evicted());
    assert!(!slots[1].is_evicted() && !slots[2].is_evicted());
    assert_eq!(a.held(), (3, 3));
    // A busy connection is never evicted; the next oldest idle goes.
    assert!(slots[1].busy());
    let another = admitted(&a, "10.0.0.1", false);
    assert!(!slots[1].is_evicted());
    assert!(slots[2].is_evicted());
    // Every connection of the source is busy now: a newcomer with a check
    // in hand is let in over the limit rather than refused...
    let mut over = admitted(&a, "10.0.0.1", false);
    assert_eq!(a.held(), (4, 4));
    // ...and the source is trimmed back as its connections finish, oldest
    // idle first.
    slots[1].idle();
    assert!(slots[1].is_evicted());
    assert_eq!(a.held(), (3, 3));
    over.idle();
    assert!(!over.is_evicted());
    // An evicted slot cannot become busy again, and its drop does not
    // count it out twice.
    assert!(!slots[0].busy());
    drop((slots, fresh, another, over));
    assert_eq!(a.held(), (0, 0));
}

#[test]
fn a_pipelined_request_passes_through_idle_so_the_limit_holds() {
    let a = admission(100, 2);
    let mut busy: Vec<Slot> = (0..4).map(|_| admitted(&a, "10.0.0.1", false)).collect();
    assert_eq!(a.held(), (4, 4), "all busy: let in over the limit");
    // Each answers and finds its next request already sent: the first two
    // to pass through idle are closed, the source is back at its limit.
    for s in &mut busy {
        s.pass_through_idle();
    }
    assert_eq!(a.held(), (2, 2));
    assert!(busy[0].is_evicted() && busy[1].is_evicted());
    assert!(busy[2].busy() && busy[3].busy());
    // A fresh connection's first request is never put at stake.
    let mut fresh = a.admit(ip("10.0.0.1"), false).unwrap();
    fresh.pass_through_idle();
    assert!(!fresh.is_evicted() && fresh.busy());
}

#[test]
fn fresh_connections_are_never_evicted_and_let_their_source_over_its_limit() {
    let a = admission(100, 2);
    let mut unread: Vec<Slot> = (0..2)
        .map(|_| a.admit(ip("10.0.0.1"), false).unwrap())
        .collect();
    // Both unread (fresh): neither can be evicted, and the source may
    // go over its limit until they are read.
    let mut third = a.admit(ip("10.0.0.1"), false).unwrap();
    assert!(unread.iter().all(|s| !s.is_evicted()));
    assert_eq!(a.held(), (3, 3));
    // Once read, the source is brought back within its limit, oldest
    // idle first.
    unread[0].idle();
    assert!(unread[0].is_evicted());
    assert_eq!(a.held(), (2, 2));
    third.idle();
    assert!(unread[1].busy());
    let _fourth = admitted(&a, "10.0.0.1", false);
    assert!(third.is_evicted());
    assert_eq!(a.held(), (2, 2));
}

#[test]
fn evictions_in_flight_are_bounded() {
    let a = admission(1, MAX_EVICTING + 10);
    let mut evicted = Vec::new();
    let mut last = a.admit(ip("10.0.0.1"), true).unwrap();
    for _ in 0..MAX_EVICTING {
        let next = a.admit(ip("10.0.0.1"), true).unwrap();
        evicted.push(std::mem::replace(&mut last, next));
    }
    assert!(evicted.iter().all(Slot::is_evicted));
    // Every evicted slot still undropped: no more evictions.
    assert_eq!(
        a.admit(ip("10.0.0.2"), true).err(),
        Some(Refusal::Full { limit: 1 })
    );
    evicted.pop();
    assert!(a.admit(ip("10.0.0.2"), true).is_ok());
    assert!(last.is_evicted());
}

#[test]
fn a_full_source_is_refused_while_evictions_in_flight_are_at_their_bound() {
    let a = admission(100_000, 1);
    let mut evicted = Vec::new();
    let mut last = a.admit(ip("10.0.0.1"), true).unwrap();
    for _ in 0..MAX_EVICTING {
        let next = a.admit(ip("10.0.0.1"), true).unwrap();
        evicted.push(std::mem::replace(&mut last, next));
    }
    assert_eq!(
        a.admit(ip("10.0.0.1"), false).err(),
        Some(Refusal::SourceFull { limit: 1 })
    );
    evicted.pop();
    assert!(a.admit(ip("10.0.0.1"), false).is_ok());
    assert!(last.is_evicted());
}

#[test]
fn a_silent_connection_is_idle_from_the_start() {
    let a = admission(100, 1);
    let silent = a.admit(ip("10.0.0.1"), true).unwrap();
    let _next = a.admit(ip("10.0.0.1"), true).unwrap();
    assert!(
        silent.is_evicted(),
        "idle at once: the next one takes its place"
    );
}

#[test]
fn a_full_endpoint_takes_from_the_heaviest_source_oldest_first() {
    let a = admission(6, 10);
    let mut light: Vec<Slot> = (0..2).map(|_| admitted(&a, "10.0.0.1", true)).collect();
    let mut heavy: Vec<Slot> = (0..4).map(|_| admitted(&a, "10.0.0.2", true)).collect();
    let _new = admitted(&a, "10.0.0.3", false);
    assert!(heavy[0].is_evicted());
    assert!(light.iter().all(|s| !s.is_evicted()));
    // The heaviest has no idle connection left: the next heaviest pays.
    for s in &mut heavy[1..] {
        assert!(s.busy());
    }
    let _new2 = admitted(&a, "10.0.0.3", false);
    assert!(light[0].is_evicted());
    assert!(light[1].busy());
    assert_eq!(
        a.admit(ip("10.0.0.4"), false).err(),
        Some(Refusal::Full { limit: 6 })
    );
    assert_eq!(a.held(), (6, 3));
    assert!(!a.shed_one());
}

#[test]
fn places_come_back_when_connections_close() {
    let a = admission(2, 2);
    let s1 = admitted(&a, "::1", false);
    let s2 = admitted(&a, "::1", false);
    assert!(a.admit(ip("::1"), false).is_err());
    drop(s1);
    let s3 = admitted(&a, "::1", true);
    assert!(a.shed_one());
    assert!(s3.is_evicted());
    drop((s2, s3));
    assert_eq!(a.held(), (0, 0));
    assert!(a.lock().sources.is_empty() && a.lock().by_load.is_empty());
}
