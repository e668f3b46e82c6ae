//! Actions: on raise and on clear, a target's configured command runs via
//! `/bin/sh -c`, with the event in `HEALTH_*` environment variables, under
//! `action_timeout`, and its outcome is recorded in the history.
//!
//! Never more than one action at a time per target: each target has one
//! slot and one runner. An event arriving while an action runs waits in
//! the slot; a newer event replaces a waiting one (the replaced action is
//! recorded as `superseded`), so a flapping target runs at most the action
//! in progress and the one for its latest state.
//!
//! When the watcher stops, an action that is running gets [`STOP_GRACE`]
//! to finish, then its process group is killed; it and any action still
//! waiting are recorded as `stopped`. No event is left without an outcome.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::event::ActionOutcome;
use crate::output::{Notice, Output};
use crate::registry::Registry;
use crate::store::{ActionRecord, EventRecord, Store};

/// Most bytes of an action's output (stdout and stderr together) kept in
/// the history.
pub(crate) const MAX_OUTPUT: usize = 4096;
/// Most bytes of one `HEALTH_*` value taken from the text behind it (before
/// escaping), so that no server-given detail can make `exec` fail with
/// "Argument list too long" (Linux allows 128 KiB per variable).
pub(crate) const MAX_ENV_VALUE: usize = 4096;
/// Pauses before each retry of an action that could not be started (no
/// process, descriptor or memory to start it with).
const SPAWN_RETRIES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(500)];
/// How long a running action may go on once the watcher is stopping
/// (systemd's unit gives the whole stop 10 s).
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// An action waiting to run.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub event_id: i64,
    pub event: EventRecord,
    pub command: String,
    pub timeout: Duration,
}

#[derive(Default)]
struct Slot {
    pending: Mutex<Option<Pending>>,
    wake: Notify,
}

/// The action slots of all targets.
pub(crate) struct Actions {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Every slot's runner, to wait for when stopping.
    runners: Mutex<Vec<JoinHandle<()>>>,
    /// Cancelled when the watcher stops.
    closing: CancellationToken,
    store: Store,
    output: Arc<Output>,
    /// Counts each action by its outcome.
    registry: Arc<Registry>,
}

impl Actions {
    pub(crate) fn new(store: Store, output: Arc<Output>, registry: Arc<Registry>) -> Arc<Actions> {
        Arc::new(Actions {
            slots: Mutex::new(HashMap::new()),
            runners: Mutex::new(Vec::new()),
            closing: CancellationToken::new(),
            store,
            output,
            registry,
        })
    }

    /// Queues `p` for its target, starting the target's runner on first
    /// use. A waiting action of the same target is superseded.
    pub(crate) fn submit(self: &Arc<Self>, p: Pending) {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            match slots.get(&p.event.target) {
                Some(slot) => slot.clone(),
                None => {
                    let slot = Arc::new(Slot::default());
                    slots.insert(p.event.target.clone(), slot.clone());
                    let me = self.clone();
                    let runner_slot = slot.clone();
                    let runner = tokio::spawn(async move { me.run_slot(runner_slot).await });
                    self.runners
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(runner);
                    slot
                }
            }
        };
        let replaced = slot
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(p);
        slot.wake.notify_one();
        if let Some(old) = replaced {
            let record = not_run(&old, ActionOutcome::Superseded, "");
            let me = self.clone();
            tokio::spawn(async move { me.finish(&old, record).await });
        }
    }

    /// One target's runner: one action at a time, until the watcher
    /// stops (a removed target's slot simply stays idle).
    async fn run_slot(self: Arc<Self>, slot: Arc<Slot>) {
        loop {
            let next = slot
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            match next {
                Some(p) if self.closing.is_cancelled() => {
                    let record = not_run(
                        &p,
                        ActionOutcome::Stopped,
                        "the watcher stopped before it ran",
                    );
                    self.finish(&p, record).await;
                }
                Some(p) => {
                    let record = run(&p, &self.closing).await;
                    self.finish(&p, record).await;
                }
                None if self.closing.is_cancelled() => return,
                None => {
                    tokio::select! {
                        _ = slot.wake.notified() => {}
                        _ = self.closing.cancelled() => {}
                    }
                }
            }
        }
    }

    /// The watcher is stopping: running actions get [`STOP_GRACE`], then
    /// everything left is recorded as `stopped`.
    pub(crate) async fn stop(&self) {
        self.closing.cancel();
        let runners = std::mem::take(&mut *self.runners.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = tokio::time::timeout(
            STOP_GRACE + Duration::from_secs(1),
            futures_util::future::join_all(runners),
        )
        .await;
    }

    async fn finish(&self, p: &Pending, record: ActionRecord) {
        self.registry.count_action(record.outcome);
        if record.outcome == ActionOutcome::SpawnError {
            self.output.notice(Notice::Error(format!(
                "the {} action of {} could not start: {}",
                p.event.event, p.event.target, record.output
            )));
        }
        self.output.notice(Notice::Action {
            event: p.event.clone(),
            record: record.clone(),
        });
        self.store.action(record).await;
    }
}

