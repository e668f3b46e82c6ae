//! The connection report (docs/PROTOCOL.md sections 5.4 and 5.5): who is
//! connected to the service, in what TCP state, now or at a past moment.
//!
//! A [`ConnectionsRequest`] names filters (states, client network, port or
//! service), a moment or a time range, and optionally a grouping; the
//! server answers a [`ConnectionReport`] with one [`SnapshotReport`] per
//! snapshot it kept, holding either the connections themselves or their
//! counts per group.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A TCP state, as the Linux kernel numbers and names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    /// An open connection.
    Established,
    /// Our SYN sent, waiting for the peer's SYN-ACK.
    SynSent,
    /// A SYN received and answered, waiting for the handshake's last ACK.
    SynRecv,
    /// This side closed; waiting for the peer's ACK.
    FinWait1,
    /// This side's close acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// Both sides closed; waiting out stray segments.
    TimeWait,
    /// No connection.
    Close,
    /// The peer closed; the service has not closed yet.
    CloseWait,
    /// The peer closed, then this side; waiting for the last ACK.
    LastAck,
    /// A listening socket.
    Listen,
    /// Both sides closed at once; waiting for the ACK.
    Closing,
}

impl TcpState {
    /// Every state, in the kernel's order.
    pub const ALL: [TcpState; 11] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
    ];

    /// The kernel's number (`TCP_ESTABLISHED` = 1, ...).
    pub fn number(self) -> u8 {
        self as u8 + 1
    }

    /// The state's position in [`TcpState::ALL`], for per-state counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The state for a kernel number, if it is one.
    pub fn from_number(n: u8) -> Option<TcpState> {
        TcpState::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// The kernel's name for the state (`CLOSE_WAIT`), used on the wire.
    /// `ss -tan` prints the long names with a dash (`CLOSE-WAIT`);
    /// [`TcpState::parse`] takes both spellings, in any case.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        }
    }

    /// The state named `s` (`CLOSE_WAIT`, `close-wait`), if any.
    pub fn parse(s: &str) -> Option<TcpState> {
        let upper = s.trim().to_ascii_uppercase().replace('-', "_");
        TcpState::ALL.into_iter().find(|t| t.as_str() == upper)
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not a TCP state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TCP state {0:?} (expected one of ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING)")]
pub struct UnknownTcpState(pub String);

impl FromStr for TcpState {
    type Err = UnknownTcpState;
    fn from_str(s: &str) -> Result<TcpState, UnknownTcpState> {
        TcpState::parse(s).ok_or_else(|| UnknownTcpState(s.to_string()))
    }
}

impl Serialize for TcpState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TcpState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TcpState, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// How a report groups the connections of each snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// By TCP state.
    State,
    /// By the client's address.
    Client,
    /// By the client's network (see [`ConnectionsRequest::prefix`]).
    Subnet,
    /// By the service's local port, with its service name.
    Port,
}

impl FromStr for Grouping {
    type Err = String;
    fn from_str(s: &str) -> Result<Grouping, String> {
        [
            Grouping::State,
            Grouping::Client,
            Grouping::Subnet,
            Grouping::Port,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
        .ok_or_else(|| format!("unknown grouping {s:?} (expected state, client, subnet or port)"))
    }
}

impl Grouping {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::State => "state",
            Grouping::Client => "client",
            Grouping::Subnet => "subnet",
            Grouping::Port => "port",
        }
    }
}

/// Payload of a `connections` request (section 5.4). Every member is
/// optional; `{}` asks for every connection of the latest snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConnectionsRequest {
    /// Only connections in one of these states; absent or empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<TcpState>,
    /// Only clients within this network (`192.0.2.0/24`, `2001:db8::/32`,
    /// `192.0.2.10/32` for one address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpNet>,
    /// Only connections to this local port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Only connections to the ports with this service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The snapshot in force at this moment (milliseconds since the Unix
    /// epoch): the last one taken at or before it. Absent with no range:
    /// the latest snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// Every snapshot taken from this moment on (Unix milliseconds).
    /// Not together with `at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<u64>,
    /// With `from_ms`: up to this moment; absent: up to now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ms: Option<u64>,
    /// Count connections per group instead of listing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Grouping>,
    /// For `group_by` `subnet`: the IPv4 prefix length, 0-32 (IPv6 clients
    /// are grouped by this plus 32, at most 128). Absent: the server's
    /// configured prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
    /// Most groups per snapshot, largest first. Absent: 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
    /// Most connections listed, over all snapshots. Absent: 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Default [`ConnectionsRequest::top`].
pub const DEFAULT_TOP: u32 = 20;
/// Default [`ConnectionsRequest::limit`].
pub const DEFAULT_LIMIT: u32 = 1000;

/// A moment as the report's `*_ms` members carry it: milliseconds since
/// the Unix epoch, cut to the millisecond (0 before the epoch).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The moment a `*_ms` member names.
pub fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// What one request asks for in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The latest snapshot.
    Latest,
    /// The snapshot in force at this Unix millisecond.
    At(u64),
    /// The snapshots taken within `from..=to`.
    Range {
        /// Unix milliseconds.
        from: u64,
        /// Unix milliseconds; absent: now.
        to: Option<u64>,
    },
}

/// `at_ms` together with `from_ms`/`to_ms`, or `to_ms` without `from_ms`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadTime(&'static str);

