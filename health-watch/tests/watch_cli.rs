//! How the watcher is run: config errors and `--check-config`, plain log
//! lines, the live table on a terminal, ping targets in a network
//! namespace, the `health-probe-watch` binary, and the contrib config and
//! systemd unit.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::watcher::{report, scratch, write_config, Accepting, Watcher};
use common::{code, stderr, stdout, watch_config, watch_output, PROBE};

#[test]
fn config_errors_are_line_numbered_and_check_config_validates() {
    let dir = scratch("config");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1\"\nrise = 0\n",
    )
    .unwrap();
    let o = Command::new(PROBE)
        .arg("watch")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    let p = path.display();
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            format!("health-probe: {p}:4:8: addr \"127.0.0.1\" is not IP:PORT, [IPv6]:PORT or HOST:PORT"),
            format!("health-probe: {p}:5:8: rise must be between 1 and 1000"),
        ],
        "{err}"
    );
    let target = "[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n";
    // A database in a folder still to be made, under one that can be
    // written: valid (the watcher makes the folder).
    let db = dir.join("made/later/watch.db");
    std::fs::write(
        &path,
        format!("database = {:?}\n{target}", db.display().to_string()),
    )
    .unwrap();
    let check = |path: &Path| {
        Command::new(PROBE)
            .args(["watch", "--check-config"])
            .arg(path)
            .output()
            .unwrap()
    };
    let o = check(&path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("valid, 1 target, history in"),
        "{}",
        stdout(&o)
    );
    assert!(
        !db.parent().unwrap().exists(),
        "--check-config makes nothing"
    );
    // A database the watcher could not write is an error, said at once.
    std::fs::write(
        &path,
        format!("database = \"/proc/health-probe/watch.db\"\n{target}"),
    )
    .unwrap();
    let o = check(&path);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stderr(&o)
            .contains("database /proc/health-probe/watch.db: the folder /proc cannot be written"),
        "{}",
        stderr(&o)
    );
    // `.` and `..` are no target names: their pages would be lost.
    for name in [".", ".."] {
        std::fs::write(
            &path,
            format!("[[target]]\nname = \"{name}\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\n"),
        )
        .unwrap();
        let o = check(&path);
        assert_eq!(code(&o), 1);
        assert!(
            stderr(&o).contains(&format!("name \"{name}\" is not a target name")),
            "{}",
            stderr(&o)
        );
    }
    let o = Command::new(PROBE)
        .args(["watch", "/nonexistent/watch.toml"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
    let o = report(&["--database", "/nonexistent/watch.db"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn plain_log_lines_when_not_a_terminal() {
    let dir = scratch("plain");
    let config = write_config(
        &dir,
        "[[target]]\nname = \"svc\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"100ms\"\n",
    );
    let text = watch_output(&config, &["--stats", "200ms"], Duration::from_millis(900));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with(&format!(
            "start watching 1 target, at most 256 checks at once, history in {}",
            dir.join("watch.db").display()
        )),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains(
            " raise svc (tcp 127.0.0.1:1) NG refused after 2 failures in a row: connection refused"
        )),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains(" stats targets=1 checks=")),
        "{text}"
    );
    assert!(lines.last().unwrap().ends_with("stop: SIGINT"), "{text}");
}

#[test]
fn live_table_on_a_terminal() {
    let dir = scratch("live");
    let up = Accepting::on("127.0.0.1:0", b"");
    let config = write_config(
        &dir,
        &format!(
            "[[target]]\nname = \"down-svc\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"100ms\"\n\
             [[target]]\nname = \"up-svc\"\nkind = \"tcp\"\naddr = \"{}\"\ninterval = \"100ms\"\n",
            up.addr
        ),
    );
    // util-linux `script` gives the watcher a pseudo-terminal.
    let o = Command::new("script")
        .args([
            "-qefc",
            &format!("timeout -s INT 2.5 {PROBE} watch {}", config.display()),
            "/dev/null",
        ])
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .env("LINES", "30")
        .output();
    let Ok(o) = o else {
        assert!(std::env::var_os("CI").is_none(), "script(1) is missing");
        eprintln!("SKIPPED: no script(1)");
        return;
    };
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(
        screen.contains("\x1b[?1049h"),
        "alternate screen: {screen:?}"
    );
    assert!(screen.contains("TARGET"), "{screen:?}");
    let alarm_row = screen
        .lines()
        .find(|l| l.contains("down-svc") && l.contains("ALARM"));
    assert!(alarm_row.is_some(), "{screen:?}");
    assert!(alarm_row.unwrap().contains("NG refused"), "{screen:?}");
    assert!(screen.contains("up-svc"), "{screen:?}");
    assert!(
        screen.contains("raise down-svc"),
        "recent events under the table: {screen:?}"
    );
    // Back on the normal screen, the last counters stay.
    assert!(screen.contains("\x1b[?1049l"), "{screen:?}");
    assert!(screen.contains("stats targets=2"), "{screen:?}");
}

#[test]
fn ping_targets_in_a_network_namespace() {
    let dir = scratch("ping");
    let config = write_config(
        &dir,
        r#"
[defaults]
interval = "300ms"

[[target]]
name = "lo"
kind = "ping"
host = "127.0.0.1"
count = 2
ping_interval = "20ms"
timeout = "250ms"

[[target]]
name = "unrouted"
kind = "ping"
host = "10.99.0.1"
timeout = "250ms"
pause_after_errors = 2
"#,
    );
    let script = format!(
        "ip link set lo up; timeout -s TERM 2.5 {PROBE} watch {} --json --log-checks || true",
        config.display()
    );
    let Some(o) = common::in_new_netns("sh", &["-ec", &script]) else {
        return;
    };
    let events: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of = |target: &str, event: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|v| v["target"] == target && v["event"] == event)
            .collect()
    };
    let lo = of("lo", "check");
    assert!(lo.len() >= 3, "{events:?}\n{}", stderr(&o));
    assert!(
        lo.iter()
            .all(|c| c["class"] == "OK" && c["rtt_ms"].as_f64().is_some()),
        "{lo:?}"
    );
    assert!(of("lo", "raise").is_empty());
    let raise = of("unrouted", "raise");
    assert_eq!(raise.len(), 1, "{events:?}");
    assert_eq!(
        (raise[0]["class"].clone(), raise[0]["reason"].clone()),
        ("ERR".into(), "no-route".into())
    );
    assert_eq!(of("unrouted", "pause").len(), 1, "{events:?}");
    assert_eq!(
        of("unrouted", "check").len(),
        2,
        "paused after 2 errors: {events:?}"
    );
}

