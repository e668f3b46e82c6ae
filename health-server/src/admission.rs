//! Admission: which connections the endpoint holds when peers try to hold
//! them all (docs/PROTOCOL.md §8.2).
//!
//! Every connection on every port holds a [`Slot`]. A slot is *fresh* from
//! accept until its connection first looks for a request (when it arrived
//! with bytes to read), *busy* while a request is being answered, and
//! *idle* while the endpoint waits for the peer to say something (from
//! accept, when it arrived with nothing). Only idle connections can be evicted, so a fresh
//! check is always read and answered. When a new connection would pass a
//! limit, an idle one loses its place instead:
//!
//! - its source (an IPv4 address, or an IPv6 /64) already holds
//!   `per_source` connections: the oldest idle one of that source;
//! - the endpoint holds `total`: the oldest idle one of the source that holds
//!   the most.
//!
//! A source at its limit whose own connections include fresh ones is let in
//! over it for that moment (those become idle, or busy, as soon as they are
//! read). Only when no idle connection exists is the newcomer refused. So a
//! peer that opens connections and keeps them quiet (or keeps re-sending
//! checks between long pauses) can never keep a fresh check out: each new
//! connection pushes out one of the hoarders' own.
//!
//! Evictions and refusals are counted and logged as one summary per
//! [`SUMMARY_EVERY`], not a line per connection: a flood would otherwise
//! flood the log too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Evicted connections whose sockets are not closed yet, at most: each
/// still holds its descriptor until its task runs. Past it, newcomers are
/// refused rather than evicting more, so a flood that outruns the
/// endpoint's tasks cannot pile up descriptors beyond the total plus this.
pub(crate) const MAX_EVICTING: usize = 1024;

/// How often evictions and refusals are summarised in the log.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Where connections come from, for the per-source limit: an IPv4 address
/// (IPv4-mapped IPv6 included), or an IPv6 /64, the smallest network a
/// single host is normally given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Source(IpAddr);

impl Source {
    pub(crate) fn of(ip: IpAddr) -> Source {
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
pub(crate) struct Limits {
    /// Connections held at once, on all ports together.
    pub(crate) total: usize,
    /// Connections one source may hold at once.
    pub(crate) per_source: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its source holds its limit and none of them is idle.
    SourceFull { limit: usize },
    /// The endpoint holds its limit and none of them is idle.
    Full { limit: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::SourceFull { limit } => write!(
                f,
                "health endpoint is at its limit of {limit} connections from this source, all busy"
            ),
            Refusal::Full { limit } => write!(
                f,
                "health endpoint is at its limit of {limit} connections, all busy"
            ),
        }
    }
}

/// The connections held, shared by every accept loop.
pub(crate) struct Admission {
    limits: Limits,
    inner: Mutex<Inner>,
}

#[derive(Default)]
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
}

/// One source's connections: how many, how many are fresh, and the idle
/// ones by age (ids grow with time, so the first is the oldest).
#[derive(Default)]
struct Held {
    count: usize,
    fresh: usize,
    idle: BTreeMap<u64, CancellationToken>,
}

/// Evictions and refusals since the last summary.
#[derive(Default)]
struct Tally {
    evicted: u64,
    refused: u64,
    /// Evictions per source, for naming the heaviest in the summary; at
    /// most one entry per source holding connections.
    by_source: HashMap<Source, u64>,
    since: Option<Instant>,
}

impl Tally {
    /// Adds one to the counter `which` picks, starting the period.
    fn count(&mut self, which: fn(&mut Tally) -> &mut u64) {
        self.since.get_or_insert_with(Instant::now);
        *which(self) += 1;
    }
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Admission {
        Admission {
            limits: Limits {
                total: limits.total.max(1),
                per_source: limits.per_source.max(1),
            },
            inner: Mutex::new(Inner::default()),
        }
    }

