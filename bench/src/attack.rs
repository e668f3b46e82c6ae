//! Hostile peers against a health endpoint, and a legitimate checker timed
//! while they run: the "under attack" scenarios of docs/BENCHMARKS.md
//! (`under_attack`), also asserted by `bench/tests/under_attack.rs`.
//!
//! The peers run in `attacker` processes, at most [`PER_PROCESS`]
//! connections each, so that no process needs more than the machine's
//! default open-file limit (24,000 sockets do not fit in one). Every peer
//! connects to loopback only, from loopback sources (127.0.0.0/8 is all
//! local on Linux), and stops when its scenario's time is up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::{free_port, micros, open_fds, rss_kib, KillOnDrop, Samples};

/// Most connections one attacker process holds.
pub const PER_PROCESS: u64 = 12_000;

/// One kind of hostile peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// (a) 1000 idle connections from the checker's own address.
    IdleSameSource,
    /// (b) 24,000 idle connections from 200 loopback sources (127.3.0.x).
    IdleManySources,
    /// (c) 300 connections from one source re-sending a check every 1.5 s.
    Resenders,
    /// (d) 1000 connections a second, opened and reset.
    ResetFlood,
    /// (f) 100,000 idle connections from 200 sources (127.5.0.x): more than
    /// the kernel keeps waiting for the endpoint, so SYN cookies let the
    /// rest in and admission decides.
    IdleBeyondQueues,
}

impl Attack {
    /// The attacks run one at a time (scenarios a-d).
    pub const ALL: [Attack; 4] = [
        Attack::IdleSameSource,
        Attack::IdleManySources,
        Attack::Resenders,
        Attack::ResetFlood,
    ];

    /// The row label in reports.
    pub fn label(self) -> &'static str {
        match self {
            Attack::IdleSameSource => "(a) 1000 idle from the checker's address",
            Attack::IdleManySources => "(b) 24,000 idle from 200 sources, reopened",
            Attack::Resenders => "(c) 300 from one source re-sending every 1.5 s",
            Attack::ResetFlood => "(d) 1000 connections/s opened and reset",
            Attack::IdleBeyondQueues => "(f) 100,000 idle from 200 sources, reopened",
        }
    }

    /// Its name on the `attacker` command line.
    pub fn name(self) -> &'static str {
        match self {
            Attack::IdleSameSource => "idle-same-source",
            Attack::IdleManySources => "idle-many-sources",
            Attack::Resenders => "resenders",
            Attack::ResetFlood => "reset-flood",
            Attack::IdleBeyondQueues => "idle-beyond-queues",
        }
    }

    /// The attack of that name.
    pub fn from_name(name: &str) -> Option<Attack> {
        Attack::ALL
            .into_iter()
            .chain([Attack::IdleBeyondQueues])
            .find(|a| a.name() == name)
    }

    /// Connections the attacker holds at once.
    pub fn connections(self) -> u64 {
        match self {
            Attack::IdleSameSource => 1000,
            Attack::IdleManySources => 24_000,
            Attack::Resenders => 300,
            Attack::ResetFlood => 100,
            Attack::IdleBeyondQueues => 100_000,
        }
    }
}

/// Starts `landmark_service` as a new user would, with its addresses and
/// nothing else, and waits (at most 10 s) until `probe` passes on it and
/// its open files stop changing: the baseline every scenario returns to.
/// Returns the service and its health endpoint.
pub fn start_service(landmark_service: &Path, probe: &Path) -> (KillOnDrop, SocketAddr) {
    let (listen, health) = (free_port().unwrap(), free_port().unwrap());
    let server = KillOnDrop(
        Command::new(landmark_service)
            .args([
                "--listen",
                &listen.to_string(),
                "--health",
                &health.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start landmark_service"),
    );
    let t = Instant::now();
    let mut fds = 0;
    loop {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "service did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
        let ok = Command::new(probe)
            .arg(health.to_string())
            .output()
            .is_ok_and(|o| o.status.success());
        let now = open_fds(server.0.id()).unwrap_or(0);
        if ok && now == fds {
            return (server, health);
        }
        fds = now;
    }
}

/// What a scenario measured.
#[derive(Debug)]
pub struct Outcome {
    /// The attacks that ran together.
    pub attacks: Vec<Attack>,
    /// Wall time of each legitimate probe run, in microseconds.
    pub checks: Samples,
    /// Probe runs that did not exit 0, with their stderr.
    pub failures: Vec<String>,
    /// Connections the attackers opened.
    pub opened: u64,
    /// Connections the attackers saw closed by the server.
    pub closed_by_server: u64,
    /// The server's RSS before and at most during the scenario, KiB.
    pub rss_before_kib: u64,
    /// The most RSS seen during the scenario, KiB.
    pub rss_max_kib: u64,
    /// The server's open fds before the scenario.
    pub fds_before: usize,
    /// The most open fds seen during it.
    pub fds_max: usize,
    /// Open fds after the attack ended and the server settled.
    pub fds_after: usize,
}

/// Where and how to run: the server under attack (its pid and native
/// port), the probe binary the legitimate checker runs, and the `attacker`
/// binary.
#[derive(Debug)]
pub struct Target<'a> {
    /// The server's pid (for its RSS and fds).
    pub pid: u32,
    /// Its native health port.
    pub health: SocketAddr,
    /// The `health-probe` binary.
    pub probe: &'a Path,
    /// The `attacker` binary.
    pub attacker: &'a Path,
}

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    closed_by_server: AtomicU64,
}

