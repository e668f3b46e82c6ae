//! The status page's uptime is over the time observed: a target never up
//! since the watcher first checked it shows 0%, not the share of a day
//! before its first check; one up since shows 100%; the page says how it
//! counts. Real watcher, real HTTP on loopback.

use std::net::SocketAddr;
use std::time::Duration;

mod common;
use common::free_port;
use common::watcher::{is, scratch, write_config, Accepting, Watcher};
use test_support::prometheus::get;

/// The uptime cells (24 h, 10 d) of `name`'s row on the page `body`.
fn uptimes(body: &str, name: &str) -> Vec<String> {
    let row = body
        .split("<tr")
        .find(|r| r.contains(&format!(">{name}</a>")))
        .unwrap_or_else(|| panic!("no row for {name}"));
    row.split("<td class=\"num\">")
        .skip(1)
        .filter_map(|c| c.split('<').next())
        .filter(|c| c.ends_with('%') || *c == "—")
        .map(str::to_string)
        .collect()
}

#[test]
fn uptime_counts_from_the_first_check() {
    let up = Accepting::on("127.0.0.1:0", b"");
    let closed = free_port();
    let listen: SocketAddr = free_port().parse().unwrap();
    let dir = scratch("uptime");
    let config = write_config(
        &dir,
        &format!(
            "http_listen = \"{listen}\"\n[defaults]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\n\
             [[target]]\nname = \"down\"\nkind = \"tcp\"\naddr = \"{closed}\"\n\n\
             [[target]]\nname = \"up\"\nkind = \"tcp\"\naddr = \"{}\"\n",
            up.addr
        ),
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("raise", Duration::from_secs(10), is("raise", "down"));
    std::thread::sleep(Duration::from_secs(1));
    let (code, body) = get(listen, "/").unwrap();
    assert_eq!(code, 200);
    assert_eq!(uptimes(&body, "down"), ["0.00%", "0.00%"], "{body}");
    assert_eq!(uptimes(&body, "up"), ["100%", "100%"], "{body}");
    assert!(
        body.contains("counted from the target&#39;s first check (time before it is not counted)")
            || body
                .contains("counted from the target's first check (time before it is not counted)"),
        "{body}"
    );
    assert_eq!(w.stop(), 0);

    // A restart keeps where it counts from: still never up, still 0%.
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    std::thread::sleep(Duration::from_secs(1));
    let (_, body) = get(listen, "/").unwrap();
    assert_eq!(uptimes(&body, "down"), ["0.00%", "0.00%"], "{body}");
    assert_eq!(w.stop(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
