//! Getting one observation of the service's landmark for a check: asking the
//! main thread (shared by concurrent checks, bounded by the answer deadline)
//! or reading the published landmark (bounded by the stale limit).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use health_proto::Landmark;
use tokio::sync::{oneshot, watch};

use crate::metrics::Metrics;
use crate::source::{Ask, AskTx, Published, SourceKind};

/// What the server learned about the service for one check.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    pub(crate) landmark: Arc<Landmark>,
    /// True when the landmark is the service's own; false when the server
    /// made it up because the service did not answer (a `fail`).
    pub(crate) from_service: bool,
    pub(crate) answer_us: u64,
    pub(crate) age_us: Option<u64>,
}

impl Observation {
    fn failed(reason: String, answer_us: u64) -> Observation {
        Observation {
            landmark: Arc::new(Landmark::fail(reason)),
            from_service: false,
            answer_us,
            age_us: None,
        }
    }
}

/// Settings for observing landmarks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ObserveConfig {
    pub(crate) answer_deadline: Duration,
    pub(crate) stale_after: Duration,
    pub(crate) slow_answer: Duration,
}

/// The server's side of a landmark source.
pub(crate) enum Observer {
    Ask(Arc<Asker>),
    Publish(watch::Receiver<Published>, ObserveConfig),
}

impl Observer {
    pub(crate) fn new(kind: SourceKind, cfg: ObserveConfig, metrics: Metrics) -> Observer {
        match kind {
            SourceKind::Ask(tx) => Observer::Ask(Arc::new(Asker {
                tx,
                cfg,
                metrics,
                pending: Mutex::new(None),
            })),
            SourceKind::Publish(rx) => Observer::Publish(rx, cfg),
        }
    }

    pub(crate) async fn observe(&self) -> Arc<Observation> {
        match self {
            Observer::Ask(asker) => asker.observe().await,
            Observer::Publish(rx, cfg) => Arc::new(read_published(rx, cfg, true)),
        }
    }

    /// The published landmark's channel, for a watch hub to learn of each
    /// publication at once; `None` when the main thread is asked.
    pub(crate) fn published(&self) -> Option<watch::Receiver<Published>> {
        match self {
            Observer::Ask(_) => None,
            Observer::Publish(rx, _) => Some(rx.clone()),
        }
    }

    /// The `fail` a check would get now, when the server already knows it
    /// without waiting: the outstanding ask is past its deadline (the main
    /// thread is hung), the main thread is gone, or the published landmark
    /// is stale. `None` when a check could still pass. Costs a lock, no
    /// wait: for connections the server cannot serve (section 8.1 of
    /// PROTOCOL.md), which must still hear that the service is down.
    pub(crate) fn known_failure(&self) -> Option<Landmark> {
        match self {
            Observer::Ask(asker) => asker.known_failure(),
            Observer::Publish(rx, cfg) => {
                // Quietly: a refusal under load must not log per connection.
                let obs = read_published(rx, cfg, false);
                (!obs.from_service).then(|| Landmark::clone(&obs.landmark))
            }
        }
    }
}

/// The published landmark, or a `fail` when it is stale or its publisher
/// gone (with a warning, if `warn`).
fn read_published(rx: &watch::Receiver<Published>, cfg: &ObserveConfig, warn: bool) -> Observation {
    if rx.has_changed().is_err() {
        return Observation::failed("main thread gone".into(), 0);
    }
    let published = rx.borrow().clone();
    let age = published.at.elapsed();
    if age > cfg.stale_after {
        if warn {
            tracing::warn!(
                age_ms = age.as_millis() as u64,
                limit_ms = cfg.stale_after.as_millis() as u64,
                "check failed: published landmark is stale"
            );
        }
        return Observation::failed(
            format!(
                "landmark is stale: last published {} ago (limit {})",
                fmt_duration(age),
                fmt_duration(cfg.stale_after)
            ),
            0,
        );
    }
    Observation {
        landmark: published.landmark,
        from_service: true,
        answer_us: 0,
        age_us: Some(micros(age)),
    }
}

/// Asks the main thread, with at most one ask outstanding.
///
/// The outstanding ask lives until the main thread answers it (or drops it),
/// not just until one check's deadline: every check that arrives meanwhile
/// waits on the same ask for at most its own answer deadline. A storm of
/// checks therefore costs the main thread one answer, and a hung main thread
/// finds exactly one ask waiting when it recovers.
pub(crate) struct Asker {
    /// The ask channel, with its wake-ups and the main thread's `gone`.
    tx: AskTx,
    cfg: ObserveConfig,
    metrics: Metrics,
    /// The outstanding ask's result, and when it was asked.
    pending: Mutex<Option<(AskResult, Instant)>>,
}

/// Where the outstanding ask's observation appears.
type AskResult = watch::Receiver<Option<Arc<Observation>>>;

