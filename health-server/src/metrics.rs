//! The endpoint's metrics for Prometheus: `GET /metrics` on the HTTP
//! listener ([`crate::http`]) asks the main thread like any check, then
//! answers in the Prometheus text format 0.0.4, or in OpenMetrics when the
//! scraper's `Accept` asks for it. A service may register the same metrics
//! in its own registry ([`Metrics::register`]); there is no global one.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `landmark_state` | gauge, one-hot | `component` (`""`: the whole service), `state` |
//! | `landmark_weight` | gauge | |
//! | `landmark_answer_seconds` | histogram | |
//! | `health_checks_total` | counter | `protocol` (`native`, `agent`, `http`, `grpc`), `outcome` (a state, or `error`) |
//! | `health_asks_total` | counter | |
//! | `health_asks_unanswered_total` | counter | |
//! | `health_connections_refused_total` | counter | `reason` (`allow_list`, `source_full`, `full`) |
//! | `health_connections_evicted_total` | counter | `reason` (`per_source`, `total`, `descriptors`) |
//! | `health_watch_streams` | gauge | |
//! | `health_watch_pushes_total` | counter | `push` (`first`, `change`, `heartbeat`) |
//! | `tcp_connections` | gauge | `port`, `service`, `state` (with the connection recorder on) |
//!
//! The landmark gauges show the last check's landmark (from any protocol);
//! a scrape of `/metrics` makes a check first, so there they are fresh.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use health_proto::{Landmark, State};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::admission::{Admission, EvictReason};
#[cfg(feature = "connections")]
use crate::connections::{Recorder, TcpState};
use health_proto::text::truncate;

/// Components given series of their own; more are left out (a service's
/// components are few; this bounds a scrape whatever it reports).
const MAX_COMPONENTS: usize = 64;
/// Longest component name kept in a label, in bytes.
const MAX_COMPONENT_NAME: usize = 128;
/// Bounds of `landmark_answer_seconds`: 100 µs to 10 s.
const ANSWER_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

type Labels2 = [(&'static str, &'static str); 2];

/// The endpoint's metrics: cheap to clone, all clones count together.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    last: Mutex<Option<LastLandmark>>,
    answer: Histogram,
    asks: Counter,
    unanswered: Counter,
    checks: Family<Labels2, Counter>,
    streams: Gauge,
    pushes: Family<[(&'static str, &'static str); 1], Counter>,
    refused_allow_list: AtomicU64,
    admission: Arc<Admission>,
    #[cfg(feature = "connections")]
    recorder: Option<Arc<Recorder>>,
}

/// The last check's landmark of the whole service.
struct LastLandmark {
    landmark: Arc<Landmark>,
    draining: bool,
}

impl LastLandmark {
    /// The whole service's state, as checks answer it.
    fn state(&self) -> State {
        match self.landmark.state {
            s if self.draining && s < State::Drain => State::Drain,
            s => s,
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new(
        admission: Arc<Admission>,
        #[cfg(feature = "connections")] recorder: Option<Arc<Recorder>>,
    ) -> Metrics {
        Metrics {
            inner: Arc::new(Inner {
                last: Mutex::new(None),
                answer: Histogram::new(ANSWER_BUCKETS),
                asks: Counter::default(),
                unanswered: Counter::default(),
                checks: Family::default(),
                streams: Gauge::default(),
                pushes: Family::default(),
                refused_allow_list: AtomicU64::new(0),
                admission,
                #[cfg(feature = "connections")]
                recorder,
            }),
        }
    }

    /// Registers every metric of the endpoint in `registry`: the service's
    /// own, to serve them beside its other metrics. The endpoint's
    /// `/metrics` keeps its own registry. The registry is
    /// [`crate::prometheus_client`]'s (re-exported, so the versions match).
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        registry.register(
            "landmark_answer_seconds",
            "How long the main thread took to answer an ask",
            i.answer.clone(),
        );
        registry.register(
            "health_checks",
            "Checks answered, by protocol and outcome (the landmark's state, or error)",
            i.checks.clone(),
        );
        registry.register(
            "health_asks",
            "Asks sent to the main thread (concurrent checks share one)",
            i.asks.clone(),
        );
        registry.register(
            "health_asks_unanswered",
            "Asks the main thread did not answer within the answer deadline",
            i.unanswered.clone(),
        );
        registry.register(
            "health_watch_streams",
            "Watch streams open now",
            i.streams.clone(),
        );
        registry.register(
            "health_watch_pushes",
            "Frames pushed on watch streams, by why (first, change, heartbeat)",
            i.pushes.clone(),
        );
        registry.register_collector(Box::new(Live(Arc::clone(&self.inner))));
    }

    pub(crate) fn stream_opened(&self) {
        self.inner.streams.inc();
    }

    pub(crate) fn stream_closed(&self) {
        self.inner.streams.dec();
    }

    pub(crate) fn pushed(&self, push: health_proto::Push) {
        self.inner
            .pushes
            .get_or_create(&[("push", push.as_str())])
            .inc();
    }

    /// The registry `/metrics` serves: these metrics alone.
    pub(crate) fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        self.register(&mut registry);
        registry
    }