/// Runs one part (`part` of `parts`) of `attack` on `addr` for `length`, in
/// this process; returns the connections opened and those the server
/// closed. The body of the `attacker` binary.
pub fn attack_part(
    attack: Attack,
    part: u32,
    parts: u32,
    addr: SocketAddr,
    length: Duration,
) -> (u64, u64) {
    let stop = CancellationToken::new();
    let counters = Arc::new(Counters::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("attack runtime");
    rt.spawn(launch(
        attack,
        part,
        parts,
        addr,
        stop.clone(),
        Arc::clone(&counters),
    ));
    std::thread::sleep(length);
    stop.cancel();
    rt.shutdown_timeout(Duration::from_secs(5));
    (
        counters.opened.load(Ordering::Relaxed),
        counters.closed_by_server.load(Ordering::Relaxed),
    )
}

/// Runs `attacks` together for `length`, with `health-probe ADDR --expect
/// ok --timeout 1s` from 127.0.0.1 every 100 ms throughout, then waits (at
/// most 15 s) for the server's fds to return to where they were.
pub fn run(target: &Target, attacks: &[Attack], length: Duration) -> Outcome {
    let pid = target.pid;
    let rss_before_kib = rss_kib(pid).map_or(0, |r| r.0);
    let fds_before = open_fds(pid).unwrap_or(0);
    // The attackers run a little longer than the timed checks, which start
    // once the attack has built up.
    let warmup = Duration::from_secs(2).min(length / 4);
    let mut attackers = Vec::new();
    for &attack in attacks {
        let parts = attack.connections().div_ceil(PER_PROCESS) as u32;
        for part in 0..parts {
            let child = Command::new(target.attacker)
                .args([
                    attack.name(),
                    &target.health.to_string(),
                    "--part",
                    &part.to_string(),
                    "--parts",
                    &parts.to_string(),
                    "--millis",
                    &(warmup + length).as_millis().to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start an attacker");
            attackers.push(KillOnDrop(child));
        }
    }
    // Let the attack build up before the first timed check.
    std::thread::sleep(warmup);
    let (mut rss_max_kib, mut fds_max) = (rss_before_kib, fds_before);
    let mut times = Vec::new();
    let mut failures = Vec::new();
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < length {
        let t = Instant::now();
        let out = Command::new(target.probe)
            .args([
                &target.health.to_string(),
                "--expect",
                "ok",
                "--timeout",
                "1s",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run health-probe");
        times.push(micros(t.elapsed()));
        if !out.status.success() {
            failures.push(format!(
                "{:?} after {:?}: {}",
                out.status.code(),
                t.elapsed(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        rss_max_kib = rss_max_kib.max(rss_kib(pid).map_or(0, |r| r.0));
        fds_max = fds_max.max(open_fds(pid).unwrap_or(0));
        next += Duration::from_millis(100);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let (mut opened, mut closed_by_server) = (0, 0);
    for mut a in attackers {
        let out = a.0.stdout.take().map(|mut o| {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut o, &mut s);
            s
        });
        let _ = a.0.wait();
        let counts: Vec<u64> = out
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if let [o, c] = counts[..] {
            opened += o;
            closed_by_server += c;
        }
    }
    // Every attacker socket is closed now; the server's ends follow.
    let settle = Instant::now();
    let mut fds_after = open_fds(pid).unwrap_or(0);
    while fds_after > fds_before && settle.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
        fds_after = open_fds(pid).unwrap_or(0);
    }
    Outcome {
        attacks: attacks.to_vec(),
        checks: Samples::new(times),
        failures,
        opened,
        closed_by_server,
        rss_before_kib,
        rss_max_kib,
        fds_before,
        fds_max,
        fds_after,
    }
}

async fn launch(
    attack: Attack,
    part: u32,
    parts: u32,
    addr: SocketAddr,
    stop: CancellationToken,
    c: Arc<Counters>,
) {
    let mine = |n: u32| (0..n).filter(move |i| i % parts == part);
    match attack {
        Attack::IdleSameSource | Attack::Resenders => {
            // From the checker's own address; the re-senders send a valid
            // check every 1.5 s.
            let resend = (attack == Attack::Resenders).then_some(Duration::from_millis(1500));
            for _ in mine(attack.connections() as u32) {
                tokio::spawn(hoarder(
                    source(0, 0, 1),
                    addr,
                    resend,
                    stop.clone(),
                    c.clone(),
                ));
            }
        }
        Attack::IdleManySources | Attack::IdleBeyondQueues => {
            // 200 sources: 127.3.0.x, or 127.5.0.x beyond the queues.
            let network = if attack == Attack::IdleManySources {
                3
            } else {
                5
            };
            for (n, i) in mine(attack.connections() as u32).enumerate() {
                let src = source(network, 0, 1 + (i % 200) as u8);
                tokio::spawn(hoarder(src, addr, None, stop.clone(), c.clone()));
                if n % 1000 == 999 {
                    // Opening tens of thousands at once from one task would
                    // starve the runtime's timers; a short breath per
                    // thousand.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        Attack::ResetFlood => {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                // 10 every 10 ms: 1000 a second, shared by the parts.
                for _ in mine(10) {
                    let c = c.clone();
                    tokio::spawn(async move {
                        if let Ok(Ok(s)) = tokio::time::timeout(
                            Duration::from_secs(1),
                            connect(source(4, 0, 1), addr),
                        )
                        .await
                        {
                            c.opened.fetch_add(1, Ordering::Relaxed);
                            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                            drop(s);
                        }
                    });
                }
            }
        }
    }
}

fn source(b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, b, c, d))
}

/// Connects from `src` with the port left to `connect`
/// (IP_BIND_ADDRESS_NO_PORT), so 24,000 sockets over 200 addresses do not
/// exhaust the ephemeral ports one `bind` each would take.
async fn connect(src: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    crate::bind_address_no_port(&sock)?;
    sock.bind(&SocketAddr::new(src, 0).into())?;
    let std: std::net::TcpStream = sock.into();
    TcpSocket::from_std_stream(std).connect(addr).await
}

/// Holds a connection from `src` until the server closes it, then opens
/// another at once; with `resend`, sends a valid check on it at that
/// interval (and reads the replies).
async fn hoarder(
    src: IpAddr,
    addr: SocketAddr,
    resend: Option<Duration>,
    stop: CancellationToken,
    c: Arc<Counters>,
) {
    let check = health_proto::Request::Check(Default::default())
        .to_frame(1)
        .to_bytes();
    while !stop.is_cancelled() {
        let s = tokio::select! {
            _ = stop.cancelled() => return,
            s = tokio::time::timeout(Duration::from_secs(3), connect(src, addr)) => s,
        };
        let mut s = match s {
            Ok(Ok(s)) => s,
            // Refused or timed out (the server's queue full): try again
            // after a pause, as a client would.
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        c.opened.fetch_add(1, Ordering::Relaxed);
        let mut buf = vec![0u8; 4096];
        loop {
            let wait = resend.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = stop.cancelled() => return,
                r = s.read(&mut buf) => match r {
                    Ok(0) | Err(_) => {
                        c.closed_by_server.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Ok(_) => {}
                },
                _ = tokio::time::sleep(wait), if resend.is_some() => {
                    if s.write_all(&check).await.is_err() {
                        c.closed_by_server.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
    }
}

/// One Markdown row: the scenario, the legitimate check's p50/p99/max, and
/// the server's RSS growth and fds.
pub fn row(label: &str, o: &Outcome, quiet_p50: u64) -> String {
    format!(
        "| {label} | {} | {} ms | {} ms | {} ms | {:.1}x | {} | {:+.1} MiB | {} → {} → {} |",
        o.checks.len(),
        crate::ms(o.checks.median()),
        crate::ms(o.checks.percentile(0.99)),
        crate::ms(o.checks.max()),
        crate::ratio(o.checks.median() as f64, quiet_p50 as f64),
        o.failures.len(),
        (o.rss_max_kib as f64 - o.rss_before_kib as f64) / 1024.0,
        o.fds_before,
        o.fds_max,
        o.fds_after,
    )
}
