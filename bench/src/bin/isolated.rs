//! The cost of an isolated check: one client making one check at a time,
//! each over a new connection, as keepalived, HAProxy and Kubernetes check
//! a server every few seconds. Nothing batches; every wake-up is paid.
//!
//! Every server runs in a child process of its own (`isolated --serve
//! PEER`); the same client, on a single-threaded runtime in this process,
//! connects, sends its request, reads the whole response and closes.
//! Rounds alternate between the peers so that drift on the machine hits
//! them all. Reported per peer:
//! - the server's CPU per check, all its threads (the main thread's answer
//!   included), from `/proc/PID/task/*/schedstat`;
//! - latency p50/p99 seen by the client, connect to last byte;
//! - syscalls per check, from `strace -c -f` attached for a run of its own
//!   (strace slows a process down, so its run is not timed).
//!
//! ```text
//! cargo build --release -p health-bench && target/release/isolated --checks 1000 --rounds 15
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use health_bench::peer::{
    announce, connect, exit_with_parent, grpc_check, landmark_check, serve_endpoint, serve_grpc,
    BoxError, ChildServer,
};
use health_bench::{ms, process_cpu_precise, ratio, Samples};
use health_proto::{CheckRequest, Landmark, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Isolated checks: one at a time, a new connection each, against every
/// peer in the same run.
#[derive(Parser)]
struct Args {
    /// Checks per peer per round.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    checks: u32,
    /// Rounds, alternating between the peers (short rounds, many of them:
    /// the median round resists the machine's drift).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u16).range(1..=100))]
    rounds: u16,
    /// Checks per peer counted under `strace -c -f`; 0 skips the count.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    strace_checks: u32,
    /// Internal: run one peer's server on 127.0.0.1, print its addresses,
    /// and serve until stdin closes.
    #[arg(long, hide = true)]
    serve: Option<Peer>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Peer {
    /// health-server's native endpoint; the main loop is a task of the
    /// service's multi-threaded tokio runtime (as `landmark_service`).
    NativeTokio,
    /// health-server's native endpoint in a service with no runtime: its
    /// main thread blocks in `recv_blocking` (as `plain_thread_service`).
    NativeThread,
    /// health-server's HTTP `/healthz`, tokio host.
    HttpTokio,
    /// An axum 0.8 `/healthz` route answering a fixed 200 (asks no main
    /// thread), on a default multi-threaded runtime.
    Axum,
    /// tonic-health's grpc.health.v1 server.
    Grpc,
    /// A blocking, single-threaded accept/read/write/close loop with a
    /// fixed reply: kernel TCP work plus 4 syscalls.
    Floor,
}

const PEERS: [Peer; 6] = [
    Peer::NativeTokio,
    Peer::NativeThread,
    Peer::HttpTokio,
    Peer::Axum,
    Peer::Grpc,
    Peer::Floor,
];

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::NativeTokio => "health-server native, tokio host",
            Peer::NativeThread => "health-server native, plain-thread host",
            Peer::HttpTokio => "health-server HTTP /healthz, tokio host",
            Peer::Axum => "axum 0.8 /healthz route",
            Peer::Grpc => "tonic-health (gRPC)",
            Peer::Floor => "blocking floor (accept, read, write, close)",
        }
    }

    /// The `--serve` mode that runs this peer's server, and which of its
    /// announced addresses this peer checks.
    fn server(self) -> (&'static str, usize) {
        match self {
            Peer::NativeTokio => ("native-tokio", 0),
            Peer::HttpTokio => ("native-tokio", 1),
            Peer::NativeThread => ("native-thread", 0),
            Peer::Axum => ("axum", 0),
            Peer::Grpc => ("grpc", 0),
            Peer::Floor => ("floor", 0),
        }
    }
}

