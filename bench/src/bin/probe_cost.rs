//! Whole-process cost of one check, against the port checks users run today.
//!
//! Starts `examples/landmark_service`, then runs, in alternating order,
//! `health-probe ADDR --expect ok --quiet` (a full verdict: connect, ask the
//! main thread, parse, decide), the same statically linked when
//! `packaging/static.sh` has built it, `health-probe tcp` (connect only), `nc -z`
//! (connect only) and Nagios `check_tcp` on the same port. Each run is timed from spawn to reaping
//! and its peak RSS read from `wait4`'s rusage. Prints medians, p90s, the
//! peak RSS and the ratio against `nc -z`.
//!
//! ```text
//! cargo build --release --workspace --bins --examples && target/release/probe_cost --runs 500
//! ```
//!
//! `--compare PROGRAM` (repeatable) adds another health-probe binary's
//! landmark check to the runs: an A/B of two builds in one run.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use health_bench::{built, free_port, ms, ratio, KillOnDrop, Samples};

/// Probe cost: health-probe vs nc -z vs check_tcp, alternating runs.
#[derive(Parser)]
struct Args {
    /// Runs of each tool (alternating).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    runs: u32,

    /// Another health-probe binary (say, one built from an earlier commit)
    /// to run beside this one's landmark check, as an A/B in one run; may
    /// be given more than once. Give a copy (`cp`), as this binary's own is
    /// measured: a binary just written by the linker measured slower to
    /// start than a copy of it on the same filesystem.
    #[arg(long, value_name = "PROGRAM")]
    compare: Vec<PathBuf>,
}

/// One tool under measurement.
struct Tool {
    name: &'static str,
    proves: &'static str,
    program: PathBuf,
    args: Vec<String>,
    wall_us: Vec<u64>,
    peak_rss_kib: u64,
    failures: u32,
}

