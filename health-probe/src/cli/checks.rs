//! `health-probe tcp`, `health-probe ping` and `health-probe tls`: their
//! flags and parsers.

use std::path::PathBuf;
use std::time::Duration;

use super::{parse_timeout, FamilyArgs, ModeArgs, Payload, DEFAULT_TIMEOUT};
use crate::spec::{
    PingSettings, PingSpec, SpecError, Starttls, TcpSettings, TcpSpec, TlsSettings, TlsSpec,
    DEFAULT_PING_COUNT,
};

/// Ping a host with ICMP echo: --count requests --interval apart, all
/// within --timeout.
///
/// Uses an unprivileged ICMP socket where sysctl net.ipv4.ping_group_range
/// allows this process's group, else a raw socket (root or CAP_NET_RAW);
/// when neither is allowed the error names the sysctl.
///
/// Outcome classes: OK (at least --min-replies replies), ERR (the check
/// could not start: name, no route, ICMP not permitted), NG (fewer replies
/// than --min-replies, or the network answered unreachable), WR (no reply
/// within the timeout). Exit codes as for `tcp`; --warn/--crit apply to the
/// average round trip.
#[derive(Debug, Clone, clap::Args)]
pub struct PingArgs {
    /// Host to ping: an IPv4 or IPv6 address, or a name.
    #[arg(value_name = "HOST")]
    pub host: String,

    /// Echo requests to send, 1 to 1000.
    #[arg(long, short = 'c', default_value_t = DEFAULT_PING_COUNT)]
    pub count: u16,

    /// Time between requests, like 200ms; at least 10ms.
    #[arg(long, short = 'i', value_name = "DUR", default_value = "200ms", value_parser = parse_timeout)]
    pub interval: Duration,

    /// Deadline for the whole check: resolve, every request and reply.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Replies needed for OK, at most --count; fewer (but some) is NG with
    /// reason loss.
    #[arg(long, default_value_t = 1)]
    pub min_replies: u16,

    /// Average round trip over which an OK check is a WARNING (--nagios)
    /// and marked slow.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub warn: Option<Duration>,

    /// Average round trip over which an OK check fails: exit 1, or
    /// CRITICAL with --nagios.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub crit: Option<Duration>,

    /// Which address of a name to test.
    #[command(flatten)]
    pub family: FamilyArgs,

    /// How to print the verdict and pick the exit code.
    #[command(flatten)]
    pub mode: ModeArgs,
}

impl PingArgs {
    /// The check these flags ask for, if they keep its rules.
    pub fn spec(&self) -> Result<PingSpec, Vec<SpecError>> {
        PingSpec::new(PingSettings {
            host: self.host.clone(),
            count: self.count,
            interval: self.interval,
            timeout: self.timeout,
            min_replies: self.min_replies,
            warn: self.warn,
            crit: self.crit,
            family: self.family.family(),
            source: self.family.source.clone(),
        })
    }
}

/// Check a plain TCP port: connect, optionally send opening data and match
/// the answer, all within --timeout.
///
/// Outcome classes, first on the output line: OK (connected and, if asked,
/// answered right), ERR (the check could not start: name not resolvable,
/// bad address, no route), NG (refused, reset, closed, wrong answer), WR (no
/// answer within the timeout).
///
/// Exit codes: 0 for OK within --crit, 1 otherwise. With --nagios: 0 OK,
/// 1 WARNING (slower than --warn), 2 CRITICAL (NG, WR, ERR from the network,
/// or slower than --crit), 3 UNKNOWN (malformed address, bad arguments). --dynamic exits like the
/// default (a port has no weight).
#[derive(Debug, clap::Args)]
pub struct TcpArgs {
    /// Port to check: IPv4:PORT, [IPv6]:PORT or HOST:PORT.
    // The doc comment is --help text, where `[IPv6]` is literal.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(value_name = "HOST:PORT")]
    pub addr: String,

    /// Data to send once connected; \r \n \t \\ are escapes
    /// (e.g. "PING\r\n").
    #[arg(long, value_name = "STR", value_parser = parse_payload)]
    pub send: Option<Payload>,

    /// The answer must contain this text (same escapes as --send); read
    /// until it appears, the peer closes, 16 KiB, or the timeout. Not with
    /// --expect-regex.
    #[arg(long, value_name = "STR", value_parser = parse_payload)]
    pub expect_banner: Option<Payload>,

    /// The answer must match this regular expression (Rust regex syntax
    /// over bytes, ASCII classes: \w \d \s; use ^ to anchor at the start).
    #[arg(long, value_name = "RE", value_parser = crate::payload::regex)]
    pub expect_regex: Option<regex::bytes::Regex>,

