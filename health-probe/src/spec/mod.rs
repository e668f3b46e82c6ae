//! What a check tests, validated once: [`LandmarkSpec`], [`TcpSpec`],
//! [`PingSpec`] and [`TlsSpec`].
//!
//! The command line (`cli`, which adds the output mode) and the watcher's
//! config (the `health-watch` crate) both write a check's settings as a
//! plain struct ([`LandmarkSettings`], [`TcpSettings`], [`PingSettings`],
//! [`TlsSettings`])
//! and turn it into a spec through `new`, which holds every rule those
//! settings must keep and reports every one they break. The checks
//! (`probe`, `tcp`, `ping`, and `nonblocking` with the `async` feature)
//! take only specs, so no check runs on settings that were not checked.
//!
//! A spec reads like its settings (it dereferences to them) and cannot be
//! changed: to run another check, build another spec.
//!
//! Address syntax is not a spec rule: a malformed ADDR is the check's
//! outcome (`ERR bad-address`, reported like any other), and the watcher
//! checks it early with the same function (`target::endpoint`).

use std::ops::Deref;
use std::time::Duration;

use health_proto::State;

use crate::duration::MAX_WAIT;
use crate::payload::Payload;
use crate::target::Family;

mod tls;

pub(crate) use tls::server_name;
pub use tls::{Starttls, TlsSettings, TlsSpec};

/// Echo requests a ping check sends unless told otherwise.
pub const DEFAULT_PING_COUNT: u16 = 3;
/// The most echo requests one ping check sends.
pub const MAX_PING_COUNT: u16 = 1000;
/// Time between echo requests unless told otherwise.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_millis(200);
/// The shortest time between echo requests (what unprivileged `ping`
/// allows).
pub const MIN_PING_INTERVAL: Duration = Duration::from_millis(10);
/// A tls check's `--cert-warn` unless told otherwise: 14 days.
pub const DEFAULT_CERT_WARN: Duration = Duration::from_secs(14 * 86_400);
/// A tls check's `--cert-crit` unless told otherwise: 3 days.
pub const DEFAULT_CERT_CRIT: Duration = Duration::from_secs(3 * 86_400);
/// The longest `--cert-warn` or `--cert-crit`: 10 years.
pub const MAX_CERT_MARK: Duration = Duration::from_secs(3650 * 86_400);

/// A setting of a check, as the command line and the watcher's config
/// spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Setting {
    /// The whole check's deadline.
    Timeout,
    /// The slow mark.
    Warn,
    /// The failing slowness.
    Crit,
    /// A landmark check's healthy states.
    Expect,
    /// Bytes the tcp answer must contain.
    ExpectBanner,
    /// The expression the tcp answer must match.
    ExpectRegex,
    /// Echo requests.
    Count,
    /// Replies needed.
    MinReplies,
    /// Time between echo requests.
    Interval,
    /// The name a tls check sends and verifies.
    Sni,
    /// Time left on the certificate under which a tls check warns.
    CertWarn,
    /// Time left on the certificate under which a tls check fails.
    CertCrit,
    /// The file of trusted roots.
    Ca,
    /// No verification of the chain or the name.
    Insecure,
}

impl Setting {
    /// The command-line flag: `--min-replies`.
    pub fn flag(self) -> &'static str {
        match self {
            Setting::Timeout => "--timeout",
            Setting::Warn => "--warn",
            Setting::Crit => "--crit",
            Setting::Expect => "--expect",
            Setting::ExpectBanner => "--expect-banner",
            Setting::ExpectRegex => "--expect-regex",
            Setting::Count => "--count",
            Setting::MinReplies => "--min-replies",
            Setting::Interval => "--interval",
            Setting::Sni => "--sni",
            Setting::CertWarn => "--cert-warn",
            Setting::CertCrit => "--cert-crit",
            Setting::Ca => "--ca",
            Setting::Insecure => "--insecure",
        }
    }

    /// The watcher's config key: `min_replies`.
    pub fn key(self) -> &'static str {
        match self {
            Setting::Timeout => "timeout",
            Setting::Warn => "warn",
            Setting::Crit => "crit",
            Setting::Expect => "expect",
            Setting::ExpectBanner => "expect_banner",
            Setting::ExpectRegex => "expect_regex",
            Setting::Count => "count",
            Setting::MinReplies => "min_replies",
            Setting::Interval => "ping_interval",
            Setting::Sni => "sni",
            Setting::CertWarn => "cert_warn",
            Setting::CertCrit => "cert_crit",
            Setting::Ca => "ca",
            Setting::Insecure => "insecure",
        }
    }
}

