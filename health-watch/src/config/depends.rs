//! `depends_on`: the targets a target sits behind (a gateway, a switch,
//! the host of a service). Each must be another target of the config, at
//! most [`MAX_PARENTS`] of them, and no chain of them may come back to
//! where it started: a cycle would hold both sides' raises for ever.

use std::collections::HashMap;

use super::validate::Validator;
use super::Target;

/// Most targets one target depends on.
const MAX_PARENTS: usize = 16;

/// Checks every target's `depends_on`, each problem at its line.
pub(super) fn check(v: &mut Validator<'_>, targets: &[Target]) {
    let index: HashMap<&str, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut valid = vec![Vec::new(); targets.len()];
    for (i, t) in targets.iter().enumerate() {
        let Some(list) = &t.written.depends_on else {
            continue;
        };
        if list.get_ref().len() > MAX_PARENTS {
            v.error(
                list.span(),
                format!("depends_on names more than {MAX_PARENTS} targets"),
            );
        }
        for p in list.get_ref() {
            let name = p.get_ref();
            match index.get(name.as_str()) {
                None => v.error(
                    p.span(),
                    format!(
                        "depends_on: no target is named {}",
                        health_probe::text::quoted(name)
                    ),
                ),
                Some(&j) if j == i => {
                    v.error(p.span(), "depends_on: a target cannot depend on itself")
                }
                Some(&j) => valid[i].push(j),
            }
        }
    }
    // Depth-first, each target once: a target met again while its own
    // descent is under way closes a cycle.
    let mut state = vec![0u8; targets.len()]; // 0 new, 1 on the path, 2 done
    for start in 0..targets.len() {
        if state[start] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some((node, next)) = path.last().copied() {
            if let Some(&child) = valid[node].get(next) {
                path.last_mut().expect("not empty").1 += 1;
                match state[child] {
                    0 => {
                        state[child] = 1;
                        path.push((child, 0));
                    }
                    1 => {
                        let from = path.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let mut names: Vec<&str> = path[from..]
                            .iter()
                            .map(|(n, _)| targets[*n].name.as_str())
                            .collect();
                        names.push(&targets[child].name);
                        let span = targets[node]
                            .written
                            .depends_on
                            .as_ref()
                            .map(|d| d.span())
                            .unwrap_or_default();
                        v.error(
                            span,
                            format!("depends_on makes a cycle: {}", names.join(" -> ")),
                        );
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                path.pop();
            }
        }
    }
}
