//! The watcher's one writer of history: a thread of its own, fed by a
//! bounded queue, writing in batches so no check ever waits on the disk.
//!
//! It also keeps an eye on the database itself. Every [`Store::check`]
//! (the watcher asks every 10 s) it looks whether the file at the path is
//! still the one it opened (not deleted, not replaced) and writes a
//! heartbeat row, so a database that cannot be written (disk full, a
//! read-only remount) is noticed even when nothing happens. Write failures
//! are told as [`Health::Failing`] at once and then at most once a minute,
//! and [`Health::Recovered`] once, when what waited is written.
//!
//! Nothing is lost while the database cannot be written: the events and
//! actions that could not be are kept in order (at most [`MAX_BACKLOG`]
//! events; past that the oldest give way, and that is told), and written
//! first, in that order, when a write succeeds again: tried at the next
//! event (at most once per [`RETRY_EVERY`]) or the next check. An event
//! kept so has a provisional id below zero until then (what `event` gives
//! back, and its action's `event_id`); its action is linked to its real
//! id when written.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot};

use super::{
    insert_action, insert_event, insert_observed, ms, open, prune, ActionRecord, EventRecord,
    StoreError,
};

/// Most operations queued for the writer thread; senders wait beyond it.
const QUEUE: usize = 4096;

/// Most rows written in one transaction.
const BATCH: usize = 1024;

/// How often a write failure that goes on is told again.
const RETELL: Duration = Duration::from_secs(60);

/// Events kept, with their actions, while the database cannot be written.
pub(crate) const MAX_BACKLOG: usize = 10_000;

/// While events wait, how often a new one tries to write them.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Provisional ids remembered once their events are written, for the
/// actions still to come (an action ends within its `action_timeout`).
const MAX_PROVISIONAL: usize = 2 * MAX_BACKLOG;

/// What the writer tells about the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    /// Writes fail: events are printed, acted on and kept to be written.
    Failing(String),
    /// Writes succeed again: `written` events that waited were written,
    /// and `lost` gave way to newer ones while the backlog was full.
    Recovered { written: usize, lost: u64 },
}

/// A row that waits for the database.
enum Queued {
    /// An event, with its provisional id.
    Event(EventRecord, i64),
    Action(ActionRecord),
    Observed(String, SystemTime, bool),
}

/// What [`Store::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// The file is the one opened, and a heartbeat could be written.
    Fine,
    /// The file is the one opened, but cannot be written.
    Unwritable,
    /// The path holds no file, or another file than the one opened.
    Gone(String),
}

enum Op {
    Event(EventRecord, oneshot::Sender<Option<i64>>),
    Action(ActionRecord),
    /// A target checked (first in this run), or passing (first in it).
    Observed(String, SystemTime, bool),
    Prune(SystemTime),
    Flush(oneshot::Sender<()>),
    Check(oneshot::Sender<Found>),
    Reopen(oneshot::Sender<Result<(), String>>),
}

/// The writer thread's queue.
#[derive(Clone)]
pub(crate) struct Store {
    tx: mpsc::Sender<Op>,
}

/// The file a connection was opened on: device and inode.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    path: PathBuf,
    opened: Option<(u64, u64)>,
    tell: Box<dyn Fn(Health) + Send>,
    /// Since when writes fail, and when that was last told.
    failing: Option<Instant>,
    told: Option<Instant>,
    /// What waits to be written, in order.
    backlog: VecDeque<Queued>,
    /// Events in `backlog`.
    backlog_events: usize,
    /// Events that gave way while the backlog was full, since the last
    /// recovery.
    lost: u64,
    /// Events written from the backlog since the last recovery.
    written_since: usize,
    /// The last provisional id given.
    provisional: i64,
    /// Provisional ids of written events, to their real ids (oldest first).
    linked: HashMap<i64, i64>,
    linked_order: VecDeque<i64>,
    /// No try at the backlog before this, but at a check.
    retry_at: Option<Instant>,
}

impl Writer {
    fn wrote(&mut self, result: Result<(), rusqlite::Error>) {
        match result {
            Ok(()) => {
                // Recovered only once nothing waits any more.
                if self.backlog.is_empty() && self.failing.take().is_some() {
                    self.told = None;
                    let lost = std::mem::take(&mut self.lost);
                    (self.tell)(Health::Recovered {
                        written: std::mem::take(&mut self.written_since),
                        lost,
                    });
                }
            }
            Err(e) => {
                self.failing.get_or_insert_with(Instant::now);
                let due = match self.told {
                    Some(t) => t.elapsed() >= RETELL,
                    None => true,
                };
                if due {
                    self.told = Some(Instant::now());
                    (self.tell)(Health::Failing(format!(
                        "cannot write the history to {}: {e}; {} events are kept to be written when it can be (at most {MAX_BACKLOG})",
                        self.path.display(),
                        self.backlog_events
                    )));
                }
            }
        }
    }

