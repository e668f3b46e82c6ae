//! `health-probe-watch`: runs `health-probe watch` and `health-probe
//! report` (which exec it), and the one-shot checks too.

use std::process::ExitCode;

use health_probe::cli::{Cli, Job};

fn main() -> ExitCode {
    let job = match Cli::parse_args() {
        Ok(job) => job,
        Err(code) => return code,
    };
    match &job {
        Job::Watch(args) => health_watch::run(args),
        Job::Report(args) => health_watch::report(args),
        _ => health_probe::run_check(&job),
    }
}
