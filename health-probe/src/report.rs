//! Printing a verdict: one line on stdout (or one JSON object, or a Nagios
//! status line), and on failure one line on stderr naming the failure
//! class. [`print`] picks the printer of the finding's kind.

use std::io::Write;

use serde_json::json;

use crate::check::{Facts, Finding};
use crate::cli::ModeArgs;
use crate::outcome::{Class, Speed};
use crate::ping::PingOutcome;
use crate::spec::{LandmarkSpec, PingSpec, TcpSpec, TlsSpec};
use crate::tcp::TcpOutcome;
use crate::text::{quoted, shown};
use crate::tls::TlsOutcome;
use crate::verdict::Verdict;

/// Prints what a check found, as `mode` asks, with its exit code.
pub(crate) fn print(mode: &ModeArgs, found: &Finding<'_>, exit_code: u8) {
    match &found.facts {
        Facts::Landmark(spec, outcome) => {
            // Judged already (the exit code): healthy is the OK class.
            let verdict = Verdict {
                outcome,
                healthy: found.class == Class::Ok,
                exit_code,
            };
            print_landmark(spec, mode, &verdict)
        }
        Facts::Tcp(spec, o) => print_tcp(spec, mode, o, exit_code),
        Facts::Ping(spec, o) => print_ping(spec, mode, o, exit_code),
        Facts::Tls(spec, o) => print_tls(spec, mode, o, exit_code),
    }
}

