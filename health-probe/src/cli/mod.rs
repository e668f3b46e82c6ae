//! The command line, parsed with clap derive and turned in one step into a
//! [`Job`]: validated check specs (`spec`) plus how to print the verdict,
//! as ripgrep turns LowArgs into HiArgs. Bad arguments exit 1 (not clap's
//! 2, which keepalived's misc_dynamic would read as "healthy, weight 0").

use std::process::ExitCode;
use std::time::Duration;

pub use crate::payload::Payload;
use clap::{Parser, Subcommand};
use health_proto::State;

use crate::check::Check;
use crate::spec::{LandmarkSettings, LandmarkSpec, SpecError};

mod checks;
mod connections;
mod silence;
mod watch;

pub use checks::{PingArgs, TcpArgs, TlsArgs};
pub use connections::{ConnectionsArgs, PortOrService};
pub use silence::{SilenceAdd, SilenceArgs, SilenceCommand, SilenceList, SilenceRemove};
pub use watch::{ReportArgs, ReportFormat, WatchArgs};

/// Default `--timeout`: the whole probe, from name resolution to the reply.
pub const DEFAULT_TIMEOUT: &str = "1s";

/// Check a service's landmark health endpoint and exit 0 if its state is
/// expected, 1 otherwise. `health-probe tcp` checks a plain TCP port,
/// `health-probe ping` a host, `health-probe tls` a TLS handshake and its
/// certificates, `health-probe watch` runs many checks with
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

    /// Which address of a name to test.
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

    /// For deploy scripts: check once a second until the landmark is drain
    /// and the endpoint counts no client still established on the
    /// service's ports, then exit 0; exit 1 when --timeout (the whole
    /// wait, like 10m) passes first, or when the endpoint does not count
    /// its clients. Prints each change it sees.
    #[arg(long, conflicts_with_all = ["dynamic", "nagios", "json", "component"])]
    pub wait_drained: bool,

    /// Follow the landmark: the endpoint pushes each change (a hang
    /// within its answer deadline) and a line is printed for it, with the
    /// time, until interrupted. A lost stream prints a FAIL line and is
    /// re-opened after --period. An endpoint that does not stream is
    /// polled every --period. --timeout bounds the connect and the first
    /// frame; later frames are due within the heartbeat plus --timeout.
    #[arg(long, conflicts_with_all = ["dynamic", "nagios", "wait_drained"])]
    pub watch: bool,

    /// With --watch: exit 1 at the first state not in --expect, or when
    /// the stream is lost (exit 0 is never reached).
    #[arg(long, requires = "watch")]
    pub until_fail: bool,

    /// With --watch: how often the endpoint looks at the landmark (it
    /// keeps this within 50ms-60s; default its own, 1s). A hang is pushed
    /// within the period plus the endpoint's answer deadline.
    #[arg(long, value_name = "DUR", requires = "watch", value_parser = parse_timeout)]
    pub period: Option<Duration>,

    /// With --watch: the longest the endpoint may stay silent before it
    /// repeats its landmark (it keeps this within 1s-5m; default its own,
    /// 10s). No frame within it plus --timeout: the stream is lost.
    #[arg(long, value_name = "DUR", requires = "watch", value_parser = parse_timeout)]
    pub heartbeat: Option<Duration>,
}

/// What one run does, from arguments that keep every rule.
#[derive(Debug)]
pub enum Job {
    /// One check: the landmark check (`health-probe ADDR`), `health-probe
    /// tcp`, `ping` or `tls`.
    Check(Check, ModeArgs),
    /// `health-probe connections`.
    Connections(ConnectionsArgs),
    /// `health-probe ADDR --wait-drained`: the spec's timeout is the
    /// whole wait; quiet or not.
    WaitDrained(LandmarkSpec, bool),
    /// `health-probe ADDR --watch`: follow the landmark as it changes.
    Follow(LandmarkSpec, crate::follow::FollowSettings),
    /// For `health-probe-watch`.
    Watch(WatchArgs),
    /// For `health-probe-watch`.
    Report(ReportArgs),
    /// For `health-probe-watch`.
    Silence(SilenceArgs),
}

/// Checks other than the landmark check.
// A doc comment on a variant would replace its subcommand's help, which
// comes from the doc comment of its Args type.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum Command {
    Tcp(TcpArgs),
    Ping(PingArgs),
    Tls(TlsArgs),
    Watch(WatchArgs),
    Report(ReportArgs),
    Silence(SilenceArgs),
    Connections(ConnectionsArgs),
}

