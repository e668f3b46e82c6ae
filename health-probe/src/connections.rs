//! `health-probe connections`: asks a service that records its
//! connections (docs/PROTOCOL.md section 5.4) who is connected, and prints
//! the report as tables, one per snapshot, or as JSON.

use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use health_proto::connections::{from_unix_ms, unix_ms};
use health_proto::{
    ConnectionReport, ConnectionsRequest, Grouping, Request, Response, SnapshotReport, TcpState,
};

use crate::cli::{ConnectionsArgs, PortOrService};
use crate::error::ConnectionsError;
use crate::probe::{self, ProbeError};
use crate::table::{self, Column};

/// Asks and prints; an error when there is no report to print.
pub(crate) fn run(args: &ConnectionsArgs) -> Result<(), ConnectionsError> {
    let now = SystemTime::now();
    let report = ask(args, now).map_err(|error| ConnectionsError::Ask {
        addr: args.addr.clone(),
        error,
    })?;
    if args.json {
        serde_json::to_string(&report)
            .map_err(io::Error::other)
            .and_then(|json| writeln!(io::stdout().lock(), "{json}"))
    } else {
        print_tables(&mut io::stdout().lock(), args, &report, now)
    }
    .map_err(ConnectionsError::Print)?;
    if report.snapshots.is_empty() {
        return Err(ConnectionsError::NoSnapshot {
            addr: args.addr.clone(),
            why: no_snapshot(args, &report),
        });
    }
    Ok(())
}

/// The request the flags describe.
pub(crate) fn request(args: &ConnectionsArgs, now: SystemTime) -> ConnectionsRequest {
    let (port, service) = match &args.port {
        Some(PortOrService::Port(p)) => (Some(*p), None),
        Some(PortOrService::Service(s)) => (None, Some(s.clone())),
        None => (None, None),
    };
    ConnectionsRequest {
        states: args.state.clone(),
        client: args.client,
        port,
        service,
        at_ms: args.at.map(unix_ms),
        from_ms: args
            .since
            .map(|d| unix_ms(now.checked_sub(d).unwrap_or(UNIX_EPOCH))),
        to_ms: None,
        group_by: args.group_by,
        prefix: args.prefix,
        top: Some(args.top),
        limit: Some(args.limit),
    }
}

fn ask(args: &ConnectionsArgs, now: SystemTime) -> Result<ConnectionReport, ProbeError> {
    let timeout = humantime::format_duration(args.timeout).to_string();
    let deadline = Instant::now() + args.timeout;
    let (id, frame) = probe::request_frame(&Request::Connections(request(args, now)));
    let reply = probe::exchange(
        &args.addr,
        args.family.family(),
        args.family.source.as_ref(),
        &frame,
        deadline,
        &timeout,
        &mut None,
    )?;
    match probe::response_to(&reply, id, &timeout)? {
        Response::ConnectionReport(report) => Ok(report),
        other => Err(probe::unexpected(&other, "connection_report")),
    }
}

/// Why the report holds no snapshot, in the operator's terms.
fn no_snapshot(args: &ConnectionsArgs, report: &ConnectionReport) -> String {
    let asked = match (args.at, args.since) {
        (Some(at), _) => format!("no snapshot kept for {}", utc(at)),
        (None, Some(d)) => format!(
            "no snapshot taken in the last {}",
            humantime::format_duration(d)
        ),
        (None, None) => "no snapshot taken yet".to_string(),
    };
    match (report.oldest_ms, report.newest_ms) {
        (Some(old), Some(new)) => format!(
            "{asked}; the server keeps {} to {}, one every {}",
            utc(from_unix_ms(old)),
            utc(from_unix_ms(new)),
            humantime::format_duration(Duration::from_millis(report.period_ms))
        ),
        _ => format!("{asked}; the server keeps none yet"),
    }
}

