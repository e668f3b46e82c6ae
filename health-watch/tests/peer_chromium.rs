//! The status page in a real browser, Debian's headless Chromium: without
//! JavaScript its DOM lists every target with its state, and a server's
//! hostile detail (a `<script>`, quotes, markup) is text, never markup;
//! with JavaScript a state change shows without a reload within 2 s. The
//! page's screenshot is kept in `target/test-artifacts/` (and written to
//! `docs/status-page.png` with `UPDATE_SCREENSHOT=1`). All on loopback.

use std::path::PathBuf;
use std::time::Duration;

use health_server::Landmark;
use test_support::browser::{self, Browser};

mod common;
use common::watcher::{is, scratch, write_config, Accepting, Watcher};
use common::{free_port, serving};

const HOSTILE: &str = r#"<script>document.title="pwned"</script> "quoted" & 'single' <b>bold</b> <img src=x onerror=alert(1)>"#;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_status_page_in_a_browser() {
    if !browser::installed() {
        return;
    }
    let (_service, service) = serving(Landmark::fail(HOSTILE));
    let open = Accepting::on("127.0.0.1:0", b"");
    let flip = free_port();
    let listen = free_port();
    let dir = scratch("page");
    let config = write_config(
        &dir,
        &format!(
            r#"http_listen = "{listen}"

[defaults]
interval = "200ms"
timeout = "150ms"
fall = 1
rise = 1

[[target]]
name = "epg <main> 'one'"
kind = "landmark"
addr = "{service}"

[[target]]
name = "web"
kind = "tcp"
addr = "{}"

[[target]]
name = "flip"
kind = "tcp"
addr = "{flip}"
"#,
            open.addr
        ),
    );
    let mut w = Watcher::quiet(&config);
    w.wait_for("raise", Duration::from_secs(10), is("raise", "flip"));
    w.wait_for("raise", Duration::from_secs(10), |v| {
        v["event"] == "raise" && v["target"] == "epg <main> 'one'"
    });
    let url = format!("http://{listen}/");

    // Without JavaScript: every target and its state, open alarms first;
    // the hostile detail and name are text.
    let plain = Browser::without_javascript();
    plain.goto(&url);
    let dom = plain.source();
    drop(plain);
    let rows: Vec<&str> = dom
        .split("<tr class=\"")
        .skip(1)
        .map(|r| r.split("</tr>").next().unwrap())
        .collect();
    let states: Vec<(&str, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.split('"').next().unwrap(),
                r.contains("data-target=\"flip\""),
            )
        })
        .collect();
    assert_eq!(states.len(), 3, "{dom}");
    assert_eq!(states[0].0, "alarm");
    assert_eq!(states[1].0, "alarm");
    assert_eq!(states[2].0, "up", "{dom}");
    assert!(dom.contains("epg &lt;main&gt; 'one'"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;document.title=\"pwned\"&lt;/script&gt;"),
        "{dom}"
    );
    assert!(
        !dom.contains("<b>bold</b>") && !dom.contains("<img src=\"x\""),
        "{dom}"
    );
    assert!(dom.contains("<svg class=\"day\""), "{dom}");
    // Everything is in the page: no stylesheet, script, image or font
    // from anywhere else.
    for outside in ["<link", "<script src", "<img", "<iframe", "url(", "@import"] {
        assert!(!dom.contains(outside), "{outside} in {dom}");
    }

    // With JavaScript: nothing of the detail runs, and a change shows
    // without a reload.
    let b = Browser::start();
    b.goto(&url);
    assert_eq!(b.run("return document.title"), "health-probe watch");
    assert_eq!(
        b.run("window.loadedOnce = true; return document.querySelector('tr[data-target=\"flip\"]').className"),
        "alarm"
    );
    let _opened = Accepting::on(&flip, b"");
    w.wait_for("clear", Duration::from_secs(10), is("clear", "flip"));
    let took = b.wait_for(
        "flip shown up without a reload",
        Duration::from_secs(5),
        "var r = document.querySelector('tr[data-target=\"flip\"]'); \
         return window.loadedOnce === true && !!r && r.className === 'up';",
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(b.run("return document.title"), "health-probe watch");

    let shot = workspace().join("target/test-artifacts/status-page.png");
    b.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&shot, workspace().join("docs/status-page.png")).unwrap();
    }

    // One target: its round trips and its events, with the raise and clear.
    b.run("document.querySelector('tr[data-target=\"flip\"] td.name a').click(); return true");
    b.wait_for(
        "the flip page",
        Duration::from_secs(5),
        "return location.pathname === '/target/flip' && !!document.querySelector('svg.chart polyline')",
    );
    let events: Vec<String> = serde_json::from_value(b.run(
        "return Array.from(document.querySelectorAll('table.events tbody tr')).map(function (r) { return r.className; })",
    ))
    .unwrap();
    assert_eq!(events, ["clear", "raise"], "latest first");
    let dots: Vec<String> = serde_json::from_value(b.run(
        "return Array.from(document.querySelectorAll('svg.history circle')).map(function (c) { return c.getAttribute('class'); })",
    ))
    .unwrap();
    assert_eq!(dots, ["raise", "clear"], "the events on the time line");
    b.screenshot(&workspace().join("target/test-artifacts/status-target.png"));
    // A name that needs escaping in a path and in the page.
    b.goto(&format!("http://{listen}/target/epg%20%3Cmain%3E%20'one'"));
    assert_eq!(
        b.run("return document.querySelector('h1').textContent"),
        "epg <main> 'one'"
    );
    assert_eq!(
        b.run("return document.title"),
        "epg <main> 'one' · health-probe watch"
    );

    // The report, and its downloads: exactly what the CLI prints.
    b.goto(&format!("http://{listen}/report?since=1h"));
    let kinds: Vec<String> = serde_json::from_value(b.run(
        "return Array.from(document.querySelectorAll('table.events tbody tr')).map(function (r) { return r.className; })",
    ))
    .unwrap();
    assert_eq!(
        kinds.iter().filter(|k| *k == "raise").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "clear").count(),
        1,
        "{kinds:?}"
    );
    b.screenshot(&workspace().join("target/test-artifacts/status-report.png"));
    for format in ["csv", "json"] {
        let (code, served) = test_support::prometheus::get(
            listen.parse().unwrap(),
            &format!("/report.{format}?since=1h"),
        )
        .unwrap();
        assert_eq!(code, 200);
        let cli = common::watcher::report(&[
            "--since",
            "1h",
            "--format",
            format,
            "--database",
            dir.join("watch.db").to_str().unwrap(),
        ]);
        assert_eq!(served, String::from_utf8_lossy(&cli.stdout), "{format}");
    }
    assert_eq!(w.stop(), 0);
}
