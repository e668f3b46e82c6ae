//! The isolated-check benchmark end to end: every peer answers every check,
//! and the syscall count holds the endpoint to what docs/BENCHMARKS.md
//! records. An isolated native check takes at most 12 syscalls (10
//! recorded), with no epoll registration, no setsockopt, no ioctl and no
//! writev per connection. A count, not a time: strace counts the same on any machine.

use std::process::Command;

/// The benchmark's table rows, as columns (the first and last, empty, cut).
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| server"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// A call's count per check in the "largest" column (`accept4 2.0, ...`).
fn share(largest: &str, call: &str) -> f64 {
    largest
        .split(", ")
        .find_map(|c| c.strip_prefix(call)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn every_peer_answers_and_a_native_check_stays_within_its_syscalls() {
    if !test_support::peer_installed(&["strace"], "strace") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_isolated"))
        .args(["--checks", "100", "--rounds", "1", "--strace-checks", "300"])
        .output()
        .expect("run isolated");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "isolated failed: {stderr}");
    let table = String::from_utf8(out.stdout).unwrap();
    let rows = rows(&table);
    assert_eq!(rows.len(), 6, "one row per peer:\n{table}");
    for row in &rows {
        let (name, errors, syscalls, largest) = (&row[0], &row[7], &row[8], &row[9]);
        assert_eq!(errors, "0", "{name} had errors:\n{table}\n{stderr}");
        let syscalls: f64 = syscalls
            .parse()
            .unwrap_or_else(|_| panic!("{name}: no syscall count:\n{table}\n{stderr}"));
        // A debug build's std checks each descriptor it closes is open
        // (one fcntl); release builds do not.
        let syscalls = syscalls - share(largest, "fcntl");
        if name.starts_with("health-server native") {
            assert!(
                syscalls <= 12.0,
                "{name}: {syscalls} syscalls per check:\n{table}"
            );
            // Not per connection: a connection that has to wait (its
            // request or its peer's half-close not in yet, on a busy
            // machine) is registered, now and then.
            for call in ["epoll_ctl", "setsockopt", "ioctl", "writev"] {
                let n = share(largest, call);
                assert!(n < 0.5, "{name}: {call} {n} per check: {largest}");
            }
        }
        if name.starts_with("blocking floor") {
            // The count itself is right: the floor makes exactly four.
            assert!((3.9..=4.1).contains(&syscalls), "floor: {syscalls}");
        }
    }
}
