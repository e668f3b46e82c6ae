//! `--source`: every kind of one-shot check leaves from the address or the
//! interface it names, as the peer sees it, and a source this machine
//! cannot use is an ERR of reason `source`, said on both streams. On
//! loopback (127.0.0.0/8 is all this host's), with real sockets.

use std::io::Write;
use std::net::{IpAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use health_server::Landmark;

mod common;
use common::{code, stderr, stdout, PROBE};

/// A peer that says which address each of its `n` callers came from.
fn peer(n: usize) -> (String, mpsc::Receiver<IpAddr>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for mut s in l.incoming().take(n).flatten() {
            let _ = tx.send(s.peer_addr().unwrap().ip());
            let _ = s.write_all(b"220 hello\r\n");
        }
    });
    (addr, rx)
}

fn probe(args: &[&str]) -> std::process::Output {
    std::process::Command::new(PROBE)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_tcp_check_leaves_from_the_source_address_or_interface() {
    let (addr, from) = peer(3);
    let o = probe(&["tcp", &addr, "--source", "127.0.0.2"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        from.recv_timeout(Duration::from_secs(5)).unwrap(),
        "127.0.0.2".parse::<IpAddr>().unwrap()
    );
    let o = probe(&[
        "tcp",
        &addr,
        "--source",
        "127.0.0.3",
        "--expect-banner",
        "220",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        from.recv_timeout(Duration::from_secs(5)).unwrap(),
        "127.0.0.3".parse::<IpAddr>().unwrap()
    );
    let o = probe(&["tcp", &addr, "--source", "lo"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("OK "), "{}", stdout(&o));
}

#[test]
fn a_landmark_check_and_a_ping_leave_from_the_source_too() {
    let (_server, addr) = test_support::serving(Landmark::ok("serving"));
    let o = probe(&[&addr, "--source", "127.0.0.9", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = probe(&[&addr, "--source", "lo"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = probe(&["ping", "127.0.0.1", "--count", "1", "--source", "127.0.0.1"]);
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
}

#[test]
fn a_source_this_host_cannot_use_is_err_source() {
    let (addr, _from) = peer(0);
    for (source, said) in [
        ("192.0.2.1", "cannot bind to source 192.0.2.1"),
        ("nosuchif0", "cannot bind to source nosuchif0"),
        (
            "::1",
            "source ::1 is IPv6 and the target's address 127.0.0.1 is IPv4",
        ),
    ] {
        for kind in [&["tcp", addr.as_str()][..], &[addr.as_str()][..]] {
            let mut args = kind.to_vec();
            args.extend(["--source", source]);
            let o = probe(&args);
            assert_eq!(code(&o), 1, "{args:?}");
            assert!(
                stderr(&o).contains("(source)") || stderr(&o).contains("source:"),
                "{args:?}: {}",
                stderr(&o)
            );
            assert!(stderr(&o).contains(said), "{args:?}: {}", stderr(&o));
        }
    }
    // Not an address, and not an interface name: a usage error.
    let o = probe(&["tcp", &addr, "--source", "eth0/1"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("neither an IP address nor an interface name"),
        "{}",
        stderr(&o)
    );
    let o = probe(&["tcp", &addr, "--source", "192.0.2.1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["class"].as_str(), v["reason"].as_str()),
        (Some("ERR"), Some("source")),
        "{v}"
    );
}
