//! The recorder: what to collect ([`Config`], set on the server's
//! builder), the task that takes a snapshot every period into the bounded
//! history, and the thresholds that flag the landmark when crossed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use health_proto::{Component, Landmark, State};
use tokio_util::sync::CancellationToken;

use super::history::{per_state, present, History, PerState, Snapshot};
use super::{collect, Connection, TcpState};
use crate::AllowList;

/// Name of the landmark component the recorder adds.
pub const COMPONENT: &str = "connections";

/// Default time between snapshots.
pub(crate) const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
/// Default number of snapshots kept.
pub(crate) const DEFAULT_KEEP: usize = 360;
/// Default age beyond which snapshots are dropped.
pub(crate) const DEFAULT_KEEP_FOR: Duration = Duration::from_secs(3600);
/// Default most connections kept per snapshot.
pub(crate) const DEFAULT_MAX_PER_SNAPSHOT: usize = 10_000;
/// Default IPv4 prefix for grouping clients by subnet.
pub(crate) const DEFAULT_SUBNET_PREFIX: u8 = 24;

/// What the connection report collects and keeps, and its thresholds.
///
/// Memory is bounded by `keep × max_per_snapshot` connections of 92 bytes
/// each (on 64-bit Linux): with the defaults (360 snapshots of at most
/// 10,000), 331 MB at worst; a service with 500 clients keeps 17 MB for an
/// hour of 10-second snapshots. Lower `max_per_snapshot` or `keep` to bound
/// it further.
///
/// ```no_run
/// use std::time::Duration;
/// use health_server::{connections, State, TcpState};
///
/// let (asks, state_rx) = health_server::channel();
/// let server = health_server::Builder::new()
///     .connections(
///         connections::Config::new()
///             .port(7000, "epg")
///             .period(Duration::from_secs(10))
///             .keep(360, Duration::from_secs(3600))
///             .state_over(TcpState::CloseWait, 200)
///             .client_over(1000)
///             .degrade_to(State::Degraded),
///     )
///     .spawn(state_rx)?;
/// # drop(asks); drop(server);
/// # Ok::<(), health_server::ServerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) ports: Vec<(u16, String)>,
    pub(crate) period: Duration,
    pub(crate) keep: usize,
    pub(crate) keep_for: Duration,
    pub(crate) max_per_snapshot: usize,
    pub(crate) subnet_prefix: u8,
    pub(crate) thresholds: Thresholds,
    pub(crate) readers: AllowList,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            ports: Vec::new(),
            period: DEFAULT_PERIOD,
            keep: DEFAULT_KEEP,
            keep_for: DEFAULT_KEEP_FOR,
            max_per_snapshot: DEFAULT_MAX_PER_SNAPSHOT,
            subnet_prefix: DEFAULT_SUBNET_PREFIX,
            thresholds: Thresholds::default(),
            readers: AllowList::loopback(),
        }
    }
}

impl Config {
    /// No ports yet, and the documented defaults.
    pub fn new() -> Config {
        Config::default()
    }

    /// Collects the connections of local port `port`, reported under
    /// `service` (at least one port is needed; a port given twice keeps
    /// the last name).
    pub fn port(mut self, port: u16, service: impl Into<String>) -> Config {
        self.ports.retain(|(p, _)| *p != port);
        self.ports.push((port, service.into()));
        self
    }

    /// Who may read the connection reports (`connections` requests):
    /// by default only this host ([`AllowList::loopback`]), since a
    /// report names the service's clients. Others are answered error 9,
    /// `not_allowed`; landmark checks are not affected. For a remote
    /// `health-probe connections`, allow the operators' networks:
    /// `AllowList::only(["10.0.0.0/8".parse()?])`, or
    /// [`AllowList::everyone`].
    pub fn readers(mut self, readers: AllowList) -> Config {
        self.readers = readers;
        self
    }

    /// Time between snapshots (default 10 s, at least 10 ms).
    pub fn period(mut self, d: Duration) -> Config {
        self.period = d.max(Duration::from_millis(10));
        self
    }

    /// Keeps at most `count` snapshots (at least 1; default 360) and none
    /// older than `age` (default 1 h).
    pub fn keep(mut self, count: usize, age: Duration) -> Config {
        self.keep = count.max(1);
        self.keep_for = age;
        self
    }