/// One table per snapshot, a blank line between them, and a note when
/// something was left out.
pub(crate) fn print_tables(
    out: &mut impl Write,
    args: &ConnectionsArgs,
    report: &ConnectionReport,
    now: SystemTime,
) -> io::Result<()> {
    let mut listed = 0usize;
    let mut matched = 0usize;
    for (i, snapshot) in report.snapshots.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", heading(args, snapshot, now))?;
        if snapshot.matched == 0 {
            continue;
        }
        match args.group_by {
            Some(by) => groups(out, by, snapshot)?,
            None => connections(out, snapshot)?,
        }
        listed += snapshot.connections.len();
        matched += snapshot.matched as usize;
    }
    if report.truncated {
        let what = match args.group_by {
            Some(_) => "groups or snapshots".to_string(),
            None => format!("listed {listed} of {matched} connections"),
        };
        writeln!(
            out,
            "truncated: {what}; narrow with --state, --client, --port, a shorter --since, or lower --top/--limit"
        )?;
    }
    Ok(())
}

fn heading(args: &ConnectionsArgs, s: &SnapshotReport, now: SystemTime) -> String {
    let taken = from_unix_ms(s.taken_ms);
    let ago = now
        .duration_since(taken)
        .map(|d| Duration::from_secs(d.as_secs()))
        .unwrap_or_default();
    let count = match (s.matched, s.capped) {
        (1, false) => "1 connection".to_string(),
        (n, false) => format!("{n} connections"),
        (n, true) => {
            format!("at least {n} connections (the server's per-snapshot limit was reached)")
        }
    };
    let by = match args.group_by {
        Some(Grouping::State) => ", by state".to_string(),
        Some(Grouping::Client) => format!(", by client (top {})", args.top),
        Some(Grouping::Subnet) => format!(", by subnet (top {})", args.top),
        Some(Grouping::Port) => ", by port".to_string(),
        None => String::new(),
    };
    format!(
        "snapshot {} ({} ago): {count}{by}",
        utc(taken),
        humantime::format_duration(ago)
    )
}

fn connections(out: &mut impl Write, s: &SnapshotReport) -> io::Result<()> {
    let columns = [
        Column::left("STATE"),
        Column::left("CLIENT"),
        Column::left("LOCAL"),
        Column::left("SERVICE"),
        Column::right("RECV-Q"),
        Column::right("SEND-Q"),
        Column::right("RTT"),
        Column::right("RETRANS"),
    ];
    let rows: Vec<Vec<String>> = s
        .connections
        .iter()
        .map(|c| {
            vec![
                c.state.to_string(),
                c.client.clone(),
                c.local.clone(),
                c.service.clone(),
                c.recv_q.to_string(),
                c.send_q.to_string(),
                c.rtt_us
                    .map_or("-".into(), |us| format!("{:.3}ms", f64::from(us) / 1000.0)),
                c.retrans.map_or("-".into(), |n| n.to_string()),
            ]
        })
        .collect();
    table::write(out, &columns, &rows)
}

fn groups(out: &mut impl Write, by: Grouping, s: &SnapshotReport) -> io::Result<()> {
    let key = match by {
        Grouping::State => "STATE",
        Grouping::Client => "CLIENT",
        Grouping::Subnet => "SUBNET",
        Grouping::Port => "PORT",
    };
    // A column per state present; by state, the key already says it.
    let states: Vec<TcpState> = if by == Grouping::State {
        Vec::new()
    } else {
        TcpState::ALL
            .into_iter()
            .filter(|st| s.groups.iter().any(|g| g.states.contains_key(st)))
            .collect()
    };
    let mut columns = vec![Column::left(key), Column::right("TOTAL")];
    columns.extend(states.iter().map(|st| Column::right(st.as_str())));
    let rows: Vec<Vec<String>> = s
        .groups
        .iter()
        .map(|g| {
            let mut row = vec![g.key.clone(), g.total.to_string()];
            row.extend(
                states
                    .iter()
                    .map(|st| g.states.get(st).copied().unwrap_or(0).to_string()),
            );
            row
        })
        .collect();
    table::write(out, &columns, &rows)
}

fn utc(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
