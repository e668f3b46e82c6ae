//! `health-probe ping HOST`: ICMP echo, `--count` requests `--interval`
//! apart, all within one `--timeout`, judged in the same four classes as
//! `tcp` (OK, ERR, NG, WR).
//!
//! The socket is an unprivileged datagram ICMP socket where the system
//! allows it (the caller's group is within `net.ipv4.ping_group_range`,
//! which covers ICMPv6 too), otherwise a raw socket (root or CAP_NET_RAW).
//! When neither opens, the error names the sysctl and its current value.
//! Echo packets are built here by hand: they are eight header bytes, and
//! the ICMP crates on crates.io are either unmaintained or bring a runtime.

use std::io::{self, ErrorKind, Read};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::outcome::{Class, Speed};
use crate::probe::ProbeError;
use crate::source::Source;
use crate::spec::PingSpec;
use crate::target;

/// Payload of each echo request: recognisable in a capture.
const PAYLOAD: &[u8; 24] = b"landmark health-probe   ";

/// What one ping check found.
#[derive(Debug)]
pub struct PingOutcome {
    /// The address pinged, once resolved.
    pub addr: Option<IpAddr>,
    /// The outcome's class.
    pub class: Class,
    /// A stable word for the cause (`loss`, `unreachable`, `timeout`,
    /// `dns`, `no-route`, `not-permitted`, ...); `None` for `OK`.
    pub reason: Option<&'static str>,
    /// One human sentence.
    pub detail: String,
    /// Echo requests sent.
    pub sent: u16,
    /// Replies received, each counted once.
    pub received: u16,
    /// Round-trip times of the replies, in order of arrival.
    pub rtts: Vec<Duration>,
    /// The kind of ICMP socket the system allowed.
    pub socket: Option<SocketKind>,
    /// From start to verdict.
    pub elapsed: Duration,
}

impl PingOutcome {
    /// Requests without a reply, in percent of those sent (100 when none
    /// was sent).
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 100.0;
        }
        100.0 * f64::from(self.sent - self.received) / f64::from(self.sent)
    }

    /// The fastest reply's round trip.
    pub fn min(&self) -> Option<Duration> {
        self.rtts.iter().min().copied()
    }

    /// The slowest reply's round trip.
    pub fn max(&self) -> Option<Duration> {
        self.rtts.iter().max().copied()
    }

    /// The average round trip of the replies.
    pub fn avg(&self) -> Option<Duration> {
        let n = u32::try_from(self.rtts.len()).ok().filter(|n| *n > 0)?;
        Some(self.rtts.iter().sum::<Duration>() / n)
    }

    /// Average round trip against `--warn` / `--crit`.
    pub fn speed(&self, args: &PingSpec) -> Speed {
        Speed::of(self.avg(), args.warn, args.crit)
    }
}

/// An unprivileged datagram ICMP socket, or a raw one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// `SOCK_DGRAM` ICMP, allowed by `net.ipv4.ping_group_range`.
    Dgram,
    /// `SOCK_RAW`, for root or CAP_NET_RAW.
    Raw,
}

impl SocketKind {
    /// `dgram` or `raw`, as `--json` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketKind::Dgram => "dgram",
            SocketKind::Raw => "raw",
        }
    }
}