    /// Keeps `q` to be written later; the oldest event (with the actions
    /// queued before the next event) gives way past [`MAX_BACKLOG`].
    fn keep(&mut self, q: Queued) {
        if let Queued::Event(..) = q {
            self.backlog_events += 1;
        }
        self.backlog.push_back(q);
        while self.backlog_events > MAX_BACKLOG {
            if let Some(Queued::Event(..)) = self.backlog.pop_front() {
                self.backlog_events -= 1;
                self.lost += 1;
            }
        }
    }

    /// A provisional id for an event that waits.
    fn provisional(&mut self) -> i64 {
        self.provisional -= 1;
        self.provisional
    }

    /// Remembers that the event with provisional id `p` was written as `id`.
    fn link(&mut self, p: i64, id: i64) {
        self.linked.insert(p, id);
        self.linked_order.push_back(p);
        while self.linked_order.len() > MAX_PROVISIONAL {
            if let Some(old) = self.linked_order.pop_front() {
                self.linked.remove(&old);
            }
        }
    }

    fn check(&mut self) -> Found {
        if !self.backlog.is_empty() {
            // What waits first: a heartbeat may fit where events do not.
            self.retry_at = None;
            let result = write_batch(self, &mut Vec::new());
            let ok = result.is_ok() && self.backlog.is_empty();
            self.wrote(result);
            if !ok {
                return Found::Unwritable;
            }
        }
        let now = identity(&self.path);
        if now.is_none() || now != self.opened {
            let what = if now.is_none() {
                "was deleted"
            } else {
                "was replaced by another file"
            };
            return Found::Gone(format!("{} {what}", self.path.display()));
        }
        let beat = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO watcher (id, pid, seen_ms) VALUES (1, ?1, ?2)")
            .and_then(|mut s| s.execute(params![std::process::id(), ms(SystemTime::now())]))
            .map(|_| ());
        let ok = beat.is_ok();
        self.wrote(beat);
        if ok {
            Found::Fine
        } else {
            Found::Unwritable
        }
    }

    fn reopen(&mut self) -> Result<(), String> {
        let conn = open(&self.path).map_err(|e| e.to_string())?;
        self.conn = conn;
        self.opened = identity(&self.path);
        Ok(())
    }
}

impl Store {
    /// Starts the writer thread on `conn`, opened on `path`. `tell` hears
    /// when writes start failing (and every minute they go on failing) and
    /// when they succeed again; the watch goes on meanwhile.
    pub(crate) fn spawn(
        conn: Connection,
        path: &Path,
        tell: impl Fn(Health) + Send + 'static,
    ) -> std::io::Result<Store> {
        let (tx, mut rx) = mpsc::channel::<Op>(QUEUE);
        let mut writer = Writer {
            conn,
            path: path.to_path_buf(),
            opened: identity(path),
            tell: Box::new(tell),
            failing: None,
            told: None,
            backlog: VecDeque::new(),
            backlog_events: 0,
            lost: 0,
            written_since: 0,
            provisional: 0,
            linked: HashMap::new(),
            linked_order: VecDeque::new(),
            retry_at: None,
        };
        std::thread::Builder::new()
            .name("history".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                while let Some(op) = rx.blocking_recv() {
                    batch.push(op);
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    let result = write_batch(&mut writer, &mut batch);
                    writer.wrote(result);
                }
                // The watcher stops: one last try at what waits.
                if !writer.backlog.is_empty() {
                    writer.retry_at = None;
                    let result = write_batch(&mut writer, &mut Vec::new());
                    writer.wrote(result);
                }
                if writer.backlog_events > 0 {
                    (writer.tell)(Health::Failing(format!(
                        "{} events were never written: {} could not be written until the watcher stopped",
                        writer.backlog_events,
                        writer.path.display()
                    )));
                }
            })?;
        Ok(Store { tx })
    }

    /// Records an event; its id once written, or a provisional id below
    /// zero if it waits for the database (`None`: the writer is gone).
    pub(crate) async fn event(&self, e: EventRecord) -> Option<i64> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Op::Event(e, tx)).await.ok()?;
        rx.await.ok().flatten()
    }

    pub(crate) async fn action(&self, a: ActionRecord) {
        let _ = self.tx.send(Op::Action(a)).await;
    }

    /// `target` was checked at `at` (`ok`: and passed): the first check of
    /// a run, and its first pass, mark where its uptime is counted from.
    pub(crate) async fn observed(&self, target: &str, at: SystemTime, ok: bool) {
        let _ = self.tx.send(Op::Observed(target.to_string(), at, ok)).await;
    }

    pub(crate) async fn prune(&self, before: SystemTime) {
        let _ = self.tx.send(Op::Prune(before)).await;
    }

    /// Waits until everything queued before it is written.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Is the database still there, and writable?
    pub(crate) async fn check(&self) -> Found {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Check(tx)).await.is_err() {
            return Found::Fine;
        }
        rx.await.unwrap_or(Found::Fine)
    }

    /// Opens the database at its path anew (creating it), for what is
    /// written from now on.
    pub(crate) async fn reopen(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Reopen(tx))
            .await
            .map_err(|_| "the history writer is gone".to_string())?;
        rx.await
            .map_err(|_| "the history writer is gone".to_string())?
    }
}