    /// The landmark of the whole service, as the last check saw it
    /// (`draining`: the endpoint raises its state to `drain`). Kept as is,
    /// read at the next scrape: a check pays for no more than a lock.
    pub(crate) fn landmark(&self, landmark: Arc<Landmark>, draining: bool) {
        *self.inner.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(LastLandmark { landmark, draining });
    }

    /// One check answered on `protocol` with `outcome`.
    pub(crate) fn check(&self, protocol: &'static str, outcome: Option<State>) {
        let outcome = outcome.map_or("error", State::as_str);
        self.inner
            .checks
            .get_or_create(&[("protocol", protocol), ("outcome", outcome)])
            .inc();
    }

    /// An ask sent to the main thread.
    pub(crate) fn asked(&self) {
        self.inner.asks.inc();
    }

    /// The main thread answered an ask after `seconds`.
    pub(crate) fn answered(&self, seconds: f64) {
        self.inner.answer.observe(seconds);
    }

    /// An ask passed its deadline unanswered.
    pub(crate) fn unanswered(&self) {
        self.inner.unanswered.inc();
    }

    /// A connection from outside the allow-list was closed.
    pub(crate) fn refused_by_allow_list(&self) {
        self.inner
            .refused_allow_list
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// The metrics read at each scrape: the last landmark, admission's
/// counts, and the recorder's latest snapshot.
#[derive(Debug)]
struct Live(Arc<Inner>);

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let i = &self.0;
        {
            let last = i.last.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(last) = last.as_ref() {
                let mut family = encoder.encode_descriptor(
                    "landmark_state",
                    "The last check's landmark, one-hot: 1 for its state, 0 for the others; component=\"\" is the whole service",
                    None,
                    MetricType::Gauge,
                )?;
                let whole = std::iter::once(("", last.state()));
                let parts = last
                    .landmark
                    .components
                    .iter()
                    .take(MAX_COMPONENTS)
                    .map(|(n, c)| (truncate(n, MAX_COMPONENT_NAME), c.state));
                for (component, state) in whole.chain(parts) {
                    for s in State::ALL {
                        let labels = [("component", component), ("state", s.as_str())];
                        ConstGauge::new(i64::from(s == state))
                            .encode(family.encode_family(&labels)?)?;
                    }
                }
                if let Some(weight) = last.landmark.weight {
                    let metric = ConstGauge::new(i64::from(weight.get()));
                    metric.encode(encoder.encode_descriptor(
                        "landmark_weight",
                        "The weight in the last check's landmark (absent when the service gives none)",
                        None,
                        metric.metric_type(),
                    )?)?;
                }
            }
        }

        let totals = i.admission.totals();
        let mut family = encoder.encode_descriptor(
            "health_connections_refused",
            "Connections closed unserved: not in the allow-list, or every place busy",
            None,
            MetricType::Counter,
        )?;
        let refused = [
            ("allow_list", i.refused_allow_list.load(Ordering::Relaxed)),
            ("source_full", totals.refused_source_full),
            ("full", totals.refused_full),
        ];
        for (reason, n) in refused {
            ConstCounter::new(n).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "health_connections_evicted",
            "Idle connections closed to make room for a newcomer, by the limit that needed it",
            None,
            MetricType::Counter,
        )?;
        for reason in EvictReason::ALL {
            let n = totals.evicted[reason as usize];
            ConstCounter::new(n).encode(family.encode_family(&[("reason", reason.as_str())])?)?;
        }

        #[cfg(feature = "connections")]
        if let Some(recorder) = &i.recorder {
            encode_tcp_connections(recorder, &mut encoder)?;
        }
        Ok(())
    }
}

/// `tcp_connections{port,service,state}` from the latest snapshot: every
/// state of every recorded port, zeros included.
#[cfg(feature = "connections")]
fn encode_tcp_connections(
    recorder: &Recorder,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let Some(snapshot) = recorder.with_history(|h| h.latest()) else {
        return Ok(());
    };
    let mut ports: Vec<(u16, &str)> = snapshot
        .services
        .iter()
        .map(|(p, s)| (*p, s.as_str()))
        .collect();
    ports.sort_unstable();
    let mut counts = vec![[0i64; TcpState::ALL.len()]; ports.len()];
    for c in &snapshot.connections {
        let port = c.local.port();
        if let Ok(at) = ports.binary_search_by_key(&port, |(p, _)| *p) {
            if let Some(k) = TcpState::ALL.iter().position(|s| *s == c.state) {
                counts[at][k] += 1;
            }
        }
    }
    let mut family = encoder.encode_descriptor(
        "tcp_connections",
        "The service's TCP connections per port and state, in the recorder's latest snapshot",
        None,
        MetricType::Gauge,
    )?;
    for ((port, service), per_state) in ports.iter().zip(&counts) {
        let port = port.to_string();
        for (state, n) in TcpState::ALL.iter().zip(per_state) {
            let labels = [
                ("port", port.as_str()),
                ("service", *service),
                ("state", state.as_str()),
            ];
            ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}
