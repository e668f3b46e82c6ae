//! `health-probe ping` inside network namespaces the tests create (with
//! util-linux's `unshare`/`nsenter` and iproute2's `ip`; root, as in CI):
//! each outcome class (OK, ERR, NG, WR), both socket kinds (unprivileged
//! datagram ICMP as `nobody` with `net.ipv4.ping_group_range` set, raw as
//! root), the sysctl named when neither is allowed, and the exit modes.

use std::process::{Child, Command, Output, Stdio};

mod common;
use common::PROBE;

/// Runs `script` with `sh -e` in a new network namespace whose loopback is
/// up; `$PROBE` is the probe, `run` as below. `None` (and a note) where
/// namespaces cannot be made, which CI does not allow.
fn in_netns(script: &str) -> Option<Output> {
    common::in_new_netns(
        "sh",
        &[
            "-ec",
            &format!("PROBE='{PROBE}'\n{RUN}\nip link set lo up\n{script}"),
        ],
    )
}

/// `run CMD...`: runs a probe, printing its output (stderr after stdout),
/// `rc=N` and a `---` separator, without `sh -e` stopping at its failure.
const RUN: &str = r#"run() { set +e; "$@" 2>&1; r=$?; set -e; echo "rc=$r"; echo ---; }"#;

/// A second namespace (a `sleep` in it), killed when dropped.
struct Router(Child);

