//! `health-probe tls` against real servers from Debian's packages on
//! loopback: OpenSSL's `openssl s_server` with fresh, soon-expiring,
//! critical, expired, untrusted and wrongly named certificates made for the
//! test, and Dovecot for STARTTLS (IMAP, POP3, SMTP submission). Each
//! outcome with its reason, the facts named also when verification fails,
//! and every exit-code mode.

use std::io::Write;
use std::process::Output;
use std::time::Duration;

mod common;
use common::tls::{Dovecot, Pki, SServer};
use common::{code, free_port, require, scratch, stderr, stdout, unanswered_listener};

fn tls(args: &[&str]) -> (Output, Duration) {
    let mut all = vec!["tls"];
    all.extend_from_slice(args);
    common::run_probe(&all)
}

/// The stdout line's `key=value` (a quoted value without its quotes).
fn field(out: &str, key: &str) -> Option<String> {
    let at = out.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &out[at..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q[..q.find('"').unwrap_or(q.len())].to_string(),
        None => rest.split(' ').next().unwrap_or("").to_string(),
    })
}

fn days_left(out: &str) -> i64 {
    field(out, "days_left")
        .unwrap_or_else(|| panic!("no days_left: {out}"))
        .parse()
        .unwrap()
}

#[test]
fn certificates_are_judged_by_chain_name_and_time_left() {
    if !require("openssl") {
        return;
    }
    let dir = scratch("tls-judged");
    let pki = Pki::new(&dir);
    let ca = pki.ca_pem.to_str().unwrap().to_string();
    let name = "svc.test";

    // Fresh: OK, with subject, issuer and days left, and exit 0.
    let fresh = SServer::start(&pki.leaf("fresh", &[name], -1, 90), &[]);
    let addr = fresh.addr.to_string();
    let (o, _) = tls(&[&addr, "--sni", name, "--ca", &ca]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out} {}", stderr(&o));
    assert!(out.starts_with(&format!("OK {addr} ")), "{out}");
    assert_eq!(
        field(&out, "subject").as_deref(),
        Some("CN=svc.test"),
        "{out}"
    );
    assert_eq!(
        field(&out, "issuer").as_deref(),
        Some("CN=health-probe test CA"),
        "{out}"
    );
    assert!((89..=90).contains(&days_left(&out)), "{out}");
    assert!(
        field(&out, "version").is_some_and(|v| v.starts_with("TLSv1.")),
        "{out}"
    );
    assert_eq!(field(&out, "cert"), None, "{out}");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    // The same in Nagios mode, and as JSON.
    let (o, _) = tls(&[&addr, "--sni", name, "--ca", &ca, "--nagios"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).starts_with("TLS OK - "), "{}", stdout(&o));
    assert!(stdout(&o).contains("|days_left="), "{}", stdout(&o));
    let (o, _) = tls(&[&addr, "--sni", name, "--ca", &ca, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["class"], "OK");
    assert_eq!(v["cert"]["subject"], "CN=svc.test");
    assert_eq!(v["cert"]["chain"], 1);

    // Under --cert-warn (14d by default): still OK (exit 0), marked; a
    // Nagios WARNING.
    let soon = SServer::start(&pki.leaf("soon", &[name], -80, 10), &[]);
    let addr = soon.addr.to_string();
    let (o, _) = tls(&[&addr, "--sni", name, "--ca", &ca]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}");
    assert_eq!(field(&out, "cert").as_deref(), Some("warn"), "{out}");
    assert!((9..=10).contains(&days_left(&out)), "{out}");
    let (o, _) = tls(&[&addr, "--sni", name, "--ca", &ca, "--nagios"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).starts_with("TLS WARNING - "), "{}", stdout(&o));
    // A mark of one's own: 5d is fine.
    let (o, _) = tls(&[
        &addr,
        "--sni",
        name,
        "--ca",
        &ca,
        "--cert-warn",
        "5d",
        "--cert-crit",
        "1d",
    ]);
    assert_eq!(field(&stdout(&o), "cert"), None, "{}", stdout(&o));

    // Under --cert-crit (3d by default): NG, exit 1, CRITICAL.
    let crit = SServer::start(&pki.leaf("crit", &[name], -80, 2), &[]);
    let addr = crit.addr.to_string();
    let (o, _) = tls(&[&addr, "--sni", name, "--ca", &ca]);
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(out.starts_with("NG "), "{out}");
    assert_eq!(
        field(&out, "reason").as_deref(),
        Some("cert-expiring"),
        "{out}"
    );
    assert!(
        stderr(&o).starts_with(&format!("health-probe: NG (cert-expiring): {addr}: ")),
        "{}",
        stderr(&o)
    );
    let (o, _) = tls(&[&addr, "--sni", name, "--ca", &ca, "--nagios"]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));

    // Expired: verification fails, and the verdict still names the
    // certificate and how long ago it expired; --insecure too.
    let expired = SServer::start(&pki.leaf("expired", &[name], -100, -10), &[]);
    let addr = expired.addr.to_string();
    for extra in [&["--ca", ca.as_str()][..], &["--insecure"][..]] {
        let mut args = vec![addr.as_str(), "--sni", name];
        args.extend_from_slice(extra);
        let (o, _) = tls(&args);
        let out = stdout(&o);
        assert_eq!(code(&o), 1, "{out}");
        assert_eq!(
            field(&out, "reason").as_deref(),
            Some("cert-expired"),
            "{out}"
        );
        assert!((-11..=-10).contains(&days_left(&out)), "{out}");
        assert_eq!(
            field(&out, "subject").as_deref(),
            Some("CN=svc.test"),
            "{out}"
        );
        assert!(out.contains("expired 1"), "{out}");
    }

    // Not trusted by the system's roots; for another name; by IP address.
    let addr = fresh.addr.to_string();
    let (o, _) = tls(&[&addr, "--sni", name]);
    let out = stdout(&o);
    assert_eq!(
        field(&out, "reason").as_deref(),
        Some("cert-untrusted"),
        "{out}"
    );
    assert!((89..=90).contains(&days_left(&out)), "{out}");
    let (o, _) = tls(&[&addr, "--sni", "other.test", "--ca", &ca]);
    assert_eq!(
        field(&stdout(&o), "reason").as_deref(),
        Some("cert-name"),
        "{}",
        stdout(&o)
    );
    let (o, _) = tls(&[&addr, "--ca", &ca]);
    assert_eq!(field(&stdout(&o), "reason").as_deref(), Some("cert-name"));
    let by_ip = SServer::start(&pki.leaf("ip", &["127.0.0.1"], -1, 90), &[]);
    let (o, _) = tls(&[&by_ip.addr.to_string(), "--ca", &ca]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_peer_that_is_not_tls_gets_a_clear_verdict_within_the_deadline() {
    // Nothing listening.
    let closed = free_port();
    let (o, _) = tls(&[&closed]);
    assert_eq!(field(&stdout(&o), "reason").as_deref(), Some("refused"));
    // Silent: accepts (the kernel does) and never answers.
    let (addr, _sock, _fillers) = unanswered_listener();
    let (o, took) = tls(&[&addr.to_string(), "--timeout", "300ms"]);
    assert!(stdout(&o).starts_with("WR "), "{}", stdout(&o));
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Speaks another protocol.
    let addr = common::fake(|mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
        std::thread::sleep(Duration::from_millis(300));
    });
    let (o, _) = tls(&[&addr]);
    assert!(stdout(&o).starts_with("NG "), "{}", stdout(&o));
    assert_eq!(field(&stdout(&o), "reason").as_deref(), Some("handshake"));
    assert_eq!(code(&o), 1);
    // A STARTTLS server that says no.
    let addr = common::fake(|mut s| {
        use std::io::Read;
        let _ = s.write_all(b"220 mail ESMTP\r\n");
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"250 mail\r\n");
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"454 4.7.0 TLS not available\r\n");
    });
    let (o, _) = tls(&[&addr, "--starttls", "smtp"]);
    let out = stdout(&o);
    assert_eq!(field(&out, "reason").as_deref(), Some("starttls"), "{out}");
    assert!(out.contains("454 4.7.0 TLS not available"), "{out}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    for (args, says) in [
        (
            &["127.0.0.1:1", "--cert-warn", "2d", "--cert-crit", "3d"][..],
            "--cert-crit must not be longer than --cert-warn",
        ),
        (
            &["127.0.0.1:1", "--starttls", "gopher"][..],
            "unknown STARTTLS protocol",
        ),
        (
            &["127.0.0.1:1", "--ca", "/nonexistent/ca.pem"][..],
            "--ca: cannot read",
        ),
        (&["127.0.0.1:1", "--sni", "bad name!"][..], "--sni:"),
    ] {
        let (o, _) = tls(args);
        assert_eq!(code(&o), 1, "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    let (o, _) = tls(&["127.0.0.1:1", "--ca", "/x", "--insecure", "--nagios"]);
    assert_eq!(code(&o), 3);
    assert!(stdout(&o).starts_with("TLS UNKNOWN - "), "{}", stdout(&o));
}

#[test]
fn starttls_upgrades_imap_pop3_and_smtp_on_dovecot() {
    if !require("dovecot") || !require("openssl") {
        return;
    }
    let dir = scratch("tls-dovecot");
    let pki = Pki::new(&dir.join("pki"));
    let leaf = pki.leaf("mail", &["mail.test"], -1, 30);
    let dovecot = Dovecot::start(&dir.join("dovecot"), &leaf);
    let ca = pki.ca_pem.to_str().unwrap();
    for (addr, proto) in [
        (dovecot.imap, "imap"),
        (dovecot.pop3, "pop3"),
        (dovecot.submission, "smtp"),
    ] {
        let addr = addr.to_string();
        let (o, _) = tls(&[&addr, "--starttls", proto, "--sni", "mail.test", "--ca", ca]);
        let out = stdout(&o);
        assert_eq!(code(&o), 0, "{proto}: {out} {}", stderr(&o));
        assert_eq!(
            field(&out, "subject").as_deref(),
            Some("CN=mail.test"),
            "{out}"
        );
        assert!((29..=30).contains(&days_left(&out)), "{out}");
        // Without the upgrade, the plain greeting is no TLS.
        let (o, _) = tls(&[
            &addr,
            "--sni",
            "mail.test",
            "--ca",
            ca,
            "--timeout",
            "500ms",
        ]);
        assert_ne!(code(&o), 0, "{proto}: {}", stdout(&o));
    }
    drop(dovecot);
    let _ = std::fs::remove_dir_all(&dir);
}
