//! `[module.NAME]` tables: the checks `/probe?module=NAME` runs besides
//! the built-in `landmark`, `tcp`, `ping` and `tls`, as blackbox_exporter's
//! modules are. A module is a target's check keys without the address:
//! it is validated as a target would be (same keys, same rules, same
//! messages), with the address `/probe` is given put in at each probe.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::document::{self, Lines};
use super::validate::Validator;
use super::{Check, Common, ConfigError, Dur, Kind, RawTarget};

/// The modules every watcher has, one per check kind; a `[module.NAME]`
/// cannot take these.
pub(crate) const BUILT_IN: [&str; 4] = Kind::NAMES;
/// Most modules in one config.
const MAX_MODULES: usize = 1000;
/// A target's keys that are not its check's: a module cannot set them.
const TARGET_ONLY: [&str; 18] = [
    "name",
    "addr",
    "host",
    "interval",
    "jitter",
    "fall",
    "rise",
    "pause_after_errors",
    "on_raise",
    "on_clear",
    "action_timeout",
    "flap_changes",
    "flap_window",
    "depends_on",
    "remind_every",
    "max_reminders",
    "on_remind",
    "remind_alertmanager",
];

/// A validated module.
#[derive(Debug)]
pub(crate) struct Module {
    /// The check, made with a stand-in address that each probe replaces.
    pub check: Check,
    /// The longest a probe of it may take, if the module says; a probe
    /// also ends within what the scrape leaves it.
    pub timeout: Option<Duration>,
}

/// The `[module.NAME]` tables, taken out of `top`: each name, where it is,
/// and its table as read (`None`: its problems are reported already).
pub(super) fn take(
    top: &mut DeTable<'_>,
    lines: &Lines<'_>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(Spanned<String>, Option<RawTarget>)> {
    let Some(value) = top.remove("module") else {
        return Vec::new();
    };
    let span = value.span();
    let toml::de::DeValue::Table(table) = value.into_inner() else {
        errors.push(lines.error(span.start, "module must be tables: [module.NAME]"));
        return Vec::new();
    };
    let mut modules = Vec::with_capacity(table.len());
    for (name, value) in table {
        let name = Spanned::new(name.span(), name.into_inner().into_owned());
        let span = value.span();
        let raw = match value.into_inner() {
            toml::de::DeValue::Table(mut t) => {
                for key in TARGET_ONLY {
                    if let Some((at, _)) = t.remove_entry(key) {
                        let msg = format!("{key} is a target's key, not a module's");
                        errors.push(lines.error(at.span().start, msg));
                    }
                }
                // Read as a target's check keys: the name is the module's.
                let named = |s: &str| Spanned::new(name.span(), Cow::Owned(s.to_string()));
                t.insert(
                    named("name"),
                    Spanned::new(
                        name.span(),
                        DeValue::String(Cow::Owned(name.get_ref().clone())),
                    ),
                );
                document::read(Spanned::new(span, t), lines, errors)
            }
            other => {
                errors.push(lines.error(
                    span.start,
                    format!(
                        "module.{} must be a table, not a {}",
                        name.get_ref(),
                        other.type_str()
                    ),
                ));
                None
            }
        };
        modules.push((name, raw));
    }
    modules
}

/// Every module that keeps the rules, by name; the others' problems told
/// to `v`.
pub(super) fn validate(
    v: &mut Validator<'_>,
    modules: Vec<(Spanned<String>, Option<RawTarget>)>,
) -> BTreeMap<String, Module> {
    if let Some((name, _)) = modules.get(MAX_MODULES) {
        v.error(name.span(), format!("more than {MAX_MODULES} modules"));
    }
    let mut valid = BTreeMap::new();
    for (name, raw) in modules {
        let n = name.get_ref();
        let well_named = !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !well_named {
            v.error(
                name.span(),
                format!(
                    "module name {} must be 1 to 64 letters, digits, _ or -",
                    health_probe::text::quoted(n)
                ),
            );
            continue;
        }
        if BUILT_IN.contains(&n.as_str()) {
            v.error(
                name.span(),
                format!("module {n} is built in: give yours another name"),
            );
            continue;
        }
        let Some(raw) = raw else { continue };
        if let Some(m) = module(v, &name, raw) {
            valid.insert(name.into_inner(), m);
        }
    }
    valid
}

fn module(v: &mut Validator<'_>, name: &Spanned<String>, mut m: RawTarget) -> Option<Module> {
    let span: Range<usize> = name.span();
    // A stand-in address, replaced by the one each probe is given.
    let stand_in = |s: &str| Some(Spanned::new(span.clone(), s.to_string()));
    if m.kind.get_ref().0.takes_host() {
        m.host = stand_in("127.0.0.1");
    } else {
        m.addr = stand_in("127.0.0.1:1");
    }
    let timeout = m.timeout.as_ref().map(|t| t.get_ref().0);
    // The longest interval, so that no timeout is "longer than the
    // interval": a module has none.
    m.interval = Some(Spanned::new(span.clone(), Dur(Duration::from_secs(86_400))));
    let target = v.target(m, &Common::default(), span)?;
    Some(Module {
        check: target.check,
        timeout,
    })
}
