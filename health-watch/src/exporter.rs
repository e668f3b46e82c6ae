//! `http_listen`: the watcher as a Prometheus exporter. `GET /metrics`
//! reads every running target's status (what the live table shows) at
//! each scrape, so a check costs nothing more than its count, and a target
//! removed by a reload is gone from the next scrape. `GET /probe` runs one
//! check on demand, as blackbox_exporter does ([`prober`]), with the
//! built-in modules or the config's `[module.NAME]`; and the Alertmanager
//! senders' metrics come in as one more collector.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `watch_target_up` | gauge | `target`, `kind`: 1 when the last check passed |
//! | `watch_target_rtt_seconds` | gauge | `target`, `kind`: the last check's round trip |
//! | `watch_alarm_raised` | gauge | `target`, `kind` |
//! | `watch_target_paused` | gauge | `target`, `kind` |
//! | `watch_checks_total` | counter | `target`, `class` (`OK`, `WR`, `NG`, `ERR`) |
//! | `watch_actions_total` | counter | `outcome` |
//! | `watch_targets` | gauge | |
//! | `process_*` | | the watcher's CPU, memory, descriptors and start time |
//!
//! Served with hyper on the connections [`crate::listener`] admits: every
//! request head has a deadline, idle connections give way to newcomers,
//! and each connection is closed after a while, whatever the peer does.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::event::ActionOutcome;
use crate::output::Output;
use crate::prober::{self, gauge};
use crate::registry::{self as state, CLASSES};
use crate::vantage::path::PointState;

/// What the listener serves from.
pub(crate) struct Sources {
    /// Where its warnings go (`http_listen full`).
    pub output: Arc<Output>,
    /// The targets' state: `/metrics` and the pages read it.
    pub watched: Arc<state::Registry>,
    /// Metrics of the watcher's other parts.
    pub more: Vec<Box<dyn Collector>>,
    /// The config's modules, for `/probe`.
    pub modules: prober::Modules,
    /// The history the pages read.
    pub database: std::path::PathBuf,
    /// The silences in force.
    pub silences: Arc<crate::silence::Board>,
    /// Word to the silencer that the API changed a silence.
    pub poke: Arc<tokio::sync::Notify>,
}

/// Serves `/metrics`, `/probe` and the status page on `listener` from
/// `sources` until `stop` is cancelled, to the clients `access` lets in.
pub(crate) fn spawn(
    listener: TcpListener,
    sources: Sources,
    access: crate::config::Access,
    stop: CancellationToken,
) {
    let Sources {
        output,
        watched,
        more,
        modules,
        database,
        silences,
        poke,
    } = sources;
    let pages = crate::page::router(
        Arc::clone(&watched),
        Arc::clone(&silences),
        database.clone(),
    );
    let api = crate::api::router(crate::api::Api::new(
        Arc::clone(&watched),
        Arc::clone(&silences),
        poke,
        database,
        access.auth.as_ref().map(|(user, _)| user.clone()),
    ));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Targets {
        watched,
        silences,
        started: SystemTime::now(),
    }));
    for collector in more {
        registry.register_collector(collector);
    }
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/probe", get(probe))
        .with_state(Arc::new(Shared {
            registry,
            probes: prober::Limit::new(),
            probe_max_timeout: access.probe,
            modules,
        }))
        .merge(pages)
        .merge(api);
    let app = match &access.auth {
        Some((user, password)) => app.layer(axum::middleware::from_fn_with_state(
            crate::access::Credentials::new(user, password),
            crate::access::basic_auth,
        )),
        None => app,
    };
    tokio::spawn(crate::listener::serve(
        listener,
        app,
        access.allow,
        output,
        stop,
    ));
}

/// What the routes share.
struct Shared {
    /// The watcher's own metrics.
    registry: Registry,
    /// Bounds the checks `/probe` runs at once, and those waiting.
    probes: prober::Limit,
    /// `/probe`'s longest check; `None`: `http_probe = false`.
    probe_max_timeout: Option<std::time::Duration>,
    /// The config's `[module.NAME]` tables.
    modules: prober::Modules,
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    expose(&shared.registry, &headers)
}

