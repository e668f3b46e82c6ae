//! A remote vantage point: another watcher, asked to check the target
//! through its `/probe` (`GET /probe?target=ADDR&module=NAME`), with its
//! own module settings and access rules, under this target's deadline.
//!
//! The deadline travels as Prometheus's would: the request says the scrape
//! timeout is the target's `timeout` plus the half second `/probe` keeps
//! for its reply, so the remote check gets the same time as a local one
//! (within the remote's `http_probe_max_timeout`). The whole exchange must
//! end within the timeout and [`super::REMOTE_MARGIN`]; the reply is read
//! only up to [`MAX_REPLY`] bytes, and only the few series the vote needs
//! are taken from it. A remote watcher that cannot answer (unreachable,
//! refusing, busy, too slow, not speaking `/probe`) abstains.

use std::time::Duration;

use axum::http::{header, Request, StatusCode};
use bytes::Bytes;
use health_probe::check::Kind;
use health_probe::outcome::{Class, Speed};
use http_body_util::Full;

use super::{Ballot, REMOTE_MARGIN};
use crate::check::Observation;
use crate::http_client::{self, HttpError, HttpUrl};

/// Most bytes of a `/probe` reply read: a few hundred are expected.
pub(crate) const MAX_REPLY: usize = 64 * 1024;

/// Most bytes of a remote's reason word kept.
const MAX_REASON: usize = 64;

/// A remote watcher's `/probe`, and the module it is asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteProbe {
    /// The base URL as written: the point's name.
    pub shown: String,
    url: HttpUrl,
    /// `None`: the built-in module of the target's kind.
    module: Option<String>,
}

impl RemoteProbe {
    /// The watcher at `url` (its base URL, `/probe` is added), running
    /// `module` (or the target's kind's built-in module).
    pub(crate) fn new(url: HttpUrl, module: Option<String>) -> RemoteProbe {
        RemoteProbe {
            shown: url.shown.clone(),
            url,
            module,
        }
    }

    /// Asks it to check `addr` with `kind`'s module within `timeout`.
    pub(crate) async fn ask(&self, kind: Kind, addr: &str, timeout: Duration) -> Ballot {
        let at = std::time::SystemTime::now();
        let module = self.module.as_deref().unwrap_or(kind.as_str());
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("target", addr)
            .append_pair("module", module)
            .finish();
        let scrape_timeout = timeout.as_secs_f64() + 0.5;
        let request = Request::get(format!("{}?{query}", self.url.path))
            .header(header::HOST, self.url.authority.as_str())
            .header(header::USER_AGENT, http_client::USER_AGENT)
            .header(header::ACCEPT, "text/plain;version=0.0.4")
            .header(
                "x-prometheus-scrape-timeout-seconds",
                format!("{scrape_timeout:.3}"),
            )
            .body(Full::new(Bytes::new()));
        let Ok(request) = request else {
            return Ballot::Abstained("the target makes no request URL".into());
        };
        let within = timeout + REMOTE_MARGIN;
        let reply = tokio::time::timeout(
            within,
            http_client::exchange(&self.url.authority, request, MAX_REPLY),
        )
        .await
        .unwrap_or_else(|_| {
            Err(HttpError::Timeout(
                humantime::format_duration(within).to_string(),
            ))
        });
        match reply {
            Ok((StatusCode::OK, body)) => match read(&body) {
                Some(mut o) => {
                    o.at = at;
                    Ballot::Checked(o)
                }
                None => Ballot::Abstained("its reply has no probe_success".into()),
            },
            Ok((status, body)) => {
                let text = String::from_utf8_lossy(&body);
                let first = text.lines().next().unwrap_or("").trim();
                Ballot::Abstained(format!(
                    "answered {status}: {}",
                    health_probe::text::cut(first, 200)
                ))
            }
            Err(e) => Ballot::Abstained(e.to_string()),
        }
    }
}

