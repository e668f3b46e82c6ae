//! The legitimate check's latency while hostile peers attack the endpoint
//! (`health_bench::attack`): `health-probe ADDR --expect ok --timeout 1s`
//! every 100 ms against `landmark_service` with the defaults, first with no
//! attack (the reference, measured in the same run), then under each attack
//! and all of them at once, then past what the kernel's queues hold (f).
//! Prints the Markdown table docs/BENCHMARKS.md records, and exits 1 if a
//! check failed under (a) to (e); (f) is the stated limit, measured.
//!
//! ```text
//! cargo build --release --workspace --bins --examples && target/release/under_attack
//! ```

use std::time::Duration;

use clap::Parser;
use health_bench::attack::{self, Attack, Target};
use health_bench::built;

#[derive(Parser)]
#[command(about = "The legitimate check's latency under each attack, against no attack")]
struct Args {
    /// Seconds of timed checks per scenario.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(3..=600))]
    seconds: u64,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let probe = built("health-probe")?;
    let attacker = built("attacker")?;
    let (server, health) = attack::start_service(&built("examples/landmark_service")?, &probe);
    let target = Target {
        pid: server.0.id(),
        health,
        probe: &probe,
        attacker: &attacker,
    };
    let length = Duration::from_secs(args.seconds);
    let quiet = attack::run(&target, &[], length);
    println!("| scenario | checks | p50 | p99 | max | p50 vs no attack | failed | server RSS | server fds before → max → after |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "{}",
        attack::row("no attack (reference)", &quiet, quiet.checks.median())
    );
    let mut failed = quiet.failures.len();
    let mut scenarios: Vec<(String, Vec<Attack>)> = Attack::ALL
        .iter()
        .map(|a| (a.label().to_string(), vec![*a]))
        .collect();
    scenarios.push(("(e) all of them at once".to_string(), Attack::ALL.to_vec()));
    scenarios.push((
        Attack::IdleBeyondQueues.label().to_string(),
        vec![Attack::IdleBeyondQueues],
    ));
    for (label, attacks) in scenarios {
        let o = attack::run(&target, &attacks, length);
        println!("{}", attack::row(&label, &o, quiet.checks.median()));
        for f in &o.failures {
            eprintln!("under_attack: {label}: {f}");
        }
        if !attacks.contains(&Attack::IdleBeyondQueues) {
            failed += o.failures.len();
        }
    }
    if failed > 0 {
        return Err(format!("{failed} legitimate checks failed"));
    }
    Ok(())
}
