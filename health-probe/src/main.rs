//! `health-probe`: checks a service's landmark health endpoint and exits 0
//! (healthy) or 1 (anything else), for keepalived's MISC_CHECK, scripts and
//! operators. See `health-probe --help` and the README's exit-code table.
//!
//! The flow is one-way, as in ripgrep: parse the command line ([`cli`]),
//! run one probe under one deadline ([`probe`]), turn the outcome into a
//! [`verdict::Verdict`], and print it and pick the exit code in one place
//! ([`report`]).

mod cli;
mod probe;
mod report;
mod target;
mod verdict;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let outcome = probe::run(&cli.probe_spec());
    let verdict = verdict::Verdict::judge(&cli, outcome);
    report::print(&cli, &verdict);
    ExitCode::from(verdict.exit_code)
}
