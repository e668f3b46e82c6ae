//! The watcher, behind the `health-probe-watch` binary that `health-probe
//! watch` and `health-probe report` exec: many targets checked at once in
//! one async process (the same checks as the one-shot probe, from the
//! `health-probe` crate), alarms raised and cleared with fall/rise
//! thresholds, recorded in SQLite, acted on, and shown live; `health-probe
//! report` exports the history. The async runtime, SQLite, TOML and the
//! terminal live here, not in the one-shot probe.
//!
//! Its public API is the entry points the binary calls, [`run`],
//! [`report`] and [`silence`]; the modules are the crate's own:
//!
//! - `config`: the TOML file and its validation.
//! - `check`: one check of one target (landmark, tcp, ping, tls).
//! - `alarm`: fall/rise/pause rules, pure state.
//! - `registry`: the state of every target and of the run, apart from
//!   how it is shown.
//! - `event`: the words of the history (`Event`, `ActionOutcome`).
//! - `publish`: where each recorded event goes, once.
//! - `store`: the history database.
//! - `action`: commands run on raise and clear.
//! - `alertmanager`: alarms as Alertmanager alerts (`alertmanager_url`).
//! - `output`: log lines, JSON events, the live table.
//! - `exporter`: `http_listen`'s routes (`/metrics`, `/probe`);
//!   `listener`: its connections (admission, deferred accept, deadlines);
//!   `access`: basic auth; `api`: `/api/v1/` (silences, targets, alarms).
//! - `page`: the status page on `http_listen`; `uptime`: what it shows of
//!   the last 24 hours and 10 days.
//! - `history`: `health-probe report` ([`report`]).
//! - `silence`: silences and `[[maintenance]]` windows; `silencer`: keeps
//!   the running watcher's board of them; `silence_cli`: `health-probe
//!   silence` ([`silence`]).
//! - `task`: one target's life; `stream`: a landmark target followed by
//!   a `watch` stream instead of polled.
//! - `signals`: SIGHUP, SIGTERM and SIGINT from the first instant.
//! - `watcher/`: start-up and the running watcher ([`run`]), and its
//!   `reload` on SIGHUP; `terminal`: the screen under the live table.
//!
//! Each target is one task (`task::watch`). SIGHUP reloads the config:
//! unchanged targets keep running with their state (and paused ones
//! resume), changed ones restart keeping whether their alarm is raised,
//! removed ones stop. A target is stopped between checks, never in the
//! middle of recording an event, and a reload does not hold up SIGTERM.

mod access;
mod action;
mod alarm;
mod alertmanager;
mod api;
mod check;
mod config;
mod error;
mod event;
mod exporter;
mod history;
mod hold;
mod http_client;
mod listener;
mod output;
mod page;
mod prober;
mod publish;
mod registry;
mod remind;
mod schedule;
mod signals;
mod silence;
mod silence_cli;
mod silencer;
mod store;
mod stream;
mod task;
mod terminal;
mod uptime;
mod vantage;
mod watcher;

pub use error::Error;
pub use history::run as report;
pub use silence_cli::run as silence;
pub use watcher::run;
