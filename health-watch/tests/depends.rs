//! `depends_on`, in real time, with the real Alertmanager (Debian's
//! package): behind a raised gateway, a target's raise is `unreachable`
//! (no action, no alert, not down), its recovery is never held back, and a
//! raise still standing when the gateway clears fires then. Everything
//! stays on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use test_support::alertmanager::{self, Alertmanager, Webhook};
use test_support::prometheus::get;

mod common;
use common::free_port;
use common::watcher::{is, report_json, scratch, write_config, Accepting, Watcher};

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A tcp target `name` at `addr`, checked every 200 ms, with actions that
/// append `NAME EVENT` to `actions`.
fn target(name: &str, addr: &str, actions: &Path, extra: &str) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nkind = \"tcp\"\naddr = \"{addr}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\non_raise = \"echo {name} $HEALTH_EVENT >> {0}\"\non_clear = \"echo {name} $HEALTH_EVENT >> {0}\"\n{extra}\n",
        actions.display()
    )
}

#[test]
fn behind_a_raised_gateway_a_raise_is_unreachable_and_fires_if_it_outlasts_it() {
    if !alertmanager::installed() {
        return;
    }
    let hook = Webhook::start();
    let am: SocketAddr = free_port().parse().unwrap();
    let _am = Alertmanager::start(
        "depends-am",
        &format!(
            "route:\n  receiver: hook\n  group_by: [target]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n",
            hook.url("all")
        ),
        am,
    );
    let alerted = |target: &str| {
        get(am, "/api/v2/alerts").is_some_and(|(_, body)| {
            serde_json::from_str::<Vec<Value>>(&body)
                .unwrap_or_default()
                .iter()
                .any(|a| a["labels"]["target"] == target)
        })
    };
    let dir = scratch("depends");
    let actions = dir.join("actions");
    let listen: SocketAddr = free_port().parse().unwrap();
    let gateway = Accepting::on("127.0.0.1:0", b"");
    let app = Accepting::on("127.0.0.1:0", b"");
    let db = Accepting::on("127.0.0.1:0", b"");
    let (gw_addr, app_addr, db_addr) = (gateway.addr.clone(), app.addr.clone(), db.addr.clone());
    let behind = "depends_on = [\"gateway\"]\nfall = 4";
    let config = write_config(
        &dir,
        &format!(
            "http_listen = \"{listen}\"\nalertmanager_url = \"http://{am}\"\n{}{}{}",
            target("gateway", &gw_addr, &actions, "fall = 2"),
            target("app", &app_addr, &actions, behind),
            target("db", &db_addr, &actions, behind),
        ),
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    std::thread::sleep(Duration::from_millis(600));
    // The gateway goes, and everything behind it.
    drop((gateway, app, db));
    let gw = w.wait_for(
        "gateway raise",
        Duration::from_secs(5),
        is("raise", "gateway"),
    );
    assert_eq!(gw["held"], false);
    for name in ["app", "db"] {
        let r = w.wait_for("raise", Duration::from_secs(5), |v: &Value| {
            v["event"] == "raise" && v["target"] == name
        });
        assert_eq!(r["class"], "unreachable", "{r}");
        assert_eq!(r["held"], true);
        assert!(
            r["detail"]
                .as_str()
                .unwrap()
                .starts_with("gateway, which it depends on, is raised"),
            "{r}"
        );
    }
    // Only the gateway pages: its action, its alert.
    _am.wait_for("the gateway's alert", Duration::from_secs(10), || {
        alerted("gateway")
    });
    assert_eq!(
        lines(&actions),
        ["gateway raise"],
        "only the gateway's action ran"
    );
    assert!(!alerted("app") && !alerted("db"));
    let (_, metrics) = get(listen, "/metrics").unwrap();
    assert!(
        metrics.contains("watch_target_unreachable{target=\"app\",kind=\"tcp\"} 1"),
        "{metrics}"
    );
    // The page lists app and db under the gateway.
    let (_, page) = get(listen, "/").unwrap();
    let at = |name: &str| page.find(&format!("data-target=\"{name}\"")).unwrap();
    assert!(at("gateway") < at("app") && at("app") < at("db"), "{page}");
    assert!(page.contains("depends on gateway, which is raised") && page.contains(">unreachable<"));
    // db comes back while the gateway is still down: its clear is never
    // held back, and runs nothing (nothing ran for its raise).
    let _db = Accepting::on(&db_addr, b"");
    let clear = w.wait_for("db clear", Duration::from_secs(5), is("clear", "db"));
    assert_eq!(clear["held"], true);
    // The gateway comes back; app is still down: its raise fires now.
    let _gateway = Accepting::on(&gw_addr, b"");
    w.wait_for(
        "gateway clear",
        Duration::from_secs(5),
        is("clear", "gateway"),
    );
    let released = w.wait_for(
        "app released",
        Duration::from_secs(4),
        is("released", "app"),
    );
    assert_eq!(released["class"], "NG");
    _am.wait_for("app's alert", Duration::from_secs(10), || alerted("app"));
    assert!(!alerted("db"));
    // app recovers: its clear runs its action, as its raise's did.
    std::thread::sleep(Duration::from_millis(1500));
    let _app = Accepting::on(&app_addr, b"");
    w.wait_for("app clear", Duration::from_secs(5), is("clear", "app"));
    let t = std::time::Instant::now();
    while lines(&actions).len() < 4 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        lines(&actions),
        [
            "gateway raise",
            "gateway clear",
            "app released",
            "app clear"
        ]
    );
    assert_eq!(w.stop(), 0);
    // Down time: db never; app only from its release.
    let history = report_json(&dir.join("watch.db"));
    let clear_of = |name: &str| {
        history
            .iter()
            .find(|r| r["event"] == "clear" && r["target"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(clear_of("db")["down_secs"].as_f64(), Some(0.0));
    let app = clear_of("app");
    let (lasted, down) = (
        app["alarm_secs"].as_f64().unwrap(),
        app["down_secs"].as_f64().unwrap(),
    );
    assert!(down >= 1.0 && down < lasted, "{app}");
    let _ = std::fs::remove_dir_all(&dir);
}
