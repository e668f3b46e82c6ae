//! Snapshots of the service's connections, each stamped with its time, in a
//! ring bounded by count and by age, and the queries over them.
//!
//! Memory is bounded by `max_snapshots × max_connections` entries of
//! [`Connection`] (92 bytes each on 64-bit Linux; the service names are
//! shared by all snapshots). A snapshot taken while over `max_connections`
//! keeps the first ones and says it was truncated.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use health_proto::GroupRow;
use ipnet::IpNet;

use super::{Connection, TcpState};

/// One reading of the kernel's sockets.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub taken: SystemTime,
    pub connections: Vec<Connection>,
    /// More matched than the collector kept.
    pub truncated: bool,
    /// Service name per local port, as configured.
    pub services: Arc<HashMap<u16, String>>,
}

/// The ring of snapshots.
#[derive(Debug)]
pub struct History {
    snapshots: VecDeque<Arc<Snapshot>>,
    max_snapshots: usize,
    max_age: Duration,
}

impl History {
    pub fn new(max_snapshots: usize, max_age: Duration) -> History {
        History {
            snapshots: VecDeque::with_capacity(max_snapshots.min(4096)),
            max_snapshots: max_snapshots.max(1),
            max_age,
        }
    }

    /// Adds the newest snapshot, dropping the oldest beyond the count and
    /// those older than the age limit (relative to this one).
    pub fn push(&mut self, s: Snapshot) {
        let newest = s.taken;
        self.snapshots.push_back(Arc::new(s));
        while self.snapshots.len() > self.max_snapshots {
            self.snapshots.pop_front();
        }
        while let Some(oldest) = self.snapshots.front() {
            let age = newest.duration_since(oldest.taken).unwrap_or_default();
            if age > self.max_age && self.snapshots.len() > 1 {
                self.snapshots.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.snapshots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    pub fn oldest(&self) -> Option<Arc<Snapshot>> {
        self.snapshots.front().cloned()
    }

    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.snapshots.back().cloned()
    }

    /// The snapshot in force at `at`: the last one taken at or before it.
    pub fn at(&self, at: SystemTime) -> Option<Arc<Snapshot>> {
        self.snapshots.iter().rev().find(|s| s.taken <= at).cloned()
    }

    /// The snapshots taken within `from..=to`, oldest first.
    pub fn range(&self, from: SystemTime, to: SystemTime) -> Vec<Arc<Snapshot>> {
        self.snapshots
            .iter()
            .filter(|s| s.taken >= from && s.taken <= to)
            .cloned()
            .collect()
    }
}

/// Which connections a query wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Any of these states; empty: all.
    pub states: Vec<TcpState>,
    /// Clients within this network.
    pub client: Option<IpNet>,
    /// This local port.
    pub port: Option<u16>,
    /// This service name.
    pub service: Option<String>,
}

impl Filter {
    pub fn matches(&self, c: &Connection, services: &HashMap<u16, String>) -> bool {
        (self.states.is_empty() || self.states.contains(&c.state))
            && self.client.is_none_or(|net| net.contains(&c.remote.ip()))
            && self.port.is_none_or(|p| c.local.port() == p)
            && self
                .service
                .as_ref()
                .is_none_or(|name| services.get(&c.local.port()) == Some(name))
    }
}

/// How connections are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    State,
    /// The client's address.
    Client,
    /// The client's network, with this prefix length for IPv4 (IPv6 uses
    /// `prefix + 32`, at most 128: a /24 for IPv4 is a /56 for IPv6).
    Subnet(u8),
    /// The local port, with its service name.
    Port,
}

/// The network of `ip` for a `GroupBy::Subnet(prefix)`.
pub fn subnet(ip: IpAddr, prefix: u8) -> IpNet {
    let len = match ip {
        IpAddr::V4(_) => prefix.min(32),
        IpAddr::V6(_) => prefix.saturating_add(32).min(128),
    };
    IpNet::new(ip, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// A count per TCP state, indexed by [`TcpState::index`].
pub type PerState = [u32; TcpState::ALL.len()];

/// Counts `connections` per state.
pub fn per_state<'a>(connections: impl IntoIterator<Item = &'a Connection>) -> PerState {
    let mut counts = PerState::default();
    for c in connections {
        counts[c.state.index()] += 1;
    }
    counts
}

/// The states counted at least once, with their counts, in the kernel's
/// order.
pub fn present(counts: PerState) -> impl Iterator<Item = (TcpState, u32)> {
    TcpState::ALL
        .into_iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
}

/// What a group is keyed by; ordered so that ties list in address or port
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    State(TcpState),
    Client(IpAddr),
    Subnet(IpNet),
    Port(u16),
}

/// Connections per group, and per state within the group, largest first
/// (ties in state, address or port order), at most `top` groups; and how
/// many connections matched in all.
pub fn aggregate(
    snapshot: &Snapshot,
    filter: &Filter,
    by: GroupBy,
    top: usize,
) -> (Vec<GroupRow>, usize) {
    // Keyed by value, named only for the groups kept: a snapshot of 100k
    // connections costs no string per connection.
    let mut groups: HashMap<Key, PerState> = HashMap::new();
    let mut matched = 0;
    for c in snapshot
        .connections
        .iter()
        .filter(|c| filter.matches(c, &snapshot.services))
    {
        let key = match by {
            GroupBy::State => Key::State(c.state),
            GroupBy::Client => Key::Client(c.remote.ip()),
            GroupBy::Subnet(prefix) => Key::Subnet(subnet(c.remote.ip(), prefix)),
            GroupBy::Port => Key::Port(c.local.port()),
        };
        groups.entry(key).or_default()[c.state.index()] += 1;
        matched += 1;
    }
    let mut counted: Vec<(Key, u32, PerState)> = groups
        .into_iter()
        .map(|(key, per_state)| (key, per_state.iter().sum(), per_state))
        .collect();
    counted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counted.truncate(top);
    let groups = counted
        .into_iter()
        .map(|(key, total, per_state)| GroupRow {
            key: match key {
                Key::State(s) => s.as_str().to_string(),
                Key::Client(ip) => ip.to_string(),
                Key::Subnet(net) => net.to_string(),
                Key::Port(port) => match snapshot.services.get(&port) {
                    Some(name) => format!("{port} ({name})"),
                    None => port.to_string(),
                },
            },
            total,
            states: present(per_state).collect(),
        })
        .collect();
    (groups, matched)
}

