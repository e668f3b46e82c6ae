//! What the server benchmarks (`load`, `isolated`) share: each server runs
//! as a child process of the benchmark (`BIN --serve NAME`), so its CPU and
//! memory are its own; the client's connections rotate over loopback source
//! addresses; and the gRPC peer, tonic-health, is served and checked the
//! same way in both.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use health_proto::codec::FrameCodec;
use health_proto::{Landmark, Response, State};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::FramedRead;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A boxed error, as the benchmark binaries report them.
pub type BoxError = Box<dyn std::error::Error>;

/// A server in a child process (this executable run with `--serve NAME`),
/// ended when dropped: its stdin closes and it exits.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The addresses it announced, in the order its `--serve` mode prints
    /// them (the first is its main port).
    pub addrs: Vec<SocketAddr>,
}

impl ChildServer {
    /// Starts `--serve NAME` and waits for its `listening ADDR...` line.
    pub fn start(name: &str) -> Result<ChildServer, BoxError> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let addrs = line
            .strip_prefix("listening ")
            .ok_or_else(|| format!("{name} server said {line:?}"))?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<SocketAddr>, _>>()?;
        if addrs.is_empty() {
            return Err(format!("{name} server announced no address").into());
        }
        Ok(ChildServer {
            child,
            stdin,
            addrs,
        })
    }

    /// Its main port.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU time the server has used so far (clock ticks).
    pub fn cpu(&self) -> Duration {
        crate::process_cpu(self.pid())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In a `--serve` child: ends this process when the parent closes its
/// stdin or dies.
pub fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

/// In a `--serve` child: tells the parent where it listens.
pub fn announce(addrs: &[SocketAddr]) {
    let list: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening {}", list.join(" "));
    let _ = out.flush();
}

/// In a `--serve` child: health-server with `Builder::new()`'s defaults on
/// a free loopback port (and its HTTP port too with `http`), announced to
/// the parent. The caller's main loop answers the asks; keep the server.
pub fn serve_endpoint(
    http: bool,
) -> Result<(health_server::Asks, health_server::HealthServer), BoxError> {
    let (asks, state_rx) = health_server::channel();
    let mut builder = health_server::Builder::new().bind("127.0.0.1:0".parse()?);
    if http {
        builder = builder.http_bind("127.0.0.1:0".parse()?);
    }
    let server = builder.spawn(state_rx)?;
    let addrs: Vec<SocketAddr> = std::iter::once(server.local_addr())
        .chain(server.http_addr())
        .collect();
    announce(&addrs);
    exit_with_parent();
    Ok((asks, server))
}

/// Source addresses the clients rotate over: 127.1.0.1 onwards.
const SOURCES: u32 = 1000;

/// A new connection to `addr` from the next loopback source address, with
/// TCP_NODELAY.
///
/// The client closes first, so each check leaves a TIME_WAIT socket on the
/// client side. From a single source address, tens of thousands of checks a
/// second soon hold every ephemeral port in TIME_WAIT and `connect()` spends
/// its time searching for a reusable one: the load generator, not the server,
/// would set the ceiling. Rotating over many 127/8 sources keeps each
/// address's share small. Every peer gets the same treatment.
pub async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % SOURCES;
    let source = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + n);
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    socket.set_nodelay(true)?;
    socket.connect(addr).await
}

/// The gRPC peer: tonic-health's reporter and server on a default
/// multi-threaded tokio runtime, as a tonic service would run it.
pub fn serve_grpc() -> Result<(), BoxError> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (_reporter, service) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        announce(&[listener.local_addr()?]);
        exit_with_parent();
        // TCP_NODELAY on both ends: without it, HTTP/2's small writes meet
        // delayed ACKs and every check waits ~40 ms, which would make the
        // peer look far worse than a tuned deployment.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    })
}

/// One check over a new HTTP/2 connection to the gRPC server at `url`
/// (`http://ADDR`), made by [`connect`] like every other peer's.
pub async fn grpc_check(addr: SocketAddr, url: &'static str) -> Result<(), String> {
    let connector = tower::service_fn(move |_: tonic::transport::Uri| async move {
        connect(addr).await.map(hyper_util::rt::TokioIo::new)
    });
    let channel = tonic::transport::Endpoint::from_static(url)
        .connect_with_connector(connector)
        .await
        .map_err(|e| e.to_string())?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|e| e.to_string())?;
    if reply.get_ref().status == ServingStatus::Serving as i32 {
        Ok(())
    } else {
        Err(format!("status {}", reply.get_ref().status))
    }
}

/// One check over a new connection to a landmark endpoint, as
/// `health-probe` makes it (the request, then a half-close); the landmark
/// on an `ok` reply.
pub async fn landmark_check(addr: SocketAddr, request: &[u8]) -> Result<Landmark, String> {
    let mut stream = connect(addr).await.map_err(|e| e.to_string())?;
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    // As health-probe does: one request, said with a half-close.
    stream.shutdown().await.map_err(|e| e.to_string())?;
    let mut frames = FramedRead::new(stream, FrameCodec::default());
    let frame = frames
        .next()
        .await
        .ok_or("closed without a reply")?
        .map_err(|e| e.to_string())?;
    match Response::from_frame(&frame).map_err(|e| e.to_string())? {
        Response::Landmark(reply) if reply.state == State::Ok => Ok(reply.landmark),
        other => Err(format!("unexpected reply {other:?}")),
    }
}
