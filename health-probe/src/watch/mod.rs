//! `health-probe watch CONFIG`: many targets checked at once in one async
//! process, alarms raised and cleared with fall/rise thresholds, recorded
//! in SQLite, acted on, and shown live; `health-probe report` exports the
//! history.
//!
//! - [`config`]: the TOML file and its validation.
//! - [`check`]: one check of one target (landmark, tcp, ping).
//! - [`alarm`]: fall/rise/pause rules, pure state.
//! - [`store`]: the history database.
//! - [`action`]: commands run on raise and clear.
//! - [`output`]: log lines, JSON events, the live table.
//! - [`history`]: `health-probe report`.
//!
//! Each target is one task: wait for its next tick, take one of
//! `max_in_flight` permits, check, update its alarm. SIGHUP reloads the
//! config: unchanged targets keep running with their state (and paused ones
//! resume), changed ones restart keeping whether their alarm is raised,
//! removed ones stop.

pub mod action;
pub mod alarm;
pub mod check;
pub mod config;
pub mod history;
pub mod output;
pub mod store;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cli::WatchArgs;
use action::{Actions, Pending};
use alarm::{Alarm, Thresholds, Transition};
use config::{Config, Target};
use output::{Mode, Notice, Output, Row, Stats, Status};
use store::{EventRecord, Store};

