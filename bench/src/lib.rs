//! Shared pieces of the benchmark binaries: percentiles over samples,
//! a peer's process accounting, and where the workspace's built binaries are.
//!
//! The binaries (`probe_cost`, `load`, `soak`) measure the product against the
//! peers a user would run instead, in the same run, and print Markdown rows
//! for `docs/BENCHMARKS.md`. `bench/run.sh` builds everything and runs them.

use std::path::PathBuf;
use std::time::Duration;

pub mod attack;
pub mod peer;

/// Sorted samples with the summary statistics the reports print.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    sorted: Vec<u64>,
}

impl Samples {
    /// Takes ownership of unsorted samples.
    pub fn new(mut values: Vec<u64>) -> Samples {
        values.sort_unstable();
        Samples { sorted: values }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `p`-th percentile (0.0..=1.0) by nearest rank; 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.sorted.is_empty() {
            return 0;
        }
        let rank = (p.clamp(0.0, 1.0) * (self.sorted.len() - 1) as f64).round() as usize;
        self.sorted[rank]
    }

    /// The median.
    pub fn median(&self) -> u64 {
        self.percentile(0.5)
    }

    /// The largest sample; 0 when empty.
    pub fn max(&self) -> u64 {
        self.sorted.last().copied().unwrap_or(0)
    }
}

/// `a / b` as a ratio for reports; infinite when `b` is zero.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::INFINITY
    } else {
        a / b
    }
}

/// Microseconds as milliseconds with two decimals, for tables.
pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// Duration in whole microseconds, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The directory holding this executable: `target/release` when run from
/// the workspace, where the probe and the examples are built too.
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/release"))
}

/// A built workspace binary next to this one (`health-probe`,
/// `examples/landmark_service`), or an error saying how to build it.
pub fn built(relative: &str) -> Result<PathBuf, String> {
    let path = target_dir().join(relative);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: run `cargo build --release --workspace --bins --examples` first \
             (bench/run.sh does)",
            path.display()
        ))
    }
}

/// Leaves a client socket's port to `connect` (IP_BIND_ADDRESS_NO_PORT):
/// `bind` alone would take an ephemeral port per socket whatever the
/// destination, and could take one a listener uses at another address.
pub fn bind_address_no_port(sock: &socket2::Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, and a c_int option of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A child process (a service under test), killed when dropped.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback address nothing listens on right now.
pub fn free_port() -> std::io::Result<std::net::SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// A process's resident set (VmRSS) and peak (VmHWM) in KiB, from
/// `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Open file descriptors of a process, from `/proc/PID/fd`.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// User + system CPU time process `pid` has used so far, all its threads
/// (from `/proc/PID/stat`, in clock ticks).
pub fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// CPU time process `pid`'s live threads have used so far, to the
/// nanosecond: the sum of `/proc/PID/task/*/schedstat`'s run time. Finer
/// than [`process_cpu`]'s clock ticks, for costs of microseconds; threads
/// that have exited are not counted, so use it over spans in which the
/// process keeps its threads.
pub fn process_cpu_precise(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let s = Samples::new((1..=100).rev().collect());
        assert_eq!(s.len(), 100);
        assert_eq!(s.percentile(0.0), 1);
        assert_eq!(s.median(), 51);
        assert_eq!(s.percentile(0.99), 99);
        assert_eq!(s.max(), 100);
        assert_eq!(Samples::new(vec![]).median(), 0);
    }

    #[test]
    fn own_process_accounting() {
        let pid = std::process::id();
        let (rss, hwm) = rss_kib(pid).expect("own /proc status");
        assert!(rss > 0 && hwm >= rss);
        assert!(open_fds(pid).expect("own fds") >= 3);
        // Spinning adds CPU time, whatever else the machine runs (bounded:
        // 10 s of wall time).
        let spent = process_cpu_precise(pid);
        assert!(spent > Duration::ZERO);
        let spin = std::time::Instant::now();
        while process_cpu_precise(pid) < spent + Duration::from_millis(20) {
            assert!(
                spin.elapsed() < Duration::from_secs(10),
                "CPU time stands still"
            );
            for _ in 0..100_000 {
                std::hint::black_box(0u64);
            }
        }
    }
}
