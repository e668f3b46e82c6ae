//! The history's exports hold little memory however long the history:
//! `/report.json`, `/report.csv`, `/report`, `/target/NAME` and
//! `health-probe report` in
//! every format write rows as they read them, so a history of more than
//! 100 MB raises the watcher's (and the CLI's) peak memory by less than
//! 32 MiB, and concurrent exports are bounded (the rest are told 503).
//! Real files, real HTTP on loopback, the defaults otherwise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::free_port;
use common::watcher::{scratch, write_config, Watcher};
use common::PROBE as PROBE_BIN;

/// Events written, each with a detail of [`DETAIL`] bytes (the most a
/// check's detail can be): about 50 MB in all, which held in memory would
/// pass the bound twice over.
const EVENTS: usize = 12_000;
const DETAIL: usize = 4096;
const MIB: u64 = 1024 * 1024;
const BOUND: u64 = 32 * MIB;

/// Fills the (watcher-made) database at `db` with raises and clears.
fn fill(db: &Path) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (time_ms, target, kind, addr, event, class, reason, detail, rtt_us, count)
                 VALUES (?1, ?2, 'tcp', '127.0.0.1:1', ?3, 'NG', 'refused', ?4, 1200, 2)",
            )
            .unwrap();
        for i in 0..EVENTS {
            let detail = format!("{i:08} {}", "d".repeat(DETAIL - 9));
            let event = if i % 2 == 0 { "raise" } else { "clear" };
            insert
                .execute(rusqlite::params![
                    now - 3_600_000 + i as i64,
                    "t0",
                    event,
                    detail
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// The peak resident memory of process `pid` (VmHWM), in bytes.
fn peak(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// GET `path` on a new connection: the status and the body's length.
fn get(listen: SocketAddr, path: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&all[..all.len().min(64)]).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, all.len())
}

/// `health-probe report ARGS` to /dev/null: its exit status and peak
/// resident memory (from wait4's rusage), in bytes.
// Reaped by wait4 itself, for its rusage, rather than Child::wait.
#[allow(clippy::zombie_processes)]
fn cli_peak(args: &[&str]) -> (i32, u64) {
    let child = Command::new(PROBE_BIN)
        .arg("report")
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(rc, child.id() as i32);
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64 * 1024)
}

#[test]
fn exports_stream_a_long_history_in_bounded_memory() {
    let dir = scratch("report-export");
    let listen: SocketAddr = free_port().parse().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "http_listen = \"{listen}\"\n\n[[target]]\nname = \"t0\"\nkind = \"tcp\"\naddr = \"127.0.0.1:1\"\ninterval = \"1h\"\n"
        ),
    );
    let db = dir.join("watch.db");
    // The watcher makes the database; the test fills it while it is away.
    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(10), |v| v["event"] == "start");
    assert_eq!(w.stop(), 0);
    fill(&db);
    let size = std::fs::metadata(&db).unwrap().len();
    assert!(size > 48 * 1_000_000, "{size} bytes");

    let mut w = Watcher::quiet(&config);
    w.wait_for("start", Duration::from_secs(20), |v| v["event"] == "start");
    let pid = w.child.id();
    // Warm: the routes, the page cache, a small report.
    assert_eq!(get(listen, "/report.json?since=1s").0, 200);
    assert_eq!(get(listen, "/metrics").0, 200);
    let before = peak(pid);

    let (code, json) = get(listen, "/report.json?since=1d");
    assert_eq!(code, 200);
    assert!(json as u64 > EVENTS as u64 * DETAIL as u64, "{json} bytes");
    let (code, csv) = get(listen, "/report.csv?since=1d");
    assert_eq!(code, 200);
    assert!(csv as u64 > EVENTS as u64 * DETAIL as u64, "{csv} bytes");
    let (code, page) = get(listen, "/report?since=1d");
    assert_eq!(code, 200);
    assert!(page < 4_000_000, "{page} bytes of page");
    // The target's own page: its 10 days' events, the latest 2,000 drawn.
    let (code, page) = get(listen, "/target/t0");
    assert_eq!(code, 200);
    assert!(page < 4_000_000, "{page} bytes of target page");
    // Four clients start a download and stop reading: they hold the four
    // places, and a fifth is told to come back.
    let stalled: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(listen).unwrap();
            write!(s, "GET /report.csv?since=1d HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut head = [0u8; 12];
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200");
            s
        })
        .collect();
    assert_eq!(get(listen, "/report.json?since=1d").0, 503);
    assert_eq!(get(listen, "/report?since=1d").0, 503);
    let grew = peak(pid).saturating_sub(before);
    assert!(grew < BOUND, "the watcher's peak grew {} MiB", grew / MIB);
    // Gone, they give their places back.
    drop(stalled);
    let t = std::time::Instant::now();
    while get(listen, "/report.json?since=1s").0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(20), "no place came back");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(w.stop(), 0);

    // The CLI, in every format, against a report of nothing.
    let db = db.to_str().unwrap();
    let (code, small) = cli_peak(&["--database", db, "--since", "1s"]);
    assert_eq!(code, 0);
    for format in ["json", "csv", "table"] {
        let (code, big) = cli_peak(&["--database", db, "--since", "1d", "--format", format]);
        assert_eq!(code, 0, "{format}");
        let grew = big.saturating_sub(small);
        assert!(
            grew < BOUND,
            "report --format {format}: peak grew {} MiB",
            grew / MIB
        );
    }
}
