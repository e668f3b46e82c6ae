//! Allow-lists: which client addresses may use a listener. One type for
//! every listener of this workspace (the endpoint's ports, its connection
//! reports, the watcher's `http_allow`), so that they all match alike:
//!
//! - an IPv4 client that reaches a dual-stack socket as `::ffff:a.b.c.d`
//!   is matched as the IPv4 address it is;
//! - an IPv4-mapped network (`::ffff:127.0.0.0/104`) names the IPv4
//!   network it maps (`127.0.0.0/8`), so it matches those same clients;
//! - a list is either everyone, or exactly the networks in it: an empty
//!   list lets no one in (it fails closed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// The network type the lists hold (the `ipnet` crate's), for callers
/// that parse their own.
pub use ipnet::IpNet;

/// Which client addresses may connect: everyone, or the clients inside a
/// list of networks (none, if the list is empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowList {
    /// `None`: everyone.
    networks: Option<Vec<IpNet>>,
}

impl AllowList {
    /// Every client.
    pub fn everyone() -> AllowList {
        AllowList { networks: None }
    }

    /// Only the clients inside `networks`; no client at all if it is
    /// empty.
    pub fn only(networks: impl IntoIterator<Item = IpNet>) -> AllowList {
        AllowList {
            networks: Some(networks.into_iter().map(canonical).collect()),
        }
    }

    /// Clients on this host: `127.0.0.0/8` and `::1`.
    pub fn loopback() -> AllowList {
        AllowList::only([
            IpNet::V4(Ipv4Net::new(Ipv4Addr::LOCALHOST, 8).expect("a /8")),
            IpNet::V6(Ipv6Net::new(Ipv6Addr::LOCALHOST, 128).expect("a /128")),
        ])
    }

    /// Whether every client is allowed.
    pub fn is_everyone(&self) -> bool {
        self.networks.is_none()
    }

    /// The networks allowed; `None` for everyone.
    pub fn networks(&self) -> Option<&[IpNet]> {
        self.networks.as_deref()
    }

    /// Whether a client at `ip` may connect.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let Some(networks) = &self.networks else {
            return true;
        };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        networks.iter().any(|net| net.contains(&ip))
    }
}

/// A network as an allow-list is written: `10.0.0.0/8`, `fd00::/8`, or a
/// single address. An IPv4-mapped network or address is read as the IPv4
/// one it names; one that is not whole in the mapped range
/// (`::ffff:0.0.0.0/95`) is refused, as it would match no IPv4 client.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = text
        .parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| "is not a network (10.0.0.0/8) or an address".to_string())?;
    if let IpNet::V6(v6) = net {
        if v6.addr().to_ipv4_mapped().is_some() && v6.prefix_len() < 96 {
            return Err(
                "reaches outside the IPv4-mapped range ::ffff:0:0/96: write the IPv4 network instead"
                    .to_string(),
            );
        }
    }
    Ok(canonical(net))
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network
/// it names (`10.0.0.0/8`); any other network as it is.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(nets: &[&str]) -> AllowList {
        AllowList::only(nets.iter().map(|n| parse_network(n).unwrap()))
    }

    #[test]
    fn networks_and_mapped_clients() {
        let allow = list(&["10.0.0.0/8", "fd00::/8"]);
        assert!(allow.allows("10.1.2.3".parse().unwrap()));
        assert!(allow.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(allow.allows("fd00::1".parse().unwrap()));
        assert!(!allow.allows("11.0.0.1".parse().unwrap()));
        assert!(!allow.allows("::1".parse().unwrap()));
    }

    #[test]
    fn mapped_networks_name_ipv4_networks() {
        let allow = list(&["::ffff:127.0.0.0/104", "::ffff:192.0.2.7"]);
        assert_eq!(
            allow.networks().unwrap(),
            [
                "127.0.0.0/8".parse::<IpNet>().unwrap(),
                "192.0.2.7/32".parse().unwrap()
            ]
        );
        for client in ["127.0.0.1", "::ffff:127.9.9.9", "192.0.2.7"] {
            assert!(allow.allows(client.parse().unwrap()), "{client}");
        }
        assert!(!allow.allows("128.0.0.1".parse().unwrap()));
        assert!(!allow.allows("192.0.2.8".parse().unwrap()));
        let e = parse_network("::ffff:0.0.0.0/95").unwrap_err();
        assert!(e.contains("IPv4-mapped"), "{e}");
        assert!(parse_network("::/0").is_ok());
        assert!(parse_network("bad").is_err());
    }

    #[test]
    fn empty_lets_no_one_in_and_everyone_lets_all_in() {
        let none = AllowList::only([]);
        assert!(!none.allows("127.0.0.1".parse().unwrap()));
        assert!(!none.allows("::1".parse().unwrap()));
        assert!(AllowList::everyone().allows("192.0.2.1".parse().unwrap()));
        let lo = AllowList::loopback();
        assert!(lo.allows("127.0.0.2".parse().unwrap()));
        assert!(lo.allows("::1".parse().unwrap()));
        assert!(lo.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.allows("192.0.2.1".parse().unwrap()));
    }
}