    /// Most connections kept per snapshot (default 10,000). Beyond it a
    /// snapshot keeps the first ones and is marked capped.
    pub fn max_per_snapshot(mut self, n: usize) -> Config {
        self.max_per_snapshot = n;
        self
    }

    /// IPv4 prefix length for grouping clients by subnet (default 24, at
    /// most 32; IPv6 clients use this plus 32).
    pub fn subnet_prefix(mut self, prefix: u8) -> Config {
        self.subnet_prefix = prefix.min(32);
        self
    }

    /// Flags the landmark while more than `n` connections are in `state`
    /// (for example CLOSE_WAIT: the service is not closing its sockets;
    /// SYN_RECV: a SYN flood or a full accept queue).
    pub fn state_over(mut self, state: TcpState, n: u32) -> Config {
        self.thresholds.states.retain(|(s, _)| *s != state);
        self.thresholds.states.push((state, n));
        self
    }

    /// Flags the landmark while one client address holds more than `n`
    /// connections.
    pub fn client_over(mut self, n: u32) -> Config {
        self.thresholds.per_client = Some(n);
        self
    }

    /// While a threshold is crossed, the landmark's state is at least
    /// `state` (off by default: the flag is only the `connections`
    /// component). The worse state wins, as with drain.
    pub fn degrade_to(mut self, state: State) -> Config {
        self.thresholds.degrade_to = Some(state);
        self
    }
}

/// The anomaly thresholds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Thresholds {
    states: Vec<(TcpState, u32)>,
    per_client: Option<u32>,
    degrade_to: Option<State>,
}

impl Thresholds {
    /// What is over its threshold in `connections` (counted per state in
    /// `counts`), worst first within each kind; empty when nothing is.
    fn crossed(&self, connections: &[Connection], counts: &PerState) -> Vec<String> {
        let mut out = Vec::new();
        for (state, limit) in &self.states {
            let n = counts[state.index()];
            if n > *limit {
                out.push(format!("{n} {state} (over {limit})"));
            }
        }
        if let Some(limit) = self.per_client {
            let mut per_client: HashMap<IpAddr, u32> = HashMap::new();
            for c in connections.iter().filter(|c| c.state != TcpState::Listen) {
                *per_client.entry(c.remote.ip()).or_default() += 1;
            }
            let mut over: Vec<(IpAddr, u32)> =
                per_client.into_iter().filter(|(_, n)| *n > limit).collect();
            over.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            if let Some((ip, n)) = over.first() {
                let more = match over.len() - 1 {
                    0 => String::new(),
                    k => format!(" and {k} more clients"),
                };
                out.push(format!(
                    "client {ip} has {n} connections (over {limit}){more}"
                ));
            }
        }
        out
    }
}

/// What the last snapshot said, for the landmark.
#[derive(Debug, Clone)]
enum Status {
    /// No snapshot taken yet.
    Starting,
    /// Counts per state; nothing over a threshold.
    Normal(String),
    /// Over a threshold: what.
    Crossed(String),
    /// The kernel could not be read.
    Failed(String),
}

/// The running recorder: the history and the last status.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) cfg: Config,
    ports: Vec<u16>,
    services: Arc<HashMap<u16, String>>,
    history: Mutex<History>,
    status: Mutex<Status>,
    /// While draining: the latest count of clients still established,
    /// and when it was taken (one count at a time, shared by all asking).
    drain_count: tokio::sync::Mutex<Option<(std::time::Instant, u32)>>,
}

/// How old a count of the clients still established may be while
/// draining: a deploy script waiting for zero hears of it within this.
pub(crate) const DRAIN_FRESH: Duration = Duration::from_secs(1);

impl Recorder {
    pub(crate) fn new(cfg: Config) -> Recorder {
        Recorder {
            ports: cfg.ports.iter().map(|(p, _)| *p).collect(),
            services: Arc::new(cfg.ports.iter().cloned().collect()),
            history: Mutex::new(History::new(cfg.keep, cfg.keep_for)),
            status: Mutex::new(Status::Starting),
            drain_count: tokio::sync::Mutex::new(None),
            cfg,
        }
    }