impl ConnectionsRequest {
    /// The moment or range asked for.
    pub fn when(&self) -> Result<When, BadTime> {
        match (self.at_ms, self.from_ms, self.to_ms) {
            (None, None, None) => Ok(When::Latest),
            (Some(at), None, None) => Ok(When::At(at)),
            (None, Some(from), to) => Ok(When::Range { from, to }),
            (Some(_), _, _) => Err(BadTime("give at_ms or a range (from_ms, to_ms), not both")),
            (None, None, Some(_)) => Err(BadTime("to_ms needs from_ms")),
        }
    }
}

/// Payload of a `connection_report` reply (section 5.5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConnectionReport {
    /// The snapshots asked for, oldest first; empty when none was kept for
    /// that moment or range.
    #[serde(default)]
    pub snapshots: Vec<SnapshotReport>,
    /// Connections, groups or snapshots were left out: over `limit`, or
    /// over the frame limit. Narrow the request to see the rest.
    #[serde(default)]
    pub truncated: bool,
    /// Milliseconds between snapshots, as configured.
    #[serde(default)]
    pub period_ms: u64,
    /// When the oldest kept snapshot was taken; absent when none is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_ms: Option<u64>,
    /// When the newest kept snapshot was taken; absent when none is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_ms: Option<u64>,
}

/// One snapshot, filtered, as listed connections or as groups.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotReport {
    /// When the snapshot was taken (Unix milliseconds).
    pub taken_ms: u64,
    /// Connections in the snapshot that match the filters (all of them,
    /// also those left out of `connections`).
    pub matched: u32,
    /// The collector reached its per-snapshot limit: the snapshot holds
    /// only part of the sockets, and counts are lower bounds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capped: bool,
    /// The matching connections, when no grouping was asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<ConnectionRow>,
    /// The groups, largest first, when a grouping was asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupRow>,
}

/// One connection of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRow {
    /// The client's address and port (`0.0.0.0:0` or `[::]:0` for a
    /// listening socket).
    pub client: String,
    /// The service's address and port.
    pub local: String,
    /// The service name configured for the local port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// The connection's TCP state.
    pub state: TcpState,
    /// Bytes received and not yet read by the service (for a listening
    /// socket: connections waiting to be accepted).
    #[serde(default)]
    pub recv_q: u32,
    /// Bytes sent and not yet acknowledged by the client.
    #[serde(default)]
    pub send_q: u32,
    /// Smoothed round-trip time, microseconds; absent where the kernel has
    /// none (TIME_WAIT, SYN_RECV) and for listening sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u32>,
    /// Segments retransmitted over the connection's life; absent as
    /// `rtt_us`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrans: Option<u32>,
}

/// One group of a snapshot: its key, its count, and its count per state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRow {
    /// The state name, client address, client network (`192.0.2.0/24`) or
    /// port (`7000 epg`, the port and its service name).
    pub key: String,
    /// Sockets in the group.
    pub total: u32,
    /// Count per state, states in the kernel's order.
    #[serde(default)]
    pub states: std::collections::BTreeMap<TcpState, u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_their_kernel_numbers_and_names() {
        for s in TcpState::ALL {
            assert_eq!(TcpState::from_number(s.number()), Some(s));
            assert_eq!(s.as_str().parse::<TcpState>(), Ok(s));
        }
        assert_eq!(TcpState::Established.number(), 1);
        assert_eq!(TcpState::CloseWait.number(), 8);
        assert_eq!(TcpState::parse("close-wait"), Some(TcpState::CloseWait));
        assert_eq!(TcpState::from_number(0), None);
        assert_eq!(TcpState::from_number(12), None);
        assert!("ESTAB".parse::<TcpState>().is_err());
    }

    #[test]
    fn state_names_on_the_wire() {
        let r: ConnectionsRequest =
            serde_json::from_str(r#"{"states":["close-wait","SYN_RECV"]}"#).unwrap();
        assert_eq!(r.states, [TcpState::CloseWait, TcpState::SynRecv]);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"states":["CLOSE_WAIT","SYN_RECV"]}"#
        );
        assert!(serde_json::from_str::<ConnectionsRequest>(r#"{"states":["NOPE"]}"#).is_err());
    }

    #[test]
    fn groupings_and_moments_round_trip_their_wire_forms() {
        for g in [
            Grouping::State,
            Grouping::Client,
            Grouping::Subnet,
            Grouping::Port,
        ] {
            assert_eq!(g.as_str().parse::<Grouping>(), Ok(g));
            assert_eq!(
                serde_json::to_string(&g).unwrap(),
                format!("\"{}\"", g.as_str())
            );
        }
        assert!("clients".parse::<Grouping>().is_err());
        let t = from_unix_ms(1_795_576_200_123);
        assert_eq!(unix_ms(t), 1_795_576_200_123);
        assert_eq!(unix_ms(t + Duration::from_micros(999)), 1_795_576_200_123);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }

    #[test]
    fn moment_or_range_not_both() {
        let r = |at, from, to| ConnectionsRequest {
            at_ms: at,
            from_ms: from,
            to_ms: to,
            ..Default::default()
        };
        assert_eq!(r(None, None, None).when(), Ok(When::Latest));
        assert_eq!(r(Some(5), None, None).when(), Ok(When::At(5)));
        assert_eq!(
            r(None, Some(1), None).when(),
            Ok(When::Range { from: 1, to: None })
        );
        assert!(r(Some(5), Some(1), None).when().is_err());
        assert!(r(None, None, Some(9)).when().is_err());
    }
}
