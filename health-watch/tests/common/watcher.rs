//! A running `health-probe watch --json` and its peers, for the watcher's
//! integration tests.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::PROBE;

/// A running watcher with `--json`: its events read on a thread as they
/// come, kept in `seen`; its stderr collected.
pub(crate) struct Watcher {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every event read so far.
    pub seen: Vec<Value>,
    /// Indices in `seen` that `wait_for` returned.
    pub returned: HashSet<usize>,
    stderr: Arc<Mutex<String>>,
}

impl Watcher {
    /// `health-probe watch CONFIG --json --log-checks`.
    pub(crate) fn start(config: &Path) -> Watcher {
        Watcher::start_with(config, &["--log-checks"])
    }

    /// `health-probe watch CONFIG --json` and `extra`.
    pub(crate) fn start_with(config: &Path, extra: &[&str]) -> Watcher {
        let mut command = Command::new(PROBE);
        command.arg("watch").arg(config).args(extra);
        Watcher::spawn(command)
    }

    /// `health-probe watch CONFIG --json`: events only, no check lines.
    pub(crate) fn quiet(config: &Path) -> Watcher {
        Watcher::start_with(config, &[])
    }

    /// Runs `command` (the watcher, or a wrapper that execs it), adding
    /// `--json`.
    pub(crate) fn spawn(mut command: Command) -> Watcher {
        let mut child = command
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start health-probe watch");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Watcher {
            child,
            lines,
            seen: Vec::new(),
            returned: HashSet::new(),
            stderr,
        }
    }

    /// What the watcher wrote on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first event not returned before for which `pred` holds, from
    /// those already read or those still to come; panics with everything
    /// seen after `within`.
    pub(crate) fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(i) =
            (0..self.seen.len()).find(|i| !self.returned.contains(i) && pred(&self.seen[*i]))
        {
            self.returned.insert(i);
            return self.seen[i].clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                    self.seen.push(v.clone());
                    if pred(&v) {
                        self.returned.insert(self.seen.len() - 1);
                        return v;
                    }
                }
                Err(_) => panic!(
                    "no {what} within {within:?}; stderr: {}; events seen:\n{}",
                    self.stderr(),
                    self.seen
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }

    /// Reads every event printed so far into `seen`.
    pub(crate) fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(serde_json::from_str(&line).unwrap());
        }
    }

    /// Events of `event` kind for `target` seen so far.
    pub(crate) fn count(&self, event: &str, target: &str) -> usize {
        self.seen
            .iter()
            .filter(|v| v["event"] == event && v["target"] == target)
            .count()
    }

    /// Events of `event` kind seen so far.
    pub(crate) fn told(&self, event: &str) -> usize {
        self.seen.iter().filter(|v| v["event"] == event).count()
    }

    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then the exit code (within 5 s).
    pub(crate) fn stop(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(5)).0
    }

    /// Waits until the process holds or handles SIGHUP and SIGTERM (from
    /// `/proc/PID/status`): before that it is still the loader's, in the
    /// microseconds before any code of ours runs.
    pub(crate) fn await_signals_held(&self) {
        let bits = (1u64 << (libc::SIGHUP - 1)) | (1u64 << (libc::SIGTERM - 1));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
                .unwrap_or_default();
            let mask = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                    .unwrap_or(0)
            };
            if (mask("SigBlk:") | mask("SigCgt:")) & bits == bits {
                return;
            }
            std::thread::yield_now();
        }
        panic!("the watcher never held SIGHUP and SIGTERM");
    }

    /// Waits for it to exit, reading every event it printed; `(exit code,
    /// how long it took from now, stderr)`. Panics after `within`, or if
    /// a signal killed it.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> (i32, Duration, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < within,
                "watcher still running after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = start.elapsed();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(serde_json::from_str(&line).unwrap());
        }
        // The stderr reader ends with the pipe.
        std::thread::sleep(Duration::from_millis(20));
        let err = self.stderr();
        let code = status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            panic!("killed by signal {:?}; stderr: {err}", status.signal())
        });
        (code, took, err)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether an event is `event` of `target`.
