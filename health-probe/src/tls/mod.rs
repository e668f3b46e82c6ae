//! `health-probe tls HOST:PORT`: a TLS handshake (after a STARTTLS dialog,
//! if asked) under one deadline, judging the chain, the name and the time
//! left on the certificates. rustls does the TLS (pure Rust: no OpenSSL in
//! the probe); its verifier is wrapped so the chain is kept even when it
//! does not verify ([`cert`]).
//!
//! | class | meaning | reasons |
//! |---|---|---|
//! | `OK` | verified, more than `--cert-crit` left (marked `warn` under `--cert-warn`) | |
//! | `ERR` | the check could not start | `dns`, `bad-address`, `no-route`, `network`, `ca` |
//! | `NG` | the peer said no, or its certificate fails | `refused`, `reset`, `starttls`, `handshake`, `cert-expired`, `cert-expiring`, `cert-name`, `cert-untrusted`, `cert-invalid` |
//! | `WR` | no answer within `--timeout` | `timeout` |

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};

pub mod cert;
mod starttls;

pub use crate::spec::Starttls;
pub use cert::CertFacts;
pub(crate) use starttls::{Dialog, Next};

use crate::outcome::{Class, Speed};
use crate::spec::TlsSpec;
use crate::target::{self, Endpoint};
use crate::tcp::{self, Failure};

/// What one TLS check found.
#[derive(Debug)]
pub struct TlsOutcome {
    /// The address connected to (or last tried).
    pub addr: Option<SocketAddr>,
    /// The outcome's class.
    pub class: Class,
    /// A stable word for the cause within the class; `None` for `OK`.
    pub reason: Option<&'static str>,
    /// One human sentence.
    pub detail: String,
    /// The certificates' facts, when the server sent any (also when they
    /// failed verification).
    pub cert: Option<CertFacts>,
    /// The TLS version agreed (`TLSv1_3`), once the handshake is done.
    pub version: Option<&'static str>,
    /// `warn`: OK with less than `--cert-warn` left.
    pub mark: Speed,
    /// From start to verdict.
    pub elapsed: Duration,
}

/// A finished handshake: the version agreed.
pub(crate) struct Handshake {
    pub version: Option<&'static str>,
}

/// Runs the check `spec` asks for, with blocking sockets.
pub fn run(spec: &TlsSpec) -> TlsOutcome {
    let start = Instant::now();
    let deadline = start + spec.timeout;
    let timeout = humantime::format_duration(spec.timeout).to_string();
    let mut addr = None;
    let prepared = Prepared::new(spec);
    let result = match &prepared {
        Ok(p) => handshake(spec, p, deadline, &timeout, &mut addr),
        Err(failure) => Err(failure.clone()),
    };
    TlsOutcome::new(spec, addr, result, prepared.ok(), start)
}

fn handshake(
    spec: &TlsSpec,
    prepared: &Prepared,
    deadline: Instant,
    timeout: &str,
    tried: &mut Option<SocketAddr>,
) -> Result<Handshake, Failure> {
    let mut stream = tcp::open(
        &spec.addr,
        spec.family,
        spec.source.as_ref(),
        deadline,
        timeout,
        tried,
    )?;
    if let Some(protocol) = spec.starttls {
        let mut dialog = Dialog::new(protocol, &prepared.host);
        let mut next = dialog.start();
        let mut chunk = [0u8; 2048];
        loop {
            next = match next {
                Next::Send(bytes) => {
                    stream
                        .write_all(&bytes)
                        .map_err(|e| tcp::io_failure(e, "STARTTLS", timeout))?;
                    dialog.sent()
                }
                Next::Read => {
                    let n = stream
                        .read(&mut chunk)
                        .map_err(|e| tcp::io_failure(e, "STARTTLS answer", timeout))?;
                    dialog.received(&chunk[..n])
                }
                Next::Ready => break,
                Next::Refused(why) => return Err((Class::Ng, "starttls", why)),
            }
        }
    }
    let mut conn = ClientConnection::new(prepared.config.clone(), prepared.name.clone())
        .map_err(|e| (Class::Err, "network", format!("TLS: {e}")))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream)
            .map_err(|e| handshake_failure(e, timeout))?;
    }
    let version = conn.protocol_version().map(version_name);
    // A polite end; its answer is not waited for.
    conn.send_close_notify();
    let _ = conn.complete_io(&mut stream);
    Ok(Handshake { version })
}

/// What a check needs before it connects: the verifier that records, the
/// client config around it, the name to send and verify, the host for a
/// STARTTLS dialog.
pub(crate) struct Prepared {
    pub recorder: Arc<cert::Recorder>,
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
    pub host: String,
}