    /// Deadline for the whole check (resolve, connect, send, answer).
    #[arg(long, value_name = "DUR", default_value = DEFAULT_TIMEOUT, value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Response time over which an OK check is a WARNING (--nagios) and
    /// marked slow.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub warn: Option<Duration>,

    /// Response time over which an OK check fails: exit 1, or CRITICAL
    /// with --nagios.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub crit: Option<Duration>,

    /// Which address of a name to test.
    #[command(flatten)]
    pub family: FamilyArgs,

    /// How to print the verdict and pick the exit code.
    #[command(flatten)]
    pub mode: ModeArgs,
}

fn parse_payload(s: &str) -> Result<Payload, String> {
    Payload::parse(s)
}

impl TcpArgs {
    /// The check these flags ask for, if they keep its rules.
    pub fn spec(&self) -> Result<TcpSpec, Vec<SpecError>> {
        TcpSpec::new(TcpSettings {
            addr: self.addr.clone(),
            send: self.send.clone(),
            expect_banner: self.expect_banner.clone(),
            expect_regex: self.expect_regex.clone(),
            timeout: self.timeout,
            warn: self.warn,
            crit: self.crit,
            family: self.family.family(),
            source: self.family.source.clone(),
        })
    }
}

/// Check a TLS service: connect, run the STARTTLS dialog if asked, finish
/// the TLS handshake, and judge the certificate chain, the name and the
/// time left on the certificates, all within --timeout.
///
/// The verdict names the leaf certificate's subject, issuer and the days
/// left until the first certificate of the chain expires, also when the
/// chain fails verification.
///
/// Outcome classes: OK (verified, more than --cert-crit left; marked
/// cert=warn under --cert-warn), ERR (could not start: name, bad address,
/// no route, no trusted roots), NG (refused, reset, STARTTLS refused,
/// handshake failed, certificate expired, expiring within --cert-crit,
/// for another name, untrusted or invalid), WR (no answer within the
/// timeout).
///
/// Exit codes: 0 for OK, 1 otherwise. With --nagios (like check_tcp -S -D
/// WARN,CRIT): 0 OK, 1 WARNING (under --cert-warn), 2 CRITICAL (NG, WR,
/// ERR from the network), 3 UNKNOWN (malformed address, bad arguments, no
/// trusted roots).
#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    /// TLS port to check: IPv4:PORT, [IPv6]:PORT or HOST:PORT.
    // The doc comment is --help text, where `[IPv6]` is literal.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(value_name = "HOST:PORT")]
    pub addr: String,

    /// Name to send (SNI) and to verify the certificate for. Without it:
    /// the host of HOST:PORT (an IP address is verified as one, and no SNI
    /// is sent).
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,

    /// Upgrade a plain connection first: smtp, imap, pop3, ftp, xmpp or
    /// postgres.
    #[arg(long, value_name = "PROTO")]
    pub starttls: Option<Starttls>,

    /// Time left on the certificates under which an OK check is marked
    /// cert=warn (a WARNING with --nagios), like 14d.
    #[arg(long, value_name = "DUR", default_value = "14d", value_parser = parse_mark)]
    pub cert_warn: Duration,

    /// Time left under which the check fails (NG, reason cert-expiring),
    /// like 3d; 0s fails only expired certificates.
    #[arg(long, value_name = "DUR", default_value = "3d", value_parser = parse_mark)]
    pub cert_crit: Duration,

    /// Trust only the certificates in this PEM file instead of the
    /// system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Do not verify the chain or the name (the handshake, its signature
    /// and the time left are still checked).
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,

    /// Deadline for the whole check (resolve, connect, STARTTLS,
    /// handshake).
    #[arg(long, value_name = "DUR", default_value = DEFAULT_TIMEOUT, value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Which address of a name to test.
    #[command(flatten)]
    pub family: FamilyArgs,

    /// How to print the verdict and pick the exit code.
    #[command(flatten)]
    pub mode: ModeArgs,
}

/// A certificate mark: a duration up to 3650d, `0s` allowed.
fn parse_mark(s: &str) -> Result<Duration, String> {
    crate::duration::within(s, crate::spec::MAX_CERT_MARK, "3650d")
}

impl TlsArgs {
    /// The check these flags ask for, if they keep its rules (the --ca
    /// file is read here).
    pub fn spec(&self) -> Result<TlsSpec, Vec<SpecError>> {
        TlsSpec::new(TlsSettings {
            addr: self.addr.clone(),
            sni: self.sni.clone(),
            starttls: self.starttls,
            cert_warn: self.cert_warn,
            cert_crit: self.cert_crit,
            ca: self.ca.clone(),
            insecure: self.insecure,
            timeout: self.timeout,
            family: self.family.family(),
            source: self.family.source.clone(),
        })
    }
}
