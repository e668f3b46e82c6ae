//! `http_listen`: the watcher as a Prometheus exporter, over real HTTP on
//! loopback. Every target's last check, alarm and counts; a target a reload
//! removes is gone from the next scrape; target names are label values,
//! escaped; the text format 0.0.4 or OpenMetrics by `Accept`;
//! `promtool check metrics` (Debian's prometheus package) finds nothing to
//! say. An address in use stops the start; a bad one is a config error.

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::Duration;

use health_server::{Builder, Landmark};

mod common;
use common::watcher::{check_config, http_get, is, scratch, write_config, Accepting, Watcher};
use common::{code, free_port, promtool_accepts, sample, stderr, PROBE};

/// One GET on a fresh connection: status, head and body.
fn get(addr: SocketAddr, path: &str, accept: &str) -> (u16, String, String) {
    http_get(addr, path, &format!("Accept: {accept}\r\n"))
}

fn scrape(addr: SocketAddr) -> String {
    let (code, head, body) = get(addr, "/metrics", "text/plain");
    assert_eq!(code, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    body
}

const HOSTILE: &str = r#"evil"} 1\nwatch_target_up{target="x"#;

#[test]
fn every_target_is_exported_and_a_removed_one_is_forgotten() {
    let dir = scratch("exporter");
    let ok = Accepting::on("127.0.0.1:0", b"220 ready\r\n");
    let refused = free_port();
    let (_publisher, rx) = health_server::publisher(Landmark::ok("fine"));
    let server = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let listen: SocketAddr = free_port().parse().unwrap();
    let targets = |with_refused: bool| {
        let mut t = format!(
            r#"http_listen = "{listen}"

[defaults]
interval = "200ms"
timeout = "150ms"

[[target]]
name = "ok"
kind = "tcp"
addr = "{ok}"

[[target]]
name = {hostile}
kind = "landmark"
addr = "{landmark}"
"#,
            ok = ok.addr,
            hostile = toml_string(HOSTILE),
            landmark = server.local_addr(),
        );
        if with_refused {
            t.push_str(&format!(
                "\n[[target]]\nname = \"refused\"\nkind = \"tcp\"\naddr = \"{refused}\"\non_raise = \"true\"\n"
            ));
        }
        t
    };
    let config = write_config(&dir, &targets(true));
    let mut w = Watcher::quiet(&config);
    w.wait_for(
        "raise refused",
        Duration::from_secs(10),
        is("raise", "refused"),
    );
    w.wait_for("its action", Duration::from_secs(10), |v| {
        v["event"] == "action" && v["target"] == "refused"
    });

    let body = scrape(listen);
    let up = |t: &str, kind: &str| {
        sample(
            &body,
            &format!("watch_target_up{{target=\"{t}\",kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(up("ok", "tcp"), Some(1.0), "{body}");
    assert_eq!(up("refused", "tcp"), Some(0.0), "{body}");
    let raised = |t: &str| {
        sample(
            &body,
            &format!("watch_alarm_raised{{target=\"{t}\",kind=\"tcp\"}}"),
        )
    };
    assert_eq!(raised("refused"), Some(1.0), "{body}");
    assert_eq!(raised("ok"), Some(0.0), "{body}");
    let ng = sample(&body, "watch_checks_total{target=\"refused\",class=\"NG\"}").unwrap();
    assert!(ng >= 2.0, "{body}");
    assert_eq!(
        sample(&body, "watch_checks_total{target=\"ok\",class=\"NG\"}"),
        Some(0.0)
    );
    let rtt = sample(
        &body,
        "watch_target_rtt_seconds{target=\"ok\",kind=\"tcp\"}",
    )
    .unwrap();
    assert!(rtt > 0.0 && rtt < 1.0, "{body}");
    assert_eq!(
        sample(&body, "watch_actions_total{outcome=\"ok\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(sample(&body, "watch_targets"), Some(3.0), "{body}");
    // The hostile name is one label value: quote, backslash and newline
    // escaped, no sample injected.
    let escaped = r#"evil\"} 1\\nwatch_target_up{target=\"x"#;
    assert_eq!(
        sample(
            &body,
            &format!("watch_target_up{{target=\"{escaped}\",kind=\"landmark\"}}")
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "watch_target_up{target=\"x\"}"),
        None,
        "{body}"
    );
    assert!(sample(&body, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(
        sample(&body, "process_cpu_seconds_total").is_some(),
        "{body}"
    );
    assert!(sample(&body, "process_open_fds").unwrap() > 3.0);
    promtool_accepts(&body);

    // OpenMetrics when asked.
    let (code, head, om) = get(
        listen,
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    );
    assert_eq!(code, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    // The status page is there too; nothing else is served.
    assert_eq!(get(listen, "/", "*/*").0, 200);
    assert_eq!(get(listen, "/nothing", "*/*").0, 404);

    // A reload without the target: gone from the next scrape.
    std::fs::write(
        &config,
        format!(
            "database = {:?}\n{}",
            dir.join("watch.db").display().to_string(),
            targets(false)
        ),
    )
    .unwrap();
    w.signal(libc::SIGHUP);
    w.wait_for("reload", Duration::from_secs(5), |v| v["event"] == "reload");
    let body = scrape(listen);
    assert!(!body.contains("target=\"refused\""), "{body}");
    assert_eq!(sample(&body, "watch_targets"), Some(2.0), "{body}");
    assert_eq!(w.stop(), 0);
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn an_address_in_use_stops_the_start() {
    let dir = scratch("exporter-in-use");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "http_listen = \"{addr}\"\n[[target]]\nname = \"t\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n"
        ),
    );
    let o = Command::new(PROBE)
        .arg("watch")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("http_listen {addr}: cannot listen")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn listen_addresses_are_checked_with_the_config() {
    let dir = scratch("exporter-config");
    let check = |listen: &str| {
        let config = write_config(
            &dir,
            &format!(
                "http_listen = {}\n[[target]]\nname = \"t\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n",
                toml_string(listen)
            ),
        );
        Command::new(PROBE)
            .args(["watch", "--check-config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    for good in [
        ":9101",
        "localhost:9101",
        "127.0.0.1:9101",
        "[::1]:9101",
        "0.0.0.0:9101",
    ] {
        let o = check(good);
        assert_eq!(code(&o), 0, "{good}: {}", stderr(&o));
    }
    for (bad, says) in [
        ("example.com:80", "must be IP:PORT"),
        (":0", "port 0"),
        (":http", "not a number"),
        ("127.0.0.1", "must be IP:PORT"),
    ] {
        let o = check(bad);
        assert_eq!(code(&o), 1, "{bad} accepted");
        assert!(
            stderr(&o).contains("watch.toml:2:"),
            "{bad}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains(says), "{bad}: {}", stderr(&o));
    }
}

/// A watcher with one quiet target and the exporter on a free port.
fn exporter(tag: &str) -> (Watcher, SocketAddr, std::path::PathBuf) {
    let dir = scratch(tag);
    let listen: SocketAddr = free_port().parse().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "http_listen = \"{listen}\"\n[[target]]\nname = \"t\"\nkind = \"tcp\"\naddr = \"{}\"\ninterval = \"1h\"\n",
            free_port()
        ),
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    (w, listen, dir)
}

fn probe(listen: SocketAddr, query: &str, extra: &str) -> (u16, String) {
    let (code, _, body) = http_get(listen, &format!("/probe?{query}"), extra);
    (code, body)
}

#[test]
fn probe_answers_as_blackbox_exporter_does() {
    let (w, listen, _dir) = exporter("probe");
    let (_p, rx) = health_server::publisher(
        Landmark::degraded("lag").with_weight(health_server::Weight::new(40).unwrap()),
    );
    let degraded = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let (_q, rx) = health_server::publisher(Landmark::ok("fine"));
    let fine = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();

    // landmark is the default module; it expects ok.
    let (code, body) = probe(listen, &format!("target={}", fine.local_addr()), "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(sample(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(
        sample(&body, "probe_landmark_state{state=\"ok\"}"),
        Some(1.0),
        "{body}"
    );
    assert!(!body.contains("probe_failure_info{"), "{body}");
    assert!(sample(&body, "probe_duration_seconds").unwrap() < 1.0);
    promtool_accepts(&body);

    let (_, body) = probe(
        listen,
        &format!("target={}&module=landmark", degraded.local_addr()),
        "",
    );
    assert_eq!(sample(&body, "probe_success"), Some(0.0), "{body}");
    assert_eq!(
        sample(&body, "probe_landmark_state{state=\"degraded\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(sample(&body, "probe_landmark_weight"), Some(40.0), "{body}");
    assert!(body.contains("probe_failure_info{class=\"NG\""), "{body}");
    promtool_accepts(&body);

    // tcp: an open port, and a refused one with its class and reason.
    let open = Accepting::on("127.0.0.1:0", b"");
    let (_, body) = probe(listen, &format!("target={}&module=tcp", open.addr), "");
    assert_eq!(sample(&body, "probe_success"), Some(1.0), "{body}");
    assert!(!body.contains("probe_landmark_state"), "{body}");
    let (_, body) = probe(listen, &format!("target={}&module=tcp", free_port()), "");
    assert_eq!(sample(&body, "probe_success"), Some(0.0), "{body}");
    assert_eq!(
        sample(&body, "probe_failure_info{class=\"NG\",reason=\"refused\"}"),
        Some(1.0),
        "{body}"
    );

    // The check ends within the scrape timeout Prometheus announces.
    let (silent, _sock, _fill) = common::unanswered_listener();
    let (_, body) = probe(
        listen,
        &format!("target={silent}&module=tcp"),
        "X-Prometheus-Scrape-Timeout-Seconds: 1\r\n",
    );
    let took = sample(&body, "probe_duration_seconds").unwrap();
    assert!((0.4..0.9).contains(&took), "{body}");
    assert!(
        body.contains("probe_failure_info{class=\"WR\",reason=\"timeout\"}"),
        "{body}"
    );

    // ping, where this process may open an ICMP socket (CI runs as root).
    let (_, body) = probe(listen, "target=127.0.0.1&module=ping", "");
    if std::env::var_os("CI").is_some() {
        assert_eq!(sample(&body, "probe_success"), Some(1.0), "{body}");
    }

    // Bad requests, in blackbox's words.
    let (code, body) = probe(listen, "module=tcp", "");
    assert_eq!((code, body.trim()), (400, "Target parameter is missing"));
    let (code, body) = probe(listen, "target=x:1&module=http_2xx", "");
    assert_eq!(code, 400);
    assert!(body.starts_with("Unknown module \"http_2xx\""), "{body}");
    drop(w);
}

/// `[module.NAME]` tables as a user writes them, after the exporter and a
/// quiet target.
fn with_modules(listen: SocketAddr, modules: &str) -> String {
    format!(
        "http_listen = \"{listen}\"\n[[target]]\nname = \"t\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"1h\"\n\n{modules}"
    )
}

#[test]
fn configured_modules_probe_with_their_settings_and_a_reload_replaces_them() {
    let dir = scratch("modules");
    let listen: SocketAddr = free_port().parse().unwrap();
    let modules = r#"
[module.serving]
kind = "landmark"
expect = ["ok", "degraded"]

[module.smtp]
kind = "tcp"
expect_banner = "220 "
timeout = "300ms"
"#;
    let config = write_config(&dir, &with_modules(listen, modules));
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    let (_p, rx) = health_server::publisher(Landmark::degraded("lag"));
    let degraded = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();

    // The module's expect, where the built-in landmark expects ok alone.
    let target = format!("target={}", degraded.local_addr());
    let (code, body) = probe(listen, &format!("{target}&module=serving"), "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(sample(&body, "probe_success"), Some(1.0), "{body}");
    let (_, body) = probe(listen, &format!("{target}&module=landmark"), "");
    assert_eq!(sample(&body, "probe_success"), Some(0.0), "{body}");

    // The module's banner, and its timeout under the scrape's.
    let mail = Accepting::on("127.0.0.1:0", b"220 mail ready\r\n");
    let (_, body) = probe(listen, &format!("target={}&module=smtp", mail.addr), "");
    assert_eq!(sample(&body, "probe_success"), Some(1.0), "{body}");
    let refusing = Accepting::on("127.0.0.1:0", b"554 go away\r\n");
    let (_, body) = probe(listen, &format!("target={}&module=smtp", refusing.addr), "");
    assert_eq!(sample(&body, "probe_success"), Some(0.0), "{body}");
    assert!(body.contains("probe_failure_info{class=\"NG\""), "{body}");
    let (silent, _sock, _fill) = common::unanswered_listener();
    let (_, body) = probe(listen, &format!("target={silent}&module=smtp"), "");
    let took = sample(&body, "probe_duration_seconds").unwrap();
    assert!((0.25..0.6).contains(&took), "{body}");
    let (code, body) = probe(listen, "target=x:1&module=nope", "");
    assert_eq!(code, 400);
    assert!(
        body.contains("(modules: landmark, tcp, ping, tls, serving, smtp)"),
        "{body}"
    );

    // A reload replaces the modules.
    let renamed = modules.replace("[module.smtp]", "[module.mail]");
    std::fs::write(&config, {
        let db = dir.join("watch.db");
        format!(
            "database = {:?}\n{}",
            db.display().to_string(),
            with_modules(listen, &renamed)
        )
    })
    .unwrap();
    w.signal(libc::SIGHUP);
    w.wait_for("reload", Duration::from_secs(5), |v| v["event"] == "reload");
    let (code, _) = probe(listen, &format!("target={}&module=smtp", mail.addr), "");
    assert_eq!(code, 400);
    let (_, body) = probe(listen, &format!("target={}&module=mail", mail.addr), "");
    assert_eq!(sample(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(w.stop(), 0);
}

#[test]
fn bad_modules_are_config_errors_at_their_line() {
    let dir = scratch("bad-modules");
    let listen: SocketAddr = free_port().parse().unwrap();
    let config = write_config(
        &dir,
        &with_modules(
            listen,
            "[module.tcp]\nkind = \"tcp\"\n\n[module.\"a b\"]\nkind = \"tcp\"\n\n[module.m]\nkind = \"ping\"\nexpect_banner = \"x\"\n\n[module.n]\nkind = \"landmark\"\nflal = 2\n\n[module.o]\nkind = \"smtp\"\n",
        ),
    );
    let o = check_config(&config);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    for (line, says) in [
        (9, "module tcp is built in"),
        (12, "module name \"a b\" must be"),
        (17, "expect_banner applies to tcp targets, not ping"),
        (21, "unknown field `flal`"),
        (24, "unknown variant `smtp`"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("watch.toml:{line}:")) && l.contains(says)),
            "line {line}: {says}\n{err}"
        );
    }
}

#[test]
fn the_documented_modules_are_accepted() {
    let block = common::doc_blocks("WATCH.md", "toml")
        .into_iter()
        .find(|b| b.contains("[module."))
        .expect("WATCH.md shows [module.NAME] tables");
    let dir = scratch("doc-modules");
    let config = write_config(
        &dir,
        &format!("[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n\n{block}"),
    );
    let o = check_config(&config);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
