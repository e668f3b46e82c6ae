//! The watcher's one writer of history: a thread of its own, fed by a
//! bounded queue, writing in batches so no check ever waits on the disk.
//!
//! It also keeps an eye on the database itself. Every [`Store::check`]
//! (the watcher asks every 10 s) it looks whether the file at the path is
//! still the one it opened (not deleted, not replaced) and writes a
//! heartbeat row, so a database that cannot be written (disk full, a
//! read-only remount) is noticed even when nothing happens. Write failures
//! are told as [`Health::Failing`] at once and then at most once a minute,
//! and [`Health::Recovered`] once writes succeed again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot};

use super::{insert_action, insert_event, ms, open, prune, ActionRecord, EventRecord, StoreError};

/// Most operations queued for the writer thread; senders wait beyond it.
const QUEUE: usize = 4096;

/// Most rows written in one transaction.
const BATCH: usize = 1024;

/// How often a write failure that goes on is told again.
const RETELL: Duration = Duration::from_secs(60);

/// What the writer tells about the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    /// Writes fail: events are printed and acted on, not recorded.
    Failing(String),
    /// Writes succeed again.
    Recovered,
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
}

impl Writer {
    fn wrote(&mut self, result: Result<(), rusqlite::Error>) {
        match result {
            Ok(()) => {
                if self.failing.take().is_some() {
                    self.told = None;
                    (self.tell)(Health::Recovered);
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
                        "cannot write the history to {}: {e}",
                        self.path.display()
                    )));
                }
            }
        }
    }

    fn check(&mut self) -> Found {
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
            })?;
        Ok(Store { tx })
    }

    /// Records an event; its id once written, `None` if writing failed.
    pub(crate) async fn event(&self, e: EventRecord) -> Option<i64> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Op::Event(e, tx)).await.ok()?;
        rx.await.ok().flatten()
    }

    pub(crate) async fn action(&self, a: ActionRecord) {
        let _ = self.tx.send(Op::Action(a)).await;
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

/// Writes `batch` in one transaction; each event learns its id. Checks and
/// reopenings are answered after it.
fn write_batch(writer: &mut Writer, batch: &mut Vec<Op>) -> Result<(), rusqlite::Error> {
    let mut ids = Vec::new();
    let mut flushed = Vec::new();
    let mut checks = Vec::new();
    let mut reopens = Vec::new();
    let mut result = Ok(());
    let tx = writer.conn.unchecked_transaction();
    for op in batch.drain(..) {
        match (op, &tx) {
            (Op::Event(e, reply), Ok(tx)) => match insert_event(tx, &e) {
                Ok(id) => ids.push((reply, Some(id))),
                Err(err) => {
                    ids.push((reply, None));
                    result = Err(err);
                }
            },
            (Op::Action(a), Ok(tx)) => {
                if let Err(err) = insert_action(tx, &a) {
                    result = Err(err);
                }
            }
            (Op::Prune(before), Ok(tx)) => {
                if let Err(StoreError::Sql(err)) = prune(tx, before) {
                    result = Err(err);
                }
            }
            // No transaction: nothing is written, every caller is answered.
            (Op::Event(_, reply), Err(_)) => ids.push((reply, None)),
            (Op::Action(_) | Op::Prune(_), Err(_)) => {}
            (Op::Flush(done), _) => flushed.push(done),
            (Op::Check(reply), _) => checks.push(reply),
            (Op::Reopen(reply), _) => reopens.push(reply),
        }
    }
    let committed = tx.and_then(|tx| tx.commit());
    for (reply, id) in ids {
        let _ = reply.send(id.filter(|_| committed.is_ok()));
    }
    for done in flushed {
        let _ = done.send(());
    }
    for reply in reopens {
        let _ = reply.send(writer.reopen());
    }
    for reply in checks {
        let _ = reply.send(writer.check());
    }
    committed.and(result)
}
