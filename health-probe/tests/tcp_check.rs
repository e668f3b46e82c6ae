//! `health-probe tcp` against real peers on loopback: each outcome class
//! (OK, ERR, NG, WR) with its reasons, --send and the answer matchers, the
//! --warn/--crit thresholds, and every exit-code mode.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

mod common;
use common::{code, free_port, in_new_netns, stderr, stdout, PROBE};

fn tcp(args: &[&str]) -> (Output, Duration) {
    let mut all = vec!["tcp"];
    all.extend_from_slice(args);
    common::run_probe(&all)
}

/// A peer that accepts connections (up to `n`) and runs `behave` on each.
fn peer(n: usize, behave: impl Fn(TcpStream) + Send + Sync + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming().take(n).flatten() {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            behave(s);
        }
    });
    addr
}

/// A peer that greets with `banner` and closes.
fn greeter(banner: &'static [u8]) -> String {
    peer(16, move |mut s| {
        let _ = s.write_all(banner);
    })
}

/// Asserts the class opens the stdout line and the reason is named on both
/// streams.
fn assert_outcome(o: &Output, class: &str, reason: Option<&str>, exit: i32) {
    let out = stdout(o);
    assert!(out.starts_with(&format!("{class} ")), "stdout: {out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(code(o), exit, "stdout: {out} stderr: {}", stderr(o));
    match reason {
        Some(r) => {
            assert!(out.contains(&format!(" reason={r} ")), "{out}");
            let err = stderr(o);
            assert!(
                err.starts_with(&format!("health-probe: {class} ({r}): ")),
                "{err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        None => assert!(stderr(o).is_empty(), "{}", stderr(o)),
    }
}

#[test]
fn listening_port_is_ok() {
    let addr = peer(1, |_| {});
    let (o, _) = tcp(&[&addr]);
    assert_outcome(&o, "OK", None, 0);
    assert!(
        stdout(&o).contains("detail=\"connected\""),
        "{}",
        stdout(&o)
    );
}

#[test]
fn banner_and_regex_match_the_answer() {
    let addr = greeter(b"SSH-2.0-OpenSSH_9.2\r\n");
    let (o, _) = tcp(&[&addr, "--expect-banner", "SSH-2.0"]);
    assert_outcome(&o, "OK", None, 0);
    assert!(
        stdout(&o).contains(r#"answer="SSH-2.0-OpenSSH_9.2\r\n""#),
        "{}",
        stdout(&o)
    );
    let (o, _) = tcp(&[&addr, "--expect-regex", r"^SSH-2\.0-\S+\r\n$"]);
    assert_outcome(&o, "OK", None, 0);
}

#[test]
fn send_then_expect_a_reply() {
    // A line service: answers PONG only to PING\r\n.
    let addr = peer(4, |mut s| {
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        let reply: &[u8] = if &buf[..n] == b"PING\r\n" {
            b"PONG\r\n"
        } else {
            b"ERR\r\n"
        };
        let _ = s.write_all(reply);
    });
    let (o, _) = tcp(&[&addr, "--send", r"PING\r\n", "--expect-banner", r"PONG\r\n"]);
    assert_outcome(&o, "OK", None, 0);
    // Without the escapes the service answers ERR: a wrong answer.
    let (o, _) = tcp(&[&addr, "--send", "PING", "--expect-banner", "PONG"]);
    assert_outcome(&o, "NG", Some("wrong-answer"), 1);
}

#[test]
fn wrong_answer_is_ng() {
    let addr = greeter(b"220 mail.example ESMTP\r\n");
    let (o, _) = tcp(&[&addr, "--expect-banner", "SSH-"]);
    assert_outcome(&o, "NG", Some("wrong-answer"), 1);
    assert!(stdout(&o).contains(r#"answer="220 mail.example ESMTP\r\n""#));
    // A wrong answer from a peer that then stays silent is still NG, at the
    // timeout.
    let addr = peer(1, |mut s| {
        let _ = s.write_all(b"HELLO\r\n");
        std::thread::sleep(Duration::from_secs(2));
    });
    let (o, took) = tcp(&[&addr, "--expect-banner", "SSH-", "--timeout", "300ms"]);
    assert_outcome(&o, "NG", Some("wrong-answer"), 1);
    assert!(took < Duration::from_millis(1000), "{took:?}");
}

#[test]
fn endless_answer_is_cut_at_the_buffer_bound() {
    let addr = peer(1, |mut s| {
        let junk = [b'x'; 4096];
        for _ in 0..64 {
            if s.write_all(&junk).is_err() {
                return;
            }
        }
    });
    let (o, _) = tcp(&[&addr, "--expect-banner", "SSH-", "--timeout", "2s"]);
    assert_outcome(&o, "NG", Some("wrong-answer"), 1);
    assert!(stdout(&o).contains("first 16384 bytes"), "{}", stdout(&o));
}

#[test]
fn refused_is_ng() {
    let (o, _) = tcp(&[&free_port()]);
    assert_outcome(&o, "NG", Some("refused"), 1);
}

#[test]
fn closed_without_answer_and_reset_are_ng() {
    let addr = peer(1, drop);
    let (o, _) = tcp(&[&addr, "--expect-banner", "SSH-"]);
    assert_outcome(&o, "NG", Some("closed"), 1);

    // SO_LINGER 0: the close sends a RST.
    let addr = peer(1, |s| {
        let s = socket2::Socket::from(s);
        s.set_linger(Some(Duration::ZERO)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    });
    let (o, _) = tcp(&[&addr, "--expect-banner", "SSH-"]);
    assert_outcome(&o, "NG", Some("reset"), 1);
}

#[test]
fn silent_peer_is_wr_within_the_timeout() {
    let addr = peer(1, |_s| std::thread::sleep(Duration::from_secs(3)));
    let (o, took) = tcp(&[&addr, "--expect-banner", "SSH-", "--timeout", "300ms"]);
    assert_outcome(&o, "WR", Some("timeout"), 1);
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1000),
        "{took:?}"
    );
}

#[test]
fn unanswered_connect_is_wr_within_the_timeout() {
    // A listener with a full accept queue: further SYNs get no answer.
    let (addr, _sock, _fillers) = common::unanswered_listener();
    let (o, took) = tcp(&[&addr.to_string(), "--timeout", "300ms"]);
    assert_outcome(&o, "WR", Some("timeout"), 1);
    assert!(took < Duration::from_millis(1000), "{took:?}");
}

#[test]
fn malformed_address_is_err() {
    let (o, _) = tcp(&["localhost:notaport"]);
    assert_outcome(&o, "ERR", Some("bad-address"), 1);
}

/// `health-probe tcp ARGS` in a new, empty network namespace.
fn in_empty_netns(args: &[&str]) -> Option<Output> {
    let mut all = vec!["tcp"];
    all.extend_from_slice(args);
    in_new_netns(PROBE, &all)
}

#[test]
fn unresolvable_name_and_no_route_are_err() {
    let Some(o) = in_empty_netns(&["no-such-host.invalid:80", "--timeout", "2s"]) else {
        return;
    };
    assert_outcome(&o, "ERR", Some("dns"), 1);
    let Some(o) = in_empty_netns(&["10.0.0.1:80"]) else {
        return;
    };
    assert_outcome(&o, "ERR", Some("no-route"), 1);
    // Nagios: an unreachable service is CRITICAL, as check_tcp says.
    let Some(o) = in_empty_netns(&["10.0.0.1:80", "--nagios"]) else {
        return;
    };
    assert_eq!(code(&o), 2);
    assert!(
        stdout(&o).starts_with("TCP CRITICAL - ERR 10.0.0.1:80: "),
        "{}",
        stdout(&o)
    );
}

#[test]
fn response_time_thresholds() {
    // Greets after 150 ms.
    let addr = peer(8, |mut s| {
        std::thread::sleep(Duration::from_millis(150));
        let _ = s.write_all(b"+OK ready\r\n");
    });
    let expect = ["--expect-banner", "+OK"];
    // Within both thresholds.
    let (o, _) = tcp(&[&addr, expect[0], expect[1], "--warn", "1s", "--crit", "2s"]);
    assert_outcome(&o, "OK", None, 0);
    assert!(!stdout(&o).contains("slow="));
    // Over --warn only: still exit 0, marked slow.
    let (o, _) = tcp(&[
        &addr, expect[0], expect[1], "--warn", "50ms", "--crit", "2s",
    ]);
    assert_outcome(&o, "OK", None, 0);
    assert!(stdout(&o).contains(" slow=warn "), "{}", stdout(&o));
    // Over --crit: exit 1, a `slow` line on stderr.
    let (o, _) = tcp(&[&addr, expect[0], expect[1], "--crit", "50ms"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains(" slow=crit "), "{}", stdout(&o));
    assert!(
        stderr(&o).starts_with("health-probe: slow: ")
            && stderr(&o).contains("over --crit 50.00ms"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn nagios_statuses_and_perfdata() {
    let slow = peer(8, |mut s| {
        std::thread::sleep(Duration::from_millis(150));
        let _ = s.write_all(b"SSH-2.0-x\r\n");
    });
    let e = ["--expect-banner", "SSH-", "--nagios"];
    let cases: [(&[&str], i32, &str); 3] = [
        (&["--warn", "1s", "--crit", "2s"], 0, "TCP OK - "),
        (&["--warn", "50ms", "--crit", "2s"], 1, "TCP WARNING - "),
        (&["--warn", "50ms", "--crit", "100ms"], 2, "TCP CRITICAL - "),
    ];
    for (extra, want, prefix) in cases {
        let mut args = vec![slow.as_str()];
        args.extend_from_slice(&e);
        args.extend_from_slice(extra);
        let (o, _) = tcp(&args);
        assert_eq!(code(&o), want, "{extra:?}: {}", stdout(&o));
        let out = stdout(&o);
        assert!(out.starts_with(prefix), "{out}");
        assert!(out.contains("second response time on"), "{out}");
        let perf = out.trim_end().split_once('|').expect("perfdata").1;
        assert!(perf.starts_with("time="), "{perf}");
        assert_eq!(perf.split(';').count(), 5, "{perf}");
    }
    // Refused: CRITICAL. Malformed address and bad arguments: UNKNOWN.
    let refused = free_port();
    let (o, _) = tcp(&[&refused, "--nagios"]);
    assert_eq!(code(&o), 2);
    assert!(
        stdout(&o).starts_with("TCP CRITICAL - NG "),
        "{}",
        stdout(&o)
    );
    let (o, _) = tcp(&["x:y", "--nagios"]);
    assert_eq!(code(&o), 3);
    let (o, _) = tcp(&["127.0.0.1:1", "--nagios", "--warn", "soon"]);
    assert_eq!(code(&o), 3);
    assert!(
        stdout(&o).starts_with("TCP UNKNOWN - usage: "),
        "{}",
        stdout(&o)
    );
}

#[test]
fn json_quiet_and_dynamic() {
    let addr = greeter(b"SSH-2.0-x\r\n");
    let (o, _) = tcp(&[&addr, "--expect-banner", "SSH", "--json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert_eq!(v["check"], "tcp");
    assert_eq!(v["class"], "OK");
    assert_eq!(v["reason"], serde_json::Value::Null);
    assert_eq!(v["answer"], "SSH-2.0-x\r\n");
    assert!(v["rtt_ms"].as_f64().unwrap() > 0.0);

    let (o, _) = tcp(&[&addr, "--expect-banner", "nope", "--json"]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["class"], "NG");
    assert_eq!(v["reason"], "wrong-answer");

    let (o, _) = tcp(&[&addr, "--quiet"]);
    assert_eq!(code(&o), 0);
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    // --dynamic: a port has no weight; OK exits 0, failures 1.
    let (o, _) = tcp(&[&addr, "--dynamic", "-q"]);
    assert_eq!(code(&o), 0);
    let (o, _) = tcp(&[&addr, "--dynamic", "-q", "--expect-banner", "nope"]);
    assert_eq!(code(&o), 1);
}

#[test]
fn usage_errors_exit_1_with_one_line() {
    for args in [
        &[][..],
        &["127.0.0.1:1", "--send", r"\q"][..],
        &["127.0.0.1:1", "--expect-regex", "("][..],
        &["127.0.0.1:1", "--expect-banner", "a", "--expect-regex", "b"][..],
        &["127.0.0.1:1", "--timeout", "0s"][..],
    ] {
        let (o, _) = tcp(args);
        assert_eq!(code(&o), 1, "{args:?}");
        let err = stderr(&o);
        assert!(err.starts_with("health-probe: usage: "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn the_bare_landmark_form_is_unchanged() {
    // `health-probe ADDR` is still the landmark check, and the subcommand
    // and ADDR cannot be mixed.
    let addr = greeter(b"not a landmark frame");
    let o = Command::new(PROBE).arg(&addr).output().unwrap();
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).starts_with("FAIL "), "{}", stdout(&o));
    let o = Command::new(PROBE).args([&addr, "tcp"]).output().unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with("health-probe: usage: "),
        "{}",
        stderr(&o)
    );
}
