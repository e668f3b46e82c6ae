//! What the workspace's integration tests share: reading a run's output,
//! loopback ports and peers that never answer, network namespaces, an
//! endpoint answering a fixed landmark, and the hostile text the escaping
//! tests send, Prometheus exposition checks, and a real Prometheus
//! ([`prometheus`]) and Alertmanager ([`alertmanager`]), HAProxy
//! ([`haproxy`]), and a headless browser ([`browser`]). A dev-dependency only; never published.

pub mod alertmanager;
pub mod browser;
pub mod haproxy;
pub mod netns;
pub mod older;
pub mod prometheus;
pub mod tls;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

/// Everything a hostile detail tries at once: an OSC window title, a
/// screen clear, CR, BS, NUL, DEL, a C1 CSI, and a newline followed by a
/// forged Nagios line.
pub const HOSTILE: &str =
    "\x1b]0;pwned\x07\x1b[2Jgone\rback\x08\0nul\x7f\u{9b}31m\nLANDMARK OK - 10.0.0.5:9100 is ok: fine|time=0s";

/// Asserts no byte of `out` is a control character but the final newline.
pub fn assert_clean(out: &str, what: &str) {
    let body = out.strip_suffix('\n').unwrap_or(out);
    assert!(
        !body.chars().any(char::is_control),
        "{what}: control characters in {out:?}"
    );
}

/// A run's exit code.
pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

/// A run's stdout, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A run's stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A loopback address nothing listens on right now, as text
/// (`127.0.0.1:PORT`, what configs and command lines take).
pub fn free_port() -> String {
    free_addr().to_string()
}

/// A loopback address nothing listens on right now.
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Where [`scratch`] makes the folder for `tag`: one per tag and test
/// process, so a test can name a file in it before it is made.
pub fn scratch_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hp-{tag}-{}", std::process::id()))
}

/// A fresh, empty folder for `tag` (what was there before is removed).
/// Tests of one process run at once: give each its own tag.
pub fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = scratch_path(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A listener that never accepts, with its accept queue filled: the kernel
/// drops further SYNs, so a connect gets no answer. Keep the returned
/// socket and fillers alive for the test.
pub fn unanswered_listener() -> (SocketAddr, socket2::Socket, Vec<TcpStream>) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break, // the queue is full
        }
    }
    (addr, sock, fillers)
}

/// Runs `program args` in a new network namespace (`unshare --net`): no
/// routes, no DNS reachable. Needs root; `None` with a note where
/// namespaces cannot be made, which fails the test under CI.
pub fn in_new_netns(program: &str, args: &[&str]) -> Option<Output> {
    let out = Command::new("unshare")
        .arg("--net")
        .arg(program)
        .args(args)
        .output();
    match out {
        Ok(o) if !String::from_utf8_lossy(&o.stderr).starts_with("unshare:") => Some(o),
        other => {
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot create a network namespace in CI: {other:?}"
            );
            eprintln!("SKIPPED: cannot create a network namespace: {other:?}");
            None
        }
    }
}

/// An endpoint on a free loopback port whose main thread answers `landmark`.
pub fn serving(landmark: health_server::Landmark) -> (health_server::HealthServer, String) {
    let (asks, rx) = health_server::channel();
    let server = health_server::Builder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .answer_deadline(Duration::from_millis(200))
        .spawn(rx)
        .unwrap();
    std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            ask.answer(landmark.clone());
        }
    });
    let addr = server.local_addr().to_string();
    (server, addr)
}

/// The value of the Prometheus sample line `series` (its name and labels,
/// exactly as exposed) in `body`.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// `promtool check metrics` (Debian's prometheus package) on an
/// exposition: it must succeed and say nothing. Without promtool the check
/// is skipped, except in CI, which installs it.
pub fn promtool_accepts(body: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "promtool: {e}");
            eprintln!("SKIPPED: promtool check metrics: {e}");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n{body}"
    );
}

/// Code blocks of one language (```lang, the whole info string) from a
/// document in the workspace's docs/.
pub fn doc_blocks(doc: &str, lang: &str) -> Vec<String> {
    let path = format!("{}/../docs/{doc}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let fence = format!("```{lang}");
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == fence {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push(body.join("\n") + "\n");
        }
    }
    assert!(!blocks.is_empty(), "no ```{lang} blocks in {doc}");
    blocks
}

/// An HTTP receiver on loopback that reads each request (head and
/// `Content-Length` body) and answers it with the next of `replies` (in
/// turn), then closes: a webhook relay that speaks HTTP/1.0 or closes
/// after each reply. Its address, and how many requests it has read.
pub fn replying_receiver(
    replies: Vec<&'static [u8]>,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for (i, s) in listener.incoming().enumerate() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut got = Vec::new();
            let mut buf = [0; 4096];
            let whole = |got: &[u8]| {
                let text = String::from_utf8_lossy(got);
                text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0usize);
                    body.len() >= length
                })
            };
            while !whole(&got) {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(replies[i % replies.len()]);
        }
    });
    (addr, count)
}

/// A binary or example built by `cargo test --workspace` (the README's
/// command), beside the running test's `deps/` directory.
pub fn built(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    [dir.join(name), dir.join("examples").join(name)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not built: run cargo test --workspace"))
}

/// Whether `program` is on the PATH; in CI (which installs it) its
/// absence fails the test, elsewhere the test says `SKIPPED` and returns.
pub fn require(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {program} is not installed");
    }
    found
}

/// Whether every program of a peer's package answers `--version`; in CI
/// (which installs them) their absence fails the test, elsewhere the test
/// says `SKIPPED` and returns.
pub fn peer_installed(programs: &[&str], package: &str) -> bool {
    let found = programs.iter().all(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{package} is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {package} is not installed");
    }
    found
}

/// The C example service (`examples/c/landmark_service.c`, on the C ABI),
/// built once per test process with `make -C examples/c PROFILE=debug`
/// (with the C++ example, and the debug library they link). Its path.
pub fn c_landmark_service() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let out = Command::new("make")
                .args(["-s", "-C", "examples/c", "PROFILE=debug"])
                .current_dir(&root)
                .output()
                .expect("run make");
            assert!(
                out.status.success(),
                "make -C examples/c:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            root.join("target/c-debug")
        })
        .join("landmark_service")
}

/// `answer_once` (`examples/c/answer_once.cpp`, on the C++ wrappers),
/// built with [`c_landmark_service`].
pub fn cpp_answer_once() -> std::path::PathBuf {
    c_landmark_service().with_file_name("answer_once")
}