/// The connections of `snapshot` that `filter` wants, at most `max`, and
/// how many matched in all.
pub fn select<'a>(
    snapshot: &'a Snapshot,
    filter: &Filter,
    max: usize,
) -> (Vec<&'a Connection>, usize) {
    let mut kept = Vec::new();
    let mut matched = 0;
    for c in snapshot
        .connections
        .iter()
        .filter(|c| filter.matches(c, &snapshot.services))
    {
        if kept.len() < max {
            kept.push(c);
        }
        matched += 1;
    }
    (kept, matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn conn(client: &str, port: u16, state: TcpState) -> Connection {
        Connection {
            local: SocketAddr::new("10.0.0.5".parse().unwrap(), port),
            remote: client.parse().unwrap(),
            state,
            recv_queue: 0,
            send_queue: 0,
            rtt_us: None,
            retransmits: None,
        }
    }

    fn snapshot(at_s: u64, conns: Vec<Connection>) -> Snapshot {
        let services = HashMap::from([(7000, "epg".to_string()), (9100, "health".to_string())]);
        Snapshot {
            taken: SystemTime::UNIX_EPOCH + Duration::from_secs(at_s),
            connections: conns,
            truncated: false,
            services: Arc::new(services),
        }
    }

    fn sample() -> Snapshot {
        use TcpState::*;
        snapshot(
            100,
            vec![
                conn("192.0.2.10:5000", 7000, Established),
                conn("192.0.2.10:5001", 7000, CloseWait),
                conn("192.0.2.10:5002", 7000, CloseWait),
                conn("192.0.2.77:6000", 7000, Established),
                conn("198.51.100.1:7000", 9100, TimeWait),
                conn("[2001:db8::1]:4000", 7000, Established),
            ],
        )
    }

    #[test]
    fn ring_is_bounded_by_count_and_age_and_answers_moments_and_ranges() {
        let mut h = History::new(3, Duration::from_secs(25));
        for t in [0, 10, 20, 30, 40] {
            h.push(snapshot(t, vec![]));
        }
        let times = |v: Vec<Arc<Snapshot>>| {
            v.iter()
                .map(|s| {
                    s.taken
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(h.len(), 3);
        let all = h.range(
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH + Duration::from_secs(99),
        );
        assert_eq!(times(all), [20, 30, 40]);
        let at = |h: &History, s| h.at(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(times(at(&h, 35).into_iter().collect()), [30]);
        assert_eq!(times(at(&h, 99).into_iter().collect()), [40]);
        // Age: at 70, the ones at 30 and 40 are over 25 s old.
        h.push(snapshot(70, vec![]));
        assert_eq!(h.len(), 1);
        assert_eq!(times(at(&h, 70).into_iter().collect()), [70]);
        assert!(at(&h, 69).is_none(), "nothing kept from that moment");
    }

    #[test]
    fn filters_by_state_client_network_port_and_service() {
        let s = sample();
        let f = Filter {
            states: vec![TcpState::CloseWait],
            ..Filter::default()
        };
        assert_eq!(select(&s, &f, 10).0.len(), 2);
        let f = Filter {
            client: Some("192.0.2.0/24".parse().unwrap()),
            ..Filter::default()
        };
        assert_eq!(select(&s, &f, 10).0.len(), 4);
        let f = Filter {
            service: Some("health".into()),
            ..Filter::default()
        };
        assert_eq!(select(&s, &f, 10).0[0].state, TcpState::TimeWait);
        let f = Filter {
            port: Some(7000),
            ..Filter::default()
        };
        let (kept, matched) = select(&s, &f, 3);
        assert_eq!((kept.len(), matched), (3, 5));
    }

    #[test]
    fn aggregates_by_state_client_subnet_and_port_with_top_n() {
        let s = sample();
        let all = Filter::default();
        let (by_state, matched) = aggregate(&s, &all, GroupBy::State, 10);
        assert_eq!(matched, 6);
        assert_eq!(
            by_state
                .iter()
                .map(|g| (g.key.as_str(), g.total))
                .collect::<Vec<_>>(),
            [("ESTABLISHED", 3), ("CLOSE_WAIT", 2), ("TIME_WAIT", 1)]
        );
        let (top, matched) = aggregate(&s, &all, GroupBy::Client, 1);
        assert_eq!((top.len(), matched), (1, 6));
        assert_eq!(top[0].key, "192.0.2.10");
        assert_eq!(top[0].states[&TcpState::CloseWait], 2);
        let (nets, _) = aggregate(&s, &all, GroupBy::Subnet(24), 10);
        assert_eq!((nets[0].key.as_str(), nets[0].total), ("192.0.2.0/24", 4));
        assert!(nets.iter().any(|g| g.key == "2001:db8::/56"), "{nets:?}");
        let (ports, _) = aggregate(&s, &all, GroupBy::Port, 10);
        assert_eq!(ports[0].key, "7000 (epg)");
        assert_eq!(ports[1].key, "9100 (health)");
    }
}
