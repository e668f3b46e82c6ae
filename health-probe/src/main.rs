//! `health-probe`: checks a service's landmark health endpoint and exits 0
//! (healthy) or 1 (anything else), for keepalived's MISC_CHECK, scripts and
//! operators; `health-probe tcp` checks a plain TCP port ([`tcp`]) and
//! `health-probe ping` a host ([`ping`]). See
//! `health-probe --help` and the README's exit-code table.
//!
//! The flow is one-way, as in ripgrep: parse the command line ([`cli`]),
//! run one probe under one deadline ([`probe`]), turn the outcome into a
//! [`verdict::Verdict`], and print it and pick the exit code in one place
//! ([`report`]).

mod cli;
mod ping;
mod probe;
mod report;
mod target;
mod tcp;
mod verdict;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match &cli.command {
        Some(cli::Command::Tcp(args)) => {
            let o = tcp::run(args);
            let code = verdict::class_exit_code(args.mode.nagios, o.class, o.reason, o.speed(args));
            report::print_tcp(args, &o, code);
            return ExitCode::from(code);
        }
        Some(cli::Command::Ping(args)) => {
            let o = ping::run(args);
            let code = verdict::class_exit_code(args.mode.nagios, o.class, o.reason, o.speed(args));
            report::print_ping(args, &o, code);
            return ExitCode::from(code);
        }
        None => {}
    }
    let outcome = probe::run(&cli.probe_spec());
    let verdict = verdict::Verdict::judge(&cli, outcome);
    report::print(&cli, &verdict);
    ExitCode::from(verdict.exit_code)
}
