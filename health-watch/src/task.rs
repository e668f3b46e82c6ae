//! One target's life: wait for its tick, take one of `max_in_flight`
//! permits, check, judge, record, act; paused until resumed.
//!
//! A target is stopped (reload, removal) through its [`CancellationToken`],
//! never aborted: a stop is only heard while the task waits (for its tick,
//! a permit, a check's answer or a resume). From the moment a check's
//! result is in until its events are recorded, printed and their actions
//! handed over, nothing interrupts it, so a reload never leaves an event
//! without its notice or its action.
//!
//! When the watcher stops, it does not wake 100,000 idle tasks to stop
//! them one by one: it closes ([`Shared::close`]), which waits only for the
//! tasks in the middle of an event, and no task starts a new one.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::alarm::{Thresholds, Transition};
use crate::check::{self, Observation};
use crate::config::Target;
use crate::event::Event;
use crate::hold;
use crate::output::Notice;
use crate::publish::{Action, Publisher};
use crate::registry::Remind;
use crate::registry::{Row, Status, CLASSES};
use crate::remind;
use crate::schedule::Schedule;
use crate::silence::Board;
use crate::store::EventRecord;
use crate::stream::{Budget, Follow, Next, Room};
use crate::vantage::path::{PathChange, PointState};
use crate::vantage::{self, Vote};

/// Checks, failures, lag: shared by every target task.
#[derive(Default)]
pub(crate) struct Counters {
    pub checks: AtomicU64,
    pub failed: AtomicU64,
    pub in_flight: AtomicUsize,
    pub max_lag_us: AtomicU64,
}

/// What every target task shares.
pub(crate) struct Shared {
    /// Where events go, and the parts they go to.
    pub events: Publisher,
    /// The silences in force or to come.
    pub silences: Arc<Board>,
    pub limit: Arc<Semaphore>,
    /// How many streams may be open at once.
    pub streams: Budget,
    pub counters: Counters,
    pub log_checks: bool,
    /// Set when the watcher stops: no task starts an event after it.
    pub closing: AtomicBool,
    /// Tasks in the middle of an event, and word when one is done.
    pub judging: AtomicUsize,
    pub judged: Notify,
}

impl Shared {
    pub(crate) fn new(
        events: Publisher,
        silences: Arc<Board>,
        max_in_flight: usize,
        log_checks: bool,
    ) -> Shared {
        Shared {
            events,
            silences,
            limit: Arc::new(Semaphore::new(max_in_flight)),
            streams: Budget::new(max_in_flight),
            counters: Counters::default(),
            log_checks,
            closing: AtomicBool::new(false),
            judging: AtomicUsize::new(0),
            judged: Notify::new(),
        }
    }

    /// Stops every target: none starts an event from now on, and those in
    /// the middle of one finish it (waited for, at most `within`).
    pub(crate) async fn close(&self, within: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(within, async {
            loop {
                let done = self.judged.notified();
                if self.judging.load(Ordering::SeqCst) == 0 {
                    return;
                }
                done.await;
            }
        })
        .await;
    }
}

/// One task in the middle of an event, counted out when dropped; `None`
/// once the watcher is closing.
struct Judging<'a>(&'a Shared);

impl<'a> Judging<'a> {
    fn enter(shared: &'a Shared) -> Option<Judging<'a>> {
        // Counted in before looking at `closing`, so that `close` either
        // sees this task or this task sees `closing`.
        shared.judging.fetch_add(1, Ordering::SeqCst);
        let me = Judging(shared);
        (!shared.closing.load(Ordering::SeqCst)).then_some(me)
    }
}

impl Drop for Judging<'_> {
    fn drop(&mut self) {
        self.0.judging.fetch_sub(1, Ordering::SeqCst);
        self.0.judged.notify_waiters();
    }
}

