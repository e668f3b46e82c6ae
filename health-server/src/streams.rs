//! The limits on `watch` streams and what they share (docs/PROTOCOL.md
//! section 8.7): how many are open per source and in all, the periods they
//! asked for (the hub looks at the fastest), and the hub's latest
//! observation, which every stream reads. [`crate::watch`] serves the
//! streams and runs the hub.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use health_proto::{ErrorCode, ErrorReply};
use tokio::sync::{watch, Notify};

use crate::admission::Source;
use crate::ask::Observation;
use crate::metrics::Metrics;

/// The endpoint's streams: their limits, and the hub they share.
pub(crate) struct Streams {
    per_source: usize,
    total: usize,
    inner: Mutex<Inner>,
    /// The hub's latest observation.
    pub(crate) latest: watch::Sender<Option<Arc<Observation>>>,
    /// Told when the fastest period may have changed.
    pub(crate) replan: Notify,
}

#[derive(Default)]
struct Inner {
    sources: HashMap<Source, usize>,
    open: usize,
    /// The periods of the open streams, with how many asked for each.
    periods: BTreeMap<Duration, usize>,
    hub_running: bool,
}

/// One open stream's place; dropping it gives the place back.
pub(crate) struct Permit {
    streams: Arc<Streams>,
    source: Source,
    period: Duration,
    metrics: Metrics,
}

impl Streams {
    pub(crate) fn new(total: usize, per_source: usize) -> Arc<Streams> {
        Arc::new(Streams {
            per_source,
            total,
            inner: Mutex::new(Inner::default()),
            latest: watch::Sender::new(None),
            replan: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a stream from `source` looking every `period`, and
    /// whether the caller must start the hub (none is running); the `busy`
    /// error when the source or the endpoint is at its limit.
    pub(crate) fn admit(
        self: &Arc<Self>,
        source: Source,
        period: Duration,
        metrics: &Metrics,
    ) -> Result<(Permit, bool), ErrorReply> {
        let mut inner = self.lock();
        let from_source = inner.sources.get(&source).copied().unwrap_or(0);
        if from_source >= self.per_source {
            return Err(ErrorReply::new(
                ErrorCode::Busy,
                format!(
                    "too many watch streams from this source (limit {})",
                    self.per_source
                ),
            ));
        }
        if inner.open >= self.total {
            return Err(ErrorReply::new(
                ErrorCode::Busy,
                format!("too many watch streams (limit {})", self.total),
            ));
        }
        *inner.sources.entry(source).or_default() += 1;
        inner.open += 1;
        let fastest = inner.periods.keys().next().copied();
        *inner.periods.entry(period).or_default() += 1;
        let start_hub = !inner.hub_running;
        if start_hub {
            inner.hub_running = true;
        } else if fastest.is_none_or(|f| period < f) {
            // The hub sleeps out the old period; it must look sooner now.
            // (A stream that closes needs no wake: the hub's next look
            // reads the periods left, and stops when none is.)
            self.replan.notify_one();
        }
        drop(inner);
        metrics.stream_opened();
        let permit = Permit {
            streams: Arc::clone(self),
            source,
            period,
            metrics: metrics.clone(),
        };
        Ok((permit, start_hub))
    }

    /// The fastest period of the open streams; `None` (and the hub marked
    /// stopped, under the same lock as [`Streams::admit`] starts it) when
    /// none is open.
    pub(crate) fn fastest_or_stop(&self) -> Option<Duration> {
        let mut inner = self.lock();
        let fastest = inner.periods.keys().next().copied();
        if fastest.is_none() {
            inner.hub_running = false;
        }
        fastest
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut inner = self.streams.lock();
        if let Some(n) = inner.sources.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                inner.sources.remove(&self.source);
            }
        }
        inner.open = inner.open.saturating_sub(1);
        if let Some(n) = inner.periods.get_mut(&self.period) {
            *n -= 1;
            if *n == 0 {
                inner.periods.remove(&self.period);
            }
        }
        drop(inner);
        self.metrics.stream_closed();
    }
}
