//! `health-probe tcp` and `health-probe ping`: their flags and parsers.

use std::time::Duration;

use super::{parse_timeout, FamilyArgs, ModeArgs, Payload, DEFAULT_TIMEOUT};

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

    /// Echo requests to send.
    #[arg(long, short = 'c', default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,

    /// Time between requests, like 200ms.
    #[arg(long, short = 'i', value_name = "DUR", default_value = "200ms", value_parser = parse_interval)]
    pub interval: Duration,

    /// Deadline for the whole check: resolve, every request and reply.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Replies needed for OK; fewer (but some) is NG with reason loss.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub min_replies: u16,

    /// Average round trip over which an OK check is a WARNING (--nagios)
    /// and marked slow.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub warn: Option<Duration>,

    /// Average round trip over which an OK check fails: exit 1, or
    /// CRITICAL with --nagios.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub crit: Option<Duration>,

    #[command(flatten)]
    pub family: FamilyArgs,

    #[command(flatten)]
    pub mode: ModeArgs,
}

/// At least 10 ms between echo requests (as unprivileged `ping` allows).
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_timeout(s)?;
    if d < Duration::from_millis(10) {
        return Err("must be at least 10ms".into());
    }
    Ok(d)
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
    #[arg(value_name = "HOST:PORT")]
    pub addr: String,

    /// Data to send once connected; \r \n \t \\ are escapes
    /// (e.g. "PING\r\n").
    #[arg(long, value_name = "STR", value_parser = parse_payload)]
    pub send: Option<Payload>,

    /// The answer must contain this text (same escapes as --send); read
    /// until it appears, the peer closes, 16 KiB, or the timeout.
    #[arg(long, value_name = "STR", value_parser = parse_payload, conflicts_with = "expect_regex")]
    pub expect_banner: Option<Payload>,

    /// The answer must match this regular expression (Rust regex syntax
    /// over bytes, ASCII classes: \w \d \s; use ^ to anchor at the start).
    #[arg(long, value_name = "RE", value_parser = parse_regex)]
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

    #[command(flatten)]
    pub family: FamilyArgs,

    #[command(flatten)]
    pub mode: ModeArgs,
}

fn parse_payload(s: &str) -> Result<Payload, String> {
    Payload::parse(s)
}

/// Byte-oriented and ASCII-only (`\w`, `\d`, `.` over bytes): banners are
/// bytes, and without Unicode tables the probe starts as fast as before
/// (their relocations cost every run, regex or not).
pub fn parse_regex(s: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::RegexBuilder::new(s)
        .unicode(false)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string()
        })
}
