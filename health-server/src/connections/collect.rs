//! Reading the TCP sockets of the service's own listening ports from the
//! kernel through netlink sock_diag (the interface `ss` uses), not by
//! parsing `/proc/net/tcp`.
//!
//! One [`collect`] is one dump per address family (IPv4, IPv6), filtered in
//! the kernel by TCP state and by local port, so the cost follows the
//! service's own connections, not the machine's. For every socket: the
//! client's address and port, the local port, the state, the receive and
//! send queues, and from `tcp_info` the smoothed RTT and retransmits.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{
    nlas::Nla, ExtensionFlags, InetRequest, SocketId, StateFlags,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NetlinkAddr};

pub use health_proto::TcpState;

/// How long one dump may wait for the kernel's next message.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// One socket of the service's ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The service's address and port.
    pub local: SocketAddr,
    /// The client (unspecified address and port 0 for a listener).
    pub remote: SocketAddr,
    /// The socket's TCP state.
    pub state: TcpState,
    /// Bytes received and not read by the service (listeners: the accept
    /// queue).
    pub recv_queue: u32,
    /// Bytes sent and not acknowledged by the client.
    pub send_queue: u32,
    /// Smoothed round trip, from `tcp_info` (absent for TIME_WAIT and
    /// SYN_RECV sockets, which have none, and for listeners).
    pub rtt_us: Option<u32>,
    /// Retransmitted segments over the connection's life, from `tcp_info`.
    pub retransmits: Option<u32>,
}

/// Why sockets could not be read from the kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// The netlink socket failed.
    #[error("netlink sock_diag: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel's answer could not be read.
    #[error("netlink sock_diag: malformed message from the kernel: {0}")]
    Malformed(String),
    /// The kernel answered with this errno.
    #[error("netlink sock_diag: the kernel answered error {0}")]
    Kernel(i32),
}

/// The sockets found, at most `max` of them.
#[derive(Debug, Default)]
pub struct Collected {
    /// The sockets, at most `max`.
    pub connections: Vec<Connection>,
    /// More sockets matched than `max`; the rest were read and dropped.
    pub truncated: bool,
}

/// Reads the TCP sockets whose local port is one of `ports` and whose
/// state is one of `states`, IPv4 and IPv6, keeping at most `max`.
pub fn collect(ports: &[u16], states: &[TcpState], max: usize) -> Result<Collected, CollectError> {
    let mut out = Collected::default();
    if ports.is_empty() || states.is_empty() {
        return Ok(out);
    }
    let socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket2::SockRef::from(&socket).set_read_timeout(Some(READ_TIMEOUT))?;
    let state_bits = states.iter().fold(0u32, |bits, s| bits | 1 << s.number());
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    for family in [AF_INET, AF_INET6] {
        for port in &ports {
            dump(&socket, family, state_bits, *port, max, &mut out)?;
        }
    }
    Ok(out)
}

fn dump(
    socket: &Socket,
    family: u8,
    states: u32,
    port: u16,
    max: usize,
    out: &mut Collected,
) -> Result<(), CollectError> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::INFO,
            states: StateFlags::from_bits_retain(states),
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    message.finalize();
    let mut request = vec![0; message.buffer_len()];
    message.serialize(&mut request);
    append_attribute(&mut request, INET_DIAG_REQ_BYTECODE, &port_filter(port));
    socket.send_to(&request, &NetlinkAddr::new(0, 0), 0)?;

    // One datagram holds many messages; 64 KiB is what `ss` reads with.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut at = 0;
        while at < n {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(&buf[at..n])
                .map_err(|e| CollectError::Malformed(e.to_string()))?;
            let len = message.header.length as usize;
            if len == 0 {
                return Err(CollectError::Malformed("zero-length message".into()));
            }
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return Err(CollectError::Kernel(e.code.map_or(0, |c| c.get())))
                }
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    if out.connections.len() >= max {
                        out.truncated = true;
                    } else if let Some(c) = connection(&r) {
                        out.connections.push(c);
                    }
                }
                _ => {}
            }
            // Messages are 4-byte aligned within the datagram.
            at += (len + 3) & !3;
        }
    }
}

fn connection(r: &netlink_packet_sock_diag::inet::InetResponse) -> Option<Connection> {
    let id = &r.header.socket_id;
    let state = TcpState::from_number(r.header.state)?;
    let (mut rtt_us, mut retransmits) = (None, None);
    // A listener's tcp_info is all zeros: no round trip to report.
    for nla in r.nlas.iter().filter(|_| state != TcpState::Listen) {
        if let Nla::TcpInfo(info) = nla {
            rtt_us = Some(info.rtt);
            retransmits = Some(info.total_retrans);
        }
    }
    Some(Connection {
        local: SocketAddr::new(unmapped(id.source_address), id.source_port),
        remote: SocketAddr::new(unmapped(id.destination_address), id.destination_port),
        state,
        recv_queue: r.header.recv_queue,
        send_queue: r.header.send_queue,
        rtt_us,
        retransmits,
    })
}

/// IPv4 clients of a dual-stack listener appear as `::ffff:a.b.c.d`.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `INET_DIAG_REQ_BYTECODE` (linux/inet_diag.h).
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;

/// A sock_diag filter program: local port is `port`. Written by hand
/// because netlink-packet-sock-diag builds requests without request
/// attributes; the format is linux/inet_diag.h's `inet_diag_bc_op`s, run by
/// the kernel's `inet_diag_bc_run`: each op jumps `yes` or `no` bytes
/// ahead; landing exactly on the end accepts, jumping past it rejects. The
/// kernel's audit only admits jumps onto the chain of `yes` jumps, which
/// makes an OR of ports awkward; one dump per port is simpler and, for the
/// few ports a service has, as cheap.
fn port_filter(port: u16) -> Vec<u8> {
    let mut program = Vec::with_capacity(16);
    // "sport >= port": yes, the next op; no, past the end (reject).
    op(&mut program, INET_DIAG_BC_S_GE, 8, 16 + 4);
    op(&mut program, 0, 0, port);
    // "sport <= port": yes, the end (accept); no, past it.
    op(&mut program, INET_DIAG_BC_S_LE, 8, 8 + 4);
    op(&mut program, 0, 0, port);
    program
}

/// One `inet_diag_bc_op`: code, yes (u8), no (u16, native order).
fn op(program: &mut Vec<u8>, code: u8, yes: u8, no: u16) {
    program.push(code);
    program.push(yes);
    program.extend_from_slice(&no.to_ne_bytes());
}

/// Appends a netlink attribute to a serialized message and fixes its
/// length.
fn append_attribute(message: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    message.extend_from_slice(&(len as u16).to_ne_bytes());
    message.extend_from_slice(&kind.to_ne_bytes());
    message.extend_from_slice(value);
    message.resize((message.len() + 3) & !3, 0);
    let total = message.len() as u32;
    message[..4].copy_from_slice(&total.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_filter_accepts_at_the_end_and_rejects_past_it() {
        let p = port_filter(9100);
        assert_eq!(p.len(), 16);
        assert_eq!(&p[0..4], &[INET_DIAG_BC_S_GE, 8, 20, 0]);
        assert_eq!(u16::from_ne_bytes([p[6], p[7]]), 9100);
        assert_eq!(&p[8..12], &[INET_DIAG_BC_S_LE, 8, 12, 0]);
        assert_eq!(u16::from_ne_bytes([p[14], p[15]]), 9100);
    }
}
