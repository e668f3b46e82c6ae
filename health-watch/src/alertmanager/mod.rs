//! `alertmanager_url`: alarms as Alertmanager alerts, through its API v2
//! (`POST /api/v2/alerts`), as Prometheus sends its own.
//!
//! A raise makes a firing alert, with the labels `alertname`
//! ([`ALERTNAME`]), `target`, `kind`, `address`, `class` and `reason`, plus
//! `alertmanager_labels`, and the detail in its annotations. A firing
//! alert is sent again every `alertmanager_resend` with `endsAt` four
//! resends ahead, so that Alertmanager resolves it by itself if the
//! watcher dies. A clear (or the target's removal) resolves it: sent with
//! `endsAt` at the clear, and again at each resend for
//! [`RESOLVED_RETENTION`], then forgotten. An alarm still open when the
//! watcher starts is sent as firing again, from the time it was raised.
//!
//! The checks never wait for any of this: a raise or a clear only updates
//! the alerts under a lock and wakes the senders. Each Alertmanager has a
//! sender of its own ([`send`]) that posts what it has not delivered yet,
//! in batches of at most [`BATCH`], and retries failures with backoff; the
//! failures are logged (once, then every few minutes while they last) and
//! counted in the watcher's metrics.

mod send;

pub(crate) use send::FINAL_TRY;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Alerting;
use crate::output::Output;

/// The `alertname` of every alert the watcher sends.
pub(crate) const ALERTNAME: &str = "HealthProbeAlarm";
/// How long a resolved alert is still sent, as Prometheus does: an
/// Alertmanager that missed the first send learns of it.
pub(crate) const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);
/// Most alerts in one request (Prometheus's own batch size).
pub(crate) const BATCH: usize = 256;
/// Most bytes of a detail in an alert's annotations.
const MAX_DETAIL: usize = 4096;

type Labels = BTreeMap<String, String>;

/// An alarm that is raised, as the alert's labels and annotations need it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raised<'a> {
    pub target: &'a str,
    pub kind: &'a str,
    pub addr: &'a str,
    pub class: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub detail: &'a str,
    /// When it was raised.
    pub at: SystemTime,
    /// The reminder's number, for the `reminder` label.
    pub reminder: Option<u32>,
}

/// One alert, firing or resolved.
struct Alert {
    annotations: BTreeMap<&'static str, String>,
    starts_at: SystemTime,
    /// Set when the alarm cleared.
    resolved_at: Option<SystemTime>,
    /// Changes with each update, so a sender knows what it has not sent.
    version: u64,
}

#[derive(Default)]
struct State {
    next_version: u64,
    alerts: HashMap<Arc<Labels>, Alert>,
    /// Each target's firing alert.
    firing: HashMap<String, Arc<Labels>>,
}

/// One alert in API v2's `postableAlert` form.
#[derive(Debug, Serialize)]
struct Postable {
    labels: Arc<Labels>,
    annotations: BTreeMap<&'static str, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
}

/// Alerts to send to one Alertmanager: each with the version it carries.
type Due = Vec<(Arc<Labels>, u64, Postable)>;

/// What one Alertmanager has received: each alert's version, and when.
type Sent = HashMap<Arc<Labels>, (u64, Instant)>;

/// Counted per Alertmanager, for the metrics.
#[derive(Debug, Default)]
struct Stats {
    posts_ok: AtomicU64,
    posts_failed: AtomicU64,
    alerts_sent: AtomicU64,
    /// Alerts due and not delivered yet.
    pending: AtomicU64,
}

/// The alerts and their senders.
pub(crate) struct Alerts {
    settings: Alerting,
    state: Mutex<State>,
    changed: watch::Sender<()>,
    stats: Vec<Stats>,
}

