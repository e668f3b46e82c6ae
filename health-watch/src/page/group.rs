//! The order of the status page's list: by state (alarms first), then
//! name; and a target that depends on a raised target is listed under it
//! (under the topmost raised one of a chain), so one outage behind a
//! gateway reads as one group, not a page of alarms.

use std::collections::HashMap;
use std::sync::Arc;

use super::render::Shown;
use super::shown;
use crate::registry::Status;

/// Deepest chain of raised parents followed (`depends_on` has no cycles;
/// this bounds the walk all the same).
const MAX_DEPTH: usize = 16;

/// The state and name of the group's head (the topmost raised parent, or
/// the target itself), its depth under it, then its own state and name.
type SortKey<'a> = (Shown, &'a str, usize, Shown, &'a str);

/// One target's place in the list.
pub(crate) struct Placed<'a> {
    pub status: &'a Arc<Status>,
    pub state: Shown,
    /// The raised target it is listed under.
    pub under: Option<String>,
}

/// The targets `keep` lets through, in the page's order.
pub(crate) fn order<'a>(all: &'a [Arc<Status>], keep: impl Fn(&Status) -> bool) -> Vec<Placed<'a>> {
    // Each row is locked once, for its state.
    let states: HashMap<&str, Shown> = all
        .iter()
        .map(|s| (s.name.as_str(), shown(&s.row())))
        .collect();
    let by_name: HashMap<&str, &Arc<Status>> = all.iter().map(|s| (s.name.as_str(), s)).collect();
    let raised_parent = |s: &Status| -> Option<&'a Arc<Status>> {
        s.parents
            .iter()
            .filter(|p| states.get(p.as_str()) == Some(&Shown::Alarm))
            .find_map(|p| by_name.get(p.as_str()).copied())
    };
    let mut placed: Vec<(SortKey<'a>, Placed<'a>)> = all
        .iter()
        .filter(|s| keep(s))
        .map(|s| {
            let state = states[s.name.as_str()];
            let under = raised_parent(s);
            let (mut root, mut depth) = (s, 0);
            while let Some(p) = raised_parent(root).filter(|_| depth < MAX_DEPTH) {
                root = p;
                depth += 1;
            }
            let key = (
                states[root.name.as_str()],
                root.name.as_str(),
                depth,
                state,
                s.name.as_str(),
            );
            let place = Placed {
                status: s,
                state,
                under: under.map(|p| p.name.clone()),
            };
            (key, place)
        })
        .collect();
    placed.sort_by(|a, b| a.0.cmp(&b.0));
    placed.into_iter().map(|(_, p)| p).collect()
}
