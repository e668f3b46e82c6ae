//! `health-probe-watch`: runs `health-probe watch` and `health-probe
//! report` (which exec it), and the one-shot checks too.

use std::process::ExitCode;

use health_probe::cli::{self, Command};

fn main() -> ExitCode {
    let cli = match cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match &cli.command {
        Some(Command::Watch(args)) => health_watch::run(args),
        Some(Command::Report(args)) => health_watch::history::run(args),
        _ => health_probe::run_check(&cli),
    }
}
