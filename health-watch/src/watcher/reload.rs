//! SIGHUP: the config read again and applied by target name, keeping what
//! did not change (see docs/WATCH.md, "Signals and reload").

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::join_all;
use health_probe::text::shown;

use crate::alarm::Alarm;
use crate::config;
use crate::output::{Mode, Notice};

use super::{removed, Running, Stopped, Watcher};

impl Watcher {
    /// SIGHUP: reads the config again (off the runtime's threads). An
    /// invalid config changes nothing.
    pub(super) async fn reload(&mut self) {
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&path)).await;
        let mut config = match loaded {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return self.reload_failed(e.to_string()),
            Err(e) => return self.reload_failed(e.to_string()),
        };
        self.resize(config.max_in_flight);
        if config.database != self.database {
            self.shared.events.output.notice(Notice::Warning(format!(
                "database changed to {}: history stays in {} until a restart",
                config.database.display(),
                self.database.display()
            )));
        }
        if config.http_listen != self.http_listen {
            let on = |a: Option<std::net::SocketAddr>| {
                a.map_or_else(|| "off".to_string(), |a| format!("on {a}"))
            };
            self.shared.events.output.notice(Notice::Warning(format!(
                "http_listen changed (now {}): the exporter stays {} until a restart",
                on(config.http_listen),
                on(self.http_listen)
            )));
        }
        if config.http_access != self.http_access {
            self.shared.events.output.notice(Notice::Warning(
                "http_allow, http_user or http_password_file changed: the listener keeps its access until a restart".into(),
            ));
        }
        if config.alerting != self.alerting {
            self.shared.events.output.notice(Notice::Warning(
                "alertmanager_url, alertmanager_resend or alertmanager_labels changed: alarms go where they went until a restart".into(),
            ));
        }
        *self.modules.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(std::mem::take(&mut config.modules));
        self.keep_history = config.keep_history;
        *self.windows.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(std::mem::take(&mut config.maintenance));
        self.poke.notify_one();
        let (mut kept, mut resumed) = (0, 0);
        let mut seen = HashSet::with_capacity(config.targets.len());
        let mut changed = Vec::new();
        let mut added = Vec::new();
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
                Some(_) => changed.push(target),
                None => added.push(target),
            }
        }
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        // Stop the changed and the removed ones all at once, then wait for
        // them: each ends at its next wait, with its events recorded.
        let stopping: Vec<Running> = changed
            .iter()
            .map(|t| &t.name)
            .chain(&gone)
            .filter_map(|name| self.running.remove(name))
            .collect();
        let stopped: HashMap<String, Stopped> = join_all(stopping.into_iter().map(Running::stop))
            .await
            .into_iter()
            .map(|r| (r.target.name.clone(), r))
            .collect();
        let (n_changed, n_added) = (changed.len(), added.len());
        for target in changed {
            // Whether it is raised, and whether a silence holds that raise,
            // carry over.
            let (alarm, held) = match stopped.get(&target.name) {
                Some(old) => {
                    let row = old.status.row();
                    (row.alarm.carried(), row.held)
                }
                None => (Alarm::new(None), None),
            };
            self.launch(Arc::new(target), alarm, held);
        }
        for target in added {
            self.launch(Arc::new(target), Alarm::new(None), None);
        }
        let shared = &self.shared;
        join_all(gone.iter().filter_map(|name| stopped.get(name)).map(|r| {
            let t = &r.target;
            let event = removed(&t.name, t.kind.as_str(), &t.addr, "removed from the config");
            shared.events.publish(event, None)
        }))
        .await;
        self.publish();
        self.shared.events.output.notice(Notice::Reloaded {
            kept,
            added: n_added,
            changed: n_changed,
            removed: gone.len(),
            resumed,
        });
    }

    fn reload_failed(&self, message: String) {
        let msg = message.replace('\n', "; ");
        // On a terminal the live table shows it; a line on stderr would
        // tear the screen.
        if self.shared.events.output.mode() != Mode::Live {
            eprintln!("health-probe: reload failed: {}", shown(&msg));
        }
        self.shared.events.output.notice(Notice::ReloadFailed(msg));
    }

    /// A new `max_in_flight`: permits added at once, or taken back as
    /// they come home.
    fn resize(&mut self, max_in_flight: usize) {
        let limit = &self.shared.limit;
        if max_in_flight > self.max_in_flight {
            limit.add_permits(max_in_flight - self.max_in_flight);
        } else if max_in_flight < self.max_in_flight {
            let take = self.max_in_flight - max_in_flight;
            let taken = limit.forget_permits(take);
            if taken < take {
                let limit = limit.clone();
                tokio::spawn(async move {
                    if let Ok(p) = limit.acquire_many((take - taken) as u32).await {
                        p.forget();
                    }
                });
            }
        }
        self.max_in_flight = max_in_flight;
    }
}
