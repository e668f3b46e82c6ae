//! Server throughput and latency, against a tonic-health gRPC server in the
//! same run.
//!
//! Both servers run as child processes of this binary (`load --serve PEER`),
//! so their memory and CPU are their own. N concurrent clients make a new TCP
//! connection per check, as keepalived and HAProxy do, for a fixed time per
//! round; rounds alternate between the peers so that drift on the machine
//! hits both. Reported per peer: checks/s (median over rounds), latency
//! p50/p99/max over all rounds, the server's RSS and CPU; for the landmark
//! server also how many asks reached its main thread (coalescing) and what
//! each ask cost the main loop.
//!
//! ```text
//! cargo build --release -p health-bench && target/release/load --clients 32 --seconds 5 --rounds 3
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures_util::StreamExt;
use health_bench::{ms, open_fds, ratio, rss_kib, Samples};
use health_proto::codec::FrameCodec;
use health_proto::{CheckRequest, Landmark, Request, Response, State};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::FramedRead;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Load generator: landmark endpoint vs tonic-health, new connection per check.
#[derive(Parser)]
struct Args {
    /// Concurrent clients, each running one check after another.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1000))]
    clients: u16,
    /// Length of each measured round, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Rounds per peer, alternating between the peers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    rounds: u16,
    /// Internal: run one peer's server on 127.0.0.1, print its address, and
    /// serve until stdin closes.
    #[arg(long, hide = true)]
    serve: Option<Peer>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Peer {
    /// health-server, answered by a plain-thread main loop.
    Landmark,
    /// tonic-health's grpc.health.v1 server.
    Grpc,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Landmark => "health-server (landmark)",
            Peer::Grpc => "tonic-health (gRPC)",
        }
    }
}

/// Deadline of one check; a check over it counts as an error.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Latency samples kept per round at most (memory bound on long rounds).
const MAX_SAMPLES: usize = 5_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    match args.serve {
        Some(Peer::Landmark) => serve_landmark(),
        Some(Peer::Grpc) => serve_grpc(),
        None => run(&args),
    }
}

