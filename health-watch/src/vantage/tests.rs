use std::time::{Duration, SystemTime};

use health_probe::outcome::{Class, Speed};

use super::path::{PathChange, PathState, PointState};
use super::*;

fn seen(class: Class) -> Ballot {
    Ballot::Checked(Observation {
        at: SystemTime::now(),
        class,
        reason: (class != Class::Ok).then_some("refused"),
        detail: format!("{class:?}"),
        rtt: Some(Duration::from_millis(1)),
        speed: Speed::Fine,
    })
}

fn points(n: usize, quorum: Option<usize>) -> Vantages {
    let check = health_probe::check::Check::built_in(
        Kind::Tcp,
        "127.0.0.1:9".into(),
        Duration::from_secs(1),
    )
    .unwrap();
    let sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let points = (0..n)
        .map(|i| Point::Local(check.via(Some(sources[i].parse().unwrap()))))
        .collect();
    Vantages::new(points, SourceMode::All, quorum, None)
}

fn vote(v: &Vantages, ballots: Vec<Ballot>) -> Vote {
    Vote::count(SystemTime::now(), ballots, v.quorum)
}

#[test]
fn the_quorum_is_a_majority_unless_given() {
    assert_eq!(points(1, None).quorum, 1);
    assert_eq!(points(2, None).quorum, 2);
    assert_eq!(points(3, None).quorum, 2);
    assert_eq!(points(4, None).quorum, 3);
    assert_eq!(points(3, Some(1)).quorum, 1);
    assert_eq!(
        points(2, None).names,
        ["local:127.0.0.1", "local:127.0.0.2"]
    );
}

#[test]
fn fewer_failing_than_the_quorum_is_a_path_fault_and_passes() {
    let v = points(2, None);
    let one = vote(&v, vec![seen(Class::Ng), seen(Class::Ok)]);
    assert!(one.path_fault() && !one.server_fault);
    let o = one.observation(&v);
    assert!(!o.failed(), "{o:?}");
    assert!(
        o.detail
            .starts_with("1 of 2 vantage points failed (quorum 2)"),
        "{}",
        o.detail
    );
    assert!(o.detail.contains("local:127.0.0.1: NG Ng"), "{}", o.detail);
    let both = vote(&v, vec![seen(Class::Wr), seen(Class::Ng)]);
    assert!(both.server_fault && !both.path_fault());
    // The worst class seen: NG before WR.
    let o = both.observation(&v);
    assert_eq!((o.class, o.failed()), (Class::Ng, true));
    let none = vote(&v, vec![seen(Class::Ok), seen(Class::Ok)]);
    assert!(!none.path_fault() && !none.server_fault);
}

#[test]
fn points_that_do_not_answer_cannot_hide_a_fault_seen() {
    let v = points(3, None);
    // Two abstain: the one that answered decides.
    let alone = vote(
        &v,
        vec![
            seen(Class::Ng),
            Ballot::Abstained("down".into()),
            Ballot::Abstained("down".into()),
        ],
    );
    assert!(alone.server_fault);
    assert!(alone.observation(&v).detail.contains("2 did not answer"));
    // Nobody answered: ERR vantage.
    let nobody = vote(
        &v,
        vec![
            Ballot::Abstained("a".into()),
            Ballot::Abstained("b".into()),
            Ballot::Abstained("c".into()),
        ],
    );
    let o = nobody.observation(&v);
    assert_eq!((o.class, o.reason), (Class::Err, Some("vantage")));
}

#[test]
fn a_path_fault_is_told_after_fall_rounds_and_cleared_after_rise() {
    let v = points(2, None);
    let mut p = PathState::new(v.names.clone());
    let fine = || vote(&v, vec![seen(Class::Ok), seen(Class::Ok)]);
    // Unasked keeps what the point said last.
    assert_eq!(p.observe(&fine(), 2, 2, None), None);
    let path = vote(&v, vec![seen(Class::Ng), seen(Class::Ok)]);
    assert_eq!(p.observe(&path, 2, 2, None), None);
    let unasked = vote(&v, vec![seen(Class::Ok), Ballot::Unasked]);
    assert_eq!(p.observe(&unasked, 2, 2, None), None);
    assert_eq!(p.points, [PointState::Passed, PointState::Passed]);
    assert_eq!(p.observe(&path, 2, 2, None), None);
    assert_eq!(p.observe(&path, 2, 2, None), Some(PathChange::Raise));
    assert!(p.raised());
    assert_eq!(p.points, [PointState::Failed, PointState::Passed]);
    assert_eq!(p.failing, [true, false]);
    assert_eq!(p.observe(&path, 2, 2, None), None);
    assert_eq!(p.observe(&fine(), 2, 2, None), None);
    assert_eq!(p.observe(&fine(), 2, 2, None), Some(PathChange::Clear));
    assert!(!p.raised());
}

#[test]
fn a_path_fault_that_comes_and_goes_is_told_at_most_flap_changes_times_a_window() {
    let v = points(2, None);
    let mut p = PathState::new(v.names.clone());
    let flap = Some((3, Duration::from_secs(600)));
    let path = vote(&v, vec![seen(Class::Ng), seen(Class::Ok)]);
    let fine = vote(&v, vec![seen(Class::Ok), seen(Class::Ok)]);
    let mut told = 0;
    for _ in 0..10 {
        told += usize::from(p.observe(&path, 1, 1, flap) == Some(PathChange::Raise));
        p.observe(&fine, 1, 1, flap);
    }
    assert_eq!(told, 3);
}
