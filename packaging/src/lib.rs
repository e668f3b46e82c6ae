//! Man pages and shell completions for `health-probe`, generated from the
//! same clap definitions as its `--help` (`health_probe::cli::Cli`), so
//! the three cannot drift apart. `packaging/deb.sh` installs them; the
//! `health-probe-assets` binary writes them to a folder.
//!
//! Written by [`write_all`] under a folder:
//! - `man/health-probe.1`, and one page per subcommand
//!   (`health-probe-tcp.1`, `health-probe-watch.1`, ...);
//! - `completions/health-probe.bash`, `completions/_health-probe` (zsh)
//!   and `completions/health-probe.fish`.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// The shells completions are written for, with the file name each one's
/// completion loader looks for.
pub const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "health-probe.bash"),
    (Shell::Zsh, "_health-probe"),
    (Shell::Fish, "health-probe.fish"),
];

/// The command line as clap defines it, named as installed.
pub fn command() -> clap::Command {
    health_probe::cli::Cli::command().name("health-probe")
}

/// Writes the man pages under `out/man` and the completions under
/// `out/completions`; returns the files written.
pub fn write_all(out: &Path) -> io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    // generate_to writes one page for the command and one per subcommand,
    // without clap's `help` pseudo-subcommand.
    clap_mangen::generate_to(command(), &man)?;
    let mut written = Vec::new();
    for entry in std::fs::read_dir(&man)? {
        written.push(entry?.path());
    }
    written.sort();
    for (shell, file) in SHELLS {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut command(), "health-probe", &mut text);
        let path = completions.join(file);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}
