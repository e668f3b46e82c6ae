//! The endpoint under attack, with the defaults, as a new user runs it:
//! `landmark_service --listen ... --health ...` and nothing configured.
//! While each of the hostile peers of `health_bench::attack` runs (and then
//! all at once), `health-probe ADDR --expect ok --timeout 1s` from
//! 127.0.0.1 every 100 ms must pass every time and well within 500 ms; the
//! server's RSS must grow by less than 64 MiB, and its fds return to where
//! they were.
//!
//! The attackers run in `attacker` processes of at most 12,000 sockets
//! each, within the machine's default open-file limit.

use std::time::Duration;

use health_bench::attack::{self, Attack, Outcome, Target};

fn assert_held(o: &Outcome) {
    let what = format!("{:?}", o.attacks);
    eprintln!(
        "{what}: {} checks, p50 {} µs, p99 {} µs, max {} µs; {} connections opened, {} closed by the server; RSS {} -> {} KiB; fds {} -> {} -> {}",
        o.checks.len(),
        o.checks.median(),
        o.checks.percentile(0.99),
        o.checks.max(),
        o.opened,
        o.closed_by_server,
        o.rss_before_kib,
        o.rss_max_kib,
        o.fds_before,
        o.fds_max,
        o.fds_after
    );
    for f in o.failures.iter().take(5) {
        eprintln!("  failed: {f}");
    }
    assert!(
        o.checks.len() >= 30,
        "{what}: only {} checks ran",
        o.checks.len()
    );
    assert!(
        o.failures.is_empty(),
        "{what}: failed checks: {:#?}",
        o.failures
    );
    assert!(
        o.checks.max() < 500_000,
        "{what}: slowest check {} µs (p50 {} µs)",
        o.checks.max(),
        o.checks.median()
    );
    assert!(
        o.rss_max_kib < o.rss_before_kib + 64 * 1024,
        "{what}: RSS grew from {} KiB to {} KiB",
        o.rss_before_kib,
        o.rss_max_kib
    );
    assert!(
        o.fds_after <= o.fds_before,
        "{what}: {} fds after, {} before",
        o.fds_after,
        o.fds_before
    );
}

#[test]
fn a_healthy_server_stays_healthy_under_every_attack() {
    let probe = test_support::built("health-probe");
    let (server, health) = attack::start_service(&test_support::built("landmark_service"), &probe);
    let target = Target {
        pid: server.0.id(),
        health,
        probe: &probe,
        attacker: std::path::Path::new(env!("CARGO_BIN_EXE_attacker")),
    };
    let only: Vec<Attack> = std::env::var("ATTACKS")
        .map(|v| v.split(',').filter_map(Attack::from_name).collect())
        .unwrap_or_else(|_| Attack::ALL.to_vec());
    let rss_start = health_bench::rss_kib(target.pid).unwrap().0;
    let mut outcomes = Vec::new();
    for a in only {
        outcomes.push(attack::run(&target, &[a], Duration::from_secs(6)));
        assert_held(outcomes.last().unwrap());
    }
    outcomes.push(attack::run(&target, &Attack::ALL, Duration::from_secs(10)));
    assert_held(outcomes.last().unwrap());
    // Over the whole run too, not only within each scenario.
    let rss_max = outcomes.iter().map(|o| o.rss_max_kib).max().unwrap();
    assert!(
        rss_max < rss_start + 64 * 1024,
        "RSS grew from {rss_start} KiB to {rss_max} KiB over the attacks"
    );
}