/// How often old history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs the watcher until SIGTERM or SIGINT. Exit 0 when stopped by a
/// signal, 1 when it cannot start (config, database).
pub fn run(args: &WatchArgs) -> ExitCode {
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("health-probe: {line}");
            }
            return ExitCode::from(1);
        }
    };
    if args.check_config {
        println!(
            "{}: valid, {} targets, history in {}",
            args.config.display(),
            config.targets.len(),
            config.database.display()
        );
        return ExitCode::SUCCESS;
    }
    let conn = match store::open(&config.database) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("health-probe: {e}");
            return ExitCode::from(1);
        }
    };
    let restored = match store::restore(&conn) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("health-probe: {e}");
            return ExitCode::from(1);
        }
    };
    let mode = if args.json {
        Mode::Json
    } else if !args.plain && std::io::stdout().is_terminal() {
        Mode::Live
    } else {
        Mode::Log
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("watch")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("health-probe: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let output = Output::new(mode);
    let warn_output = output.clone();
    let store = match Store::spawn(conn, move |e| warn_output.notice(Notice::Warning(e))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("health-probe: cannot start the history writer: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        // Before anything else: a signal must never find the default action.
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("health-probe: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        let mut watcher = Watcher::new(args, &config, store, output, restored.raised);
        watcher.start(config, restored.open_alarms).await;
        watcher.serve(signals).await
    })
}

/// The signals the watcher handles: SIGHUP reloads, SIGTERM and SIGINT
/// stop.
struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Checks, failures, lag: shared by every target task.
#[derive(Default)]
struct Counters {
    checks: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicUsize,
    max_lag_us: AtomicU64,
}

/// What every target task shares.
struct Shared {
    output: Arc<Output>,
    store: Store,
    actions: Arc<Actions>,
    limit: Arc<Semaphore>,
    counters: Counters,
    log_checks: bool,
}

struct Running {
    target: Arc<Target>,
    status: Arc<Status>,
    resume: Arc<Notify>,
    task: JoinHandle<()>,
}

struct Watcher {
    path: PathBuf,
    stats_every: Option<Duration>,
    shared: Arc<Shared>,
    max_in_flight: usize,
    keep_history: Duration,
    /// The database in use (a reload cannot move it).
    database: PathBuf,
    running: HashMap<String, Running>,
    /// Alarms raised per target over the whole history.
    raised: HashMap<String, u64>,
}

impl Watcher {
    fn new(
        args: &WatchArgs,
        config: &Config,
        store: Store,
        output: Arc<Output>,
        raised: HashMap<String, u64>,
    ) -> Watcher {
        let actions = Actions::new(store.clone(), output.clone());
        Watcher {
            path: args.config.clone(),
            stats_every: args.stats,
            shared: Arc::new(Shared {
                output,
                store,
                actions,
                limit: Arc::new(Semaphore::new(config.max_in_flight)),
                counters: Counters::default(),
                log_checks: args.log_checks,
            }),
            max_in_flight: config.max_in_flight,
            keep_history: config.keep_history,
            database: config.database.clone(),
            running: HashMap::new(),
            raised,
        }
    }

    /// Starts every target of the first config; alarms left open by an
    /// earlier run stay raised, or are closed as `removed` when their
    /// target is gone.
    async fn start(&mut self, config: Config, open: HashMap<String, SystemTime>) {
        self.shared.output.notice(Notice::Started {
            targets: config.targets.len(),
            database: config.database.display().to_string(),
            max_in_flight: config.max_in_flight,
        });
        let names: std::collections::HashSet<&str> =
            config.targets.iter().map(|t| t.name.as_str()).collect();
        let mut gone: Vec<(&String, &SystemTime)> = open
            .iter()
            .filter(|(name, _)| !names.contains(name.as_str()))
            .collect();
        gone.sort();
        for (name, _) in gone {
            let e = EventRecord {
                time: SystemTime::now(),
                target: name.clone(),
                kind: "",
                addr: String::new(),
                event: "removed",
                class: None,
                reason: None,
                detail: "not in the config any more; its open alarm is closed".into(),
                rtt: None,
                count: 0,
            };
            record(&self.shared, e).await;
        }
        for target in config.targets {
            let raised_at = open.get(&target.name).copied();
            self.launch(Arc::new(target), Alarm::new(raised_at));
        }
        self.publish();
    }

    /// Starts one target's task.
    fn launch(&mut self, target: Arc<Target>, alarm: Alarm) {
        let status = Arc::new(Status {
            name: target.name.clone(),
            kind: target.kind.as_str(),
            addr: target.addr.clone(),
            row: std::sync::Mutex::new(Row {
                alarm,
                last: None,
                alarms: self.raised.get(&target.name).copied().unwrap_or(0),
            }),
        });
        let resume = Arc::new(Notify::new());
        let task = tokio::spawn(watch_target(
            self.shared.clone(),
            target.clone(),
            status.clone(),
            resume.clone(),
        ));
        self.running.insert(
            target.name.clone(),
            Running {
                target,
                status,
                resume,
                task,
            },
        );
    }

    /// Hands the current targets to the live view.
    fn publish(&self) {
        let mut list: Vec<Arc<Status>> = self.running.values().map(|r| r.status.clone()).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        self.shared.output.set_targets(list);
    }

    /// Serves signals, stats, pruning and the live view until stopped.
    async fn serve(&mut self, signals: Signals) -> ExitCode {
        let Signals {
            mut hup,
            mut term,
            mut int,
        } = signals;
        let live = self.shared.output.mode() == Mode::Live;
        let mut screen = live.then(Screen::enter);
        let tick = if live {
            Duration::from_secs(1)
        } else {
            self.stats_every.unwrap_or(Duration::from_secs(3600))
        };
        let mut stats_timer = tokio::time::interval_at(Instant::now() + tick, tick);
        let mut prune_timer = tokio::time::interval(PRUNE_EVERY);
        let why = loop {
            tokio::select! {
                _ = hup.recv() => self.reload().await,
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                _ = stats_timer.tick() => {
                    let stats = self.stats();
                    if live {
                        self.shared.output.notice(Notice::Stats(stats));
                        if let Some(s) = screen.as_mut() {
                            s.draw(&self.shared.output);
                        }
                    } else if self.stats_every.is_some() {
                        self.shared.output.notice(Notice::Stats(stats));
                    }
                }
                _ = prune_timer.tick() => {
                    let before = SystemTime::now().checked_sub(self.keep_history).unwrap_or(SystemTime::UNIX_EPOCH);
                    self.shared.store.prune(before).await;
                }
            }
        };
        for r in self.running.values() {
            r.task.abort();
        }
        self.shared.store.flush().await;
        drop(screen);
        self.shared.output.notice(Notice::Stopping(why.into()));
        if live {
            // The live table is gone with the alternate screen: leave the
            // last lines behind.
            println!("{}", output::text(&Notice::Stats(self.stats())));
        }
        ExitCode::SUCCESS
    }

    fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let mut alarms = 0;
        let mut paused = 0;
        for r in self.running.values() {
            let row = r.status.row();
            alarms += usize::from(row.alarm.raised);
            paused += usize::from(row.alarm.paused);
        }
        Stats {
            checks: c.checks.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            max_lag: Duration::from_micros(c.max_lag_us.swap(0, Ordering::Relaxed)),
            targets: self.running.len(),
            alarms,
            paused,
        }
    }

    /// SIGHUP: reads the config again. An invalid config changes nothing.
    async fn reload(&mut self) {
        let config = match config::load(&self.path) {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string().replace('\n', "; ");
                // On a terminal the live table shows it; a line on stderr
                // would tear the screen.
                if self.shared.output.mode() != Mode::Live {
                    eprintln!("health-probe: reload failed: {msg}");
                }
                self.shared.output.notice(Notice::ReloadFailed(msg));
                return;
            }
        };
        if config.max_in_flight > self.max_in_flight {
            self.shared
                .limit
                .add_permits(config.max_in_flight - self.max_in_flight);
        } else if config.max_in_flight < self.max_in_flight {
            // Permits in use now are taken back as they come home.
            let take = self.max_in_flight - config.max_in_flight;
            let taken = self.shared.limit.forget_permits(take);
            if taken < take {
                let limit = self.shared.limit.clone();
                tokio::spawn(async move {
                    if let Ok(p) = limit.acquire_many((take - taken) as u32).await {
                        p.forget();
                    }
                });
            }
        }
        self.max_in_flight = config.max_in_flight;
        if config.database != self.database {
            self.shared.output.notice(Notice::Warning(format!(
                "database changed to {}: history stays in {} until a restart",
                config.database.display(),
                self.database.display()
            )));
        }
        self.keep_history = config.keep_history;
        let (mut kept, mut added, mut changed, mut resumed) = (0, 0, 0, 0);
        let mut seen = std::collections::HashSet::new();
        for target in config.targets {
            seen.insert(target.name.clone());
            match self.running.get(&target.name) {
                Some(r) if r.target.same_as(&target) => {
                    kept += 1;
                    if r.status.row().alarm.paused {
                        r.resume.notify_one();
                        resumed += 1;
                    }
                }
                Some(r) => {
                    changed += 1;
                    r.task.abort();
                    let old = r.status.row().alarm.clone();
                    let alarm = Alarm::new(old.raised.then_some(old.since));
                    self.launch(Arc::new(target), alarm);
                }
                None => {
                    added += 1;
                    self.launch(Arc::new(target), Alarm::new(None));
                }
            }
        }
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        for name in &gone {
            if let Some(r) = self.running.remove(name) {
                r.task.abort();
                let e = EventRecord {
                    time: SystemTime::now(),
                    target: name.clone(),
                    kind: r.target.kind.as_str(),
                    addr: r.target.addr.clone(),
                    event: "removed",
                    class: None,
                    reason: None,
                    detail: "removed from the config".into(),
                    rtt: None,
                    count: 0,
                };
                record(&self.shared, e).await;
            }
        }
        self.publish();
        self.shared.output.notice(Notice::Reloaded {
            kept,
            added,
            changed,
            removed: gone.len(),
            resumed,
        });
    }
}