/// Which address of a name a check tests (`target::Family`), and where
/// the check leaves this machine from (`source::Source`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FamilyArgs {
    /// Test the first IPv4 address the name resolves to (a literal ADDR
    /// must be IPv4). Without -4 or -6: the first address of either family.
    #[arg(short = '4', long)]
    pub ipv4: bool,

    /// Test the first IPv6 address the name resolves to (a literal ADDR
    /// must be IPv6).
    #[arg(short = '6', long, conflicts_with = "ipv4")]
    pub ipv6: bool,

    /// Check from this local address (the socket is bound to it; a name is
    /// then checked at its address of the same family) or through this
    /// interface (its routes alone, SO_BINDTODEVICE): to test each uplink
    /// of a machine with several. A source that cannot be used fails the
    /// check with class ERR, reason `source`.
    #[arg(long, value_name = "ADDR|INTERFACE")]
    pub source: Option<crate::source::Source>,
}

impl FamilyArgs {
    /// The family `-4` / `-6` ask for.
    pub fn family(&self) -> crate::target::Family {
        match (self.ipv4, self.ipv6) {
            (true, _) => crate::target::Family::V4,
            (_, true) => crate::target::Family::V6,
            _ => crate::target::Family::Any,
        }
    }
}

/// Output and exit-code modes of the `tcp`, `ping` and `tls` checks.
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

/// Prints a usage error (one line on stderr; with --nagios also the
/// UNKNOWN status line) and picks its exit code: 1, or 3 for Nagios.
fn usage_error(msg: &str) -> ExitCode {
    eprintln!("health-probe: usage: {msg} (see health-probe --help)");
    if std::env::args_os().any(|a| a == "--nagios") {
        let label = match std::env::args_os().nth(1) {
            Some(a) if a == "tcp" => "TCP",
            Some(a) if a == "ping" => "PING",
            Some(a) if a == "tls" => "TLS",
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
    /// Parses `std::env::args` into the job they ask for. `--help` and
    /// `--version` print and yield exit 0; a usage error prints one line on
    /// stderr (and with --nagios the UNKNOWN status line) and yields exit 1
    /// (3 with --nagios).
    pub fn parse_args() -> Result<Job, ExitCode> {
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
        cli.job().map_err(|errors| {
            let all: Vec<String> = errors.iter().map(SpecError::with_flags).collect();
            usage_error(&all.join("; "))
        })
    }

    /// The job these arguments ask for, if its check keeps every rule.
    pub fn job(self) -> Result<Job, Vec<SpecError>> {
        Ok(match self.command {
            Some(Command::Tcp(args)) => Job::Check(Check::Tcp(args.spec()?), args.mode),
            Some(Command::Ping(args)) => Job::Check(Check::Ping(args.spec()?), args.mode),
            Some(Command::Tls(args)) => Job::Check(Check::Tls(args.spec()?), args.mode),
            Some(Command::Connections(args)) => Job::Connections(args),
            Some(Command::Watch(args)) => Job::Watch(args),
            Some(Command::Report(args)) => Job::Report(args),
            Some(Command::Silence(args)) => Job::Silence(args),
            None => {
                let spec = LandmarkSpec::new(LandmarkSettings {
                    // clap requires ADDR without a subcommand.
                    addr: self.addr.unwrap_or_default(),
                    component: self.component,
                    expect: self.expect,
                    timeout: self.timeout,
                    family: self.family.family(),
                    source: self.family.source.clone(),
                })?;
                if self.wait_drained {
                    return Ok(Job::WaitDrained(spec, self.quiet));
                }
                if self.watch {
                    let settings = crate::follow::FollowSettings {
                        until_fail: self.until_fail,
                        period: self.period,
                        heartbeat: self.heartbeat,
                        json: self.json,
                        quiet: self.quiet,
                    };
                    return Ok(Job::Follow(spec, settings));
                }
                let mode = ModeArgs {
                    dynamic: self.dynamic,
                    nagios: self.nagios,
                    json: self.json,
                    quiet: self.quiet,
                };
                Job::Check(Check::Landmark(spec), mode)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::connections::moment_at;
    use super::*;
    use clap::CommandFactory;
    use health_proto::{Grouping, TcpState};

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        let Ok(Job::Check(Check::Ping(spec), _)) =
            Cli::try_parse_from(["health-probe", "ping", "::1"])
                .unwrap()
                .job()
        else {
            panic!("not a ping job");
        };
        assert_eq!(spec.interval, crate::spec::DEFAULT_PING_INTERVAL);
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
