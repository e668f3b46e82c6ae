//! `[module.NAME]` tables: the checks `/probe?module=NAME` runs besides
//! the built-in `landmark`, `tcp` and `ping`, as blackbox_exporter's
//! modules are. A module is a target's check keys without the address:
//! it is validated as a target would be (same keys, same rules, same
//! messages), with the address `/probe` is given put in at each probe.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;
use toml::Spanned;

use super::document::{self, Lines};
use super::validate::Validator;
use super::{Check, Common, ConfigError, Dur, Kind, RawTarget};

/// The modules every watcher has; a `[module.NAME]` cannot take these.
pub(crate) const BUILT_IN: [&str; 3] = ["landmark", "tcp", "ping"];
/// Most modules in one config.
const MAX_MODULES: usize = 1000;

/// One `[module.NAME]` table as written: a target's check keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModule {
    kind: Spanned<Kind>,
    family: Option<Spanned<String>>,
    expect: Option<Spanned<Vec<String>>>,
    component: Option<Spanned<String>>,
    send: Option<Spanned<String>>,
    expect_banner: Option<Spanned<String>>,
    expect_regex: Option<Spanned<String>>,
    warn: Option<Spanned<Dur>>,
    crit: Option<Spanned<Dur>>,
    count: Option<Spanned<u16>>,
    ping_interval: Option<Spanned<Dur>>,
    min_replies: Option<Spanned<u16>>,
    timeout: Option<Spanned<Dur>>,
}

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
) -> Vec<(Spanned<String>, Option<RawModule>)> {
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
            toml::de::DeValue::Table(t) => document::read(Spanned::new(span, t), lines, errors),
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

impl Validator<'_> {
    /// Every module that keeps the rules, by name.
    pub(super) fn modules(
        &mut self,
        modules: Vec<(Spanned<String>, Option<RawModule>)>,
    ) -> BTreeMap<String, Module> {
        if let Some((name, _)) = modules.get(MAX_MODULES) {
            self.error(name.span(), format!("more than {MAX_MODULES} modules"));
        }
        let mut valid = BTreeMap::new();
        for (name, raw) in modules {
            let n = name.get_ref();
            let well_named = !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !well_named {
                self.error(
                    name.span(),
                    format!(
                        "module name {} must be 1 to 64 letters, digits, _ or -",
                        health_probe::text::quoted(n)
                    ),
                );
                continue;
            }
            if BUILT_IN.contains(&n.as_str()) {
                self.error(
                    name.span(),
                    format!("module {n} is built in: give yours another name"),
                );
                continue;
            }
            let Some(raw) = raw else { continue };
            if let Some(m) = self.module(&name, raw) {
                valid.insert(name.into_inner(), m);
            }
        }
        valid
    }

    fn module(&mut self, name: &Spanned<String>, m: RawModule) -> Option<Module> {
        let span: Range<usize> = name.span();
        let stand_in = |s: &str| Some(Spanned::new(span.clone(), s.to_string()));
        let (addr, host) = match m.kind.get_ref() {
            Kind::Ping => (None, stand_in("127.0.0.1")),
            Kind::Landmark | Kind::Tcp => (stand_in("127.0.0.1:1"), None),
        };
        let timeout = m.timeout.as_ref().map(|t| t.get_ref().0);
        let target = RawTarget {
            name: name.clone(),
            kind: m.kind,
            addr,
            host,
            family: m.family,
            expect: m.expect,
            component: m.component,
            send: m.send,
            expect_banner: m.expect_banner,
            expect_regex: m.expect_regex,
            warn: m.warn,
            crit: m.crit,
            count: m.count,
            ping_interval: m.ping_interval,
            min_replies: m.min_replies,
            // The longest interval, so that no timeout is "longer than
            // the interval": a module has none.
            interval: Some(Spanned::new(span.clone(), Dur(Duration::from_secs(86_400)))),
            timeout: m.timeout,
            fall: None,
            rise: None,
            pause_after_errors: None,
            on_raise: None,
            on_clear: None,
            action_timeout: None,
            flap_changes: None,
            flap_window: None,
        };
        let target = self.target(target, &Common::default(), span)?;
        Some(Module {
            check: target.check,
            timeout,
        })
    }
}
