//! Streaming against polling, for the watcher's landmark targets: how soon
//! a hung main loop is raised, and what 10,000 targets cost the watcher.
//!
//! In a child process of its own, `--serve` starts E health-server
//! endpoints (their main threads answering every ask) and one more, the
//! canary, whose main thread the benchmark hangs and releases through the
//! child's stdin. The config holds N landmark targets at a 1 s interval
//! spread over the E endpoints, and one on the canary (`fall` and `rise`
//! at their default 2, as every target). The same config runs twice, in
//! the same run: streaming (the default, `stream = true`) and polled
//! (`stream = false`). Each run: a 5 s warm-up, then the watcher's CPU
//! over S seconds (`/proc/PID/stat`, all threads) and its RSS; then K
//! hangs of the canary, each at a random moment 0-1 s after its alarm
//! cleared, timed from the hang to the watcher's `raise` of the canary
//! and from the release to its `clear`.
//!
//! The endpoints take every stream (`max_streams_per_source`,
//! `max_streams` and `max_per_source` raised to N): the benchmark's one
//! watcher, on one loopback address, stands for many; with the defaults
//! (8 streams per source) a watcher's targets past 8 per endpoint are
//! polled. Fails if a
//! target other than the canary raises, or if the streaming run's targets
//! did not stream (a warning from the watcher, or fewer open descriptors
//! than targets).
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! target/release/watch_stream --targets 10000 --endpoints 10 --seconds 20 --hangs 20
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use health_bench::{built, micros, ms, open_fds, process_cpu, ratio, rss_kib, Samples};
use serde_json::Value;

#[derive(Parser)]
struct Args {
    /// Landmark targets besides the canary.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(10..=50_000))]
    targets: u32,
    /// Endpoints the targets are spread over.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    endpoints: u32,
    /// Seconds of CPU measured in each run, after a 5 s warm-up.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(5..=600))]
    seconds: u64,
    /// Hangs of the canary timed in each run.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(3..=1000))]
    hangs: u32,
    /// Internal: serve N endpoints and the canary, print their addresses,
    /// hang and release the canary as stdin says, until stdin closes.
    #[arg(long, hide = true)]
    serve: Option<u32>,
    /// Internal: with --serve, the streams each endpoint takes.
    #[arg(long, hide = true, default_value_t = 10_000)]
    streams: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(n) = args.serve {
        return serve(n, args.streams as usize);
    }
    let watcher_bin = built("health-probe-watch")?;
    let mut peers = Peers::start(args.endpoints, args.targets + 1)?;
    let mut runs = Vec::new();
    for stream in [true, false] {
        runs.push(run(&args, &watcher_bin, &mut peers, stream)?);
    }
    let (streamed, polled) = (&runs[0], &runs[1]);
    println!(
        "{} landmark targets at 1 s over {} endpoints, and the canary; fall = rise = 2; {} hangs each",
        args.targets, args.endpoints, args.hangs
    );
    println!();
    println!(
        "| how | raise p50 | raise p99 | raise max | clear p50 | clear p99 | CPU (cores) | RSS | false raises |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        println!(
            "| {} | {} ms | {} ms | {} ms | {} ms | {} ms | {:.3} | {} MiB | {} |",
            r.name,
            ms(r.raise.median()),
            ms(r.raise.percentile(0.99)),
            ms(r.raise.max()),
            ms(r.clear.median()),
            ms(r.clear.percentile(0.99)),
            r.cores,
            r.rss_kib / 1024,
            r.false_raises
        );
    }
    println!();
    println!(
        "streaming vs polling: raise p50 **{:.3}x**, raise p99 **{:.3}x**, CPU **{:.3}x**; observations {:.0}/s streamed, {:.0}/s polled",
        ratio(streamed.raise.median() as f64, polled.raise.median() as f64),
        ratio(
            streamed.raise.percentile(0.99) as f64,
            polled.raise.percentile(0.99) as f64
        ),
        ratio(streamed.cores, polled.cores),
        streamed.observations,
        polled.observations,
    );
    Ok(())
}

/// What one run measured.
struct Run {
    name: &'static str,
    /// Raises of the canary while it answered.
    false_raises: u32,
    raise: Samples,
    clear: Samples,
    cores: f64,
    rss_kib: u64,
    observations: f64,
}

