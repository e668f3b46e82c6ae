//! The health-probe binary against real endpoints and misbehaving peers on
//! loopback: every exit code, every failure class, every output mode.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::time::Duration;

use health_server::{Builder, Landmark, Weight};

mod common;
use common::{
    code, fake, free_port, in_new_netns, run_probe as probe, serving, stderr, stdout, PROBE,
};

/// Reads the probe's 16-byte check (and any payload) and returns its id.
fn read_check(s: &mut TcpStream) -> u32 {
    let f = health_proto::blocking::read_frame(s, 1 << 16).expect("a check frame");
    f.request_id
}

/// The bytes of an `ok` landmark reply answering request `id`.
fn ok_reply(id: u32) -> Vec<u8> {
    health_proto::Response::Landmark(health_proto::LandmarkReply::whole(Landmark::ok("x"), 1))
        .to_frame(id)
        .to_bytes()
}

#[test]
fn healthy_exits_0_with_one_verdict_line() {
    let (server, addr) =
        serving(Landmark::ok("serving 12 clients").with_weight(Weight::new(100).unwrap()));
    let (o, _) = probe(&[&addr, "--expect", "ok"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(&format!("OK {addr} state=ok weight=100 rtt=")),
        "{out}"
    );
    assert!(
        out.trim_end().ends_with(r#"detail="serving 12 clients""#),
        "{out}"
    );
    assert_eq!(stderr(&o), "");
    server.shutdown_blocking();
}

#[test]
fn unexpected_states_exit_1_naming_the_class() {
    for (landmark, state) in [
        (Landmark::degraded("replica lag"), "degraded"),
        (Landmark::drain("restarting"), "drain"),
        (Landmark::fail("disk full"), "fail"),
    ] {
        let (server, addr) = serving(landmark);
        let (o, _) = probe(&[&addr]);
        assert_eq!(code(&o), 1, "{state}");
        assert!(
            stdout(&o).starts_with(&format!("FAIL {addr} state={state} ")),
            "{}",
            stdout(&o)
        );
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!(
                "health-probe: unexpected-state: {addr} is {state}, expected ok: "
            )),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);
        server.shutdown_blocking();
    }
}

