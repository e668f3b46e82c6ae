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

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use health_bench::peer::{
    grpc_check, landmark_check, serve_endpoint, serve_grpc, BoxError, ChildServer,
};
use health_bench::{ms, open_fds, ratio, rss_kib, Samples};
use health_proto::{CheckRequest, Landmark, Request};

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

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    match args.serve {
        Some(Peer::Landmark) => serve_landmark(),
        Some(Peer::Grpc) => serve_grpc(),
        None => run(&args),
    }
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

/// The landmark peer: the server runs its own runtime on its own thread (as
/// the library always does); the main thread is a plain
/// loop that answers asks, as in `examples/plain_thread_service.rs`. It
/// reports in its landmark how many asks it answered, the wall time spent
/// answering, and its own CPU time, so the load generator can read them.
fn serve_landmark() -> Result<(), BoxError> {
    let (asks, _server) = serve_endpoint(false)?;
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

async fn round(peer: Peer, server: &ChildServer, clients: u16, length: Duration) -> Round {
    let addr = server.addr();
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

fn run(args: &Args) -> Result<(), BoxError> {
    let rt = tokio::runtime::Runtime::new()?;
    let landmark = ChildServer::start("landmark")?;
    let grpc = ChildServer::start("grpc")?;
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
                Peer::Landmark => Some(rt.block_on(main_loop_counters(server.addr()))?),
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
                let after = rt.block_on(main_loop_counters(server.addr()))?;
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
    let mut per_cpu_second = [0.0; 2];
    for (i, (peer, server)) in [(Peer::Landmark, &landmark), (Peer::Grpc, &grpc)]
        .into_iter()
        .enumerate()
    {
        let t = std::mem::take(&mut totals[i]);
        let mut rates = t.rates.clone();
        rates.sort_by(|a, b| a.total_cmp(b));
        medians[i] = rates[rates.len() / 2];
        per_cpu_second[i] = ratio(t.ok as f64, t.cpu.as_secs_f64());
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
            per_cpu_second[i],
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
        "Landmark / tonic-health: **{:.2}x** the checks per server CPU-second (target: at least 3x), {:.2}x the checks/s (the client shares the machine).",
        ratio(per_cpu_second[0], per_cpu_second[1]),
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
