//! The command line, parsed with clap derive. Bad arguments exit 1 (not
//! clap's 2, which keepalived's misc_dynamic would read as "healthy, weight 0").

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use health_proto::State;

use crate::probe::ProbeSpec;

/// Default `--timeout`: the whole probe, from name resolution to the reply.
pub const DEFAULT_TIMEOUT: &str = "1s";

/// Check a service's landmark health endpoint and exit 0 if its state is
/// expected, 1 otherwise.
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
#[command(name = "health-probe", version, about, long_about)]
pub struct Cli {
    /// Endpoint to check: IPv4:PORT, [IPv6]:PORT or HOST:PORT.
    #[arg(value_name = "ADDR")]
    pub addr: String,

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

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 500ms, 2s)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

impl Cli {
    /// Parses `std::env::args`. `--help` and `--version` print and yield
    /// exit 0; a usage error prints one line on stderr and yields exit 1.
    pub fn parse_args() -> Result<Cli, ExitCode> {
        Cli::try_parse().map_err(|e| {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    let rendered = e.render().to_string();
                    let first = rendered.lines().next().unwrap_or("invalid arguments");
                    let msg = first.strip_prefix("error: ").unwrap_or(first);
                    eprintln!("health-probe: usage: {msg} (see health-probe --help)");
                    // A Nagios plugin reports bad arguments as UNKNOWN (3).
                    if std::env::args_os().any(|a| a == "--nagios") {
                        println!("LANDMARK UNKNOWN - usage: {msg}");
                        ExitCode::from(3)
                    } else {
                        ExitCode::from(1)
                    }
                }
            }
        })
    }

    pub fn probe_spec(&self) -> ProbeSpec<'_> {
        ProbeSpec {
            addr: &self.addr,
            component: self.component.as_deref(),
            timeout: self.timeout,
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
}
