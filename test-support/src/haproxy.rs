//! A real HAProxy (Debian's package) for the balancer tests: started on a
//! config of docs/HAPROXY.md with loopback addresses substituted in, and
//! read through its admin socket (`show stat`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running HAProxy, killed when dropped.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    socket: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One row of `show stat` for a server.
#[derive(Debug, Clone)]
pub struct ServerStat {
    /// `UP`, `DOWN`, `DRAIN`, ... (with ` (agent)` and the like).
    pub status: String,
    /// The effective weight.
    pub weight: String,
    /// The agent's last description.
    pub last_agent: String,
}

/// Where the endpoint and the service under test listen.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The service's own port (HAProxy's plain `check`).
    pub service: u16,
    /// The native health port (the `tcp-check` backend).
    pub health: u16,
    /// The agent-check port.
    pub agent: u16,
}

/// Every `haproxy` block of docs/HAPROXY.md, as one config for loopback:
/// frontends on free ports, the server at `127.0.0.1:ports.service`, the
/// health and agent ports substituted, `inter 2s` made `inter`.
pub fn documented_config(ports: Ports, inter: &str) -> String {
    let mut cfg = String::new();
    for block in crate::doc_blocks("HAPROXY.md", "haproxy") {
        let block: String = block
            .lines()
            .map(|l| match l.trim_start().strip_prefix("bind :") {
                Some(_) => format!("    bind {}\n", crate::free_port()),
                None => format!("{l}\n"),
            })
            .collect();
        cfg.push_str(
            &block
                .replace("10.0.0.5:7000", &format!("127.0.0.1:{}", ports.service))
                .replace(
                    "connect port 9100",
                    &format!("connect port {}", ports.health),
                )
                .replace("agent-port 9101", &format!("agent-port {}", ports.agent))
                .replace("inter 2s", &format!("inter {inter}")),
        );
    }
    cfg
}

impl Haproxy {
    /// Starts `haproxy -db` on `config` (a `global` section with the admin
    /// socket is put first).
    pub fn start(tag: &str, config: &str) -> Haproxy {
        let dir = std::env::temp_dir().join(format!("haproxy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("admin.sock");
        let cfg = format!(
            "global\n    stats socket {} mode 600 level admin\n{config}",
            socket.display()
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Haproxy { child, socket, dir }
    }

    /// `backend/server`'s row of `show stat`, if HAProxy answers.
    pub fn stat(&self, backend: &str, server: &str) -> Option<ServerStat> {
        let mut s = UnixStream::connect(&self.socket).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"show stat\n").ok()?;
        let mut csv = String::new();
        s.read_to_string(&mut csv).ok()?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (status, weight, last_agt) = (col("status")?, col("weight")?, col("last_agt")?);
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find_map(|f| {
                (f.first() == Some(&backend) && f.get(1) == Some(&server)).then(|| ServerStat {
                    status: f.get(status).unwrap_or(&"").to_string(),
                    weight: f.get(weight).unwrap_or(&"").to_string(),
                    last_agent: f.get(last_agt).unwrap_or(&"").to_string(),
                })
            })
    }

    /// Waits (at most `within`) until `backend/web1` satisfies `want`.
    pub fn wait_for_within(
        &self,
        backend: &str,
        what: &str,
        within: Duration,
        want: impl Fn(&ServerStat) -> bool,
    ) -> ServerStat {
        let t = Instant::now();
        let mut last = None;
        while t.elapsed() < within {
            if let Some(s) = self.stat(backend, "web1") {
                if want(&s) {
                    return s;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{backend}/web1 never became {what} within {within:?}; last seen {last:?}");
    }

    /// [`Haproxy::wait_for_within`] 10 s.
    pub fn wait_for(
        &self,
        backend: &str,
        what: &str,
        want: impl Fn(&ServerStat) -> bool,
    ) -> ServerStat {
        self.wait_for_within(backend, what, Duration::from_secs(10), want)
    }
}
