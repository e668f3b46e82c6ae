//! Turning ADDR into the one socket address a check tests, within the
//! deadline.
//!
//! Literal IPs never touch the resolver. Host names are resolved by the
//! system resolver on a helper thread, because `getaddrinfo` has no timeout
//! of its own and the probe must end within `--timeout` even when DNS hangs.
//!
//! **One check tests one address**: the first the resolver returns (of the
//! family asked for with `-4`/`-6`). Trying the others in turn would let a
//! half-up dual-stack service look healthy when its IPv6 (or IPv4) side is
//! down, and would spend the deadline on one address before the next; as
//! blackbox_exporter does, a check names the family it wants and tests that.
//! The verdict names the address tried.
//!
//! Literal means strict: `IPv4:PORT` in dotted-quad form, `[IPv6]:PORT`
//! (with an optional zone, `[fe80::1%eth0]:9100`). Shorthands the C
//! resolver would turn into addresses (`127.1`, `0x7f.1`, `2130706433`,
//! `0`) are usage errors, never resolved. Port 0 is a usage error.

use std::net::{IpAddr, SocketAddr, SocketAddrV6, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Instant;

use crate::error::ProbeError;

/// Which address family a check tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// The first address the resolver returns, whatever its family.
    #[default]
    Any,
    /// The first IPv4 address (`-4`).
    V4,
    /// The first IPv6 address (`-6`).
    V6,
}

impl Family {
    fn admits(self, ip: IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::Any => "IP",
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// An ADDR as written: a literal socket address, or a name still to
/// resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// An IP address and port, never resolved.
    Literal(SocketAddr),
    /// A host name and port, for the resolver.
    Name(&'a str, u16),
}

/// Parses `IPv4:PORT`, `[IPv6]:PORT`, `[IPv6%ZONE]:PORT` or `HOST:PORT`
/// without any lookup.
pub fn endpoint(addr: &str) -> Result<Endpoint<'_>, ProbeError> {
    let usage = |why: &str| ProbeError::Usage(format!("invalid ADDR {addr:?}: {why}"));
    let literal = match addr.parse::<SocketAddr>() {
        Ok(sa) => Some(sa),
        Err(_) => zoned(addr).map_err(|why| usage(&why))?,
    };
    if let Some(sa) = literal {
        if sa.port() == 0 {
            return Err(usage("port must be 1-65535"));
        }
        return Ok(Endpoint::Literal(sa));
    }
    let (host, port) = split_host_port(addr)?;
    if numeric_shorthand(host) {
        return Err(usage(
            "not a dotted-quad IPv4 address; write all four parts (127.0.0.1), shorthands are never resolved",
        ));
    }
    Ok(Endpoint::Name(host, port))
}

/// `[IPv6%ZONE]:PORT`: the zone an interface name (`eth0`) or index.
/// `Ok(None)` when `addr` has no zone.
fn zoned(addr: &str) -> Result<Option<SocketAddr>, String> {
    let Some(rest) = addr.strip_prefix('[') else {
        return Ok(None);
    };
    let Some((inside, port)) = rest.split_once("]:") else {
        return Ok(None);
    };
    let Some((ip, zone)) = inside.split_once('%') else {
        return Ok(None);
    };
    let ip: std::net::Ipv6Addr = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| "port must be 1-65535".to_string())?;
    let scope = match zone.parse::<u32>() {
        Ok(index) => index,
        Err(_) => interface_index(zone)?,
    };
    Ok(Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))))
}

/// The index of network interface `name` (an IPv6 zone).
fn interface_index(name: &str) -> Result<u32, String> {
    let c = std::ffi::CString::new(name).map_err(|_| format!("no interface named {name:?}"))?;
    // SAFETY: a NUL-terminated string that lives across the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(format!("no interface named {name:?}")),
        index => Ok(index),
    }
}

/// Whether `host` is one of the numeric IPv4 forms the C resolver
/// (`inet_aton`) accepts besides the dotted quad: one to four parts, each
/// decimal, octal (`017`) or hex (`0x7f`), as in `127.1`, `0x7f.1`,
/// `2130706433`, `0`, `017.0.0.1`. A name such as `1abc.example` is not.
fn numeric_shorthand(host: &str) -> bool {
    let part = |p: &str| match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        Some(hex) => hex.chars().all(|c| c.is_ascii_hexdigit()),
        None => !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()),
    };
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() <= 4 && parts.iter().all(|p| part(p))
}

/// The one address a check of `addr` tests: a literal as written, or the
/// first address of `family` the resolver returns for the name, by
/// `deadline`.
pub(crate) fn resolve(
    addr: &str,
    family: Family,
    deadline: Instant,
) -> Result<SocketAddr, ProbeError> {
    match endpoint(addr)? {
        Endpoint::Literal(sa) => literal_in(sa.ip(), family, addr).map(|()| sa),
        Endpoint::Name(host, port) => {
            let found = resolve_with(host, port, deadline, |name| {
                name.to_socket_addrs().map(Vec::from_iter)
            })?;
            first_of(host, found, family)
        }
    }
}

