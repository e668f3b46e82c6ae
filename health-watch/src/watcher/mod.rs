//! The running watcher: start-up (config, lock, database, history), one
//! task per target, and the loop that serves signals, counters, pruning,
//! the database's health and the live view until it stops. Reloading is
//! in [`reload`].

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use health_probe::cli::WatchArgs;

use crate::action::Actions;
use crate::alarm::Alarm;
use crate::alertmanager::{Alerts, Raised};
use crate::config::{self, Config, Target};
use crate::error::Error;
use crate::event::{Event, Hold};
use crate::exporter;
use crate::output::{self, Mode, Notice, Output};
use crate::prober;
use crate::registry::{Registry, Remind, Row, Stats, Status};
use crate::signals::{self, Signals};
use crate::silence::Board;
use crate::silencer::{Silencer, Windows};
use crate::store::{self, EventRecord, Store};

mod check_config;
mod reload;
use crate::publish::Publisher;
use crate::task::{self, Shared};
use crate::terminal::Screen;

/// How often old history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often the database is looked at (still there? writable?).
const CHECK_DATABASE_EVERY: Duration = Duration::from_secs(10);

/// Runs the watcher until SIGTERM or SIGINT: `Ok` when stopped by a
/// signal, an error when it cannot start (config, database in use or
/// unusable).
pub fn run(args: &WatchArgs) -> Result<(), Error> {
    // Before anything else: a signal must never find its default action.
    signals::hold();
    if args.check_config {
        signals::release();
        return check_config::run(args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("watch")
        .build()
        .map_err(Error::Runtime)?;
    let stopped = runtime.block_on(async move {
        let mut signals = Signals::install().map_err(Error::Signals)?;
        // Start-up (config, lock, database) may take a while on a big
        // config or a busy disk: SIGTERM ends it cleanly; SIGHUP waits.
        let (mut watcher, config, restored, exporter) = tokio::select! {
            s = start(args) => s?,
            why = signals.stop.recv() => {
                eprintln!("health-probe: {why} during start-up: stopped before watching");
                return Ok(());
            }
        };
        watcher.start(config, restored).await;
        watcher.serve(signals).await;
        exporter.cancel();
        Ok(())
    });
    // History is flushed and actions are done: a reload still parsing on
    // a blocking thread (or a ping still waiting) is not waited for.
    runtime.shutdown_background();
    stopped
}

fn config_error(e: config::ConfigErrors) -> Error {
    Error::Config(e.to_string().lines().map(str::to_string).collect())
}

/// Config, lock, database, history: everything the watcher needs before
/// its first check.
async fn start(
    args: &WatchArgs,
) -> Result<(Watcher, Config, store::Restored, CancellationToken), Error> {
    let path = args.config.clone();
    let mut config = tokio::task::spawn_blocking(move || config::load(&path))
        .await
        .map_err(|e| Error::Config(vec![e.to_string()]))?
        .map_err(config_error)?;
    let database = config.database.clone();
    let (lock, conn, mut restored) = tokio::task::spawn_blocking(move || {
        let lock = store::lock(&database)?;
        let conn = store::open(&database)?;
        let restored = store::restore(&conn)?;
        Ok::<_, store::StoreError>((lock, conn, restored))
    })
    .await
    .map_err(|e| Error::Database(e.to_string()))?
    .map_err(|e| Error::Database(e.to_string()))?;
    let mode = if args.json {
        Mode::Json
    } else if !args.plain && std::io::stdout().is_terminal() {
        Mode::Live
    } else {
        Mode::Log
    };
    let registry = Registry::new();
    let output = Output::new(mode, registry.clone());
    let told = output.clone();
    let store = Store::spawn(conn, &config.database, move |health| {
        told.notice(match health {
            store::Health::Failing(e) => Notice::Error(format!(
                "{e}; events are still printed and acted on, not recorded"
            )),
            store::Health::Recovered { written, lost } => Notice::Warning(format!(
                "the history database can be written again{}{}",
                match written {
                    0 => String::new(),
                    1 => ": the 1 event kept meanwhile is written".into(),
                    n => format!(": the {n} events kept meanwhile are written, in order"),
                },
                match lost {
                    0 => String::new(),
                    n => format!(
                        "; {n} older ones gave way to them (at most {} are kept)",
                        store::MAX_BACKLOG
                    ),
                }
            )),
        })
    })
    .map_err(|e| Error::Database(format!("cannot start the history writer: {e}")))?;
    for w in std::mem::take(&mut config.warnings) {
        output.notice(Notice::Warning(w));
    }
    let alerts = config.alerting.clone().map(Alerts::new);
    let modules: prober::Modules =
        Arc::new(RwLock::new(Arc::new(std::mem::take(&mut config.modules))));
    // Before any target runs: an address in use stops the start.
    let exporter = CancellationToken::new();
    // The silences in force, known before the first check.
    let silences = Board::new();
    let windows: Windows = Arc::new(RwLock::new(Arc::new(std::mem::take(
        &mut config.maintenance,
    ))));
    let poke = Arc::new(Notify::new());
    let mut keeper = Silencer {
        board: silences.clone(),
        database: config.database.clone(),
        windows: windows.clone(),
        poke: poke.clone(),
        output: output.clone(),
        told: Vec::new(),
    };
    keeper.look().await;
    tokio::spawn(keeper.run(exporter.clone()));
    if let Some(addr) = config.http_listen {
        let listener =
            crate::listener::bind(addr).map_err(|source| Error::Listen { addr, source })?;
        let more = alerts.iter().map(Alerts::collector).collect();
        let sources = exporter::Sources {
            output: output.clone(),
            watched: registry.clone(),
            more,
            modules: modules.clone(),
            database: config.database.clone(),
            silences: silences.clone(),
            poke: poke.clone(),
        };
        exporter::spawn(
            listener,
            sources,
            config.http_access.clone(),
            exporter.clone(),
        );
    }
    let raised = std::mem::take(&mut restored.raised);
    let mut watcher = Watcher::new(
        args,
        &config,
        store,
        (output, registry),
        (alerts, silences),
        raised,
        lock,
    );
    watcher.modules = modules;
    watcher.windows = windows;
    watcher.poke = poke;
    Ok((watcher, config, restored, exporter))
}

pub(super) struct Running {
    pub(super) target: Arc<Target>,
    pub(super) status: Arc<Status>,
    pub(super) resume: Arc<Notify>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// A target's task once it has ended: its status holds its final state.
pub(super) struct Stopped {
    pub(super) target: Arc<Target>,
    pub(super) status: Arc<Status>,
}

impl Running {
    /// Stops the task at its next wait (never while it records an event)
    /// and waits for it.
    pub(super) async fn stop(self) -> Stopped {
        self.stop.cancel();
        let _ = self.task.await;
        Stopped {
            target: self.target,
            status: self.status,
        }
    }
}

pub(super) struct Watcher {
    pub(super) path: PathBuf,
    stats_every: Option<Duration>,
    pub(super) shared: Arc<Shared>,
    pub(super) max_in_flight: usize,
    pub(super) keep_history: Duration,
    /// The database in use (a reload cannot move it).
    pub(super) database: PathBuf,
    /// The exporter's address (a reload cannot move it).
    pub(super) http_listen: Option<std::net::SocketAddr>,
    /// Where alarms go (a reload cannot change it).
    pub(super) alerting: Option<config::Alerting>,
    /// Who may use the HTTP listener (a reload cannot change it).
    pub(super) http_access: config::Access,
    /// `/probe`'s modules (a reload replaces them).
    pub(super) modules: prober::Modules,
    /// `[[maintenance]]` windows (a reload replaces them), and word to the
    /// silencer to look again.
    pub(super) windows: Windows,
    pub(super) poke: Arc<Notify>,
    /// The Alertmanager senders, and what stops them.
    senders: Vec<JoinHandle<()>>,
    stop_senders: CancellationToken,
    pub(super) running: HashMap<String, Running>,
    /// Alarms raised per target over the whole history.
    raised: HashMap<String, u64>,
    /// This watcher's hold on its database.
    lock: store::Lock,
}

impl Watcher {
    fn new(
        args: &WatchArgs,
        config: &Config,
        store: Store,
        (output, registry): (Arc<Output>, Arc<Registry>),
        (alerts, silences): (Option<Arc<Alerts>>, Arc<Board>),
        raised: HashMap<String, u64>,
        lock: store::Lock,
    ) -> Watcher {
        let actions = Actions::new(store.clone(), output.clone(), registry.clone());
        let stop_senders = CancellationToken::new();
        let senders = alerts
            .iter()
            .flat_map(|a| a.spawn(output.clone(), stop_senders.clone()))
            .collect();
        Watcher {
            path: args.config.clone(),
            stats_every: args.stats,
            shared: Arc::new(Shared::new(
                Publisher {
                    store,
                    output,
                    registry,
                    alerts,
                    actions,
                },
                silences,
                config.max_in_flight,
                args.log_checks,
            )),
            max_in_flight: config.max_in_flight,
            keep_history: config.keep_history,
            database: config.database.clone(),
            http_listen: config.http_listen,
            alerting: config.alerting.clone(),
            http_access: config.http_access.clone(),
            modules: prober::Modules::default(),
            windows: Windows::default(),
            poke: Arc::new(Notify::new()),
            senders,
            stop_senders,
            running: HashMap::new(),
            raised,
            lock,
        }
    }

    /// Starts every target of the first config; alarms left open by an
    /// earlier run stay raised (and flapping ones flapping), or are closed
    /// as `removed` when their target is gone.
    async fn start(&mut self, config: Config, restored: store::Restored) {
        let store::Restored {
            open_alarms: open,
            flapping,
            ..
        } = restored;
        let names: HashSet<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        let mut gone: Vec<&String> = open
            .keys()
            .filter(|name| !names.contains(name.as_str()))
            .collect();
        gone.sort();
        let shared = &self.shared;
        join_all(gone.into_iter().map(|name| {
            let why = "not in the config any more; its open alarm is closed";
            shared.events.publish(removed(name, "", "", why), None)
        }))
        .await;
        let now = SystemTime::now();
        let (count, database) = (config.targets.len(), config.database.display().to_string());
        for target in config.targets {
            let opened = open.get(&target.name);
            // An alarm whose raise a silence holds is not sent until
            // released.
            let sent = opened.filter(|o| o.held.is_none());
            if let (Some(o), Some(alerts)) = (sent, &self.shared.events.alerts) {
                alerts.raised(&Raised {
                    target: &target.name,
                    kind: target.kind.as_str(),
                    addr: &target.addr,
                    class: o.class.as_deref(),
                    reason: o.reason.as_deref(),
                    detail: &o.detail,
                    at: o.since,
                    reminder: None,
                });
            }
            let mut alarm = Alarm::new(opened.map(|o| o.since));
            if flapping.contains(&target.name) && target.flap.is_some() {
                alarm = alarm.still_flapping(now);
            }
            let held = opened.and_then(|o| o.held);
            self.launch(Arc::new(target), alarm, held);
        }
        self.publish();
        // Said once every target runs.
        self.shared.events.output.notice(Notice::Started {
            targets: count,
            database,
            max_in_flight: self.max_in_flight,
        });
    }

    /// Starts one target's task.
    /// `held`: what holds its raise, if anything (the alarm is raised).
    pub(super) fn launch(&mut self, target: Arc<Target>, alarm: Alarm, held: Option<Hold>) {
        let (alarm_raised, alarm_since) = (alarm.raised, alarm.since);
        let status = Arc::new(Status {
            name: target.name.clone(),
            kind: target.kind.as_str(),
            addr: target.addr.clone(),
            parents: target.depends_on.clone(),
            row: std::sync::Mutex::new(Row {
                alarm,
                last: None,
                alarms: self.raised.get(&target.name).copied().unwrap_or(0),
                checks: [0; 4],
                hours: Default::default(),
                recent: Default::default(),
                marked: Default::default(),
                held,
                // An alarm open (and told) already: its next reminder is
                // the first one still ahead.
                remind: (alarm_raised && held.is_none()).then_some(Remind {
                    from: alarm_since,
                    next: 0,
                }),
                path: (target.vantage.as_ref())
                    .map(|v| Box::new(crate::vantage::path::PathState::new(v.names.clone()))),
            }),
        });
        let resume = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(task::watch(
            self.shared.clone(),
            target.clone(),
            status.clone(),
            resume.clone(),
            stop.clone(),
        ));
        self.running.insert(
            target.name.clone(),
            Running {
                target,
                status,
                resume,
                stop,
                task,
            },
        );
    }

    /// Hands the current targets to the live view.
    pub(super) fn publish(&self) {
        let mut list: Vec<Arc<Status>> = self.running.values().map(|r| r.status.clone()).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        self.shared.events.registry.set_targets(list);
    }

    /// Serves signals, stats, pruning and the live view until stopped.
    async fn serve(&mut self, mut signals: Signals) {
        let live = self.shared.events.output.mode() == Mode::Live;
        let mut screen = live.then(Screen::enter);
        let tick = if live {
            Duration::from_secs(1)
        } else {
            self.stats_every.unwrap_or(Duration::from_secs(3600))
        };
        let mut stats_timer = tokio::time::interval_at(Instant::now() + tick, tick);
        let mut prune_timer = tokio::time::interval(PRUNE_EVERY);
        let mut database_timer = tokio::time::interval(CHECK_DATABASE_EVERY);
        let why = loop {
            tokio::select! {
                _ = signals.hup.recv() => {
                    // A reload of a big config takes a while; a stop
                    // does not wait for it.
                    tokio::select! {
                        _ = self.reload() => {}
                        why = signals.stop.recv() => break why,
                    }
                }
                why = signals.stop.recv() => break why,
                _ = stats_timer.tick() => {
                    let stats = self.stats();
                    self.shared.events.registry.set_stats(stats);
                    if live {
                        self.shared.events.output.notice(Notice::Stats(stats));
                        if let Some(s) = screen.as_mut() {
                            s.draw(&self.shared.events.output);
                        }
                    } else if self.stats_every.is_some() {
                        self.shared.events.output.notice(Notice::Stats(stats));
                    }
                }
                _ = database_timer.tick() => {
                    if let store::Found::Gone(what) = self.shared.events.store.check().await {
                        self.recreate(what).await;
                    }
                }
                _ = prune_timer.tick() => {
                    let before = SystemTime::now().checked_sub(self.keep_history).unwrap_or(SystemTime::UNIX_EPOCH);
                    self.shared.events.store.prune(before).await;
                }
            }
        };
        let last = self.stats();
        // No target starts an event from now on; one in the middle of an
        // event finishes recording it (bounded: a stop must not hang).
        self.shared.close(Duration::from_secs(1)).await;
        self.shared.events.actions.stop().await;
        self.shared.events.store.flush().await;
        // The last clears reach Alertmanager if it answers within the
        // senders' last try.
        self.stop_senders.cancel();
        let senders = std::mem::take(&mut self.senders);
        let _ = tokio::time::timeout(
            crate::alertmanager::FINAL_TRY + Duration::from_secs(1),
            join_all(senders),
        )
        .await;
        drop(screen);
        self.shared
            .events
            .output
            .notice(Notice::Stopping(why.into()));
        if live {
            // The live table is gone with the alternate screen: leave the
            // last lines behind.
            println!("{}", output::text(&Notice::Stats(last)));
        }
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

    /// The database was deleted or replaced under the watcher: it is
    /// created anew, with the alarms open now (and targets flapping now)
    /// written into it as `carried` (and `flapping`) events, so that a
    /// restart still knows them and raises nothing twice.
    async fn recreate(&mut self, what: String) {
        // The new database knows no target: uptime counts from the next
        // checks.
        for r in self.running.values() {
            r.status.row().marked = Default::default();
        }
        let carried: Vec<(Arc<Target>, Alarm)> = self
            .running
            .values()
            .map(|r| (r.target.clone(), r.status.row().alarm.clone()))
            .filter(|(_, a)| a.told_raised || a.flapping)
            .collect();
        let open = carried.iter().filter(|(_, a)| a.told_raised).count();
        self.shared.events.output.notice(Notice::Error(format!(
            "the history database {what}; it is created anew, with the {open} alarms open now carried over"
        )));
        match store::lock(&self.database) {
            Ok(lock) => self.lock = lock,
            Err(e) => self
                .shared
                .events
                .output
                .notice(Notice::Error(e.to_string())),
        }
        if let Err(e) = self.shared.events.store.reopen().await {
            self.shared.events.output.notice(Notice::Error(format!(
                "cannot create the history database anew: {e}; trying again in {}s",
                CHECK_DATABASE_EVERY.as_secs()
            )));
            return;
        }
        let shared = &self.shared;
        let events = carried.iter().flat_map(|(t, a)| {
            let base = EventRecord {
                time: a.since,
                target: t.name.clone(),
                kind: t.kind.as_str(),
                addr: t.addr.clone(),
                event: Event::Carried,
                class: None,
                reason: None,
                detail: "open when the history database was created anew".into(),
                rtt: None,
                count: 0,
                silence: None,
                held: false,
                remind_alert: false,
            };
            let flapping = EventRecord {
                time: a.flapping_since,
                event: Event::Flapping,
                detail: "flapping when the history database was created anew".into(),
                ..base.clone()
            };
            [
                a.told_raised.then_some(base),
                a.flapping.then_some(flapping),
            ]
            .into_iter()
            .flatten()
        });
        join_all(events.map(|e| shared.events.publish(e, None))).await;
    }
}

/// The event that closes a removed target's history.
pub(super) fn removed(name: &str, kind: &'static str, addr: &str, detail: &str) -> EventRecord {
    EventRecord {
        time: SystemTime::now(),
        target: name.to_string(),
        kind,
        addr: addr.to_string(),
        event: Event::Removed,
        class: None,
        reason: None,
        detail: detail.into(),
        rtt: None,
        count: 0,
        silence: None,
        held: false,
        remind_alert: false,
    }
}