/// Records an event, then tells it; the id links its action.
async fn record(shared: &Shared, event: EventRecord) -> Option<i64> {
    let id = shared.store.event(event.clone()).await;
    shared.output.notice(Notice::Event { id, event });
    id
}

/// Where in its interval a target first runs: spread by its name, so
/// thousands of targets do not all fire at once, and stable across
/// restarts.
fn first_delay(name: &str, interval: Duration) -> Duration {
    // FNV-1a: a fixed, dependency-free spread; not a security boundary.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    interval.mul_f64((h % 10_000) as f64 / 10_000.0)
}

/// One target's life: tick, check, judge, record, act; paused until
/// resumed.
async fn watch_target(
    shared: Arc<Shared>,
    target: Arc<Target>,
    status: Arc<Status>,
    resume: Arc<Notify>,
) {
    let thresholds = Thresholds {
        fall: target.fall,
        rise: target.rise,
        pause_after_errors: target.pause_after_errors,
    };
    let mut next = Instant::now() + first_delay(&target.name, target.interval);
    loop {
        tokio::time::sleep_until(next).await;
        let Ok(permit) = shared.limit.acquire().await else {
            return;
        };
        let lag = Instant::now().saturating_duration_since(next);
        shared
            .counters
            .max_lag_us
            .fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
        shared.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let observation = check::run(&target).await;
        shared.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
        shared.counters.checks.fetch_add(1, Ordering::Relaxed);
        if observation.failed() {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        if shared.log_checks {
            shared.output.notice(Notice::Check {
                target: target.name.clone(),
                kind: target.kind.as_str(),
                addr: target.addr.clone(),
                observation: observation.clone(),
            });
        }
        let (changes, alarm) = {
            let mut row = status.row();
            let changes = row.alarm.observe(&observation, &thresholds);
            if changes.contains(&Transition::Raise) {
                row.alarms += 1;
            }
            row.last = Some(observation.clone());
            (changes, row.alarm.clone())
        };
        for change in &changes {
            let count = alarm.run_length(*change);
            let event = event_of(&target, *change, &observation, count);
            let id = record(&shared, event.clone()).await;
            let command = match change {
                Transition::Raise => target.on_raise.as_ref(),
                Transition::Clear => target.on_clear.as_ref(),
                Transition::Pause => None,
            };
            if let Some(command) = command {
                shared.actions.submit(Pending {
                    event_id: id.unwrap_or(0),
                    event,
                    command: command.clone(),
                    timeout: target.action_timeout,
                });
            }
        }
        if changes.contains(&Transition::Pause) {
            resume.notified().await;
            status.row().alarm.resume();
            let mut event = event_of(&target, Transition::Pause, &observation, 0);
            event.event = "resume";
            event.class = None;
            event.reason = None;
            event.detail = "config reloaded".into();
            event.rtt = None;
            event.time = SystemTime::now();
            record(&shared, event).await;
            next = Instant::now();
            continue;
        }
        // A check held up (by the in-flight limit) past its next tick runs
        // once, late, rather than in a burst.
        next = (next + target.interval).max(Instant::now());
    }
}

fn event_of(
    target: &Target,
    change: Transition,
    o: &check::Observation,
    count: u32,
) -> EventRecord {
    EventRecord {
        time: o.at,
        target: target.name.clone(),
        kind: target.kind.as_str(),
        addr: target.addr.clone(),
        event: change.as_str(),
        class: Some(o.class.as_str()),
        reason: o.reason,
        detail: o.detail.clone(),
        rtt: o.rtt,
        count,
    }
}

/// The terminal while the live table is up: alternate screen, no cursor;
/// restored when dropped.
struct Screen {
    out: std::io::Stdout,
}

impl Screen {
    fn enter() -> Screen {
        let mut out = std::io::stdout();
        let _ = crossterm::execute!(
            out,
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide
        );
        Screen { out }
    }

    fn draw(&mut self, output: &Output) {
        let _ = output.draw(&mut self.out.lock());
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = crossterm::execute!(
            self.out,
            crossterm::cursor::Show,
            crossterm::terminal::LeaveAlternateScreen
        );
    }
}

/// The database a `health-probe report` reads: `--database`, or the one
/// `--config` names, or the default.
pub fn database_for(database: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, String> {
    match (database, config) {
        (Some(d), _) => Ok(d.to_path_buf()),
        (None, Some(c)) => config::load(c)
            .map(|c| c.database)
            .map_err(|e| e.to_string().replace('\n', "; ")),
        (None, None) => Ok(PathBuf::from(config::DEFAULT_DATABASE)),
    }
}
