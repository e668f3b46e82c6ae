//! Vantage points, in real time: a target checked from this watcher and
//! through a second watcher's `/probe`, and from two uplinks of one
//! machine (`source`). Some points failing, too few for the quorum, is a
//! `path` event (with `on_path`, no alarm); enough of them raises the
//! alarm within `fall` rounds; recovery clears both. The loopback test
//! runs anywhere; the network tests build their own namespaces (two
//! carriers between a watcher and a server) and cut the links for real.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use health_server::Landmark;
use serde_json::Value;
use test_support::netns::{link_named, runnable, Netns};
use test_support::prometheus::get;

mod common;
use common::watcher::{is, report_json, scratch, write_config, Watcher};
use common::{free_port, sample, PROBE};

/// A `path`, `path-cleared`, `raise` or `clear` of `target`.
fn event(w: &mut Watcher, event: &'static str, target: &'static str, within: Duration) -> Value {
    w.wait_for(&format!("{event} of {target}"), within, is(event, target))
}

#[test]
fn a_remote_watcher_that_disagrees_is_a_path_fault_and_one_that_is_gone_abstains() {
    let (server, addr) = test_support::serving(Landmark::ok("serving"));
    let dir = scratch("vantage-remote");
    // The remote watcher's `strict` module wants `degraded`: from there,
    // the service fails, while it passes from here.
    let remote_port = free_port();
    let remote_dir = dir.join("remote");
    std::fs::create_dir_all(&remote_dir).unwrap();
    let remote_config = write_config(
        &remote_dir,
        &format!(
            "http_listen = \"{remote_port}\"\n[module.strict]\nkind = \"landmark\"\nexpect = [\"degraded\"]\n[[target]]\nname = \"own\"\nkind = \"landmark\"\naddr = \"{addr}\"\ninterval = \"10s\"\n"
        ),
    );
    let remote = Watcher::quiet(&remote_config);
    let remote_url = format!("http://{remote_port}");
    let listen: SocketAddr = free_port().parse().unwrap();
    let actions = dir.join("actions");
    let config = write_config(
        &dir,
        &format!(
            "http_listen = \"{listen}\"\n[[target]]\nname = \"svc\"\nkind = \"landmark\"\naddr = \"{addr}\"\ninterval = \"300ms\"\ntimeout = \"200ms\"\nvantage = [\"local\", \"{remote_url}\"]\nvantage_module = \"strict\"\non_raise = \"echo $HEALTH_EVENT >> {0}\"\non_path = \"echo $HEALTH_EVENT >> {0}\"\n",
            actions.display()
        ),
    );
    let mut w = Watcher::quiet(&config);
    let path = event(&mut w, "path", "svc", Duration::from_secs(15));
    assert_eq!(path["class"], "path", "{path}");
    let detail = path["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "path fault from {remote_url}: 1 of 2 vantage points failed (quorum 2)"
        )),
        "{detail}"
    );
    assert!(detail.contains("local: ok: serving"), "{detail}");
    assert_eq!(w.count("raise", "svc"), 0);
    // What /metrics says of each point.
    let (_, body) = get(listen, "/metrics").unwrap();
    let series = |name: &str, vantage: Option<&str>| {
        let labels = match vantage {
            Some(v) => format!("{{target=\"svc\",kind=\"landmark\",vantage=\"{v}\"}}"),
            None => "{target=\"svc\",kind=\"landmark\"}".to_string(),
        };
        sample(&body, &format!("{name}{labels}"))
    };
    assert_eq!(series("watch_target_path", None), Some(1.0), "{body}");
    assert_eq!(
        series("watch_vantage_up", Some("local")),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        series("watch_vantage_up", Some(&remote_url)),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        series("watch_vantage_path", Some(&remote_url)),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        series("watch_vantage_path", Some("local")),
        Some(0.0),
        "{body}"
    );
    assert_eq!(series("watch_alarm_raised", None), Some(0.0), "{body}");
    test_support::promtool_accepts(&body);
    // The remote watcher gone: it abstains, and what this one sees passes.
    remote.stop();
    let cleared = event(&mut w, "path-cleared", "svc", Duration::from_secs(15));
    assert!(
        cleared["detail"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{cleared}"
    );
    // The service gone: the one point still answering decides.
    server.shutdown_blocking();
    let raised = event(&mut w, "raise", "svc", Duration::from_secs(15));
    assert_eq!(raised["class"], "NG", "{raised}");
    // Its action done (a stop does not wait for one still queued).
    let id = raised["id"].clone();
    w.wait_for("the raise's action", Duration::from_secs(10), |v| {
        v["event"] == "action" && v["event_id"] == id
    });
    w.stop();
    let told = std::fs::read_to_string(&actions).unwrap();
    assert_eq!(
        told.lines().collect::<Vec<_>>(),
        ["path", "path-cleared", "raise"]
    );
    // The report tells the path fault apart from down time.
    let rows = report_json(&dir.join("watch.db"));
    let cleared = rows.iter().find(|r| r["event"] == "path-cleared").unwrap();
    assert!(cleared["path_secs"].as_f64().unwrap() > 0.0, "{cleared}");
    assert!(cleared["down_secs"].is_null() && cleared["alarm_secs"].is_null());
}

