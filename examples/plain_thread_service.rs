//! The same line-protocol service with no async runtime in its own code: a
//! plain-thread tick loop, like a game server's. The health endpoint runs its
//! own runtime on a background thread; the loop answers asks without ever
//! blocking on them (`Asks::answer_pending`), between ticks of real work.
//!
//! ```text
//! target/release/examples/plain_thread_service --listen 127.0.0.1:7001 --health 127.0.0.1:9101
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use health_examples::{Command, ServiceState, CLIENT_IDLE, MAX_LINE};

/// Example service with a plain-thread main loop: a line protocol on
/// --listen, a landmark health endpoint on --health.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the service's own line protocol.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7001")]
    listen: SocketAddr,
    /// Address of the health endpoint (probe it with health-probe).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9101")]
    health: SocketAddr,
    /// Main loop tick.
    #[arg(long, value_name = "MS", default_value_t = 20)]
    tick_ms: u64,
}

type Request = (Command, mpsc::Sender<String>);

/// Client threads at most; more connections get `ERR busy`.
const MAX_CLIENTS: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let (asks, state_rx) = health_server::channel();
    // No runtime here: the endpoint starts its own on a background thread.
    let health = health_server::Builder::new()
        .bind(args.health)
        .spawn(state_rx)?;
    let listener = TcpListener::bind(args.listen)?;
    tracing::info!(listen = %listener.local_addr()?, health = %health.local_addr(), "plain_thread_service ready");

    let clients = Arc::new(AtomicUsize::new(0));
    let (cmd_tx, cmd_rx) = mpsc::sync_channel::<Request>(64);
    let c = Arc::clone(&clients);
    std::thread::spawn(move || accept_clients(listener, cmd_tx, c));

    let mut state = ServiceState::default();
    let tick = Duration::from_millis(args.tick_ms.max(1));
    loop {
        // One tick of "work": the commands that arrived, then health asks.
        if !run_commands(&cmd_rx, &mut state) {
            break;
        }
        asks.answer_pending(|| state.landmark(clients.load(Ordering::Relaxed)));
        std::thread::sleep(tick);
    }
    health.shutdown_blocking();
    Ok(())
}

/// Runs the queued commands; false once no client thread can send any more.
fn run_commands(cmd_rx: &Receiver<Request>, state: &mut ServiceState) -> bool {
    loop {
        match cmd_rx.try_recv() {
            Ok((cmd, reply)) => {
                if let Command::Hang(d) = cmd {
                    tracing::warn!(ms = d.as_millis() as u64, "main loop hanging");
                    std::thread::sleep(d);
                }
                let _ = reply.send(state.apply(&cmd));
            }
            Err(mpsc::TryRecvError::Empty) => return true,
            Err(mpsc::TryRecvError::Disconnected) => return false,
        }
    }
}

fn accept_clients(listener: TcpListener, cmd_tx: SyncSender<Request>, clients: Arc<AtomicUsize>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if clients.load(Ordering::Relaxed) >= MAX_CLIENTS {
            let _ = stream.write_all(b"ERR busy\n");
            continue;
        }
        clients.fetch_add(1, Ordering::Relaxed);
        let cmd_tx = cmd_tx.clone();
        let clients = Arc::clone(&clients);
        std::thread::spawn(move || {
            serve_client(stream, &cmd_tx);
            clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn serve_client(stream: TcpStream, cmd_tx: &SyncSender<Request>) {
    if stream.set_read_timeout(Some(CLIENT_IDLE)).is_err() {
        return;
    }
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    // `take` bounds each line: a client cannot make us buffer without end.
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_line(&mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(n) if n > MAX_LINE => {
                let _ = out.write_all(b"ERR line too long\n");
                return;
            }
            Ok(_) => {}
        }
        let reply = match Command::parse(&line) {
            Ok(cmd) => {
                let quit = cmd == Command::Quit;
                let (tx, rx) = mpsc::channel();
                if cmd_tx.send((cmd, tx)).is_err() {
                    return;
                }
                let Ok(reply) = rx.recv() else { return };
                if quit {
                    let _ = writeln!(out, "{reply}");
                    return;
                }
                reply
            }
            Err(e) => format!("ERR {e}"),
        };
        if writeln!(out, "{reply}").is_err() {
            return;
        }
    }
}
