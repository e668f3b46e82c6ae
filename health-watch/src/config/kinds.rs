//! A target's check keys and the check they make: which keys each kind
//! takes, and each kind's spec built from them through health-probe's
//! rules (`health_probe::spec`), every broken rule shown at the key it is
//! about. Targets and `[module.NAME]` tables both come through here.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use health_probe::payload::Payload;
use health_probe::spec::{
    LandmarkSettings, LandmarkSpec, PingSettings, PingSpec, Setting, Starttls, TcpSettings,
    TcpSpec, TlsSettings, TlsSpec, DEFAULT_CERT_CRIT, DEFAULT_CERT_WARN, DEFAULT_PING_COUNT,
    DEFAULT_PING_INTERVAL, MIN_PING_INTERVAL,
};
use health_probe::target::Family;

use health_proto::State;
use toml::Spanned;

use super::{Check, Kind, RawTarget};

/// A key some kinds only may set: its name, where it is set (if it is),
/// and the kinds that take it.
type OwnedKey = (&'static str, Option<Range<usize>>, &'static [Kind]);

fn span_of<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
    v.as_ref().map(Spanned::span)
}

/// The check `t` makes with `timeout` (its span: `timeout_at`), or `None`
/// with every problem given to `error`. `span` is the whole table's, for
/// problems of no one key.
pub(super) fn check(
    t: &RawTarget,
    timeout: Duration,
    timeout_at: Option<Range<usize>>,
    span: Range<usize>,
    error: &mut dyn FnMut(Range<usize>, String),
) -> Option<Check> {
    let kind = t.kind.get_ref().0;
    use Kind::{Landmark, Ping, Tcp, Tls};
    let owned: [OwnedKey; 18] = [
        ("expect", span_of(&t.expect), &[Landmark]),
        ("component", span_of(&t.component), &[Landmark]),
        ("send", span_of(&t.send), &[Tcp]),
        ("expect_banner", span_of(&t.expect_banner), &[Tcp]),
        ("expect_regex", span_of(&t.expect_regex), &[Tcp]),
        ("warn", span_of(&t.warn), &[Tcp, Ping]),
        ("crit", span_of(&t.crit), &[Tcp, Ping]),
        ("sni", span_of(&t.sni), &[Tls]),
        ("starttls", span_of(&t.starttls), &[Tls]),
        ("cert_warn", span_of(&t.cert_warn), &[Tls]),
        ("cert_crit", span_of(&t.cert_crit), &[Tls]),
        ("ca", span_of(&t.ca), &[Tls]),
        ("insecure", span_of(&t.insecure), &[Tls]),
        ("count", span_of(&t.count), &[Ping]),
        ("ping_interval", span_of(&t.ping_interval), &[Ping]),
        ("min_replies", span_of(&t.min_replies), &[Ping]),
        ("host", span_of(&t.host), &[Ping]),
        ("addr", span_of(&t.addr), &[Landmark, Tcp, Tls]),
    ];
    let broken = std::cell::Cell::new(false);
    let mut error = |at: Range<usize>, message: String| {
        broken.set(true);
        error(at, message)
    };
    for (key, place, kinds) in owned {
        if let Some(place) = place.filter(|_| !kinds.contains(&kind)) {
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            let msg = format!(
                "{key} applies to {} targets, not {kind}",
                names.join(" and ")
            );
            error(place, msg);
        }
    }
    let target = match (kind.takes_host(), &t.addr, &t.host) {
        (true, _, Some(h)) => {
            let s = h.get_ref();
            if health_probe::target::host(s).is_err() {
                let msg = format!("host {s:?} is not an IP address or a host name (no port)");
                error(h.span(), msg);
            }
            s.clone()
        }
        (true, _, None) => {
            error(
                span.clone(),
                format!("{kind} target needs host = \"IP or NAME\""),
            );
            String::new()
        }
        (false, Some(a), _) => {
            let s = a.get_ref();
            if health_probe::target::endpoint(s).is_err() {
                let msg = format!("addr {s:?} is not IP:PORT, [IPv6]:PORT or HOST:PORT");
                error(a.span(), msg);
            }
            s.clone()
        }
        (false, None, _) => {
            error(
                span.clone(),
                format!("{kind} target needs addr = \"HOST:PORT\""),
            );
            String::new()
        }
    };
    let family = match t.family.as_ref().map(|f| (f, f.get_ref().as_str())) {
        None => Family::Any,
        Some((_, "ipv4")) => Family::V4,
        Some((_, "ipv6")) => Family::V6,
        Some((f, other)) => {
            let msg = format!("family must be \"ipv4\" or \"ipv6\", not {other:?}");
            error(f.span(), msg);
            Family::Any
        }
    };
    let warn = t.warn.as_ref().map(|w| w.get_ref().0);
    let crit = t.crit.as_ref().map(|c| c.get_ref().0);
    let built = match kind {
        Landmark => {
            let mut expect = Vec::new();
            match &t.expect {
                None => expect.push(State::Ok),
                Some(list) => {
                    for s in list.get_ref() {
                        match s.parse::<State>() {
                            Ok(st) => expect.push(st),
                            Err(_) => error(
                                list.span(),
                                format!(
                                    "expect: unknown state {s:?} (use ok, degraded, drain, fail)"
                                ),
                            ),
                        }
                    }
                    if expect.is_empty() && !list.get_ref().is_empty() {
                        // Each state is reported unknown already.
                        return None;
                    }
                }
            }
            LandmarkSpec::new(LandmarkSettings {
                addr: target,
                component: t.component.as_ref().map(|c| c.get_ref().clone()),
                expect,
                timeout,
                family,
                source: None,
            })
            .map(Check::Landmark)
        }
        Tcp => {
            let mut payload = |s: &Option<Spanned<String>>, key: &str| {
                s.as_ref().and_then(|s| match Payload::parse(s.get_ref()) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        error(s.span(), format!("{key}: {e}"));
                        None
                    }
                })
            };
            let send = payload(&t.send, "send");
            let expect_banner = payload(&t.expect_banner, "expect_banner");
            let expect_regex = t.expect_regex.as_ref().and_then(|r| {
                match health_probe::payload::regex(r.get_ref()) {
                    Ok(re) => Some(re),
                    Err(e) => {
                        error(r.span(), format!("expect_regex: {e}"));
                        None
                    }
                }
            });
            TcpSpec::new(TcpSettings {
                addr: target,
                send,
                expect_banner,
                expect_regex,
                timeout,
                warn,
                crit,
                family,
                source: None,
            })
            .map(Check::Tcp)
        }
        Ping => {
            let interval = match &t.ping_interval {
                None => DEFAULT_PING_INTERVAL,
                Some(i)
                    if (MIN_PING_INTERVAL..=Duration::from_secs(60)).contains(&i.get_ref().0) =>
                {
                    i.get_ref().0
                }
                Some(i) => {
                    error(i.span(), "ping_interval must be between 10ms and 1m".into());
                    DEFAULT_PING_INTERVAL
                }
            };
            PingSpec::new(PingSettings {
                host: target,
                count: t
                    .count
                    .as_ref()
                    .map_or(DEFAULT_PING_COUNT, |c| *c.get_ref()),
                interval,
                timeout,
                min_replies: t.min_replies.as_ref().map_or(1, |m| *m.get_ref()),
                warn,
                crit,
                family,
                source: None,
            })
            .map(Check::Ping)
        }
        Tls => {
            let starttls = t.starttls.as_ref().and_then(|p| {
                p.get_ref()
                    .parse::<Starttls>()
                    .map_err(|e| error(p.span(), format!("starttls: {e}")))
                    .ok()
            });
            let mark = |m: &Option<Spanned<super::Dur>>, default| {
                m.as_ref().map_or(default, |m| m.get_ref().0)
            };
            TlsSpec::new(TlsSettings {
                addr: target,
                sni: t.sni.as_ref().map(|s| s.get_ref().clone()),
                starttls,
                cert_warn: mark(&t.cert_warn, DEFAULT_CERT_WARN),
                cert_crit: mark(&t.cert_crit, DEFAULT_CERT_CRIT),
                ca: t.ca.as_ref().map(|c| PathBuf::from(c.get_ref())),
                insecure: t.insecure.as_ref().is_some_and(|i| *i.get_ref()),
                timeout,
                family,
                source: None,
            })
            .map(Check::Tls)
        }
    };
    match built {
        // A check is only as good as every key it was built from.
        Ok(check) if !broken.get() => Some(check),
        Ok(_) => None,
        Err(errors) => {
            // The check's own rules are the spec's (the same as the
            // command line's); each broken one is shown at its key.
            for e in errors {
                let at = match e.setting() {
                    Setting::Timeout => timeout_at.clone(),
                    Setting::Warn => span_of(&t.warn),
                    Setting::Crit => span_of(&t.crit),
                    Setting::Expect => span_of(&t.expect),
                    Setting::ExpectBanner | Setting::ExpectRegex => span_of(&t.expect_banner),
                    Setting::Count => span_of(&t.count),
                    Setting::MinReplies => span_of(&t.min_replies),
                    Setting::Interval => span_of(&t.ping_interval),
                    Setting::Sni => span_of(&t.sni),
                    Setting::CertWarn => span_of(&t.cert_warn),
                    Setting::CertCrit => span_of(&t.cert_crit).or(span_of(&t.cert_warn)),
                    Setting::Ca | Setting::Insecure => span_of(&t.ca),
                    _ => None,
                };
                error(at.unwrap_or(span.clone()), e.to_string());
            }
            None
        }
    }
}
