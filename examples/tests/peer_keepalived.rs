//! The real keepalived (Debian's package) running health-probe, as in
//! docs/KEEPALIVED.md. Every `keepalived` block of the document must pass
//! `keepalived -t`; the failover block runs for real: keepalived in one
//! network namespace (the director) tracks `landmark_service` in another
//! (the real server) over a veth pair. The VRRP instance must enter FAULT
//! when the landmark fails, the main loop hangs or the service dies, and
//! MASTER again on recovery.
//!
//! Needs root (namespaces), `ip` and `keepalived`. In CI (`CI` set) their
//! absence fails the test; elsewhere it is skipped with a message. All
//! traffic stays inside the namespaces this test creates.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use test_support::netns::{link, run, Netns};

/// Whether this machine can run the test; in CI it must.
fn runnable() -> bool {
    test_support::netns::runnable("keepalived test", &["keepalived"])
}

/// A root-owned directory under /run holding a copy of the probe: keepalived's
/// script security refuses scripts under world-writable directories (/tmp).
struct SafeDir(PathBuf);

impl SafeDir {
    fn new(tag: &str) -> SafeDir {
        let dir = PathBuf::from(format!("/run/lm-keepalived-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let probe = dir.join("health-probe");
        std::fs::copy(test_support::built("health-probe"), &probe).unwrap();
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
        SafeDir(dir)
    }

    fn probe(&self) -> PathBuf {
        self.0.join("health-probe")
    }
}

impl Drop for SafeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `keepalived` blocks of docs/KEEPALIVED.md, with the probe's path
/// replaced, and the documented script user replaced by root where it does
/// not exist (`.ci/run` creates it).
fn doc_configs(probe: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/KEEPALIVED.md"
    ))
    .unwrap();
    let user_exists = run("id", &["keepalived_script"]).status.success();
    if !user_exists {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must create the keepalived_script user"
        );
        eprintln!("note: user keepalived_script missing; running the documented checks as root");
    }
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```keepalived" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            let mut cfg = body
                .join("\n")
                .replace("/usr/bin/health-probe", &probe.display().to_string());
            if !user_exists {
                cfg = cfg.replace("keepalived_script", "root");
            }
            blocks.push(cfg + "\n");
        }
    }
    assert!(
        blocks.len() >= 3,
        "expected the documented keepalived configs"
    );
    blocks
}

fn config_test(ns: &Netns, dir: &SafeDir, name: &str, cfg: &str) -> std::process::Output {
    let path = dir.0.join(name);
    std::fs::write(&path, cfg).unwrap();
    let out = ns
        .exec(Path::new("keepalived"))
        .arg("-t")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    // keepalived 2.2.7 (Debian 12) kills its own config test with SIGTERM
    // (a shell shows exit 143) when a non-root script user is set (acassen/keepalived#2617);
    // the daemon itself is fine. docs/KEEPALIVED.md gives the workaround this
    // applies: test the same file with the user set to root.
    use std::os::unix::process::ExitStatusExt;
    let sigterm = out.status.signal() == Some(15) || out.status.code() == Some(143);
    if sigterm && cfg.contains("keepalived_script") {
        eprintln!("note: keepalived#2617 hit in {name}; re-testing with script user root");
        return config_test(ns, dir, name, &cfg.replace("keepalived_script", "root"));
    }
    out
}

/// Every documented config passes `keepalived -t` with `probe` as the
/// check program, and the VRRP one is refused with a missing program.
fn documented_configs_pass_with(probe: &Path) {
    let dir = SafeDir::new("t");
    // keepalived -t checks that the VRRP interface exists: give it an eth0.
    let ns = Netns::new("kt");
    let peer = Netns::new("ku");
    link("kt", &ns, "10.0.0.2/24", &peer, "10.0.0.3/24");
    let configs = doc_configs(probe);
    for (i, cfg) in configs.iter().enumerate() {
        let out = config_test(&ns, &dir, &format!("block{i}.conf"), cfg);
        assert!(
            out.status.success(),
            "docs/KEEPALIVED.md block {i} fails keepalived -t:\n{cfg}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Not a formality: the same VRRP config with a missing probe is refused,
    // as the document says.
    let vrrp = configs.iter().find(|c| c.contains("vrrp_script")).unwrap();
    let broken = vrrp.replace(&probe.display().to_string(), "/nonexistent/health-probe");
    let out = config_test(&ns, &dir, "broken.conf", &broken);
    assert!(
        !out.status.success(),
        "keepalived -t accepted a missing vrrp_script program"
    );
}

#[test]
fn documented_configs_pass_keepalived_check() {
    if !runnable() {
        return;
    }
    documented_configs_pass_with(&SafeDir::new("p").probe());
}

/// The Debian package's probe, at the path the document names, unchanged.
#[test]
#[ignore = "needs the health-probe package installed; packaging/test-install.sh runs it"]
fn documented_configs_pass_keepalived_check_with_the_installed_package() {
    assert!(runnable(), "needs root, ip and keepalived");
    let installed = Path::new("/usr/bin/health-probe");
    let owner = run("dpkg-query", &["--search", "/usr/bin/health-probe"]);
    assert!(
        String::from_utf8_lossy(&owner.stdout).starts_with("health-probe: "),
        "/usr/bin/health-probe is not from the health-probe package: {}{}",
        String::from_utf8_lossy(&owner.stdout),
        String::from_utf8_lossy(&owner.stderr)
    );
    documented_configs_pass_with(installed);
}

/// A child stopped with SIGTERM (keepalived then stops its VRRP child too)
/// and reaped on drop.
struct Terminated(Child);

impl Drop for Terminated {
    fn drop(&mut self) {
        let _ = run("kill", &["-TERM", &self.0.id().to_string()]);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// keepalived's console log, read as it grows.
struct Log {
    path: PathBuf,
    seen: usize,
}

impl Log {
    /// Waits for `needle` to appear after what was seen so far.
    fn wait_for(&mut self, needle: &str, within: Duration) {
        let t = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.path).unwrap_or_default();
            if let Some(at) = text.get(self.seen..).and_then(|rest| rest.find(needle)) {
                self.seen += at + needle.len();
                return;
            }
            assert!(
                t.elapsed() < within,
                "keepalived did not log {needle:?} within {within:?}; log since last step:\n{}",
                text.get(self.seen..).unwrap_or("")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A line client of landmark_service running inside the real server's
/// namespace (bash's /dev/tcp, so no extra tools are needed).
struct Control {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Control {
    fn new(ns: &Netns, addr: &str) -> Control {
        let (host, port) = addr.split_once(':').unwrap();
        let script = format!(
            "exec 3<>/dev/tcp/{host}/{port} || exit 1; \
             while IFS= read -r l; do printf '%s\\n' \"$l\" >&3; IFS= read -r r <&3 || exit 1; printf '%s\\n' \"$r\"; done"
        );
        let mut child = ns
            .exec(Path::new("bash"))
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Control {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
    }

    fn reply(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn keepalived_vrrp_follows_the_landmark() {
    if runnable() {
        vrrp_follows(&test_support::built("landmark_service"), "vrrp");
    }
}

/// The same with the C example on the C ABI (`examples/c`).
#[test]
fn keepalived_vrrp_follows_the_c_services_landmark() {
    if runnable() {
        vrrp_follows(&test_support::c_landmark_service(), "vrrp-c");
    }
}

/// keepalived follows `service` (a landmark_service) through every
/// failure and recovery. `tag` names the test's namespaces and folder.
fn vrrp_follows(service: &Path, tag: &str) {
    let dir = SafeDir::new(tag);
    let rs = Netns::new(&format!("{tag}-rs"));
    let lb = Netns::new(&format!("{tag}-lb"));
    link(
        &format!("k{}", tag.len()),
        &rs,
        "10.0.0.5/24",
        &lb,
        "10.0.0.2/24",
    );

    // The real server: landmark_service, in its own namespace.
    let start_service = || {
        rs.exec(service)
            .args(["--listen", "10.0.0.5:7000", "--health", "10.0.0.5:9100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut service = start_service();
    let t = Instant::now();
    while !lb
        .exec(&dir.probe())
        .args(["10.0.0.5:9100", "-q"])
        .status()
        .unwrap()
        .success()
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "landmark_service did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The director: the documented failover config, with short intervals.
    let cfg = doc_configs(&dir.probe())
        .into_iter()
        .find(|c| c.contains("vrrp_instance"))
        .unwrap()
        .replace("interval 2", "interval 1")
        .replace("fall 2", "fall 1")
        .replace("rise 2", "rise 1");
    let cfg_path = dir.0.join("keepalived.conf");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let log_path = dir.0.join("keepalived.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let pid = |f: &str| format!("--{f}={}", dir.0.join(format!("{f}.pid")).display());
    let _keepalived = Terminated(
        lb.exec(Path::new("keepalived"))
            .args(["--dont-fork", "--log-console", "--log-detail", "--vrrp"])
            .arg(format!("--use-file={}", cfg_path.display()))
            .args([pid("pid"), pid("vrrp_pid"), pid("checkers_pid")])
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap(),
    );
    let mut log = Log {
        path: log_path,
        seen: 0,
    };
    let mut ctl = Control::new(&rs, "10.0.0.5:7000");
    let secs = Duration::from_secs;

    log.wait_for("(VI_LANDMARK) Entering MASTER STATE", secs(15));

    // The landmark fails: FAULT; it recovers: MASTER.
    ctl.send("SET fail disk full");
    assert_eq!(ctl.reply(), "OK");
    log.wait_for("VRRP_Script(chk_landmark) failed", secs(6));
    log.wait_for("(VI_LANDMARK) Entering FAULT STATE", secs(3));
    ctl.send("SET ok");
    assert_eq!(ctl.reply(), "OK");
    log.wait_for("VRRP_Script(chk_landmark) succeeded", secs(6));
    log.wait_for("(VI_LANDMARK) Entering MASTER STATE", secs(10));

    // The main loop hangs (the port still accepts): FAULT; it ends: MASTER.
    ctl.send("HANG 6000");
    log.wait_for("(VI_LANDMARK) Entering FAULT STATE", secs(6));
    assert_eq!(ctl.reply(), "OK hung 6000ms");
    log.wait_for("(VI_LANDMARK) Entering MASTER STATE", secs(10));

    // The service dies: FAULT; it is restarted: MASTER.
    drop(ctl);
    let _ = service.kill(); // `ip netns exec` execs the service itself
    let _ = service.wait();
    log.wait_for("(VI_LANDMARK) Entering FAULT STATE", secs(6));
    let mut restarted = start_service();
    log.wait_for("(VI_LANDMARK) Entering MASTER STATE", secs(10));
    let _ = restarted.kill();
    let _ = restarted.wait();
}
