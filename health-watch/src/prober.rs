//! `GET /probe?target=ADDR&module=NAME`: one check on demand, answered the
//! way blackbox_exporter answers, so that Prometheus can schedule checks
//! across a fleet of watchers. The built-in modules are the watcher's
//! check kinds with their defaults: `landmark` (expect `ok`; the default
//! module), `tcp` (connect), `ping` (one echo request) and `tls` (verified
//! with the system's roots; fails under 3 days left); the config's
//! `[module.NAME]` tables add others ([`Modules`]), replaced by a reload.
//!
//! | metric | what |
//! |---|---|
//! | `probe_success` | 1 when the check passed |
//! | `probe_duration_seconds` | how long the check took |
//! | `probe_landmark_state{state}` | landmark: one-hot, when a landmark came back |
//! | `probe_landmark_weight` | landmark: when the landmark has a weight |
//! | `probe_ssl_earliest_cert_expiry` | tls: when the first certificate of the chain expires (Unix seconds), also when it failed verification |
//! | `probe_tls_version_info{version}` | tls: the version agreed (`TLS 1.3`), once the handshake is done |
//! | `probe_failure_info{class,reason}` | 1 when the check failed: why |
//!
//! The check's timeout is Prometheus's scrape timeout (its
//! `X-Prometheus-Scrape-Timeout-Seconds` header) less half a second, or 5 s
//! without it, at least 10 ms and at most `http_probe_max_timeout` (10 s
//! unless set; a client cannot ask for longer), and within the module's
//! `timeout` if it has one. At most [`MAX_PROBES`] checks run at once and
//! [`MAX_WAITING`] more wait for one to end; past that a request is
//! answered 503 at once, so hung probes cannot pile up connections.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use health_proto::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;

use crate::check::{self, Probed};
use crate::config::{Check, Kind, Module, BUILT_IN_MODULES};

/// The config's modules, shared by the watcher (which replaces them on a
/// reload) and `/probe`.
pub(crate) type Modules = Arc<RwLock<Arc<BTreeMap<String, Module>>>>;

/// Checks run at once for `/probe`.
pub(crate) const MAX_PROBES: usize = 64;
/// Requests that wait for one of those checks to end.
pub(crate) const MAX_WAITING: usize = 64;
/// Longest `target` accepted, in bytes.
const MAX_TARGET: usize = 512;
/// The check's timeout without a scrape timeout to go by.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Left of the scrape timeout for the reply to reach Prometheus.
const OFFSET: Duration = Duration::from_millis(500);
const MIN_TIMEOUT: Duration = Duration::from_millis(10);

/// Why a probe request is refused (HTTP 400), in blackbox's words.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadProbe {
    NoTarget,
    TargetTooLong,
    /// The module asked for, and the modules there are.
    UnknownModule(String, String),
    /// The target does not make a check (a spec rule broken).
    BadTarget(String),
}

impl std::fmt::Display for BadProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadProbe::NoTarget => write!(f, "Target parameter is missing"),
            BadProbe::TargetTooLong => write!(f, "Target parameter is over {MAX_TARGET} bytes"),
            BadProbe::UnknownModule(m, known) => write!(
                f,
                "Unknown module {:?} (modules: {known})",
                health_probe::text::shown_within(m, 64),
            ),
            BadProbe::BadTarget(why) => write!(f, "Target parameter: {why}"),
        }
    }
}

/// The check timeout for a scrape timeout Prometheus announced (seconds),
/// at most `max` (`http_probe_max_timeout`).
pub(crate) fn timeout_for(scrape_timeout: Option<&str>, max: Duration) -> Duration {
    let max = max.max(MIN_TIMEOUT);
    let announced = scrape_timeout
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)));
    announced
        .map_or(DEFAULT_TIMEOUT, |t| t.saturating_sub(OFFSET))
        .clamp(MIN_TIMEOUT, max)
}

/// How many `/probe` checks run, and wait, at once.
#[derive(Debug)]
pub(crate) struct Limit {
    running: Semaphore,
    admitted: Semaphore,
}

impl Limit {
    pub(crate) fn new() -> Limit {
        Limit {
            running: Semaphore::new(MAX_PROBES),
            admitted: Semaphore::new(MAX_PROBES + MAX_WAITING),
        }
    }
}

/// The check `module` (built in, or one of `modules`) makes of `target`.
pub(crate) fn check_for(
    module: Option<&str>,
    target: Option<&str>,
    timeout: Duration,
    modules: &BTreeMap<String, Module>,
) -> Result<Check, BadProbe> {
    let target = target.filter(|t| !t.is_empty()).ok_or(BadProbe::NoTarget)?;
    if target.len() > MAX_TARGET {
        return Err(BadProbe::TargetTooLong);
    }
    let broken = |errors: Vec<health_probe::spec::SpecError>| {
        let said: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        BadProbe::BadTarget(said.join("; "))
    };
    let addr = target.to_string();
    let name = module.unwrap_or(BUILT_IN_MODULES[0]);
    if let Ok(kind) = name.parse::<Kind>() {
        return Check::built_in(kind, addr, timeout).map_err(broken);
    }
    match modules.get(name) {
        Some(m) => {
            let timeout = m.timeout.map_or(timeout, |t| t.min(timeout));
            m.check.at(addr, timeout).map_err(broken)
        }
        None => {
            let mut known: Vec<&str> = BUILT_IN_MODULES.to_vec();
            known.extend(modules.keys().take(20).map(String::as_str));
            if modules.len() > 20 {
                known.push("...");
            }
            Err(BadProbe::UnknownModule(name.to_string(), known.join(", ")))
        }
    }
}

