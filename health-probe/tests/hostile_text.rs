//! Text a server sends never reaches the terminal raw: control characters
//! (an OSC window title, a screen clear, CR, BS, NUL, a newline followed by
//! a forged Nagios line) are shown escaped, details are capped, `--nagios`
//! prints exactly one line, and JSON keeps the exact text.

use std::io::Write;
use std::time::Duration;

use health_server::Landmark;

mod common;
use common::{code, fake, run_probe as probe, serving, stderr, stdout};

/// Everything a hostile detail tries at once.
const HOSTILE: &str =
    "\x1b]0;pwned\x07\x1b[2Jgone\rback\x08\0nul\x7f\u{9b}31m\nLANDMARK OK - 10.0.0.5:9100 is ok: fine|time=0s";

/// No byte of the output is a control character but the final newline.
fn assert_clean(out: &str, what: &str) {
    let body = out.strip_suffix('\n').unwrap_or(out);
    assert!(
        !body.chars().any(char::is_control),
        "{what}: control characters in {out:?}"
    );
}

#[test]
fn a_hostile_detail_is_escaped_on_every_human_output() {
    let (server, addr) = serving(Landmark::fail(HOSTILE));
    let (o, _) = probe(&[&addr]);
    assert_eq!(code(&o), 1);
    assert_clean(&stdout(&o), "verdict line");
    assert_clean(&stderr(&o), "stderr line");
    assert!(
        stdout(&o).contains(r"\e]0;pwned\x07\e[2Jgone\rback\x08\0nul\x7f\u{9b}31m\nLANDMARK OK")
    );
    assert!(!stdout(&o).contains("\nLANDMARK"));

    let (o, _) = probe(&[&addr, "--nagios"]);
    assert_eq!(code(&o), 2);
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
    assert_clean(&stdout(&o), "--nagios");
    assert!(stdout(&o).starts_with("LANDMARK CRITICAL - "));

    let (o, _) = probe(&[&addr, "--dynamic"]);
    assert_clean(&stdout(&o), "--dynamic");

    // JSON carries the exact text.
    let (o, _) = probe(&[&addr, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["detail"], HOSTILE);
    server.shutdown_blocking();
}

#[test]
fn a_long_detail_is_cut_and_marked() {
    let long = "x".repeat(20_000);
    let (server, addr) = serving(Landmark::fail(long.clone()));
    let (o, _) = probe(&[&addr]);
    let out = stdout(&o);
    assert!(out.len() < 1500, "{} bytes printed", out.len());
    assert!(out.contains("...(18976 more bytes)"), "{out}");
    assert!(stderr(&o).len() < 1500);
    let (o, _) = probe(&[&addr, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["detail"].as_str().unwrap().len(), 20_000);
    server.shutdown_blocking();
}

#[test]
fn a_hostile_banner_is_escaped_by_tcp() {
    for mode in [None, Some("--nagios")] {
        let addr = fake(|mut s| {
            let _ = s.write_all(HOSTILE.as_bytes());
        });
        let mut args = vec!["tcp", &addr, "--expect-banner", "\x1b]0;"];
        args.extend(mode);
        let (o, _) = probe(&args);
        assert_eq!(code(&o), 0, "{mode:?}: {}", stderr(&o));
        assert_eq!(stdout(&o).lines().count(), 1, "{mode:?}: {}", stdout(&o));
        assert_clean(&stdout(&o), "tcp");
        assert!(stdout(&o).contains(r"\e]0;pwned"), "{}", stdout(&o));
    }
    // A server that refuses with a hostile reason: the stderr line too.
    let addr = fake(|mut s| {
        let _ = s.write_all(b"550 \x1b[2J no\r\n");
    });
    let (o, _) = probe(&["tcp", &addr, "--expect-banner", "220"]);
    assert_eq!(code(&o), 1);
    assert_clean(&stdout(&o), "tcp wrong answer");
    assert_clean(&stderr(&o), "tcp wrong answer stderr");
}

/// The watcher's plain log, `--log-checks` lines and the `report` table
/// show a hostile detail escaped; `report --format json` and CSV keep it
/// exact.
#[test]
fn the_watcher_and_report_escape_a_hostile_detail() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let (server, addr) = serving(Landmark::fail(HOSTILE));
    let (dir, config) = common::watch_config(
        "hostile",
        &format!("[[target]]\nname = \"svc\"\nkind = \"landmark\"\naddr = \"{addr}\"\ninterval = \"100ms\"\n"),
    );
    let db = dir.join("watch.db");
    let mut child = Command::new(common::PROBE)
        .args(["watch", config.to_str().unwrap(), "--plain", "--log-checks"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(child.wait().unwrap().success());
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
    std::env::temp_dir()
        .join(format!("hp-{tag}-{}", std::process::id()))
        .join(name)
        .display()
        .to_string()
}
