//! `health-probe connections`: its flags and their parsers.

use std::time::Duration;

use health_proto::{Grouping, TcpState};

use super::{parse_span, parse_timeout, FamilyArgs};

/// Show who is connected to a service that records its connections
/// (health_server's connection report): each client's TCP state, queues,
/// round trip and retransmits, or counts per state, client, subnet or
/// port; from the latest snapshot, the one in force at a past moment
/// (--at), or every snapshot of a time range (--since).
///
/// Times are UTC. Output: one table per snapshot, with how many
/// connections matched and a note when the server had to leave some out
/// (narrow with --state, --client, --port, a shorter --since, or lower
/// --top/--limit).
///
/// Exit codes: 0 a report was printed (also when no connection matched);
/// 1 no report: the server does not record connections, does not let this
/// host read them (by default only its own host may), kept no snapshot for
/// that moment, cannot be reached or answered an error, or bad arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionsArgs {
    /// The service's health endpoint: IPv4:PORT, [IPv6]:PORT or HOST:PORT.
    // The doc comment is --help text, where `[IPv6]` is literal.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(value_name = "ADDR")]
    pub addr: String,

    /// Only connections in these TCP states (--state CLOSE_WAIT SYN_RECV,
    /// commas or the flag repeated work too): ESTABLISHED, SYN_SENT,
    /// SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT,
    /// LAST_ACK, LISTEN, CLOSING (any case; ss's close-wait spelling too).
    #[arg(long, value_name = "STATE", value_delimiter = ',', num_args = 1..)]
    pub state: Vec<TcpState>,

    /// Only clients in this network: 192.0.2.0/24, 2001:db8::/32, or one
    /// address.
    #[arg(long, value_name = "CIDR", value_parser = parse_client)]
    pub client: Option<ipnet::IpNet>,

    /// Only connections to this local port, by number (7000) or by the
    /// service name the server gives it (epg).
    #[arg(long, value_name = "PORT|SERVICE", value_parser = parse_port)]
    pub port: Option<PortOrService>,

    /// The snapshot in force at TIME: 2026-11-25T03:10:00Z, "2026-11-25
    /// 03:10", 03:10 (today, or yesterday if later than now), or a
    /// duration ago like 15m.
    #[arg(long, value_name = "TIME", value_parser = parse_moment, conflicts_with = "since")]
    pub at: Option<std::time::SystemTime>,

    /// Every snapshot from DUR ago (like 10m, 2h) until now.
    #[arg(long, value_name = "DUR", value_parser = parse_span)]
    pub since: Option<Duration>,

    /// Count connections per group instead of listing them: state,
    /// client (address), subnet (client network, see --prefix) or port.
    #[arg(long, value_name = "BY", value_parser = parse_grouping())]
    pub group_by: Option<Grouping>,

    /// For --group-by subnet: the IPv4 prefix length, 0-32; IPv6 clients
    /// use this plus 32 [default: the server's, 24 unless configured].
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u8).range(0..=32))]
    pub prefix: Option<u8>,

    /// Most groups shown per snapshot, largest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: u32,

    /// Most connections listed, over all snapshots.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: u32,

    /// Print the server's report as one JSON object (docs/PROTOCOL.md
    /// section 5.5) instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Deadline for the whole request: resolve, connect, send, reply.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Which address of a name to ask.
    #[command(flatten)]
    pub family: FamilyArgs,
}

/// `connections --group-by`: the protocol's grouping names, listed in
/// `--help` as the possible values.
fn parse_grouping() -> impl clap::builder::TypedValueParser<Value = Grouping> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["state", "client", "subnet", "port"])
        .try_map(|name| name.parse::<Grouping>())
}

/// `connections --port`: a number or a service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortOrService {
    /// A port number.
    Port(u16),
    /// The name the service gave the port.
    Service(String),
}

fn parse_port(s: &str) -> Result<PortOrService, String> {
    if s.is_empty() {
        return Err("empty port".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(PortOrService::Port)
            .map_err(|_| format!("port {s} is over 65535"));
    }
    Ok(PortOrService::Service(s.to_string()))
}

/// A network, or one address as a /32 or /128.
fn parse_client(s: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("{s:?} is not an address or a network like 192.0.2.0/24"))
}

/// A moment, in UTC: RFC 3339 (`2026-11-25T03:10:00Z`, a space for the
/// T, seconds optional), a time of day (`03:10`, the last one not in the
/// future), or a duration ago (`15m`).
fn parse_moment(s: &str) -> Result<std::time::SystemTime, String> {
    moment_at(s, std::time::SystemTime::now())
}

pub(crate) fn moment_at(
    s: &str,
    now: std::time::SystemTime,
) -> Result<std::time::SystemTime, String> {
    const DAY: u64 = 86_400;
    let s = s.trim();
    if humantime::parse_duration(s).is_ok() {
        let ago = crate::duration::span(s)?;
        return now
            .checked_sub(ago)
            .ok_or_else(|| format!("{s} ago is before 1970"));
    }
    let with_seconds = |t: &str| match t.matches(':').count() {
        1 => format!("{t}:00"),
        _ => t.to_string(),
    };
    if let Some((h, m)) = s.split_once(':').filter(|_| s.len() <= 8) {
        // A time of day: today's, or yesterday's if today's is to come.
        let parse = |x: &str, max: u64| x.parse::<u64>().ok().filter(|v| *v <= max);
        let (m, sec) = match m.split_once(':') {
            Some((m, sec)) => (m, parse(sec, 59)),
            None => (m, Some(0)),
        };
        if let (Some(h), Some(m), Some(sec)) = (parse(h, 23), parse(m, 59), sec) {
            let now_s = now
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs();
            let mut t = now_s - now_s % DAY + h * 3600 + m * 60 + sec;
            if t > now_s {
                t -= DAY;
            }
            return Ok(std::time::UNIX_EPOCH + Duration::from_secs(t));
        }
    }
    let full = match s.split_once(['T', ' ']) {
        Some((date, time)) => format!("{date}T{}", with_seconds(time.trim_end_matches('Z'))),
        None => s.to_string(),
    };
    humantime::parse_rfc3339_weak(&full).map_err(|_| {
        format!("{s:?} is not a time like 2026-11-25T03:10:00Z, 03:10 or 15m (times are UTC)")
    })
}