type Failure = (Class, &'static str, String);

/// Runs the check `args` asks for, with blocking sockets.
pub fn run(args: &PingSpec) -> PingOutcome {
    let start = Instant::now();
    let deadline = start + args.timeout;
    let mut o = nothing_sent(Class::Ok, None, String::new());
    match ping(args, deadline, &mut o) {
        Ok(detail) => o.detail = detail,
        Err((class, reason, detail)) => {
            o.class = class;
            o.reason = Some(reason);
            o.detail = detail;
        }
    }
    o.elapsed = start.elapsed();
    o
}

/// The outcome of a check that could not run.
pub fn failed(class: Class, reason: &'static str, detail: String) -> PingOutcome {
    nothing_sent(class, Some(reason), detail)
}

fn nothing_sent(class: Class, reason: Option<&'static str>, detail: String) -> PingOutcome {
    PingOutcome {
        addr: None,
        class,
        reason,
        detail,
        sent: 0,
        received: 0,
        rtts: Vec::new(),
        socket: None,
        elapsed: Duration::ZERO,
    }
}

fn ping(args: &PingSpec, deadline: Instant, o: &mut PingOutcome) -> Result<String, Failure> {
    let source = args.source.as_ref();
    let family = Source::family(source, args.family, &args.host).map_err(crate::tcp::classify)?;
    let ip = target::resolve_host(&args.host, family, deadline).map_err(|e| match e {
        ProbeError::Usage(m) => (Class::Err, "bad-address", m),
        other => (Class::Err, "dns", other.to_string()),
    })?;
    o.addr = Some(ip);
    let (mut socket, kind) = open(ip)?;
    if let Some(source) = source {
        source.bind(&socket, ip).map_err(crate::tcp::classify)?;
    }
    o.socket = Some(kind);
    let dest = SockAddr::from(SocketAddr::new(ip, 0));
    if kind == SocketKind::Dgram {
        // Connected, the socket gets only this host's replies, and with
        // IP_RECVERR a router's "unreachable" ends a `recv` as an error.
        if let Err(e) = socket.connect(&dest) {
            return Err(network_failure(&e, "connect"));
        }
        set_recv_err(&socket, ip);
    }
    // A raw socket stays unconnected: connected, it would drop the
    // unreachable messages, which come from a router, not from `ip`.
    // Raw sockets see every echo reply on the host: ours carry this id.
    // Datagram sockets get the kernel's id and only their own replies.
    let id = (std::process::id() & 0xffff) as u16;
    let count = usize::from(args.count);
    let mut sent_at: Vec<Option<Instant>> = vec![None; count];
    let mut answered = vec![false; count];
    let mut unreachable: Option<io::Error> = None;
    let mut next_send_at = Instant::now();
    let mut buf = [0u8; 1500];
    loop {
        let now = Instant::now();
        let all_sent = usize::from(o.sent) == count;
        if (all_sent && usize::from(o.received) == count) || now >= deadline {
            break;
        }
        if !all_sent && now >= next_send_at {
            let seq = o.sent + 1;
            if let Err(e) = socket.send_to(&echo_request(ip, id, seq), &dest) {
                if o.sent == 0 {
                    return Err(network_failure(&e, "send"));
                }
                unreachable.get_or_insert(e);
            } else {
                sent_at[usize::from(seq - 1)] = Some(Instant::now());
            }
            o.sent = seq;
            next_send_at += args.interval;
            continue;
        }
        let until = if all_sent {
            deadline
        } else {
            next_send_at.min(deadline)
        };
        let wait = until
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| network_failure(&e, "set a timeout on"))?;
        match socket.read(&mut buf) {
            Ok(n) => {
                if let Some(what) = unreachable_for_us(ip, kind, id, &buf[..n]) {
                    unreachable.get_or_insert(io::Error::other(what));
                } else if let Some(seq) = echo_reply_seq(ip, kind, id, &buf[..n]) {
                    let i = usize::from(seq).wrapping_sub(1);
                    if let (Some(Some(t)), Some(false)) = (sent_at.get(i), answered.get(i)) {
                        answered[i] = true;
                        o.received += 1;
                        o.rtts.push(t.elapsed());
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted) => {}
            // An ICMP error (host or port unreachable) for our connected
            // socket: the network answered no.
            Err(e) => {
                unreachable.get_or_insert(e);
            }
        }
    }
    let timeout = humantime::format_duration(args.timeout);
    let summary = format!("{} of {} replies", o.received, o.sent);
    if o.received >= args.min_replies {
        return Ok(summary);
    }
    match (o.received, unreachable) {
        (0, Some(e)) => Err((
            Class::Ng,
            "unreachable",
            format!("{summary}; the network answered: {e}"),
        )),
        (0, None) => Err((
            Class::Wr,
            "timeout",
            format!("no reply within {timeout} ({} sent)", o.sent),
        )),
        (_, _) => Err((
            Class::Ng,
            "loss",
            format!(
                "{summary} within {timeout}, fewer than --min-replies {}",
                args.min_replies
            ),
        )),
    }
}

/// An unprivileged datagram ICMP socket, else a raw one.
fn open(ip: IpAddr) -> Result<(Socket, SocketKind), Failure> {
    let (domain, protocol) = match ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let dgram_err = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(s) => return Ok((s, SocketKind::Dgram)),
        Err(e) => e,
    };
    match Socket::new(domain, Type::RAW, Some(protocol)) {
        Ok(s) => Ok((s, SocketKind::Raw)),
        Err(raw_err) => {
            let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
                .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unreadable".into());
            Err((
                Class::Err,
                "not-permitted",
                format!(
                    "cannot open an ICMP socket: unprivileged ping ({dgram_err}) needs this \
                     process's group (gid {}) within sysctl net.ipv4.ping_group_range \
                     (now \"{range}\"), and a raw socket ({raw_err}) needs root or CAP_NET_RAW",
                    current_gid()
                ),
            ))
        }
    }
}

/// Turns on IP_RECVERR / IPV6_RECVERR. Best effort: without it, a router's
/// "host unreachable" reads as silence (WR) instead of NG. socket2 has no
/// setter for it, hence libc.
fn set_recv_err(socket: &Socket, ip: IpAddr) {
    use std::os::fd::AsRawFd;
    let (level, name) = match ip {
        IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_RECVERR),
        IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
    };
    let on: libc::c_int = 1;
    // SAFETY: a valid fd, and a pointer to a c_int of the length given.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The effective group id, for the error message.
fn current_gid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

fn network_failure(e: &io::Error, what: &str) -> Failure {
    // EINVAL: sending to a blackhole route.
    if crate::tcp::is_unreachable(e) || e.raw_os_error() == Some(libc::EINVAL) {
        (Class::Err, "no-route", format!("cannot {what}: {e}"))
    } else {
        (Class::Err, "network", format!("cannot {what}: {e}"))
    }
}

/// An echo request: type, code, checksum, identifier, sequence, payload.
/// The kernel fills the ICMPv6 checksum (it covers a pseudo-header); the
/// ICMPv4 one is computed here.
fn echo_request(ip: IpAddr, id: u16, seq: u16) -> Vec<u8> {
    let kind = if ip.is_ipv4() { 8 } else { 128 };
    let mut p = vec![kind, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(PAYLOAD);
    if ip.is_ipv4() {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// The internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMP message in `packet`: raw IPv4 sockets deliver the IP header
/// first; the others do not.
fn icmp_part(ip: IpAddr, socket: SocketKind, packet: &[u8]) -> Option<&[u8]> {
    match (ip, packet.first()) {
        (IpAddr::V4(_), Some(b)) if socket == SocketKind::Raw && b >> 4 == 4 => {
            packet.get(usize::from(b & 0x0f) * 4..)
        }
        _ => Some(packet),
    }
}

/// The sequence number of an echo reply meant for us, if `packet` is one.
fn echo_reply_seq(ip: IpAddr, socket: SocketKind, id: u16, packet: &[u8]) -> Option<u16> {
    let icmp = icmp_part(ip, socket, packet)?;
    let reply = if ip.is_ipv4() { 0 } else { 129 };
    if icmp.len() < 8 || icmp[0] != reply || icmp[1] != 0 {
        return None;
    }
    if socket == SocketKind::Raw && u16::from_be_bytes([icmp[4], icmp[5]]) != id {
        return None;
    }
    // An echo reply carries our payload back.
    if icmp.get(8..8 + PAYLOAD.len()) != Some(&PAYLOAD[..]) {
        return None;
    }
    Some(u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// On a raw socket, an ICMP "destination unreachable" quoting one of our
/// echo requests: a router said no. (Datagram sockets get these as errors
/// from `recv` instead.)
fn unreachable_for_us(
    ip: IpAddr,
    socket: SocketKind,
    id: u16,
    packet: &[u8],
) -> Option<&'static str> {
    if socket != SocketKind::Raw {
        return None;
    }
    let icmp = icmp_part(ip, socket, packet)?;
    let (unreachable_type, request_type) = if ip.is_ipv4() { (3, 8) } else { (1, 128) };
    if icmp.len() < 8 || icmp[0] != unreachable_type {
        return None;
    }
    // The quoted packet: its IP header, then the first 8 bytes of ours.
    let quoted = &icmp[8..];
    let inner = if ip.is_ipv4() {
        let ihl = usize::from(quoted.first()? & 0x0f) * 4;
        quoted.get(ihl..)?
    } else {
        quoted.get(40..)?
    };
    if inner.len() < 8 || inner[0] != request_type || u16::from_be_bytes([inner[4], inner[5]]) != id
    {
        return None;
    }
    Some(match (ip.is_ipv4(), icmp[1]) {
        (true, 0) | (false, 0) => "network unreachable",
        (true, 1) | (false, 3) => "host unreachable",
        (true, 9 | 10 | 13) | (false, 1) => "administratively prohibited",
        _ => "destination unreachable",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_echo_request() {
        // type 8, id 0x1234, seq 1, no payload: sum 0x0800+0x1234+0x0001.
        let p = [8, 0, 0, 0, 0x12, 0x34, 0, 1];
        assert_eq!(checksum(&p), !(0x0800u16 + 0x1234 + 0x0001));
        let req = echo_request("127.0.0.1".parse().unwrap(), 0x1234, 1);
        assert_eq!(checksum(&req), 0, "a packet with its checksum sums to zero");
    }

    #[test]
    fn replies_are_recognised_and_others_ignored() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let mut reply = echo_request(v4, 7, 3);
        reply[0] = 0;
        assert_eq!(echo_reply_seq(v4, SocketKind::Dgram, 0, &reply), Some(3));
        assert_eq!(echo_reply_seq(v4, SocketKind::Raw, 7, &reply), Some(3));
        assert_eq!(
            echo_reply_seq(v4, SocketKind::Raw, 8, &reply),
            None,
            "another id"
        );
        // Raw IPv4 delivers a 20-byte IP header first.
        let mut with_ip = vec![0x45; 1];
        with_ip.extend_from_slice(&[0; 19]);
        with_ip.extend_from_slice(&reply);
        assert_eq!(echo_reply_seq(v4, SocketKind::Raw, 7, &with_ip), Some(3));
        // Our own request, looped back, is not a reply.
        let req = echo_request(v4, 7, 3);
        assert_eq!(echo_reply_seq(v4, SocketKind::Dgram, 7, &req), None);
        assert_eq!(echo_reply_seq(v4, SocketKind::Dgram, 7, &reply[..5]), None);
        assert_eq!(
            echo_reply_seq(v4, SocketKind::Dgram, 7, &reply[..20]),
            None,
            "payload cut"
        );
        let v6: IpAddr = "::1".parse().unwrap();
        let mut r6 = echo_request(v6, 7, 9);
        r6[0] = 129;
        assert_eq!(echo_reply_seq(v6, SocketKind::Raw, 7, &r6), Some(9));
    }

    #[test]
    fn unreachable_quoting_our_request_is_recognised() {
        let v4: IpAddr = "10.7.0.1".parse().unwrap();
        let ours = echo_request(v4, 7, 1);
        let ip_header = |proto_payload: &[u8]| {
            let mut p = vec![0x45];
            p.extend_from_slice(&[0; 19]);
            p.extend_from_slice(proto_payload);
            p
        };
        // Outer IP header, ICMP type 3 code 0, quoted IP header + our ICMP.
        let mut icmp = vec![3, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&ip_header(&ours[..8]));
        let packet = ip_header(&icmp);
        assert_eq!(
            unreachable_for_us(v4, SocketKind::Raw, 7, &packet),
            Some("network unreachable")
        );
        assert_eq!(
            unreachable_for_us(v4, SocketKind::Raw, 8, &packet),
            None,
            "another id"
        );
        assert_eq!(unreachable_for_us(v4, SocketKind::Dgram, 7, &packet), None);
        assert_eq!(
            unreachable_for_us(v4, SocketKind::Raw, 7, &packet[..30]),
            None
        );
    }
}