fn run(
    args: &Args,
    watcher_bin: &std::path::Path,
    peers: &mut Peers,
    stream: bool,
) -> Result<Run, String> {
    let dir = std::env::temp_dir().join(format!("watch-stream-{}-{stream}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let config = dir.join("watch.toml");
    let mut text = format!(
        "database = {:?}\nmax_in_flight = 512\n\n[defaults]\ninterval = \"1s\"\nstream = {stream}\n",
        dir.join("watch.db").display().to_string()
    );
    for i in 0..args.targets {
        let addr = peers.endpoints[i as usize % peers.endpoints.len()];
        text.push_str(&format!(
            "\n[[target]]\nname = \"svc-{i}\"\nkind = \"landmark\"\naddr = \"{addr}\"\n"
        ));
    }
    text.push_str(&format!(
        // Hung and released every few seconds: flapping, by design here,
        // so flap detection is off for it.
        "\n[[target]]\nname = \"canary\"\nkind = \"landmark\"\naddr = \"{}\"\nflap_changes = 0\n",
        peers.canary
    ));
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let mut watcher = Command::new(watcher_bin)
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
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = watcher.id();
    let (tx, events) = mpsc::channel::<(Instant, Value)>();
    let out = watcher.stdout.take().ok_or("no stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send((Instant::now(), v)).is_err() {
                    break;
                }
            }
        }
    });
    eprintln!(
        "watch_stream: {} targets, {}",
        args.targets,
        if stream { "streamed" } else { "polled" }
    );
    let result = measure(args, pid, &events, peers, stream);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = watcher.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = result?;
    r.name = if stream {
        "streamed (`stream = true`, the default)"
    } else {
        "polled every 1 s (`stream = false`)"
    };
    Ok(r)
}

fn measure(
    args: &Args,
    pid: u32,
    events: &mpsc::Receiver<(Instant, Value)>,
    peers: &mut Peers,
    stream: bool,
) -> Result<Run, String> {
    let checks_at = |events: &mpsc::Receiver<(Instant, Value)>,
                     until: Instant|
     -> Result<Option<u64>, String> {
        let mut last = None;
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            match events.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok((_, v)) => judge(&v, stream)?.into_iter().for_each(|c| last = Some(c)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the watcher stopped".into())
                }
            }
        }
        Ok(last)
    };
    // Warm-up: every stream open (or every target checked).
    checks_at(events, Instant::now() + Duration::from_secs(5))?;
    if stream {
        let fds = open_fds(pid).unwrap_or(0);
        if fds < args.targets as usize {
            return Err(format!(
                "only {fds} descriptors open for {} streams",
                args.targets
            ));
        }
    }
    let (t0, cpu0) = (Instant::now(), process_cpu(pid));
    let c0 = checks_at(events, t0 + Duration::from_millis(1100))?.ok_or("no stats")?;
    let end = t0 + Duration::from_secs(args.seconds);
    let c1 = checks_at(events, end)?.ok_or("no stats")?;
    let (t1, cpu1) = (Instant::now(), process_cpu(pid));
    let wall = (t1 - t0).as_secs_f64();
    let cores = (cpu1 - cpu0).as_secs_f64() / wall;
    let observations =
        c1.saturating_sub(c0) as f64 / (end - (t0 + Duration::from_millis(1100))).as_secs_f64();
    let (rss_kib, _) = rss_kib(pid).unwrap_or((0, 0));

    let mut raise = Vec::new();
    let mut clear = Vec::new();
    let mut rng = Rng::seeded();
    let mut false_raises = 0;
    for _ in 0..args.hangs {
        let pause = Instant::now() + Duration::from_millis(rng.below(1000));
        // A raise of the canary while it answers (a check that timed out
        // on a loaded machine): counted, and waited out before the hang.
        while let Some(raised) = canary_event(events, pause, stream)? {
            if raised {
                false_raises += 1;
                wait_canary(events, "clear", Instant::now(), stream)?;
            }
        }
        let hung = peers.canary_hang(true)?;
        raise.push(micros(wait_canary(events, "raise", hung, stream)?));
        let released = peers.canary_hang(false)?;
        clear.push(micros(wait_canary(events, "clear", released, stream)?));
    }
    Ok(Run {
        false_raises,
        name: "",
        raise: Samples::new(raise),
        clear: Samples::new(clear),
        cores,
        rss_kib,
        observations,
    })
}

