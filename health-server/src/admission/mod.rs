//! Admission: which connections the endpoint holds when peers try to hold
//! them all (docs/PROTOCOL.md §8.2). Public so that other listeners (the
//! watcher's HTTP listener) hold their connections by the same rules.
//!
//! Every connection on every port holds a [`Slot`]. A slot is *fresh* from
//! accept until its connection first looks for a request (when it arrived
//! with bytes to read), *busy* while a request is being answered, and
//! *idle* while the endpoint waits for the peer to say something (from
//! accept, when it arrived with nothing). Only idle connections can be
//! evicted, so a fresh check is always read and answered. When a new
//! connection would pass a limit, an idle one loses its place instead:
//!
//! - its source (an IPv4 address, or an IPv6 /64) already holds
//!   `per_source` connections: the oldest idle one of that source;
//! - the endpoint holds `total`: the oldest idle one of the source that holds
//!   the most.
//!
//! A source at its limit with no idle connection (all of them fresh or
//! busy) is let in over it for that moment: each of its connections passes
//! through idle when its answer is done, even with the next request already
//! waiting, and the source is trimmed back to its limit there, oldest idle
//! first. Only the total refuses a newcomer, when no connection anywhere is
//! idle. So a peer that opens connections and keeps them quiet, or keeps
//! re-sending checks on them (all at once, even), can never keep a fresh
//! check out of its own source: each new connection pushes out one of the
//! hoarders' own, or waits beside them for the moment they are answered.
//!
//! Evictions and refusals are counted and logged as one summary per
//! [`SUMMARY_EVERY`], not a line per connection: a flood would otherwise
//! flood the log too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::{
    CancellationToken, WaitForCancellationFuture, WaitForCancellationFutureOwned,
};

/// Evicted connections whose sockets are not closed yet, at most: each
/// still holds its descriptor until its task runs. Past it, newcomers are
/// refused rather than evicting more, so a flood that outruns the
/// endpoint's tasks cannot pile up descriptors beyond the total plus this.
pub const MAX_EVICTING: usize = 1024;

/// How often evictions and refusals are summarised in the log.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Turns on `TCP_DEFER_ACCEPT` for a listening socket: a connection is
/// accepted when its first bytes arrive, or after `secs` (a silent one
/// meanwhile costs no descriptor and no place). Written here because
/// socket2 has no setter for it (Linux-only).
pub fn defer_accept(socket: &socket2::Socket, secs: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor, and an int option of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Where connections come from, for the per-source limit: an IPv4 address
/// (IPv4-mapped IPv6 included), or an IPv6 /64, the smallest network a
/// single host is normally given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(IpAddr);

impl Source {
    /// The source a client at `ip` belongs to.
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let mask = !0u128 << 64;
                    Source(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
                }
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The limits admission enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at once, on all ports together.
    pub total: usize,
    /// Connections one source may hold at once.
    pub per_source: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source holds its limit, and [`MAX_EVICTING`] evicted connections
    /// are still closing.
    SourceFull {
        /// The per-source limit.
        limit: usize,
    },
    /// The endpoint holds its limit and none of them is idle.
    Full {
        /// The total limit.
        limit: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::SourceFull { limit } => write!(
                f,
                "health endpoint is at its limit of {limit} connections from this source and cannot close more yet"
            ),
            Refusal::Full { limit } => write!(
                f,
                "health endpoint is at its limit of {limit} connections, all busy"
            ),
        }
    }
}

/// Which limit needed an idle connection's place.
#[derive(Debug, Clone, Copy)]
pub enum EvictReason {
    /// The newcomer's source held its most.
    PerSource = 0,
    /// The endpoint held its most.
    Total = 1,
    /// The process ran out of descriptors.
    Descriptors = 2,
}

impl EvictReason {
    /// Every reason, in the order of [`Totals`]'s `evicted` counts.
    pub const ALL: [EvictReason; 3] = [Self::PerSource, Self::Total, Self::Descriptors];

    /// The reason as a metric label.
    pub fn as_str(self) -> &'static str {
        ["per_source", "total", "descriptors"][self as usize]
    }
}

/// Evictions and refusals since the endpoint started (for metrics).
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// By [`EvictReason`].
    pub evicted: [u64; 3],
    /// Refused: [`Refusal::SourceFull`].
    pub refused_source_full: u64,
    /// Refused: [`Refusal::Full`].
    pub refused_full: u64,
}

impl Totals {
    fn evicted(&self) -> u64 {
        self.evicted.iter().sum()
    }

    fn refused(&self) -> u64 {
        self.refused_source_full + self.refused_full
    }
}

/// What admission did over one period ([`Admission::summary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Idle connections evicted for newcomers.
    pub evicted: u64,
    /// Newcomers refused.
    pub refused: u64,
    /// The source whose connections were evicted most, with the count.
    pub most_evicted: String,
    /// How long the period lasted.
    pub seconds: u64,
}