    /// Takes a snapshot every period (the server took the first one at
    /// start), until `token` is cancelled. The dump is blocking netlink
    /// I/O, so it runs on the blocking pool.
    pub(crate) async fn run(self: Arc<Self>, token: CancellationToken) {
        let period = self.cfg.period;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            let me = Arc::clone(&self);
            if tokio::task::spawn_blocking(move || me.record())
                .await
                .is_err()
            {
                break;
            }
        }
    }

    /// The clients ESTABLISHED on the service's ports, counted within the
    /// last [`DRAIN_FRESH`] (read from the kernel now, once for everyone
    /// asking, when the count is older): what a draining landmark carries.
    /// `None` when the kernel cannot be read.
    pub(crate) async fn established(self: &Arc<Self>) -> Option<u32> {
        let mut last = self.drain_count.lock().await;
        if let Some((at, n)) = *last {
            if at.elapsed() < DRAIN_FRESH {
                return Some(n);
            }
        }
        let me = Arc::clone(self);
        let counted = tokio::task::spawn_blocking(move || {
            collect(&me.ports, &[TcpState::Established], me.cfg.max_per_snapshot)
                .ok()
                .map(|c| u32::try_from(c.connections.len()).unwrap_or(u32::MAX))
        })
        .await
        .ok()
        .flatten()?;
        *last = Some((std::time::Instant::now(), counted));
        Some(counted)
    }

    /// One snapshot: collect, judge against the thresholds, keep.
    pub(crate) fn record(&self) {
        let taken = SystemTime::now();
        let collected = match collect(&self.ports, &TcpState::ALL, self.cfg.max_per_snapshot) {
            Ok(c) => c,
            Err(e) => {
                let was_failing = matches!(
                    self.set_status(Status::Failed(e.to_string())),
                    Status::Failed(_)
                );
                if !was_failing {
                    tracing::error!(error = %e, "cannot read the service's connections");
                }
                return;
            }
        };
        let counts = per_state(&collected.connections);
        let crossed = self.cfg.thresholds.crossed(&collected.connections, &counts);
        let status = if crossed.is_empty() {
            Status::Normal(summary(
                &counts,
                collected.connections.len(),
                collected.truncated,
            ))
        } else {
            Status::Crossed(crossed.join("; "))
        };
        match (&status, &self.set_status(status.clone())) {
            // Once per crossing: the counts move every snapshot, and the
            // landmark shows the current ones.
            (Status::Crossed(_), Status::Crossed(_)) => {}
            (Status::Crossed(detail), _) => {
                tracing::warn!(%detail, "connection threshold crossed");
            }
            (Status::Normal(_), Status::Crossed(_)) => {
                tracing::info!("connection thresholds no longer crossed");
            }
            (Status::Normal(_), Status::Failed(_)) => {
                tracing::info!("reading the service's connections again");
            }
            _ => {}
        }
        let snapshot = Snapshot {
            taken,
            connections: collected.connections,
            truncated: collected.truncated,
            services: Arc::clone(&self.services),
        };
        self.push(snapshot);
    }

    /// Keeps `snapshot` in the history.
    pub(crate) fn push(&self, snapshot: Snapshot) {
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(snapshot);
    }

    fn set_status(&self, status: Status) -> Status {
        let mut guard = self
            .status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::replace(&mut *guard, status)
    }

    /// Runs `f` over the history under its lock (keep `f` short: clone the
    /// snapshots it needs, they are `Arc`s).
    pub(crate) fn with_history<T>(&self, f: impl FnOnce(&History) -> T) -> T {
        f(&self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Adds the `connections` component to a landmark the service gave,
    /// and raises its state to the configured one while a threshold is
    /// crossed.
    pub(crate) fn mark(&self, landmark: &mut Landmark) {
        let status = self
            .status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let (state, detail) = match status {
            Status::Starting => (State::Ok, "no snapshot yet".to_string()),
            Status::Normal(summary) => (State::Ok, summary),
            Status::Failed(e) => (State::Degraded, format!("cannot read connections: {e}")),
            Status::Crossed(detail) => {
                if let Some(floor) = self.cfg.thresholds.degrade_to {
                    if landmark.state < floor {
                        landmark.state = floor;
                        landmark.detail = if landmark.detail.is_empty() {
                            format!("connections: {detail}")
                        } else {
                            format!("connections: {detail}; {}", landmark.detail)
                        };
                    }
                }
                (State::Degraded, detail)
            }
        };
        landmark
            .components
            .insert(COMPONENT.to_string(), Component { state, detail });
    }
}

/// `1204 connections: 1190 ESTABLISHED, 14 CLOSE_WAIT`, from the counts
/// per state of `total` connections.
fn summary(counts: &PerState, total: usize, capped: bool) -> String {
    let counts: Vec<String> = present(*counts).map(|(s, n)| format!("{n} {s}")).collect();
    let total = match (capped, total) {
        (true, n) => format!("at least {n} connections"),
        (false, 1) => "1 connection".to_string(),
        (false, n) => format!("{n} connections"),
    };
    if counts.is_empty() {
        total
    } else {
        format!("{total}: {}", counts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(client: &str, state: TcpState) -> Connection {
        Connection {
            local: "10.0.0.5:7000".parse().unwrap(),
            remote: client.parse().unwrap(),
            state,
            recv_queue: 0,
            send_queue: 0,
            rtt_us: None,
            retransmits: None,
        }
    }

    #[test]
    fn thresholds_name_what_is_over_and_by_how_much() {
        let cfg = Config::new()
            .state_over(TcpState::CloseWait, 1)
            .state_over(TcpState::SynRecv, 5)
            .client_over(2);
        let mut conns = vec![
            conn("192.0.2.1:1", TcpState::CloseWait),
            conn("192.0.2.1:2", TcpState::CloseWait),
            conn("192.0.2.1:3", TcpState::Established),
            conn("192.0.2.2:1", TcpState::Established),
            conn("0.0.0.0:0", TcpState::Listen),
        ];
        assert_eq!(
            cfg.thresholds.crossed(&conns, &per_state(&conns)),
            [
                "2 CLOSE_WAIT (over 1)",
                "client 192.0.2.1 has 3 connections (over 2)"
            ]
        );
        conns.truncate(2);
        assert_eq!(
            cfg.thresholds.crossed(&conns, &per_state(&conns)),
            ["2 CLOSE_WAIT (over 1)"]
        );
        conns.truncate(1);
        assert!(cfg
            .thresholds
            .crossed(&conns, &per_state(&conns))
            .is_empty());
    }

    #[test]
    fn summary_counts_states_in_kernel_order() {
        let conns = [
            conn("192.0.2.1:1", TcpState::CloseWait),
            conn("192.0.2.1:3", TcpState::Established),
            conn("192.0.2.2:1", TcpState::Established),
        ];
        assert_eq!(
            summary(&per_state(&conns), conns.len(), false),
            "3 connections: 2 ESTABLISHED, 1 CLOSE_WAIT"
        );
        assert_eq!(
            summary(&PerState::default(), 0, true),
            "at least 0 connections"
        );
    }

    #[test]
    fn crossing_degrades_only_when_configured_and_the_worse_state_wins() {
        let marked = |cfg: Config, landmark: Landmark| {
            let r = Recorder::new(cfg);
            r.set_status(Status::Crossed("3 CLOSE_WAIT (over 1)".into()));
            let mut l = landmark;
            r.mark(&mut l);
            l
        };
        let l = marked(Config::new(), Landmark::ok("serving"));
        assert_eq!((l.state, l.detail.as_str()), (State::Ok, "serving"));
        assert_eq!(l.components[COMPONENT].state, State::Degraded);
        assert_eq!(l.components[COMPONENT].detail, "3 CLOSE_WAIT (over 1)");
        let l = marked(
            Config::new().degrade_to(State::Drain),
            Landmark::ok("serving"),
        );
        assert_eq!(l.state, State::Drain);
        assert_eq!(l.detail, "connections: 3 CLOSE_WAIT (over 1); serving");
        let l = marked(
            Config::new().degrade_to(State::Degraded),
            Landmark::fail("db down"),
        );
        assert_eq!((l.state, l.detail.as_str()), (State::Fail, "db down"));
    }
}
