//! The accept loops: one per listening socket, each taking connections
//! within the allow-list and [`crate::admission`]'s limits, reading what a
//! connection brought, and handing it to its protocol
//! ([`crate::protocol`]) as a task.
//!
//! A connection is read straight after accept, before admission: on the
//! native and HTTP ports, deferred accept means a check's request is
//! already in, so the first read both tells a fresh connection from a
//! silent one (let in by a SYN cookie) and starts the answer, with no
//! `peek` and no wait on the reactor ([`crate::conn`]).

use std::fs::File;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use socket2::{SockRef, Socket};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, Refusal};
use crate::allow::AllowList;
use crate::conn::Conn;
use crate::context::Context;
use crate::protocol::Protocol;

/// What every accept loop shares.
pub(crate) struct Acceptor {
    pub(crate) ctx: Arc<Context>,
    pub(crate) allow: AllowList,
    pub(crate) admission: Arc<Admission>,
    pub(crate) tracker: TaskTracker,
    pub(crate) token: CancellationToken,
}

/// Most bytes the first read takes: a check request, or an HTTP head, is
/// far shorter; the rest waits for the protocol's own reads.
const FIRST_READ: usize = 4096;

/// A descriptor kept open to be given up when the process runs out: then
/// the connection waiting in the kernel can still be accepted (and an idle
/// one evicted in its place) rather than the accept failing again and again.
fn spare_fd() -> Option<File> {
    File::open("/dev/null").ok()
}

/// Whether an accept error means the process or system is out of
/// descriptors.
fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// One connection from `listener`: a non-blocking socket (accept4 sets it
/// so, with no second syscall) that the reactor does not know yet.
async fn accept(listener: &AsyncFd<StdListener>) -> std::io::Result<(Socket, SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        let accepted = ready.try_io(|l| {
            SockRef::from(l.get_ref()).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        });
        match accepted {
            Ok(Ok((socket, addr))) => match addr.as_socket() {
                Some(peer) => return Ok((socket, peer)),
                // Not an IP peer: cannot happen on a TCP listener.
                None => continue,
            },
            Ok(Err(e)) => return Err(e),
            // Nothing waiting (another loop's, or a spurious wake-up):
            // try_io cleared the readiness, so this waits again.
            Err(_would_block) => continue,
        }
    }
}

/// Accepts on `listener` until the endpoint shuts down.
pub(crate) async fn accept_loop(a: Arc<Acceptor>, protocol: Protocol, listener: StdListener) {
    // SAFETY: the AsyncFd owns the listener, whose descriptor stays open
    // and the same until the AsyncFd drops it.
    let listener = match unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) } {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, ?protocol, "health endpoint cannot register its listener");
            return;
        }
    };
    let mut spare = spare_fd();
    let mut backoff = Duration::from_millis(5);
    loop {
        let (socket, peer) = tokio::select! {
            _ = a.token.cancelled() => break,
            accepted = accept(&listener) => match accepted {
                Ok(conn) => {
                    backoff = Duration::from_millis(5);
                    if spare.is_none() {
                        spare = spare_fd();
                    }
                    conn
                }
                Err(e) if out_of_fds(&e) && spare.is_some() => {
                    // Out of descriptors: give up the spare so the waiting
                    // connection can be accepted and admitted (admission
                    // then evicts an idle connection, freeing one).
                    tracing::warn!(error = %e, "health endpoint out of file descriptors; using its spare");
                    spare = None;
                    continue;
                }
                Err(e) => {
                    // Out of descriptors with no spare: give back an idle
                    // connection's and retry. With nothing to give back,
                    // or another error, keep serving the connections we
                    // have and retry after a short pause (5 ms, doubling
                    // to 100 ms), never a busy loop.
                    if out_of_fds(&e) && a.admission.shed_one() {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    tracing::error!(error = %e, "health endpoint cannot accept; retrying");
                    tokio::select! {
                        _ = a.token.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                    continue;
                }
            },
        };
        if !a.allow.allows(peer.ip()) {
            tracing::info!(%peer, "refused health check: source not in the allow-list");
            a.ctx.metrics.refused_by_allow_list();
            drop(socket);
            continue;
        }
        let conn = Conn::accepted(socket, peer);
        // What arrived with the connection decides its first state: with
        // bytes to read it is fresh (never evicted before it is answered);
        // with nothing (let in by a SYN cookie, or on the agent port) it
        // is idle at once.
        let mut first = BytesMut::new();
        let silent = match conn.read_now(&mut first, FIRST_READ) {
            Ok(0) if protocol.peers_speak_first() => {
                // Connected and closed without a request (a port check):
                // nothing to answer.
                continue;
            }
            Ok(n) => n == 0,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            // Reset before it said anything: nothing to answer.
            Err(_) => continue,
        };
        let slot = match a.admission.admit(peer.ip(), silent) {
            Ok(slot) => slot,
            Err(refusal) => {
                refuse(&conn, protocol, refusal, &a.ctx, &first);
                continue;
            }
        };
        let ctx = Arc::clone(&a.ctx);
        let token = a.token.clone();
        a.tracker.spawn(async move {
            protocol.serve(conn, first, &ctx, slot, token).await;
        });
    }
}

/// Tells a connection admission refused why, best effort and never
/// blocking (a fresh socket's send buffer takes these few bytes at once):
/// the service's `fail` when the server already knows it (a hung or gone
/// main thread, a stale landmark), so that a balancer hears the service is
/// down even while the endpoint is flooded; else that it is busy. `first`
/// is what the connection sent at accept.
fn refuse(conn: &Conn, protocol: Protocol, refusal: Refusal, ctx: &Context, first: &[u8]) {
    let reply = match ctx.observer.known_failure() {
        Some(fail) => protocol.failed_reply(&fail, first),
        None => protocol.busy_reply(&refusal.to_string()),
    };
    let _ = conn.write_now(&reply);
}