#[test]
fn expect_accepts_a_list() {
    let (server, addr) = serving(Landmark::degraded("replica lag"));
    let (o, _) = probe(&[&addr, "--expect", "ok,degraded"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (o, _) = probe(&[&addr, "--expect", "fail"]);
    assert_eq!(code(&o), 1);
    server.shutdown_blocking();
}

#[test]
fn dynamic_exit_codes_carry_the_weight() {
    for (w, want) in [
        (Some(100u8), 102),
        (Some(0), 2),
        (Some(253), 255),
        (None, 0),
    ] {
        let mut l = Landmark::ok("fine");
        l.weight = w.map(|w| Weight::new(w).unwrap());
        let (server, addr) = serving(l);
        let (o, _) = probe(&[&addr, "--dynamic"]);
        assert_eq!(code(&o), want, "weight {w:?}");
        server.shutdown_blocking();
    }
    let (server, addr) = serving(Landmark::fail("down").with_weight(Weight::new(100).unwrap()));
    let (o, _) = probe(&[&addr, "--dynamic"]);
    assert_eq!(code(&o), 1, "unhealthy is 1 whatever the weight");
    server.shutdown_blocking();
}

#[test]
fn hung_main_thread_fails_fast() {
    let (asks, rx) = health_server::channel();
    let server = Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .answer_deadline(Duration::from_millis(200))
        .spawn(rx)
        .unwrap();
    let addr = server.local_addr().to_string();
    let (o, took) = probe(&[&addr]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains(r#"state=fail"#), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("unexpected-state")
            && stderr(&o).contains("main thread did not answer within 200ms"),
        "{}",
        stderr(&o)
    );
    assert!(took < Duration::from_millis(900), "{took:?}");
    drop(asks);
    server.shutdown_blocking();
}

#[test]
fn component_flag_checks_one_component() {
    let (server, addr) = serving(
        Landmark::ok("fine")
            .with_component("db", health_server::State::Degraded, "lag 12s")
            .with_component("feed", health_server::State::Ok, "live"),
    );
    let (o, _) = probe(&[&addr, "--component", "feed"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("component=feed state=ok"),
        "{}",
        stdout(&o)
    );
    let (o, _) = probe(&[&addr, "--component", "db"]);
    assert_eq!(code(&o), 1);
    let (o, _) = probe(&[&addr, "--component", "cache"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with("health-probe: server-error: ")
            && stderr(&o).contains("unknown_component"),
        "{}",
        stderr(&o)
    );
    server.shutdown_blocking();
}

fn assert_class(o: &Output, class: &str) {
    assert_eq!(code(o), 1, "stdout {} stderr {}", stdout(o), stderr(o));
    let err = stderr(o);
    assert!(
        err.starts_with(&format!("health-probe: {class}: ")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        stdout(o).contains(&format!("class={class} ")),
        "{}",
        stdout(o)
    );
}

#[test]
fn refused() {
    let (o, _) = probe(&[&free_port()]);
    assert_class(&o, "refused");
}

#[test]
fn silent_peer_times_out_within_the_timeout() {
    let addr = fake(|s| {
        std::thread::sleep(Duration::from_secs(3));
        drop(s);
    });
    let (o, took) = probe(&[&addr, "--timeout", "300ms"]);
    assert_class(&o, "timeout");
    assert!(
        stderr(&o).contains("no reply within 300ms"),
        "{}",
        stderr(&o)
    );
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1000),
        "{took:?}"
    );
}

#[test]
fn unanswered_connect_times_out_within_the_timeout() {
    // A listener that never accepts, with its accept queue filled: the
    // kernel drops further SYNs, so the probe's connect gets no answer.
    let (addr, _sock, _fillers) = common::unanswered_listener();
    let (o, took) = probe(&[&addr.to_string(), "--timeout", "300ms"]);
    assert_class(&o, "timeout");
    assert!(
        stderr(&o).contains("no connection within 300ms"),
        "{}",
        stderr(&o)
    );
    assert!(took < Duration::from_millis(1000), "{took:?}");
}

#[test]
fn trickling_peer_cannot_stretch_the_deadline() {
    // Sends a valid header one byte every 100 ms: each read succeeds, but
    // the overall deadline still ends the probe.
    let addr = fake(|mut s| {
        let id = read_check(&mut s);
        for b in ok_reply(id) {
            if s.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (o, took) = probe(&[&addr, "--timeout", "500ms"]);
    assert_class(&o, "timeout");
    assert!(took < Duration::from_millis(1100), "{took:?}");
}

#[test]
fn peer_closing_without_reply_is_reset() {
    let addr = fake(|mut s| {
        read_check(&mut s);
        drop(s);
    });
    let (o, _) = probe(&[&addr]);
    assert_class(&o, "reset");
}

#[test]
fn garbage_reply_is_protocol() {
    let addr = fake(|mut s| {
        read_check(&mut s);
        let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
    });
    let (o, _) = probe(&[&addr]);
    assert_class(&o, "protocol");
    assert!(stderr(&o).contains("bad magic"), "{}", stderr(&o));
}

#[test]
fn malformed_payload_is_protocol() {
    let addr = fake(|mut s| {
        let id = read_check(&mut s);
        let f = health_proto::Frame {
            kind: 0x81,
            request_id: id,
            payload: bytes::Bytes::from_static(br#"{"state":"great"}"#),
        };
        let _ = s.write_all(&f.to_bytes());
    });
    let (o, _) = probe(&[&addr]);
    assert_class(&o, "protocol");
}

#[test]
fn wrong_request_id_is_protocol() {
    let addr = fake(|mut s| {
        let id = read_check(&mut s);
        let _ = s.write_all(&ok_reply(id.wrapping_add(1)));
    });
    let (o, _) = probe(&[&addr]);
    assert_class(&o, "protocol");
    assert!(
        stderr(&o).contains("reply is for request"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn truncated_reply_is_protocol() {
    let addr = fake(|mut s| {
        let id = read_check(&mut s);
        let bytes = ok_reply(id);
        let _ = s.write_all(&bytes[..bytes.len() - 3]);
    });
    let (o, _) = probe(&[&addr]);
    assert_class(&o, "protocol");
}

#[test]
fn oversized_reply_is_refused_without_reading_it() {
    let addr = fake(|mut s| {
        let id = read_check(&mut s);
        let mut head = bytes::BytesMut::new();
        health_proto::Header {
            kind: 0x81,
            request_id: id,
            payload_len: u32::MAX,
        }
        .write(&mut head);
        let _ = s.write_all(&head);
        std::thread::sleep(Duration::from_secs(2));
    });
    let (o, took) = probe(&[&addr]);
    assert_class(&o, "protocol");
    assert!(stderr(&o).contains("exceeds the limit"), "{}", stderr(&o));
    assert!(took < Duration::from_millis(900));
}

#[test]
fn busy_server_is_a_server_error() {
    let addr = fake(|mut s| {
        let f = health_proto::Response::Error(health_proto::ErrorReply::new(
            health_proto::ErrorCode::Busy,
            "at limit",
        ));
        let _ = s.write_all(&f.to_frame(0).to_bytes());
        let mut sink = [0u8; 64];
        let _ = s.read(&mut sink);
    });
    let (o, _) = probe(&[&addr]);
    // The busy reply carries request id 0 (sent before any request is read):
    // the probe must still show the server's reason.
    assert_class(&o, "server-error");
    assert!(
        stderr(&o).contains("server answered error busy: at limit"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_errors_exit_1_with_one_line() {
    for args in [
        vec![],
        vec!["127.0.0.1:9100", "--expect", "up"],
        vec!["127.0.0.1:9100", "--timeout", "soon"],
        vec!["127.0.0.1:9100", "--no-such-flag"],
        vec!["9100"],
        vec!["::1:9100"],
        vec!["127.0.0.1:9100", "--json", "--quiet"],
    ] {
        let (o, _) = probe(&args);
        assert_eq!(code(&o), 1, "{args:?}");
        let err = stderr(&o);
        assert!(err.starts_with("health-probe: usage: "), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn help_and_version_exit_0() {
    let (o, _) = probe(&["--help"]);
    assert_eq!(code(&o), 0);
    let help = stdout(&o);
    for flag in [
        "--expect",
        "--component",
        "--timeout",
        "--dynamic",
        "--json",
        "--quiet",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    assert!(help.contains("[default: 1s]"), "{help}");
    let (o, _) = probe(&["--version"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).starts_with("health-probe "));
}

#[test]
fn json_is_one_object() {
    let (server, addr) = serving(
        Landmark::ok("fine")
            .with_weight(Weight::new(7).unwrap())
            .with_field("clients", 3),
    );
    let (o, _) = probe(&[&addr, "--json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["state"], "ok");
    assert_eq!(v["weight"], 7);
    assert_eq!(v["fields"]["clients"], 3);
    assert_eq!(v["exit_code"], 0);
    assert!(v["class"].is_null());
    assert!(v["rtt_ms"].as_f64().unwrap() > 0.0);
    server.shutdown_blocking();
    let (o, _) = probe(&[&free_port(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["class"], "refused");
    assert_eq!(v["exit_code"], 1);
}

#[test]
fn quiet_prints_nothing() {
    let (server, addr) = serving(Landmark::ok("fine"));
    let (o, _) = probe(&[&addr, "--quiet"]);
    assert_eq!(code(&o), 0);
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    server.shutdown_blocking();
    let (o, _) = probe(&[&free_port(), "-q"]);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
}

#[test]
fn ipv6_and_host_names() {
    let (server, addr) = serving(Landmark::ok("fine"));
    let port = addr.rsplit_once(':').unwrap().1;
    // localhost comes from /etc/hosts: no DNS traffic leaves the machine.
    let (o, _) = probe(&[&format!("localhost:{port}")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    server.shutdown_blocking();
    if TcpListener::bind("[::1]:0").is_ok() {
        let (asks, rx) = health_server::channel();
        let server = Builder::new()
            .bind("[::1]:0".parse().unwrap())
            .spawn(rx)
            .unwrap();
        std::thread::spawn(move || {
            while let Some(a) = asks.recv_blocking() {
                a.answer(Landmark::ok("v6"));
            }
        });
        let addr: SocketAddr = server.local_addr();
        let (o, _) = probe(&[&addr.to_string()]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(stdout(&o).starts_with("OK [::1]:"), "{}", stdout(&o));
        server.shutdown_blocking();
    }
}

/// Name resolution failing: run the probe in a fresh network namespace (no
/// interfaces), so the resolver's queries cannot leave the machine.
#[test]
fn unresolvable_name_is_dns() {
    let Some(o) = in_new_netns(PROBE, &["no-such-host.invalid:9100", "--timeout", "2s"]) else {
        return;
    };
    assert_class(&o, "dns");
    assert!(
        stderr(&o).contains("cannot resolve no-such-host.invalid"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn nagios_mode_exit_codes_and_perfdata() {
    for (landmark, want, label) in [
        (
            Landmark::ok("serving").with_weight(Weight::new(80).unwrap()),
            0,
            "OK",
        ),
        (Landmark::degraded("replica lag"), 1, "WARNING"),
        (Landmark::drain("restarting"), 1, "WARNING"),
        (Landmark::fail("disk | full"), 2, "CRITICAL"),
    ] {
        let (server, addr) = serving(landmark);
        let (o, _) = probe(&[&addr, "--nagios"]);
        assert_eq!(code(&o), want, "{label}");
        let out = stdout(&o);
        assert_eq!(out.lines().count(), 1, "{out}");
        let (summary, perf) = out.trim_end().split_once('|').expect("perfdata after |");
        assert!(
            summary.starts_with(&format!("LANDMARK {label} - {addr} is ")),
            "{out}"
        );
        assert!(
            perf.starts_with("time=") && perf.contains("s;;;0.000000;1.000000"),
            "{perf}"
        );
        assert!(perf.contains(" answer="), "{perf}");
        if want == 0 {
            assert!(perf.ends_with(" weight=80;;;0;253"), "{perf}");
        }
        server.shutdown_blocking();
    }
    let (o, _) = probe(&[&free_port(), "--nagios"]);
    assert_eq!(code(&o), 2);
    assert!(
        stdout(&o).starts_with("LANDMARK CRITICAL - ") && stdout(&o).contains("refused"),
        "{}",
        stdout(&o)
    );
    let (o, _) = probe(&["127.0.0.1:1", "--nagios", "--expect", "up"]);
    assert_eq!(code(&o), 3);
    assert!(
        stdout(&o).starts_with("LANDMARK UNKNOWN - usage: "),
        "{}",
        stdout(&o)
    );
    let (o, _) = probe(&["127.0.0.1:1", "--nagios", "--dynamic"]);
    assert_eq!(code(&o), 3, "--nagios and --dynamic conflict");
}

/// A duration too long for any deadline is a usage error on every
/// subcommand (exit 1; 3 UNKNOWN with --nagios), never an abort (exit 134,
/// which keepalived's misc_dynamic would read as healthy with weight 132).
#[test]
fn overlong_durations_are_usage_errors_everywhere() {
    let huge = "9223372036854775807s";
    let port = free_port();
    let cases: Vec<Vec<&str>> = vec![
        vec![&port, "--timeout", huge],
        vec![&port, "--timeout", huge, "--dynamic"],
        vec!["tcp", &port, "--timeout", huge],
        vec!["tcp", &port, "--warn", huge],
        vec!["tcp", &port, "--crit", "2d"],
        vec!["ping", "127.0.0.1", "--timeout", huge],
        vec!["ping", "127.0.0.1", "--interval", huge],
        vec!["connections", &port, "--timeout", huge],
        vec!["connections", &port, "--since", huge],
        vec!["connections", &port, "--at", huge],
        vec!["watch", "/nonexistent.toml", "--stats", huge],
        vec!["report", "--since", huge],
    ];
    for args in &cases {
        let (o, _) = probe(args);
        assert_eq!(code(&o), 1, "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.starts_with("health-probe: usage: "), "{args:?}: {err}");
        assert!(err.contains("too long"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    for args in [
        vec![port.as_str(), "--timeout", huge, "--nagios"],
        vec!["tcp", &port, "--timeout", huge, "--nagios"],
        vec!["ping", "127.0.0.1", "--crit", huge, "--nagios"],
    ] {
        let (o, _) = probe(&args);
        assert_eq!(code(&o), 3, "{args:?}");
        assert!(
            stdout(&o).contains("UNKNOWN - usage: "),
            "{args:?}: {}",
            stdout(&o)
        );
    }
}
