//! The listeners: binds the native port and the optional agent and HTTP
//! ports, starts the endpoint on its own thread, runs an accept loop per
//! listening socket ([`crate::accept`], within the allow-list and
//! [`crate::admission`]'s limits, shared by all ports), and shuts down
//! gracefully on request.
//!
//! Shaped like mini-redis's `server.rs`, with admission in the place of its
//! semaphore, and a cancellation token in the place of its shutdown
//! broadcast.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use socket2::{Domain, Socket, Type};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::{accept_loop, Acceptor};
use crate::admission::{Admission, Limits, SUMMARY_EVERY};
use crate::ask::{ObserveConfig, Observer};
#[cfg(feature = "connections")]
use crate::connections::{reports::Reports, Recorder};
use crate::context::{ConnConfig, Context, Shared};
use crate::metrics::Metrics;
use crate::protocol::Protocol;
use crate::streams::Streams;
use crate::{AllowList, Builder, HealthServer, LandmarkRx, ServerError};

/// Listen backlog: room for a burst of checks arriving at once. The kernel
/// caps it at `net.core.somaxconn` (4096 on current kernels).
const BACKLOG: i32 = 4096;
/// Seconds a connection that has sent nothing waits in the kernel
/// (`TCP_DEFER_ACCEPT`, native and HTTP ports). Every client of those ports
/// speaks first, so a check is accepted the moment its request arrives,
/// while a silent connection costs no descriptor, no place and no work: the
/// kernel keeps it as a half-open request and, once its SYN-ACK
/// retransmissions (`net.ipv4.tcp_synack_retries`, 5: about 31 s) run out,
/// forgets it.
const DEFER_ACCEPT_SECS: libc::c_int = 30;
/// Listeners (SO_REUSEPORT) per deferred port. Each keeps up to
/// `net.core.somaxconn` (4096) silent connections; past that the kernel
/// answers with SYN cookies, and those connections are accepted (and
/// admission deals with them).
const SILENT_QUEUES: usize = 16;
/// Share of the process's open-file limit the endpoint may hold: the
/// service keeps the rest for its own work.
const FD_SHARE: u64 = 4;

impl Builder {
    /// Binds the listener and starts serving checks answered from `state_rx`.
    ///
    /// The server runs on its own single-threaded tokio runtime, on a
    /// background thread named `health-server`, whether or not the caller
    /// has a runtime. Binding happens before this returns, so an address
    /// in use is reported here.
    pub fn spawn(self, state_rx: LandmarkRx) -> Result<HealthServer, ServerError> {
        spawn(self, state_rx)
    }
}

fn spawn(cfg: Builder, state_rx: LandmarkRx) -> Result<HealthServer, ServerError> {
    #[cfg(feature = "connections")]
    if cfg.connections.as_ref().is_some_and(|c| c.ports.is_empty()) {
        return Err(ServerError::NoConnectionPorts);
    }
    let ports = std::iter::once((Protocol::Native, cfg.bind))
        .chain(cfg.listen.iter().copied())
        .map(|(p, addr)| Ok((p, bind(addr, p.peers_speak_first())?)))
        .collect::<Result<Vec<_>, ServerError>>()?;
    let addrs = ports.iter().map(|(p, (addr, _))| (*p, *addr)).collect();
    let listeners = ports
        .into_iter()
        .flat_map(|(p, (_, ls))| ls.into_iter().map(move |l| (p, l)))
        .collect();
    let shared = Arc::new(Shared {
        draining: AtomicBool::new(false),
        drain_changed: tokio::sync::watch::Sender::new(()),
        token: CancellationToken::new(),
    });
    let admission = Arc::new(Admission::new(limits(
        cfg.max_connections,
        cfg.max_per_source,
    )));
    // Taken: the recorder owns its config from here; `serve` needs the rest.
    #[cfg(feature = "connections")]
    let (cfg, recorder) = {
        let mut cfg = cfg;
        let recorder = cfg.connections.take().map(|c| Arc::new(Recorder::new(c)));
        (cfg, recorder)
    };
    #[cfg(feature = "connections")]
    let metrics = Metrics::new(Arc::clone(&admission), recorder.clone());
    #[cfg(not(feature = "connections"))]
    let metrics = Metrics::new(Arc::clone(&admission));
    let (done_tx, done_rx) = oneshot::channel();
    let serve = serve(
        listeners,
        cfg,
        state_rx,
        Endpoint {
            shared: Arc::clone(&shared),
            admission,
            #[cfg(feature = "connections")]
            recorder,
            metrics: metrics.clone(),
        },
        done_tx,
    );
    // Its own small runtime on its own thread, whatever the caller runs:
    // a check then costs the service one wake-up of its main loop and
    // nothing on its runtime's workers (whose idle ones a task spawned
    // there would wake), and a host runtime that is blocked or busy
    // cannot hold up a `fail`.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let thread = std::thread::Builder::new()
        .name("health-server".into())
        .spawn(move || rt.block_on(serve))
        .map_err(ServerError::Runtime)?;
    Ok(HealthServer::new(addrs, shared, metrics, done_rx, thread))
}

