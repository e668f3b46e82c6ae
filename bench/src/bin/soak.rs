//! A bounded soak: minutes of mixed load and abuse against the example
//! service, reporting its RSS and open fds over time.
//!
//! Starts `examples/landmark_service` with its native, agent and HTTP
//! endpoints, then runs at once, until `--minutes` are up:
//! - checkers on all three endpoints, a new connection per check;
//! - connections that never send (hundreds; on the native and HTTP ports
//!   the kernel holds them and the server never accepts them, on the agent
//!   port they are answered and closed, and each is replaced when closed);
//! - garbage, half frames and absurd lengths;
//! - slow readers that send checks and never read the replies;
//! - every 20 s, the service's main loop hangs for 1.5 s (`HANG 1500`), and
//!   its landmark cycles through ok, degraded, drain.
//!
//! Every 5 s a row: the service's RSS and fds, checks answered / failed as
//! expected / wrong, and latency. At the end it fails (exit 1) if a check got a
//! wrong verdict, a check outlived its deadline, RSS grew beyond a bound, or
//! fds did not return to their baseline once the abuse stopped.
//!
//! ```text
//! cargo build --release --workspace --bins --examples && target/release/soak --minutes 3
//! ```

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use health_bench::{built, free_port, open_fds, rss_kib, KillOnDrop, Samples};
use health_proto::codec::FrameCodec;
use health_proto::{CheckRequest, Request, Response, State};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

/// Soak: mixed load and abuse against landmark_service, RSS and fds over time.
#[derive(Parser)]
struct Args {
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=120))]
    minutes: u64,
    /// Idle connections held open at once.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(0..=2000))]
    idle: u16,
}

