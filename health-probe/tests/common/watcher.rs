//! A running `health-probe watch --json` and its peers, for the watcher's
//! integration tests.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::PROBE;

/// The watcher with `--json`, its stdout lines collected on a thread.
pub struct Watcher {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    pub fn start(config: &Path) -> Watcher {
        let mut command = Command::new(PROBE);
        command.arg("watch").arg(config);
        Watcher::spawn(command)
    }

    /// Runs `command` (the watcher, or a wrapper that execs it), adding
    /// `--json`.
    pub fn spawn(mut command: Command) -> Watcher {
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
        Watcher { child, lines }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits until the process holds or handles SIGHUP and SIGTERM (from
    /// `/proc/PID/status`): before that it is still the loader's, in the
    /// microseconds before any code of ours runs.
    pub fn await_signals_held(&self) {
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

    /// Waits for a line for which `pred` holds, collecting every line.
    pub fn wait_for(&self, seen: &mut Vec<Value>, within: Duration, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("not seen within {within:?}; seen: {seen:?}"));
            let v: Value = serde_json::from_str(&line).unwrap();
            let hit = pred(&v);
            seen.push(v);
            if hit {
                return;
            }
        }
    }

    /// Everything printed until it exits; `(exit code, how long it took
    /// from now, stderr)`. Panics after `within`.
    pub fn wait_exit(mut self, seen: &mut Vec<Value>, within: Duration) -> (i32, Duration, String) {
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
            seen.push(serde_json::from_str(&line).unwrap());
        }
        let mut err = String::new();
        use std::io::Read;
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
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

/// A port whose banner flips between `UP` and `DOWN` every `period`,
/// until told to stay `DOWN`.
pub struct Flapping {
    pub addr: String,
    stop: Arc<AtomicBool>,
    pub down: Arc<AtomicBool>,
}

impl Flapping {
    pub fn new(period: Duration) -> Flapping {
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
                            && (start.elapsed().as_millis() / period.as_millis()) % 2 == 0;
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

pub fn report_json(db: &Path) -> Vec<Value> {
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
pub fn targets(n: usize, ports: &[String], settings: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[target]]\nname = \"t{i}\"\nkind = \"tcp\"\naddr = \"{}\"\n{settings}\n",
                ports[i % ports.len()]
            )
        })
        .collect()
}