/// A rule a check's settings break. Its `Display` names settings by their
/// config keys; [`SpecError::with_flags`] by their command-line flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("{}", self.message(Setting::key))]
pub enum SpecError {
    /// A count outside `min..=max`.
    OutOfRange {
        /// The setting.
        setting: Setting,
        /// Its least value.
        min: u16,
        /// Its greatest value.
        max: u16,
    },
    /// A wait of zero, or longer than the longest wait (1 day).
    Wait {
        /// The setting.
        setting: Setting,
    },
    /// A ping interval shorter than [`MIN_PING_INTERVAL`].
    IntervalTooShort,
    /// More replies needed than requests sent.
    MoreRepliesThanRequests {
        /// Replies needed.
        min_replies: u16,
        /// Requests sent.
        count: u16,
    },
    /// `expect` names no state.
    NoState,
    /// Both a banner and a regular expression to match the answer.
    TwoAnswers,
    /// A certificate mark over [`MAX_CERT_MARK`].
    CertMark {
        /// The setting.
        setting: Setting,
    },
    /// `cert_crit` longer than `cert_warn`: it would never warn.
    CritOverWarn,
    /// Not a name a certificate can be issued for.
    BadSni(String),
    /// The roots file cannot be used (why).
    Ca(String),
    /// Both a roots file and no verification.
    CaAndInsecure,
}

impl SpecError {
    /// The setting the rule is about (the first, when it is about two).
    pub fn setting(&self) -> Setting {
        match self {
            SpecError::OutOfRange { setting, .. } | SpecError::Wait { setting } => *setting,
            SpecError::IntervalTooShort => Setting::Interval,
            SpecError::MoreRepliesThanRequests { .. } => Setting::MinReplies,
            SpecError::NoState => Setting::Expect,
            SpecError::TwoAnswers => Setting::ExpectBanner,
            SpecError::CertMark { setting } => *setting,
            SpecError::CritOverWarn => Setting::CertCrit,
            SpecError::BadSni(_) => Setting::Sni,
            SpecError::Ca(_) | SpecError::CaAndInsecure => Setting::Ca,
        }
    }

    /// The message with settings named by their command-line flags.
    pub fn with_flags(&self) -> String {
        self.message(Setting::flag)
    }

    fn message(&self, name: fn(Setting) -> &'static str) -> String {
        match self {
            SpecError::OutOfRange { setting, min, max } => {
                format!("{} must be between {min} and {max}", name(*setting))
            }
            SpecError::Wait { setting } => {
                format!(
                    "{} must be greater than zero and at most 1d",
                    name(*setting)
                )
            }
            SpecError::IntervalTooShort => format!(
                "{} must be at least {}",
                name(Setting::Interval),
                humantime::format_duration(MIN_PING_INTERVAL)
            ),
            SpecError::MoreRepliesThanRequests { min_replies, count } => format!(
                "{} {min_replies} is more than {} {count}",
                name(Setting::MinReplies),
                name(Setting::Count)
            ),
            SpecError::NoState => format!("{} must name at least one state", name(Setting::Expect)),
            SpecError::TwoAnswers => format!(
                "give {} or {}, not both",
                name(Setting::ExpectBanner),
                name(Setting::ExpectRegex)
            ),
            SpecError::CertMark { setting } => {
                format!("{} must be at most 3650d", name(*setting))
            }
            SpecError::CritOverWarn => format!(
                "{} must not be longer than {}",
                name(Setting::CertCrit),
                name(Setting::CertWarn)
            ),
            SpecError::BadSni(why) => format!("{}: {why}", name(Setting::Sni)),
            SpecError::Ca(why) => format!("{}: {why}", name(Setting::Ca)),
            SpecError::CaAndInsecure => format!(
                "give {} or {}, not both",
                name(Setting::Ca),
                name(Setting::Insecure)
            ),
        }
    }
}

/// Collects every rule broken, so a config shows all its problems at once.
#[derive(Default)]
struct Rules(Vec<SpecError>);

impl Rules {
    fn wait(&mut self, setting: Setting, d: Option<Duration>) {
        if d.is_some_and(|d| d.is_zero() || d > MAX_WAIT) {
            self.0.push(SpecError::Wait { setting });
        }
    }

    fn range(&mut self, setting: Setting, n: u16, min: u16, max: u16) {
        if !(min..=max).contains(&n) {
            self.0.push(SpecError::OutOfRange { setting, min, max });
        }
    }

