//! `health-probe watch` at scale: 10,000 loopback targets at a 1 s
//! interval (9 in 10 tcp checks spread over 20 listening ports, 1 in 10
//! landmark checks against one health-server), measured in the same run as
//! the classic way of checking ports, one `check_tcp` (monitoring-plugins)
//! or one `health-probe tcp` exec per check, as Nagios-style schedulers do.
//!
//! Reports the checks per second the watcher sustains, its CPU time per
//! check (from /proc, all its threads), its worst lag behind schedule, and
//! its memory; the peers' CPU per check comes from `wait4` rusage. The
//! ports count the connections they accept per 100 ms: how evenly the
//! targets' phases and jitter spread the checks. Fails if any check of the
//! healthy targets fails, the watcher falls behind, or a 100 ms holds more
//! than twice the mean.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! target/release/watch_scale --targets 10000 --seconds 20
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use health_bench::{built, process_cpu, ratio, rss_kib};
use serde_json::Value;

#[derive(Parser)]
struct Args {
    /// Targets to watch.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(10..=50_000))]
    targets: u32,
    /// Seconds measured, after a warm-up of 3 s.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(5..=600))]
    seconds: u64,
    /// Exec'd checks timed for each peer.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(10..=10_000))]
    peer_runs: u32,
    /// Internal: serve N listening ports and one health-server on
    /// 127.0.0.1, print them, and run until stdin closes.
    #[arg(long, hide = true)]
    serve: Option<usize>,
}

const LISTENERS: usize = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(n) = args.serve {
        return serve(n);
    }
    let watcher_bin = built("health-probe-watch")?;
    let probe_bin = built("health-probe")?;

    let mut peers = Peers::start()?;
    let (ports, health) = (peers.ports.clone(), peers.health);
    let dir = std::env::temp_dir().join(format!("watch-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("watch.toml");
    let listen = health_bench::free_port()?;
    std::fs::write(
        &config,
        config_text(&dir, args.targets, &ports, health, listen),
    )?;

    let mut watcher = Command::new(&watcher_bin)
        .args([
            "watch",
            config.to_str().ok_or("path")?,
            "--json",
            "--stats",
            "1s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = watcher.id();
    let (tx, stats) = mpsc::channel::<Value>();
    let out = watcher.stdout.take().ok_or("no stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["event"] == "stats" || v["event"] == "raise" {
                    let _ = tx.send(v);
                }
            }
        }
    });
    let result = measure(&args, pid, &stats);
    // After the measured window: the status page of all these targets,
    // against a /metrics scrape of the same watcher.
    let pages = result.as_ref().ok().map(|_| status_page(listen));
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = watcher.wait();

    let _ = std::fs::remove_dir_all(&dir);
    let m = result?;
    let spread = peers.spread(m.window)?;

    let port = ports[0];
    let check_tcp = Path::new("/usr/lib/nagios/plugins/check_tcp");
    let mut rows = vec![(
        format!("`health-probe watch`, {} targets", args.targets),
        m.checks_per_sec,
        m.cpu_per_check,
    )];
    let probe_cpu = exec_cpu(
        &probe_bin,
        &["tcp", &port.to_string(), "--quiet"],
        args.peer_runs,
    )?;
    rows.push(("`health-probe tcp` exec per check".into(), 0.0, probe_cpu));
    if check_tcp.is_file() {
        let cpu = exec_cpu(
            check_tcp,
            &["-H", "127.0.0.1", "-p", &port.port().to_string()],
            args.peer_runs,
        )?;
        rows.push((
            "`check_tcp` exec per check (monitoring-plugins)".into(),
            0.0,
            cpu,
        ));
    } else {
        eprintln!(
            "watch_scale: check_tcp missing (apt-get install monitoring-plugins-basic); skipped"
        );
    }
    let peer_cpu = rows.last().map(|r| r.2).unwrap_or(probe_cpu);
    drop(peers);

    println!(
        "watch_scale: {} targets at 1 s ({} tcp over {LISTENERS} ports, {} landmark), {} s measured after 3 s warm-up",
        args.targets,
        args.targets - args.targets / 10,
        args.targets / 10,
        args.seconds
    );
    println!();
    println!(
        "| how | checks/s | CPU per check | CPU for 10,000 checks/s | CPU per check vs last row |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, rate, cpu) in &rows {
        let rate = if *rate > 0.0 {
            format!("{rate:.0}")
        } else {
            "one at a time".into()
        };
        println!(
            "| {name} | {rate} | {:.1} µs | {:.2} cores | {:.3}x |",
            cpu.as_secs_f64() * 1e6,
            cpu.as_secs_f64() * 10_000.0,
            ratio(cpu.as_secs_f64(), peer_cpu.as_secs_f64()),
        );
    }
    println!();
    println!(
        "Watcher: {:.1}% of one core, RSS {:.1} MiB (peak {:.1} MiB), worst lag behind schedule {:.1} ms, {} failed checks, {} alarms.",
        m.cpu_share * 100.0,
        m.rss_kib as f64 / 1024.0,
        m.peak_kib as f64 / 1024.0,
        m.max_lag_ms,
        m.failed,
        m.raises,
    );
    let (mean, max, min) = spread.stats();
    println!();
    println!(
        "Checks per 100 ms at the {LISTENERS} ports over the measured window ({} slots): mean {mean:.0}, most {max} ({:.2}x the mean), fewest {min} ({:.2}x).",
        spread.0.len(),
        ratio(f64::from(max), mean),
        ratio(f64::from(min), mean),
    );
    if let Some(pages) = pages {
        println!();
        println!(
            "Status page with {} targets (20 requests each, after the measured window):",
            args.targets
        );
        println!();
        println!("| request | median | max | bytes | median vs `/metrics` |");
        println!("|---|---:|---:|---:|---:|");
        let scrape = pages.last().map_or(1, |p| p.1.median());
        for (path, times, bytes) in &pages {
            println!(
                "| `{path}` | {} ms | {} ms | {bytes} | {:.2}x |",
                health_bench::ms(times.median()),
                health_bench::ms(times.max()),
                ratio(times.median() as f64, scrape as f64),
            );
        }
    }
    if m.failed > 0 || m.raises > 0 {
        return Err("checks of healthy targets failed".into());
    }
    if f64::from(max) > 2.0 * mean {
        return Err(format!("checks bunch up: {max} in one 100 ms, mean {mean:.0}").into());
    }
    let expected = f64::from(args.targets);
    if m.checks_per_sec < expected * 0.95 {
        return Err(format!(
            "the watcher fell behind: {:.0} checks/s for {expected} targets at 1 s",
            m.checks_per_sec
        )
        .into());
    }
    Ok(())
}