impl Asker {
    async fn observe(self: &Arc<Self>) -> Arc<Observation> {
        let started = Instant::now();
        let mut result = self.pending_or_new_ask();
        let deadline = self.cfg.answer_deadline;
        let waited = tokio::time::timeout(deadline, result.wait_for(Option::is_some))
            .await
            .map(|r| r.map(|obs| obs.clone()));
        match waited {
            Ok(Ok(Some(obs))) => obs,
            Ok(Ok(None)) => unreachable_observation(),
            Ok(Err(_)) => Arc::new(Observation::failed(
                "health server is shutting down".into(),
                micros(started.elapsed()),
            )),
            Err(_) => Arc::new(Observation::failed(unanswered(deadline), micros(deadline))),
        }
    }

    /// See [`Observer::known_failure`].
    fn known_failure(&self) -> Option<Landmark> {
        if self.tx.gone.is_cancelled() || self.tx.is_disconnected() {
            return Some(Landmark::fail("main thread gone"));
        }
        let deadline = self.cfg.answer_deadline;
        let slot = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (_, asked_at) = slot.as_ref()?;
        (asked_at.elapsed() >= deadline).then(|| Landmark::fail(unanswered(deadline)))
    }

    /// The result channel of the outstanding ask, sending a new ask if there
    /// is none.
    fn pending_or_new_ask(self: &Arc<Self>) -> AskResult {
        let mut slot = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((rx, _)) = slot.as_ref() {
            return rx.clone();
        }
        let (result_tx, result_rx) = watch::channel(None);
        let (reply_tx, reply_rx) = oneshot::channel();
        let asked_at = Instant::now();
        let sent = self.tx.try_send(Ask {
            reply: reply_tx,
            asked_at,
        });
        match sent {
            Ok(()) => {
                self.metrics.asked();
                *slot = Some((result_rx.clone(), asked_at));
                let me = Arc::clone(self);
                tokio::spawn(async move {
                    let obs = me.await_answer(reply_rx, asked_at).await;
                    // Clear the slot and publish under the lock, so a check
                    // either joins this ask (and sees its result) or starts a
                    // new one.
                    let mut slot = me.pending.lock().unwrap_or_else(|p| p.into_inner());
                    *slot = None;
                    result_tx.send_replace(Some(Arc::new(obs)));
                });
            }
            Err(e) => {
                let reason = match e {
                    flume::TrySendError::Disconnected(_) => "main thread gone".to_string(),
                    // Unreachable by construction (one ask outstanding, one
                    // slot), but a full queue must still read as a failure.
                    flume::TrySendError::Full(_) => {
                        format!("main thread is not taking asks ({} pending)", self.tx.len())
                    }
                };
                tracing::warn!(reason = %reason, "check failed");
                result_tx.send_replace(Some(Arc::new(Observation::failed(reason, 0))));
            }
        }
        result_rx
    }

    async fn await_answer(
        &self,
        mut reply: oneshot::Receiver<Landmark>,
        asked_at: Instant,
    ) -> Observation {
        let deadline = self.cfg.answer_deadline;
        // Biased: an answer that arrived wins over the main thread having
        // exited just after sending it.
        let answer = tokio::select! {
            biased;
            r = &mut reply => r.ok(),
            _ = self.tx.gone.cancelled() => None,
            _ = tokio::time::sleep(deadline) => {
                self.metrics.unanswered();
                // Logged once per ask, however many checks are waiting on it.
                tracing::warn!(
                    deadline_ms = deadline.as_millis() as u64,
                    "check failed: main thread did not answer within the deadline; still waiting"
                );
                tokio::select! {
                    biased;
                    r = reply => r.ok(),
                    _ = self.tx.gone.cancelled() => None,
                }
            }
        };
        let took = asked_at.elapsed();
        match answer {
            Some(landmark) => {
                self.metrics.answered(took.as_secs_f64());
                if took > self.cfg.slow_answer {
                    tracing::warn!(
                        answer_ms = took.as_millis() as u64,
                        state = %landmark.state,
                        "slow check: main thread answered late"
                    );
                }
                Observation {
                    landmark: Arc::new(landmark),
                    from_service: true,
                    answer_us: micros(took),
                    age_us: None,
                }
            }
            None => {
                // The Ask was dropped: by the main thread, or with the whole
                // `Asks` receiver (then the channel is disconnected).
                let reason = if self.tx.gone.is_cancelled() || self.tx.is_disconnected() {
                    "main thread gone"
                } else {
                    "main thread dropped the ask without answering"
                };
                tracing::warn!(reason, "check failed");
                Observation::failed(reason.into(), micros(took))
            }
        }
    }
}

/// Why a check failed when the main thread did not answer in time.
fn unanswered(deadline: Duration) -> String {
    format!(
        "main thread did not answer within {}",
        fmt_duration(deadline)
    )
}

fn unreachable_observation() -> Arc<Observation> {
    // `wait_for(Option::is_some)` only returns a `Some`; kept total so no
    // path can panic.
    Arc::new(Observation::failed(
        "internal error: empty observation".into(),
        0,
    ))
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Formats a duration the way operators write them: `500ms`, `2s`, `7.2s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_like_flags() {
        assert_eq!(fmt_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(fmt_duration(Duration::from_secs(2)), "2s");
        assert_eq!(fmt_duration(Duration::from_millis(7250)), "7.2s");
    }
}