    pub(crate) fn limits(&self) -> Limits {
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
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, silent: bool) -> Result<Slot, Refusal> {
        let source = Source::of(ip);
        let mut inner = self.lock();
        let (count, fresh) = inner
            .sources
            .get(&source)
            .map_or((0, 0), |h| (h.count, h.fresh));
        let outcome = if count >= self.limits.per_source && inner.evict_oldest_idle(source) {
            Ok(true)
        } else if count >= self.limits.per_source && fresh == 0 {
            Err(Refusal::SourceFull {
                limit: self.limits.per_source,
            })
        } else if inner.held >= self.limits.total {
            match inner.evict_from_heaviest() {
                true => Ok(true),
                false => Err(Refusal::Full {
                    limit: self.limits.total,
                }),
            }
        } else {
            Ok(false)
        };
        if outcome.is_err() {
            inner.tally.count(|t| &mut t.refused);
        }
        outcome?;
        inner.next_id += 1;
        let id = inner.next_id;
        inner.add(source);
        let token = CancellationToken::new();
        if let Some(held) = inner.sources.get_mut(&source) {
            if silent {
                held.idle.insert(id, token.clone());
            } else {
                held.fresh += 1;
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
    pub(crate) fn shed_one(&self) -> bool {
        self.lock().evict_from_heaviest()
    }

    /// Logs the evictions and refusals counted since the last summary, if
    /// any and if [`SUMMARY_EVERY`] has passed (or `force`).
    pub(crate) fn summarise(&self, force: bool) {
        let mut inner = self.lock();
        let t = &mut inner.tally;
        let Some(since) = t.since else { return };
        if !force && since.elapsed() < SUMMARY_EVERY {
            return;
        }
        if t.evicted > 0 || t.refused > 0 {
            let heaviest = t
                .by_source
                .iter()
                .max_by_key(|(s, n)| (**n, std::cmp::Reverse(**s)))
                .map(|(s, n)| format!("{s} ({n})"))
                .unwrap_or_default();
            tracing::warn!(
                evicted = t.evicted,
                refused = t.refused,
                most_evicted = %heaviest,
                seconds = since.elapsed().as_secs(),
                limit = self.limits.total,
                per_source = self.limits.per_source,
                "health endpoint full: idle connections evicted, busy ones refused"
            );
        }
        *t = Tally::default();
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
    fn evict_oldest_idle(&mut self, source: Source) -> bool {
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
        self.tally.count(|t| &mut t.evicted);
        *self.tally.by_source.entry(source).or_default() += 1;
        true
    }

    /// Evicts the oldest idle connection of the source holding the most,
    /// or of the next heaviest when that one has none idle.
    fn evict_from_heaviest(&mut self) -> bool {
        let source = self
            .by_load
            .iter()
            .rev()
            .map(|(_, s)| *s)
            .find(|s| self.sources.get(s).is_some_and(|h| !h.idle.is_empty()));
        source.is_some_and(|s| self.evict_oldest_idle(s))
    }
}

/// A connection's place in the endpoint; dropping it gives the place back.
pub(crate) struct Slot {
    admission: Arc<Admission>,
    source: Source,
    id: u64,
    token: CancellationToken,
    /// Not yet marked idle or busy.
    fresh: bool,
}

impl Slot {
    /// Marks the connection idle: it may now be evicted for a newcomer.
    pub(crate) fn idle(&mut self) {
        self.mark(true);
    }

    /// Marks the connection busy: a request is being answered, and it cannot
    /// be evicted. False if it was evicted while idle (the caller closes it).
    #[must_use]
    pub(crate) fn busy(&mut self) -> bool {
        self.mark(false)
    }

    fn mark(&mut self, idle: bool) -> bool {
        let mut inner = self.admission.lock();
        if self.token.is_cancelled() {
            return false;
        }
        if let Some(held) = inner.sources.get_mut(&self.source) {
            if std::mem::take(&mut self.fresh) {
                held.fresh -= 1;
            }
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
                && inner.evict_oldest_idle(self.source)
            {}
            while inner.held > limits.total && inner.evict_from_heaviest() {}
        }
        true
    }

    /// Completes when the connection has been evicted for a newcomer.
    pub(crate) fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
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
            if self.fresh {
                held.fresh -= 1;
            }
        }
        inner.remove(self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(total: usize, per_source: usize) -> Arc<Admission> {
        Arc::new(Admission::new(Limits { total, per_source }))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sources_group_ipv6_by_64_and_unmap_ipv4() {
        assert_eq!(
            Source::of(ip("::ffff:10.0.0.1")),
            Source::of(ip("10.0.0.1"))
        );
        assert_eq!(
            Source::of(ip("2001:db8::1")),
            Source::of(ip("2001:db8::ffff:1"))
        );
        assert_ne!(
            Source::of(ip("2001:db8::1")),
            Source::of(ip("2001:db8:0:1::1"))
        );
        assert_ne!(Source::of(ip("10.0.0.1")), Source::of(ip("10.0.0.2")));
        assert_eq!(Source::of(ip("2001:db8::7")).to_string(), "2001:db8::/64");
    }

    /// Admits and marks the slot as its connection would.
    fn admitted(a: &Arc<Admission>, from: &str, idle: bool) -> Slot {
        let mut slot = a.admit(ip(from), false).unwrap();
        if idle {
            slot.idle();
        } else {
            assert!(slot.busy());
        }
        slot
    }

    #[test]
    fn a_full_source_loses_its_oldest_idle_connection() {
        let a = admission(100, 3);
        let mut slots: Vec<Slot> = (0..3).map(|_| admitted(&a, "10.0.0.1", true)).collect();
        let fresh = admitted(&a, "10.0.0.1", false);
        assert!(slots[0].is_evicted());
        assert!(!slots[1].is_evicted() && !slots[2].is_evicted());
        assert_eq!(a.held(), (3, 3));
        // A busy connection is never evicted; the next oldest idle goes.
        assert!(slots[1].busy());
        let another = admitted(&a, "10.0.0.1", false);
        assert!(!slots[1].is_evicted());
        assert!(slots[2].is_evicted());
        // Every connection of the source is busy now: refused.
        assert_eq!(
            a.admit(ip("10.0.0.1"), false).err(),
            Some(Refusal::SourceFull { limit: 3 })
        );
        // An evicted slot cannot become busy again, and its drop does not
        // count it out twice.
        assert!(!slots[0].busy());
        drop((slots, fresh, another));
        assert_eq!(a.held(), (0, 0));
    }

    #[test]
    fn fresh_connections_are_never_evicted_and_let_their_source_over_its_limit() {
        let a = admission(100, 2);
        let mut unread: Vec<Slot> = (0..2)
            .map(|_| a.admit(ip("10.0.0.1"), false).unwrap())
            .collect();
        // Both unread (fresh): neither can be evicted, and the source may
        // go over its limit until they are read.
        let mut third = a.admit(ip("10.0.0.1"), false).unwrap();
        assert!(unread.iter().all(|s| !s.is_evicted()));
        assert_eq!(a.held(), (3, 3));
        // Once read, the source is brought back within its limit, oldest
        // idle first.
        unread[0].idle();
        assert!(unread[0].is_evicted());
        assert_eq!(a.held(), (2, 2));
        third.idle();
        assert!(unread[1].busy());
        let _fourth = admitted(&a, "10.0.0.1", false);
        assert!(third.is_evicted());
        assert_eq!(
            a.admit(ip("10.0.0.1"), false).err(),
            Some(Refusal::SourceFull { limit: 2 })
        );
    }

    #[test]
    fn evictions_in_flight_are_bounded() {
        let a = admission(1, MAX_EVICTING + 10);
        let mut evicted = Vec::new();
        let mut last = a.admit(ip("10.0.0.1"), true).unwrap();
        for _ in 0..MAX_EVICTING {
            let next = a.admit(ip("10.0.0.1"), true).unwrap();
            evicted.push(std::mem::replace(&mut last, next));
        }
        assert!(evicted.iter().all(Slot::is_evicted));
        // Every evicted slot still undropped: no more evictions.
        assert_eq!(
            a.admit(ip("10.0.0.2"), true).err(),
            Some(Refusal::Full { limit: 1 })
        );
        evicted.pop();
        assert!(a.admit(ip("10.0.0.2"), true).is_ok());
        assert!(last.is_evicted());
    }

    #[test]
    fn a_silent_connection_is_idle_from_the_start() {
        let a = admission(100, 1);
        let silent = a.admit(ip("10.0.0.1"), true).unwrap();
        let _next = a.admit(ip("10.0.0.1"), true).unwrap();
        assert!(
            silent.is_evicted(),
            "idle at once: the next one takes its place"
        );
    }

    #[test]
    fn a_full_endpoint_takes_from_the_heaviest_source_oldest_first() {
        let a = admission(6, 10);
        let mut light: Vec<Slot> = (0..2).map(|_| admitted(&a, "10.0.0.1", true)).collect();
        let mut heavy: Vec<Slot> = (0..4).map(|_| admitted(&a, "10.0.0.2", true)).collect();
        let _new = admitted(&a, "10.0.0.3", false);
        assert!(heavy[0].is_evicted());
        assert!(light.iter().all(|s| !s.is_evicted()));
        // The heaviest has no idle connection left: the next heaviest pays.
        for s in &mut heavy[1..] {
            assert!(s.busy());
        }
        let _new2 = admitted(&a, "10.0.0.3", false);
        assert!(light[0].is_evicted());
        assert!(light[1].busy());
        assert_eq!(
            a.admit(ip("10.0.0.4"), false).err(),
            Some(Refusal::Full { limit: 6 })
        );
        assert_eq!(a.held(), (6, 3));
        assert!(!a.shed_one());
    }

    #[test]
    fn places_come_back_when_connections_close() {
        let a = admission(2, 2);
        let s1 = admitted(&a, "::1", false);
        let s2 = admitted(&a, "::1", false);
        assert!(a.admit(ip("::1"), false).is_err());
        drop(s1);
        let s3 = admitted(&a, "::1", true);
        assert!(a.shed_one());
        assert!(s3.is_evicted());
        drop((s2, s3));
        assert_eq!(a.held(), (0, 0));
        assert!(a.lock().sources.is_empty() && a.lock().by_load.is_empty());
    }
}