/// Deadline of one check; a check over it is an error.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest HTTP response read (the bodies here are under 1 KiB).
const MAX_HTTP_RESPONSE: u64 = 64 * 1024;
/// The HTTP request every HTTP peer gets, the floor included.
const HTTP_REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
/// The floor's fixed reply.
const FLOOR_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
/// Checks before each peer's first round, not recorded.
const WARM_UP: u32 = 300;

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    match args.serve {
        Some(Peer::NativeTokio | Peer::HttpTokio) => serve_native_tokio(),
        Some(Peer::NativeThread) => serve_native_thread(),
        Some(Peer::Axum) => serve_axum(),
        Some(Peer::Grpc) => serve_grpc(),
        Some(Peer::Floor) => serve_floor(),
        None => run(&args),
    }
}

/// The endpoint (native and HTTP ports) inside a tokio service: the main
/// loop runs in `block_on` on the main thread, as `#[tokio::main]` runs it.
fn serve_native_tokio() -> Result<(), BoxError> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (asks, _server) = serve_endpoint(true)?;
        while let Some(ask) = asks.recv().await {
            ask.answer(Landmark::ok("bench"));
        }
        Ok(())
    })
}

/// The endpoint in a service with no runtime: the library runs its own
/// thread, and the main thread blocks for asks.
fn serve_native_thread() -> Result<(), BoxError> {
    let (asks, _server) = serve_endpoint(false)?;
    while let Some(ask) = asks.recv_blocking() {
        ask.answer(Landmark::ok("bench"));
    }
    Ok(())
}

/// axum's usual shape: a router on a default multi-threaded runtime, with
/// TCP_NODELAY as a tuned service sets it.
fn serve_axum() -> Result<(), BoxError> {
    use axum::serve::ListenerExt;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        announce(&[listener.local_addr()?]);
        exit_with_parent();
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// The floor: what any server must pay for a check on a new connection.
fn serve_floor() -> Result<(), BoxError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    announce(&[listener.local_addr()?]);
    exit_with_parent();
    let mut buf = [0u8; 1024];
    loop {
        let Ok((mut stream, _)) = listener.accept() else {
            continue;
        };
        // One read: the whole request is one segment on loopback.
        if matches!(stream.read(&mut buf), Ok(n) if n > 0) {
            let _ = stream.write_all(FLOOR_REPLY);
        }
    }
}

