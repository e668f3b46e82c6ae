//! The real Alertmanager (Debian's package) for the watcher's alerting
//! tests: started on a free loopback port with a test's configuration
//! (checked by amtool first), stopped on drop; and [`Webhook`], the
//! receiver its notifications are sent to, inside the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::prometheus::get;

/// The most bytes of one notification the webhook reads.
const MAX_NOTIFICATION: usize = 1 << 20;

/// Whether `prometheus-alertmanager` and `amtool` are installed; in CI
/// (which installs them) their absence fails the test.
pub fn installed() -> bool {
    crate::peer_installed(
        &["prometheus-alertmanager", "amtool"],
        "prometheus-alertmanager",
    )
}

/// `amtool check-config` on `config`, which must pass.
pub fn check_config(config: &str) {
    let dir = scratch("check");
    let path = dir.join("alertmanager.yml");
    std::fs::write(&path, config).unwrap();
    let o = Command::new("amtool")
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        o.status.success(),
        "amtool check-config:\n{config}\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A fresh folder for one use: tests of one process run at once, so each
/// call gets its own.
fn scratch(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::scratch(&format!("am-{tag}-{n}"))
}

/// A running Alertmanager, alone or a cluster's peer.
#[derive(Debug)]
pub struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Alertmanager {
    /// Alertmanager with `config`, checked by amtool, on `addr`, ready to
    /// take alerts. `tag` names its scratch folder.
    pub fn start(tag: &str, config: &str, addr: SocketAddr) -> Alertmanager {
        // Alone: no gossip port, no peers.
        Alertmanager::launch(
            tag,
            config,
            addr,
            &["--cluster.listen-address=".to_string()],
        )
    }

    /// One peer of an Alertmanager cluster on loopback: gossip on
    /// `gossip`, joining `peers`, with the cluster's waits cut to seconds
    /// (a peer that is not first in line waits `peer-timeout`, 2 s, for
    /// the others' notification log before it notifies itself).
    pub fn start_peer(
        tag: &str,
        config: &str,
        addr: SocketAddr,
        gossip: SocketAddr,
        peers: &[SocketAddr],
    ) -> Alertmanager {
        let mut args = vec![
            format!("--cluster.listen-address={gossip}"),
            format!("--cluster.advertise-address={gossip}"),
            "--cluster.peer-timeout=2s".to_string(),
            "--cluster.settle-timeout=2s".to_string(),
            "--cluster.pushpull-interval=1s".to_string(),
            "--cluster.reconnect-interval=1s".to_string(),
        ];
        args.extend(peers.iter().map(|p| format!("--cluster.peer={p}")));
        Alertmanager::launch(tag, config, addr, &args)
    }

    fn launch(tag: &str, config: &str, addr: SocketAddr, cluster: &[String]) -> Alertmanager {
        check_config(config);
        let dir = scratch(tag);
        let path = dir.join("alertmanager.yml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", path.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .args(cluster)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let am = Alertmanager { child, addr, dir };
        am.wait_for("ready", Duration::from_secs(30), || {
            get(am.addr, "/-/ready").is_some_and(|(code, _)| code == 200)
        });
        am
    }

    /// Where its API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }

    /// Waits until `done`, at most `within`; panics with its log.
    pub fn wait_for(&self, what: &str, within: Duration, mut done: impl FnMut() -> bool) {
        let t = Instant::now();
        while !done() {
            assert!(
                t.elapsed() < within,
                "Alertmanager: not {what} within {within:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One notification a webhook received: the path it was posted to and its
/// JSON body (Alertmanager's webhook payload).
#[derive(Debug, Clone)]
pub struct Notification {
    /// The request's path: which receiver it was sent to.
    pub path: String,
    /// Alertmanager's payload: `status`, `alerts`, ...
    pub body: serde_json::Value,
}

/// An HTTP receiver on a free loopback port that keeps every JSON body
/// posted to it and answers 200, until dropped (its thread ends at the
/// next connection after that, or with the test).
#[derive(Debug)]
pub struct Webhook {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Notification>>>,
}

impl Webhook {
    /// Listens on a free loopback port.
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::downgrade(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Some(got) = keep.upgrade() else { return };
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                if let Some(n) = read_post(&mut stream) {
                    got.lock().unwrap().push(n);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Webhook { addr, got }
    }

    /// `http://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Notification> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (at most `within`) for a notification `matches` accepts.
    pub fn wait_for(
        &self,
        what: &str,
        within: Duration,
        matches: impl Fn(&Notification) -> bool,
    ) -> Notification {
        let t = Instant::now();
        loop {
            if let Some(n) = self.received().into_iter().find(|n| matches(n)) {
                return n;
            }
            assert!(
                t.elapsed() < within,
                "no notification {what} within {within:?}; received: {:#?}",
                self.received()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One request: its path and JSON body, if it is a POST with one.
fn read_post(stream: &mut std::net::TcpStream) -> Option<Notification> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?, parts.next()?.to_string());
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    if method != "POST" || length > MAX_NOTIFICATION {
        return None;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Notification {
        path,
        body: serde_json::from_slice(&body).ok()?,
    })
}