impl Router {
    fn start() -> Option<Router> {
        Command::new("unshare")
            .args(["--net", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .ok()
            .map(Router)
    }

    /// Script lines that join a veth pair between the test's namespace
    /// (10.1.1.1, v0) and this one (10.1.1.2, v1), which routes 10.7/16
    /// nowhere: it answers "unreachable" for it. 10.7/16 goes via it.
    fn wire(&self) -> String {
        let pid = self.0.id();
        format!(
            "ip link add v0 type veth peer name v1
             ip link set v1 netns {pid}
             ip addr add 10.1.1.1/24 dev v0
             ip link set v0 up
             nsenter -t {pid} -n sh -ec 'ip link set lo up; ip addr add 10.1.1.2/24 dev v1; \
               ip link set v1 up; sysctl -qw net.ipv4.ip_forward=1; ip route add unreachable 10.7.0.0/16'
             ip route add 10.7.0.0/16 via 10.1.1.2
             "
        )
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Each `run`'s output and exit code.
fn runs(o: &Output) -> Vec<(String, i32)> {
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.split("---\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (body, rc) = s.trim_end().rsplit_once("rc=").expect("rc= line");
            (body.to_string(), rc.trim().parse().expect("exit code"))
        })
        .collect()
}

/// As a user outside ping_group_range and without CAP_NET_RAW.
const AS_NOBODY: &str = "setpriv --reuid=65534 --regid=65534 --clear-groups";

fn assert_line(body: &str, class: &str, reason: Option<&str>) {
    let first = body.lines().next().unwrap_or("");
    assert!(first.starts_with(&format!("{class} ")), "{body}");
    match reason {
        Some(r) => assert!(first.contains(&format!(" reason={r} ")), "{body}"),
        None => assert!(!first.contains(" reason="), "{body}"),
    }
}

#[test]
fn loopback_answers_over_raw_and_unprivileged_sockets() {
    let script = format!(
        r#"
        run $PROBE ping 127.0.0.1 --json
        run $PROBE ping ::1 -c 2 --json
        sysctl -qw net.ipv4.ping_group_range='0 2147483647'
        run {AS_NOBODY} $PROBE ping 127.0.0.1 --json
        run {AS_NOBODY} $PROBE ping ::1 --json
        "#
    );
    let Some(o) = in_netns(&script) else { return };
    let r = runs(&o);
    assert_eq!(r.len(), 4, "{r:?} {}", String::from_utf8_lossy(&o.stderr));
    for ((body, rc), (socket, sent)) in
        r.iter()
            .zip([("raw", 3), ("raw", 2), ("dgram", 3), ("dgram", 3)])
    {
        assert_eq!(*rc, 0, "{body}");
        let v: serde_json::Value = serde_json::from_str(body.trim()).expect(body);
        assert_eq!(v["class"], "OK", "{body}");
        assert_eq!(v["socket"], socket, "{body}");
        assert_eq!(v["sent"], sent, "{body}");
        assert_eq!(v["received"], sent, "{body}");
        assert_eq!(v["rtts_ms"].as_array().unwrap().len(), sent as usize);
    }
}

#[test]
fn no_icmp_socket_allowed_names_the_sysctl() {
    let script = format!(
        r#"
        sysctl -qw net.ipv4.ping_group_range='1 0'
        run {AS_NOBODY} $PROBE ping 127.0.0.1
        run {AS_NOBODY} $PROBE ping 127.0.0.1 --nagios
        "#
    );
    let Some(o) = in_netns(&script) else { return };
    let r = runs(&o);
    assert_eq!(r[0].1, 1);
    assert_line(&r[0].0, "ERR", Some("not-permitted"));
    assert!(r[0].0.contains("net.ipv4.ping_group_range"), "{}", r[0].0);
    assert!(r[0].0.contains("(now \\\"1 0\\\")"), "{}", r[0].0);
    assert!(
        r[0].0.contains("health-probe: ERR (not-permitted): "),
        "{}",
        r[0].0
    );
    // Nagios: the plugin cannot run here, UNKNOWN.
    assert_eq!(r[1].1, 3, "{}", r[1].0);
    assert!(r[1].0.starts_with("PING UNKNOWN - "), "{}", r[1].0);
}

#[test]
fn silence_is_wr_and_no_route_or_name_is_err() {
    // v0's neighbour 10.1.1.2 is a MAC nobody has: requests leave, nothing
    // answers.
    let script = r#"
        ip link add v0 type veth peer name v1
        ip addr add 10.1.1.1/24 dev v0
        ip link set v0 up; ip link set v1 up
        ip neigh add 10.1.1.2 lladdr 02:00:00:00:00:02 dev v0
        run $PROBE ping 10.1.1.2 --timeout 400ms
        run $PROBE ping 10.9.9.9
        run $PROBE ping no-such-host.invalid
        run $PROBE ping 10.1.1.2 --timeout 300ms --nagios
        "#;
    let t = std::time::Instant::now();
    let Some(o) = in_netns(script) else { return };
    let took = t.elapsed();
    let r = runs(&o);
    assert_eq!(r.len(), 4, "{r:?}");
    let (body, rc) = &r[0];
    assert_eq!(*rc, 1);
    assert_line(body, "WR", Some("timeout"));
    assert!(body.contains("sent=2") || body.contains("sent=3"), "{body}");
    assert!(
        body.contains("health-probe: WR (timeout): 10.1.1.2: no reply within 400ms"),
        "{body}"
    );
    assert_line(&r[1].0, "ERR", Some("no-route"));
    assert_eq!(r[1].1, 1);
    assert_line(&r[2].0, "ERR", Some("dns"));
    assert_eq!(r[2].1, 1);
    assert_eq!(r[3].1, 2, "{}", r[3].0);
    assert!(r[3].0.starts_with("PING CRITICAL - WR "), "{}", r[3].0);
    // Both silent runs end at their --timeout (400 + 300 ms), plus set-up.
    assert!(took < std::time::Duration::from_millis(3000), "{took:?}");
}

#[test]
fn router_saying_unreachable_is_ng_on_both_socket_kinds() {
    let Some(router) = Router::start() else {
        eprintln!("SKIPPED: cannot start a second namespace");
        return;
    };
    // Give unshare a moment to enter its namespace before we wire it.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let script = format!(
        r#"{}
        run $PROBE ping 10.1.1.2 -c 2
        run $PROBE ping 10.7.0.1 -c 2 --timeout 1s
        sysctl -qw net.ipv4.ping_group_range='0 2147483647'
        run {AS_NOBODY} $PROBE ping 10.7.0.1 -c 2 --timeout 1s
        "#,
        router.wire()
    );
    let Some(o) = in_netns(&script) else { return };
    let r = runs(&o);
    assert_eq!(r.len(), 3, "{r:?} {}", String::from_utf8_lossy(&o.stderr));
    assert_line(&r[0].0, "OK", None);
    for (body, rc) in &r[1..] {
        assert_eq!(*rc, 1, "{body}");
        assert_line(body, "NG", Some("unreachable"));
    }
}

#[test]
fn partial_loss_below_min_replies_is_ng() {
    let Some(router) = Router::start() else {
        eprintln!("SKIPPED: cannot start a second namespace");
        return;
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = router.0.id();
    // Requests at 0, 300 and 600 ms; the router's link goes down at 450 ms.
    let script = format!(
        r#"{}
        $PROBE ping 10.1.1.2 -c 1 >/dev/null 2>&1
        (sleep 0.45; nsenter -t {pid} -n ip link set v1 down) &
        run $PROBE ping 10.1.1.2 -c 3 -i 300ms --min-replies 3 --timeout 1500ms
        wait
        "#,
        router.wire()
    );
    let Some(o) = in_netns(&script) else { return };
    let r = runs(&o);
    assert_eq!(r.len(), 1, "{r:?} {}", String::from_utf8_lossy(&o.stderr));
    let (body, rc) = &r[0];
    assert_eq!(*rc, 1, "{body}");
    assert_line(body, "NG", Some("loss"));
    assert!(body.contains("sent=3 received=2 loss=33%"), "{body}");
}

#[test]
fn thresholds_json_and_usage() {
    let script = r#"
        run $PROBE ping 127.0.0.1 --warn 1us
        run $PROBE ping 127.0.0.1 --crit 1us
        run $PROBE ping 127.0.0.1 --nagios --warn 1us --crit 10s
        run $PROBE ping 127.0.0.1 --nagios
        run $PROBE ping 127.0.0.1 -c 2 --min-replies 3
        run $PROBE ping 127.0.0.1:80
        run $PROBE ping 127.0.0.1 -q
        "#;
    let Some(o) = in_netns(script) else { return };
    let r = runs(&o);
    assert_eq!(r.len(), 7, "{r:?}");
    assert_eq!(r[0].1, 0, "over --warn only still passes");
    assert!(r[0].0.contains(" slow=warn "), "{}", r[0].0);
    assert_eq!(r[1].1, 1);
    assert!(r[1].0.contains("health-probe: slow: "), "{}", r[1].0);
    assert_eq!(r[2].1, 1);
    assert!(
        r[2].0
            .starts_with("PING WARNING - 127.0.0.1: 0% loss, rta "),
        "{}",
        r[2].0
    );
    assert_eq!(r[3].1, 0);
    let perf = r[3].0.trim_end().split_once('|').expect("perfdata").1;
    assert!(
        perf.starts_with("rta=") && perf.contains(" pl=0%;;;0;100"),
        "{perf}"
    );
    assert_eq!(r[4].1, 1);
    assert!(
        r[4].0
            .starts_with("health-probe: usage: --min-replies 3 is more than --count 2"),
        "{}",
        r[4].0
    );
    assert_eq!(r[5].1, 1);
    assert_line(&r[5].0, "ERR", Some("bad-address"));
    assert_eq!(r[6], (String::new(), 0));
}
