//! Who may use the watcher's HTTP listener, and what open status pages
//! may hold of it: `http_allow` closes other networks' connections at
//! accept, basic auth answers 401 on every path without the password, and
//! `/events` streams are bounded so that scrapes still get through. Real
//! HTTP on loopback, with the defaults otherwise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

mod common;
use common::watcher::{check_config, http_get, scratch, write_config, Watcher};
use common::{code, free_port, stderr};

const TARGET: &str =
    "[[target]]\nname = \"t\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"1h\"\n";

/// A watcher started with `settings` (TOML before its one quiet target).
fn watcher(dir: &std::path::Path, settings: &str) -> Watcher {
    let config = write_config(dir, &format!("{settings}\n{TARGET}"));
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    w
}

/// One GET with `extra` header lines: the status code, or `None` when the
/// connection was closed without a reply.
fn status_of(listen: SocketAddr, path: &str, extra: &str) -> Option<u16> {
    let mut s = TcpStream::connect(listen).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split(' ').nth(1)?.parse().ok()
}

#[test]
fn the_listener_keeps_out_other_networks_and_asks_for_its_password() {
    let dir = scratch("access");
    let listen: SocketAddr = free_port().parse().unwrap();
    // Only 10.0.0.0/8: a loopback client is closed unanswered.
    let w = watcher(
        &dir,
        &format!("http_listen = \"{listen}\"\nhttp_allow = [\"10.0.0.0/8\"]"),
    );
    assert_eq!(status_of(listen, "/metrics", ""), None);
    assert_eq!(w.stop(), 0);

    // Basic auth, on every path.
    let password = dir.join("password");
    std::fs::write(&password, "s3cret: with colon\n").unwrap();
    let w = watcher(
        &dir,
        &format!(
            "http_listen = \"{listen}\"\nhttp_allow = [\"127.0.0.1\", \"::1\"]\nhttp_user = \"ops\"\nhttp_password_file = {:?}",
            password.to_str().unwrap()
        ),
    );
    use base64::Engine;
    let auth = |credentials: &str| {
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    };
    for path in ["/", "/metrics", "/report", "/target/t", "/events"] {
        assert_eq!(status_of(listen, path, ""), Some(401), "{path}");
        assert_eq!(
            status_of(listen, path, &auth("ops:wrong")),
            Some(401),
            "{path}"
        );
    }
    for path in ["/", "/metrics", "/report", "/target/t"] {
        assert_eq!(
            status_of(listen, path, &auth("ops:s3cret: with colon")),
            Some(200),
            "{path}"
        );
    }
    // The scheme's name is case-insensitive (RFC 7617).
    let lower = auth("ops:s3cret: with colon").replace("Basic", "basic");
    assert_eq!(status_of(listen, "/metrics", &lower), Some(200));
    let upper = auth("ops:s3cret: with colon").replace("Basic", "BASIC");
    assert_eq!(status_of(listen, "/metrics", &upper), Some(200));
    let (_, head, _) = http_get(listen, "/", "");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"health-probe watch\""),
        "{head}"
    );
    assert_eq!(w.stop(), 0);

    // Half the settings, or a bad network: config errors.
    for (bad, says) in [
        (
            "http_user = \"ops\"\n",
            "http_user needs http_password_file",
        ),
        ("http_allow = [\"10.0.0.0/33\"]\n", "is not a network"),
        (
            "http_user = \"ops\"\nhttp_password_file = \"/nonexistent/pw\"\n",
            "cannot read",
        ),
    ] {
        let config = write_config(&dir, &format!("http_listen = \"{listen}\"\n{bad}{TARGET}"));
        let o = check_config(&config);
        assert_eq!(code(&o), 1, "{bad}");
        assert!(stderr(&o).contains(says), "{bad}: {}", stderr(&o));
    }
}

