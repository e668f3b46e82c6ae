//! Network namespaces a test makes for itself, and the veth links between
//! them: a whole small network (a director and a real server, a watcher and
//! a server behind two carriers) with no traffic leaving the machine.
//! Needs root and `ip`; [`runnable`] says whether this machine can (and
//! fails the test in CI when it cannot).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs `cmd args`, its output whatever it did.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap()
}

/// `ip args`, which must succeed.
pub fn ip(args: &[&str]) {
    let out = run("ip", args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    run("id", &["-u"]).stdout.starts_with(b"0\n")
}

/// Whether this machine can run a test needing root, `ip` and `programs`;
/// in CI (`CI` set) it must, elsewhere the test says `SKIPPED`.
pub fn runnable(test: &str, programs: &[&str]) -> bool {
    let mut missing: Vec<&str> = Vec::new();
    if !is_root() {
        missing.push("root");
    }
    for p in std::iter::once(&"ip").chain(programs) {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            missing.push(p);
        }
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs {missing:?} in CI (.ci/run installs them and runs as root)"
    );
    eprintln!("SKIPPED: {test} needs {missing:?}");
    false
}

/// A network namespace made by this test; its processes are killed and it
/// is deleted on drop.
#[derive(Debug)]
pub struct Netns(pub String);

impl Netns {
    /// A new namespace (its loopback up), named after `tag` and this
    /// process.
    pub fn new(tag: &str) -> Netns {
        let name = format!("lm{tag}{}", std::process::id());
        let _ = run("ip", &["netns", "del", &name]);
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns(name)
    }

    /// `program` run inside it.
    pub fn exec(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }

    /// `ip -n NAME args`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let pids = run("ip", &["netns", "pids", &self.0]);
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = run("kill", &["-TERM", pid]);
        }
        std::thread::sleep(Duration::from_millis(200));
        let pids = run("ip", &["netns", "pids", &self.0]);
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = run("kill", &["-KILL", pid]);
        }
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

/// Joins two namespaces with a veth pair named `eth0` on both sides (`tag`
/// keeps the temporary names of tests running in parallel apart).
pub fn link(tag: &str, a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) {
    link_named(tag, (a, "eth0", a_addr), (b, "eth0", b_addr));
}

/// Joins two namespaces with a veth pair, each end given its name and
/// address (`10.0.0.1/24`) in its namespace, and up.
pub fn link_named(tag: &str, a: (&Netns, &str, &str), b: (&Netns, &str, &str)) {
    let (va, vb) = (
        format!("{tag}a{}", std::process::id()),
        format!("{tag}b{}", std::process::id()),
    );
    ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
    for ((ns, name, addr), v) in [(a, &va), (b, &vb)] {
        ip(&["link", "set", v, "netns", &ns.0]);
        ns.ip(&["link", "set", v, "name", name]);
        ns.ip(&["addr", "add", addr, "dev", name]);
        ns.ip(&["link", "set", name, "up"]);
    }
}