/// The environment an action sees. Text from the network or the config
/// (detail, target, address) is data: control characters (NUL among them,
/// which `exec` cannot pass) escaped as on a terminal, and cut at
/// [`MAX_ENV_VALUE`] bytes with the mark of [`health_probe::text`]. The history
/// keeps the text itself.
pub(crate) fn environment(p: &Pending) -> Vec<(&'static str, String)> {
    let e = &p.event;
    let value = |s: &str| health_probe::text::shown_within(s, MAX_ENV_VALUE).into_owned();
    let mut vars = vec![
        ("HEALTH_EVENT", e.event.to_string()),
        ("HEALTH_EVENT_ID", p.event_id.to_string()),
        ("HEALTH_TARGET", value(&e.target)),
        ("HEALTH_KIND", e.kind.to_string()),
        ("HEALTH_ADDR", value(&e.addr)),
        ("HEALTH_CLASS", e.class.unwrap_or("").to_string()),
        ("HEALTH_REASON", e.reason.unwrap_or("").to_string()),
        ("HEALTH_DETAIL", value(&e.detail)),
        (
            "HEALTH_TIME",
            humantime::format_rfc3339_millis(e.time).to_string(),
        ),
        ("HEALTH_COUNT", e.count.to_string()),
        (
            "HEALTH_RTT_MS",
            e.rtt
                .map(|d| format!("{:.3}", d.as_secs_f64() * 1000.0))
                .unwrap_or_default(),
        ),
    ];
    if e.event == crate::event::Event::Remind {
        vars.push(("HEALTH_REMINDER", e.count.to_string()));
    }
    vars
}

/// The record of an action that never started.
fn not_run(p: &Pending, outcome: ActionOutcome, why: &str) -> ActionRecord {
    ActionRecord {
        event_id: p.event_id,
        command: p.command.clone(),
        started: SystemTime::now(),
        duration: Duration::ZERO,
        outcome,
        exit_code: None,
        output: why.to_string(),
    }
}

/// Runs one action to its end or its timeout, or, once `closing`, to its
/// end within [`STOP_GRACE`].
async fn run(p: &Pending, closing: &CancellationToken) -> ActionRecord {
    let started = SystemTime::now();
    let clock = Instant::now();
    let record = |outcome, exit_code, output| ActionRecord {
        event_id: p.event_id,
        command: p.command.clone(),
        started,
        duration: clock.elapsed(),
        outcome,
        exit_code,
        output,
    };
    // A start that fails (EAGAIN, EMFILE, ENOMEM: a passing shortage) is
    // retried after each of SPAWN_RETRIES' pauses, then recorded.
    let mut spawned = spawn(p);
    for pause in SPAWN_RETRIES {
        if spawned.is_ok() {
            break;
        }
        tokio::time::sleep(pause).await;
        spawned = spawn(p);
    }
    let (mut file, mut child) = match spawned {
        Ok(x) => x,
        Err(e) => {
            return record(
                ActionOutcome::SpawnError,
                None,
                format!(
                    "cannot start /bin/sh ({} tries): {e}",
                    SPAWN_RETRIES.len() + 1
                ),
            )
        }
    };
    let deadline = tokio::time::Instant::now() + p.timeout;
    let ended = tokio::select! {
        s = tokio::time::timeout_at(deadline, child.wait()) => s.map_err(|_| ActionOutcome::Timeout),
        _ = closing.cancelled() => {
            let grace = deadline.min(tokio::time::Instant::now() + STOP_GRACE);
            tokio::time::timeout_at(grace, child.wait()).await.map_err(|_| ActionOutcome::Stopped)
        }
    };
    let status = match ended {
        Ok(status) => status,
        Err(outcome) => {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) with a negative pid signals a process
                // group; no memory is touched.
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
            }
            let _ = child.wait().await;
            let output = read_output(&mut file);
            return record(outcome, None, output);
        }
    };
    let output = read_output(&mut file);
    match status {
        Ok(s) if s.success() => record(ActionOutcome::Ok, Some(0), output),
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            let code = s.code().or_else(|| s.signal().map(|sig| 128 + sig));
            record(ActionOutcome::Failed, code, output)
        }
        Err(e) => record(ActionOutcome::Failed, None, e.to_string()),
    }
}

/// Starts the action's shell. Output goes to an unlinked file, not a pipe:
/// a command that starts a daemon (a restart) would otherwise leave the
/// daemon holding our pipe.
fn spawn(p: &Pending) -> std::io::Result<(std::fs::File, tokio::process::Child)> {
    let file = tempfile::tempfile()?;
    let stdout = file.try_clone()?;
    let stderr = file.try_clone()?;
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&p.command)
        .envs(environment(p))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own process group, so a timeout kills what it started.
        .process_group(0)
        .kill_on_drop(true);
    // The watcher's threads hold SIGHUP, SIGTERM and SIGINT (see
    // `signals`); the action, and a daemon it starts, must not.
    // SAFETY: the hook calls only async-signal-safe functions.
    unsafe {
        command.pre_exec(crate::signals::release_all_in_child);
    }
    Ok((file, command.spawn()?))
}

/// The first [`MAX_OUTPUT`] bytes of what the action wrote.
fn read_output(file: &mut std::fs::File) -> String {
    let mut buf = Vec::new();
    if file.rewind().is_ok() {
        let _ = file.take(MAX_OUTPUT as u64).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).trim_end().to_string()
}