/// Each path fetched 20 times: its response times (µs) and size.
fn status_page(listen: SocketAddr) -> Vec<(&'static str, health_bench::Samples, usize)> {
    ["/", "/?page=25", "/?fragment=1", "/metrics"]
        .into_iter()
        .map(|path| {
            let mut times = Vec::new();
            let mut bytes = 0;
            for _ in 0..20 {
                let t = Instant::now();
                let body = http_get(listen, path).unwrap_or_default();
                times.push(health_bench::micros(t.elapsed()));
                bytes = body.len();
            }
            (path, health_bench::Samples::new(times), bytes)
        })
        .collect()
}

/// One GET on a new connection: the body.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

struct Measured {
    /// When the measured window began and ended.
    window: (Instant, Instant),
    checks_per_sec: f64,
    cpu_per_check: Duration,
    cpu_share: f64,
    rss_kib: u64,
    peak_kib: u64,
    max_lag_ms: f64,
    failed: u64,
    raises: u64,
}

fn measure(args: &Args, pid: u32, stats: &mpsc::Receiver<Value>) -> Result<Measured, String> {
    let mut raises = 0;
    // Warm-up: every target has had its first check (spread over 1 s).
    let warm = Instant::now() + Duration::from_secs(3);
    let mut first = None;
    let mut last = None;
    let mut max_lag_ms: f64 = 0.0;
    let end = warm + Duration::from_secs(args.seconds);
    let mut cpu0 = None;
    while Instant::now() < end + Duration::from_millis(1500) {
        let v = match stats.recv_timeout(Duration::from_secs(3)) {
            Ok(v) => v,
            Err(_) => return Err("the watcher stopped reporting".into()),
        };
        if v["event"] == "raise" {
            raises += 1;
            continue;
        }
        let now = Instant::now();
        if now < warm {
            continue;
        }
        let sample = (
            now,
            v["checks"].as_u64().unwrap_or(0),
            v["failed"].as_u64().unwrap_or(0),
            process_cpu(pid),
        );
        if first.is_none() {
            first = Some(sample);
            cpu0 = Some(sample.3);
            continue;
        }
        max_lag_ms = max_lag_ms.max(v["max_lag_ms"].as_f64().unwrap_or(0.0));
        last = Some(sample);
        if now >= end {
            break;
        }
    }
    let (Some(a), Some(b), Some(cpu0)) = (first, last, cpu0) else {
        return Err("too few stats from the watcher".into());
    };
    let wall = b.0 - a.0;
    let checks = b.1 - a.1;
    let cpu = b.3.saturating_sub(cpu0);
    let (rss_kib, peak_kib) = rss_kib(pid).unwrap_or((0, 0));
    Ok(Measured {
        window: (warm, end),
        checks_per_sec: checks as f64 / wall.as_secs_f64(),
        cpu_per_check: cpu / checks.max(1) as u32,
        cpu_share: cpu.as_secs_f64() / wall.as_secs_f64(),
        rss_kib,
        peak_kib,
        max_lag_ms,
        failed: b.2,
        raises,
    })
}

/// Average user + system CPU of one exec of `program args` (wait4 rusage),
/// over `runs` runs one after another; every run must exit 0.
fn exec_cpu(program: &Path, args: &[&str], runs: u32) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    for _ in 0..runs {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: rusage is plain old data; zeroed is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our unreaped child; `status`, `usage` are valid.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        drop(child);
        if r != pid || !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            return Err(format!("{} {args:?} failed", program.display()));
        }
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        total += tv(usage.ru_utime) + tv(usage.ru_stime);
    }
    Ok(total / runs)
}