#[test]
fn health_probe_watch_is_health_probe_watch() {
    // `health-probe watch` and `report` exec the watcher binary installed
    // beside it: same pid, same arguments, same exit.
    let probe = Path::new(PROBE).with_file_name("health-probe");
    if !probe.is_file() {
        // `cargo test -p health-watch` alone does not build the probe.
        assert!(std::env::var_os("CI").is_none(), "CI builds the workspace");
        eprintln!("SKIPPED: no health-probe beside {PROBE}");
        return;
    }
    let o = Command::new(&probe)
        .args(["report", "--help"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("--format <FORMAT>"), "{}", stdout(&o));
    let (dir, config) = watch_config(
        "exec",
        "[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"1h\"\n",
    );
    let mut command = Command::new(&probe);
    command.arg("watch").arg(&config);
    let mut w = Watcher::spawn(command);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    let exe = std::fs::read_link(format!("/proc/{}/exe", w.child.id())).unwrap();
    assert_eq!(
        exe.file_name().unwrap(),
        "health-probe-watch",
        "{}",
        exe.display()
    );
    assert_eq!(w.stop(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn contrib_example_config_and_systemd_unit_are_valid() {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib");
    let o = Command::new(PROBE)
        .args(["watch", "--check-config"])
        .arg(contrib.join("watch.toml"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("valid, 5 targets"), "{}", stdout(&o));

    // The unit as installed, pointing at this build: systemd's own checker
    // must find nothing (unknown keys, missing programs, bad syntax).
    let unit = std::fs::read_to_string(contrib.join("health-probe-watch.service")).unwrap();
    let dir = scratch("unit");
    let path = dir.join("health-probe-watch.service");
    std::fs::write(&path, unit.replace("/usr/bin/health-probe", PROBE)).unwrap();
    let o = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "systemd-analyze: {e}");
            eprintln!("SKIPPED: no systemd-analyze: {e}");
            return;
        }
    };
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "systemd-analyze verify complained");

    // Sandboxed: systemd's exposure score (0 safe to 10 unsafe) at 6.5 or
    // less ("MEDIUM" at worst), as the unit's comments promise.
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let said = stdout(&o);
    let score: f64 = said
        .lines()
        .find_map(|l| {
            l.split("exposure level for health-probe-watch.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {said}{}", stderr(&o)));
    assert!(score <= 6.5, "exposure {score}:\n{said}");
    // What the documented `sudo -n` actions need is not taken away.
    for kept in ["NoNewPrivileges", "PrivateUsers", "CapabilityBoundingSet"] {
        assert!(
            !unit.lines().any(|l| l.starts_with(&format!("{kept}="))),
            "{kept} would break sudo -n actions"
        );
    }
}

#[test]
fn the_watcher_takes_a_family_per_target() {
    let write = |family: &str| {
        watch_config(
            "family",
            &format!("[[target]]\nname = \"a\"\nkind = \"landmark\"\naddr = \"localhost:9100\"\nfamily = \"{family}\"\n\n[[target]]\nname = \"b\"\nkind = \"ping\"\nhost = \"127.1\"\n"),
        )
    };
    let (dir, config) = write("ipv4");
    let o = Command::new(PROBE)
        .args(["watch", config.to_str().unwrap(), "--check-config"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "127.1 is a shorthand, refused");
    assert!(
        stderr(&o).contains(":11:8: host \"127.1\""),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains(":5:"),
        "ipv4 is a family: {}",
        stderr(&o)
    );
    let (_, config) = write("ipv7");
    let o = Command::new(PROBE)
        .args(["watch", config.to_str().unwrap(), "--check-config"])
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("family must be \"ipv4\" or \"ipv6\", not \"ipv7\""),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hostile_config_is_reported_escaped_every_problem_at_once() {
    // A key carrying terminal escapes, a second unknown key, a value of
    // the wrong type, a database that is a folder (and an address with
    // escapes, for the resolver to refuse when it is checked).
    let dir = scratch("hostile-config");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        format!(
            "database = {:?}\n[[target]]\nname = \"a\"\nkind = \"tcp\"\naddr = \"\\u001b]0;pwned\\u0007:1\"\n\"\\u001b[2J\" = 1\nflal = 2\nrise = \"two\"\n",
            dir.display().to_string()
        ),
    )
    .unwrap();
    let o = Command::new(PROBE)
        .args(["watch", "--check-config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    common::assert_clean(&err.replace('\n', " "), "check-config stderr");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(
        lines[0].contains(":1:12: database") && lines[0].contains("is a folder"),
        "{err}"
    );
    assert!(lines[1].contains(":6:1: unknown field `\\e[2J`"), "{err}");
    assert!(lines[2].contains(":7:1: unknown field `flal`"), "{err}");
    assert!(lines[3].contains(":8:8:"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