impl Alerts {
    pub(crate) fn new(settings: Alerting) -> Arc<Alerts> {
        let stats = settings
            .alertmanagers
            .iter()
            .map(|_| Stats::default())
            .collect();
        Arc::new(Alerts {
            settings,
            state: Mutex::new(State::default()),
            changed: watch::channel(()).0,
            stats,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An alarm is raised (or found open at start): its alert fires. One
    /// already firing for the target with other labels is resolved.
    pub(crate) fn raised(&self, r: &Raised<'_>) {
        let mut labels = self.settings.labels.clone();
        if let Some(n) = r.reminder {
            labels.insert("reminder".to_string(), n.to_string());
        }
        for (name, value) in [
            ("alertname", Some(ALERTNAME)),
            ("target", Some(r.target)),
            ("kind", Some(r.kind)),
            ("address", Some(r.addr)),
            ("class", r.class),
            ("reason", r.reason),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                labels.insert(name.to_string(), v.to_string());
            }
        }
        let mut annotations = BTreeMap::new();
        let why = [r.class, r.reason]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        annotations.insert(
            "summary",
            format!(
                "{} ({} {}) is in alarm: {}",
                r.target,
                r.kind,
                r.addr,
                why.join(" ")
            ),
        );
        annotations.insert(
            "description",
            health_probe::text::cut(r.detail, MAX_DETAIL).into_owned(),
        );
        let labels = Arc::new(labels);
        let mut state = self.lock();
        if let Some(old) = state.firing.remove(r.target) {
            if old != labels {
                state.resolve(&old, r.at);
            }
        }
        state.next_version += 1;
        let version = state.next_version;
        state.firing.insert(r.target.to_string(), labels.clone());
        state.alerts.insert(
            labels,
            Alert {
                annotations,
                starts_at: r.at,
                resolved_at: None,
                version,
            },
        );
        drop(state);
        self.changed.send_replace(());
    }

    /// `target`'s alarm cleared (or the target is gone): its alert is
    /// resolved.
    pub(crate) fn cleared(&self, target: &str, at: SystemTime) {
        let mut state = self.lock();
        if let Some(labels) = state.firing.remove(target) {
            state.resolve(&labels, at);
            drop(state);
            self.changed.send_replace(());
        }
    }

    /// Starts one sender per Alertmanager; they stop (after one last try
    /// at what is due, of at most [`send::FINAL_TRY`]) when `stop` is
    /// cancelled.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        output: Arc<Output>,
        stop: CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        (0..self.settings.alertmanagers.len())
            .map(|i| {
                let sender = send::Sender::new(self.clone(), i, output.clone());
                tokio::spawn(sender.run(self.changed.subscribe(), stop.clone()))
            })
            .collect()
    }

    /// What one sender has to send now; `sent` holds what it delivered
    /// (version, when), and loses the alerts forgotten here.
    fn due(&self, sent: &mut Sent) -> Due {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let resend = self.settings.resend;
        let mut state = self.lock();
        state.alerts.retain(|_, a| {
            a.resolved_at
                .is_none_or(|at| wall.duration_since(at).unwrap_or_default() < RESOLVED_RETENTION)
        });
        sent.retain(|labels, _| state.alerts.contains_key(labels));
        let mut due = Due::new();
        for (labels, a) in &state.alerts {
            match sent.get(labels) {
                Some(&(version, at)) if version == a.version && at + resend > now => {}
                _ => due.push((
                    labels.clone(),
                    a.version,
                    Postable {
                        labels: labels.clone(),
                        annotations: a.annotations.clone(),
                        starts_at: rfc3339(a.starts_at),
                        ends_at: rfc3339(a.resolved_at.unwrap_or(wall + resend * 4)),
                    },
                )),
            }
        }
        due
    }

    /// When the next of the alerts in `sent` falls due again: each one
    /// delivered, firing or resolved, is sent again `alertmanager_resend`
    /// after its last delivery (so a firing alert never reaches the
    /// `endsAt` it was sent with while its alarm is open).
    fn next_due(&self, sent: &Sent) -> Option<Instant> {
        sent.values()
            .map(|&(_, at)| at + self.settings.resend)
            .min()
    }

    /// The metrics of the alerts and their delivery.
    pub(crate) fn collector(self: &Arc<Self>) -> Box<dyn Collector> {
        Box::new(Metrics(self.clone()))
    }
}

impl State {
    fn resolve(&mut self, labels: &Arc<Labels>, at: SystemTime) {
        self.next_version += 1;
        let version = self.next_version;
        if let Some(a) = self.alerts.get_mut(labels) {
            a.resolved_at = Some(at.max(a.starts_at));
            a.version = version;
        }
    }
}

/// RFC 3339 in UTC, to the millisecond, as Alertmanager's API takes it.
fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("settings", &self.settings)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Metrics(Arc<Alerts>);

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (firing, resolved) = {
            let state = self.0.lock();
            let firing = state.firing.len() as i64;
            (firing, state.alerts.len() as i64 - firing)
        };
        let mut family = encoder.encode_descriptor(
            "watch_alertmanager_alerts",
            "Alerts being sent to Alertmanager: firing, or resolved within the last 15 minutes",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [("firing", firing), ("resolved", resolved)] {
            ConstGauge::new(n).encode(family.encode_family(&[("state", state)])?)?;
        }
        let ams = &self.0.settings.alertmanagers;
        let mut family = encoder.encode_descriptor(
            "watch_alertmanager_posts",
            "Requests to each Alertmanager, by outcome (error: refused, unreachable or timed out)",
            None,
            MetricType::Counter,
        )?;
        for (am, s) in ams.iter().zip(&self.0.stats) {
            for (outcome, n) in [("ok", &s.posts_ok), ("error", &s.posts_failed)] {
                let labels = [("alertmanager", am.shown.as_str()), ("outcome", outcome)];
                ConstCounter::new(n.load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "watch_alertmanager_alerts_sent",
            "Alerts delivered to each Alertmanager (each resend counts)",
            None,
            MetricType::Counter,
        )?;
        for (am, s) in ams.iter().zip(&self.0.stats) {
            ConstCounter::new(s.alerts_sent.load(Ordering::Relaxed))
                .encode(family.encode_family(&[("alertmanager", am.shown.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "watch_alertmanager_pending_alerts",
            "Alerts due to each Alertmanager and not delivered yet: above 0 for long, it cannot be reached",
            None,
            MetricType::Gauge,
        )?;
        for (am, s) in ams.iter().zip(&self.0.stats) {
            ConstGauge::new(s.pending.load(Ordering::Relaxed) as i64)
                .encode(family.encode_family(&[("alertmanager", am.shown.as_str())])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
