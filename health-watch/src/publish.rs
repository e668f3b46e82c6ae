//! Where a recorded event goes, once: [`Publisher::publish`] hands it to
//! the history (`store`), Alertmanager (`alertmanager`, for a raise, clear
//! or removal), what the watcher tells (`output`), the action it starts
//! (`action`), and the status page (through the registry's generation),
//! in that order. Every event of the watcher comes through here, whoever
//! made it: a target's task, a reload, a database created anew.

use std::sync::Arc;
use std::time::Duration;

use crate::action::{Actions, Pending};
use crate::alertmanager::{Alerts, Raised};
use crate::event::Event;
use crate::output::{Notice, Output};
use crate::registry::Registry;
use crate::store::{EventRecord, Store};

/// An action an event starts: `on_raise` or `on_clear`.
#[derive(Debug, Clone)]
pub(crate) struct Action {
    pub command: String,
    pub timeout: Duration,
}

/// The parts an event goes to.
pub(crate) struct Publisher {
    pub store: Store,
    pub output: Arc<Output>,
    pub registry: Arc<Registry>,
    pub alerts: Option<Arc<Alerts>>,
    pub actions: Arc<Actions>,
}

impl Publisher {
    /// Records `event`, then tells it and starts `action`; its id
    /// (provisional, below zero, while the event waits for the database)
    /// links the action.
    pub(crate) async fn publish(&self, event: EventRecord, action: Option<Action>) -> Option<i64> {
        let id = self.store.event(event.clone()).await;
        if let Some(alerts) = &self.alerts {
            match event.event {
                Event::Raise => alerts.raised(&Raised {
                    target: &event.target,
                    kind: event.kind,
                    addr: &event.addr,
                    class: event.class,
                    reason: event.reason,
                    detail: &event.detail,
                    at: event.time,
                }),
                Event::Clear | Event::Removed => alerts.cleared(&event.target, event.time),
                _ => {}
            }
        }
        // A provisional id (the event waits for the database) is no row of
        // the history yet: told without one; its action still links by it.
        self.output.notice(Notice::Event {
            id: id.filter(|id| *id > 0),
            event: event.clone(),
        });
        if let Some(action) = action {
            self.actions.submit(Pending {
                event_id: id.unwrap_or(0),
                event,
                command: action.command,
                timeout: action.timeout,
            });
        }
        self.registry.changed();
        id
    }
}