fn find(program: &str, dirs: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Runs `program args` once; wall time from spawn to reaping, peak RSS (KiB)
/// and whether it exited 0.
fn run_once(program: &Path, args: &[String]) -> std::io::Result<(Duration, u64, bool)> {
    let start = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // Reaped here rather than by `Child::wait`, which has no rusage. The
    // `Child` is dropped afterwards without waiting (dropping never waits).
    // SAFETY: `pid` is our unreaped child; `status` and `usage` are valid.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    drop(child);
    if r != pid {
        return Err(std::io::Error::last_os_error());
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((elapsed, usage.ru_maxrss as u64, ok))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // What users run is a copy (dpkg and `cargo install` copy the binary),
    // and a copy measured faster to start than the file the linker wrote,
    // by 0.1 ms: measure a copy beside it, made the way the others are.
    let probe = built("health-probe")?.with_file_name("probe_cost-health-probe");
    std::fs::copy(built("health-probe")?, &probe)?;
    let service_bin = built("examples/landmark_service")?;
    let (listen, health) = (free_port()?, free_port()?);
    let _service = KillOnDrop(
        Command::new(&service_bin)
            .args([
                "--listen",
                &listen.to_string(),
                "--health",
                &health.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    // Ready when the probe says ok (bounded: 10 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    let probe_args = vec![
        health.to_string(),
        "--expect".into(),
        "ok".into(),
        "--quiet".into(),
    ];
    loop {
        if TcpStream::connect(health).is_ok() && run_once(&probe, &probe_args)?.2 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("landmark_service did not come up on {health}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let port = health.port().to_string();
    let mut tools = vec![
        Tool {
            name: "health-probe ADDR --expect ok",
            proves: "main thread answered ok",
            program: probe.clone(),
            args: probe_args,
            wall_us: Vec::new(),
            peak_rss_kib: 0,
            failures: 0,
        },
        Tool {
            name: "health-probe tcp ADDR",
            proves: "port accepts connections",
            program: probe,
            args: vec!["tcp".into(), health.to_string(), "--quiet".into()],
            wall_us: Vec::new(),
            peak_rss_kib: 0,
            failures: 0,
        },
    ];
    for other in &args.compare {
        let name = format!("health-probe ADDR --expect ok ({})", other.display());
        tools.push(Tool {
            name: name.leak(),
            proves: "main thread answered ok",
            program: other.clone(),
            args: tools[0].args.clone(),
            wall_us: Vec::new(),
            peak_rss_kib: 0,
            failures: 0,
        });
    }
    // The same probe linked statically (packaging/static.sh): no dynamic
    // loader, no relocations of shared libraries at start.
    match built("../static/health-probe") {
        Ok(static_probe) => tools.push(Tool {
            name: "health-probe ADDR --expect ok (static, packaging/static.sh)",
            proves: "main thread answered ok",
            program: static_probe,
            args: tools[0].args.clone(),
            wall_us: Vec::new(),
            peak_rss_kib: 0,
            failures: 0,
        }),
        Err(_) => {
            eprintln!("probe_cost: no target/static/health-probe (packaging/static.sh); skipped")
        }
    }
    match find("nc", &["/usr/bin", "/bin"]) {
        Some(nc) => tools.push(Tool {
            name: "nc -z (netcat-openbsd)",
            proves: "port accepts connections",
            program: nc,
            args: vec!["-z".into(), "127.0.0.1".into(), port.clone()],
            wall_us: Vec::new(),
            peak_rss_kib: 0,
            failures: 0,
        }),
        None => eprintln!("probe_cost: nc not found (apt-get install netcat-openbsd); skipped"),
    }
    match find(
        "check_tcp",
        &["/usr/lib/nagios/plugins", "/usr/lib/monitoring-plugins"],
    ) {
        Some(check_tcp) => tools.push(Tool {
            name: "check_tcp (monitoring-plugins)",
            proves: "port accepts connections",
            program: check_tcp,
            args: vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port.clone()],
            wall_us: Vec::new(),
            peak_rss_kib: 0,
            failures: 0,
        }),
        None => eprintln!(
            "probe_cost: check_tcp not found (apt-get install monitoring-plugins-basic); skipped"
        ),
    }

    eprintln!(
        "probe_cost: {} runs of each of {} tools against {health}, alternating",
        args.runs,
        tools.len()
    );
    // Warm the page cache and the service.
    for t in &tools {
        run_once(&t.program, &t.args)?;
    }
    let n = tools.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..args.runs {
        // A new order every round, so no tool always runs right after
        // another: a rotation keeps each tool's predecessor, and what runs
        // after `check_tcp` measured 0.25 ms slower. Fisher-Yates with a
        // xorshift, written here: one shuffle needs no crate.
        for k in (1..n).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(k, (seed % (k as u64 + 1)) as usize);
        }
        for &k in &order {
            let t = &mut tools[k];
            let (wall, rss, ok) = run_once(&t.program, &t.args)?;
            t.wall_us.push(wall.as_micros() as u64);
            t.peak_rss_kib = t.peak_rss_kib.max(rss);
            if !ok {
                t.failures += 1;
            }
        }
    }

    let nc_median = tools
        .iter()
        .find(|t| t.name.starts_with("nc"))
        .map(|t| Samples::new(t.wall_us.clone()).median() as f64);
    println!("| command | what a success proves | median ms | p90 ms | peak RSS | failed runs | time vs `nc -z` |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for t in &tools {
        let s = Samples::new(t.wall_us.clone());
        let vs_nc = nc_median
            .map(|nc| format!("{:.2}x", ratio(s.median() as f64, nc)))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "| `{}` | {} | {} | {} | {:.1} MiB | {} | {} |",
            t.name,
            t.proves,
            ms(s.median()),
            ms(s.percentile(0.9)),
            t.peak_rss_kib as f64 / 1024.0,
            t.failures,
            vs_nc
        );
    }
    println!();
    println!("Targets: health-probe within 1.2x of `nc -z`, peak RSS under 4 MiB.");
    if tools.iter().any(|t| t.failures > 0) {
        return Err("some runs failed; see the table".into());
    }
    Ok(())
}
