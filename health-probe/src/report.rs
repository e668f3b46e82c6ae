//! Printing a verdict: one line on stdout (or one JSON object), and on
//! failure one line on stderr naming the failure class.

use std::io::Write;

use serde_json::json;

use crate::cli::Cli;
use crate::verdict::Verdict;

pub fn print(cli: &Cli, v: &Verdict) {
    if cli.quiet {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = if cli.json {
        writeln!(out, "{}", to_json(cli, v))
    } else if cli.nagios {
        writeln!(out, "{}", nagios_line(cli, v))
    } else {
        writeln!(out, "{}", line(cli, v))
    };
    if let Some(class) = v.class() {
        eprintln!("health-probe: {class}: {}", problem(cli, v));
    }
}

fn target(cli: &Cli, v: &Verdict) -> String {
    match v.outcome.addr {
        Some(a) if a.to_string() != cli.addr => format!("{} ({a})", cli.addr),
        _ => cli.addr.clone(),
    }
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

/// `OK 127.0.0.1:9100 state=ok weight=100 rtt=0.41ms detail="serving"`
fn line(cli: &Cli, v: &Verdict) -> String {
    let mut s = format!(
        "{} {}",
        if v.healthy { "OK" } else { "FAIL" },
        target(cli, v)
    );
    if let Some(c) = &cli.component {
        s.push_str(&format!(" component={c}"));
    }
    match (v.reply(), v.error()) {
        (Some(r), _) => {
            s.push_str(&format!(" state={}", r.state));
            if let Some(w) = r.weight {
                s.push_str(&format!(" weight={w}"));
            }
            s.push_str(&format!(" rtt={}", ms(v.outcome.elapsed)));
            s.push_str(&format!(" detail={:?}", r.detail));
        }
        (None, Some(e)) => {
            s.push_str(&format!(
                " class={} rtt={}",
                e.class(),
                ms(v.outcome.elapsed)
            ));
            s.push_str(&format!(" detail={:?}", e.to_string()));
        }
        (None, None) => {}
    }
    s
}

/// The stderr sentence after `health-probe: CLASS: `.
fn problem(cli: &Cli, v: &Verdict) -> String {
    match (v.reply(), v.error()) {
        (Some(r), _) => {
            let expected: Vec<&str> = cli.expect.iter().map(|s| s.as_str()).collect();
            format!(
                "{} is {}, expected {}: {}",
                target(cli, v),
                r.state,
                expected.join(","),
                if r.detail.is_empty() {
                    "(no detail)"
                } else {
                    &r.detail
                }
            )
        }
        (None, Some(e)) => format!("{}: {e}", target(cli, v)),
        (None, None) => String::new(),
    }
}

/// `LANDMARK OK - 127.0.0.1:9100 is ok: serving|time=0.000280s;;;0.000000;1.000000 ...`,
/// shaped like check_tcp's status line and perfdata.
fn nagios_line(cli: &Cli, v: &Verdict) -> String {
    let status = crate::verdict::nagios_status(&v.outcome, v.healthy);
    let summary = match (v.reply(), v.error()) {
        (Some(r), _) => format!("{} is {}: {}", target(cli, v), r.state, r.detail),
        (None, Some(e)) => format!("{} {}: {e}", target(cli, v), e.class()),
        (None, None) => target(cli, v),
    };
    let mut perf = format!(
        "time={:.6}s;;;0.000000;{:.6}",
        v.outcome.elapsed.as_secs_f64(),
        cli.timeout.as_secs_f64()
    );
    if let Some(r) = v.reply() {
        perf.push_str(&format!(
            " answer={:.6}s;;;0.000000",
            r.answer_us as f64 / 1e6
        ));
        if let Some(w) = r.weight {
            perf.push_str(&format!(" weight={w};;;0;253"));
        }
    }
    // '|' separates perfdata in Nagios output: keep it out of the summary.
    format!(
        "LANDMARK {} - {}|{perf}",
        status.label(),
        summary.replace('|', "/")
    )
}

fn to_json(cli: &Cli, v: &Verdict) -> serde_json::Value {
    let reply = v.reply();
    json!({
        "verdict": if v.healthy { "ok" } else { "fail" },
        "exit_code": v.exit_code,
        "target": cli.addr,
        "addr": v.outcome.addr.map(|a| a.to_string()),
        "component": cli.component,
        "expected": cli.expect.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        // Microsecond resolution, without float noise in the last digits.
        "rtt_ms": (v.outcome.elapsed.as_secs_f64() * 1e6).round() / 1e3,
        "class": v.class(),
        "error": v.error().map(|e| e.to_string()),
        "state": reply.map(|r| r.state.as_str()),
        "detail": reply.map(|r| r.detail.as_str()),
        "weight": reply.and_then(|r| r.weight).map(|w| w.get()),
        "answer_us": reply.map(|r| r.answer_us),
        "age_us": reply.and_then(|r| r.age_us),
        "components": reply.map(|r| &r.components),
        "fields": reply.map(|r| &r.fields),
    })
}