/// Runs `check` within the probe limit; the registry holding its result,
/// or `None` when [`MAX_PROBES`] run and [`MAX_WAITING`] wait already.
pub(crate) async fn probe(limit: &Limit, check: Check) -> Option<Registry> {
    let _admitted = limit.admitted.try_acquire().ok()?;
    let _permit = limit.running.acquire().await;
    let start = Instant::now();
    let probed = check::observe(&check).await;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Finding {
        probed,
        took: start.elapsed(),
    }));
    Some(registry)
}

/// One probe's result, encoded once.
struct Finding {
    probed: Probed,
    took: Duration,
}

impl std::fmt::Debug for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finding").finish_non_exhaustive()
    }
}

/// Encodes one unlabelled gauge: `/probe`'s results and the exporter's own.
pub(crate) fn gauge<
    N: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync,
>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Finding {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let o = &self.probed.observation;
        let failed = o.failed();
        gauge(
            &mut encoder,
            "probe_success",
            "Whether the check passed",
            i64::from(!failed),
        )?;
        gauge(
            &mut encoder,
            "probe_duration_seconds",
            "How long the check took",
            self.took.as_secs_f64(),
        )?;
        if let Some((state, weight)) = self.probed.landmark {
            let mut family = encoder.encode_descriptor(
                "probe_landmark_state",
                "The landmark's state, one-hot",
                None,
                MetricType::Gauge,
            )?;
            for s in State::ALL {
                ConstGauge::new(i64::from(s == state))
                    .encode(family.encode_family(&[("state", s.as_str())])?)?;
            }
            if let Some(w) = weight {
                gauge(
                    &mut encoder,
                    "probe_landmark_weight",
                    "The landmark's weight",
                    i64::from(w),
                )?;
            }
        }
        if let Some(expiry) = self.probed.cert_expiry {
            gauge(
                &mut encoder,
                "probe_ssl_earliest_cert_expiry",
                "When the first certificate of the chain the server sent expires, in Unix seconds",
                expiry,
            )?;
        }
        if let Some(version) = self.probed.tls_version {
            let mut family = encoder.encode_descriptor(
                "probe_tls_version_info",
                "The TLS version agreed",
                None,
                MetricType::Gauge,
            )?;
            // blackbox_exporter's spelling: "TLS 1.3".
            let version = version.replace("TLSv", "TLS ");
            ConstGauge::new(1).encode(family.encode_family(&[("version", version.as_str())])?)?;
        }
        if failed {
            let mut family = encoder.encode_descriptor(
                "probe_failure_info",
                "Why the check failed: its class (NG: the peer said no, WR: no answer in time, ERR: it could not start) and reason",
                None,
                MetricType::Gauge,
            )?;
            let labels = [
                ("class", o.class.as_str()),
                ("reason", o.reason.unwrap_or("")),
            ];
            ConstGauge::new(1).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_follows_the_scrape_timeout() {
        let max = Duration::from_secs(10);
        assert_eq!(timeout_for(None, max), DEFAULT_TIMEOUT);
        assert_eq!(timeout_for(Some("10"), max), Duration::from_millis(9500));
        assert_eq!(timeout_for(Some("0.2"), max), MIN_TIMEOUT);
        // A client cannot ask for more than the config allows.
        assert_eq!(timeout_for(Some("1e9"), max), max);
        assert_eq!(timeout_for(Some("60"), max), max);
        assert_eq!(
            timeout_for(Some("60"), Duration::from_secs(60)),
            Duration::from_millis(59_500)
        );
        assert_eq!(
            timeout_for(None, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(timeout_for(Some("NaN"), max), DEFAULT_TIMEOUT);
        assert_eq!(timeout_for(Some("-3"), max), DEFAULT_TIMEOUT);
    }

    #[test]
    fn modules_and_targets_are_checked() {
        let t = Duration::from_secs(1);
        let none = BTreeMap::new();
        assert!(matches!(
            check_for(None, Some("127.0.0.1:9100"), t, &none),
            Ok(Check::Landmark(_))
        ));
        assert!(matches!(
            check_for(Some("tcp"), Some("127.0.0.1:22"), t, &none),
            Ok(Check::Tcp(_))
        ));
        assert!(matches!(
            check_for(Some("ping"), Some("127.0.0.1"), t, &none),
            Ok(Check::Ping(_))
        ));
        assert_eq!(
            check_for(Some("tcp"), None, t, &none).err(),
            Some(BadProbe::NoTarget)
        );
        assert_eq!(
            check_for(Some("tcp"), Some(""), t, &none).err(),
            Some(BadProbe::NoTarget)
        );
        assert!(matches!(
            check_for(Some("http_2xx"), Some("x:1"), t, &none),
            Err(BadProbe::UnknownModule(..))
        ));
        let long = "a".repeat(MAX_TARGET + 1);
        assert_eq!(
            check_for(Some("tcp"), Some(&long), t, &none).err(),
            Some(BadProbe::TargetTooLong)
        );
    }
}
