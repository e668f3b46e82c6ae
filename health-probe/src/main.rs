//! `health-probe`: the one-shot checks (see the library's docs); `watch`,
//! `report` and `silence` are handed to the `health-probe-watch` binary by exec, so
//! this one stays small and fast to start.

use std::process::ExitCode;

use health_probe::cli::{Cli, Job};

fn main() -> ExitCode {
    let job = match Cli::parse_args() {
        Ok(job) => job,
        Err(code) => return code,
    };
    match &job {
        Job::Watch(_) => {
            // Held through exec until the watcher's handlers are in place:
            // a SIGHUP right after start must not kill it.
            health_probe::sigmask::hold();
            exec_watcher()
        }
        Job::Report(_) | Job::Silence(_) => exec_watcher(),
        _ => health_probe::run_check(&job),
    }
}

/// Replaces this process with `health-probe-watch` and the same
/// arguments: the one beside this binary, else the one on PATH. Same pid,
/// so systemd and signals see no difference.
fn exec_watcher() -> ExitCode {
    use std::os::unix::process::CommandExt;
    const WATCHER: &str = "health-probe-watch";
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(WATCHER))
        .filter(|p| p.is_file());
    let program = beside.unwrap_or_else(|| WATCHER.into());
    let err = std::process::Command::new(&program)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!(
        "health-probe: cannot run {}: {err} (install it beside health-probe)",
        program.display()
    );
    ExitCode::from(1)
}
