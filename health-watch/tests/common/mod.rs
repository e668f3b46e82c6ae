//! Helpers the watcher's integration tests share: reading a run's output,
//! peers that never answer, network namespaces, scratch configs, and the
//! running watcher ([`watcher`]).
#![allow(dead_code)] // each test crate uses its own subset

#[allow(unused_imports)] // not every test crate uses them all
pub(crate) use test_support::*;

pub(crate) mod watcher;

/// The watcher's binary: `health-probe-watch watch ...` is what
/// `health-probe watch ...` execs, same arguments.
pub(crate) const PROBE: &str = env!("CARGO_BIN_EXE_health-probe-watch");

/// Runs `health-probe watch CONFIG ARGS...` for `run`, stops it with
/// SIGINT, and returns what it printed on stdout; it must exit 0.
pub(crate) fn watch_output(
    config: &std::path::Path,
    args: &[&str],
    run: std::time::Duration,
) -> String {
    use std::io::Read;
    let mut child = std::process::Command::new(PROBE)
        .arg("watch")
        .arg(config)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(run);
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
    text
}

/// A fresh scratch folder for one watcher test (`tag` names it) and a
/// config there: a `database` in the folder, then `targets` (TOML).
/// Returns the folder and the config's path.
pub(crate) fn watch_config(tag: &str, targets: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = watcher::scratch(tag);
    let config = watcher::write_config(&dir, targets);
    (dir, config)
}
