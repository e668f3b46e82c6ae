//! A tls check's settings and their rules ([`TlsSpec`]), and the
//! protocols that upgrade a plain connection ([`Starttls`]). Its roots
//! file is read here, once, so a spec that keeps the rules can run.

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;

use super::{Rules, Setting, SpecError, MAX_CERT_MARK};
use crate::target::Family;

/// A protocol that upgrades a plain connection to TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starttls {
    /// SMTP (ports 25, 587).
    Smtp,
    /// IMAP (port 143).
    Imap,
    /// POP3 (port 110).
    Pop3,
    /// FTP (port 21).
    Ftp,
    /// XMPP client streams (port 5222).
    Xmpp,
    /// PostgreSQL (port 5432).
    Postgres,
}

impl Starttls {
    /// Every protocol, in the order `--help` lists them.
    pub const ALL: [Starttls; 6] = [
        Starttls::Smtp,
        Starttls::Imap,
        Starttls::Pop3,
        Starttls::Ftp,
        Starttls::Xmpp,
        Starttls::Postgres,
    ];

    /// Its name, as `--starttls` and the config's `starttls` take it.
    pub fn as_str(self) -> &'static str {
        match self {
            Starttls::Smtp => "smtp",
            Starttls::Imap => "imap",
            Starttls::Pop3 => "pop3",
            Starttls::Ftp => "ftp",
            Starttls::Xmpp => "xmpp",
            Starttls::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Starttls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Starttls {
    type Err = String;
    fn from_str(s: &str) -> Result<Starttls, String> {
        Starttls::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Starttls::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown STARTTLS protocol {s:?} (use {})", names.join(", "))
            })
    }
}

/// A TLS check as written, before [`TlsSpec::new`] checks it.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// `IPv4:PORT`, `[IPv6]:PORT` or `HOST:PORT`.
    pub addr: String,
    /// The name sent (SNI) and verified; unset, ADDR's host name (an IP
    /// address is verified as one and sends no SNI).
    pub sni: Option<String>,
    /// The plain-text dialog that comes before TLS, if any.
    pub starttls: Option<Starttls>,
    /// Less than this left on a certificate: OK, marked `warn`.
    pub cert_warn: Duration,
    /// Less than this left (or expired): NG, reason `cert-expiring`.
    pub cert_crit: Duration,
    /// Trust only the roots in this PEM file instead of the system's.
    pub ca: Option<PathBuf>,
    /// Do not verify the chain or the name (expiry is still judged).
    pub insecure: bool,
    /// The whole check: resolve, connect, STARTTLS, handshake.
    pub timeout: Duration,
    /// Which address of a name to test.
    pub family: Family,
    /// Where the check leaves this machine from; `None`: where the
    /// routing table says.
    pub source: Option<crate::source::Source>,
}

/// A tls check's settings that keep every rule, with its roots file read.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    settings: TlsSettings,
    /// The roots of `ca`, read once; `None`: the system's.
    pub(crate) roots: Option<Arc<rustls::RootCertStore>>,
}

impl TlsSpec {
    /// The same spec from another source (no rule is about it).
    pub(crate) fn with_source(&self, source: Option<crate::source::Source>) -> TlsSpec {
        let mut spec = self.clone();
        spec.settings.source = source;
        spec
    }

    /// `settings` if they keep every rule, else every rule they break. The
    /// `ca` file is read here, once.
    pub fn new(settings: TlsSettings) -> Result<TlsSpec, Vec<SpecError>> {
        let mut rules = Rules::default();
        rules.wait(Setting::Timeout, Some(settings.timeout));
        for (setting, mark) in [
            (Setting::CertWarn, settings.cert_warn),
            (Setting::CertCrit, settings.cert_crit),
        ] {
            if mark > MAX_CERT_MARK {
                rules.0.push(SpecError::CertMark { setting });
            }
        }
        if settings.cert_crit > settings.cert_warn {
            rules.0.push(SpecError::CritOverWarn);
        }
        if let Some(name) = &settings.sni {
            if let Err(why) = server_name(name) {
                rules.0.push(SpecError::BadSni(why));
            }
        }
        let mut roots = None;
        match (&settings.ca, settings.insecure) {
            (Some(_), true) => rules.0.push(SpecError::CaAndInsecure),
            (Some(path), false) => match read_roots(path) {
                Ok(r) => roots = Some(Arc::new(r)),
                Err(why) => rules.0.push(SpecError::Ca(why)),
            },
            (None, _) => {}
        }
        rules.finish(TlsSpec { settings, roots })
    }

    /// The same check of `addr` within `timeout` (a `/probe` module's), its
    /// roots file not read again.
    pub fn at(&self, addr: String, timeout: Duration) -> Result<TlsSpec, Vec<SpecError>> {
        let mut rules = Rules::default();
        rules.wait(Setting::Timeout, Some(timeout));
        rules.finish(TlsSpec {
            settings: TlsSettings {
                addr,
                timeout,
                ..self.settings.clone()
            },
            roots: self.roots.clone(),
        })
    }
}

impl Deref for TlsSpec {
    type Target = TlsSettings;
    fn deref(&self) -> &TlsSettings {
        &self.settings
    }
}

/// The name a check sends and verifies: a DNS name, or an IP address
/// (verified against the certificate's IP addresses; no SNI is sent).
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string()).map_err(|_| {
        format!(
            "{} is not a DNS name or an IP address",
            crate::text::quoted(name)
        )
    })
}

/// The certificates of a PEM file, as roots.
fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{shown} is not PEM certificates: {e}"))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{shown} holds no usable certificate"));
    }
    Ok(roots)
}
