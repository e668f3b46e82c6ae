//! One connection-report snapshot of a port with 100,000 loopback
//! connections, timed against `ss -tan '( sport = :PORT )'` (iproute2, the
//! tool operators run today) in the same run, alternating.
//!
//! The service side of each connection stays in the accept queues of
//! several SO_REUSEPORT listeners on the port (ESTABLISHED in the kernel,
//! no descriptor), and the client sides are held by child processes of
//! this binary, each under the per-process descriptor limit and from its
//! own 127.0.0.x address. Both tools read the same kernel table through
//! netlink sock_diag with the port filtered in the kernel; the snapshot
//! also asks for `tcp_info` (RTT, retransmits), which `ss -tan` does not
//! print.
//!
//! ```text
//! cargo build --release -p health-bench
//! target/release/connections_scale --connections 100000 --runs 15
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use health_bench::{micros, ms, ratio, KillOnDrop, Samples};
use health_server::connections::{collect, history, TcpState};
use socket2::{Domain, Socket, Type};

#[derive(Parser)]
struct Args {
    /// Connections to open to the measured port.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(100..=400_000))]
    connections: u32,
    /// Timed runs of each tool, alternating.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(3..=1000))]
    runs: u32,
    /// Internal: connect N clients from address FROM to ADDR, print
    /// "ready", and hold them until stdin closes.
    #[arg(long, hide = true, num_args = 3, value_names = ["ADDR", "FROM", "N"])]
    hold: Option<Vec<String>>,
}

/// Client connections one holder process keeps (under a 20,000 descriptor
/// limit, with room to spare).
const PER_HOLDER: u32 = 15_000;
/// Connections per listener's accept queue, well under somaxconn (4096).
const PER_LISTENER: u32 = 2_500;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(hold) = &args.hold {
        return hold_clients(&hold[0], &hold[1], &hold[2]);
    }
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")?
        .trim()
        .parse()?;
    if somaxconn < PER_LISTENER + PER_LISTENER / 4 {
        return Err(format!("net.core.somaxconn is {somaxconn}; this benchmark needs 3200").into());
    }
    let n = args.connections;
    let listeners_needed = n.div_ceil(PER_LISTENER);
    let first = listener("127.0.0.1:0".parse()?)?;
    let port_addr = first
        .local_addr()?
        .as_socket()
        .ok_or("listener has no address")?;
    let mut listeners = vec![first];
    for _ in 1..listeners_needed {
        listeners.push(listener(port_addr)?);
    }
    let port = port_addr.port();

    // Holders: the client ends, in child processes.
    let me = std::env::current_exe()?;
    let started = Instant::now();
    let mut holders = Vec::new();
    let mut left = n;
    for i in 0.. {
        if left == 0 {
            break;
        }
        let count = left.min(PER_HOLDER);
        left -= count;
        let child = Command::new(&me)
            .args([
                "--hold",
                &port_addr.to_string(),
                &format!("127.0.0.{}", 20 + i),
                &count.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        holders.push(KillOnDrop(child));
    }
    for h in &mut holders {
        let mut line = String::new();
        BufReader::new(h.0.stdout.as_mut().ok_or("holder stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err(format!("a holder failed: {line:?}").into());
        }
    }
    let opened = started.elapsed();

    // Every connection is in the table before timing starts.
    let collected = collect(&[port], &TcpState::ALL, 2 * n as usize)?;
    let established = collected
        .connections
        .iter()
        .filter(|c| c.state == TcpState::Established)
        .count();
    if established != n as usize || collected.truncated {
        return Err(format!("expected {n} ESTABLISHED on port {port}, found {established}").into());
    }
    let ss_lines = ss(port)?;
    if ss_lines < n as usize {
        return Err(format!("ss -tan listed {ss_lines} sockets, expected at least {n}").into());
    }

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        let c = collect(&[port], &TcpState::ALL, 2 * n as usize)?;
        ours.push(micros(t.elapsed()));
        std::hint::black_box(c);
        let t = Instant::now();
        std::hint::black_box(ss(port)?);
        theirs.push(micros(t.elapsed()));
    }
    let (ours, theirs) = (Samples::new(ours), Samples::new(theirs));

    // What a report over that snapshot costs: top clients of 100k.
    let snapshot = history::Snapshot {
        taken: std::time::SystemTime::now(),
        connections: collected.connections,
        truncated: false,
        services: Default::default(),
    };
    let t = Instant::now();
    let (groups, matched) = history::aggregate(
        &snapshot,
        &history::Filter::default(),
        history::GroupBy::Client,
        20,
    );
    let group_us = micros(t.elapsed());
    std::hint::black_box((groups, matched));

    println!(
        "{n} ESTABLISHED loopback connections on one port ({} listeners' accept queues, clients in {} processes; opened in {:.1} s), {} runs each, alternating:",
        listeners.len(),
        holders.len(),
        opened.as_secs_f64(),
        args.runs
    );
    println!();
    println!("| tool | median ms | p90 ms | max ms | ratio (median) |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| connection snapshot (`collect`, all states, with tcp_info) | {} | {} | {} | {:.2}x |",
        ms(ours.median()),
        ms(ours.percentile(0.9)),
        ms(ours.max()),
        ratio(ours.median() as f64, theirs.median() as f64)
    );
    println!(
        "| `ss -tan '( sport = :{port} )'` (output to a pipe) | {} | {} | {} | 1.00x |",
        ms(theirs.median()),
        ms(theirs.percentile(0.9)),
        ms(theirs.max())
    );
    println!();
    println!(
        "Grouping that snapshot by client (top 20): {} ms. Snapshot memory: {} bytes per connection, {:.1} MiB for {n}.",
        ms(group_us),
        std::mem::size_of::<health_server::connections::Connection>(),
        (std::mem::size_of::<health_server::connections::Connection>() * n as usize) as f64
            / 1_048_576.0
    );
    for mut h in holders {
        drop(h.0.stdin.take());
        let _ = h.0.wait();
    }
    drop(listeners);
    Ok(())
}

fn listener(addr: SocketAddr) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s)
}

/// `ss -tan` filtered to the port, its output read to the end as a
/// pipe reader would; the number of lines.
fn ss(port: u16) -> Result<usize, Box<dyn std::error::Error>> {
    let mut child = Command::new("ss")
        .args(["-tan", &format!("( sport = :{port} )")])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ss (apt-get install iproute2): {e}"))?;
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .ok_or("ss stdout")?
        .read_to_end(&mut out)?;
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("ss failed: {status}").into());
    }
    Ok(out.iter().filter(|b| **b == b'\n').count())
}

/// The holder: `n` clients from `from` to `addr`, then wait for stdin to
/// close.
fn hold_clients(addr: &str, from: &str, n: &str) -> Result<(), Box<dyn std::error::Error>> {
    let to: SocketAddr = addr.parse()?;
    let from: SocketAddr = format!("{from}:0").parse()?;
    let n: usize = n.parse()?;
    rlimit::increase_nofile_limit(n as u64 + 64)?;
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        health_bench::bind_address_no_port(&s)?;
        s.bind(&from.into())?;
        s.connect_timeout(&to.into(), Duration::from_secs(5))?;
        held.push(TcpStream::from(s));
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}