/// The checks count of a `stats` event; an error for what must not happen
/// (a raise of a healthy target, a streaming run's warning).
fn judge(v: &Value, stream: bool) -> Result<Option<u64>, String> {
    match v["event"].as_str() {
        Some("stats") => Ok(v["checks"].as_u64()),
        Some("raise") if v["target"] != "canary" => Err(format!("a healthy target raised: {v}")),
        Some("warning") if stream => Err(format!("the watcher warned: {v}")),
        _ => Ok(None),
    }
}

/// The canary's next raise (`true`) or clear (`false`) before `until`;
/// `None` when none came.
fn canary_event(
    events: &mpsc::Receiver<(Instant, Value)>,
    until: Instant,
    stream: bool,
) -> Result<Option<bool>, String> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match events.recv_timeout(left) {
            Ok((_, v)) => {
                judge(&v, stream)?;
                if v["target"] == "canary" && (v["event"] == "raise" || v["event"] == "clear") {
                    return Ok(Some(v["event"] == "raise"));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("the watcher stopped".into()),
        }
    }
}

/// Waits for the canary's `event` and returns how long after `since` it
/// came (its arrival on the watcher's stdout).
fn wait_canary(
    events: &mpsc::Receiver<(Instant, Value)>,
    event: &str,
    since: Instant,
    stream: bool,
) -> Result<Duration, String> {
    let deadline = since + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, v) = events
            .recv_timeout(left)
            .map_err(|_| format!("no {event} of the canary within 30 s (stream = {stream})"))?;
        judge(&v, stream)?;
        if v["event"] == event && v["target"] == "canary" {
            return Ok(at.saturating_duration_since(since));
        }
    }
}

/// A small xorshift, seeded from the clock: random moments for the hangs
/// (no crate needed for this).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng(nanos | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The endpoints' child process; ended when dropped (its stdin closes).
struct Peers {
    child: Child,
    stdin: Option<ChildStdin>,
    endpoints: Vec<SocketAddr>,
    canary: SocketAddr,
}

impl Peers {
    fn start(endpoints: u32, streams: u32) -> Result<Peers, Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "--serve",
                &endpoints.to_string(),
                "--streams",
                &streams.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        let mut addrs = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<SocketAddr>, _>>()?;
        let canary = addrs.pop().ok_or("no canary")?;
        Ok(Peers {
            child,
            stdin,
            endpoints: addrs,
            canary,
        })
    }

    /// Hangs (or releases) the canary's main thread; when it was told.
    fn canary_hang(&mut self, hang: bool) -> Result<Instant, String> {
        let stdin = self.stdin.as_mut().ok_or("no stdin")?;
        let at = Instant::now();
        writeln!(stdin, "{}", if hang { "hang" } else { "release" })
            .and_then(|()| stdin.flush())
            .map_err(|e| e.to_string())?;
        Ok(at)
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child: `n` endpoints answering every ask, and the canary, each
/// taking up to `streams` streams; their addresses on one line, the
/// canary's last; then `hang` and `release` from stdin, until it closes.
fn serve(n: u32, streams: usize) -> Result<(), Box<dyn std::error::Error>> {
    // Every endpoint's connections are this process's descriptors.
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::Resource::NOFILE.set(hard, hard)?;
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n {
        let (asks, rx) = health_server::channel();
        std::thread::spawn(move || {
            while let Some(ask) = asks.recv_blocking() {
                ask.answer(health_server::Landmark::ok("bench"));
            }
        });
        let server = health_server::Builder::new()
            .bind("127.0.0.1:0".parse()?)
            .max_streams(streams)
            .max_streams_per_source(streams)
            .max_per_source(streams + 64)
            .spawn(rx)?;
        addrs.push(server.local_addr().to_string());
        servers.push(server);
    }
    let hung = Arc::new(AtomicBool::new(false));
    let (asks, rx) = health_server::channel();
    let h = Arc::clone(&hung);
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            while h.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(200));
            }
            ask.answer(health_server::Landmark::ok("canary"));
        }
    });
    let canary = health_server::Builder::new()
        .bind("127.0.0.1:0".parse()?)
        .spawn(rx)?;
    addrs.push(canary.local_addr().to_string());
    let mut out = std::io::stdout();
    writeln!(out, "{}", addrs.join(" "))?;
    out.flush()?;
    for line in std::io::stdin().lines().map_while(Result::ok) {
        match line.trim() {
            "hang" => hung.store(true, Ordering::SeqCst),
            "release" => hung.store(false, Ordering::SeqCst),
            _ => {}
        }
    }
    drop((servers, canary));
    Ok(())
}
