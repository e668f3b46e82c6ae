//! The command line, parsed with clap derive. Bad arguments exit 1 (not
//! clap's 2, which keepalived's misc_dynamic would read as "healthy, weight 0").

use std::process::ExitCode;
use std::time::Duration;

pub use crate::payload::Payload;
use clap::{Parser, Subcommand};
use health_proto::{Grouping, State, TcpState};

use crate::probe::ProbeSpec;

/// Default `--timeout`: the whole probe, from name resolution to the reply.
pub const DEFAULT_TIMEOUT: &str = "1s";

/// Check a service's landmark health endpoint and exit 0 if its state is
/// expected, 1 otherwise. `health-probe tcp` checks a plain TCP port,
/// `health-probe ping` a host, `health-probe watch` runs many checks with
/// alarms, `health-probe report` exports their history, and `health-probe
/// connections` shows who is connected to a service.
///
/// Made for keepalived's MISC_CHECK (misc_path "/usr/bin/health-probe
/// 10.0.0.5:9100 --expect ok"), scripts and operators. One deadline
/// (--timeout) covers name resolution, connect, request and reply, so the
/// run ends within it whatever fails.
///
/// Exit codes: 0 healthy (state is one of --expect); 1 anything else
/// (another state, refused, timeout, reset, malformed reply, unresolvable
/// name, bad arguments). With --dynamic: healthy with weight W exits 2+W,
/// healthy without a weight exits 0, unhealthy exits 1. With --nagios:
/// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
#[derive(Debug, Parser)]
#[command(
    name = "health-probe",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// Another kind of check instead of the landmark check.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Endpoint to check: IPv4:PORT, [IPv6]:PORT or HOST:PORT.
    #[arg(value_name = "ADDR", required = true)]
    addr: Option<String>,

    /// States that count as healthy, comma-separated, from ok, degraded,
    /// drain, fail.
    #[arg(
        long,
        value_name = "STATE[,STATE...]",
        value_delimiter = ',',
        default_value = "ok"
    )]
    pub expect: Vec<State>,

    /// Check one component of the service instead of the whole service.
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,

    /// Deadline for the whole probe (resolve, connect, send, reply), like
    /// 500ms or 1.5s. Keep keepalived's misc_timeout above it.
    #[arg(long, value_name = "DUR", default_value = DEFAULT_TIMEOUT, value_parser = parse_timeout)]
    pub timeout: Duration,

    #[command(flatten)]
    pub family: FamilyArgs,

    /// keepalived misc_dynamic exit codes: healthy with weight W exits 2+W
    /// (2-255), healthy without a weight exits 0, unhealthy exits 1.
    #[arg(long)]
    pub dynamic: bool,

    /// Nagios/Icinga plugin mode: exit 0 OK (expected state), 1 WARNING
    /// (degraded or drain), 2 CRITICAL (fail, or no valid answer), 3 UNKNOWN
    /// (bad arguments), with one status line and perfdata on stdout.
    #[arg(long, conflicts_with_all = ["dynamic", "json"])]
    pub nagios: bool,

    /// Print one JSON object on stdout instead of the verdict line.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,

    /// Print nothing; only the exit code tells.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Checks other than the landmark check.
#[derive(Debug, Subcommand)]
pub enum Command {
    Tcp(TcpArgs),
    Ping(PingArgs),
    Watch(WatchArgs),
    Report(ReportArgs),
    Connections(ConnectionsArgs),
}

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
/// 1 no report: the server does not record connections, kept no snapshot
/// for that moment, cannot be reached or answered an error, or bad
/// arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionsArgs {
    /// The service's health endpoint: IPv4:PORT, [IPv6]:PORT or HOST:PORT.
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
    Port(u16),
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

