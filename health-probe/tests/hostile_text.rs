//! Text a server sends never reaches the terminal raw: control characters
//! (an OSC window title, a screen clear, CR, BS, NUL, a newline followed by
//! a forged Nagios line) are shown escaped, details are capped, `--nagios`
//! prints exactly one line, and JSON keeps the exact text.

use std::io::Write;

use health_server::Landmark;

mod common;
use common::{assert_clean, code, fake, run_probe as probe, serving, stderr, stdout, HOSTILE};

#[test]
fn a_hostile_detail_is_escaped_on_every_human_output() {
    let (server, addr) = serving(Landmark::fail(HOSTILE));
    let (o, _) = probe(&[&addr]);
    assert_eq!(code(&o), 1);
    assert_clean(&stdout(&o), "verdict line");
    assert_clean(&stderr(&o), "stderr line");
    assert!(
        stdout(&o).contains(r"\e]0;pwned\x07\e[2Jgone\rback\x08\0nul\x7f\u{9b}31m\nLANDMARK OK")
    );
    assert!(!stdout(&o).contains("\nLANDMARK"));

    let (o, _) = probe(&[&addr, "--nagios"]);
    assert_eq!(code(&o), 2);
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
    assert_clean(&stdout(&o), "--nagios");
    assert!(stdout(&o).starts_with("LANDMARK CRITICAL - "));

    let (o, _) = probe(&[&addr, "--dynamic"]);
    assert_clean(&stdout(&o), "--dynamic");

    // JSON carries the exact text.
    let (o, _) = probe(&[&addr, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["detail"], HOSTILE);
    server.shutdown_blocking();
}

#[test]
fn a_long_detail_is_cut_and_marked() {
    let long = "x".repeat(20_000);
    let (server, addr) = serving(Landmark::fail(long.clone()));
    let (o, _) = probe(&[&addr]);
    let out = stdout(&o);
    assert!(out.len() < 1500, "{} bytes printed", out.len());
    assert!(out.contains("...(18976 more bytes)"), "{out}");
    assert!(stderr(&o).len() < 1500);
    let (o, _) = probe(&[&addr, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["detail"].as_str().unwrap().len(), 20_000);
    server.shutdown_blocking();
}

#[test]
fn a_hostile_banner_is_escaped_by_tcp() {
    for mode in [None, Some("--nagios")] {
        let addr = fake(|mut s| {
            let _ = s.write_all(HOSTILE.as_bytes());
        });
        let mut args = vec!["tcp", &addr, "--expect-banner", "\x1b]0;"];
        args.extend(mode);
        let (o, _) = probe(&args);
        assert_eq!(code(&o), 0, "{mode:?}: {}", stderr(&o));
        assert_eq!(stdout(&o).lines().count(), 1, "{mode:?}: {}", stdout(&o));
        assert_clean(&stdout(&o), "tcp");
        assert!(stdout(&o).contains(r"\e]0;pwned"), "{}", stdout(&o));
    }
    // A server that refuses with a hostile reason: the stderr line too.
    let addr = fake(|mut s| {
        let _ = s.write_all(b"550 \x1b[2J no\r\n");
    });
    let (o, _) = probe(&["tcp", &addr, "--expect-banner", "220"]);
    assert_eq!(code(&o), 1);
    assert_clean(&stdout(&o), "tcp wrong answer");
    assert_clean(&stderr(&o), "tcp wrong answer stderr");
}