/// Binds a port: its address (with the real port when `addr` has port 0)
/// and its listening sockets. With `defer`, silent connections wait in the
/// kernel ([`DEFER_ACCEPT_SECS`]), across [`SILENT_QUEUES`] listeners.
///
/// The port is first bound alone, without SO_REUSEPORT: an address in use
/// (another instance of the service included, whose listeners exclude it
/// the same way) is an error, never a silent share of the port.
fn bind(addr: SocketAddr, defer: bool) -> Result<(SocketAddr, Vec<StdListener>), ServerError> {
    let err = |source| ServerError::Bind { addr, source };
    let alone = socket(addr).map_err(err)?;
    alone.bind(&addr.into()).map_err(err)?;
    let local = local_addr(&alone).map_err(err)?;
    if !defer {
        alone.listen(BACKLOG).map_err(err)?;
        return Ok((local, vec![alone.into()]));
    }
    drop(alone);
    let listeners = (0..SILENT_QUEUES)
        .map(|_| {
            let s = socket(local)?;
            s.set_reuse_port(true)?;
            s.bind(&local.into())?;
            crate::admission::defer_accept(&s, DEFER_ACCEPT_SECS)?;
            s.listen(BACKLOG)?;
            Ok(StdListener::from(s))
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(err)?;
    Ok((local, listeners))
}

/// A non-blocking TCP socket for `addr`'s family with SO_REUSEADDR, so a
/// restarted service gets its port back while old connections sit in
/// TIME_WAIT, and TCP_NODELAY, which the connections it accepts inherit
/// (no setsockopt per connection): a reply is one write, sent at once.
fn socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn local_addr(socket: &Socket) -> std::io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an IP socket"))
}

/// The limits in force: the configured ones, with the total within a
/// [`FD_SHARE`] of the process's open-file limit.
fn limits(total: usize, per_source: usize) -> Limits {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    let fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    let share = usize::try_from(fds / FD_SHARE)
        .unwrap_or(usize::MAX)
        .max(16);
    Limits {
        total: total.min(share),
        per_source: per_source.min(total.min(share)),
    }
}

/// What `spawn` made for the endpoint before it runs.
struct Endpoint {
    shared: Arc<Shared>,
    admission: Arc<Admission>,
    #[cfg(feature = "connections")]
    recorder: Option<Arc<Recorder>>,
    metrics: Metrics,
}

async fn serve(
    listeners: Vec<(Protocol, StdListener)>,
    cfg: Builder,
    state_rx: LandmarkRx,
    endpoint: Endpoint,
    done: oneshot::Sender<()>,
) {
    let Endpoint {
        shared,
        admission,
        #[cfg(feature = "connections")]
        recorder,
        metrics,
    } = endpoint;
    let observer = Observer::new(
        state_rx.kind,
        ObserveConfig {
            answer_deadline: cfg.answer_deadline,
            stale_after: cfg.stale_after,
            slow_answer: cfg.slow_answer,
        },
        metrics.clone(),
    );
    #[cfg(feature = "connections")]
    if let Some(recorder) = &recorder {
        // The first snapshot before anyone can ask: a report right after
        // start is not empty, and the landmark has its component.
        let recorder = Arc::clone(recorder);
        let _ = tokio::task::spawn_blocking(move || recorder.record()).await;
    }
    let acceptor = Arc::new(Acceptor {
        ctx: Arc::new(Context {
            observer,
            #[cfg(feature = "connections")]
            recorder: recorder.clone(),
            #[cfg(feature = "connections")]
            reports: Reports::new(),
            shared: Arc::clone(&shared),
            conn: ConnConfig {
                read_timeout: cfg.read_timeout,
                write_timeout: cfg.write_timeout,
                max_payload: cfg.max_payload,
            },
            exposition: metrics.registry(),
            metrics,
            streams: Streams::new(cfg.max_streams, cfg.max_streams_per_source),
        }),
        allow: if cfg.allow.is_empty() {
            AllowList::everyone()
        } else {
            AllowList::only(cfg.allow)
        },
        admission,
        tracker: TaskTracker::new(),
        token: shared.token.clone(),
    });
    let l = acceptor.admission.limits();
    tracing::debug!(
        limit = l.total,
        per_source = l.per_source,
        "health endpoint admission limits"
    );
    #[cfg(feature = "connections")]
    if let Some(recorder) = recorder {
        acceptor.tracker.spawn(recorder.run(acceptor.token.clone()));
    }
    acceptor.tracker.spawn(summaries(
        Arc::clone(&acceptor.admission),
        acceptor.token.clone(),
    ));
    for (protocol, listener) in listeners {
        acceptor
            .tracker
            .spawn(accept_loop(Arc::clone(&acceptor), protocol, listener));
    }
    acceptor.tracker.close();
    acceptor.tracker.wait().await;
    tracing::debug!("health endpoint stopped");
    let _ = done.send(());
}

/// Logs admission's summaries while evictions or refusals go on.
async fn summaries(admission: Arc<Admission>, token: CancellationToken) {
    let mut every = tokio::time::interval(SUMMARY_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = every.tick() => admission.summarise(false),
        }
    }
    admission.summarise(true);
}
