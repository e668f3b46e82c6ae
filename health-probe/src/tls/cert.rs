//! The certificates a server presented, kept whether or not they verify:
//! `Recorder` wraps rustls's verifier (or none, with `--insecure`) and
//! keeps the chain before judging it, so a check that fails verification
//! still reports when the certificate expires (blackbox_exporter loses it
//! then: its issue 1119). [`CertFacts`] is what the verdict names.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use x509_cert::der::asn1::{
    Any, Ia5StringRef, ObjectIdentifier, PrintableStringRef, TeletexStringRef, Utf8StringRef,
};
use x509_cert::der::{Decode, Encode, Tag, Tagged};

/// Most certificates of a chain read for their facts: a server cannot
/// make the check parse more.
const MAX_CHAIN: usize = 16;
/// Most characters of a subject or issuer kept.
const MAX_NAME: usize = 256;

/// Verifies with `roots` (or not at all, `insecure`) and keeps the chain
/// the server sent.
#[derive(Debug)]
pub(crate) struct Recorder {
    verifier: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    seen: Mutex<Vec<CertificateDer<'static>>>,
}

impl Recorder {
    /// A recorder verifying against `roots`, or accepting any chain when
    /// `roots` is `None` (the signature of the handshake is still checked,
    /// so the server holds the key of what it sent).
    pub(crate) fn new(roots: Option<Arc<RootCertStore>>) -> Result<Arc<Recorder>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let verifier = match roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| format!("no usable roots: {e}"))?,
            ),
            None => None,
        };
        Ok(Arc::new(Recorder {
            verifier,
            algorithms,
            seen: Mutex::new(Vec::new()),
        }))
    }

    /// The facts of the chain the server sent, if it sent one.
    pub(crate) fn facts(&self) -> Option<CertFacts> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        CertFacts::of(&seen)
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.clear();
            seen.push(end_entity.clone().into_owned());
            seen.extend(
                intermediates
                    .iter()
                    .take(MAX_CHAIN - 1)
                    .map(|c| c.clone().into_owned()),
            );
        }
        match &self.verifier {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What the verdict says of the certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// The leaf's subject, as RFC 4514 writes it (`CN=example.org`).
    pub subject: String,
    /// The leaf's issuer.
    pub issuer: String,
    /// When the leaf expires.
    pub leaf_not_after: SystemTime,
    /// When the first certificate of the chain sent expires (the leaf's
    /// or an intermediate's): what `--cert-warn` and `--cert-crit` judge.
    pub earliest_not_after: SystemTime,
    /// Certificates the server sent (at most 16 read).
    pub chain: usize,
}