    fn finish<T>(self, spec: T) -> Result<T, Vec<SpecError>> {
        if self.0.is_empty() {
            Ok(spec)
        } else {
            Err(self.0)
        }
    }
}

/// A landmark check as written, before [`LandmarkSpec::new`] checks it.
#[derive(Debug, Clone)]
pub struct LandmarkSettings {
    /// `IPv4:PORT`, `[IPv6]:PORT` or `HOST:PORT`.
    pub addr: String,
    /// One component of the service instead of the whole service.
    pub component: Option<String>,
    /// States that count as healthy: at least one.
    pub expect: Vec<State>,
    /// The whole check: resolve, connect, request, reply.
    pub timeout: Duration,
    /// Which address of a name to test.
    pub family: Family,
    /// Where the check leaves this machine from; `None`: where the
    /// routing table says.
    pub source: Option<crate::source::Source>,
}

/// A plain TCP check as written, before [`TcpSpec::new`] checks it.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    /// `IPv4:PORT`, `[IPv6]:PORT` or `HOST:PORT`.
    pub addr: String,
    /// Sent once connected.
    pub send: Option<Payload>,
    /// The answer must contain these bytes...
    pub expect_banner: Option<Payload>,
    /// ...or match this expression (not both).
    pub expect_regex: Option<regex::bytes::Regex>,
    /// The whole check: resolve, connect, send, answer.
    pub timeout: Duration,
    /// Slower than this, an OK check is marked slow (Nagios WARNING).
    pub warn: Option<Duration>,
    /// Slower than this, an OK check fails.
    pub crit: Option<Duration>,
    /// Which address of a name to test.
    pub family: Family,
    /// Where the check leaves this machine from; `None`: where the
    /// routing table says.
    pub source: Option<crate::source::Source>,
}

/// A ping check as written, before [`PingSpec::new`] checks it.
#[derive(Debug, Clone)]
pub struct PingSettings {
    /// An IP address or a host name.
    pub host: String,
    /// Echo requests to send, 1 to [`MAX_PING_COUNT`].
    pub count: u16,
    /// Between requests, at least [`MIN_PING_INTERVAL`].
    pub interval: Duration,
    /// The whole check: resolve, every request and reply.
    pub timeout: Duration,
    /// Replies needed for OK, 1 to `count`.
    pub min_replies: u16,
    /// Average round trip over which an OK check is marked slow.
    pub warn: Option<Duration>,
    /// Average round trip over which an OK check fails.
    pub crit: Option<Duration>,
    /// Which address of a name to ping.
    pub family: Family,
    /// Where the check leaves this machine from; `None`: where the
    /// routing table says.
    pub source: Option<crate::source::Source>,
}

/// A landmark check's settings that keep every rule.
#[derive(Debug, Clone)]
pub struct LandmarkSpec(LandmarkSettings);

/// A tcp check's settings that keep every rule.
#[derive(Debug, Clone)]
pub struct TcpSpec(TcpSettings);

/// A ping check's settings that keep every rule.
#[derive(Debug, Clone)]
pub struct PingSpec(PingSettings);

impl LandmarkSpec {
    /// `settings` if they keep every rule, else every rule they break.
    pub fn new(settings: LandmarkSettings) -> Result<LandmarkSpec, Vec<SpecError>> {
        let mut rules = Rules::default();
        rules.wait(Setting::Timeout, Some(settings.timeout));
        if settings.expect.is_empty() {
            rules.0.push(SpecError::NoState);
        }
        rules.finish(LandmarkSpec(settings))
    }
}

impl TcpSpec {
    /// `settings` if they keep every rule, else every rule they break.
    pub fn new(settings: TcpSettings) -> Result<TcpSpec, Vec<SpecError>> {
        let mut rules = Rules::default();
        rules.wait(Setting::Timeout, Some(settings.timeout));
        rules.wait(Setting::Warn, settings.warn);
        rules.wait(Setting::Crit, settings.crit);
        if settings.expect_banner.is_some() && settings.expect_regex.is_some() {
            rules.0.push(SpecError::TwoAnswers);
        }
        rules.finish(TcpSpec(settings))
    }
}

