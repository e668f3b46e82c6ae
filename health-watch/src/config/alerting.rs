//! The keys that send alarms to Alertmanager (docs/PROMETHEUS.md,
//! "Alarms to Alertmanager"): `alertmanager_url`, `alertmanager_resend`
//! and `alertmanager_labels`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use health_probe::text::shown;

/// Alertmanagers one watcher may send to (an HA cluster is 2 or 3).
pub(crate) const MAX_ALERTMANAGERS: usize = 8;
/// How often firing alerts are sent again, unless set: Prometheus's own
/// default (`--rules.alert.resend-delay`).
pub(crate) const DEFAULT_RESEND: Duration = Duration::from_secs(60);
/// Labels every alert carries, which `alertmanager_labels` cannot replace.
pub(crate) const RESERVED_LABELS: [&str; 7] = [
    "alertname",
    "target",
    "kind",
    "address",
    "class",
    "reason",
    "reminder",
];
/// Longest label value from the config, in bytes.
const MAX_LABEL_VALUE: usize = 1024;

/// `alertmanager_url` as written: one URL or a list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(super) fn urls(&self) -> &[String] {
        match self {
            OneOrMany::One(u) => std::slice::from_ref(u),
            OneOrMany::Many(us) => us,
        }
    }
}

/// The raw keys, read with the other top-level settings.
#[derive(Debug)]
pub(super) struct RawAlerting<'a> {
    pub url: Option<&'a Spanned<OneOrMany>>,
    pub resend: Duration,
    pub labels: Option<&'a Spanned<BTreeMap<String, String>>>,
}

/// Where alarms go, validated: present when `alertmanager_url` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alerting {
    pub alertmanagers: Vec<AlertmanagerUrl>,
    /// How often a firing alert is sent again.
    pub resend: Duration,
    /// Added to every alert.
    pub labels: BTreeMap<String, String>,
}

/// One Alertmanager: where to connect and what to ask for.
pub(crate) type AlertmanagerUrl = crate::http_client::HttpUrl;

/// Validates the keys; each problem is given to `error` with where it is.
pub(super) fn validate(
    raw: RawAlerting<'_>,
    mut error: impl FnMut(std::ops::Range<usize>, String),
) -> Option<Alerting> {
    let labels = match raw.labels {
        Some(l) => {
            for (name, value) in l.get_ref() {
                if let Err(e) = label(name, value) {
                    error(l.span(), format!("alertmanager_labels: {e}"));
                }
            }
            l.get_ref().clone()
        }
        None => BTreeMap::new(),
    };
    let Some(url) = raw.url else {
        if let Some(l) = raw.labels {
            error(
                l.span(),
                "alertmanager_labels without alertmanager_url".into(),
            );
        }
        return None;
    };
    let urls = url.get_ref().urls();
    if urls.is_empty() || urls.len() > MAX_ALERTMANAGERS {
        error(
            url.span(),
            format!("alertmanager_url must name 1 to {MAX_ALERTMANAGERS} Alertmanagers"),
        );
    }
    let mut alertmanagers = Vec::with_capacity(urls.len());
    for u in urls {
        match alertmanager_url(u) {
            Ok(a) if alertmanagers.contains(&a) => error(
                url.span(),
                format!("alertmanager_url {} is given twice", shown(u)),
            ),
            Ok(a) => alertmanagers.push(a),
            Err(e) => error(url.span(), format!("alertmanager_url {}: {e}", shown(u))),
        }
    }
    Some(Alerting {
        alertmanagers,
        resend: raw.resend,
        labels,
    })
}

/// `http://HOST[:PORT][/PREFIX]`: the base URL of an Alertmanager, as its
/// `--web.external-url` gives it.
pub(crate) fn alertmanager_url(text: &str) -> Result<AlertmanagerUrl, String> {
    crate::http_client::http_url(text, "an Alertmanager", "/api/v2/alerts")
}

/// A label Alertmanager accepts, and that does not replace one of ours.
fn label(name: &str, value: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid || name.starts_with("__") {
        return Err(format!(
            "label name {} must be letters, digits and _, not starting with a digit or __",
            shown(name)
        ));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(format!("label {name} is set by the watcher on every alert"));
    }
    if value.len() > MAX_LABEL_VALUE {
        return Err(format!(
            "label {name}'s value is longer than {MAX_LABEL_VALUE} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_where_to_connect_and_the_api_path() {
        let a = alertmanager_url("http://127.0.0.1:9093").unwrap();
        assert_eq!(
            (a.authority.as_str(), a.path.as_str()),
            ("127.0.0.1:9093", "/api/v2/alerts")
        );
        let a = alertmanager_url(" http://[::1]:9093/am/ ").unwrap();
        assert_eq!(
            (a.authority.as_str(), a.path.as_str(), a.shown.as_str()),
            ("[::1]:9093", "/am/api/v2/alerts", "http://[::1]:9093/am")
        );
        let a = alertmanager_url("http://alertmanager.example").unwrap();
        assert_eq!(a.authority, "alertmanager.example:80");
        for (bad, why) in [
            ("https://am:9093", "https is not supported"),
            ("am:9093", "must start with http://"),
            ("http://user:secret@am:9093", "credentials"),
            ("http://am:9093/?x=1", "query"),
            ("http://am:0", "port 0"),
            ("http://", "not a URL"),
        ] {
            let e = alertmanager_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn labels_are_prometheus_names_and_never_ours() {
        assert!(label("team", "net").is_ok());
        assert!(label("_x1", "").is_ok());
        for bad in ["1x", "a-b", "__meta", "", "é"] {
            assert!(label(bad, "v").is_err(), "{bad}");
        }
        assert!(label("target", "x")
            .unwrap_err()
            .contains("set by the watcher"));
        assert!(label("a", &"v".repeat(2000)).is_err());
    }
}
