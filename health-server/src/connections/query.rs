//! Answering a `connections` request (docs/PROTOCOL.md section 5.4) from
//! the recorder's history: pick the snapshots for the moment or range,
//! filter, list or group, and fit the reply within the frame limit with a
//! `truncated` marker when something had to be left out.

use std::time::{Duration, SystemTime};

use health_proto::connections::{from_unix_ms, unix_ms, When, DEFAULT_LIMIT, DEFAULT_TOP};
use health_proto::{
    ConnectionReport, ConnectionRow, ConnectionsRequest, ErrorCode, ErrorReply, Grouping,
    SnapshotReport,
};

use super::history::{aggregate, select, Filter, GroupBy, Snapshot};
use super::Recorder;

/// Room kept in the frame for the reply's own members.
const ENVELOPE: usize = 256;
/// Room for what a snapshot's members take beyond an empty one: the
/// matched count's digits, the list's name and brackets, a comma.
const SNAPSHOT_EXTRA: usize = 40;

/// The report for `request`, whose JSON fits in `max_payload` bytes.
pub(crate) fn answer(
    recorder: &Recorder,
    request: &ConnectionsRequest,
    max_payload: usize,
) -> Result<ConnectionReport, ErrorReply> {
    let when = request
        .when()
        .map_err(|e| ErrorReply::new(ErrorCode::BadPayload, e.to_string()))?;
    let (snapshots, oldest, newest) = recorder.with_history(|h| {
        let picked = match when {
            When::Latest => h.latest().into_iter().collect(),
            When::At(ms) => h.at(end_of(ms)).into_iter().collect(),
            When::Range { from, to } => {
                h.range(from_unix_ms(from), to.map_or_else(SystemTime::now, end_of))
            }
        };
        (
            picked,
            h.oldest().map(|s| unix_ms(s.taken)),
            h.latest().map(|s| unix_ms(s.taken)),
        )
    });
    let filter = Filter {
        states: request.states.clone(),
        client: request.client,
        port: request.port,
        service: request.service.clone(),
    };
    let grouping = request.group_by.map(|g| match g {
        Grouping::State => GroupBy::State,
        Grouping::Client => GroupBy::Client,
        Grouping::Subnet => {
            GroupBy::Subnet(request.prefix.unwrap_or(recorder.cfg.subnet_prefix).min(32))
        }
        Grouping::Port => GroupBy::Port,
    });
    let top = request.top.unwrap_or(DEFAULT_TOP) as usize;
    let mut rows_left = request.limit.unwrap_or(DEFAULT_LIMIT) as usize;
    let mut budget = Budget::new(max_payload);
    let mut report = ConnectionReport {
        snapshots: Vec::with_capacity(snapshots.len()),
        truncated: false,
        period_ms: recorder.cfg.period.as_millis() as u64,
        oldest_ms: oldest,
        newest_ms: newest,
    };
    for snapshot in &snapshots {
        let mut out = SnapshotReport {
            taken_ms: unix_ms(snapshot.taken),
            matched: 0,
            capped: snapshot.truncated,
            connections: Vec::new(),
            groups: Vec::new(),
        };
        // The snapshot's own members, with room for its matched count, the
        // `"connections":[]` or `"groups":[]` member and a comma.
        if !budget.take(json_len(&out) + SNAPSHOT_EXTRA) {
            report.truncated = true;
            break;
        }
        let complete = match grouping {
            Some(by) => {
                let (groups, matched) = aggregate(snapshot, &filter, by, top);
                out.matched = count(matched);
                let all = groups.len();
                out.groups = groups
                    .into_iter()
                    .take_while(|row| budget.take(json_len(row) + 1))
                    .collect();
                out.groups.len() == all
            }
            None => {
                let (kept, matched) = select(snapshot, &filter, rows_left);
                out.matched = count(matched);
                out.connections = kept
                    .into_iter()
                    .map(|c| row(snapshot, c))
                    .take_while(|row| budget.take(json_len(row) + 1))
                    .collect();
                rows_left -= out.connections.len();
                out.connections.len() == matched
            }
        };
        report.truncated |= !complete;
        report.snapshots.push(out);
    }
    Ok(report)
}

fn row(snapshot: &Snapshot, c: &super::Connection) -> ConnectionRow {
    ConnectionRow {
        client: c.remote.to_string(),
        local: c.local.to_string(),
        service: snapshot
            .services
            .get(&c.local.port())
            .cloned()
            .unwrap_or_default(),
        state: c.state,
        recv_q: c.recv_queue,
        send_q: c.send_queue,
        rtt_us: c.rtt_us,
        retrans: c.retransmits,
    }
}

/// Bytes left in the frame.
struct Budget(usize);

impl Budget {
    fn new(max_payload: usize) -> Budget {
        Budget(max_payload.saturating_sub(ENVELOPE))
    }