/// Watch many targets (landmark, tcp and ping checks) in one process,
/// raising and clearing alarms with fall/rise thresholds, recording them in
/// SQLite and running actions on them.
///
/// CONFIG is a TOML file (keys in docs/WATCH.md), validated at start with
/// line-numbered errors. SIGHUP reloads it: unchanged targets keep their
/// state, paused targets resume. SIGTERM or SIGINT stops the watcher.
///
/// Output: a live table when stdout is a terminal, one log line per event
/// otherwise, one JSON object per event with --json.
///
/// Exit codes: 0 stopped by SIGTERM/SIGINT (or --check-config found the
/// config valid); 1 the config or the database is not usable.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The TOML config: targets, thresholds, actions, database.
    #[arg(value_name = "CONFIG")]
    pub config: std::path::PathBuf,

    /// Validate CONFIG, print a summary and exit: 0 valid, 1 not (for
    /// systemd's ExecStartPre and before a reload).
    #[arg(long)]
    pub check_config: bool,

    /// One JSON object per line on stdout for every event (raise, clear,
    /// pause, resume, removed, action, reload, stats), for other tools.
    #[arg(long)]
    pub json: bool,

    /// Plain log lines even when stdout is a terminal.
    #[arg(long, conflicts_with = "json")]
    pub plain: bool,

    /// Also report every check's result, not only events.
    #[arg(long)]
    pub log_checks: bool,

    /// Report counters every DUR: checks, failures, checks in flight,
    /// worst lag behind schedule, alarms, paused targets.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub stats: Option<Duration>,
}

/// Export the watcher's alarm history: raise, clear, pause, resume and
/// removed events with their class, detail, how long each alarm lasted and
/// what its action did.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The history database [default: /var/lib/health-probe/watch.db].
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub database: Option<std::path::PathBuf>,

    /// Use the database this watch config names.
    #[arg(long, value_name = "CONFIG")]
    pub config: Option<std::path::PathBuf>,

    /// Events from this long ago until now, like 10d, 12h, 30m.
    #[arg(long, value_name = "DUR", default_value = "10d", value_parser = parse_span)]
    pub since: Duration,

    /// Only this target's events.
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,

    /// table: aligned columns; csv: RFC 4180 with a header row; json: an
    /// array of objects.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
}

/// `health-probe report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

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

/// Which address of a name a check tests (`target::Family`).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct FamilyArgs {
    /// Test the first IPv4 address the name resolves to (a literal ADDR
    /// must be IPv4). Without -4 or -6: the first address of either family.
    #[arg(short = '4', long)]
    pub ipv4: bool,

    /// Test the first IPv6 address the name resolves to (a literal ADDR
    /// must be IPv6).
    #[arg(short = '6', long, conflicts_with = "ipv4")]
    pub ipv6: bool,
}

impl FamilyArgs {
    pub fn family(&self) -> crate::target::Family {
        match (self.ipv4, self.ipv6) {
            (true, _) => crate::target::Family::V4,
            (_, true) => crate::target::Family::V6,
            _ => crate::target::Family::Any,
        }
    }
}

/// Output and exit-code modes of the `tcp` and `ping` checks.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModeArgs {
    /// keepalived misc_dynamic mode: a port or host has no weight, so OK
    /// exits 0 and anything else 1, as without it.
    #[arg(long)]
    pub dynamic: bool,

    /// Nagios/Icinga plugin mode: exit 0 OK, 1 WARNING, 2 CRITICAL,
    /// 3 UNKNOWN, with one status line and perfdata like check_tcp's and
    /// check_ping's.
    #[arg(long, conflicts_with_all = ["dynamic", "json"])]
    pub nagios: bool,

    /// Print one JSON object on stdout instead of the verdict line.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,

    /// Print nothing; only the exit code tells.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_payload(s: &str) -> Result<Payload, String> {
    Payload::parse(s)
}

