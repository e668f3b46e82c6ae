//! `health-probe-assets --out DIR`: writes health-probe's man pages and
//! shell completions (see the library's docs).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Write health-probe's man pages (DIR/man) and bash, zsh and fish
/// completions (DIR/completions), generated from its clap definitions.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Folder to write into; created if missing.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match health_probe_assets::write_all(&args.out) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("health-probe-assets: {}: {e}", args.out.display());
            ExitCode::from(1)
        }
    }
}
