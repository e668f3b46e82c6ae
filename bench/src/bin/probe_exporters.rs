//! `/probe` through the watcher against prometheus-blackbox-exporter
//! (Debian's package), the same targets in the same run.
//!
//! Both exporters run as child processes with a config of their own: the
//! watcher with `http_listen` and one idle target, blackbox_exporter with
//! the `tcp_connect` and `icmp` modules. N clients each keep one HTTP/1.1
//! connection open, as Prometheus does, and ask `/probe` one request after
//! another for a fixed time per round; rounds alternate between the
//! exporters so that drift on the machine hits both. The targets are a
//! loopback port that accepts and closes (tcp) and 127.0.0.1 (ping, when
//! this process may send ICMP: as root). Reported per exporter and module:
//! probes/s, the exporter's CPU per probe and probes per CPU-second, latency
//! p50/p99 over all rounds, and its peak RSS.
//!
//! ```text
//! cargo build --release --workspace --bins && target/release/probe_exporters --clients 8 --seconds 5 --rounds 3
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use health_bench::{built, free_port, ms, process_cpu, ratio, rss_kib, KillOnDrop, Samples};

/// /probe: the watcher against blackbox_exporter.
#[derive(Parser)]
struct Args {
    /// Concurrent clients, each on one kept-alive connection.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    clients: u16,
    /// Length of each measured round, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Rounds per exporter and module, alternating between the exporters.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    rounds: u16,
}

/// One exporter under test.
struct Exporter {
    name: &'static str,
    process: KillOnDrop,
    addr: SocketAddr,
    /// Its module name for tcp and for ping.
    modules: [&'static str; 2],
    _dir: Scratch,
}

/// A scratch folder, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("probe-exporters-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    Scratch(dir)
}

fn start(name: &'static str, mut command: Command, addr: SocketAddr, dir: Scratch) -> Exporter {
    let process = KillOnDrop(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}")),
    );
    let t = Instant::now();
    while get(addr, "/metrics").is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{name} did not answer on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let modules = if name == "watcher" {
        ["tcp", "ping"]
    } else {
        ["tcp_connect", "icmp"]
    };
    Exporter {
        name,
        process,
        addr,
        modules,
        _dir: dir,
    }
}

fn watcher() -> Exporter {
    let dir = scratch("watcher");
    let addr = free_port().expect("a free port");
    let config = dir.0.join("watch.toml");
    std::fs::write(
        &config,
        format!(
            "database = {:?}\nhttp_listen = \"{addr}\"\n[[target]]\nname = \"idle\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"1h\"\n",
            dir.0.join("watch.db").display().to_string()
        ),
    )
    .expect("write the watcher's config");
    let mut command = Command::new(built("health-probe-watch").unwrap_or_else(|e| panic!("{e}")));
    command.arg("watch").arg(&config).arg("--plain");
    start("watcher", command, addr, dir)
}

fn blackbox() -> Exporter {
    let dir = scratch("blackbox");
    let addr = free_port().expect("a free port");
    let config = dir.0.join("blackbox.yml");
    std::fs::write(
        &config,
        "modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 5s\n  icmp:\n    prober: icmp\n    timeout: 5s\n    icmp:\n      preferred_ip_protocol: ip4\n",
    )
    .expect("write blackbox.yml");
    let mut command = Command::new("prometheus-blackbox-exporter");
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={addr}"));
    start("blackbox_exporter", command, addr, dir)
}

/// One GET on a new connection: the body of a 200.
fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(s);
    let (code, body) = read_reply(&mut reader).ok()?;
    (code == 200).then_some(body)
}

/// One HTTP/1.1 reply, with a `Content-Length` body or a chunked one.
fn read_reply(r: &mut impl BufRead) -> std::io::Result<(u16, String)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    r.read_line(&mut line)?;
    let code = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or_else(|| bad("bad header"))?;
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.trim().eq_ignore_ascii_case("chunked");
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("chunk size"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let mut b = vec![0; length.ok_or_else(|| bad("no length"))?];
        r.read_exact(&mut b)?;
        body = b;
    }
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// What one round measured.
struct Round {
    probes: u64,
    failed: u64,
    cpu: Duration,
    took: Duration,
    latencies: Vec<u64>,
}

