//! One check of any kind, the one type the one-shot CLI, the watcher's
//! targets, its `/probe` and its `[module.NAME]` tables all run: a
//! [`Check`] holds a validated spec ([`crate::spec`]) and runs it blocking
//! ([`Check::run`]) or on tokio ([`Check::run_async`], feature `async`);
//! either way it ends in one [`Finding`]: the class, reason, detail, round
//! trip and warn/crit mark every kind has, and the facts of its own kind
//! ([`Facts`]: the landmark reply, the tcp answer, the ping replies, the
//! certificates). [`Check::at`] makes the same check of another address
//! within another timeout, as `/probe` does with a module.
//!
//! A new kind is a variant here and one arm in each `match` of this file
//! (docs/ARCHITECTURE.md, "A new check kind").

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use health_proto::{LandmarkReply, State};

use crate::error::ProbeError;
use crate::outcome::{Class, Speed};
use crate::ping::PingOutcome;
use crate::probe::Outcome;
use crate::source::Source;
use crate::spec::{
    LandmarkSettings, LandmarkSpec, PingSettings, PingSpec, SpecError, TcpSettings, TcpSpec,
    TlsSettings, TlsSpec, DEFAULT_CERT_CRIT, DEFAULT_CERT_WARN, DEFAULT_PING_INTERVAL,
};
use crate::target::Family;
use crate::tcp::TcpOutcome;
use crate::tls::{CertFacts, TlsOutcome};

/// The kinds of check, by the name the command line, the config's `kind`
/// and `/probe`'s built-in modules give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A service's landmark over the native protocol.
    Landmark,
    /// A plain TCP port.
    Tcp,
    /// ICMP echo.
    Ping,
    /// A TLS handshake and its certificates.
    Tls,
}

impl Kind {
    /// Every kind; the first is the default (`health-probe ADDR`, `/probe`
    /// without a module).
    pub const ALL: [Kind; 4] = [Kind::Landmark, Kind::Tcp, Kind::Ping, Kind::Tls];

    /// Their names, in the order of [`Kind::ALL`].
    pub const NAMES: [&'static str; 4] = ["landmark", "tcp", "ping", "tls"];

    /// `landmark`, `tcp`, `ping` or `tls`.
    pub fn as_str(self) -> &'static str {
        Kind::NAMES[self as usize]
    }

    /// Whether its target is a host (`ping`) rather than `HOST:PORT`.
    pub fn takes_host(self) -> bool {
        self == Kind::Ping
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown check kind {s:?}"))
    }
}

/// A check of any kind, its settings validated.
#[derive(Debug, Clone)]
pub enum Check {
    /// `health-probe ADDR`.
    Landmark(LandmarkSpec),
    /// `health-probe tcp`.
    Tcp(TcpSpec),
    /// `health-probe ping`.
    Ping(PingSpec),
    /// `health-probe tls`.
    Tls(TlsSpec),
}

/// What one check found, whatever its kind.
#[derive(Debug)]
pub struct Finding<'a> {
    /// The outcome's class.
    pub class: Class,
    /// A stable word within the class (`refused`, `timeout`, ...); `None`
    /// for `OK`.
    pub reason: Option<&'static str>,
    /// One human sentence (the server's text in it unescaped: show it
    /// through [`crate::text`]).
    pub detail: String,
    /// landmark, tcp and tls: the whole check; ping: the average round
    /// trip (none without a reply).
    pub rtt: Option<Duration>,
    /// An OK check against its warn and crit marks: its time (tcp, ping),
    /// or the time left on its certificates (tls).
    pub mark: Speed,
    /// What only this kind finds, with the spec it ran.
    pub facts: Facts<'a>,
}

