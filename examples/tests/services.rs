//! Runs each example service as a real process and drives it over loopback:
//! its line protocol, and its landmark through the health endpoint,
//! including a hung main loop and its recovery.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use health_proto::blocking::{read_frame, write_frame};
use health_proto::{LandmarkReply, Request, Response, State};

/// `cargo test` builds the examples next to the test binary's `deps/` dir.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "{} not built", path.display());
    path
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
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
    for _ in 0..3 {
        let (listen, health) = (free_addr(), free_addr());
        let child = Command::new(example(name))
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
                t.elapsed() < Duration::from_secs(10),
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
    assert!(t.elapsed() < Duration::from_millis(900));
    assert_eq!(c.reply(), "OK hung 1500ms");
    let l = check(svc.health);
    assert_eq!(l.state, State::Ok);
    assert_eq!(c.call("QUIT"), "BYE");
}

#[test]
fn landmark_service_loop() {
    exercise("landmark_service");
}

#[test]
fn plain_thread_service_loop() {
    exercise("plain_thread_service");
}