/// One check of `peer` at `addr`, by the same client for all: connect,
/// send, read the whole response, close.
async fn check(
    peer: Peer,
    addr: SocketAddr,
    url: &'static str,
    native: &[u8],
) -> Result<(), String> {
    let once = async {
        match peer {
            Peer::NativeTokio | Peer::NativeThread => landmark_check(addr, native).await.map(drop),
            Peer::HttpTokio | Peer::Axum | Peer::Floor => http_check(addr).await,
            Peer::Grpc => grpc_check(addr, url).await,
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, once)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

async fn http_check(addr: SocketAddr) -> Result<(), String> {
    let mut stream = connect(addr).await.map_err(|e| e.to_string())?;
    stream
        .write_all(HTTP_REQUEST)
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::with_capacity(1024);
    (&mut stream)
        .take(MAX_HTTP_RESPONSE)
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    if response.starts_with(b"HTTP/1.1 200 ") {
        Ok(())
    } else {
        let head = String::from_utf8_lossy(&response[..response.len().min(40)]).into_owned();
        Err(format!("unexpected response {head:?}"))
    }
}

/// What the timed rounds measured for one peer.
#[derive(Default)]
struct Tally {
    checks: u64,
    errors: u64,
    first_error: Option<String>,
    /// The server's CPU per check in each round, µs.
    cpu_us: Vec<f64>,
    /// The client's (this process's) and the server's together, per check
    /// in each round, µs.
    both_us: Vec<f64>,
    latencies_us: Vec<u64>,
}

impl Tally {
    /// The median round's server CPU per check, µs: the machine's speed
    /// drifts between rounds (and with where the scheduler puts the
    /// threads), and the median round is the typical one.
    fn cpu(&self) -> f64 {
        median(&self.cpu_us)
    }

    fn both(&self) -> f64 {
        median(&self.both_us)
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `n` checks in a row; adds to `tally` when given.
async fn checks(
    peer: Peer,
    server: &ChildServer,
    n: u32,
    native: &[u8],
    mut tally: Option<&mut Tally>,
) {
    let (_, port) = peer.server();
    let addr = server.addrs[port];
    let url: &'static str = Box::leak(format!("http://{addr}").into_boxed_str());
    let cpu_before = process_cpu_precise(server.pid());
    let client_before = process_cpu_precise(std::process::id());
    for _ in 0..n {
        let started = Instant::now();
        let result = check(peer, addr, url, native).await;
        let took = started.elapsed();
        if let Some(t) = tally.as_deref_mut() {
            match result {
                Ok(()) => {
                    t.checks += 1;
                    t.latencies_us.push(took.as_micros() as u64);
                }
                Err(e) => {
                    t.errors += 1;
                    t.first_error.get_or_insert(e);
                }
            }
        }
    }
    if let Some(t) = tally {
        let server_cpu = process_cpu_precise(server.pid()).saturating_sub(cpu_before);
        let client_cpu = process_cpu_precise(std::process::id()).saturating_sub(client_before);
        let per_check = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
        t.cpu_us.push(per_check(server_cpu));
        t.both_us.push(per_check(server_cpu + client_cpu));
    }
}

/// Syscalls per check under `strace -c -f`: the total, and each call's
/// share, largest first.
struct Syscalls {
    per_check: f64,
    calls: Vec<(String, f64)>,
}

/// Attaches strace to the server's threads, runs `n` checks, detaches,
/// and reads its summary. The server was warmed up by the timed rounds.
async fn count_syscalls(
    peer: Peer,
    server: &ChildServer,
    n: u32,
    native: &[u8],
) -> Result<Syscalls, BoxError> {
    let out = std::env::temp_dir().join(format!("isolated-strace-{}.txt", server.pid()));
    let mut strace = Command::new("strace")
        .args(["-c", "-f", "-q", "-o"])
        .arg(&out)
        .arg("-p")
        .arg(server.pid().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("strace: {e} (apt-get install strace)"))?;
    // Attached when every thread has a tracer (bounded: 5 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !all_traced(server.pid()) {
        if Instant::now() > deadline {
            let _ = strace.kill();
            let _ = strace.wait();
            return Err("strace did not attach within 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    checks(peer, server, n, native, None).await;
    // SIGINT: strace detaches and writes its summary.
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    let summary = std::fs::read_to_string(&out)?;
    let _ = std::fs::remove_file(&out);
    parse_strace(&summary, n)
}

/// Whether every thread of `pid` has a tracer.
fn all_traced(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).all(|t| {
        std::fs::read_to_string(t.path().join("status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("TracerPid:"))
                    .map(|v| v.trim() != "0")
            })
            .unwrap_or(false)
    })
}

/// Reads `strace -c`'s table: `% time, seconds, usecs/call, calls,
/// [errors,] syscall` per line.
fn parse_strace(summary: &str, checks: u32) -> Result<Syscalls, BoxError> {
    let mut calls = BTreeMap::new();
    for line in summary.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 5 || cols[0].starts_with('%') || cols[0].starts_with('-') {
            continue;
        }
        let name = cols[cols.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(n) = cols[3].parse::<u64>() {
            *calls.entry(name.to_string()).or_insert(0) += n;
        }
    }
    if calls.is_empty() {
        return Err(format!("no strace summary in {summary:?}").into());
    }
    let total: u64 = calls.values().sum();
    let mut calls: Vec<(String, f64)> = calls
        .into_iter()
        .map(|(name, n)| (name, n as f64 / f64::from(checks)))
        .collect();
    calls.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(Syscalls {
        per_check: total as f64 / f64::from(checks),
        calls,
    })
}

fn run(args: &Args) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let native = Request::Check(CheckRequest::default())
        .to_frame(1)
        .to_bytes();
    let mut servers: BTreeMap<&str, ChildServer> = BTreeMap::new();
    for peer in PEERS {
        let (mode, _) = peer.server();
        if !servers.contains_key(mode) {
            servers.insert(mode, ChildServer::start(mode)?);
        }
    }
    let server = |peer: Peer| &servers[peer.server().0];
    eprintln!(
        "isolated: {} checks per peer per round, {} rounds, one at a time, a new connection each",
        args.checks, args.rounds
    );
    for peer in PEERS {
        rt.block_on(checks(peer, server(peer), WARM_UP, &native, None));
    }
    let mut tallies: Vec<Tally> = PEERS.iter().map(|_| Tally::default()).collect();
    for round in 0..args.rounds {
        for (i, peer) in PEERS.into_iter().enumerate() {
            let t = &mut tallies[i];
            rt.block_on(checks(peer, server(peer), args.checks, &native, Some(t)));
            eprintln!(
                "  round {}: {:<45} {:>6.1} µs CPU per check",
                round + 1,
                peer.name(),
                t.cpu_us.last().copied().unwrap_or(0.0)
            );
        }
    }
    let mut syscalls = Vec::new();
    for peer in PEERS {
        syscalls.push(if args.strace_checks == 0 {
            None
        } else {
            match rt.block_on(count_syscalls(
                peer,
                server(peer),
                args.strace_checks,
                &native,
            )) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("  {}: no syscall count: {e}", peer.name());
                    None
                }
            }
        });
    }
    report(args, &tallies, &syscalls);
    Ok(())
}

fn report(args: &Args, tallies: &[Tally], syscalls: &[Option<Syscalls>]) {
    let per_check = Tally::cpu;
    let at = |peer: Peer| PEERS.iter().position(|p| *p == peer).unwrap_or(0);
    let axum = per_check(&tallies[at(Peer::Axum)]);
    let floor = per_check(&tallies[at(Peer::Floor)]);
    println!(
        "| server | CPU per check | vs axum | vs floor | client + server CPU | p50 ms | p99 ms | errors | syscalls per check | largest |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (i, peer) in PEERS.into_iter().enumerate() {
        let t = &tallies[i];
        let cpu = per_check(t);
        let lat = Samples::new(t.latencies_us.clone());
        let (count, largest) = match &syscalls[i] {
            Some(s) => (
                format!("{:.1}", s.per_check),
                s.calls
                    .iter()
                    .take(12)
                    .map(|(name, n)| format!("{name} {n:.1}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => ("-".to_string(), String::new()),
        };
        let both = t.both();
        println!(
            "| {} | {:.1} µs | {:.2}x | {:.2}x | {:.1} µs | {} | {} | {} | {} | {} |",
            peer.name(),
            cpu,
            ratio(cpu, axum),
            ratio(cpu, floor),
            both,
            ms(lat.median()),
            ms(lat.percentile(0.99)),
            t.errors,
            count,
            largest,
        );
        if let Some(e) = &t.first_error {
            eprintln!("  {}: first error: {e}", peer.name());
        }
    }
    println!();
    let native = [Peer::NativeTokio, Peer::NativeThread].map(|p| {
        (
            p,
            per_check(&tallies[at(p)]),
            syscalls[at(p)].as_ref().map(|s| s.per_check),
        )
    });
    for (peer, cpu, count) in native {
        println!(
            "{}: **{:.2}x** axum's CPU per check (goal: at most 0.5x), {:.2}x the floor's; {} syscalls per check (goal: at most 8).",
            peer.name(),
            ratio(cpu, axum),
            ratio(cpu, floor),
            count.map_or("-".to_string(), |c| format!("{c:.1}")),
        );
    }
    println!();
    println!(
        "{} checks per peer in each of {} rounds; CPU per check is the median round's, from all the server's threads; latency over all rounds; syscalls over {} further checks under strace.",
        args.checks, args.rounds, args.strace_checks
    );
}