/// The connections held, shared by every accept loop.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    held: usize,
    /// Evicted, not yet dropped ([`MAX_EVICTING`]).
    evicting: usize,
    sources: HashMap<Source, Held>,
    /// Sources by how many connections they hold, for "the source that
    /// holds the most".
    by_load: BTreeSet<(usize, Source)>,
    tally: Tally,
    totals: Totals,
}

/// One source's connections: how many, and the idle ones by age (ids grow
/// with time, so the first is the oldest).
#[derive(Debug, Default)]
struct Held {
    count: usize,
    idle: BTreeMap<u64, CancellationToken>,
}

/// The period since the last summary: its evictions and refusals are the
/// [`Totals`] now less those it began with.
#[derive(Debug, Default)]
struct Tally {
    /// The totals when the period's first eviction or refusal came.
    at_start: Totals,
    /// Evictions per source, for naming the heaviest in the summary; at
    /// most one entry per source holding connections.
    by_source: HashMap<Source, u64>,
    since: Option<Instant>,
}

impl Tally {
    /// Starts the period, if none is running, before `totals` move.
    fn start(&mut self, totals: Totals) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
            self.at_start = totals;
        }
    }
}

impl Admission {
    /// Admission within `limits` (each at least 1).
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits: Limits {
                total: limits.total.max(1),
                per_source: limits.per_source.max(1),
            },
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counts that are still
        // consistent (every update is a few infallible steps): keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `ip`, pushing out an idle one if a limit
    /// would be passed. A `silent` connection (nothing received yet) starts
    /// idle; one that has sent something starts fresh, and its connection
    /// marks it idle or busy when it first looks for a request.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, silent: bool) -> Result<Slot, Refusal> {
        let source = Source::of(ip);
        let mut inner = self.lock();
        let (count, idle) = inner
            .sources
            .get(&source)
            .map_or((0, false), |h| (h.count, !h.idle.is_empty()));
        let outcome = if count >= self.limits.per_source && idle {
            // Fails only with MAX_EVICTING evictions in flight.
            match inner.evict_oldest_idle(source, EvictReason::PerSource) {
                true => Ok(()),
                false => Err(Refusal::SourceFull {
                    limit: self.limits.per_source,
                }),
            }
        } else if inner.held >= self.limits.total {
            // A source at its limit with none idle is let in over it (its
            // connections are all being read or answered, and it is trimmed
            // back as they turn idle), within the total.
            match inner.evict_from_heaviest(EvictReason::Total) {
                true => Ok(()),
                false => Err(Refusal::Full {
                    limit: self.limits.total,
                }),
            }
        } else {
            Ok(())
        };
        if outcome.is_err() {
            let totals = inner.totals;
            inner.tally.start(totals);
        }
        match outcome {
            Err(Refusal::SourceFull { .. }) => inner.totals.refused_source_full += 1,
            Err(Refusal::Full { .. }) => inner.totals.refused_full += 1,
            Ok(_) => {}
        }
        outcome?;
        inner.next_id += 1;
        let id = inner.next_id;
        inner.add(source);
        let token = CancellationToken::new();
        if silent {
            if let Some(held) = inner.sources.get_mut(&source) {
                held.idle.insert(id, token.clone());
            }
        }
        Ok(Slot {
            admission: Arc::clone(self),
            source,
            id,
            token,
            fresh: !silent,
        })
    }

    /// Evicts one idle connection (of the source holding the most) to give
    /// its descriptor back; false if none is idle.
    pub fn shed_one(&self) -> bool {
        self.lock().evict_from_heaviest(EvictReason::Descriptors)
    }

    /// Evictions and refusals since the start.
    pub fn totals(&self) -> Totals {
        self.lock().totals
    }

    /// The evictions and refusals counted since the last summary, if any
    /// and if [`SUMMARY_EVERY`] has passed (or `force`); a new period
    /// starts.
    pub fn summary(&self, force: bool) -> Option<Summary> {
        let mut inner = self.lock();
        let totals = inner.totals;
        let t = &mut inner.tally;
        let since = t.since?;
        if !force && since.elapsed() < SUMMARY_EVERY {
            return None;
        }
        let evicted = totals.evicted() - t.at_start.evicted();
        let refused = totals.refused() - t.at_start.refused();
        let most_evicted = t
            .by_source
            .iter()
            .max_by_key(|(s, n)| (**n, std::cmp::Reverse(**s)))
            .map(|(s, n)| format!("{s} ({n})"))
            .unwrap_or_default();
        *t = Tally::default();
        (evicted > 0 || refused > 0).then(|| Summary {
            evicted,
            refused,
            most_evicted,
            seconds: since.elapsed().as_secs(),
        })
    }

    /// Logs [`Admission::summary`], if there is one.
    pub(crate) fn summarise(&self, force: bool) {
        if let Some(s) = self.summary(force) {
            tracing::warn!(
                evicted = s.evicted,
                refused = s.refused,
                most_evicted = %s.most_evicted,
                seconds = s.seconds,
                limit = self.limits.total,
                per_source = self.limits.per_source,
                "health endpoint full: idle connections evicted, busy ones refused"
            );
        }
    }

    /// Connections held now, and by the busiest source.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let inner = self.lock();
        let most = inner.by_load.last().map_or(0, |(n, _)| *n);
        (inner.held, most)
    }
}