/// Writes what waits, then `batch`, in one transaction; each event learns
/// its id (or a provisional one, if the transaction fails and it is kept).
/// Checks and reopenings are answered after it.
fn write_batch(writer: &mut Writer, batch: &mut Vec<Op>) -> Result<(), rusqlite::Error> {
    let mut flushed = Vec::new();
    let mut checks = Vec::new();
    let mut reopens = Vec::new();
    // The rows to write, in order: what waits, then what came.
    let mut rows: Vec<(Queued, Option<oneshot::Sender<Option<i64>>>)> =
        writer.backlog.drain(..).map(|q| (q, None)).collect();
    let waited = writer.backlog_events;
    writer.backlog_events = 0;
    let mut prunes = Vec::new();
    for op in batch.drain(..) {
        match op {
            Op::Event(e, reply) => rows.push((Queued::Event(e, 0), Some(reply))),
            Op::Action(a) => rows.push((Queued::Action(a), None)),
            Op::Observed(t, at, ok) => rows.push((Queued::Observed(t, at, ok), None)),
            Op::Prune(before) => prunes.push(before),
            Op::Flush(done) => flushed.push(done),
            Op::Check(reply) => checks.push(reply),
            Op::Reopen(reply) => reopens.push(reply),
        }
    }
    let now = Instant::now();
    let attempt = waited == 0 || writer.retry_at.is_none_or(|at| now >= at);
    let mut ids: Vec<i64> = Vec::new();
    // `None`: not tried (the backlog's next try is not due, and nothing
    // forces one); then everything waits.
    let committed = if rows.is_empty() && prunes.is_empty() {
        Some(Ok(()))
    } else if attempt || !prunes.is_empty() {
        Some((|| {
            let tx = writer.conn.unchecked_transaction()?;
            // Provisional ids written in this transaction, to link the
            // actions after them (`writer.linked` learns them only once
            // the transaction is committed).
            let mut here: HashMap<i64, i64> = HashMap::new();
            for (q, _) in &rows {
                match q {
                    Queued::Event(e, p) => {
                        let id = insert_event(&tx, e)?;
                        if *p != 0 {
                            here.insert(*p, id);
                        }
                        ids.push(id);
                    }
                    Queued::Action(a) if a.event_id < 0 => {
                        let real = here
                            .get(&a.event_id)
                            .or_else(|| writer.linked.get(&a.event_id))
                            .copied()
                            .unwrap_or(0);
                        insert_action(
                            &tx,
                            &ActionRecord {
                                event_id: real,
                                ..a.clone()
                            },
                        )?;
                    }
                    Queued::Action(a) => insert_action(&tx, a)?,
                    Queued::Observed(target, at, ok) => insert_observed(&tx, target, *at, *ok)?,
                }
            }
            for before in &prunes {
                if let Err(StoreError::Sql(err)) = prune(&tx, *before) {
                    return Err(err);
                }
            }
            tx.commit()
        })())
    } else {
        None
    };
    let result = match committed {
        Some(Ok(())) => {
            // Every row written: events learn their ids, provisional ones
            // are linked for the actions still to come.
            let mut real_ids = ids.into_iter();
            for (q, reply) in rows {
                if let Queued::Event(_, p) = q {
                    let id = real_ids.next().unwrap_or(0);
                    if p != 0 {
                        writer.link(p, id);
                        writer.written_since += 1;
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(Some(id));
                    }
                }
            }
            writer.retry_at = None;
            Ok(())
        }
        failed_or_not_tried => {
            // Nothing of it was written: all of it waits, in order, and a
            // new event learns its provisional id.
            for (q, reply) in rows {
                let q = match q {
                    Queued::Event(e, 0) => {
                        let p = writer.provisional();
                        if let Some(reply) = reply {
                            let _ = reply.send(Some(p));
                        }
                        Queued::Event(e, p)
                    }
                    q => q,
                };
                writer.keep(q);
            }
            match failed_or_not_tried {
                Some(Err(e)) => {
                    writer.retry_at = Some(now + RETRY_EVERY);
                    Err(e)
                }
                _ => Ok(()),
            }
        }
    };
    for done in flushed {
        let _ = done.send(());
    }
    for reply in reopens {
        let _ = reply.send(writer.reopen());
    }
    for reply in checks {
        let _ = reply.send(writer.check());
    }
    result
}