/// `ip -n NS ...`, the words of `args` split on spaces.
fn ip(ns: &Netns, args: &str) {
    ns.ip(&args.split_whitespace().collect::<Vec<_>>());
}

/// `landmark_service` answering at `ip:9100` in `ns`.
fn service_in(ns: &Netns, ip: &str) -> std::process::Child {
    ns.exec(&test_support::built("landmark_service"))
        .args([
            "--listen",
            &format!("{ip}:7000"),
            "--health",
            &format!("{ip}:9100"),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The watcher on `config` in `ns`, once it has checked for 2 s with no
/// raise and no path fault.
fn watch_in(ns: &Netns, config: &Path) -> Watcher {
    let mut command = ns.exec(Path::new(PROBE));
    command.arg("watch").arg(config);
    let mut w = Watcher::spawn(command);
    std::thread::sleep(Duration::from_secs(2));
    w.drain();
    let quiet = |e: &Value| e["event"] != "raise" && e["event"] != "path";
    assert!(w.seen.iter().all(quiet), "{:?}", w.seen);
    w
}

/// One carrier cut (`cut_one`) is a `path` fault of each target, its
/// detail starting with the point at fault (`first`), and two rounds
/// later still no alarm; the second cut (`cut_other`) raises it within
/// `fall` rounds; `restore` clears the alarm and the path fault.
fn one_cut_then_both(
    w: &mut Watcher,
    targets: &[(&'static str, &str)],
    cut_one: impl FnOnce(),
    cut_other: impl FnOnce(),
    restore: impl FnOnce(),
) {
    cut_one();
    for (t, first) in targets {
        let path = event(w, "path", t, Duration::from_secs(10));
        let detail = path["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(&format!("path fault from {first}: 1 of 2")),
            "{detail}"
        );
    }
    std::thread::sleep(Duration::from_millis(1200));
    w.drain();
    for (t, _) in targets {
        assert_eq!(w.count("raise", t), 0, "{t}");
    }
    let cut = Instant::now();
    cut_other();
    for (t, _) in targets {
        let raised = event(w, "raise", t, Duration::from_secs(10));
        let detail = raised["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("2 of 2 vantage points failed"),
            "{detail}"
        );
    }
    // `fall` (2) rounds of 500 ms, each ending within its 300 ms timeout
    // (and a remote's 1 s margin), with the slack of a loaded machine.
    let took = cut.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "raised {took:?} after both cuts"
    );
    restore();
    for (t, _) in targets {
        event(w, "clear", t, Duration::from_secs(10));
        event(w, "path-cleared", t, Duration::from_secs(10));
    }
}

/// A watcher namespace and a server namespace joined by two carriers: up1
/// (10.77.1.0/24) and up2 (10.77.2.0/24). The service's address,
/// 10.77.9.1, is reached through either; bound to an interface, or from
/// an address (policy routing), a check takes one carrier only.
fn two_carriers(watcher: &Netns, server: &Netns) {
    for i in ["1", "2"] {
        link_named(
            &format!("vt{i}"),
            (watcher, &format!("up{i}"), &format!("10.77.{i}.1/24")),
            (server, &format!("dn{i}"), &format!("10.77.{i}.2/24")),
        );
        let (via, dev) = (format!("10.77.{i}.2"), format!("up{i}"));
        ip(
            watcher,
            &format!("route add 10.77.9.1/32 via {via} dev {dev} metric {i}0"),
        );
        ip(watcher, &format!("rule add from 10.77.{i}.1 table 10{i}"));
        ip(
            watcher,
            &format!("route add 10.77.9.1/32 via {via} dev {dev} table 10{i}"),
        );
    }
    ip(server, "addr add 10.77.9.1/32 dev lo");
}

#[test]
fn two_uplinks_one_cut_is_a_path_fault_both_cut_raise_the_alarm() {
    if !runnable("vantage namespaces test", &[]) {
        return;
    }
    let (watcher, server) = (Netns::new("vtw"), Netns::new("vts"));
    two_carriers(&watcher, &server);
    let mut service = service_in(&server, "10.77.9.1");
    let dir = scratch("vantage-uplinks");
    // Each target: fall 2 and rise 2 (the defaults), the default quorum
    // (2 of 2) and source_mode (alternate).
    let target = |name: &str, sources: &str| {
        format!("[[target]]\nname = \"{name}\"\nkind = \"landmark\"\naddr = \"10.77.9.1:9100\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nsource = [{sources}]\n")
    };
    let config = write_config(
        &dir,
        &format!(
            "{}{}",
            target("by-interface", "\"up1\", \"up2\""),
            target("by-address", "\"10.77.1.1\", \"10.77.2.1\"")
        ),
    );
    let mut w = watch_in(&watcher, &config);
    // Carriers are cut at the server's end: the watcher's interfaces stay
    // up, their packets are lost on the way.
    one_cut_then_both(
        &mut w,
        &[
            ("by-interface", "local:up1"),
            ("by-address", "local:10.77.1.1"),
        ],
        || ip(&server, "link set dn1 down"),
        || ip(&server, "link set dn2 down"),
        || {
            ip(&server, "link set dn1 up");
            ip(&server, "link set dn2 up");
        },
    );
    w.stop();
    let _ = service.kill();
    let _ = service.wait();
}

#[test]
fn a_second_watcher_as_the_remote_vantage_point_through_namespaces() {
    if !runnable("vantage namespaces test", &[]) {
        return;
    }
    // The watcher (w) and the remote watcher (b) each reach the server (s)
    // over their own carrier; w asks b over a third link.
    let (w_ns, b_ns, s_ns) = (Netns::new("vrw"), Netns::new("vrb"), Netns::new("vrs"));
    link_named(
        "vr1",
        (&w_ns, "to-s", "10.78.1.1/24"),
        (&s_ns, "from-w", "10.78.1.2/24"),
    );
    link_named(
        "vr2",
        (&b_ns, "to-s", "10.78.2.1/24"),
        (&s_ns, "from-b", "10.78.2.2/24"),
    );
    link_named(
        "vr3",
        (&w_ns, "to-b", "10.78.3.1/24"),
        (&b_ns, "from-w", "10.78.3.2/24"),
    );
    ip(&s_ns, "addr add 10.78.9.1/32 dev lo");
    ip(&w_ns, "route add 10.78.9.1/32 via 10.78.1.2");
    ip(&b_ns, "route add 10.78.9.1/32 via 10.78.2.2");
    let mut service = service_in(&s_ns, "10.78.9.1");
    let dir = scratch("vantage-namespaces");
    let b_dir = dir.join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b_config = write_config(
        &b_dir,
        "http_listen = \"10.78.3.2:9115\"\nhttp_allow = [\"10.78.3.0/24\"]\n[[target]]\nname = \"own\"\nkind = \"landmark\"\naddr = \"10.78.9.1:9100\"\n",
    );
    let b = watch_in(&b_ns, &b_config);
    let config = write_config(
        &dir,
        "[[target]]\nname = \"svc\"\nkind = \"landmark\"\naddr = \"10.78.9.1:9100\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nvantage = [\"local\", \"http://10.78.3.2:9115\"]\n",
    );
    let mut w = watch_in(&w_ns, &config);
    // This watcher's carrier first: the remote one still reaches the
    // server. Then the remote's too.
    one_cut_then_both(
        &mut w,
        &[("svc", "local")],
        || ip(&s_ns, "link set from-w down"),
        || ip(&s_ns, "link set from-b down"),
        || {
            ip(&s_ns, "link set from-w up");
            ip(&s_ns, "link set from-b up");
        },
    );
    w.stop();
    b.stop();
    let _ = service.kill();
    let _ = service.wait();
}