    /// Spends `n` bytes if there are that many left.
    fn take(&mut self, n: usize) -> bool {
        match self.0.checked_sub(n) {
            Some(left) => {
                self.0 = left;
                true
            }
            None => false,
        }
    }
}

fn json_len<T: serde::Serialize>(value: &T) -> usize {
    // Counting bytes through a writer that keeps none of them.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Count(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        // Cannot fail for these types; if it did, never fit.
        Err(_) => usize::MAX,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The last instant of millisecond `ms`: a snapshot reported as taken at
/// `ms` (its time cut to the millisecond) is at or before it.
fn end_of(ms: u64) -> SystemTime {
    from_unix_ms(ms) + Duration::from_nanos(999_999)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::Arc;

    use health_proto::TcpState;

    use super::*;
    use crate::connections::{Config, Connection};

    /// A recorder holding `snapshots` snapshots of `per` connections each,
    /// one second apart.
    fn recorder(snapshots: u64, per: u16) -> Recorder {
        let r = Recorder::new(
            Config::new()
                .port(7000, "epg")
                .keep(10_000, Duration::from_secs(1 << 30)),
        );
        for t in 0..snapshots {
            let connections = (0..per)
                .map(|i| Connection {
                    local: "10.0.0.5:7000".parse().unwrap(),
                    remote: SocketAddr::new(
                        std::net::Ipv4Addr::new(192, 0, 2, (i % 200) as u8).into(),
                        10_000 + i,
                    ),
                    state: TcpState::Established,
                    recv_queue: 0,
                    send_queue: 0,
                    rtt_us: Some(412),
                    retransmits: Some(0),
                })
                .collect();
            r.push(Snapshot {
                taken: from_unix_ms(1_000_000 + t * 1000),
                connections,
                truncated: false,
                services: Arc::new(HashMap::from([(7000, "epg".to_string())])),
            });
        }
        r
    }

    #[test]
    fn every_report_fits_the_frame_and_says_when_it_left_something_out() {
        let r = recorder(300, 150);
        for max in [2048, 8192, 65_536] {
            for group_by in [None, Some(Grouping::Client), Some(Grouping::State)] {
                let request = ConnectionsRequest {
                    from_ms: Some(0),
                    group_by,
                    limit: Some(u32::MAX),
                    top: Some(u32::MAX),
                    ..Default::default()
                };
                let report = answer(&r, &request, max).unwrap();
                let len = serde_json::to_vec(&report).unwrap().len();
                assert!(len <= max, "{len} > {max} for {group_by:?}");
                // Not truncated: then everything is there (300 counts by
                // state fit in 64 KiB, nothing else does).
                let whole = report.snapshots.len() == 300
                    && report.snapshots.iter().all(|s| {
                        s.connections.len() == 150
                            || s.groups.iter().map(|g| g.total).sum::<u32>() == 150
                    });
                assert_eq!(report.truncated, !whole, "{max} {group_by:?}");
                assert_eq!(whole, max == 65_536 && group_by == Some(Grouping::State));
                assert!(!report.snapshots.is_empty());
                assert!(report.snapshots.iter().all(|s| s.matched == 150));
            }
        }
        // What fits is whole, and says so.
        let small = answer(
            &recorder(3, 5),
            &ConnectionsRequest {
                from_ms: Some(0),
                ..Default::default()
            },
            65_536,
        )
        .unwrap();
        assert!(!small.truncated);
        assert_eq!(small.snapshots.len(), 3);
        assert_eq!(small.oldest_ms, Some(1_000_000));
        assert_eq!(small.newest_ms, Some(1_002_000));
    }

    #[test]
    fn limit_counts_over_all_snapshots() {
        let r = recorder(4, 10);
        let report = answer(
            &r,
            &ConnectionsRequest {
                from_ms: Some(0),
                limit: Some(25),
                ..Default::default()
            },
            65_536,
        )
        .unwrap();
        let listed: Vec<usize> = report
            .snapshots
            .iter()
            .map(|s| s.connections.len())
            .collect();
        assert_eq!(listed, [10, 10, 5, 0]);
        assert!(report.truncated);
    }

    #[test]
    fn a_moment_is_the_snapshot_in_force_to_the_millisecond() {
        let r = recorder(3, 1);
        let at = |ms| {
            answer(
                &r,
                &ConnectionsRequest {
                    at_ms: Some(ms),
                    ..Default::default()
                },
                65_536,
            )
            .unwrap()
            .snapshots
            .iter()
            .map(|s| s.taken_ms)
            .collect::<Vec<_>>()
        };
        assert_eq!(at(1_001_000), [1_001_000]);
        assert_eq!(at(1_001_999), [1_001_000]);
        assert_eq!(at(999_999), Vec::<u64>::new());
        let bad = answer(
            &r,
            &ConnectionsRequest {
                at_ms: Some(1),
                to_ms: Some(2),
                ..Default::default()
            },
            65_536,
        );
        assert_eq!(bad.unwrap_err().known_code(), Some(ErrorCode::BadPayload));
    }
}
