//! `health-probe-watch`: runs `health-probe watch`, `health-probe report`
//! and `health-probe silence` (which exec it), and the one-shot checks too.

use std::process::ExitCode;

use health_probe::cli::{Cli, Job};

fn main() -> ExitCode {
    let job = match Cli::parse_args() {
        Ok(job) => job,
        Err(code) => return code,
    };
    let ended = match &job {
        Job::Watch(args) => health_watch::run(args),
        Job::Report(args) => health_watch::report(args),
        Job::Silence(args) => health_watch::silence(args),
        _ => return health_probe::run_check(&job),
    };
    match ended {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            for line in e.lines() {
                eprintln!("health-probe: {line}");
            }
            ExitCode::from(1)
        }
    }
}