impl Inner {
    fn set_count(&mut self, source: Source, count: usize) {
        let held = self.sources.entry(source).or_default();
        let before = held.count;
        held.count = count;
        if before > 0 {
            self.by_load.remove(&(before, source));
        }
        if count > 0 {
            self.by_load.insert((count, source));
        } else if held.idle.is_empty() {
            self.sources.remove(&source);
        }
    }

    fn add(&mut self, source: Source) {
        let count = self.sources.get(&source).map_or(0, |h| h.count);
        self.set_count(source, count + 1);
        self.held += 1;
    }

    fn remove(&mut self, source: Source) {
        let count = self.sources.get(&source).map_or(0, |h| h.count);
        self.set_count(source, count.saturating_sub(1));
        self.held = self.held.saturating_sub(1);
    }

    /// Evicts the oldest idle connection of `source`; false if it has none.
    fn evict_oldest_idle(&mut self, source: Source, reason: EvictReason) -> bool {
        if self.evicting >= MAX_EVICTING {
            return false;
        }
        let Some(held) = self.sources.get_mut(&source) else {
            return false;
        };
        let Some((_, token)) = held.idle.pop_first() else {
            return false;
        };
        // Cancelled under the lock: a slot whose token is cancelled is no
        // longer counted, and its drop must not count it out again.
        token.cancel();
        self.evicting += 1;
        self.remove(source);
        self.tally.start(self.totals);
        self.totals.evicted[reason as usize] += 1;
        *self.tally.by_source.entry(source).or_default() += 1;
        true
    }

    /// Evicts the oldest idle connection of the source holding the most,
    /// or of the next heaviest when that one has none idle.
    fn evict_from_heaviest(&mut self, reason: EvictReason) -> bool {
        let source = self
            .by_load
            .iter()
            .rev()
            .map(|(_, s)| *s)
            .find(|s| self.sources.get(s).is_some_and(|h| !h.idle.is_empty()));
        source.is_some_and(|s| self.evict_oldest_idle(s, reason))
    }
}

/// A connection's place in the endpoint; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    source: Source,
    id: u64,
    token: CancellationToken,
    /// Not yet marked idle or busy.
    fresh: bool,
}

impl Slot {
    /// Marks the connection idle: it may now be evicted for a newcomer.
    pub fn idle(&mut self) {
        self.mark(true);
    }

    /// Marks the connection busy: a request is being answered, and it cannot
    /// be evicted. False if it was evicted while idle (the caller closes it).
    #[must_use]
    pub fn busy(&mut self) -> bool {
        self.mark(false)
    }

    /// The next request is already waiting when the last answer is done:
    /// the connection passes through idle all the same, so that a source let
    /// in over its limit is trimmed back here too (one that pipelines its
    /// requests would otherwise never be). A fresh connection's first
    /// request is never put at stake.
    pub fn pass_through_idle(&mut self) {
        if !self.fresh {
            self.mark(true);
        }
    }

    fn mark(&mut self, idle: bool) -> bool {
        let mut inner = self.admission.lock();
        if self.token.is_cancelled() {
            return false;
        }
        self.fresh = false;
        if let Some(held) = inner.sources.get_mut(&self.source) {
            if idle {
                held.idle.insert(self.id, self.token.clone());
            } else {
                held.idle.remove(&self.id);
            }
        }
        if idle {
            // Fresh connections may have let the source (or the endpoint)
            // over its limit: back within it now, oldest idle first (this
            // one too, if it is the oldest left).
            let limits = self.admission.limits;
            while inner.sources.get(&self.source).map_or(0, |h| h.count) > limits.per_source
                && inner.evict_oldest_idle(self.source, EvictReason::PerSource)
            {}
            while inner.held > limits.total && inner.evict_from_heaviest(EvictReason::Total) {}
        }
        true
    }

    /// Completes when the connection has been evicted for a newcomer.
    pub fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// Completes when the connection has been evicted for a newcomer (or
    /// the slot is dropped), without borrowing the slot.
    pub fn evicted_owned(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }

    /// Whether the connection has been evicted.
    #[cfg(test)]
    fn is_evicted(&self) -> bool {
        self.token.is_cancelled()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.admission.lock();
        if self.token.is_cancelled() {
            // Evicted: counted out then; its descriptor is free now.
            inner.evicting = inner.evicting.saturating_sub(1);
            return;
        }
        // Cancel under the lock, so an eviction racing with this drop finds
        // the slot gone from the idle set or already counted out.
        self.token.cancel();
        if let Some(held) = inner.sources.get_mut(&self.source) {
            held.idle.remove(&self.id);
        }
        inner.remove(self.source);
    }
}

#[cfg(test)]
mod tests;
