//! A small custom line-protocol TCP service (tokio) that embeds the health
//! endpoint. Its one main loop both serves client commands and answers
//! landmark asks, so `HANG <ms>` really stops the answers, as a deadlocked
//! service would. Its health endpoint also records who is connected to the
//! service's port (`health-probe connections 127.0.0.1:9100`).
//!
//! ```text
//! cargo build --release --workspace --examples
//! target/release/examples/landmark_service --listen 127.0.0.1:7000 --health 127.0.0.1:9100
//! ```
//! The line protocol is documented in `examples/lib.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use health_examples::{Command, ServiceState, CLIENT_IDLE, MAX_LINE};
use health_server::{connections, TcpState};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Framed, LinesCodec};

/// Example service: a line protocol on --listen, a landmark health endpoint
/// on --health.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the service's own line protocol.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Address of the health endpoint (probe it with health-probe).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9100")]
    health: SocketAddr,
    /// Also answer HAProxy agent-check on this address.
    #[arg(long, value_name = "ADDR")]
    agent: Option<SocketAddr>,
    /// Also answer HTTP /healthz, /livez, /readyz on this address.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Also answer gRPC health v1 (grpc.health.v1.Health: Check, Watch,
    /// List) on this address.
    #[arg(long, value_name = "ADDR")]
    grpc: Option<SocketAddr>,
    /// How often the health endpoint records who is connected to --listen,
    /// in milliseconds (`health-probe connections HEALTH` shows it).
    #[arg(long, value_name = "MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..))]
    connections_period: u64,
    /// Flag the landmark's `connections` component while more than N
    /// connections sit in CLOSE_WAIT (clients gone, sockets not closed).
    #[arg(long, value_name = "N")]
    close_wait_over: Option<u32>,
    /// Who may read the connection reports besides this host: a network
    /// (`10.0.0.0/8`) or an address, repeated. Without it, only loopback
    /// clients may (a report names the service's clients).
    #[arg(long, value_name = "CIDR", value_parser = health_server::allow::parse_network)]
    connections_allow: Vec<health_server::allow::IpNet>,
}

/// A client command on its way to the main loop, with where to send the reply.
type Request = (Command, oneshot::Sender<String>);

/// Commands queued for the main loop at most; clients wait beyond it.
const QUEUE: usize = 64;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let (asks, state_rx) = health_server::channel();
    let mut recorded = connections::Config::new()
        .port(args.listen.port(), "example")
        .period(Duration::from_millis(args.connections_period));
    if let Some(n) = args.close_wait_over {
        recorded = recorded.state_over(TcpState::CloseWait, n);
    }
    if !args.connections_allow.is_empty() {
        let mut readers = health_server::AllowList::loopback()
            .networks()
            .unwrap_or_default()
            .to_vec();
        readers.extend(&args.connections_allow);
        recorded = recorded.readers(health_server::AllowList::only(readers));
    }
    let mut builder = health_server::Builder::new()
        .bind(args.health)
        .connections(recorded);
    if let Some(addr) = args.agent {
        builder = builder.agent_bind(addr);
    }
    if let Some(addr) = args.grpc {
        builder = builder.grpc_bind(addr);
    }
    if let Some(addr) = args.http {
        builder = builder.http_bind(addr);
    }
    let health = builder.spawn(state_rx)?;
    let listener = TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, health = %health.local_addr(), "landmark_service ready");

    let clients = Arc::new(AtomicUsize::new(0));
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Request>(QUEUE);
    tokio::spawn(accept_clients(listener, cmd_tx, Arc::clone(&clients)));

    // The main loop: the only place the service's state lives.
    let mut state = ServiceState::default();
    loop {
        tokio::select! {
            Some((cmd, reply)) = cmd_rx.recv() => {
                if let Command::Hang(d) = cmd {
                    // The loop does nothing else meanwhile: no commands, no
                    // landmark answers. This is the failure we detect.
                    tracing::warn!(ms = d.as_millis() as u64, "main loop hanging");
                    tokio::time::sleep(d).await;
                }
                let _ = reply.send(state.apply(&cmd));
            }
            Some(ask) = asks.recv() => {
                ask.answer(state.landmark(clients.load(Ordering::Relaxed)));
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down");
    health.shutdown().await;
    Ok(())
}

async fn accept_clients(
    listener: TcpListener,
    cmd_tx: mpsc::Sender<Request>,
    clients: Arc<AtomicUsize>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let cmd_tx = cmd_tx.clone();
                let clients = Arc::clone(&clients);
                tokio::spawn(async move {
                    clients.fetch_add(1, Ordering::Relaxed);
                    serve_client(stream, cmd_tx).await;
                    clients.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_client(stream: TcpStream, cmd_tx: mpsc::Sender<Request>) {
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
    loop {
        let line = match tokio::time::timeout(CLIENT_IDLE, lines.next()).await {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(e))) => {
                let _ = lines.send(format!("ERR {e}")).await;
                return;
            }
            Ok(None) | Err(_) => return,
        };
        let reply = match Command::parse(&line) {
            Ok(cmd) => {
                let quit = cmd == Command::Quit;
                let (tx, rx) = oneshot::channel();
                if cmd_tx.send((cmd, tx)).await.is_err() {
                    return;
                }
                let Ok(reply) = rx.await else { return };
                if quit {
                    let _ = lines.send(reply).await;
                    return;
                }
                reply
            }
            Err(e) => format!("ERR {e}"),
        };
        if lines.send(reply).await.is_err() {
            return;
        }
    }
}