fn config_text(
    dir: &Path,
    targets: u32,
    ports: &[SocketAddr],
    health: SocketAddr,
    listen: SocketAddr,
) -> String {
    let mut s = format!(
        // Every target polled, the landmark ones too (`stream = false`):
        // this measures checks; `watch_stream` measures streams.
        "database = {:?}\nmax_in_flight = 512\nhttp_listen = \"{listen}\"\n\n[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\nstream = false\n",
        dir.join("watch.db").display().to_string()
    );
    for i in 0..targets {
        if i % 10 == 9 {
            s.push_str(&format!(
                "\n[[target]]\nname = \"landmark-{i}\"\nkind = \"landmark\"\naddr = \"{health}\"\n"
            ));
        } else {
            let port = ports[i as usize % ports.len()];
            s.push_str(&format!(
                "\n[[target]]\nname = \"tcp-{i}\"\nkind = \"tcp\"\naddr = \"{port}\"\n"
            ));
        }
    }
    s
}

/// The listening side, in a child process of its own so its CPU is not
/// counted as the watcher's; ended when dropped (its stdin closes).
struct Peers {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// When the child began counting (it says so as it prints the ports).
    started: Instant,
    ports: Vec<SocketAddr>,
    health: SocketAddr,
}

/// Connections accepted per 100 ms, over a window.
struct Spread(Vec<u32>);

impl Spread {
    /// Mean, most and fewest per 100 ms.
    fn stats(&self) -> (f64, u32, u32) {
        let n = self.0.len().max(1) as f64;
        let mean = self.0.iter().map(|c| f64::from(*c)).sum::<f64>() / n;
        let max = self.0.iter().copied().max().unwrap_or(0);
        let min = self.0.iter().copied().min().unwrap_or(0);
        (mean, max, min)
    }
}

impl Peers {
    fn start() -> Result<Peers, Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve", &LISTENERS.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        stdout.read_line(&mut line)?;
        let started = Instant::now();
        let mut ports: Vec<SocketAddr> = line
            .split_whitespace()
            .map(|a| a.parse())
            .collect::<Result<_, _>>()?;
        let health = ports.pop().ok_or("no health address")?;
        Ok(Peers {
            child,
            stdin,
            stdout,
            started,
            ports,
            health,
        })
    }

    /// The connections the ports accepted per 100 ms within `window`.
    fn spread(&mut self, window: (Instant, Instant)) -> Result<Spread, Box<dyn std::error::Error>> {
        let stdin = self.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "spread")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let counts: Vec<u32> = line
            .split_whitespace()
            .map(|c| c.parse())
            .collect::<Result<_, _>>()?;
        let slot =
            |t: Instant| (t.saturating_duration_since(self.started).as_millis() / 100) as usize;
        // Whole slots only: the first and last may be cut by the window.
        let (from, to) = (slot(window.0) + 1, slot(window.1).min(counts.len()));
        Ok(Spread(counts.get(from..to).unwrap_or_default().to_vec()))
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// 100 ms slots counted: an hour.
const SLOTS: usize = 36_000;

fn serve(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let counts: Arc<Vec<AtomicU32>> = Arc::new((0..SLOTS).map(|_| AtomicU32::new(0)).collect());
        let start = Instant::now();
        let mut addrs = Vec::new();
        for _ in 0..n {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(l.local_addr()?.to_string());
            let counts = Arc::clone(&counts);
            tokio::spawn(async move {
                loop {
                    // Accept, count and close: a port check needs nothing
                    // more.
                    if let Ok((s, _)) = l.accept().await {
                        let k = (start.elapsed().as_millis() / 100) as usize;
                        if let Some(c) = counts.get(k) {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                        drop(s);
                    }
                }
            });
        }
        // A main thread that answers every ask, as a live service's does.
        let (asks, rx) = health_server::channel();
        std::thread::spawn(move || {
            while let Some(ask) = asks.recv_blocking() {
                ask.answer(health_server::Landmark::ok("bench"));
            }
        });
        let server = health_server::Builder::new()
            .bind("127.0.0.1:0".parse()?)
            .spawn(rx)?;
        addrs.push(server.local_addr().to_string());
        let mut out = std::io::stdout();
        writeln!(out, "{}", addrs.join(" "))?;
        out.flush()?;
        // Until the parent closes our stdin (or dies); `spread` asks for
        // the counts so far, one line.
        let counts = Arc::clone(&counts);
        tokio::task::spawn_blocking(move || {
            for line in std::io::stdin().lines().map_while(Result::ok) {
                if line.trim() == "spread" {
                    let k = ((start.elapsed().as_millis() / 100) as usize).min(SLOTS);
                    let said: Vec<String> = counts[..k]
                        .iter()
                        .map(|c| c.load(Ordering::Relaxed).to_string())
                        .collect();
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", said.join(" "));
                    let _ = out.flush();
                }
            }
        })
        .await?;
        drop(server);
        Ok(())
    })
}