impl Prepared {
    pub(crate) fn new(spec: &TlsSpec) -> Result<Prepared, Failure> {
        let host = match target::endpoint(&spec.addr).map_err(tcp::classify)? {
            Endpoint::Literal(sa) => sa.ip().to_string(),
            Endpoint::Name(host, _) => host.to_string(),
        };
        let name = crate::spec::server_name(spec.sni.as_deref().unwrap_or(&host))
            .map_err(|why| (Class::Err, "bad-address", why))?;
        let roots = match (&spec.roots, spec.insecure) {
            (_, true) => None,
            (Some(roots), false) => Some(roots.clone()),
            (None, false) => Some(system_roots().map_err(|why| (Class::Err, "ca", why))?),
        };
        let recorder = cert::Recorder::new(roots).map_err(|why| (Class::Err, "ca", why))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| (Class::Err, "network", format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
        let host = spec.sni.clone().unwrap_or(host);
        Ok(Prepared {
            recorder,
            config: Arc::new(config),
            name,
            host,
        })
    }
}

impl TlsOutcome {
    /// The outcome of a check that began at `start` and ended now with
    /// `result`, by the blocking or the async check alike: the class of
    /// the handshake, then the time left on the certificates against
    /// `--cert-warn` and `--cert-crit`.
    pub(crate) fn new(
        spec: &TlsSpec,
        addr: Option<SocketAddr>,
        result: Result<Handshake, Failure>,
        prepared: Option<Prepared>,
        start: Instant,
    ) -> TlsOutcome {
        let cert = prepared.and_then(|p| p.recorder.facts());
        let now = SystemTime::now();
        let mut mark = Speed::Fine;
        let mut version = None;
        let (class, reason, detail) = match (result, &cert) {
            (Err((class, reason, detail)), Some(c)) if reason.starts_with("cert-") => {
                (class, Some(reason), format!("{detail}; {}", about(c, now)))
            }
            (Err((class, reason, detail)), _) => (class, Some(reason), detail),
            (Ok(h), Some(c)) => {
                version = h.version;
                let left = c.left(now);
                let said = format!("{}, {}", h.version.unwrap_or("TLS"), about(c, now));
                if c.earliest_not_after <= now {
                    (Class::Ng, Some("cert-expired"), said)
                } else if left <= spec.cert_crit {
                    let crit = humantime::format_duration(spec.cert_crit);
                    let why = format!("{said}, within the critical {crit}");
                    (Class::Ng, Some("cert-expiring"), why)
                } else {
                    if left <= spec.cert_warn {
                        mark = Speed::OverWarn;
                    }
                    (Class::Ok, None, said)
                }
            }
            (Ok(h), None) => {
                version = h.version;
                let why = "the server sent no certificate that can be read".to_string();
                (Class::Ng, Some("cert-invalid"), why)
            }
        };
        TlsOutcome {
            addr,
            class,
            reason,
            detail,
            cert,
            version,
            mark,
            elapsed: start.elapsed(),
        }
    }
}

/// `subject "CN=x" issued by "CN=y", expires in 42 days (2027-01-15)`
fn about(c: &CertFacts, now: SystemTime) -> String {
    let days = c.days_left(now);
    let when = match days {
        d if d < 0 => format!("expired {} days ago", -d),
        0 => "expires within a day".to_string(),
        1 => "expires in 1 day".to_string(),
        d => format!("expires in {d} days"),
    };
    let which = if c.earliest_not_after < c.leaf_not_after {
        " (a certificate of its chain)"
    } else {
        ""
    };
    format!(
        "subject {} issued by {}, {when}{which} ({})",
        crate::text::quoted(&c.subject),
        crate::text::quoted(&c.issuer),
        humantime::format_rfc3339_seconds(c.earliest_not_after)
    )
}

/// rustls's version name, as printed: `TLSv1.3`.
pub(crate) fn version_name(v: rustls::ProtocolVersion) -> &'static str {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "TLS",
    }
}

/// A handshake's I/O error in the four classes: rustls's own errors by
/// what they say of the certificate, the rest as any socket's.
pub(crate) fn handshake_failure(e: io::Error, timeout: &str) -> Failure {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => (
                Class::Ng,
                "handshake",
                "the server closed the connection during the TLS handshake".into(),
            ),
            _ => tcp::io_failure(e, "TLS handshake", timeout),
        };
    };
    let reason = match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "cert-expired",
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "cert-name"
            }
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::UnknownRevocationStatus
            | CertificateError::Revoked
            | CertificateError::InvalidPurpose => "cert-untrusted",
            _ => "cert-invalid",
        },
        _ => "handshake",
    };
    (Class::Ng, reason, format!("TLS handshake failed: {tls}"))
}

/// The system's trusted roots (`SSL_CERT_FILE`, or the distribution's
/// bundle), read once per process.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_string(), |e| e.to_string());
                return Err(format!(
                    "no trusted roots on this system ({why}): give --ca FILE"
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}