/// Prints a landmark check's verdict: one line (or JSON, or a Nagios
/// line) on stdout, and on failure one line on stderr naming its class.
fn print_landmark(spec: &LandmarkSpec, mode: &ModeArgs, v: &Verdict) {
    if mode.quiet {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = if mode.json {
        writeln!(out, "{}", to_json(spec, v))
    } else if mode.nagios {
        writeln!(out, "{}", nagios_line(spec, v))
    } else {
        writeln!(out, "{}", line(spec, v))
    };
    if let Some(class) = v.class() {
        eprintln!("health-probe: {class}: {}", problem(spec, v));
    }
}

fn target(spec: &LandmarkSpec, v: &Verdict) -> String {
    named(&spec.addr, v.outcome.addr)
}

/// What the user typed, with the address it became when that differs:
/// `db.example:9100 (10.0.0.5:9100)`.
fn named(typed: &str, addr: Option<impl std::fmt::Display>) -> String {
    match addr.map(|a| a.to_string()) {
        Some(a) if a != typed => format!("{typed} ({a})"),
        _ => typed.to_string(),
    }
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

/// `OK 127.0.0.1:9100 state=ok weight=100 rtt=0.41ms detail="serving"`
fn line(spec: &LandmarkSpec, v: &Verdict) -> String {
    let mut s = format!(
        "{} {}",
        if v.healthy { "OK" } else { "FAIL" },
        target(spec, v)
    );
    if let Some(c) = &spec.component {
        s.push_str(&format!(" component={c}"));
    }
    match (v.reply(), v.error()) {
        (Some(r), _) => {
            s.push_str(&format!(" state={}", r.state));
            if let Some(w) = r.weight {
                s.push_str(&format!(" weight={w}"));
            }
            s.push_str(&format!(" rtt={}", ms(v.outcome.elapsed)));
            s.push_str(&format!(" detail={}", quoted(&r.detail)));
        }
        (None, Some(e)) => {
            s.push_str(&format!(
                " class={} rtt={}",
                e.class(),
                ms(v.outcome.elapsed)
            ));
            s.push_str(&format!(" detail={}", quoted(&e.to_string())));
        }
        (None, None) => {}
    }
    s
}

/// The stderr sentence after `health-probe: CLASS: `.
fn problem(spec: &LandmarkSpec, v: &Verdict) -> String {
    match (v.reply(), v.error()) {
        (Some(r), _) => {
            let expected: Vec<&str> = spec.expect.iter().map(|s| s.as_str()).collect();
            format!(
                "{} is {}, expected {}: {}",
                target(spec, v),
                r.state,
                expected.join(","),
                if r.detail.is_empty() {
                    "(no detail)".into()
                } else {
                    shown(&r.detail)
                }
            )
        }
        (None, Some(e)) => format!("{}: {}", target(spec, v), shown(&e.to_string())),
        (None, None) => String::new(),
    }
}

/// `LANDMARK OK - 127.0.0.1:9100 is ok: serving|time=0.000280s;;;0.000000;1.000000 ...`,
/// shaped like check_tcp's status line and perfdata.
fn nagios_line(spec: &LandmarkSpec, v: &Verdict) -> String {
    let status = crate::verdict::nagios_status(v.outcome, v.healthy);
    let summary = match (v.reply(), v.error()) {
        (Some(r), _) => format!("{} is {}: {}", target(spec, v), r.state, shown(&r.detail)),
        (None, Some(e)) => format!(
            "{} {}: {}",
            target(spec, v),
            e.class(),
            shown(&e.to_string())
        ),
        (None, None) => target(spec, v),
    };
    let mut perf = format!(
        "time={:.6}s;;;0.000000;{:.6}",
        v.outcome.elapsed.as_secs_f64(),
        spec.timeout.as_secs_f64()
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

fn to_json(spec: &LandmarkSpec, v: &Verdict) -> serde_json::Value {
    let reply = v.reply();
    json!({
        "verdict": if v.healthy { "ok" } else { "fail" },
        "exit_code": v.exit_code,
        "target": &spec.addr,
        "addr": v.outcome.addr.map(|a| a.to_string()),
        "component": spec.component,
        "expected": spec.expect.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "rtt_ms": json_ms(v.outcome.elapsed),
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

/// Milliseconds for JSON: microsecond resolution, without float noise in
/// the last digits.
fn json_ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The stderr line of a failed `tcp`, `ping` or `tls` check.
fn print_class_failure(class: Class, reason: &str, target: &str, detail: &str) {
    eprintln!(
        "health-probe: {} ({reason}): {target}: {}",
        class.as_str(),
        shown(detail)
    );
}

/// Prints a `tcp` check: one line (or JSON, or a Nagios line) on stdout,
/// and on failure one line on stderr naming the class and reason.
fn print_tcp(args: &TcpSpec, mode: &ModeArgs, o: &TcpOutcome, exit_code: u8) {
    if mode.quiet {
        return;
    }
    let target = named(&args.addr, o.addr);
    let speed = o.speed(args);
    let mut out = std::io::stdout().lock();
    let _ = if mode.json {
        writeln!(out, "{}", tcp_json(args, o, exit_code, speed))
    } else if mode.nagios {
        writeln!(out, "{}", tcp_nagios_line(args, o, &target))
    } else {
        let mut line = format!("{} {target} rtt={}", o.class.as_str(), ms(o.elapsed));
        if let Some(r) = o.reason {
            line.push_str(&format!(" reason={r}"));
        }
        if let Some(slow) = speed.label() {
            line.push_str(&format!(" slow={slow}"));
        }
        line.push_str(&format!(" detail={}", quoted(&o.detail)));
        if !o.answer.is_empty() {
            line.push_str(&format!(" answer={}", quoted(&answer_text(&o.answer))));
        }
        writeln!(out, "{line}")
    };
    match (o.reason, speed) {
        (Some(reason), _) => print_class_failure(o.class, reason, &target, &o.detail),
        (None, Speed::OverCrit) => eprintln!(
            "health-probe: slow: {target} answered in {}, over --crit {}",
            ms(o.elapsed),
            args.crit.map(ms).unwrap_or_default()
        ),
        _ => {}
    }
}

/// The answer as text: lossy UTF-8, at most 200 characters (as is for
/// JSON; through [`quoted`] or [`shown`] for a terminal).
fn answer_text(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.into_owned(),
    }
}

/// `TCP OK - 0.000 second response time on 127.0.0.1 port 22 [SSH-2.0]|time=...`,
/// shaped like check_tcp's.
fn tcp_nagios_line(args: &TcpSpec, o: &TcpOutcome, target: &str) -> String {
    let status = crate::verdict::class_nagios_status(o.class, o.reason, o.speed(args));
    let summary = match o.class {
        Class::Ok => {
            let mut s = format!(
                "{:.3} second response time on {target}",
                o.elapsed.as_secs_f64()
            );
            if !o.answer.is_empty() {
                s.push_str(&format!(" [{}]", shown(answer_text(&o.answer).trim_end())));
            }
            s
        }
        _ => format!("{} {target}: {}", o.class.as_str(), shown(&o.detail)),
    };
    let secs = |d: Option<std::time::Duration>| {
        d.map(|d| format!("{:.6}", d.as_secs_f64()))
            .unwrap_or_default()
    };
    format!(
        "TCP {} - {}|time={:.6}s;{};{};0.000000;{:.6}",
        status.label(),
        summary.replace('|', "/"),
        o.elapsed.as_secs_f64(),
        secs(args.warn),
        secs(args.crit),
        args.timeout.as_secs_f64()
    )
}

fn tcp_json(args: &TcpSpec, o: &TcpOutcome, exit_code: u8, speed: Speed) -> serde_json::Value {
    let ms = json_ms;
    json!({
        "check": "tcp",
        "class": o.class.as_str(),
        "reason": o.reason,
        "exit_code": exit_code,
        "target": args.addr,
        "addr": o.addr.map(|a| a.to_string()),
        "rtt_ms": ms(o.elapsed),
        "slow": speed.label(),
        "warn_ms": args.warn.map(ms),
        "crit_ms": args.crit.map(ms),
        "detail": o.detail,
        "answer": (!o.answer.is_empty()).then(|| answer_text(&o.answer)),
    })
}

/// Prints a `ping` check: one line (or JSON, or a Nagios line) on stdout,
/// and on failure one line on stderr naming the class and reason.
fn print_ping(args: &PingSpec, mode: &ModeArgs, o: &PingOutcome, exit_code: u8) {
    if mode.quiet {
        return;
    }
    let target = named(&args.host, o.addr);
    let speed = o.speed(args);
    let opt_ms = |d: Option<std::time::Duration>| d.map(ms).unwrap_or_else(|| "-".into());
    let mut out = std::io::stdout().lock();
    let _ = if mode.json {
        writeln!(out, "{}", ping_json(args, o, exit_code, speed))
    } else if mode.nagios {
        writeln!(out, "{}", ping_nagios_line(args, o, &target))
    } else {
        let mut line = format!(
            "{} {target} rtt={} sent={} received={} loss={:.0}% min={} max={}",
            o.class.as_str(),
            opt_ms(o.avg()),
            o.sent,
            o.received,
            o.loss_percent(),
            opt_ms(o.min()),
            opt_ms(o.max()),
        );
        if let Some(r) = o.reason {
            line.push_str(&format!(" reason={r}"));
        }
        if let Some(slow) = speed.label() {
            line.push_str(&format!(" slow={slow}"));
        }
        line.push_str(&format!(" detail={}", quoted(&o.detail)));
        writeln!(out, "{line}")
    };
    match (o.reason, speed) {
        (Some(reason), _) => print_class_failure(o.class, reason, &target, &o.detail),
        (None, Speed::OverCrit) => eprintln!(
            "health-probe: slow: {target} averaged {}, over --crit {}",
            opt_ms(o.avg()),
            args.crit.map(ms).unwrap_or_default()
        ),
        _ => {}
    }
}

/// `PING OK - 127.0.0.1: 0% loss, rta 0.052ms|rta=0.052000ms;...;0 pl=0%;;;0;100`,
/// shaped like check_ping's.
fn ping_nagios_line(args: &PingSpec, o: &PingOutcome, target: &str) -> String {
    let status = crate::verdict::class_nagios_status(o.class, o.reason, o.speed(args));
    let msec = |d: Option<std::time::Duration>| {
        d.map(|d| format!("{:.6}", d.as_secs_f64() * 1000.0))
            .unwrap_or_default()
    };
    let summary = match o.class {
        Class::Ok => format!(
            "{target}: {:.0}% loss, rta {}ms",
            o.loss_percent(),
            msec(o.avg())
        ),
        _ => format!("{} {target}: {}", o.class.as_str(), shown(&o.detail)),
    };
    format!(
        "PING {} - {}|rta={}ms;{};{};0 pl={:.0}%;;;0;100",
        status.label(),
        summary.replace('|', "/"),
        msec(o.avg()),
        msec(args.warn),
        msec(args.crit),
        o.loss_percent()
    )
}

fn ping_json(args: &PingSpec, o: &PingOutcome, exit_code: u8, speed: Speed) -> serde_json::Value {
    let ms = json_ms;
    json!({
        "check": "ping",
        "class": o.class.as_str(),
        "reason": o.reason,
        "exit_code": exit_code,
        "target": args.host,
        "addr": o.addr.map(|a| a.to_string()),
        "socket": o.socket.map(|k| k.as_str()),
        "sent": o.sent,
        "received": o.received,
        "loss_percent": o.loss_percent(),
        "rtt_ms": o.avg().map(ms),
        "min_ms": o.min().map(ms),
        "max_ms": o.max().map(ms),
        "rtts_ms": o.rtts.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        "slow": speed.label(),
        "warn_ms": args.warn.map(ms),
        "crit_ms": args.crit.map(ms),
        "detail": o.detail,
    })
}

/// Prints a `tls` check: one line (or JSON, or a Nagios line) on stdout,
/// and on failure one line on stderr naming the class and reason.
fn print_tls(spec: &TlsSpec, mode: &ModeArgs, o: &TlsOutcome, exit_code: u8) {
    if mode.quiet {
        return;
    }
    let target = named(&spec.addr, o.addr);
    let now = std::time::SystemTime::now();
    let mut out = std::io::stdout().lock();
    let _ = if mode.json {
        writeln!(out, "{}", tls_json(spec, o, exit_code, now))
    } else if mode.nagios {
        writeln!(out, "{}", tls_nagios_line(spec, o, &target, now))
    } else {
        let mut line = format!("{} {target} rtt={}", o.class.as_str(), ms(o.elapsed));
        if let Some(r) = o.reason {
            line.push_str(&format!(" reason={r}"));
        }
        if let Some(v) = o.version {
            line.push_str(&format!(" version={v}"));
        }
        if let Some(c) = &o.cert {
            line.push_str(&format!(
                " days_left={} expires={}",
                c.days_left(now),
                humantime::format_rfc3339_seconds(c.earliest_not_after)
            ));
        }
        if let Some(mark) = o.mark.label() {
            line.push_str(&format!(" cert={mark}"));
        }
        if let Some(c) = &o.cert {
            line.push_str(&format!(
                " subject={} issuer={}",
                quoted(&c.subject),
                quoted(&c.issuer)
            ));
        }
        line.push_str(&format!(" detail={}", quoted(&o.detail)));
        writeln!(out, "{line}")
    };
    if let Some(reason) = o.reason {
        print_class_failure(o.class, reason, &target, &o.detail);
    }
}

/// `TLS OK - 127.0.0.1:8443: TLSv1.3, subject ... expires in 42 days|days_left=42;14;3;; time=...`,
/// with check_tcp -D's thresholds as perfdata.
fn tls_nagios_line(
    spec: &TlsSpec,
    o: &TlsOutcome,
    target: &str,
    now: std::time::SystemTime,
) -> String {
    let status = crate::verdict::class_nagios_status(o.class, o.reason, o.mark);
    let summary = match o.class {
        Class::Ok => format!("{target}: {}", shown(&o.detail)),
        _ => format!("{} {target}: {}", o.class.as_str(), shown(&o.detail)),
    };
    let days = |d: std::time::Duration| d.as_secs() / 86_400;
    let mut perf = String::new();
    if let Some(c) = &o.cert {
        perf.push_str(&format!(
            "days_left={};{};{};; ",
            c.days_left(now),
            days(spec.cert_warn),
            days(spec.cert_crit)
        ));
    }
    perf.push_str(&format!(
        "time={:.6}s;;;0.000000;{:.6}",
        o.elapsed.as_secs_f64(),
        spec.timeout.as_secs_f64()
    ));
    format!(
        "TLS {} - {}|{perf}",
        status.label(),
        summary.replace('|', "/")
    )
}

fn tls_json(
    spec: &TlsSpec,
    o: &TlsOutcome,
    exit_code: u8,
    now: std::time::SystemTime,
) -> serde_json::Value {
    let rfc3339 = |t| humantime::format_rfc3339_seconds(t).to_string();
    json!({
        "check": "tls",
        "class": o.class.as_str(),
        "reason": o.reason,
        "exit_code": exit_code,
        "target": spec.addr,
        "addr": o.addr.map(|a| a.to_string()),
        "sni": spec.sni,
        "starttls": spec.starttls.map(|p| p.as_str()),
        "rtt_ms": json_ms(o.elapsed),
        "version": o.version,
        "cert": o.cert.as_ref().map(|c| json!({
            "subject": c.subject,
            "issuer": c.issuer,
            "not_after": rfc3339(c.leaf_not_after),
            "earliest_not_after": rfc3339(c.earliest_not_after),
            "days_left": c.days_left(now),
            "chain": c.chain,
        })),
        "cert_mark": o.mark.label(),
        "cert_warn_days": spec.cert_warn.as_secs() / 86_400,
        "cert_crit_days": spec.cert_crit.as_secs() / 86_400,
        "insecure": spec.insecure,
        "detail": o.detail,
    })
}
