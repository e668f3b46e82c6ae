//! Reminders (`remind_every`, `max_reminders`, `on_remind`): an alarm
//! still raised `remind_every` after it was told (raised, or released
//! from a hold) is told again as a `remind` event, which runs `on_remind`
//! with the reminder's number in `HEALTH_REMINDER`, and, with
//! `remind_alertmanager`, sends the alert again with its `reminder` label
//! moved on, which Alertmanager notifies as a new alert. Then again each
//! `remind_every`, at most `max_reminders` times.
//!
//! Held or flapping alarms are not reminded of (nothing was told, or
//! their actions are held); a reminder is due on the clock from when the
//! alarm was told, so the checks' rhythm does not move it. The target's
//! own task waits for what [`waiting`] gives and fires here ([`fire`]).

use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::config::Target;
use crate::event::Event;
use crate::publish::{Action, Publisher};
use crate::registry::Status;
use crate::store::EventRecord;

/// When `target`'s next reminder is due, if one is: the alarm raised,
/// told, not flapping, and reminders left.
fn next_due(target: &Target, status: &Status, now: SystemTime) -> Option<SystemTime> {
    let every = target.remind.every?;
    let mut row = status.row();
    if !row.alarm.raised || row.held.is_some() || row.alarm.flapping {
        return None;
    }
    let r = row.remind.as_mut()?;
    if r.next == 0 {
        // The first one still ahead.
        let gone = now.duration_since(r.from).unwrap_or_default();
        r.next = (gone.as_nanos() / every.as_nanos()) as u32 + 1;
    }
    if target.remind.max.is_some_and(|max| r.next > max) {
        return None;
    }
    r.from.checked_add(every.checked_mul(r.next)?)
}

/// The wait for `target`'s next reminder, if one is due: made again at
/// each check, it waits for the same moment on the clock.
pub(crate) fn waiting(target: &Target, status: &Status) -> Option<Pin<Box<tokio::time::Sleep>>> {
    let now = SystemTime::now();
    let at = next_due(target, status, now)?;
    let left = at.duration_since(now).unwrap_or(Duration::ZERO);
    Some(Box::pin(tokio::time::sleep(left)))
}

/// Tells the reminder due now, if it still is: a `remind` event with its
/// number, `on_remind`, and the alert's new `reminder` label if asked.
pub(crate) async fn fire(events: &Publisher, target: &Target, status: &Status) {
    let now = SystemTime::now();
    let Some(due) = next_due(target, status, now).filter(|at| *at <= now) else {
        return;
    };
    let (n, last, since) = {
        let mut row = status.row();
        let Some(r) = row.remind.as_mut() else {
            return;
        };
        let n = r.next;
        r.next += 1;
        (n, row.last.clone(), row.alarm.since)
    };
    let raised = humantime::format_rfc3339_seconds(since);
    let of = target
        .remind
        .max
        .map_or_else(String::new, |max| format!(" of {max}"));
    let standing = humantime::format_duration(Duration::from_secs(
        due.duration_since(since).unwrap_or_default().as_secs(),
    ));
    let detail = match &last {
        Some(o) => format!(
            "reminder {n}{of}: raised at {raised}, still raised after {standing}: {}",
            o.detail
        ),
        None => format!("reminder {n}{of}: raised at {raised}, still raised after {standing}"),
    };
    let event = EventRecord {
        time: now,
        target: target.name.clone(),
        kind: target.kind.as_str(),
        addr: target.addr.clone(),
        event: Event::Remind,
        class: last.as_ref().map(|o| o.class.as_str()),
        reason: last.as_ref().and_then(|o| o.reason),
        detail,
        rtt: None,
        count: n,
        silence: None,
        held: false,
        remind_alert: target.remind.alertmanager,
    };
    let action = target.remind.command.as_ref().map(|command| Action {
        command: command.clone(),
        timeout: target.action_timeout,
    });
    events.publish(event, action).await;
}