/// The async twin of [`resolve`], for the watcher: `lookup` resolves a
/// name and port with the caller's runtime (the watcher: tokio's resolver,
/// on its blocking pool, which bounds the threads a hanging DNS server can
/// hold), and answers `None` when the deadline passed first.
#[cfg(feature = "async")]
pub(crate) async fn resolve_async<F, Fut>(
    addr: &str,
    family: Family,
    lookup: F,
) -> Result<SocketAddr, ProbeError>
where
    F: FnOnce(String, u16) -> Fut,
    Fut: std::future::Future<Output = Option<std::io::Result<Vec<SocketAddr>>>>,
{
    match endpoint(addr)? {
        Endpoint::Literal(sa) => literal_in(sa.ip(), family, addr).map(|()| sa),
        Endpoint::Name(host, port) => {
            let found = lookup(host.to_string(), port)
                .await
                .unwrap_or_else(|| Err(timed_out()));
            first_of(host, lookup_result(host, found)?, family)
        }
    }
}

/// Whether a literal address (`addr` as written) is of `family`.
fn literal_in(ip: IpAddr, family: Family, addr: &str) -> Result<(), ProbeError> {
    if family.admits(ip) {
        Ok(())
    } else {
        Err(ProbeError::Usage(format!(
            "{addr} is not an {} address, as -{} asks",
            family.name(),
            if family == Family::V4 { 4 } else { 6 }
        )))
    }
}

/// The first of the resolver's answer in `family`, or a dns error naming
/// what it did return.
fn first_of(host: &str, found: Vec<SocketAddr>, family: Family) -> Result<SocketAddr, ProbeError> {
    found
        .iter()
        .copied()
        .find(|a| family.admits(a.ip()))
        .ok_or_else(|| ProbeError::Dns {
            host: host.to_string(),
            reason: format!(
                "no {} address (the resolver returned {})",
                family.name(),
                found
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
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
    if numeric_shorthand(host) {
        return Err(ProbeError::Usage(format!(
            "invalid HOST {host:?}: not a dotted-quad IPv4 address; write all four parts (127.0.0.1), shorthands are never resolved"
        )));
    }
    Ok(None)
}

/// The one IP a check of `name` tests (ping: no port): a literal as
/// written, or the first of `family` the resolver returns, by `deadline`.
pub(crate) fn resolve_host(
    name: &str,
    family: Family,
    deadline: Instant,
) -> Result<IpAddr, ProbeError> {
    if let Some(ip) = host(name)? {
        return literal_in(ip, family, name).map(|()| ip);
    }
    let addrs = resolve_with(name, 0, deadline, |name| {
        name.to_socket_addrs().map(Vec::from_iter)
    })?;
    first_of(name, addrs, family).map(|a| a.ip())
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
            resolve("127.0.0.1:9100", Family::Any, soon()).unwrap(),
            "127.0.0.1:9100".parse().unwrap()
        );
        assert_eq!(
            resolve("[::1]:9100", Family::V6, soon()).unwrap(),
            "[::1]:9100".parse().unwrap()
        );
        // A zone by interface name or index.
        match resolve("[fe80::1%lo]:9100", Family::Any, soon()).unwrap() {
            SocketAddr::V6(v6) => {
                assert_eq!(v6.ip().to_string(), "fe80::1");
                assert_eq!(v6.scope_id(), interface_index("lo").unwrap());
            }
            other => panic!("{other}"),
        }
        assert!(matches!(
            resolve("[fe80::1%7]:9100", Family::Any, soon()),
            Ok(SocketAddr::V6(v6)) if v6.scope_id() == 7
        ));
        // A literal of the other family than asked for is a usage error.
        assert!(matches!(
            resolve("127.0.0.1:9100", Family::V6, soon()),
            Err(ProbeError::Usage(m)) if m.contains("not an IPv6 address")
        ));
    }

    #[test]
    fn the_first_address_of_the_family_asked_for() {
        let answer: Vec<SocketAddr> = vec![
            "[::1]:9100".parse().unwrap(),
            "127.0.0.1:9100".parse().unwrap(),
            "127.0.0.2:9100".parse().unwrap(),
        ];
        let first = |f| first_of("h", answer.clone(), f).unwrap().to_string();
        assert_eq!(first(Family::Any), "[::1]:9100");
        assert_eq!(first(Family::V4), "127.0.0.1:9100");
        assert_eq!(first(Family::V6), "[::1]:9100");
        let v4_only = vec!["127.0.0.1:1".parse().unwrap()];
        assert!(matches!(
            first_of("h", v4_only, Family::V6),
            Err(ProbeError::Dns { reason, .. }) if reason == "no IPv6 address (the resolver returned 127.0.0.1)"
        ));
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
            "127.0.0.1:0",
            "[::1]:0",
            "127.1:9100",
            "0x7f.1:9100",
            "2130706433:9100",
            "0:9100",
            "017.0.0.1:9100",
            "[fe80::1%no-such-if]:9100",
        ] {
            assert!(
                matches!(resolve(bad, Family::Any, soon()), Err(ProbeError::Usage(_))),
                "{bad}"
            );
        }
        for bad in ["127.1", "2130706433", "0"] {
            assert!(matches!(host(bad), Err(ProbeError::Usage(_))), "{bad}");
        }
        // Names that merely start with a digit are names.
        assert!(matches!(endpoint("1e100.net:80"), Ok(Endpoint::Name(..))));
        assert!(matches!(
            endpoint("3com.example:80"),
            Ok(Endpoint::Name(..))
        ));
    }
}
