//! Runs each example service as a real process and drives it over loopback:
//! its line protocol, and its landmark through the health endpoint,
//! including a hung main loop and its recovery. The C example
//! (`examples/c`, on the C ABI) is driven by the same steps, and once more
//! under valgrind, which must find no invalid access and no leak.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use health_proto::blocking::{read_frame, write_frame};
use health_proto::{LandmarkReply, Request, Response, State};

/// `cargo test` builds the examples next to the test binary's `deps/` dir.
fn example(name: &str) -> PathBuf {
    let path = example_dir().join(name);
    assert!(path.exists(), "{} not built", path.display());
    path
}

struct Service {
    child: Child,
    listen: SocketAddr,
    health: SocketAddr,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example on two free loopback ports. A port found free can be taken
/// before the service binds it (by a concurrent test's outgoing connection,
/// from the same ephemeral range); the service then exits at once, and is
/// started again on new ports, at most 3 times.
fn start(name: &str) -> Service {
    start_with(name, &[example(name).display().to_string()])
}

/// `command` (a program and its first arguments) with `--listen` and
/// `--health` on free ports, as [`start`].
fn start_with(name: &str, command: &[String]) -> Service {
    for _ in 0..3 {
        let (listen, health) = (test_support::free_addr(), test_support::free_addr());
        let child = Command::new(&command[0])
            .args(&command[1..])
            .args([
                "--listen",
                &listen.to_string(),
                "--health",
                &health.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut svc = Service {
            child,
            listen,
            health,
        };
        let t = Instant::now();
        while TcpStream::connect(listen).is_err() || TcpStream::connect(health).is_err() {
            if let Some(status) = svc.child.try_wait().unwrap() {
                eprintln!("{name} exited at start ({status}), ports {listen} {health}: retrying");
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{name} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if svc.child.try_wait().unwrap().is_none() {
            return svc;
        }
    }
    panic!("{name} exited at start three times");
}

struct Client {
    out: TcpStream,
    lines: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            out: s.try_clone().unwrap(),
            lines: BufReader::new(s),
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.out, "{line}").unwrap();
    }

    fn reply(&mut self) -> String {
        let mut l = String::new();
        self.lines.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }

    fn call(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }
}

fn check(addr: SocketAddr) -> LandmarkReply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_frame(&mut s, &Request::Check(Default::default()).to_frame(1)).unwrap();
    match Response::from_frame(&read_frame(&mut s, 1 << 20).unwrap()).unwrap() {
        Response::Landmark(l) => l,
        other => panic!("expected a landmark, got {other:?}"),
    }
}

fn exercise(name: &str) {
    let svc = start(name);
    drive(&svc, Duration::ZERO);
    dies(svc);
}

/// Every step of the line protocol and the landmark; `slack` is added to
/// the time a hung loop's check may take (valgrind slows the endpoint).
fn drive(svc: &Service, slack: Duration) {
    let mut c = Client::new(svc.listen);
    assert_eq!(c.call("PING"), "PONG");
    let l = check(svc.health);
    assert_eq!((l.state, l.detail.as_str()), (State::Ok, "serving"));
    assert_eq!(l.fields["clients"], 1);

    assert_eq!(c.call("SET degraded replica lag 12s"), "OK");
    assert_eq!(c.call("WEIGHT 50"), "OK");
    let l = check(svc.health);
    assert_eq!(l.state, State::Degraded);
    assert_eq!(l.detail, "replica lag 12s");
    assert_eq!(l.weight.map(|w| w.get()), Some(50));
    // keepalived's misc_dynamic: healthy with weight 50 exits 52.
    let dynamic = Command::new(example_dir().join("..").join("health-probe"))
        .args([&svc.health.to_string(), "--expect", "degraded", "--dynamic"])
        .output()
        .unwrap();
    assert_eq!(dynamic.status.code(), Some(52), "{dynamic:?}");
    assert_eq!(c.call("SET drain restarting"), "OK");
    assert_eq!(check(svc.health).state, State::Drain);
    assert_eq!(c.call("SET ok"), "OK");

    assert!(c.call("WEIGHT 300").starts_with("ERR "));
    assert!(c.call("FLY away").starts_with("ERR unknown command"));

    // A hung main loop: checks fail within the 500 ms deadline, then recover.
    c.send("HANG 1500");
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let l = check(svc.health);
    assert_eq!(l.state, State::Fail);
    assert_eq!(l.detail, "main thread did not answer within 500ms");
    assert!(t.elapsed() < Duration::from_millis(900) + slack);
    assert_eq!(c.reply(), "OK hung 1500ms");
    let l = check(svc.health);
    assert_eq!(l.state, State::Ok);
    assert_eq!(c.call("QUIT"), "BYE");
}

/// Where `cargo test` puts the examples (`target/debug/examples`).
fn example_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

/// The service dies: a check fails at once (refused), not at a timeout.
fn dies(mut svc: Service) {
    let _ = svc.child.kill();
    let _ = svc.child.wait();
    let t = Instant::now();
    let probe = Command::new(example_dir().join("..").join("health-probe"))
        .arg(svc.health.to_string())
        .output()
        .unwrap();
    assert_eq!(probe.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&probe.stderr).contains("refused"),
        "{probe:?}"
    );
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[test]
fn landmark_service_loop() {
    exercise("landmark_service");
}

#[test]
fn plain_thread_service_loop() {
    exercise("plain_thread_service");
}

#[test]
fn c_landmark_service_loop() {
    let c = test_support::c_landmark_service();
    let svc = start_with("C landmark_service", &[c.display().to_string()]);
    drive(&svc, Duration::ZERO);
    dies(svc);
}

#[test]
fn c_landmark_service_under_valgrind() {
    let found = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "valgrind is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: valgrind is not installed");
        return;
    }
    let log = std::env::temp_dir().join(format!("valgrind-c-example-{}.log", std::process::id()));
    let mut svc = start_with(
        "C landmark_service under valgrind",
        &[
            "valgrind".into(),
            "--leak-check=full".into(),
            "--errors-for-leak-kinds=definite,indirect".into(),
            "--error-exitcode=99".into(),
            format!("--log-file={}", log.display()),
            test_support::c_landmark_service().display().to_string(),
        ],
    );
    drive(&svc, Duration::from_millis(1500));
    // SIGTERM: the loop's signalfd stops it, and it frees everything.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(svc.child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Some(status) = svc.child.try_wait().unwrap() {
            break status;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert_eq!(status.code(), Some(0), "{report}");
    assert!(report.contains("ERROR SUMMARY: 0 errors"), "{report}");
    assert!(report.contains("definitely lost: 0 bytes"), "{report}");
    assert!(report.contains("indirectly lost: 0 bytes"), "{report}");
}

#[test]
fn the_cpp_wrappers_answer_an_ask() {
    let program = test_support::cpp_answer_once();
    let health = test_support::free_addr();
    let mut child = Command::new(&program)
        .arg(health.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut started = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut started)
        .unwrap();
    assert_eq!(started, "listening\n");
    let l = check(health);
    assert_eq!((l.state, l.detail.as_str()), (State::Degraded, "from C++"));
    assert_eq!(l.weight.map(|w| w.get()), Some(7));
    assert_eq!(l.components["cache"].state, State::Fail);
    assert_eq!(
        (l.fields["clients"].as_i64(), l.fields["lang"].as_str()),
        (Some(2), Some("c++"))
    );
    assert!(child.wait().unwrap().success());
}
