//! The code behind the `health-probe` binary, and the checks the watcher
//! (the `health-watch` crate, binary `health-probe-watch`) runs too (not a
//! stable library API).
//!
//! `health-probe` checks a service's landmark health endpoint and exits 0
//! (healthy) or 1 (anything else), for keepalived's MISC_CHECK, scripts and
//! operators; `health-probe tcp` checks a plain TCP port ([`tcp`]),
//! `health-probe ping` a host ([`ping`]), `health-probe tls` a TLS
//! handshake and its certificates ([`tls`]), and `health-probe connections`
//! asks a service who is connected to it (`connections`).
//! `health-probe ADDR --watch` follows a landmark as the endpoint pushes
//! its changes ([`follow`]).
//! `health-probe watch` runs many checks with alarms and `health-probe
//! report` exports their history; those two live in the `health-watch`
//! crate's `health-probe-watch` binary, which `health-probe` execs, so the
//! one-shot probe that keepalived runs thousands of times a minute carries
//! no async runtime, SQLite, TOML or terminal library.
//!
//! The one-shot flow is one-way, as in ripgrep: parse the command line
//! into a [`cli::Job`] holding a [`check::Check`] of a validated [`spec`]
//! ([`cli`]), run it under one deadline ([`check::Check::run`], which calls
//! [`probe`], [`tcp`], [`ping`] or [`tls`]) into a [`check::Finding`],
//! judge it ([`verdict`]), and print it and pick the exit code in one
//! place (`report`, through [`run_check`]). The watcher runs the same
//! checks on tokio through [`check::Check::run_async`] (feature `async`,
//! `nonblocking`). Shared by every check kind: the outcome classes
//! ([`outcome`]), why a check got no answer ([`error`]), the one address a
//! check tests ([`target`]), bytes written with escapes ([`payload`]) and
//! untrusted text on its way to a terminal ([`text`]).

pub mod check;
pub mod cli;
mod connections;
mod drain;
pub mod duration;
pub mod error;
pub mod follow;
#[cfg(feature = "async")]
pub mod nonblocking;
pub mod outcome;
pub mod payload;
pub mod ping;
pub mod probe;
mod report;
pub mod sigmask;
pub mod source;
pub mod spec;
#[cfg(feature = "async")]
pub mod stream_async;
pub mod table;
pub mod target;
pub mod tcp;
pub mod text;
pub mod tls;
pub mod verdict;

use std::process::ExitCode;

/// Runs a one-shot check (landmark, `tcp`, `ping`, `tls`, `connections`),
/// prints its verdict and picks its exit code. `watch` and `report` are
/// the caller's to run.
pub fn run_check(job: &cli::Job) -> ExitCode {
    match job {
        cli::Job::Check(check, mode) => {
            let found = check.run();
            let code = verdict::exit_code(&found, mode);
            report::print(mode, &found, code);
            ExitCode::from(code)
        }
        cli::Job::WaitDrained(spec, quiet) => drain::wait(spec, *quiet),
        cli::Job::Follow(spec, settings) => follow::run(spec, settings),
        cli::Job::Connections(args) => match connections::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                if e.is_worth_telling() {
                    eprintln!("health-probe: {e}");
                }
                ExitCode::from(1)
            }
        },
        cli::Job::Watch(_) | cli::Job::Report(_) | cli::Job::Silence(_) => {
            eprintln!("health-probe: watch, report and silence are run by health-probe-watch");
            ExitCode::from(1)
        }
    }
}
