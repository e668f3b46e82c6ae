//! Where landmarks come from: the service's main thread, asked over a
//! channel ([`channel`]), or pushed by it ([`publisher`]).
//!
//! The main thread's side ([`Asks`], [`Publisher`]) needs no async runtime:
//! it works from a tokio `select!` loop, a blocking thread, or a poll loop.
//! The server's side is the [`LandmarkRx`] handed to [`crate::spawn`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use health_proto::Landmark;
use tokio::sync::{oneshot, watch, Notify};
use tokio_util::sync::{CancellationToken, DropGuard};

/// The receiving side of the service's landmarks, handed to [`crate::spawn`].
///
/// Made by [`channel`] (the server asks the main thread on each check) or by
/// [`publisher`] (the main thread pushes landmarks as they change).
pub struct LandmarkRx {
    pub(crate) kind: SourceKind,
}

impl std::fmt::Debug for LandmarkRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            SourceKind::Ask(..) => "ask",
            SourceKind::Publish(_) => "publish",
        };
        f.debug_struct("LandmarkRx").field("kind", &kind).finish()
    }
}

pub(crate) enum SourceKind {
    /// Asks go out on the channel ([`AskTx`]).
    Ask(AskTx),
    Publish(watch::Receiver<Published>),
}

/// The server's end of the ask channel.
pub(crate) struct AskTx {
    /// `None` only while dropping: see the `Drop` impl.
    tx: Option<flume::Sender<Ask>>,
    /// Wakes a main loop waiting in [`Asks::recv`].
    notify: Arc<Notify>,
    /// Cancelled when the main thread's [`Asks`] is dropped, even with an
    /// ask still queued.
    pub(crate) gone: CancellationToken,
    /// Called after each ask is queued ([`channel_with_wakeup`]).
    wake: Option<WakeUp>,
}

impl AskTx {
    /// Queues `ask` without waiting, then wakes the main loop whichever way
    /// it waits.
    pub(crate) fn try_send(&self, ask: Ask) -> Result<(), flume::TrySendError<Ask>> {
        let Some(tx) = &self.tx else {
            return Err(flume::TrySendError::Disconnected(ask));
        };
        tx.try_send(ask)?;
        // After the channel's lock is released: a woken async loop takes
        // the ask at once, with no second wake-up.
        self.notify.notify_one();
        if let Some(wake) = &self.wake {
            wake();
        }
        Ok(())
    }

    /// Asks queued and not yet taken.
    pub(crate) fn len(&self) -> usize {
        self.tx.as_ref().map_or(0, flume::Sender::len)
    }

    /// Whether the main thread's [`Asks`] is gone.
    pub(crate) fn is_disconnected(&self) -> bool {
        self.tx.as_ref().is_none_or(flume::Sender::is_disconnected)
    }
}

impl Drop for AskTx {
    fn drop(&mut self) {
        // Disconnect first, then wake: an async loop waiting in `recv`
        // looks again and sees the server gone.
        drop(self.tx.take());
        self.notify.notify_one();
    }
}

#[derive(Clone)]
pub(crate) struct Published {
    pub(crate) landmark: Arc<Landmark>,
    pub(crate) at: Instant,
}

/// Creates the ask channel between the health server and the main thread.
///
/// Give the [`LandmarkRx`] to [`crate::spawn`] and keep [`Asks`] in the main
/// loop. On each check the server sends an [`Ask`]; the main loop answers it
/// with its current [`Landmark`]. Concurrent checks share one ask, so there is
/// never more than one ask waiting in the channel.
pub fn channel() -> (Asks, LandmarkRx) {
    ask_channel(None)
}

/// What [`channel_with_wakeup`] calls when an ask is queued.
pub(crate) type WakeUp = Arc<dyn Fn() + Send + Sync>;

/// [`channel`] for event loops that wait on a file descriptor: `wake` is
/// called (on one of the server's threads) right after each ask is queued,
/// so that it can make the loop's descriptor readable, by writing to an
/// eventfd or a pipe, and the loop then takes the ask with
/// [`Asks::try_recv`]. `wake` must return at once: never block in it.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use std::sync::atomic::{AtomicBool, Ordering};
/// let flag = Arc::new(AtomicBool::new(false));
/// let set = Arc::clone(&flag);
/// let (asks, state_rx) = health_server::channel_with_wakeup(move || {
///     set.store(true, Ordering::Release); // and write(2) to an eventfd
/// });
/// # drop((asks, state_rx));
/// ```
pub fn channel_with_wakeup(wake: impl Fn() + Send + Sync + 'static) -> (Asks, LandmarkRx) {
    ask_channel(Some(Arc::new(wake)))
}

fn ask_channel(wake: Option<WakeUp>) -> (Asks, LandmarkRx) {
    // One slot is enough: the server never has more than one ask outstanding
    // (see `ask::Asker`), so the queue is bounded by construction.
    let (tx, rx) = flume::bounded(1);
    let gone = CancellationToken::new();
    let notify = Arc::new(Notify::new());
    (
        Asks {
            rx,
            notify: Arc::clone(&notify),
            _gone: gone.clone().drop_guard(),
        },
        LandmarkRx {
            kind: SourceKind::Ask(AskTx {
                tx: Some(tx),
                notify,
                gone,
                wake,
            }),
        },
    )
}

