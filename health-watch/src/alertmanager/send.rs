//! One Alertmanager's sender: posts the alerts it has not delivered, in
//! batches, retries failures with backoff, and says when it cannot reach
//! the Alertmanager and when it can again.
//!
//! Each request is one HTTP/1.1 connection ([`crate::http_client`]; alerts
//! are sent at most every few seconds, so a pool would only hold a
//! descriptor), under [`POST_TIMEOUT`] from name resolution to the last
//! byte of the reply, whose body is read only up to [`MAX_REPLY`] bytes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, Request};
use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Alerts, Postable, Sent, BATCH};
use crate::config::AlertmanagerUrl;
use crate::http_client::{self, HttpError};
use crate::output::{Notice, Output};
use health_probe::text::cut;

/// The longest one request may take, connection included.
pub(crate) const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the last try at what is due may take when the watcher stops.
pub(crate) const FINAL_TRY: Duration = Duration::from_secs(2);
/// The first pause after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// While failures go on, how often they are said again.
const SAY_AGAIN_EVERY: Duration = Duration::from_secs(300);
/// Most bytes of a reply's body read (for the error message).
const MAX_REPLY: usize = 4096;

/// Why a request failed.
pub(crate) type PostError = HttpError;

pub(super) struct Sender {
    alerts: Arc<Alerts>,
    index: usize,
    output: Arc<Output>,
    /// What this Alertmanager has received: each alert's version, and when.
    sent: Sent,
    backoff: Duration,
    failing: Option<Failing>,
}

/// Requests failing in a row.
struct Failing {
    since: Instant,
    /// When that was last said.
    said: Instant,
    tries: u64,
}

impl Sender {
    pub(super) fn new(alerts: Arc<Alerts>, index: usize, output: Arc<Output>) -> Sender {
        Sender {
            alerts,
            index,
            output,
            sent: Sent::new(),
            backoff: Duration::ZERO,
            failing: None,
        }
    }

    fn url(&self) -> &AlertmanagerUrl {
        &self.alerts.settings.alertmanagers[self.index]
    }

    /// Sends until `stop`, then tries once more at what is due.
    pub(super) async fn run(mut self, mut changed: watch::Receiver<()>, stop: CancellationToken) {
        loop {
            changed.borrow_and_update();
            let next = tokio::select! {
                _ = stop.cancelled() => break,
                next = self.send_due() => next,
            };
            let Ok(next) = next else {
                // Failed: wait, then try again (a change does not hurry it).
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(self.backoff) => continue,
                }
            };
            let resend = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = changed.changed() => {}
                _ = resend => {}
            }
        }
        let _ = tokio::time::timeout(FINAL_TRY, self.send_due()).await;
    }

    /// Posts everything due, batch by batch: `Ok` with when the next alert
    /// falls due (what was just delivered included), or `Err` at the first
    /// failure (batches before it count as delivered).
    async fn send_due(&mut self) -> Result<Option<Instant>, ()> {
        let all = Arc::clone(&self.alerts);
        let mut left = all.due(&mut self.sent);
        let stats = &all.stats[self.index];
        stats.pending.store(left.len() as u64, Ordering::Relaxed);
        while !left.is_empty() {
            let rest = left.split_off(left.len().min(BATCH));
            let batch: Vec<&Postable> = left.iter().map(|(_, _, p)| p).collect();
            let body = Bytes::from(serde_json::to_vec(&batch).unwrap_or_default());
            if let Err(e) = post(self.url(), body).await {
                stats.posts_failed.fetch_add(1, Ordering::Relaxed);
                self.failed(&e, left.len() + rest.len());
                return Err(());
            }
            stats.posts_ok.fetch_add(1, Ordering::Relaxed);
            stats
                .alerts_sent
                .fetch_add(left.len() as u64, Ordering::Relaxed);
            stats.pending.store(rest.len() as u64, Ordering::Relaxed);
            let now = Instant::now();
            for (labels, version, _) in left {
                self.sent.insert(labels, (version, now));
            }
            self.recovered();
            left = rest;
        }
        Ok(all.next_due(&self.sent))
    }

    fn failed(&mut self, e: &PostError, pending: usize) {
        self.backoff = (self.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
        let now = Instant::now();
        let say = match &mut self.failing {
            None => {
                self.failing = Some(Failing {
                    since: now,
                    said: now,
                    tries: 1,
                });
                true
            }
            Some(f) => {
                f.tries += 1;
                let again = now.duration_since(f.said) >= SAY_AGAIN_EVERY;
                if again {
                    f.said = now;
                }
                again
            }
        };
        if say {
            self.output.notice(Notice::Error(format!(
                "cannot send {pending} alert{} to Alertmanager {}: {e}; retrying with backoff (now {}s)",
                if pending == 1 { "" } else { "s" },
                self.url().shown,
                self.backoff.as_secs()
            )));
        }
    }

    fn recovered(&mut self) {
        self.backoff = Duration::ZERO;
        if let Some(f) = self.failing.take() {
            self.output.notice(Notice::Warning(format!(
                "Alertmanager {} takes alerts again, after {} failed tries over {}s",
                self.url().shown,
                f.tries,
                f.since.elapsed().as_secs()
            )));
        }
    }
}

/// One `POST` of `body` (a JSON array of alerts) to `am`.
pub(crate) async fn post(am: &AlertmanagerUrl, body: Bytes) -> Result<(), PostError> {
    tokio::time::timeout(POST_TIMEOUT, exchange(am, body))
        .await
        .unwrap_or_else(|_| Err(PostError::Timeout(format!("{}s", POST_TIMEOUT.as_secs()))))
}

async fn exchange(am: &AlertmanagerUrl, body: Bytes) -> Result<(), PostError> {
    let request = Request::post(am.path.as_str())
        .header(header::HOST, am.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, http_client::USER_AGENT)
        .body(Full::new(body))
        .expect("a request built from a validated URL");
    let (status, body) = http_client::exchange(&am.authority, request, MAX_REPLY).await?;
    if status.is_success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&body);
        // Cut, not escaped: the log line escapes it (JSON encodes it).
        Err(PostError::Status(
            status,
            cut(text.trim(), 200).into_owned(),
        ))
    }
}