/// Byte-oriented and ASCII-only (`\w`, `\d`, `.` over bytes): banners are
/// bytes, and without Unicode tables the probe starts as fast as before
/// (their relocations cost every run, regex or not).
pub(crate) fn parse_regex(s: &str) -> Result<regex::bytes::Regex, String> {
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

/// Prints a usage error (one line on stderr; with --nagios also the
/// UNKNOWN status line) and picks its exit code: 1, or 3 for Nagios.
fn usage_error(msg: &str) -> ExitCode {
    eprintln!("health-probe: usage: {msg} (see health-probe --help)");
    if std::env::args_os().any(|a| a == "--nagios") {
        let label = match std::env::args_os().nth(1) {
            Some(a) if a == "tcp" => "TCP",
            Some(a) if a == "ping" => "PING",
            _ => "LANDMARK",
        };
        println!("{label} UNKNOWN - usage: {msg}");
        ExitCode::from(3)
    } else {
        ExitCode::from(1)
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    crate::duration::wait(s)
}

fn parse_span(s: &str) -> Result<Duration, String> {
    crate::duration::span(s)
}

impl Cli {
    /// Parses `std::env::args`. `--help` and `--version` print and yield
    /// exit 0; a usage error prints one line on stderr and yields exit 1.
    pub fn parse_args() -> Result<Cli, ExitCode> {
        let cli = Cli::try_parse().map_err(|e| {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    // clap's message up to its usage block, on one line
                    // ("required arguments were not provided: <ADDR>").
                    let rendered = e.render().to_string();
                    let msg = rendered
                        .lines()
                        .take_while(|l| !l.starts_with("Usage:"))
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
                    usage_error(if msg.is_empty() {
                        "invalid arguments"
                    } else {
                        msg
                    })
                }
            }
        })?;
        if let Some(Command::Ping(p)) = &cli.command {
            if p.min_replies > p.count {
                return Err(usage_error(&format!(
                    "--min-replies {} is more than --count {}",
                    p.min_replies, p.count
                )));
            }
        }
        Ok(cli)
    }

    /// The landmark check's ADDR (clap requires it without a subcommand).
    pub fn addr(&self) -> &str {
        self.addr.as_deref().unwrap_or_default()
    }

    pub fn probe_spec(&self) -> ProbeSpec<'_> {
        ProbeSpec {
            addr: self.addr(),
            component: self.component.as_deref(),
            timeout: self.timeout,
            family: self.family.family(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn expect_list_and_timeout_parse() {
        let c = Cli::try_parse_from([
            "health-probe",
            "127.0.0.1:9100",
            "--expect",
            "ok,degraded",
            "--timeout",
            "250ms",
        ])
        .unwrap();
        assert_eq!(c.expect, vec![State::Ok, State::Degraded]);
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert!(Cli::try_parse_from(["health-probe", "x:1", "--expect", "up"]).is_err());
        assert!(Cli::try_parse_from(["health-probe", "x:1", "--timeout", "0s"]).is_err());
        assert!(Cli::try_parse_from(["health-probe", "x:1", "--json", "--quiet"]).is_err());
    }

    #[test]
    fn connections_flags_parse() {
        let c = Cli::try_parse_from([
            "health-probe",
            "connections",
            "127.0.0.1:9100",
            "--state",
            "close-wait,SYN_RECV",
            "--state",
            "established",
            "fin-wait1",
            "--client",
            "192.0.2.7",
            "--port",
            "epg",
            "--group-by",
            "subnet",
            "--prefix",
            "16",
        ])
        .unwrap();
        let Some(Command::Connections(a)) = c.command else {
            panic!("not the connections command");
        };
        assert_eq!(
            a.state,
            [
                TcpState::CloseWait,
                TcpState::SynRecv,
                TcpState::Established,
                TcpState::FinWait1
            ]
        );
        assert_eq!(a.client, Some("192.0.2.7/32".parse().unwrap()));
        assert_eq!(a.port, Some(PortOrService::Service("epg".into())));
        assert_eq!(a.group_by, Some(Grouping::Subnet));
        let bad = |args: &[&str]| {
            let mut all = vec!["health-probe", "connections", "127.0.0.1:9100"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).is_err()
        };
        assert!(bad(&["--state", "ESTAB"]));
        assert!(bad(&["--client", "192.0.2.0/33"]));
        assert!(bad(&["--port", "70000"]));
        assert!(bad(&["--at", "15m", "--since", "1h"]));
        assert!(bad(&["--prefix", "33"]));
    }

    #[test]
    fn moments_are_utc_times_times_of_day_or_durations_ago() {
        use std::time::UNIX_EPOCH;
        // 2026-11-25T03:20:00Z
        let now = UNIX_EPOCH + Duration::from_secs(1_795_576_800);
        let at = |s: &str| {
            moment_at(s, now)
                .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
                .map_err(|e| e.to_string())
        };
        let t0310 = 1_795_576_200;
        assert_eq!(at("2026-11-25T03:10:00Z"), Ok(t0310));
        assert_eq!(at("2026-11-25 03:10"), Ok(t0310));
        assert_eq!(at("2026-11-25T03:10"), Ok(t0310));
        assert_eq!(at("03:10"), Ok(t0310));
        assert_eq!(at("03:10:30"), Ok(t0310 + 30));
        assert_eq!(at("10m"), Ok(t0310));
        // Later today than now: yesterday's.
        assert_eq!(at("04:00"), Ok(t0310 + 50 * 60 - 86_400));
        assert!(at("25:00").is_err());
        assert!(at("yesterday").is_err());
    }
}
