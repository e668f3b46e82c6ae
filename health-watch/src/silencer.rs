//! Keeps the running watcher's [`Board`] of silences true: once a second,
//! and at once when poked (`POST`/`DELETE /api/v1/silences`), it records
//! the silence of each `[[maintenance]]` window that has opened, then reads
//! the silences in force or to come from the database. So a silence added
//! or removed by `health-probe silence` from another process is heard
//! within a second, and one made through the API at once.
//!
//! The database is read on a connection of its own, opened for each look
//! (a recreated database is simply the new file), never created here.
//! While it cannot be read, the board keeps what it had, and the windows
//! in force still hold their targets' raises.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::output::{Notice, Output};
use crate::silence::{Board, Origin, Silence, Window, MAX_ACTIVE};
use crate::store::{self, silences};

/// How often the database is looked at.
pub(crate) const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The config's windows; a reload replaces them.
pub(crate) type Windows = Arc<RwLock<Arc<Vec<Window>>>>;

/// What the keeper needs.
pub(crate) struct Silencer {
    pub board: Arc<Board>,
    pub database: PathBuf,
    pub windows: Windows,
    /// A silence was added or removed here: look now.
    pub poke: Arc<Notify>,
    /// Where a silence coming into force or ending is told.
    pub output: Arc<Output>,
    /// The silences told in force, by what names one.
    pub told: Vec<Silence>,
}

impl Silencer {
    /// Looks once now (so the first checks already know the silences),
    /// then keeps looking until `stop`.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        loop {
            self.look().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = self.poke.notified() => {}
            }
        }
    }

    /// One look: windows opened recorded, the board set.
    pub(crate) async fn look(&mut self) {
        let now = SystemTime::now();
        let windows = self
            .windows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let opened = opened(&windows, now);
        let database = self.database.clone();
        let written = opened.clone();
        // Recorded first, then read back with the rest in the same look.
        let read = tokio::task::spawn_blocking(move || {
            let conn = Connection::open_with_flags(
                &database,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(2))?;
            for s in &written {
                silences::insert_window(&conn, s)?;
            }
            silences::active(&conn, now, MAX_ACTIVE)
        })
        .await;
        let list = match read {
            // The database is the record: a window's opening that was
            // removed (`silence remove`) stays removed.
            Ok(Ok(list)) => list,
            // Not readable now: what the board has, and the windows open
            // now that it lacks, which still hold.
            _ => {
                let mut list = self.board.list();
                for s in opened {
                    let known = list.iter().any(|k| {
                        k.origin == s.origin && k.from == s.from && k.matcher == s.matcher
                    });
                    if !known {
                        list.push(s);
                    }
                }
                list
            }
        };
        self.board.set(list, now);
        self.tell(now);
    }

    /// Tells each silence that came into force, and each told before that
    /// is not in force any more (ended, removed, cut short).
    fn tell(&mut self, now: SystemTime) {
        let same = |a: &Silence, b: &Silence| {
            (a.id, &a.origin, a.from, &a.matcher) == (b.id, &b.origin, b.from, &b.matcher)
        };
        let in_force: Vec<Silence> = self
            .board
            .list()
            .into_iter()
            .filter(|s| s.in_force(now))
            .collect();
        for s in std::mem::take(&mut self.told) {
            if in_force.iter().any(|n| same(n, &s)) {
                self.told.push(s);
            } else {
                self.output.notice(Notice::Silence {
                    silence: s,
                    in_force: false,
                });
            }
        }
        for s in in_force {
            if !self.told.iter().any(|t| same(t, &s)) {
                self.output.notice(Notice::Silence {
                    silence: s.clone(),
                    in_force: true,
                });
                self.told.push(s);
            }
        }
    }
}

/// The silences of the windows open at `now`: one per matcher, from the
/// opening (to the millisecond the database keeps) for the duration.
fn opened(windows: &[Window], now: SystemTime) -> Vec<Silence> {
    let mut out = Vec::new();
    for w in windows {
        let Some((from, until)) = w.current(now) else {
            continue;
        };
        let (from, until) = (store::round_ms(from), store::round_ms(until));
        for matcher in &w.targets {
            out.push(Silence {
                id: 0,
                matcher: matcher.clone(),
                from,
                until,
                reason: w.reason.clone(),
                author: "config".into(),
                origin: Origin::Window(w.name.clone()),
                created: from,
            });
        }
    }
    out
}
