//! Where a recorded event goes, once: [`Publisher::publish`] hands it to
//! the history (`store`), Alertmanager (`alertmanager`, for a raise, clear
//! or removal), what the watcher tells (`output`), the action it starts
//! (`action`), and the status page (through the registry's generation),
//! in that order. A held raise (a silence or a raised parent holds it)
//! goes to the history, the output and the page, not to Alertmanager nor
//! to an action (`task` gives it none): those follow when it is
//! `released`. Every event of the watcher comes through here, whoever
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
            // A held raise (a silence, a raised parent) is sent when it
            // is released; the clear of a held raise has nothing to resolve.
            let held = event.held;
            let fires = match event.event {
                Event::Raise => !held,
                Event::Released => true,
                Event::Remind => event.remind_alert,
                _ => false,
            };
            match event.event {
                _ if fires => alerts.raised(&Raised {
                    target: &event.target,
                    kind: event.kind,
                    addr: &event.addr,
                    class: event.class,
                    reason: event.reason,
                    detail: &event.detail,
                    // A reminder's alert is the alarm's, from its raise.
                    at: match event.event {
                        Event::Remind => self
                            .registry
                            .find(&event.target)
                            .map_or(event.time, |s| s.row().alarm.since),
                        _ => event.time,
                    },
                    reminder: (event.event == Event::Remind).then_some(event.count),
                }),
                Event::Clear if !held => alerts.cleared(&event.target, event.time),
                Event::Removed => alerts.cleared(&event.target, event.time),
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