/// The check a `/probe` reply tells of: `probe_success`, and on failure
/// `probe_failure_info`'s class and reason; `probe_duration_seconds` as its
/// round trip. `None` without `probe_success`.
pub(crate) fn read(body: &[u8]) -> Option<Observation> {
    let text = String::from_utf8_lossy(body);
    let (mut success, mut duration, mut failure) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some(v) = value_of(line, "probe_success") {
            success = Some(v == 1.0);
        } else if let Some(v) = value_of(line, "probe_duration_seconds") {
            duration = Some(v);
        } else if let Some(labels) = line
            .strip_prefix("probe_failure_info{")
            .and_then(|rest| rest.split_once('}'))
            .map(|(labels, _)| labels)
        {
            failure = Some((label(labels, "class"), label(labels, "reason")));
        }
    }
    let success = success?;
    let rtt = duration
        .filter(|d| d.is_finite() && *d >= 0.0 && *d < 86_400.0)
        .map(Duration::from_secs_f64);
    let (class, reason, speed) = match (success, &failure) {
        (true, _) => (Class::Ok, None, Speed::Fine),
        (false, Some((class, reason))) => {
            let class = match class.as_deref() {
                Some("NG") => Class::Ng,
                Some("WR") => Class::Wr,
                Some("ERR") => Class::Err,
                _ => Class::Ng,
            };
            (class, reason.as_deref().map(known_reason), Speed::Fine)
        }
        // Passed, but past its crit mark.
        (false, None) => (Class::Ok, None, Speed::OverCrit),
    };
    let detail = match (&failure, success) {
        (_, true) => "remote check passed".to_string(),
        (Some((_, Some(reason))), false) => format!(
            "remote check failed: {}",
            health_probe::text::cut(reason, MAX_REASON)
        ),
        _ => "remote check failed".to_string(),
    };
    Some(Observation {
        at: std::time::SystemTime::now(),
        class,
        reason,
        detail,
        rtt,
        speed,
    })
}

/// `name VALUE` (no labels): the value.
fn value_of(line: &str, name: &str) -> Option<f64> {
    let rest = line.strip_prefix(name)?;
    let rest = rest.strip_prefix(' ')?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The value of `name="..."` in a label set (no escapes in the values
/// `/probe` gives).
fn label(labels: &str, name: &str) -> Option<String> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let end = labels[start..].find('"')? + start;
    Some(labels[start..end].to_string())
}

/// The reasons checks give, as the watcher records them; any other a
/// remote says is `remote`.
fn known_reason(reason: &str) -> &'static str {
    const KNOWN: [&str; 21] = [
        "refused",
        "timeout",
        "reset",
        "closed",
        "wrong-answer",
        "dns",
        "no-route",
        "network",
        "source",
        "bad-address",
        "not-permitted",
        "ca",
        "unexpected-state",
        "protocol",
        "server-error",
        "cert-expired",
        "cert-expiring",
        "cert-invalid",
        "starttls",
        "internal",
        "vantage",
    ];
    KNOWN.into_iter().find(|k| *k == reason).unwrap_or("remote")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reply_reads_as_the_check_it_tells_of() {
        let ok = read(b"# HELP probe_success x\n# TYPE probe_success gauge\nprobe_success 1\nprobe_duration_seconds 0.0123\n").unwrap();
        assert_eq!(ok.class, Class::Ok);
        assert!(!ok.failed());
        assert_eq!(ok.rtt, Some(Duration::from_secs_f64(0.0123)));
        let ng = read(b"probe_success 0\nprobe_failure_info{class=\"NG\",reason=\"refused\"} 1\n")
            .unwrap();
        assert_eq!((ng.class, ng.reason), (Class::Ng, Some("refused")));
        assert!(ng.failed());
        let odd = read(b"probe_success 0\nprobe_failure_info{class=\"WR\",reason=\"\x1b[2J\"} 1\n")
            .unwrap();
        assert_eq!((odd.class, odd.reason), (Class::Wr, Some("remote")));
        let slow = read(b"probe_success 0\n").unwrap();
        assert!(slow.failed() && slow.class == Class::Ok);
        assert!(read(b"<html>not a probe</html>").is_none());
        assert!(read(b"probe_success_total 1\n").is_none());
    }
}
