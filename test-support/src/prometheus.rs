//! The real Prometheus (Debian's package) for the exporters' tests: started
//! on a free loopback port with a test's configuration and rules (both
//! checked by promtool first), queried through its HTTP API, stopped on
//! drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `prometheus` and `promtool` are installed; in CI (which
/// installs them) their absence fails the test.
pub fn installed() -> bool {
    crate::peer_installed(&["prometheus", "promtool"], "prometheus")
}

/// `promtool ARGS`, which must succeed.
pub fn promtool(args: &[&str]) {
    let o = Command::new("promtool").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One HTTP/1.0 GET (the server closes after the reply): status and body.
pub fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).ok()?;
    s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

impl Prometheus {
    /// Prometheus with `config` (prometheus.yml, whose `rule_files` names
    /// `rules.yml`) and `rules`, both checked by promtool, ready to answer.
    /// `tag` names its scratch folder.
    pub fn start(tag: &str, config: &str, rules: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("prom-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| -> PathBuf {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        file("rules.yml", rules);
        let config_path = file("prometheus.yml", config);
        promtool(&["check", "config", &config_path.display().to_string()]);
        let addr: SocketAddr = crate::free_port().parse().unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let p = Prometheus { child, addr, dir };
        p.wait_for("ready", Duration::from_secs(30), || {
            get(p.addr, "/-/ready").is_some_and(|(code, _)| code == 200)
        });
        p
    }

    /// Its HTTP API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its scratch folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until `done`, at most `within`; panics with Prometheus's log.
    pub fn wait_for(
        &self,
        what: &str,
        within: Duration,
        mut done: impl FnMut() -> bool,
    ) -> Duration {
        let t = Instant::now();
        while !done() {
            if t.elapsed() > within {
                let log =
                    std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
                panic!("Prometheus: not {what} within {within:?}; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        t.elapsed()
    }

    /// The value of an instant query with at most one result.
    pub fn value(&self, query: &str) -> Option<f64> {
        let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
        let (code, body) = get(self.addr, &format!("/api/v1/query?query={q}"))?;
        assert_eq!(code, 200, "{query}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let result = v["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query}: {body}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Whether alert `name` is firing.
    pub fn firing(&self, name: &str) -> bool {
        let Some((200, body)) = get(self.addr, "/api/v1/alerts") else {
            return false;
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["alerts"].as_array().is_some_and(|alerts| {
            alerts
                .iter()
                .any(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
        })
    }
}

/// docs/PROMETHEUS.md's configuration and rules, checked by promtool as
/// written, then made fast and local: 1 s intervals and scrape timeouts,
/// the rules' `for:` cut to 1 s, the rule file named `rules.yml`, and each
/// documented address in `hosts` (`(as written, replacement)`) replaced.
/// Every documented host must be replaced: no test traffic leaves loopback.
pub fn documented(hosts: &[(&str, String)]) -> (String, String) {
    let config = crate::doc_blocks("PROMETHEUS.md", "yaml prometheus-config").remove(0);
    let rules = crate::doc_blocks("PROMETHEUS.md", "yaml prometheus-rules").remove(0);
    let dir = std::env::temp_dir().join(format!("prom-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prometheus.yml"), &config).unwrap();
    std::fs::write(dir.join("landmark-rules.yml"), &rules).unwrap();
    promtool(&[
        "check",
        "config",
        &dir.join("prometheus.yml").display().to_string(),
    ]);
    promtool(&[
        "check",
        "rules",
        &dir.join("landmark-rules.yml").display().to_string(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = config
        .replace("landmark-rules.yml", "rules.yml")
        .replace("interval: 15s", "interval: 1s")
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("scrape_timeout: 2s", "scrape_timeout: 1s")
        .replace("scrape_timeout: 5s", "scrape_timeout: 1s");
    for (written, replacement) in hosts {
        assert!(config.contains(written), "{written} is not in the document");
        config = config.replace(written, replacement);
    }
    assert!(
        !config.contains("example.net")
            && !config.contains("10.0.0.")
            && !config.contains("localhost"),
        "a documented host is left:\n{config}"
    );
    let rules = rules
        .replace("for: 2m", "for: 1s")
        .replace("for: 1m", "for: 1s");
    (config, rules)
}
