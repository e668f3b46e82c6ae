//! One hostile peer process for the under-attack scenarios
//! (`health_bench::attack`): runs its part of an attack against a health
//! endpoint on loopback for a bounded time, then prints the connections it
//! opened and those the server closed, as two numbers.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use health_bench::attack::{attack_part, Attack};

#[derive(Parser)]
#[command(about = "Runs one part of an under-attack scenario against a loopback health endpoint")]
struct Args {
    /// idle-same-source, idle-many-sources, resenders or reset-flood.
    attack: String,
    /// The health endpoint (loopback only).
    addr: SocketAddr,
    /// Which part of the attack this process runs (0-based).
    #[arg(long, default_value_t = 0)]
    part: u32,
    /// How many processes share the attack.
    #[arg(long, default_value_t = 1)]
    parts: u32,
    /// How long to attack, in milliseconds (at most ten minutes).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    millis: u64,
}

fn main() {
    let args = Args::parse();
    let Some(attack) = Attack::from_name(&args.attack) else {
        eprintln!("attacker: unknown attack {:?}", args.attack);
        std::process::exit(2);
    };
    if !args.addr.ip().is_loopback() || args.parts == 0 || args.part >= args.parts {
        eprintln!("attacker: loopback targets only, and --part below --parts");
        std::process::exit(2);
    }
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (opened, closed) = attack_part(
        attack,
        args.part,
        args.parts,
        args.addr,
        Duration::from_millis(args.millis),
    );
    println!("{opened} {closed}");
}