#[test]
fn event_streams_are_bounded_and_scrapes_still_get_through() {
    let dir = scratch("streams");
    let listen: SocketAddr = free_port().parse().unwrap();
    let w = watcher(&dir, &format!("http_listen = \"{listen}\""));
    // 16 browsers hold /events open (each has read its first event).
    let open: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(listen).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(s, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200");
            s
        })
        .collect();
    // The 17th is told to come back; scrapes and pages are served.
    assert_eq!(status_of(listen, "/events", ""), Some(503));
    assert_eq!(status_of(listen, "/metrics", ""), Some(200));
    assert_eq!(status_of(listen, "/", ""), Some(200));
    // A stream that ends gives its place back.
    drop(open);
    let t = std::time::Instant::now();
    loop {
        let mut s = TcpStream::connect(listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        if &head == b"HTTP/1.1 200" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no place came back");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(w);
}

#[test]
fn an_empty_allow_list_is_refused_and_mapped_networks_match_their_ipv4_clients() {
    let dir = scratch("allow-mapped");
    let listen: SocketAddr = free_port().parse().unwrap();
    // `[]` would let no one in: refused, never read as "everyone".
    let config = write_config(
        &dir,
        &format!("http_listen = \"{listen}\"\nhttp_allow = []\n{TARGET}"),
    );
    let o = check_config(&config);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("http_allow = [] would let no client in"),
        "{}",
        stderr(&o)
    );
    // A network beyond the mapped range matches no IPv4 client: refused.
    let config = write_config(
        &dir,
        &format!("http_listen = \"{listen}\"\nhttp_allow = [\"::ffff:0.0.0.0/95\"]\n{TARGET}"),
    );
    let o = check_config(&config);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("IPv4-mapped"), "{}", stderr(&o));
    // The IPv4-mapped loopback network lets IPv4 loopback clients in.
    let w = watcher(
        &dir,
        &format!("http_listen = \"{listen}\"\nhttp_allow = [\"::ffff:127.0.0.0/104\"]"),
    );
    assert_eq!(status_of(listen, "/metrics", ""), Some(200));
    assert_eq!(w.stop(), 0);
    // And a mapped network outside loopback keeps them out.
    let w = watcher(
        &dir,
        &format!("http_listen = \"{listen}\"\nhttp_allow = [\"::ffff:10.0.0.0/104\"]"),
    );
    assert_eq!(status_of(listen, "/metrics", ""), None);
    assert_eq!(w.stop(), 0);
}

#[test]
fn probe_can_be_turned_off_and_an_open_listener_is_warned_of() {
    let dir = scratch("probe-off");
    let listen: SocketAddr = free_port().parse().unwrap();
    let w = watcher(
        &dir,
        &format!("http_listen = \"{listen}\"\nhttp_probe = false"),
    );
    let (status, head, body) = http_get(listen, "/probe?module=tcp&target=127.0.0.1:1", "");
    assert_eq!(status, 404, "{head}");
    assert!(body.contains("http_probe = false"), "{body}");
    assert_eq!(status_of(listen, "/metrics", ""), Some(200));
    assert_eq!(w.stop(), 0);

    // Start-up warnings (said by --check-config too): a listener open to
    // all with no access rule, a password file others can read.
    let warned = |settings: &str| {
        let config = write_config(&dir, &format!("{settings}\n{TARGET}"));
        let o = check_config(&config);
        assert_eq!(code(&o), 0, "{settings}: {}", stderr(&o));
        stderr(&o)
    };
    let port = listen.port();
    let open = warned(&format!("http_listen = \"0.0.0.0:{port}\""));
    assert!(
        open.contains(&format!(
            "warning: http_listen 0.0.0.0:{port} is open to every host"
        )) && open.contains("/probe"),
        "{open}"
    );
    let open = warned(&format!(
        "http_listen = \"[::]:{port}\"\nhttp_probe = false"
    ));
    assert!(
        open.contains("is open to every host") && !open.contains("/probe"),
        "{open}"
    );
    for quiet in [
        format!("http_listen = \"127.0.0.1:{port}\""),
        format!("http_listen = \"0.0.0.0:{port}\"\nhttp_allow = [\"10.0.0.0/8\"]"),
    ] {
        assert!(!warned(&quiet).contains("warning"), "{quiet}");
    }
    let password = dir.join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    let with_auth = format!(
        "http_listen = \"0.0.0.0:{port}\"\nhttp_user = \"ops\"\nhttp_password_file = {:?}",
        password.to_str().unwrap()
    );
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let said = warned(&with_auth);
    assert!(
        said.contains("can be read by every user (mode 644)"),
        "{said}"
    );
    assert!(!said.contains("is open to every host"), "{said}");
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!warned(&with_auth).contains("warning"));
    // A cap for a /probe that is off is a mistake.
    let config = write_config(
        &dir,
        &format!("http_listen = \"{listen}\"\nhttp_probe = false\nhttp_probe_max_timeout = \"5s\"\n{TARGET}"),
    );
    assert_eq!(code(&check_config(&config)), 1);
}
