//! `health-probe watch CONFIG --check-config`: the config validated, its
//! database writable, a summary and each maintenance window's next
//! opening printed; nothing made.

use std::time::SystemTime;

use health_probe::cli::WatchArgs;

use super::config_error;
use crate::config;
use crate::error::Error;
use crate::output;

/// Checks `args.config`: `Ok` (exit 0) when the watcher could start on it.
pub(super) fn run(args: &WatchArgs) -> Result<(), Error> {
    let config = config::load(&args.config).map_err(config_error)?;
    for w in &config.warnings {
        eprintln!("health-probe: warning: {}", health_probe::text::shown(w));
    }
    config::writable(&config.database).map_err(|e| Error::Config(vec![e]))?;
    println!(
        "{}: valid, {}, history in {}",
        args.config.display(),
        output::targets_counted(config.targets.len()),
        config.database.display()
    );
    let now = SystemTime::now();
    for w in &config.maintenance {
        let next = w.next(now).map_or_else(
            || "never".to_string(),
            |t| humantime::format_rfc3339_seconds(t).to_string(),
        );
        let open = if w.current(now).is_some() {
            " (open now)"
        } else {
            ""
        };
        println!(
            "maintenance {}: {} for {}, next opens {next}{open}",
            w.name,
            health_probe::text::shown(&w.schedule_text),
            humantime::format_duration(w.duration)
        );
    }
    Ok(())
}
