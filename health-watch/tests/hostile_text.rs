//! Text a server sends never reaches the terminal raw through the watcher:
//! its log lines, `report`'s table and the live table show it escaped,
//! JSON and the history keep the exact text (capped), and an action gets
//! it escaped and capped in its environment.

use std::time::Duration;

use health_server::Landmark;

mod common;
use common::{assert_clean, code, serving, stderr, stdout, HOSTILE};

#[test]
fn the_watcher_and_report_escape_a_hostile_detail() {
    use std::process::Command;
    let (server, addr) = serving(Landmark::fail(HOSTILE));
    let (dir, config) = common::watch_config(
        "hostile",
        &format!("[[target]]\nname = \"svc\"\nkind = \"landmark\"\naddr = \"{addr}\"\ninterval = \"100ms\"\n"),
    );
    let db = dir.join("watch.db");
    let text = common::watch_output(
        &config,
        &["--plain", "--log-checks"],
        Duration::from_millis(1000),
    );
    assert_clean(&text.replace('\n', ""), "watch --plain");
    assert!(
        text.lines()
            .any(|l| l.contains(" raise svc (landmark ") && l.contains(r"\e]0;pwned")),
        "{text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("LANDMARK")), "{text}");

    let report = |format: &str| {
        let o = Command::new(common::PROBE)
            .args([
                "report",
                "--database",
                db.to_str().unwrap(),
                "--format",
                format,
            ])
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        stdout(&o)
    };
    let table = report("table");
    assert_clean(&table.replace('\n', ""), "report table");
    assert!(table.contains(r"\e]0;pwned"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&report("json")).unwrap();
    assert_eq!(json[0]["detail"], format!("fail: {HOSTILE}"), "{json}");
    let csv = report("csv");
    assert!(csv.contains("\x1b]0;pwned"), "CSV keeps the exact text");
    server.shutdown_blocking();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The live table (on a pseudo-terminal, from script(1)) shows the hostile
/// detail escaped: the terminal gets crossterm's own sequences only.
#[test]
fn the_live_table_escapes_a_hostile_detail() {
    use std::process::Command;
    let (server, addr) = serving(Landmark::fail(HOSTILE));
    let (dir, config) = common::watch_config(
        "hostile-live",
        &format!("[[target]]\nname = \"svc\"\nkind = \"landmark\"\naddr = \"{addr}\"\ninterval = \"100ms\"\n"),
    );
    let o = Command::new("script")
        .args([
            "-qefc",
            &format!(
                "timeout -s INT 2 {} watch {}",
                common::PROBE,
                config.display()
            ),
            "/dev/null",
        ])
        .env("TERM", "xterm")
        .env("COLUMNS", "300")
        .env("LINES", "30")
        .output();
    let Ok(o) = o else {
        assert!(std::env::var_os("CI").is_none(), "script(1) is missing");
        eprintln!("SKIPPED: no script(1)");
        return;
    };
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(screen.contains("TARGET"), "{screen:?}");
    assert!(screen.contains(r"\e]0;pwned"), "{screen:?}");
    for raw in ["\x1b]0;pwned", "\x1b[2Jgone", "\rback", "\u{9b}31m"] {
        assert!(
            !screen.contains(raw),
            "{raw:?} reached the terminal: {screen:?}"
        );
    }
    server.shutdown_blocking();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A detail with a NUL and 200 KiB of text never stops an action: the
/// action sees it escaped and capped in `HEALTH_DETAIL`, runs, and its
/// outcome is recorded; the history keeps the detail, up to 4 KiB.
#[test]
fn a_hostile_detail_never_stops_an_action() {
    use health_proto::{LandmarkReply, Response};
    use std::process::Command;
    let detail = format!("bad\0{}", "x".repeat(200 * 1024));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reply_detail = detail.clone();
    // A fake landmark server: every check answered `fail` with the detail
    // (health-server would cut it at its 64 KiB frame limit).
    std::thread::spawn(move || {
        for conn in listener.incoming().take(100) {
            let Ok(mut c) = conn else { continue };
            let Ok(f) = health_proto::blocking::read_frame(&mut c, 1 << 16) else {
                continue;
            };
            let reply = Response::Landmark(LandmarkReply::whole(
                Landmark::fail(reply_detail.clone()),
                1,
            ));
            let _ = health_proto::blocking::write_frame(&mut c, &reply.to_frame(f.request_id));
        }
    });
    let (dir, config) = common::watch_config(
        "hostile-action",
        &format!(
            "[[target]]\nname = \"svc\"\nkind = \"landmark\"\naddr = \"{addr}\"\ninterval = \"100ms\"\non_raise = \"printf '%s' \\\"$HEALTH_DETAIL\\\" > {}\"\n",
            dir_file("hostile-action", "env.txt")
        ),
    );
    let mut child = Command::new(common::PROBE)
        .args(["watch", config.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seen = dir.join("env.txt");
    let t = std::time::Instant::now();
    while !seen.exists() || std::fs::metadata(&seen).unwrap().len() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the action never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    assert!(child.wait().unwrap().success());
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(
        env.starts_with(r"fail: bad\0xxx"),
        "{}",
        &env[..40.min(env.len())]
    );
    assert!(env.len() < 4200, "{} bytes", env.len());
    assert!(env.ends_with("more bytes)"), "{}", &env[env.len() - 40..]);
    let o = Command::new(common::PROBE)
        .args([
            "report",
            "--database",
            dir.join("watch.db").to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let events: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let raise = &events[0];
    assert_eq!(raise["event"], "raise");
    assert_eq!(raise["action_outcome"], "ok", "{raise}");
    let stored = raise["detail"].as_str().unwrap();
    assert!(stored.starts_with("fail: bad\0xxx"));
    // The history keeps the text itself, up to its own cap: 4 KiB.
    assert!(stored.len() < 4096 + 32, "{} bytes stored", stored.len());
    assert!(
        stored.ends_with("more bytes)"),
        "{}",
        &stored[stored.len() - 40..]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Where `common::watch_config(tag, ..)` puts `name`.
fn dir_file(tag: &str, name: &str) -> String {
    common::scratch_path(tag).join(name).display().to_string()
}
