//! `health-probe watch` with a config at the documented maximum, 100,000
//! targets (90,000 tcp, 10,000 landmark; one line each of name, kind,
//! address and interval, as an operator's generator would write them).
//!
//! Measured, each the median of `--runs`:
//! - `--check-config`: read and validate, wall time;
//! - the same file read by Python's standard TOML reader (`tomllib`), the
//!   peer: the cost of merely reading this much TOML in a common tool, with
//!   no validation;
//! - start-up: from spawn to the watcher's `start` event, which comes once
//!   every target's task runs (and its RSS then);
//! - a reload that changes every target: SIGHUP to its `reload` event;
//! - SIGTERM sent 100 ms into such a reload: to exit.
//!
//! ```text
//! cargo build --release --workspace --bins
//! target/release/watch_config --targets 100000 --runs 3
//! ```

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use health_bench::{built, ratio, rss_kib};

#[derive(Parser)]
struct Args {
    /// Targets in the config.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(100..=100_000))]
    targets: u32,
    /// Runs of each measurement; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let watcher = built("health-probe-watch")?;
    let dir = std::env::temp_dir().join(format!("watch-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("watch.toml");
    let config_text = write_config(&dir, &config, args.targets, "1h")?;
    let size = config_text.len();

    let check = median(args.runs, || {
        let mut c = Command::new(&watcher);
        c.args(["watch", "--check-config"]).arg(&config);
        timed(c)
    })?;
    let python = median(args.runs, || {
        let mut c = Command::new("python3");
        c.args([
            "-c",
            "import sys, tomllib; tomllib.load(open(sys.argv[1], 'rb'))",
        ])
        .arg(&config);
        timed(c)
    })?;

    let mut starts = Vec::new();
    let mut reloads = Vec::new();
    let mut stops = Vec::new();
    let mut rss = 0;
    for _ in 0..args.runs {
        // Start-up, then a full reload.
        std::fs::write(&config, &config_text)?;
        let _ = std::fs::remove_file(dir.join("watch.db"));
        let started = Instant::now();
        let mut w = Running::spawn(&watcher, &config)?;
        w.wait_for("\"start\"", Duration::from_secs(120))?;
        starts.push(started.elapsed());
        rss = rss.max(rss_kib(w.child.id()).map_or(0, |(now, _)| now));
        std::fs::write(&config, config_text.replace("\"1h\"", "\"2h\""))?;
        let sent = Instant::now();
        w.signal(libc::SIGHUP);
        w.wait_for("\"reload\"", Duration::from_secs(120))?;
        reloads.push(sent.elapsed());
        // Another reload, and SIGTERM in the middle of it.
        std::fs::write(&config, &config_text)?;
        w.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(100));
        let sent = Instant::now();
        w.signal(libc::SIGTERM);
        w.wait_exit(Duration::from_secs(60))?;
        stops.push(sent.elapsed());
    }
    let mid = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (start, reload, stop) = (mid(&mut starts), mid(&mut reloads), mid(&mut stops));
    let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "{} targets, a {:.1} MB config; median of {} runs.",
        args.targets,
        size as f64 / 1e6,
        args.runs
    );
    println!();
    println!("| what | time | vs reading the file with Python's `tomllib` |");
    println!("|---|---:|---:|");
    let row = |what: &str, d: Duration| {
        println!(
            "| {what} | {} | {:.2}x |",
            s(d),
            ratio(d.as_secs_f64(), python.as_secs_f64())
        );
    };
    row("`health-probe watch --check-config`", check);
    row("start-up, spawn to every target running", start);
    row("reload changing every target, SIGHUP to done", reload);
    row("SIGTERM 100 ms into such a reload, to exit", stop);
    row("Python `tomllib.load` of the same file (peer)", python);
    println!();
    println!("Watcher RSS once running: {} MiB.", rss / 1024);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Writes `n` targets at `interval` into `config` (history beside it); the
/// text written.
fn write_config(
    dir: &Path,
    config: &Path,
    n: u32,
    interval: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    use std::fmt::Write;
    let mut text = format!(
        "database = {:?}\n\n",
        dir.join("watch.db").display().to_string()
    );
    for i in 0..n {
        // Closed loopback ports: nothing is checked within the hour anyway.
        if i % 10 == 0 {
            writeln!(
                text,
                "[[target]]\nname = \"landmark-{i}\"\nkind = \"landmark\"\naddr = \"127.0.0.1:{}\"\ninterval = \"{interval}\"\n",
                20_000 + i % 5
            )?;
        } else {
            writeln!(
                text,
                "[[target]]\nname = \"tcp-{i}\"\nkind = \"tcp\"\naddr = \"127.0.0.1:{}\"\ninterval = \"{interval}\"\n",
                21_000 + i % 20
            )?;
        }
    }
    std::fs::write(config, &text)?;
    Ok(text)
}

/// How long `command` takes to succeed.
fn timed(mut command: Command) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let out = command.output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(start.elapsed())
}

fn median(
    runs: u32,
    mut f: impl FnMut() -> Result<Duration, Box<dyn std::error::Error>>,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut v = (0..runs).map(|_| f()).collect::<Result<Vec<_>, _>>()?;
    v.sort();
    Ok(v[v.len() / 2])
}

/// A watcher with `--json`, its stdout read on a thread.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn spawn(watcher: &Path, config: &Path) -> std::io::Result<Running> {
        let mut child = Command::new(watcher)
            .arg("watch")
            .arg(config)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Running { child, lines })
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for a line with `"event":EVENT`.
    fn wait_for(&self, event: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let wanted = format!("\"event\":{event}");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(&wanted) => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(format!("no {event} event within {within:?}")),
            }
        }
    }

    fn wait_exit(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("watcher exited with {status}"))
                };
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Err(format!("watcher still running {within:?} after SIGTERM"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
