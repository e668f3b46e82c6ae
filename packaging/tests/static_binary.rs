//! The static binaries of `packaging/static.sh` need nothing from the
//! system they are copied to: they have no program interpreter and no
//! shared library, and they run every check kind inside an empty chroot
//! (no libc.so, no loader, nothing but the two binaries, /etc/hosts, and
//! /proc): landmark, tcp, ping, connections, watch and report, names from
//! /etc/hosts included.
//!
//! Ignored by plain `cargo test`: it needs the binaries built first and
//! root for chroot. `.ci/run` runs `packaging/static.sh`, then this test
//! with `--ignored` (binaries from `HEALTH_PROBE_BIN_DIR`, default
//! `target/static`).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use health_server::Landmark;
use test_support::{code, stderr, stdout};

const BINARIES: [&str; 2] = ["health-probe", "health-probe-watch"];

fn bin_dir() -> PathBuf {
    match std::env::var_os("HEALTH_PROBE_BIN_DIR") {
        Some(dir) => dir.into(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/static"),
    }
}

fn readelf(flag: &str, bin: &Path) -> String {
    let o = Command::new("readelf")
        .arg(flag)
        .arg(bin)
        .output()
        .expect("readelf (binutils)");
    assert_eq!(
        code(&o),
        0,
        "readelf {flag} {}: {}",
        bin.display(),
        stderr(&o)
    );
    stdout(&o)
}

/// An empty root with the two binaries, /etc/hosts and /proc mounted (as
/// every server has it); unmounted and removed on drop.
struct Root(PathBuf);

impl Root {
    fn new() -> Root {
        let uid = Command::new("id").arg("-u").output().unwrap();
        assert_eq!(stdout(&uid).trim(), "0", "chroot needs root");
        let root = std::env::temp_dir().join(format!("health-probe-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["bin", "etc", "proc", "var"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for bin in BINARIES {
            let from = bin_dir().join(bin);
            assert!(
                from.is_file(),
                "{} missing: run packaging/static.sh",
                from.display()
            );
            std::fs::copy(&from, root.join("bin").join(bin)).unwrap();
        }
        std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost probe-target\n").unwrap();
        let root = Root(root);
        let o = Command::new("mount")
            .args(["-t", "proc", "proc"])
            .arg(root.0.join("proc"))
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "mount proc: {}", stderr(&o));
        root
    }

    /// `/bin/health-probe ARGS` inside the root, with an empty environment
    /// (no PATH: the watcher is found beside the probe or not at all).
    fn command(&self, args: &[&str]) -> Command {
        // Found before the environment is cleared: Command looks a bare
        // name up in the child's PATH.
        let chroot = ["/usr/sbin/chroot", "/sbin/chroot", "/usr/bin/chroot"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("chroot (coreutils)");
        let mut cmd = Command::new(chroot);
        cmd.arg(&self.0)
            .arg("/bin/health-probe")
            .args(args)
            .env_clear();
        cmd
    }

    fn probe(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.join("proc")).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs packaging/static.sh's binaries and root; .ci/run runs it"]
fn static_binaries_have_no_dynamic_dependencies() {
    for bin in BINARIES {
        let path = bin_dir().join(bin);
        assert!(
            path.is_file(),
            "{} missing: run packaging/static.sh",
            path.display()
        );
        let headers = readelf("-l", &path);
        assert!(
            !headers.contains("INTERP"),
            "{bin} asks for a loader:\n{headers}"
        );
        let dynamic = readelf("-d", &path);
        assert!(
            !dynamic.contains("(NEEDED)"),
            "{bin} needs shared libraries:\n{dynamic}"
        );
        // And the system's loader agrees.
        let ldd = Command::new("ldd").arg(&path).output().unwrap();
        let said = format!("{}{}", stdout(&ldd), stderr(&ldd));
        assert!(
            said.contains("not a dynamic executable") || said.contains("statically linked"),
            "ldd {bin}: {said}"
        );
    }
}

#[test]
#[ignore = "needs packaging/static.sh's binaries and root; .ci/run runs it"]
fn static_binaries_run_every_check_kind_in_an_empty_root() {
    let root = Root::new();
    let o = root.probe(&["--version"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("health-probe "), "{}", stdout(&o));

    // Landmark: an answering main thread passes, a hung one fails within
    // the deadline, by address and by a name from /etc/hosts.
    let (_ok, ok_addr) = test_support::serving(Landmark::ok("static"));
    let o = root.probe(&[&ok_addr, "--expect", "ok"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let port = ok_addr.rsplit(':').next().unwrap();
    let o = root.probe(&[&format!("probe-target:{port}"), "--expect", "ok"]);
    assert_eq!(code(&o), 0, "by name: {}{}", stdout(&o), stderr(&o));
    let (_asks, rx) = health_server::channel();
    let hung = health_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .spawn(rx)
        .unwrap();
    let o = root.probe(&[&hung.local_addr().to_string(), "--expect", "ok"]);
    assert_eq!(
        code(&o),
        1,
        "hung main thread: {}{}",
        stdout(&o),
        stderr(&o)
    );

    // Tcp with a banner, and a refused port.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = listener.local_addr().unwrap().to_string();
    let greeter = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"220 static ready\r\n").unwrap();
    });
    let o = root.probe(&["tcp", &tcp_addr, "--expect-banner", "220 "]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    greeter.join().unwrap();
    let closed = test_support::free_port();
    let o = root.probe(&["tcp", &closed]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("refused"), "{}", stdout(&o));

    // Ping (root: a raw or datagram ICMP socket), by name.
    let o = root.probe(&["ping", "localhost", "--count", "2", "--interval", "50ms"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));

    // Connections: the report of a server recording its service's port,
    // with one client held (the recorder's first snapshot is taken before
    // the endpoint accepts).
    let svc = TcpListener::bind("127.0.0.1:0").unwrap();
    let svc_port = svc.local_addr().unwrap().port();
    let _client = std::net::TcpStream::connect(svc.local_addr().unwrap()).unwrap();
    let _accepted = svc.accept().unwrap();
    let (asks, rx) = health_server::channel();
    let recording = health_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .connections(health_server::connections::Config::new().port(svc_port, "svc"))
        .spawn(rx)
        .unwrap();
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(Landmark::ok("recording"));
        }
    });
    let o = root.probe(&[
        "connections",
        &recording.local_addr().to_string(),
        "--port",
        "svc",
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ESTABLISHED"), "{}", stdout(&o));

    // Watch (health-probe execs health-probe-watch beside it) with a
    // landmark and a refused port, stopped by SIGINT; then report.
    let config = format!(
        "database = \"/var/watch.db\"\n\
         [defaults]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfall = 1\n\
         [[target]]\nname = \"svc\"\nkind = \"landmark\"\naddr = \"{ok_addr}\"\n\
         [[target]]\nname = \"gone\"\nkind = \"tcp\"\naddr = \"{closed}\"\n"
    );
    std::fs::write(root.0.join("etc/watch.toml"), config).unwrap();
    let o = root.probe(&["watch", "--check-config", "/etc/watch.toml"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let watcher = root
        .command(&["watch", "/etc/watch.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let pid = watcher.id().to_string();
    let o = Command::new("kill").args(["-INT", &pid]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = watcher.wait_with_output().unwrap();
    let log = stdout(&o);
    assert_eq!(code(&o), 0, "{log}{}", stderr(&o));
    assert!(log.contains("start watching 2 targets"), "{log}");
    assert!(log.contains("raise gone"), "{log}");
    assert!(!log.contains("raise svc"), "{log}");
    let o = root.probe(&["report", "--database", "/var/watch.db", "--since", "1h"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("gone"), "{}", stdout(&o));
}
