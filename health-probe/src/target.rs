//! Turning ADDR into socket addresses within the deadline.
//!
//! Literal IPs never touch the resolver. Host names are resolved by the
//! system resolver on a helper thread, because `getaddrinfo` has no timeout
//! of its own and the probe must end within `--timeout` even when DNS hangs.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Instant;

use crate::probe::ProbeError;

/// An ADDR as written: a literal socket address, or a name still to
/// resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Literal(SocketAddr),
    Name(&'a str, u16),
}

/// Parses `IPv4:PORT`, `[IPv6]:PORT` or `HOST:PORT` without any lookup.
pub fn endpoint(addr: &str) -> Result<Endpoint<'_>, ProbeError> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(Endpoint::Literal(sa));
    }
    let (host, port) = split_host_port(addr)?;
    Ok(Endpoint::Name(host, port))
}

/// Parses `IPv4:PORT` or `[IPv6]:PORT` without any lookup, or resolves
/// `HOST:PORT` by `deadline`.
pub fn resolve(addr: &str, deadline: Instant) -> Result<Vec<SocketAddr>, ProbeError> {
    match endpoint(addr)? {
        Endpoint::Literal(sa) => Ok(vec![sa]),
        Endpoint::Name(host, port) => resolve_with(host, port, deadline, |name| {
            name.to_socket_addrs().map(Vec::from_iter)
        }),
    }
}

/// The async twin of [`resolve`], for the watcher: names go to tokio's
/// resolver (its blocking pool, which bounds the threads a hanging DNS
/// server can hold), cut off at `deadline`.
pub async fn resolve_async(
    addr: &str,
    deadline: tokio::time::Instant,
) -> Result<Vec<SocketAddr>, ProbeError> {
    match endpoint(addr)? {
        Endpoint::Literal(sa) => Ok(vec![sa]),
        Endpoint::Name(host, port) => {
            let found = tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| timed_out())
                .and_then(|r| r.map(Vec::from_iter));
            lookup_result(host, found)
        }
    }
}

/// A literal IP, or `None` for a host name (no port) still to resolve.
pub fn host(host: &str) -> Result<Option<IpAddr>, ProbeError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    if host.is_empty() || host.contains(|c: char| c == ':' || c == '/' || c.is_whitespace()) {
        return Err(ProbeError::Usage(format!(
            "invalid HOST {host:?}: expected a host name or an IP address, without a port"
        )));
    }
    Ok(None)
}

/// Parses a literal IP without any lookup, or resolves a host name (no
/// port) by `deadline`, for checks that have no port (ping).
pub fn resolve_host(name: &str, deadline: Instant) -> Result<Vec<IpAddr>, ProbeError> {
    if let Some(ip) = host(name)? {
        return Ok(vec![ip]);
    }
    let addrs = resolve_with(name, 0, deadline, |name| {
        name.to_socket_addrs().map(Vec::from_iter)
    })?;
    Ok(addrs.into_iter().map(|a| a.ip()).collect())
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "name resolution did not finish within the timeout",
    )
}

/// A lookup's answer as the probe reports it: addresses, or a dns error.
fn lookup_result(
    host: &str,
    found: std::io::Result<Vec<SocketAddr>>,
) -> Result<Vec<SocketAddr>, ProbeError> {
    match found {
        Ok(addrs) if !addrs.is_empty() => Ok(addrs),
        Ok(_) => Err(ProbeError::Dns {
            host: host.to_string(),
            reason: "no addresses found".into(),
        }),
        Err(e) => Err(ProbeError::Dns {
            host: host.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Runs `lookup` (the system resolver, or a stand-in in tests) on a helper
/// thread and waits for it no later than `deadline`.
fn resolve_with(
    host: &str,
    port: u16,
    deadline: Instant,
    lookup: impl FnOnce(String) -> std::io::Result<Vec<SocketAddr>> + Send + 'static,
) -> Result<Vec<SocketAddr>, ProbeError> {
    let name = format!("{host}:{port}");
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send(lookup(name));
        })
        .map_err(|e| ProbeError::Dns {
            host: host.to_string(),
            reason: format!("cannot start resolver thread: {e}"),
        })?;
    let remaining = deadline.saturating_duration_since(Instant::now());
    // On timeout the lookup thread is left behind until the resolver gives
    // up: the one-shot probe exits right after; in the watcher, a ping
    // target whose DNS hangs leaves one such thread per check until then.
    let found = rx
        .recv_timeout(remaining)
        .unwrap_or_else(|_| Err(timed_out()));
    lookup_result(host, found)
}

fn split_host_port(addr: &str) -> Result<(&str, u16), ProbeError> {
    let usage = |why: &str| ProbeError::Usage(format!("invalid ADDR {addr:?}: {why}"));
    if addr.starts_with('[') {
        return Err(usage(
            "expected [IPv6]:PORT with a valid IPv6 address and port",
        ));
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| usage("expected HOST:PORT"))?;
    if host.is_empty() {
        return Err(usage("empty host"));
    }
    if host.contains(':') {
        return Err(usage("IPv6 addresses need brackets: [IPv6]:PORT"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| usage("port must be 1-65535"))?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(1)
    }

    #[test]
    fn literals_parse_without_lookup() {
        assert_eq!(
            resolve("127.0.0.1:9100", soon()).unwrap(),
            vec!["127.0.0.1:9100".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:9100", soon()).unwrap(),
            vec!["[::1]:9100".parse().unwrap()]
        );
    }

    #[test]
    fn a_hanging_resolver_is_cut_off_at_the_deadline() {
        let t = Instant::now();
        let r = resolve_with("slow.example", 80, t + Duration::from_millis(200), |_| {
            std::thread::sleep(Duration::from_secs(5));
            Ok(vec![])
        });
        let took = t.elapsed();
        match r {
            Err(ProbeError::Dns { host, reason }) => {
                assert_eq!(host, "slow.example");
                assert!(
                    reason.contains("did not finish within the timeout"),
                    "{reason}"
                );
            }
            other => panic!("expected a dns error, got {other:?}"),
        }
        assert!(took < Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn resolver_errors_and_empty_answers_are_dns() {
        let r = resolve_with("x", 1, soon(), |_| {
            Err(std::io::Error::other("failed to lookup address"))
        });
        assert!(matches!(r, Err(ProbeError::Dns { .. })));
        let r = resolve_with("x", 1, soon(), |_| Ok(vec![]));
        assert!(matches!(r, Err(ProbeError::Dns { reason, .. }) if reason == "no addresses found"));
    }

    #[test]
    fn malformed_addresses_are_usage_errors() {
        for bad in [
            "9100",
            "host:",
            "host:0",
            "host:70000",
            ":9100",
            "::1:9100",
            "[::1]:x",
            "[nope]:1",
        ] {
            assert!(
                matches!(resolve(bad, soon()), Err(ProbeError::Usage(_))),
                "{bad}"
            );
        }
    }
}
