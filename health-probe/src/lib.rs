//! The code behind the `health-probe` binary, and the checks the watcher
//! (the `health-watch` crate, binary `health-probe-watch`) runs too (not a
//! stable library API).
//!
//! `health-probe` checks a service's landmark health endpoint and exits 0
//! (healthy) or 1 (anything else), for keepalived's MISC_CHECK, scripts and
//! operators; `health-probe tcp` checks a plain TCP port ([`tcp`]) and
//! `health-probe ping` a host ([`ping`]), and `health-probe connections`
//! asks a service who is connected to it ([`connections`]).
//! `health-probe watch` runs many checks with alarms and `health-probe
//! report` exports their history; those two live in the `health-watch`
//! crate's `health-probe-watch` binary, which `health-probe` execs, so the
//! one-shot probe that keepalived runs thousands of times a minute carries
//! no async runtime, SQLite, TOML or terminal library.
//!
//! The one-shot flow is one-way, as in ripgrep: parse the command line
//! ([`cli`]), run one probe under one deadline ([`probe`]), turn the
//! outcome into a [`verdict::Verdict`], and print it and pick the exit
//! code in one place ([`report`]). Shared by every check kind: the outcome
//! classes ([`outcome`]), why a check got no answer ([`error`]), the one
//! address a check tests ([`target`]), bytes written with escapes
//! ([`payload`]) and untrusted text on its way to a terminal ([`text`]).

pub mod cli;
pub mod connections;
pub mod duration;
pub mod error;
pub mod outcome;
pub mod payload;
pub mod ping;
pub mod probe;
pub mod report;
pub mod sigmask;
pub mod table;
pub mod target;
pub mod tcp;
pub mod text;
pub mod verdict;

use std::process::ExitCode;

/// Runs a one-shot check (landmark, `tcp`, `ping`) and picks its exit
/// code. `watch` and `report` are the caller's to run.
pub fn run_check(cli: &cli::Cli) -> ExitCode {
    match &cli.command {
        Some(cli::Command::Tcp(args)) => {
            let o = tcp::run(args);
            let code = verdict::class_exit_code(args.mode.nagios, o.class, o.reason, o.speed(args));
            report::print_tcp(args, &o, code);
            ExitCode::from(code)
        }
        Some(cli::Command::Ping(args)) => {
            let o = ping::run(args);
            let code = verdict::class_exit_code(args.mode.nagios, o.class, o.reason, o.speed(args));
            report::print_ping(args, &o, code);
            ExitCode::from(code)
        }
        Some(cli::Command::Connections(args)) => connections::run(args),
        Some(cli::Command::Watch(_) | cli::Command::Report(_)) => {
            eprintln!("health-probe: watch and report are run by health-probe-watch");
            ExitCode::from(1)
        }
        None => {
            let outcome = probe::run(&cli.probe_spec());
            let verdict = verdict::Verdict::judge(cli, outcome);
            report::print(cli, &verdict);
            ExitCode::from(verdict.exit_code)
        }
    }
}