/// Runs `target` until `stop` is cancelled.
pub(crate) async fn watch(
    shared: Arc<Shared>,
    target: Arc<Target>,
    status: Arc<Status>,
    resume: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut schedule = Schedule::new(&target.name, target.interval, target.jitter, Instant::now());
    let mut next = schedule.first();
    // Rounds from vantage points, for `source_mode = "alternate"`.
    let mut turn = 0usize;
    // A streaming landmark target's stream (`stream = true`).
    let mut follow = target.stream.then(Follow::default);
    loop {
        // What a held raise or a reminder waits for, made (on the heap)
        // only while there is one: 100,000 idle tasks carry none of it.
        let held = status
            .row()
            .held
            .is_some()
            .then(|| Box::pin(hold::until_due(&shared.silences, &target.name, &status)));
        let reminder = remind::waiting(&target, &status);
        let (observation, vote) = tokio::select! {
            _ = stop.cancelled() => return,
            _ = or_never(held) => {
                let Some(_judging) = Judging::enter(&shared) else {
                    return;
                };
                hold::release(&shared.silences, &shared.events, &target, &status).await;
                continue;
            }
            _ = or_never(reminder) => {
                let Some(_judging) = Judging::enter(&shared) else {
                    return;
                };
                remind::fire(&shared.events, &target, &status).await;
                continue;
            }
            o = observe(&shared, &target, &status, next, &mut turn, &mut follow) => match o {
                Some(o) => o,
                None => return,
            },
        };
        // From here to the end of `judge`, a stop waits. Boxed, as the
        // check is: its state is only needed while it runs.
        let Some(judging) = Judging::enter(&shared) else {
            return;
        };
        let paused = Box::pin(judge(&shared, &target, &status, &observation)).await;
        if let Some(vote) = vote {
            vantage_round(&shared, &target, &status, &observation, &vote).await;
        }
        drop(judging);
        if paused {
            if let Some(f) = follow.as_mut() {
                f.close();
            }
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = resume.notified() => break,
                    _ = Box::pin(hold::until_due(&shared.silences, &target.name, &status)) => {
                        let Some(_judging) = Judging::enter(&shared) else {
                            return;
                        };
                        hold::release(&shared.silences, &shared.events, &target, &status).await;
                    }
                }
            }
            let Some(_judging) = Judging::enter(&shared) else {
                return;
            };
            status.row().alarm.resume();
            let mut event = event_of(&target, Transition::Pause, &observation, 0);
            event.event = Event::Resume;
            event.class = None;
            event.reason = None;
            event.detail = "config reloaded".into();
            event.rtt = None;
            event.time = SystemTime::now();
            event.silence = None;
            shared.events.publish(event, None).await;
            next = Instant::now();
            schedule.out_of_turn(next);
            continue;
        }
        // Its next slot; a check held up past it runs at once, and the one
        // after is of the target's own phase again.
        next = schedule.next(Instant::now());
    }
}

/// Whether one of the target's vantage points failed at its last check.
fn failing(status: &Status) -> bool {
    let row = status.row();
    (row.path.as_ref()).is_some_and(|p| p.points.contains(&PointState::Failed))
}