/// `/probe?target=ADDR&module=NAME` ([`prober`]).
async fn probe(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let text = |code, message: String| {
        (
            code,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message,
        )
            .into_response()
    };
    let Some(max_timeout) = shared.probe_max_timeout else {
        return text(
            StatusCode::NOT_FOUND,
            "/probe is turned off on this watcher (http_probe = false)\n".into(),
        );
    };
    let (mut module, mut target) = (None, None);
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "module" => module = Some(v.into_owned()),
            "target" => target = Some(v.into_owned()),
            _ => {}
        }
    }
    let scrape_timeout = headers
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok());
    let timeout = prober::timeout_for(scrape_timeout, max_timeout);
    let modules = shared
        .modules
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match prober::check_for(module.as_deref(), target.as_deref(), timeout, &modules) {
        Ok(check) => match prober::probe(&shared.probes, check).await {
            Some(registry) => expose(&registry, &headers),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{} probes are running and {} waiting: try again\n",
                    prober::MAX_PROBES,
                    prober::MAX_WAITING
                ),
            ),
        },
        Err(bad) => text(StatusCode::BAD_REQUEST, format!("{bad}\n")),
    }
}

/// `registry` in the text format 0.0.4, or OpenMetrics when `Accept` asks
/// (negotiated as the health endpoint does).
fn expose(registry: &Registry, headers: &HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(health_server::exposition::wants_openmetrics);
    let (body, content_type) = health_server::exposition::expose(registry, openmetrics);
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The metrics read from the targets' status at each scrape.
#[derive(Debug)]
struct Targets {
    watched: Arc<state::Registry>,
    silences: Arc<crate::silence::Board>,
    started: SystemTime,
}

/// One target's values, read under its lock and encoded after.
struct Reading {
    up: Option<bool>,
    rtt: Option<f64>,
    raised: bool,
    paused: bool,
    silenced: bool,
    unreachable: bool,
    checks: [u64; 4],
    /// A target with vantage points: each one's name, last word and
    /// part in the path fault, and whether one stands.
    points: Vec<(String, PointState, bool)>,
    path: Option<bool>,
}

impl Collector for Targets {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let targets = self.watched.targets();
        let now = SystemTime::now();
        let readings: Vec<Reading> = targets
            .iter()
            .map(|t| {
                let silenced = self.silences.covering(&t.name, now).is_some();
                let row = t.row();
                Reading {
                    up: row.last.as_ref().map(|o| !o.failed()),
                    rtt: row
                        .last
                        .as_ref()
                        .and_then(|o| o.rtt)
                        .map(|d| d.as_secs_f64()),
                    raised: row.alarm.raised,
                    paused: row.alarm.paused,
                    silenced,
                    unreachable: row.held == Some(crate::event::Hold::Unreachable),
                    checks: row.checks,
                    points: row.path.as_ref().map_or_else(Vec::new, |p| {
                        let at_fault = |i: usize| p.raised() && p.failing[i];
                        (p.names.iter().zip(&p.points).enumerate())
                            .map(|(i, (n, s))| (n.clone(), *s, at_fault(i)))
                            .collect()
                    }),
                    path: row.path.as_ref().map(|p| p.raised()),
                }
            })
            .collect();
        let labels = |i: usize| {
            [
                ("target", targets[i].name.as_str()),
                ("kind", targets[i].kind),
            ]
        };

        gauge(
            &mut encoder,
            "watch_targets",
            "Targets watched",
            targets.len() as i64,
        )?;
        let mut family = encoder.encode_descriptor(
            "watch_target_up",
            "1 when the target's last check passed, 0 when it failed; absent before its first check",
            None,
            MetricType::Gauge,
        )?;
        for (i, r) in readings.iter().enumerate() {
            if let Some(up) = r.up {
                ConstGauge::new(i64::from(up)).encode(family.encode_family(&labels(i))?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "watch_target_rtt_seconds",
            "The round trip of the target's last check (ping: the average)",
            None,
            MetricType::Gauge,
        )?;
        for (i, r) in readings.iter().enumerate() {
            if let Some(rtt) = r.rtt {
                ConstGauge::new(rtt).encode(family.encode_family(&labels(i))?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "watch_alarm_raised",
            "1 while the target's alarm is raised",
            None,
            MetricType::Gauge,
        )?;
        for (i, r) in readings.iter().enumerate() {
            ConstGauge::new(i64::from(r.raised)).encode(family.encode_family(&labels(i))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "watch_target_paused",
            "1 while the target is paused after errors in a row (a reload resumes it)",
            None,
            MetricType::Gauge,
        )?;
        for (i, r) in readings.iter().enumerate() {
            ConstGauge::new(i64::from(r.paused)).encode(family.encode_family(&labels(i))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "watch_target_silenced",
            "1 while a silence or maintenance window covers the target: its raises run no action and send no alert",
            None,
            MetricType::Gauge,
        )?;
        for (i, r) in readings.iter().enumerate() {
            ConstGauge::new(i64::from(r.silenced)).encode(family.encode_family(&labels(i))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "watch_target_unreachable",
            "1 while the target's alarm was raised behind a raised target it depends on (no action, no alert until that one clears)",
            None,
            MetricType::Gauge,
        )?;
        for (i, r) in readings.iter().enumerate() {
            ConstGauge::new(i64::from(r.unreachable)).encode(family.encode_family(&labels(i))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "watch_target_path",
            "1 while some of the target's vantage points fail, too few for its quorum: a path fault, not the server's (targets with vantage points only)",
            None,
            MetricType::Gauge,
        )?;
        for (i, r) in readings.iter().enumerate() {
            if let Some(path) = r.path {
                ConstGauge::new(i64::from(path)).encode(family.encode_family(&labels(i))?)?;
            }
        }
        for (name, help, value) in [
            (
                "watch_vantage_up",
                "1 when the target's last check from this vantage point passed, 0 when it failed; absent before it answers, and while it cannot",
                (|s: PointState, _| match s {
                    PointState::Passed => Some(1),
                    PointState::Failed => Some(0),
                    PointState::Unknown | PointState::NoAnswer => None,
                }) as fn(PointState, bool) -> Option<i64>,
            ),
            (
                "watch_vantage_path",
                "1 while the target's path fault stands and this vantage point is one that fails",
                |_, at_fault| Some(i64::from(at_fault)),
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (i, r) in readings.iter().enumerate() {
                for (vantage, state, at_fault) in &r.points {
                    if let Some(v) = value(*state, *at_fault) {
                        let [target, kind] = labels(i);
                        let labels = [target, kind, ("vantage", vantage.as_str())];
                        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        gauge(
            &mut encoder,
            "watch_silences",
            "Silences and maintenance windows in force or to come",
            self.silences.len() as i64,
        )?;
        let mut family = encoder.encode_descriptor(
            "watch_checks",
            "Checks of the target since it started, by class of outcome",
            None,
            MetricType::Counter,
        )?;
        for (t, r) in targets.iter().zip(&readings) {
            for (class, n) in CLASSES.iter().zip(r.checks) {
                let labels = [("target", t.name.as_str()), ("class", *class)];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "watch_actions",
            "on_raise and on_clear actions since the start, by outcome",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in ActionOutcome::ALL.iter().zip(self.watched.actions()) {
            ConstCounter::new(n).encode(family.encode_family(&[("outcome", outcome.as_str())])?)?;
        }
        process(&mut encoder, self.started)
    }
}

/// The process metrics every Prometheus client library exports, read from
/// /proc. Written here: prometheus-client has none, and the few lines
/// below do not justify another crate.
fn process(encoder: &mut DescriptorEncoder, started: SystemTime) -> Result<(), std::fmt::Error> {
    // SAFETY: sysconf reads a system constant.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    if let (Some(user), Some(system)) = (field(14), field(15)) {
        if ticks > 0 {
            let metric = ConstCounter::new((user + system) / ticks as f64);
            metric.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                metric.metric_type(),
            )?)?;
        }
    }
    if let (Some(rss), true) = (field(24), page > 0) {
        let metric = ConstGauge::new(rss * page as f64);
        metric.encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            None,
            metric.metric_type(),
        )?)?;
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            encoder,
            "process_open_fds",
            "Number of open file descriptors",
            dir.count() as i64,
        )?;
    }
    let start = started
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let metric = ConstGauge::new(start);
    metric.encode(encoder.encode_descriptor(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
        None,
        metric.metric_type(),
    )?)
}
