//! The man pages and completions are generated from the clap definitions:
//! every subcommand has a page, every flag `--help` lists is on its page,
//! and bash loads the completion for `health-probe`.

use std::path::PathBuf;
use std::process::Command;

/// A fresh folder for `test` with every asset written into it.
fn written(test: &str) -> PathBuf {
    let out =
        std::env::temp_dir().join(format!("health-probe-assets-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    health_probe_assets::write_all(&out).unwrap();
    out
}

#[test]
fn every_subcommand_has_a_page_with_every_flag() {
    let out = written("pages");
    let root = health_probe_assets::command();
    let mut commands = vec![("health-probe".to_string(), root.clone())];
    for sub in root.get_subcommands() {
        commands.push((format!("health-probe-{}", sub.get_name()), sub.clone()));
    }
    assert_eq!(
        commands.len(),
        8,
        "landmark, tcp, ping, tls, watch, report, silence, connections"
    );
    for (page, cmd) in commands {
        let text = std::fs::read_to_string(out.join("man").join(format!("{page}.1")))
            .unwrap_or_else(|e| panic!("{page}.1: {e}"));
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                // roff writes a dash in a flag as \-.
                let flag = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(text.contains(&flag), "{page}.1 lacks --{long}");
            }
        }
    }
    // The page renders: man-db (installed by .ci/run) reads it without a
    // warning.
    let o = Command::new("man")
        .args(["-l", "--warnings"])
        .arg(out.join("man/health-probe.1"))
        .env("MANPAGER", "cat")
        .output()
        .expect("man (Debian's man-db)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("misc_dynamic"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bash_loads_the_completion() {
    let out = written("completions");
    let file = out.join("completions/health-probe.bash");
    let o = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1" && complete -p health-probe"#)
        .arg("bash")
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("health-probe"));
    for (_, name) in health_probe_assets::SHELLS {
        let text = std::fs::read_to_string(out.join("completions").join(name)).unwrap();
        for sub in ["tcp", "ping", "watch", "report", "connections"] {
            assert!(text.contains(sub), "{name} lacks {sub}");
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}