/// `clients` kept-alive connections asking `path` for `seconds`.
fn round(e: &Exporter, path: &str, clients: u16, seconds: u64) -> Round {
    let stop = Arc::new(AtomicBool::new(false));
    let pid = e.process.0.id();
    let cpu_before = process_cpu(pid);
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, path, stop) = (e.addr, path.to_string(), stop.clone());
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).expect("connect to the exporter");
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.set_nodelay(true).unwrap();
                let mut writer = s.try_clone().unwrap();
                let mut reader = BufReader::new(s);
                let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
                let (mut latencies, mut failed) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    writer.write_all(request.as_bytes()).expect("send");
                    let (code, body) = read_reply(&mut reader).expect("a reply");
                    latencies.push(health_bench::micros(t.elapsed()));
                    if code != 200 || !body.contains("\nprobe_success 1") {
                        failed += 1;
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut r = Round {
        probes: 0,
        failed: 0,
        cpu: Duration::ZERO,
        took: Duration::ZERO,
        latencies: Vec::new(),
    };
    for w in workers {
        let (latencies, failed) = w.join().expect("a client");
        r.probes += latencies.len() as u64;
        r.failed += failed;
        r.latencies.extend(latencies);
    }
    r.took = start.elapsed();
    r.cpu = process_cpu(pid).saturating_sub(cpu_before);
    r
}

/// A loopback port that accepts and closes every connection.
fn accepting() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind the target");
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    addr
}

fn main() {
    let args = Args::parse();
    let tcp_target = accepting();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let exporters = [watcher(), blackbox()];
    let mut kinds = vec![(0, "tcp", tcp_target.to_string())];
    if root {
        kinds.push((1, "ping", "127.0.0.1".to_string()));
    }
    println!(
        "{} clients on kept-alive connections, {} s rounds, {} rounds per exporter and module, alternating.",
        args.clients, args.seconds, args.rounds
    );
    println!();
    println!("| module | exporter | probes/s | CPU per probe | probes per CPU-second | p50 | p99 | peak RSS | failed |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    for (i, kind, target) in kinds {
        // Warm both up: connections, caches, the first allocations.
        for e in &exporters {
            let path = format!("/probe?module={}&target={target}", e.modules[i]);
            round(e, &path, args.clients, 1);
        }
        let mut totals: Vec<(u64, u64, Duration, Duration, Vec<u64>)> = exporters
            .iter()
            .map(|_| (0, 0, Duration::ZERO, Duration::ZERO, Vec::new()))
            .collect();
        for _ in 0..args.rounds {
            for (e, t) in exporters.iter().zip(&mut totals) {
                let path = format!("/probe?module={}&target={target}", e.modules[i]);
                let r = round(e, &path, args.clients, args.seconds);
                t.0 += r.probes;
                t.1 += r.failed;
                t.2 += r.cpu;
                t.3 += r.took;
                t.4.extend(r.latencies);
            }
        }
        let mut per_cpu = Vec::new();
        for (e, (probes, failed, cpu, took, latencies)) in exporters.iter().zip(totals) {
            let samples = Samples::new(latencies);
            let rate = probes as f64 / took.as_secs_f64();
            let per_cpu_second = probes as f64 / cpu.as_secs_f64().max(1e-9);
            let peak = rss_kib(e.process.0.id()).map_or(0, |(_, hwm)| hwm);
            println!(
                "| {kind} | {} | {rate:.0} | {:.1} µs | {per_cpu_second:.0} | {} ms | {} ms | {:.1} MiB | {failed} |",
                e.name,
                cpu.as_secs_f64() * 1e6 / probes.max(1) as f64,
                ms(samples.median()),
                ms(samples.percentile(0.99)),
                peak as f64 / 1024.0,
            );
            per_cpu.push((
                per_cpu_second,
                samples.median(),
                samples.percentile(0.99),
                peak,
            ));
        }
        summary.push((kind, per_cpu));
    }
    println!();
    for (kind, s) in summary {
        let (w, b) = (&s[0], &s[1]);
        println!(
            "- {kind}: the watcher does {:.2}x blackbox_exporter's probes per CPU-second; p50 {:.2}x, p99 {:.2}x its latency; peak RSS {:.2}x.",
            ratio(w.0, b.0),
            ratio(w.1 as f64, b.1 as f64),
            ratio(w.2 as f64, b.2 as f64),
            ratio(w.3 as f64, b.3 as f64),
        );
    }
    if !root {
        println!("- ping: not measured (ICMP needs root here).");
    }
}