/// Waits for `f`; for ever without one.
async fn or_never<F: std::future::Future<Output = ()>>(f: Option<std::pin::Pin<Box<F>>>) {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// The target's next observation: the next frame of its stream when it
/// streams (see [`crate::stream`]), else a check at `next`.
async fn observe(
    shared: &Shared,
    target: &Target,
    status: &Status,
    next: Instant,
    turn: &mut usize,
    follow: &mut Option<Follow>,
) -> Option<(Observation, Option<Box<Vote>>)> {
    if let Some(f) = follow.as_mut() {
        let raised = status.row().alarm.raised;
        let room = Room {
            limit: &shared.limit,
            budget: &shared.streams,
            output: &shared.events.output,
        };
        match f.next(room, target, next, raised).await {
            Next::Observed(observation) => {
                counted(&shared.counters, &observation);
                return Some((observation, None));
            }
            Next::Closing => return None,
            Next::Poll => {}
        }
    }
    check_on_time(shared, target, next, turn, failing(status)).await
}

fn counted(c: &Counters, observation: &Observation) {
    c.checks.fetch_add(1, Ordering::Relaxed);
    if observation.failed() {
        c.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits for the tick at `next` and a permit, then checks (from each
/// vantage point, with their vote, for a target that has them); `None`
/// once the watcher is closing (the permits are gone).
async fn check_on_time(
    shared: &Shared,
    target: &Target,
    next: Instant,
    turn: &mut usize,
    failing: bool,
) -> Option<(Observation, Option<Box<Vote>>)> {
    tokio::time::sleep_until(next).await;
    let permit = shared.limit.acquire().await.ok()?;
    let lag = Instant::now().saturating_duration_since(next);
    let c = &shared.counters;
    c.max_lag_us
        .fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
    let in_flight = InFlight::enter(&c.in_flight);
    // Boxed: a check's state (its socket, buffers, resolver) takes memory
    // only while it runs, at most `max_in_flight` of them, rather than in
    // each of 100,000 idle targets' tasks.
    let (observation, vote) = match &target.vantage {
        None => (
            Box::pin(check::observe(&target.check)).await.observation,
            None,
        ),
        Some(v) => {
            let checked = vantage::Checked {
                kind: target.kind,
                addr: &target.addr,
                timeout: target.timeout,
            };
            let vote = Box::pin(vantage::round(checked, v, turn, failing)).await;
            (vote.observation(v), Some(Box::new(vote)))
        }
    };
    drop((permit, in_flight));
    counted(c, &observation);
    Some((observation, vote))
}

/// One check counted in `in_flight`, counted out when dropped, also when
/// a stop drops the check half-way.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes in one observation: alarm rules, then each event recorded,
/// printed and its action handed over. True if the target is now paused.
async fn judge(
    shared: &Arc<Shared>,
    target: &Target,
    status: &Status,
    observation: &Observation,
) -> bool {
    if shared.log_checks {
        shared.events.output.notice(Notice::Check {
            target: target.name.clone(),
            kind: target.kind.as_str(),
            addr: target.addr.clone(),
            observation: observation.clone(),
        });
    }
    let thresholds = Thresholds {
        fall: target.fall,
        rise: target.rise,
        // A target with vantage points is never paused: an ERR is its
        // points' own (a source, a carrier), and the vote must go on.
        pause_after_errors: match target.vantage {
            Some(_) => 0,
            None => target.pause_after_errors,
        },
        flap: target.flap,
    };
    let (changes, alarm, mark) = {
        let mut row = status.row();
        let shown = |row: &Row| {
            let last = row.last.as_ref().map(|o| (o.failed(), o.class, o.reason));
            (last, row.alarm.raised, row.alarm.paused, row.alarm.flapping)
        };
        let before = shown(&row);
        let changes = row.alarm.observe(observation, &thresholds);
        if changes.contains(&Transition::Raise) {
            row.alarms += 1;
        }
        row.last = Some(observation.clone());
        row.hours.record(observation);
        row.recent.record(observation);
        if shown(&row) != before {
            shared.events.registry.changed();
        }
        let class = observation.class.as_str();
        if let Some(i) = CLASSES.iter().position(|c| *c == class) {
            row.checks[i] += 1;
        }
        // Where uptime counts from: the first check, and the first pass.
        let passed = !observation.failed();
        let mark = !row.marked.checked || (passed && !row.marked.passed);
        row.marked.checked = true;
        row.marked.passed |= passed;
        (changes, row.alarm.clone(), mark.then_some(passed))
    };
    if let Some(passed) = mark {
        shared
            .events
            .store
            .observed(&target.name, observation.at, passed)
            .await;
    }
    for change in &changes {
        let mut event = event_of(target, *change, observation, alarm.run_length(*change));
        if let (Some(flap), Transition::Flapping | Transition::FlappingStopped) =
            (target.flap, change)
        {
            event.count = alarm.changes_within(flap.window, observation.at);
            let window = humantime::format_duration(flap.window);
            event.detail = if *change == Transition::Flapping {
                format!(
                    "{} raises and clears within {window}: actions held until it is stable; last check: {}",
                    event.count, event.detail
                )
            } else {
                let stands = if alarm.raised { "raised" } else { "clear" };
                format!(
                    "{} raises and clears within the last {window}; the alarm stands {stands}",
                    event.count
                )
            };
        }
        let command = match change {
            Transition::Raise => target.on_raise.as_ref(),
            Transition::Clear => target.on_clear.as_ref(),
            Transition::Pause | Transition::Flapping | Transition::FlappingStopped => None,
        };
        let mut action = command.map(|command| Action {
            command: command.clone(),
            timeout: target.action_timeout,
        });
        // A raise while silenced, or while a target it depends on is
        // raised, is held: recorded and shown, but its action and alert
        // wait for its release. The clear of a held raise has no action
        // either: none ran for the raise.
        match change {
            Transition::Raise => {
                let hold = hold::holding(
                    &shared.silences,
                    &shared.events.registry,
                    target,
                    observation.at,
                );
                let mut row = status.row();
                row.held = hold.as_ref().map(|h| h.hold);
                // Reminders count from a raise that is told.
                row.remind = hold.is_none().then_some(Remind {
                    from: observation.at,
                    next: 1,
                });
                drop(row);
                if let Some(h) = hold {
                    h.mark(&mut event);
                    action = None;
                }
            }
            Transition::Clear => {
                status.row().remind = None;
                if let Some(h) = status.row().held.take() {
                    event.held = true;
                    event.silence = h.silence();
                    action = None;
                }
            }
            _ => {}
        }
        shared.events.publish(event, action).await;
    }
    changes.contains(&Transition::Pause)
}

/// Takes in one round's vote of a target with vantage points: each
/// point's standing, and its path fault told (`path`, `path-cleared`)
/// with `on_path`.
async fn vantage_round(
    shared: &Shared,
    target: &Target,
    status: &Status,
    observation: &Observation,
    vote: &Vote,
) {
    let change = {
        let mut row = status.row();
        let Some(path) = row.path.as_mut() else {
            return;
        };
        let before = (path.points.clone(), path.raised());
        let flap = target.flap.map(|f| (f.changes, f.window));
        let change = path.observe(vote, target.fall, target.rise, flap);
        if (path.points.clone(), path.raised()) != before {
            shared.events.registry.changed();
        }
        change
    };
    let Some(change) = change else {
        return;
    };
    let mut event = event_of(target, Transition::Raise, observation, 0);
    event.event = match change {
        PathChange::Raise => Event::Path,
        PathChange::Clear => Event::PathCleared,
    };
    event.class = Some(crate::event::PATH);
    event.reason = None;
    event.detail = match (change, &target.vantage) {
        (PathChange::Raise, Some(v)) => format!(
            "path fault from {}: {}",
            vote.failing_names(&v.names).join(", "),
            observation.detail
        ),
        _ => format!(
            "no path fault {} rounds in a row: {}",
            target.rise, observation.detail
        ),
    };
    let action = (target.vantage.as_ref())
        .and_then(|v| v.on_path.clone())
        .map(|command| Action {
            command,
            timeout: target.action_timeout,
        });
    shared.events.publish(event, action).await;
}

fn event_of(target: &Target, change: Transition, o: &Observation, count: u32) -> EventRecord {
    EventRecord {
        time: o.at,
        target: target.name.clone(),
        kind: target.kind.as_str(),
        addr: target.addr.clone(),
        event: Event::from(change),
        class: Some(o.class.as_str()),
        reason: o.reason,
        detail: o.detail.clone(),
        rtt: o.rtt,
        count,
        silence: None,
        held: false,
        remind_alert: false,
    }
}