impl CertFacts {
    /// The facts of `chain` (leaf first); `None` if the leaf cannot be
    /// read. Certificates after the leaf that cannot be read are skipped.
    fn of(chain: &[CertificateDer<'_>]) -> Option<CertFacts> {
        let (leaf, rest) = chain.split_first()?;
        let leaf = x509_cert::Certificate::from_der(leaf).ok()?;
        let tbs = leaf.tbs_certificate();
        let leaf_not_after = tbs.validity().not_after.to_system_time();
        let earliest_not_after = rest
            .iter()
            .filter_map(|c| x509_cert::Certificate::from_der(c).ok())
            .map(|c| c.tbs_certificate().validity().not_after.to_system_time())
            .fold(leaf_not_after, SystemTime::min);
        Some(CertFacts {
            subject: name(tbs.subject()),
            issuer: name(tbs.issuer()),
            leaf_not_after,
            earliest_not_after,
            chain: chain.len(),
        })
    }

    /// Whole days from `now` until the earliest expiry, negative once
    /// past (a certificate that expired an hour ago has -1 days left).
    pub fn days_left(&self, now: SystemTime) -> i64 {
        let secs = match self.earliest_not_after.duration_since(now) {
            Ok(left) => left.as_secs() as i64,
            Err(past) => -(past.duration().as_secs() as i64),
        };
        secs.div_euclid(86_400)
    }

    /// Time left until the earliest expiry; zero once past.
    pub fn left(&self, now: SystemTime) -> Duration {
        self.earliest_not_after
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    /// The earliest expiry as Unix seconds (`probe_ssl_earliest_cert_expiry`).
    pub fn earliest_unix(&self) -> i64 {
        unix(self.earliest_not_after)
    }

    /// The leaf's expiry as Unix seconds.
    pub fn leaf_unix(&self) -> i64 {
        unix(self.leaf_not_after)
    }
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Attribute types a name is written with, by OID (RFC 4514 section 3,
/// and the e-mail address and serial number certificates carry).
const SHORT_NAMES: [(ObjectIdentifier, &str); 10] = [
    (ObjectIdentifier::new_unwrap("2.5.4.3"), "CN"),
    (ObjectIdentifier::new_unwrap("2.5.4.10"), "O"),
    (ObjectIdentifier::new_unwrap("2.5.4.11"), "OU"),
    (ObjectIdentifier::new_unwrap("2.5.4.6"), "C"),
    (ObjectIdentifier::new_unwrap("2.5.4.7"), "L"),
    (ObjectIdentifier::new_unwrap("2.5.4.8"), "ST"),
    (ObjectIdentifier::new_unwrap("2.5.4.9"), "STREET"),
    (
        ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.25"),
        "DC",
    ),
    (ObjectIdentifier::new_unwrap("2.5.4.5"), "SERIALNUMBER"),
    (ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1"), "E"),
];

/// A distinguished name as RFC 4514 writes it (last RDN first:
/// `CN=R11,O=Let's Encrypt,C=US`), cut to [`MAX_NAME`] characters (it is
/// the server's text: shown through `text::shown`).
///
/// Written here rather than with x509-cert's `Display`, which names
/// attributes from const-oid's database of every registered OID: that
/// table and its relocations would add about 200 KB to a probe that is
/// exec'd thousands of times a minute. Types outside [`SHORT_NAMES`] are
/// written by OID, their value as hex DER, as RFC 4514 says.
fn name(n: &x509_cert::name::Name) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = n.iter_rdn().collect();
    for rdn in rdns.into_iter().rev() {
        for (i, atv) in rdn.iter().enumerate() {
            if !out.is_empty() {
                out.push(if i == 0 { ',' } else { '+' });
            }
            let short = SHORT_NAMES.iter().find(|(oid, _)| *oid == atv.oid);
            match (short, text_of(&atv.value)) {
                (Some((_, key)), Some(text)) => {
                    out.push_str(key);
                    out.push('=');
                    escape_into(text, &mut out);
                }
                _ => {
                    out.push_str(&atv.oid.to_string());
                    out.push_str("=#");
                    if let Ok(der) = atv.value.to_der() {
                        for b in der {
                            out.push_str(&format!("{b:02x}"));
                        }
                    }
                }
            }
            if out.len() > MAX_NAME {
                return crate::text::cut(&out, MAX_NAME).into_owned();
            }
        }
    }
    out
}

/// The text of a directory string, if it is one of the string types
/// certificates use.
fn text_of(value: &Any) -> Option<&str> {
    match value.tag() {
        Tag::PrintableString => PrintableStringRef::try_from(value).ok().map(|s| s.as_str()),
        Tag::Utf8String => Utf8StringRef::try_from(value).ok().map(|s| s.as_str()),
        Tag::Ia5String => Ia5StringRef::try_from(value).ok().map(|s| s.as_str()),
        Tag::TeletexString => TeletexStringRef::try_from(value).ok().map(|s| s.as_str()),
        _ => None,
    }
}

/// `text` with RFC 4514's escapes: `,+"\<>;` always, `#` first, a space
/// first or last, and control characters as `\XX`.
fn escape_into(text: &str, out: &mut String) {
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        match c {
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\x00'..='\x1f' | '\x7f' => out.push_str(&format!("\\{:02x}", c as u8)),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_as_rfc_4514_says() {
        let mut out = String::new();
        escape_into("#1 Acme, Inc. <\"x\"> ", &mut out);
        assert_eq!(out, r#"\#1 Acme\, Inc. \<\"x\"\>\ "#);
        let mut out = String::new();
        escape_into("a\u{1b}[31m", &mut out);
        assert_eq!(out, "a\\1b[31m");
    }
}
