//! Held raises: a raise while a silence covers the target, or while a
//! target it `depends_on` is raised (class `unreachable`), is recorded and
//! shown but runs no `on_raise` and sends no alert. It fires (`released`)
//! as soon as nothing holds it any more and the alarm still stands; a
//! clear first ends it quietly.
//!
//! The target's own task asks here at each raise ([`holding`]), waits here
//! while its alarm is held ([`until_due`]) and releases here
//! ([`release`]), so a target's events stay in order.

use std::time::{Duration, SystemTime};

use crate::config::Target;
use crate::event::{Event, Hold, UNREACHABLE};
use crate::publish::{Action, Publisher};
use crate::registry::{Registry, Status};
use crate::silence::Board;
use crate::store::EventRecord;

/// How often a raise held behind a raised parent looks again.
const PARENT_LOOK: Duration = Duration::from_secs(1);

/// What holds a raise now, and why, for its event.
pub(crate) struct Holding {
    pub hold: Hold,
    /// The raised target it depends on, if that is why.
    parent: Option<String>,
    /// The silence covering it, if any.
    silence: Option<i64>,
}

impl Holding {
    /// Marks the raise's event held: class `unreachable` behind a raised
    /// parent (its detail says which), and the silence's id.
    pub(crate) fn mark(&self, event: &mut EventRecord) {
        event.held = true;
        event.silence = self.silence;
        if let Some(parent) = &self.parent {
            event.class = Some(UNREACHABLE);
            event.detail = format!("{parent}, which it depends on, is raised: {}", event.detail);
        }
    }
}

/// What holds a raise of `target` at `at`: a raised parent first, else a
/// silence in force.
pub(crate) fn holding(
    silences: &Board,
    registry: &Registry,
    target: &Target,
    at: SystemTime,
) -> Option<Holding> {
    let parent = registry.raised_parent(&target.depends_on);
    let silence = silences.covering(&target.name, at).map(|c| c.id);
    let hold = match (&parent, silence) {
        (Some(_), _) => Hold::Unreachable,
        (None, Some(id)) => Hold::Silence(id),
        (None, None) => return None,
    };
    Some(Holding {
        hold,
        parent,
        silence,
    })
}

/// Returns when what holds `status`'s raise may have let go: a silence's
/// end or a change of the silences, or a second gone by behind a raised
/// parent. Never while nothing is held.
pub(crate) async fn until_due(silences: &Board, name: &str, status: &Status) {
    let held = status.row().held;
    match held {
        // Only this task's own events set it: nothing to wait for.
        None => std::future::pending().await,
        // To the next whole second of the clock, not a second from now:
        // the task drops this wait at each of its checks and makes it
        // again, which must not push the look back each time.
        Some(Hold::Unreachable) => {
            let since_epoch = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let step = PARENT_LOOK.as_nanos();
            let left = step - since_epoch.as_nanos() % step;
            tokio::time::sleep(Duration::from_nanos(left as u64)).await
        }
        Some(Hold::Silence(_)) => {
            let mut changes = silences.changes();
            loop {
                let now = SystemTime::now();
                let Some(cover) = silences.covering(name, now) else {
                    return;
                };
                let left = cover.until.duration_since(now).unwrap_or_default();
                tokio::select! {
                    _ = tokio::time::sleep(left) => {}
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return std::future::pending().await;
                        }
                    }
                }
            }
        }
    }
}

/// Fires a held raise (`released`: its `on_raise` runs and its alert is
/// sent) if the alarm still stands and nothing holds it now; else keeps
/// it held by what holds it now.
pub(crate) async fn release(
    silences: &Board,
    events: &Publisher,
    target: &Target,
    status: &Status,
) {
    let now = SystemTime::now();
    // Looked up before the row is locked: no two rows are ever locked at
    // once.
    let still = holding(silences, &events.registry, target, now).map(|h| h.hold);
    let (held, last, count, since) = {
        let mut row = status.row();
        let Some(held) = row.held else {
            return;
        };
        if !row.alarm.raised {
            row.held = None;
            return;
        }
        if still.is_some() {
            row.held = still;
            return;
        }
        row.held = None;
        // Told now: reminders count from here.
        row.remind = Some(crate::registry::Remind { from: now, next: 1 });
        (held, row.last.clone(), row.alarm.fails, row.alarm.since)
    };
    let raised = humantime::format_rfc3339_seconds(since);
    let why = match held {
        Hold::Silence(id) => format!("raised at {raised} while silenced (silence {id})"),
        Hold::Unreachable => format!("raised at {raised} while a target it depends on was"),
    };
    let detail = match &last {
        Some(o) => format!("{why}; nothing holds it now and it stands: {}", o.detail),
        None => format!("{why}; nothing holds it now"),
    };
    let event = EventRecord {
        time: now,
        target: target.name.clone(),
        kind: target.kind.as_str(),
        addr: target.addr.clone(),
        event: Event::Released,
        class: last.as_ref().map(|o| o.class.as_str()),
        reason: last.as_ref().and_then(|o| o.reason),
        detail,
        rtt: None,
        count,
        silence: held.silence(),
        held: false,
        remind_alert: false,
    };
    let action = target.on_raise.as_ref().map(|command| Action {
        command: command.clone(),
        timeout: target.action_timeout,
    });
    events.publish(event, action).await;
}