/// The facts of one kind of check, beside the spec that ran.
#[derive(Debug)]
pub enum Facts<'a> {
    /// The landmark reply, or why there is none.
    Landmark(&'a LandmarkSpec, Outcome),
    /// The tcp answer.
    Tcp(&'a TcpSpec, TcpOutcome),
    /// The echo replies.
    Ping(&'a PingSpec, PingOutcome),
    /// The handshake and the certificates.
    Tls(&'a TlsSpec, TlsOutcome),
}

impl Check {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Check::Landmark(_) => Kind::Landmark,
            Check::Tcp(_) => Kind::Tcp,
            Check::Ping(_) => Kind::Ping,
            Check::Tls(_) => Kind::Tls,
        }
    }

    /// What it checks, as written: `HOST:PORT`, or a ping's host.
    pub fn target(&self) -> &str {
        match self {
            Check::Landmark(s) => &s.addr,
            Check::Tcp(s) => &s.addr,
            Check::Ping(s) => &s.host,
            Check::Tls(s) => &s.addr,
        }
    }

    /// Its deadline.
    pub fn timeout(&self) -> Duration {
        match self {
            Check::Landmark(s) => s.timeout,
            Check::Tcp(s) => s.timeout,
            Check::Ping(s) => s.timeout,
            Check::Tls(s) => s.timeout,
        }
    }

    /// Runs it once with blocking sockets.
    pub fn run(&self) -> Finding<'_> {
        match self {
            Check::Landmark(s) => Finding::of(Facts::Landmark(s, crate::probe::run(s))),
            Check::Tcp(s) => Finding::of(Facts::Tcp(s, crate::tcp::run(s))),
            Check::Ping(s) => Finding::of(Facts::Ping(s, crate::ping::run(s))),
            Check::Tls(s) => Finding::of(Facts::Tls(s, crate::tls::run(s))),
        }
    }

    /// Runs it once on tokio (thousands at a time on a few threads).
    #[cfg(feature = "async")]
    pub async fn run_async(&self) -> Finding<'_> {
        use crate::nonblocking as run;
        match self {
            Check::Landmark(s) => Finding::of(Facts::Landmark(s, run::landmark(s).await)),
            Check::Tcp(s) => Finding::of(Facts::Tcp(s, run::tcp(s).await)),
            Check::Ping(s) => Finding::of(Facts::Ping(s, run::ping(s).await)),
            Check::Tls(s) => Finding::of(Facts::Tls(s, run::tls(s).await)),
        }
    }

    /// The same check of `target` (`HOST:PORT`, or a ping's host) within
    /// `timeout`: a `/probe` module's check of the target it is given.
    pub fn at(&self, target: String, timeout: Duration) -> Result<Check, Vec<SpecError>> {
        match self {
            Check::Landmark(s) => LandmarkSpec::new(LandmarkSettings {
                addr: target,
                timeout,
                ..(**s).clone()
            })
            .map(Check::Landmark),
            Check::Tcp(s) => TcpSpec::new(TcpSettings {
                addr: target,
                timeout,
                ..(**s).clone()
            })
            .map(Check::Tcp),
            Check::Ping(s) => PingSpec::new(PingSettings {
                host: target,
                timeout,
                ..(**s).clone()
            })
            .map(Check::Ping),
            Check::Tls(s) => s.at(target, timeout).map(Check::Tls),
        }
    }

    /// The same check from `source` (`None`: where the routing table
    /// says): one vantage point of a watcher's target with `source`.
    pub fn via(&self, source: Option<Source>) -> Check {
        // No rule is about the source: the settings keep every rule they
        // kept, so each spec is made again without being checked again.
        match self {
            Check::Landmark(s) => Check::Landmark(s.with_source(source)),
            Check::Tcp(s) => Check::Tcp(s.with_source(source)),
            Check::Ping(s) => Check::Ping(s.with_source(source)),
            Check::Tls(s) => Check::Tls(s.with_source(source)),
        }
    }

    /// The landmark check's spec, for a `watch` stream of it
    /// ([`crate::stream_async`]); `None` for the other kinds.
    pub fn landmark_spec(&self) -> Option<&LandmarkSpec> {
        match self {
            Check::Landmark(s) => Some(s),
            _ => None,
        }
    }

    /// The source it leaves from, if it has one.
    pub fn source(&self) -> Option<&Source> {
        match self {
            Check::Landmark(s) => s.source.as_ref(),
            Check::Tcp(s) => s.source.as_ref(),
            Check::Ping(s) => s.source.as_ref(),
            Check::Tls(s) => s.source.as_ref(),
        }
    }

    /// A `kind` check of `target` within `timeout` with every other setting
    /// at its default: `/probe`'s built-in modules. landmark expects `ok`;
    /// tcp connects; ping sends one echo request; tls verifies with the
    /// system's roots, warning under 14 days left and failing under 3.
    pub fn built_in(
        kind: Kind,
        target: String,
        timeout: Duration,
    ) -> Result<Check, Vec<SpecError>> {
        let family = Family::Any;
        match kind {
            Kind::Landmark => LandmarkSpec::new(LandmarkSettings {
                addr: target,
                component: None,
                expect: vec![State::Ok],
                timeout,
                family,
                source: None,
            })
            .map(Check::Landmark),
            Kind::Tcp => TcpSpec::new(TcpSettings {
                addr: target,
                send: None,
                expect_banner: None,
                expect_regex: None,
                timeout,
                warn: None,
                crit: None,
                family,
                source: None,
            })
            .map(Check::Tcp),
            Kind::Ping => PingSpec::new(PingSettings {
                host: target,
                count: 1,
                interval: DEFAULT_PING_INTERVAL,
                timeout,
                min_replies: 1,
                warn: None,
                crit: None,
                family,
                source: None,
            })
            .map(Check::Ping),
            Kind::Tls => TlsSpec::new(TlsSettings {
                addr: target,
                sni: None,
                starttls: None,
                cert_warn: DEFAULT_CERT_WARN,
                cert_crit: DEFAULT_CERT_CRIT,
                ca: None,
                insecure: false,
                timeout,
                family,
                source: None,
            })
            .map(Check::Tls),
        }
    }
}