/// The server's answer deadline (500 ms) plus slack for a loaded machine.
const CHECK_DEADLINE: Duration = Duration::from_millis(1500);
/// How often a row is printed.
const SAMPLE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Counters {
    /// Verdicts that matched the state the soak had set.
    right: AtomicU64,
    /// `fail` while the main loop was hung: the verdict we want then.
    hung_fail: AtomicU64,
    /// A state other than the one set (outside a hang).
    wrong: AtomicU64,
    /// No verdict within CHECK_DEADLINE.
    late: AtomicU64,
    /// Refused or reset (the connection limit at work), not a verdict.
    refused: AtomicU64,
    agent: AtomicU64,
    http: AtomicU64,
    abuse: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

/// What the soak has told the service, so checkers know the right verdict.
struct Expected {
    state: Mutex<State>,
    /// Set while a HANG is in progress (plus a margin on each side).
    hung: std::sync::atomic::AtomicBool,
    /// Bumped before and after each SET: odd while a change is in flight.
    epoch: AtomicU64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let bin = built("examples/landmark_service")?;
    let (listen, health, agent, http) = (free_port()?, free_port()?, free_port()?, free_port()?);
    let service = KillOnDrop(
        Command::new(bin)
            .args([
                "--listen",
                &listen.to_string(),
                "--health",
                &health.to_string(),
            ])
            .args(["--agent", &agent.to_string(), "--http", &http.to_string()])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let pid = service.0.id();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(soak(args, pid, listen, health, agent, http))
}

async fn soak(
    args: Args,
    pid: u32,
    listen: SocketAddr,
    health: SocketAddr,
    agent: SocketAddr,
    http: SocketAddr,
) -> Result<(), Box<dyn std::error::Error>> {
    // Up within 10 s.
    let up = Instant::now();
    while native_check(health).await.is_err() {
        if up.elapsed() > Duration::from_secs(10) {
            return Err("landmark_service did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (base_rss, _) = rss_kib(pid).ok_or("no /proc status for the service")?;
    let base_fds = open_fds(pid).ok_or("no /proc fds for the service")?;
    let counters = Arc::new(Counters::default());
    let expected = Arc::new(Expected {
        state: Mutex::new(State::Ok),
        hung: false.into(),
        epoch: AtomicU64::new(0),
    });
    let end = Instant::now() + Duration::from_secs(args.minutes * 60);
    let mut tasks = Vec::new();

    for _ in 0..6 {
        tasks.push(tokio::spawn(checker(
            health,
            end,
            counters.clone(),
            expected.clone(),
        )));
    }
    tasks.push(tokio::spawn(side_checker(
        agent,
        http,
        end,
        counters.clone(),
    )));
    tasks.push(tokio::spawn(idler(
        health,
        args.idle,
        end,
        counters.clone(),
    )));
    tasks.push(tokio::spawn(garbage(health, end, counters.clone())));
    tasks.push(tokio::spawn(slow_readers(health, end, counters.clone())));
    tasks.push(tokio::spawn(conductor(listen, end, expected.clone())));

    println!("| t (s) | RSS MiB | fds | right | fail while hung | wrong | late | refused | agent | http | abuse conns | p99 ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let start = Instant::now();
    let mut peak_rss = base_rss;
    while Instant::now() < end {
        tokio::time::sleep(SAMPLE.min(end.saturating_duration_since(Instant::now()))).await;
        let (rss, _) = rss_kib(pid).ok_or("the service died")?;
        peak_rss = peak_rss.max(rss);
        let lat = Samples::new(std::mem::take(&mut *counters.latencies_us.lock().unwrap()));
        let c = &counters;
        println!(
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            start.elapsed().as_secs(),
            rss as f64 / 1024.0,
            open_fds(pid).unwrap_or(0),
            c.right.load(Ordering::Relaxed),
            c.hung_fail.load(Ordering::Relaxed),
            c.wrong.load(Ordering::Relaxed),
            c.late.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
            c.agent.load(Ordering::Relaxed),
            c.http.load(Ordering::Relaxed),
            c.abuse.load(Ordering::Relaxed),
            lat.percentile(0.99) as f64 / 1000.0,
        );
    }
    for t in tasks {
        let _ = t.await;
    }
    // The abusers are gone; the server closes what they left within its read
    // timeout (2 s).
    let settle = Instant::now();
    let mut fds = open_fds(pid).unwrap_or(usize::MAX);
    while fds > base_fds + 2 && settle.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        fds = open_fds(pid).unwrap_or(usize::MAX);
    }
    let (final_rss, _) = rss_kib(pid).ok_or("the service died")?;
    println!();
    println!(
        "Baseline {:.1} MiB RSS, {base_fds} fds; peak {:.1} MiB; after the soak {:.1} MiB, {fds} fds.",
        base_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        final_rss as f64 / 1024.0
    );
    let mut failures = Vec::new();
    if counters.wrong.load(Ordering::Relaxed) > 0 {
        failures.push("some checks got a wrong verdict".to_string());
    }
    if counters.late.load(Ordering::Relaxed) > 0 {
        failures.push(format!("some checks took longer than {CHECK_DEADLINE:?}"));
    }
    if counters.hung_fail.load(Ordering::Relaxed) == 0 {
        failures.push("no check reported the hung main loop".into());
    }
    // Bound: the abuse (idle, slow readers) is capped by admission's
    // limits, each connection costing the server a few KiB; 64 MiB over
    // baseline would mean something grows without bound.
    if peak_rss > base_rss + 64 * 1024 {
        failures.push(format!("RSS grew to {peak_rss} KiB from {base_rss} KiB"));
    }
    if fds > base_fds + 2 {
        failures.push(format!("{fds} fds remain open, baseline {base_fds}"));
    }
    if failures.is_empty() {
        println!("Soak passed: every verdict right and in time, memory and fds bounded.");
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}

async fn native_check(addr: SocketAddr) -> Result<State, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let request = Request::Check(CheckRequest::default())
        .to_frame(9)
        .to_bytes();
    stream
        .write_all(&request)
        .await
        .map_err(|e| e.to_string())?;
    let mut frames = FramedRead::new(stream, FrameCodec::default());
    let frame = frames
        .next()
        .await
        .ok_or("closed")?
        .map_err(|e| e.to_string())?;
    match Response::from_frame(&frame).map_err(|e| e.to_string())? {
        Response::Landmark(reply) => Ok(reply.state),
        Response::Error(e) => Err(e.message),
        Response::ConnectionReport(_) => Err("a connection report, not a landmark".into()),
    }
}

async fn checker(addr: SocketAddr, end: Instant, c: Arc<Counters>, expected: Arc<Expected>) {
    while Instant::now() < end {
        let hung_before = expected.hung.load(Ordering::SeqCst);
        let epoch = expected.epoch.load(Ordering::SeqCst);
        let want = *expected.state.lock().unwrap();
        let t = Instant::now();
        let got = tokio::time::timeout(CHECK_DEADLINE, native_check(addr)).await;
        let hung = hung_before || expected.hung.load(Ordering::SeqCst);
        // A check that overlapped a SET may rightly see either state.
        let changed = epoch % 2 == 1 || expected.epoch.load(Ordering::SeqCst) != epoch;
        match got {
            Err(_) => {
                c.late.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) => {
                c.refused.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(State::Fail)) if hung => {
                c.hung_fail.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(s)) if s == want || changed || hung => {
                c.right.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(_)) => {
                c.wrong.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Ok(mut l) = c.latencies_us.lock() {
            if l.len() < 1_000_000 {
                l.push(t.elapsed().as_micros() as u64);
            }
        }
    }
}

/// Agent-check and HTTP checks, a new connection each, a few per second.
async fn side_checker(agent: SocketAddr, http: SocketAddr, end: Instant, c: Arc<Counters>) {
    while Instant::now() < end {
        let a = async {
            let mut s = TcpStream::connect(agent).await.ok()?;
            let mut line = String::new();
            s.read_to_string(&mut line).await.ok()?;
            line.ends_with('\n').then_some(())
        };
        if tokio::time::timeout(CHECK_DEADLINE, a)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            c.agent.fetch_add(1, Ordering::Relaxed);
        }
        let h = async {
            let mut s = TcpStream::connect(http).await.ok()?;
            s.write_all(b"GET /readyz HTTP/1.1\r\nHost: soak\r\n\r\n")
                .await
                .ok()?;
            let mut r = BufReader::new(s);
            let mut status = String::new();
            r.read_line(&mut status).await.ok()?;
            status.starts_with("HTTP/1.1 ").then_some(())
        };
        if tokio::time::timeout(CHECK_DEADLINE, h)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            c.http.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Holds `n` connections that never send; when the server closes one at its
/// read timeout, opens another.
async fn idler(addr: SocketAddr, n: u16, end: Instant, c: Arc<Counters>) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let c = c.clone();
        set.spawn(async move {
            while Instant::now() < end {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                c.abuse.fetch_add(1, Ordering::Relaxed);
                let mut b = [0u8; 64];
                // Returns when the server closes it or at the end.
                let left = end.saturating_duration_since(Instant::now());
                let _ = tokio::time::timeout(left, s.read(&mut b)).await;
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Garbage, half frames and absurd lengths, one connection each.
async fn garbage(addr: SocketAddr, end: Instant, c: Arc<Counters>) {
    let check = Request::Check(CheckRequest::default())
        .to_frame(3)
        .to_bytes();
    let mut huge = check.clone();
    huge[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    let inputs: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        huge,
        check[..10].to_vec(),
        (0..=255u8).cycle().take(4096).collect(),
        [&check[..], b"{not json"].concat(),
    ];
    let mut i = 0;
    while Instant::now() < end {
        let input = &inputs[i % inputs.len()];
        i += 1;
        if let Ok(mut s) = TcpStream::connect(addr).await {
            c.abuse.fetch_add(1, Ordering::Relaxed);
            let _ = s.write_all(input).await;
            let mut sink = [0u8; 512];
            let _ = tokio::time::timeout(Duration::from_secs(3), s.read(&mut sink)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connections that send many checks and never read a reply, in batches.
async fn slow_readers(addr: SocketAddr, end: Instant, c: Arc<Counters>) {
    let check = Request::Check(CheckRequest::default())
        .to_frame(4)
        .to_bytes();
    let burst: Vec<u8> = check
        .iter()
        .copied()
        .cycle()
        .take(check.len() * 2000)
        .collect();
    while Instant::now() < end {
        let mut held = Vec::new();
        for _ in 0..20 {
            if let Ok(mut s) = TcpStream::connect(addr).await {
                c.abuse.fetch_add(1, Ordering::Relaxed);
                let _ = tokio::time::timeout(Duration::from_millis(200), s.write_all(&burst)).await;
                held.push(s);
            }
        }
        tokio::time::sleep(
            Duration::from_secs(4).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
        drop(held);
    }
}

/// Drives the service's state through its line protocol: ok, degraded,
/// drain, and a 1.5 s hang every 20 s.
async fn conductor(listen: SocketAddr, end: Instant, expected: Arc<Expected>) {
    let Ok(stream) = TcpStream::connect(listen).await else {
        return;
    };
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let states = [State::Degraded, State::Drain, State::Ok];
    let mut n = 0usize;
    while Instant::now() < end {
        tokio::time::sleep(
            Duration::from_secs(5).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
        n += 1;
        if n.is_multiple_of(4) {
            // Checks started from just before until just after the hang may
            // rightly see `fail`.
            expected.hung.store(true, Ordering::SeqCst);
            let _ = w.write_all(b"HANG 1500\n").await;
            let _ = lines.next_line().await;
            tokio::time::sleep(Duration::from_millis(600)).await;
            expected.hung.store(false, Ordering::SeqCst);
        } else {
            let s = states[n % states.len()];
            expected.epoch.fetch_add(1, Ordering::SeqCst);
            let cmd = format!("SET {s} soak\n");
            let _ = w.write_all(cmd.as_bytes()).await;
            let _ = lines.next_line().await;
            *expected.state.lock().unwrap() = s;
            expected.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }
}
