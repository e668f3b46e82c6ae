//! Where a check leaves this machine from (`--source`, the watcher's
//! `source` key): a local address the check's socket is bound to, or an
//! interface it is bound to (`SO_BINDTODEVICE`), so that one machine with
//! two uplinks can check a server through each of them.
//!
//! An address source also picks the family of a name's address (a name
//! checked from an IPv4 source is checked at its IPv4 address); a source of
//! one family and a target address of the other is an error of the check
//! (class ERR, reason `source`), as is a source this machine cannot bind:
//! an address it does not have, an interface it does not have, or an
//! interface bind without the privilege for it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::error::ProbeError;
use crate::target::{Endpoint, Family};

/// Longest interface name Linux takes (`IFNAMSIZ` less its NUL).
const MAX_INTERFACE: usize = 15;

/// A check's source: a local address or an interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// Bind the socket to this local address (any port).
    Addr(IpAddr),
    /// Bind the socket to this interface: its routes alone are used.
    Interface(String),
}

/// Why a `--source` or `source` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source {shown} is neither an IP address nor an interface name ({why})")]
pub struct BadSource {
    shown: String,
    why: &'static str,
}

impl FromStr for Source {
    type Err = BadSource;
    fn from_str(s: &str) -> Result<Source, BadSource> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Source::Addr(ip));
        }
        let bad = |why| BadSource {
            shown: crate::text::shown_within(s, 64).to_string(),
            why,
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > MAX_INTERFACE {
            return Err(bad("interface names are at most 15 bytes"));
        }
        // What the kernel refuses in an interface name (dev_valid_name).
        if s == "." || s == ".." || s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
            return Err(bad("an interface name has no '/', ':' or spaces"));
        }
        if s.chars().any(|c| c.is_control() || !c.is_ascii()) {
            return Err(bad("an interface name is printable ASCII"));
        }
        Ok(Source::Interface(s.to_string()))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Addr(ip) => write!(f, "{ip}"),
            Source::Interface(name) => f.write_str(name),
        }
    }
}

impl Source {
    /// The family of `target`'s address to check from `source`: for a
    /// name, an address source's own; else `family` unchanged (a literal
    /// of the other family is refused when the socket is bound). A family
    /// asked for that the source cannot reach is an error.
    pub(crate) fn family(
        source: Option<&Source>,
        family: Family,
        target: &str,
    ) -> Result<Family, ProbeError> {
        let own = match source {
            Some(Source::Addr(IpAddr::V4(_))) => Family::V4,
            Some(Source::Addr(IpAddr::V6(_))) => Family::V6,
            _ => return Ok(family),
        };
        let literal = matches!(crate::target::endpoint(target), Ok(Endpoint::Literal(_)))
            || matches!(crate::target::host(target), Ok(Some(_)));
        if literal {
            return Ok(family);
        }
        if family != Family::Any && family != own {
            return Err(ProbeError::Source(format!(
                "source {} cannot reach an {} address",
                source.map(ToString::to_string).unwrap_or_default(),
                family.name()
            )));
        }
        Ok(own)
    }

    /// Binds `socket`, about to reach `dest`, to this source.
    pub(crate) fn bind(&self, socket: &Socket, dest: IpAddr) -> Result<(), ProbeError> {
        let failed =
            |e: std::io::Error| ProbeError::Source(format!("cannot bind to source {self}: {e}"));
        match self {
            Source::Addr(ip) => {
                if ip.is_ipv4() != dest.is_ipv4() {
                    let family = |ip: &IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
                    return Err(ProbeError::Source(format!(
                        "source {ip} is {} and the target's address {dest} is {}",
                        family(ip),
                        family(&dest)
                    )));
                }
                socket
                    .bind(&SockAddr::from(SocketAddr::new(*ip, 0)))
                    .map_err(failed)
            }
            Source::Interface(name) => socket.bind_device(Some(name.as_bytes())).map_err(failed),
        }
    }

    /// A TCP socket to `dest`, bound to `source`: blocking, not yet
    /// connected.
    pub(crate) fn tcp_socket(source: &Source, dest: SocketAddr) -> Result<Socket, ProbeError> {
        let socket = Socket::new(Domain::for_address(dest), Type::STREAM, None)
            .map_err(ProbeError::Network)?;
        source.bind(&socket, dest.ip())?;
        Ok(socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_interface_names_are_told_apart() {
        assert_eq!(
            "192.0.2.10".parse::<Source>().unwrap(),
            Source::Addr("192.0.2.10".parse().unwrap())
        );
        assert_eq!(
            "2001:db8::1".parse::<Source>().unwrap(),
            Source::Addr("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            "eth1".parse::<Source>().unwrap(),
            Source::Interface("eth1".into())
        );
        for bad in ["", "a/b", "a b", "..", "sixteen-letters!", "é", "eth0:1"] {
            assert!(bad.parse::<Source>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_address_source_picks_and_checks_the_family() {
        let v4: Source = "127.0.0.1".parse().unwrap();
        let name = "localhost:80";
        assert_eq!(
            Source::family(Some(&v4), Family::Any, name).unwrap(),
            Family::V4
        );
        assert!(Source::family(Some(&v4), Family::V6, name).is_err());
        // A literal keeps its own family: binding says what is wrong.
        for literal in ["[::1]:80", "::1"] {
            assert_eq!(
                Source::family(Some(&v4), Family::Any, literal).unwrap(),
                Family::Any
            );
        }
        let eth: Source = "lo".parse().unwrap();
        assert_eq!(
            Source::family(Some(&eth), Family::V6, name).unwrap(),
            Family::V6
        );
        assert_eq!(
            Source::family(None, Family::Any, name).unwrap(),
            Family::Any
        );
    }
}