impl<'a> Finding<'a> {
    /// What a landmark `outcome` of `spec` found, however it came (a
    /// check, or a frame of a `watch` stream).
    pub fn of_landmark(spec: &'a LandmarkSpec, outcome: Outcome) -> Finding<'a> {
        Finding::of(Facts::Landmark(spec, outcome))
    }

    /// The shared summary of `facts`.
    fn of(facts: Facts<'a>) -> Finding<'a> {
        let (class, reason, detail, rtt, mark) = match &facts {
            Facts::Landmark(spec, o) => {
                let (class, reason, detail) = landmark_class(&o.result, &spec.expect);
                (class, reason, detail, Some(o.elapsed), Speed::Fine)
            }
            Facts::Tcp(spec, o) => {
                let mark = o.speed(spec);
                (o.class, o.reason, o.detail.clone(), Some(o.elapsed), mark)
            }
            Facts::Ping(spec, o) => {
                let mark = o.speed(spec);
                (o.class, o.reason, o.detail.clone(), o.avg(), mark)
            }
            Facts::Tls(_, o) => (o.class, o.reason, o.detail.clone(), Some(o.elapsed), o.mark),
        };
        Finding {
            class,
            reason,
            detail,
            rtt,
            mark,
            facts,
        }
    }

    /// Whether it fails: anything but OK, or OK past its crit mark (exit 1
    /// of the one-shot check; counts toward the watcher's `fall`).
    pub fn failed(&self) -> bool {
        crate::outcome::fails(self.class, self.mark)
    }

    /// The landmark that came back, if one did.
    pub fn landmark(&self) -> Option<&LandmarkReply> {
        match &self.facts {
            Facts::Landmark(_, o) => o.result.as_ref().ok(),
            _ => None,
        }
    }

    /// The certificates' facts, if a tls check read any.
    pub fn cert(&self) -> Option<&CertFacts> {
        match &self.facts {
            Facts::Tls(_, o) => o.cert.as_ref(),
            _ => None,
        }
    }

    /// The TLS version agreed, if a tls check finished its handshake.
    pub fn tls_version(&self) -> Option<&'static str> {
        match &self.facts {
            Facts::Tls(_, o) => o.version,
            _ => None,
        }
    }
}

/// A landmark check's outcome in the classes every kind has: OK (state expected), ERR (could not start: name, address,
/// route), NG (refused, reset, malformed reply, server error, or a state
/// not expected: reason `unexpected-state`), WR (timeout).
fn landmark_class(
    result: &Result<LandmarkReply, ProbeError>,
    expect: &[health_proto::State],
) -> (Class, Option<&'static str>, String) {
    match result {
        Ok(r) if expect.contains(&r.state) => (Class::Ok, None, landmark_detail(r)),
        Ok(r) => (Class::Ng, Some("unexpected-state"), landmark_detail(r)),
        Err(e @ ProbeError::Protocol(_)) => (Class::Ng, Some("protocol"), e.to_string()),
        Err(e @ ProbeError::Server { .. }) => (Class::Ng, Some("server-error"), e.to_string()),
        Err(e) => {
            let (class, reason, detail) = crate::tcp::classify(e);
            (class, Some(reason), detail)
        }
    }
}

/// `state: detail` of a landmark, as the watcher shows and records it.
fn landmark_detail(r: &LandmarkReply) -> String {
    if r.detail.is_empty() {
        r.state.to_string()
    } else {
        format!("{}: {}", r.state, r.detail)
    }
}