impl PingSpec {
    /// `settings` if they keep every rule, else every rule they break.
    pub fn new(settings: PingSettings) -> Result<PingSpec, Vec<SpecError>> {
        let mut rules = Rules::default();
        rules.wait(Setting::Timeout, Some(settings.timeout));
        rules.wait(Setting::Warn, settings.warn);
        rules.wait(Setting::Crit, settings.crit);
        if settings.interval < MIN_PING_INTERVAL {
            rules.0.push(SpecError::IntervalTooShort);
        } else {
            rules.wait(Setting::Interval, Some(settings.interval));
        }
        rules.range(Setting::Count, settings.count, 1, MAX_PING_COUNT);
        rules.range(Setting::MinReplies, settings.min_replies, 1, MAX_PING_COUNT);
        if settings.min_replies > settings.count && (1..=MAX_PING_COUNT).contains(&settings.count) {
            rules.0.push(SpecError::MoreRepliesThanRequests {
                min_replies: settings.min_replies,
                count: settings.count,
            });
        }
        rules.finish(PingSpec(settings))
    }
}

macro_rules! reads_as {
    ($($spec:ty => $settings:ty),*) => {$(
        impl Deref for $spec {
            type Target = $settings;
            fn deref(&self) -> &$settings {
                &self.0
            }
        }
    )*};
}

reads_as!(LandmarkSpec => LandmarkSettings, TcpSpec => TcpSettings, PingSpec => PingSettings);

macro_rules! with_source {
    ($($spec:ident),*) => {$(
        impl $spec {
            /// The same spec from another source (no rule is about it).
            pub(crate) fn with_source(&self, source: Option<crate::source::Source>) -> $spec {
                let mut settings = self.0.clone();
                settings.source = source;
                $spec(settings)
            }
        }
    )*};
}

with_source!(LandmarkSpec, TcpSpec, PingSpec);

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(count: u16, min_replies: u16, interval_ms: u64) -> PingSettings {
        PingSettings {
            host: "127.0.0.1".into(),
            count,
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_secs(2),
            min_replies,
            warn: None,
            crit: None,
            family: Family::Any,
            source: None,
        }
    }

    #[test]
    fn ping_rules_are_reported_all_at_once() {
        assert!(PingSpec::new(ping(3, 1, 200)).is_ok());
        assert!(PingSpec::new(ping(1000, 1000, 10)).is_ok());
        let errors = PingSpec::new(ping(2, 3, 5)).unwrap_err();
        assert_eq!(
            errors,
            [
                SpecError::IntervalTooShort,
                SpecError::MoreRepliesThanRequests {
                    min_replies: 3,
                    count: 2
                }
            ]
        );
        assert_eq!(
            errors[1].with_flags(),
            "--min-replies 3 is more than --count 2"
        );
        assert_eq!(errors[0].to_string(), "ping_interval must be at least 10ms");
        let errors = PingSpec::new(ping(0, 0, 200)).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].to_string(), "count must be between 1 and 1000");
        assert_eq!(errors[1].setting(), Setting::MinReplies);
        assert!(PingSpec::new(ping(1001, 1, 200)).is_err());
    }

    #[test]
    fn tcp_takes_one_answer_and_bounded_waits() {
        let settings = TcpSettings {
            addr: "127.0.0.1:22".into(),
            send: None,
            expect_banner: Some(Payload(b"SSH".to_vec())),
            expect_regex: Some(regex::bytes::Regex::new("^SSH").unwrap()),
            timeout: Duration::ZERO,
            warn: Some(Duration::from_secs(2 * 86_400)),
            crit: None,
            family: Family::Any,
            source: None,
        };
        let errors = TcpSpec::new(settings.clone()).unwrap_err();
        assert_eq!(
            errors,
            [
                SpecError::Wait {
                    setting: Setting::Timeout
                },
                SpecError::Wait {
                    setting: Setting::Warn
                },
                SpecError::TwoAnswers
            ]
        );
        assert_eq!(
            errors[2].with_flags(),
            "give --expect-banner or --expect-regex, not both"
        );
        let fine = TcpSpec::new(TcpSettings {
            expect_regex: None,
            timeout: Duration::from_secs(1),
            warn: None,
            ..settings
        })
        .unwrap();
        assert_eq!(fine.addr, "127.0.0.1:22");
    }

    #[test]
    fn a_landmark_check_expects_some_state() {
        let settings = LandmarkSettings {
            addr: "127.0.0.1:9100".into(),
            component: None,
            expect: vec![],
            timeout: Duration::from_secs(1),
            family: Family::Any,
            source: None,
        };
        assert_eq!(
            LandmarkSpec::new(settings.clone()).unwrap_err(),
            [SpecError::NoState]
        );
        let spec = LandmarkSpec::new(LandmarkSettings {
            expect: vec![State::Ok],
            ..settings
        })
        .unwrap();
        assert_eq!(spec.expect, [State::Ok]);
    }
}