pub(crate) fn is(event: &'static str, target: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == event && v["target"] == target
}

/// A port whose banner flips between `UP` and `DOWN` every `period`,
/// until told to stay `DOWN`.
pub(crate) struct Flapping {
    pub addr: String,
    stop: Arc<AtomicBool>,
    pub down: Arc<AtomicBool>,
}

impl Flapping {
    pub(crate) fn new(period: Duration) -> Flapping {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let down = Arc::new(AtomicBool::new(false));
        let (flag, stay_down) = (stop.clone(), down.clone());
        let start = Instant::now();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let up = !stay_down.load(Ordering::Relaxed)
                            && (start.elapsed().as_millis() / period.as_millis()).is_multiple_of(2);
                        let _ = s.write_all(if up { b"UP\r\n" } else { b"DOWN\r\n" });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Flapping { addr, stop, down }
    }
}

impl Drop for Flapping {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub(crate) fn report_json(db: &Path) -> Vec<Value> {
    let out = Command::new(PROBE)
        .args(["report", "--since", "1d", "--format", "json", "--database"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `n` tcp targets on the `ports`, round robin, with `settings` each.
pub(crate) fn targets(n: usize, ports: &[String], settings: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[target]]\nname = \"t{i}\"\nkind = \"tcp\"\naddr = \"{}\"\n{settings}\n",
                ports[i % ports.len()]
            )
        })
        .collect()
}

pub(crate) use test_support::scratch;

/// One GET of `path` on a fresh connection, with `headers` (each line
/// ending in `\r\n`): the status, the head and the body, read until the
/// listener closes (at most 10 s without a byte).
pub(crate) fn http_get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    http(addr, "GET", path, headers, "")
}

/// One `method` request of `path` with `headers` and `body` (a
/// `Content-Length` is added when there is one), as [`http_get`].
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}{length}Connection: close\r\n\r\n{body}"
    )
    .unwrap();
    let mut text = String::new();
    // A listener that refuses may reset once its reply is out.
    let _ = s.read_to_string(&mut text);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok());
    let code = code.unwrap_or_else(|| panic!("no status: {head}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (code, head.to_string(), body)
}

/// A chunked body's data, pieces joined.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Writes `targets` (TOML) after a `database` line into `dir/watch.toml`.
pub(crate) fn write_config(dir: &Path, targets: &str) -> PathBuf {
    let path = dir.join("watch.toml");
    let db = dir.join("watch.db");
    std::fs::write(
        &path,
        format!("database = {:?}\n{targets}", db.display().to_string()),
    )
    .unwrap();
    path
}

/// A port that accepts (and closes) every connection, until dropped.
pub(crate) struct Accepting {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl Accepting {
    /// Listens on `addr` ("127.0.0.1:0" for any port), answering each
    /// connection with `banner`.
    pub(crate) fn on(addr: &str, banner: &'static [u8]) -> Accepting {
        let l = TcpListener::bind(addr).unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(banner);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Accepting { addr, stop }
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The thread drops the listener within one poll.
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// `health-probe silence ARGS...`.
pub(crate) fn silence(args: &[&str]) -> std::process::Output {
    Command::new(PROBE)
        .arg("silence")
        .args(args)
        .output()
        .expect("run health-probe silence")
}

pub(crate) fn report(args: &[&str]) -> std::process::Output {
    Command::new(PROBE)
        .arg("report")
        .args(args)
        .output()
        .expect("run health-probe report")
}

/// `health-probe watch CONFIG --check-config`.
pub(crate) fn check_config(config: &Path) -> std::process::Output {
    Command::new(PROBE)
        .arg("watch")
        .arg(config)
        .arg("--check-config")
        .output()
        .expect("run health-probe watch --check-config")
}