/// A peer's server process, ended when dropped (its stdin closes).
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl Server {
    fn start(peer: Peer) -> Result<Server, Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .arg(format!("{peer:?}").to_lowercase())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .strip_prefix("listening ")
            .ok_or_else(|| format!("{peer:?} server said {line:?}"))?
            .trim()
            .parse()?;
        Ok(Server { child, stdin, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU time the server has used so far.
    fn cpu(&self) -> Duration {
        health_bench::process_cpu(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ends this (server) process when the parent closes our stdin or dies.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening {addr}");
    let _ = out.flush();
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The landmark peer: the server runs its own runtime on its own thread (the
/// library's default when the caller has none); the main thread is a plain
/// loop that answers asks, as in `examples/plain_thread_service.rs`. It
/// reports in its landmark how many asks it answered, the wall time spent
/// answering, and its own CPU time, so the load generator can read them.
fn serve_landmark() -> Result<(), Box<dyn std::error::Error>> {
    let (asks, state_rx) = health_server::channel();
    let server = health_server::Builder::new()
        .bind("127.0.0.1:0".parse()?)
        .spawn(state_rx)?;
    announce(server.local_addr());
    exit_with_parent();
    let mut answered: u64 = 0;
    let mut answering = Duration::ZERO;
    while let Some(ask) = asks.recv_blocking() {
        let start = Instant::now();
        answered += 1;
        let landmark = Landmark::ok("bench")
            .with_field("asks", answered)
            .with_field("answer_ns", answering.as_nanos() as u64)
            .with_field("main_cpu_ns", thread_cpu().as_nanos() as u64);
        ask.answer(landmark);
        answering += start.elapsed();
    }
    Ok(())
}

/// The gRPC peer: tonic-health's reporter and server on a default
/// multi-threaded tokio runtime, as a tonic service would run it.
fn serve_grpc() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (_reporter, service) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        announce(listener.local_addr()?);
        exit_with_parent();
        // TCP_NODELAY on both ends: without it, HTTP/2's small writes meet
        // delayed ACKs and every check waits ~40 ms, which would make the
        // peer look far worse than a tuned deployment.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    })
}

/// Source addresses the clients rotate over: 127.1.0.1 onwards.
const SOURCES: u32 = 1000;

/// A new connection to `addr` from the next loopback source address, with
/// TCP_NODELAY.
///
/// The client closes first, so each check leaves a TIME_WAIT socket on the
/// client side. From a single source address, tens of thousands of checks a
/// second soon hold every ephemeral port in TIME_WAIT and `connect()` spends
/// its time searching for a reusable one: the load generator, not the server,
/// would set the ceiling. Rotating over many 127/8 sources keeps each
/// address's share small. Both peers get the same treatment.
async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % SOURCES;
    let source = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + n);
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    socket.set_nodelay(true)?;
    socket.connect(addr).await
}

/// One check over a new connection to the landmark server; the landmark on
/// success.
async fn landmark_check(addr: SocketAddr, request: &[u8]) -> Result<Landmark, String> {
    let mut stream = connect(addr).await.map_err(|e| e.to_string())?;
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    let mut frames = FramedRead::new(stream, FrameCodec::default());
    let frame = frames
        .next()
        .await
        .ok_or("closed without a reply")?
        .map_err(|e| e.to_string())?;
    match Response::from_frame(&frame).map_err(|e| e.to_string())? {
        Response::Landmark(reply) if reply.state == State::Ok => Ok(reply.landmark),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// One check over a new HTTP/2 connection to the gRPC server, made by the
/// same `connect` as the landmark checks.
async fn grpc_check(addr: SocketAddr, url: &'static str) -> Result<(), String> {
    let connector = tower::service_fn(move |_: tonic::transport::Uri| async move {
        connect(addr).await.map(hyper_util::rt::TokioIo::new)
    });
    let channel = tonic::transport::Endpoint::from_static(url)
        .connect_with_connector(connector)
        .await
        .map_err(|e| e.to_string())?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|e| e.to_string())?;
    if reply.get_ref().status == ServingStatus::Serving as i32 {
        Ok(())
    } else {
        Err(format!("status {}", reply.get_ref().status))
    }
}

/// What one round measured.
struct Round {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    server_cpu: Duration,
}

async fn one_check(
    peer: Peer,
    addr: SocketAddr,
    url: &'static str,
    request: &[u8],
) -> Result<(), String> {
    let check = async {
        match peer {
            Peer::Landmark => landmark_check(addr, request).await.map(drop),
            Peer::Grpc => grpc_check(addr, url).await,
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

async fn round(peer: Peer, server: &Server, clients: u16, length: Duration) -> Round {
    let addr = server.addr;
    let url: &'static str = Box::leak(format!("http://{addr}").into_boxed_str());
    let request: &'static [u8] = Box::leak(
        Request::Check(CheckRequest::default())
            .to_frame(1)
            .to_bytes()
            .into_boxed_slice(),
    );
    let cpu_before = server.cpu();
    let start = Instant::now();
    let end = start + length;
    let per_client = MAX_SAMPLES / clients as usize;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(4096);
                let (mut errors, mut first_error) = (0u64, None);
                while Instant::now() < end {
                    let t = Instant::now();
                    match one_check(peer, addr, url, request).await {
                        Ok(()) if lat.len() < per_client => {
                            lat.push(t.elapsed().as_micros() as u64)
                        }
                        Ok(()) => {}
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (lat, errors, first_error)
            })
        })
        .collect();
    let mut r = Round {
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        server_cpu: Duration::ZERO,
    };
    for task in tasks {
        if let Ok((lat, errors, first_error)) = task.await {
            r.ok += lat.len() as u64;
            r.errors += errors;
            if r.first_error.is_none() {
                r.first_error = first_error;
            }
            r.latencies_us.extend(lat);
        }
    }
    r.elapsed = start.elapsed();
    r.server_cpu = server.cpu().saturating_sub(cpu_before);
    r
}

/// The landmark server's main-loop counters: (asks, answer ns, main CPU ns).
async fn main_loop_counters(addr: SocketAddr) -> Result<(u64, u64, u64), String> {
    let request = Request::Check(CheckRequest::default())
        .to_frame(1)
        .to_bytes();
    let lm = landmark_check(addr, &request).await?;
    let get = |k: &str| lm.fields.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    Ok((get("asks"), get("answer_ns"), get("main_cpu_ns")))
}

#[derive(Default)]
struct Totals {
    rates: Vec<f64>,
    latencies_us: Vec<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    cpu: Duration,
    time: Duration,
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Runtime::new()?;
    let landmark = Server::start(Peer::Landmark)?;
    let grpc = Server::start(Peer::Grpc)?;
    let length = Duration::from_secs(args.seconds);
    let mut totals = [Totals::default(), Totals::default()];
    let (mut asks, mut answer_ns, mut main_cpu_ns) = (0u64, 0u64, 0u64);
    let mut landmark_checks = 0u64;

    eprintln!(
        "load: {} clients, {} s rounds, {} rounds per peer, new connection per check",
        args.clients, args.seconds, args.rounds
    );
    // Warm-up: both peers, not recorded.
    for (peer, server) in [(Peer::Landmark, &landmark), (Peer::Grpc, &grpc)] {
        rt.block_on(round(
            peer,
            server,
            args.clients,
            Duration::from_millis(500),
        ));
    }
    for n in 0..args.rounds {
        for (i, (peer, server)) in [(Peer::Landmark, &landmark), (Peer::Grpc, &grpc)]
            .into_iter()
            .enumerate()
        {
            let before = match peer {
                Peer::Landmark => Some(rt.block_on(main_loop_counters(server.addr))?),
                Peer::Grpc => None,
            };
            let r = rt.block_on(round(peer, server, args.clients, length));
            let rate = r.ok as f64 / r.elapsed.as_secs_f64();
            eprintln!(
                "  round {}: {:<26} {:>9.0} checks/s, {} errors",
                n + 1,
                peer.name(),
                rate,
                r.errors
            );
            if let Some(before) = before {
                let after = rt.block_on(main_loop_counters(server.addr))?;
                // The counters in `after` were written before that ask was
                // answered, so they cover the round plus `before`'s own ask.
                asks += after.0.saturating_sub(before.0);
                answer_ns += after.1.saturating_sub(before.1);
                main_cpu_ns += after.2.saturating_sub(before.2);
                landmark_checks += r.ok;
            }
            let t = &mut totals[i];
            t.rates.push(rate);
            t.ok += r.ok;
            t.errors += r.errors;
            if t.first_error.is_none() {
                t.first_error = r.first_error;
            }
            t.cpu += r.server_cpu;
            t.time += r.elapsed;
            t.latencies_us.extend(r.latencies_us);
        }
    }

    println!(
        "| server | checks/s (median of {}) | p50 ms | p99 ms | max ms | errors | server CPU | server RSS (peak) | checks per CPU-second |",
        args.rounds
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut medians = [0.0; 2];
    for (i, (peer, server)) in [(Peer::Landmark, &landmark), (Peer::Grpc, &grpc)]
        .into_iter()
        .enumerate()
    {
        let t = std::mem::take(&mut totals[i]);
        let mut rates = t.rates.clone();
        rates.sort_by(|a, b| a.total_cmp(b));
        medians[i] = rates[rates.len() / 2];
        let lat = Samples::new(t.latencies_us);
        let (rss, hwm) = rss_kib(server.pid()).unwrap_or((0, 0));
        let cpu_share = ratio(t.cpu.as_secs_f64(), t.time.as_secs_f64()) * 100.0;
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {:.0}% of a core | {:.1} MiB ({:.1} MiB) | {:.0} |",
            peer.name(),
            medians[i],
            ms(lat.median()),
            ms(lat.percentile(0.99)),
            ms(lat.max()),
            t.errors,
            cpu_share,
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            ratio(t.ok as f64, t.cpu.as_secs_f64()),
        );
        if let Some(e) = t.first_error {
            eprintln!("  {}: first error: {e}", peer.name());
        }
        if let Some(fds) = open_fds(server.pid()) {
            eprintln!("  {}: {fds} open fds after the run", peer.name());
        }
    }
    println!();
    println!(
        "Landmark / tonic-health checks/s: **{:.2}x** (target: at least 3x).",
        ratio(medians[0], medians[1])
    );
    let secs = totals_time(args);
    println!();
    println!(
        "Main thread of the landmark service: {:.0} asks/s for {:.0} checks/s ({:.1} checks per ask, \
         coalesced); {:.0} ns of main-loop time per ask ({:.0} ns CPU, including the wake-up).",
        asks as f64 / secs,
        landmark_checks as f64 / secs,
        ratio(landmark_checks as f64, asks as f64),
        ratio(answer_ns as f64, asks as f64),
        ratio(main_cpu_ns as f64, asks as f64),
    );
    Ok(())
}

fn totals_time(args: &Args) -> f64 {
    (args.seconds * u64::from(args.rounds)) as f64
}
