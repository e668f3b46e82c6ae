//! `kind = "tls"` targets and `/probe?module=tls`, against OpenSSL's own
//! `openssl s_server` (Debian's openssl) serving certificates made for the
//! test: a certificate within `cert_crit` raises the alarm with reason
//! `cert-expiring` while a fresh one stays up; `/probe` reports
//! `probe_ssl_earliest_cert_expiry` for a chain that verifies and for one
//! that does not (the built-in module trusts the system's roots only).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::tls::{Pki, SServer};
use common::watcher::{http_get, is, scratch, write_config, Watcher};
use common::{free_port, require, sample};

fn probe(listen: SocketAddr, query: &str) -> String {
    let (code, head, body) = http_get(listen, &format!("/probe?{query}"), "");
    assert_eq!(code, 200, "{head}\n{body}");
    body
}

/// Days from now until the Unix time `at`.
fn days_until(at: f64) -> f64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (at - now.as_secs_f64()) / 86_400.0
}

#[test]
fn certificates_near_expiry_raise_and_probe_reports_expiry() {
    if !require("openssl") {
        return;
    }
    let dir = scratch("tls");
    let pki = Pki::new(&dir.join("pki"));
    let fresh = SServer::start(&pki.leaf("fresh", &["svc.test"], -1, 60), &[]);
    let crit = SServer::start(&pki.leaf("crit", &["svc.test"], -60, 2), &[]);
    let listen: SocketAddr = free_port().parse().unwrap();
    let ca = pki.ca_pem.display().to_string();
    let config = write_config(
        &dir,
        &format!(
            r#"http_listen = "{listen}"

[defaults]
interval = "300ms"
timeout = "250ms"

[module.tls_ours]
kind = "tls"
sni = "svc.test"
ca = "{ca}"

[[target]]
name = "fresh"
kind = "tls"
addr = "{fresh}"
sni = "svc.test"
ca = "{ca}"

[[target]]
name = "crit"
kind = "tls"
addr = "{crit}"
sni = "svc.test"
ca = "{ca}"
"#,
            fresh = fresh.addr,
            crit = crit.addr,
        ),
    );
    let mut w = Watcher::start(&config);
    let raise = w.wait_for("raise", Duration::from_secs(10), is("raise", "crit"));
    assert_eq!(raise["class"], "NG", "{raise}");
    assert_eq!(raise["reason"], "cert-expiring", "{raise}");
    let detail = raise["detail"].as_str().unwrap();
    assert!(detail.contains("CN=svc.test"), "{detail}");
    assert_eq!(raise["kind"], "tls");
    // Checked several times by now; the fresh one never fell.
    assert_eq!(w.count("raise", "fresh"), 0);

    // The built-in module: the test CA is not among the system's roots.
    // The check fails, and still says when the certificate expires.
    let body = probe(listen, &format!("target={}&module=tls", fresh.addr));
    assert_eq!(sample(&body, "probe_success"), Some(0.0), "{body}");
    let expiry = sample(&body, "probe_ssl_earliest_cert_expiry").expect(&body);
    assert!((59.0..=60.1).contains(&days_until(expiry)), "{body}");
    assert!(
        body.contains(r#"probe_failure_info{class="NG",reason="cert-untrusted"} 1"#),
        "{body}"
    );
    // A module that trusts the test CA: success, the version agreed.
    let body = probe(listen, &format!("target={}&module=tls_ours", fresh.addr));
    assert_eq!(sample(&body, "probe_success"), Some(1.0), "{body}");
    assert!(
        sample(&body, "probe_ssl_earliest_cert_expiry").is_some(),
        "{body}"
    );
    assert!(
        body.contains("probe_tls_version_info{version=\"TLS 1.3\"} 1"),
        "{body}"
    );
    let body = probe(listen, &format!("target={}&module=tls_ours", crit.addr));
    assert_eq!(sample(&body, "probe_success"), Some(0.0), "{body}");
    let expiry = sample(&body, "probe_ssl_earliest_cert_expiry").expect(&body);
    assert!((1.0..=2.1).contains(&days_until(expiry)), "{body}");
    assert_eq!(w.stop(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
