//! One check tests one address, and says which: `-4`/`-6` pick the family
//! of a name's addresses, literals are never resolved (the C resolver's
//! numeric shorthands are usage errors, as is port 0), and IPv6 zones
//! parse.

use health_server::Landmark;

mod common;
use common::{code, run_probe as probe, serving, stderr, stdout};

#[test]
fn a_name_is_checked_at_one_address_of_the_family_asked_for() {
    let (server, addr) = serving(Landmark::ok("fine"));
    let port = addr.rsplit_once(':').unwrap().1;
    let name = format!("localhost:{port}");
    // localhost is 127.0.0.1 here (and perhaps ::1 too, where /etc/hosts
    // says so): -4 tests 127.0.0.1 and names it.
    let (o, _) = probe(&[&name, "-4"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!("OK {name} (127.0.0.1:{port}) ")),
        "{}",
        stdout(&o)
    );
    let (o, _) = probe(&[&name, "--ipv4", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["addr"], format!("127.0.0.1:{port}"));
    // -6: the first IPv6 address, if the name has one; a dns error saying
    // what the resolver returned if not. Never the IPv4 one instead.
    let (o, _) = probe(&[&name, "-6"]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(
        err.contains("no IPv6 address (the resolver returned 127.0.0.1")
            || err.contains(&format!("([::1]:{port})")),
        "{err}"
    );
    assert!(
        !stdout(&o).contains(&format!("(127.0.0.1:{port})")),
        "{}",
        stdout(&o)
    );
    // The same for tcp.
    let (o, _) = probe(&["tcp", &name, "-4"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("(127.0.0.1:{port})")));
    server.shutdown_blocking();
}

#[test]
fn literals_are_strict_and_never_resolved() {
    for (args, says) in [
        (vec!["127.1:9100"], "not a dotted-quad IPv4 address"),
        (vec!["0x7f.1:9100"], "not a dotted-quad IPv4 address"),
        (vec!["2130706433:9100"], "not a dotted-quad IPv4 address"),
        (vec!["0:9100"], "not a dotted-quad IPv4 address"),
        (vec!["127.0.0.1:0"], "port must be 1-65535"),
        (vec!["[::1]:0"], "port must be 1-65535"),
        (vec!["tcp", "127.0.0.1:0"], "port must be 1-65535"),
        (vec!["tcp", "127.1:22"], "not a dotted-quad IPv4 address"),
        (vec!["ping", "127.1"], "not a dotted-quad IPv4 address"),
        (vec!["connections", "127.0.0.1:0"], "port must be 1-65535"),
        (vec!["127.0.0.1:9100", "-6"], "not an IPv6 address"),
        (vec!["[::1]:9100", "-4"], "not an IPv4 address"),
        (vec!["[fe80::1%no-such-if0]:9100"], "no interface named"),
        (vec!["127.0.0.1:9100", "-4", "-6"], "cannot be used with"),
    ] {
        let (o, _) = probe(&args);
        assert_eq!(code(&o), 1, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn an_ipv6_zone_is_parsed_and_tried() {
    // fe80::1 is not on lo: the check runs (a network error or a timeout),
    // it is not a usage error, and it names the zoned address.
    let (o, _) = probe(&["[fe80::1%lo]:9", "--timeout", "300ms"]);
    assert_eq!(code(&o), 1);
    assert!(!stderr(&o).contains("usage"), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("FAIL [fe80::1%lo]:9 "),
        "{}",
        stdout(&o)
    );
}