/// Creates a publish channel, for services that prefer to push.
///
/// The server answers each check with the latest landmark published. A
/// landmark older than the server's stale limit
/// ([`crate::Builder::stale_after`], default 5 s) is reported as `fail`, so a
/// main loop that stops publishing is caught like one that stops answering.
pub fn publisher(initial: Landmark) -> (Publisher, LandmarkRx) {
    let (tx, rx) = watch::channel(Published {
        landmark: Arc::new(initial),
        at: Instant::now(),
    });
    (
        Publisher { tx },
        LandmarkRx {
            kind: SourceKind::Publish(rx),
        },
    )
}

/// The main thread's side of the ask channel: receives [`Ask`]s.
///
/// Pick the receive that fits the main loop:
/// - tokio: `Some(ask) = asks.recv() => ask.answer(...)` in a `select!`;
/// - a thread that blocks: [`Asks::recv_blocking`] or [`Asks::recv_timeout`];
/// - a poll or tick loop: [`Asks::try_recv`], or [`Asks::answer_pending`].
///
/// Dropping `Asks` tells the server the main thread is gone: every check then
/// fails with "main thread gone".
pub struct Asks {
    rx: flume::Receiver<Ask>,
    /// Notified after each ask is queued, and when the server goes: the
    /// async [`Asks::recv`] waits on it rather than on the channel, whose
    /// own async wake-up fires under its lock and before the ask is in the
    /// queue (a second wake-up of the main loop per ask, measured).
    notify: Arc<Notify>,
    _gone: DropGuard,
}

impl std::fmt::Debug for Asks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asks")
            .field("waiting", &self.rx.len())
            .finish_non_exhaustive()
    }
}

impl Asks {
    /// Waits for the next ask. `None` once the health server has shut down.
    pub async fn recv(&self) -> Option<Ask> {
        loop {
            // Waiting before looking, so an ask queued between the look
            // and the wait is not missed.
            let mut notified = std::pin::pin!(self.notify.notified());
            notified.as_mut().enable();
            match self.rx.try_recv() {
                Ok(ask) if !ask.is_abandoned() => return Some(ask),
                Ok(_) => {}
                Err(flume::TryRecvError::Disconnected) => return None,
                Err(flume::TryRecvError::Empty) => notified.await,
            }
        }
    }

    /// Blocks the thread until the next ask. `None` once the health server has
    /// shut down. Must not be called from async code.
    pub fn recv_blocking(&self) -> Option<Ask> {
        loop {
            let ask = self.rx.recv().ok()?;
            if !ask.is_abandoned() {
                return Some(ask);
            }
        }
    }

    /// Blocks for at most `timeout` waiting for an ask. `None` on timeout or
    /// once the health server has shut down (see [`Asks::is_server_gone`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Ask> {
        let deadline = Instant::now() + timeout;
        loop {
            let ask = self.rx.recv_deadline(deadline).ok()?;
            if !ask.is_abandoned() {
                return Some(ask);
            }
        }
    }

    /// Returns a pending ask without blocking, if there is one.
    pub fn try_recv(&self) -> Option<Ask> {
        loop {
            let ask = self.rx.try_recv().ok()?;
            if !ask.is_abandoned() {
                return Some(ask);
            }
        }
    }

    /// For poll loops: answers the pending ask, if any, with the landmark
    /// `make` returns (called only when there is an ask). Returns whether an
    /// ask was answered. Never blocks.
    pub fn answer_pending(&self, make: impl FnOnce() -> Landmark) -> bool {
        match self.try_recv() {
            Some(ask) => {
                ask.answer(make());
                true
            }
            None => false,
        }
    }

    /// Whether the health server has shut down and will send no more asks.
    pub fn is_server_gone(&self) -> bool {
        self.rx.is_disconnected() && self.rx.is_empty()
    }
}

/// One request from the health server for the main thread's landmark.
///
/// Answer it with [`Ask::answer`]. Dropping it unanswered makes the checks
/// waiting on it fail with "main thread dropped the ask without answering".
pub struct Ask {
    pub(crate) reply: oneshot::Sender<Landmark>,
    pub(crate) asked_at: Instant,
}

impl std::fmt::Debug for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ask")
            .field("asked_at", &self.asked_at)
            .field("abandoned", &self.is_abandoned())
            .finish()
    }
}

impl Ask {
    /// Sends the landmark back to the health server.
    pub fn answer(self, landmark: Landmark) {
        // The server may have shut down meanwhile; nothing is waiting then.
        let _ = self.reply.send(landmark);
    }

    /// When the server sent this ask.
    pub fn asked_at(&self) -> Instant {
        self.asked_at
    }

    /// Whether nobody waits for the answer any more (the server shut down).
    pub fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// The main thread's side of a publish channel.
///
/// Dropping it tells the server the main thread is gone.
pub struct Publisher {
    tx: watch::Sender<Published>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("landmark", &self.tx.borrow().landmark)
            .finish()
    }
}

impl Publisher {
    /// Publishes a new landmark, stamped with the current time. Never blocks;
    /// works with or without an async runtime.
    pub fn publish(&self, landmark: Landmark) {
        self.tx.send_replace(Published {
            landmark: Arc::new(landmark),
            at: Instant::now(),
        });
    }

    /// Re-stamps the current landmark as fresh without changing it: for a
    /// loop whose state did not change but which is still alive.
    pub fn touch(&self) {
        self.tx.send_modify(|p| p.at = Instant::now());
    }
}
