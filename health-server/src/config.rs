//! [`Builder`]: the endpoint's address, deadlines and limits, with defaults.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use health_proto::DEFAULT_MAX_PAYLOAD;
use ipnet::IpNet;

use crate::protocol::Protocol;

/// Default bind address: every IPv4 interface, port 9100.
pub(crate) const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9100);
/// Default time a check waits for the main thread's answer.
pub(crate) const DEFAULT_ANSWER_DEADLINE: Duration = Duration::from_millis(500);
/// Default time allowed to receive a complete request.
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time allowed to write a reply.
pub(crate) const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default limit on connections held at once, on all ports together. The
/// limit in force is also at most a quarter of the process's open-file
/// limit (`ulimit -n`), so the service keeps the rest.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// Default limit on connections held at once from one source (an IPv4
/// address or an IPv6 /64).
pub(crate) const DEFAULT_MAX_PER_SOURCE: usize = 64;
/// Default age after which a published landmark is reported as `fail`.
pub(crate) const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(5);
/// Default answer time above which a `slow check` event is logged.
pub(crate) const DEFAULT_SLOW_ANSWER: Duration = Duration::from_millis(100);
/// Default limit on `watch` streams open at once, all sources together.
pub(crate) const DEFAULT_MAX_STREAMS: usize = 1024;
/// Default limit on `watch` streams open at once from one source.
pub(crate) const DEFAULT_MAX_STREAMS_PER_SOURCE: usize = 8;

/// Configures and starts a health endpoint. [`crate::spawn`] is
/// `Builder::new().spawn(state_rx)`.
///
/// The defaults, which each setting's method also gives:
///
/// | setting | default |
/// |---|---|
/// | [`bind`](Builder::bind) | `0.0.0.0:9100` |
/// | [`agent_bind`](Builder::agent_bind), [`http_bind`](Builder::http_bind), `grpc_bind` (feature `grpc`) | off |
/// | [`answer_deadline`](Builder::answer_deadline) | 500 ms |
/// | [`read_timeout`](Builder::read_timeout), [`write_timeout`](Builder::write_timeout) | 2 s each |
/// | [`max_connections`](Builder::max_connections) | 16,384, and at most a quarter of `ulimit -n` |
/// | [`max_per_source`](Builder::max_per_source) | 64 |
/// | [`max_payload`](Builder::max_payload) | 64 KiB |
/// | [`allow`](Builder::allow) | everyone |
/// | [`stale_after`](Builder::stale_after) | 5 s |
/// | [`slow_answer`](Builder::slow_answer) | 100 ms |
/// | [`max_streams`](Builder::max_streams) | 1024 |
/// | [`max_streams_per_source`](Builder::max_streams_per_source) | 8 |
/// | [`connections`](Builder::connections) | off |
///
/// ```no_run
/// let (asks, state_rx) = health_server::channel();
/// let server = health_server::Builder::new()
///     .bind("127.0.0.1:9100".parse().unwrap())
///     .answer_deadline(std::time::Duration::from_millis(300))
///     .allow("10.0.0.0/8".parse().unwrap())
///     .spawn(state_rx)?;
/// # drop(asks); drop(server);
/// # Ok::<(), health_server::ServerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    pub(crate) bind: SocketAddr,
    /// Listeners besides the native one, at most one per protocol.
    pub(crate) listen: Vec<(Protocol, SocketAddr)>,
    pub(crate) answer_deadline: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_per_source: usize,
    pub(crate) max_payload: u32,
    pub(crate) allow: Vec<IpNet>,
    pub(crate) stale_after: Duration,
    pub(crate) slow_answer: Duration,
    pub(crate) max_streams: usize,
    pub(crate) max_streams_per_source: usize,
    #[cfg(feature = "connections")]
    pub(crate) connections: Option<crate::connections::Config>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            bind: DEFAULT_BIND,
            listen: Vec::new(),
            answer_deadline: DEFAULT_ANSWER_DEADLINE,
            read_timeout: DEFAULT_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_source: DEFAULT_MAX_PER_SOURCE,
            max_payload: DEFAULT_MAX_PAYLOAD,
            allow: Vec::new(),
            stale_after: DEFAULT_STALE_AFTER,
            slow_answer: DEFAULT_SLOW_ANSWER,
            max_streams: DEFAULT_MAX_STREAMS,
            max_streams_per_source: DEFAULT_MAX_STREAMS_PER_SOURCE,
            #[cfg(feature = "connections")]
            connections: None,
        }
    }
}

impl Builder {
    /// A builder with the documented defaults.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Address to listen on (default `0.0.0.0:9100`). Port 0 picks a free
    /// port; read it back with [`HealthServer::local_addr`](crate::HealthServer::local_addr).
    pub fn bind(mut self, addr: SocketAddr) -> Builder {
        self.bind = addr;
        self
    }

    /// Also serve HAProxy's `agent-check` protocol on `addr` (off by
    /// default): one line per connection, `up ready 75%`, `up drain` or
    /// `down #reason`, mapped from the same landmark.
    pub fn agent_bind(self, addr: SocketAddr) -> Builder {
        self.listen(Protocol::Agent, addr)
    }

    /// Also serve HTTP `GET /healthz`, `/livez` and `/readyz` on `addr` (off
    /// by default), answering 200 or 503 with the landmark as JSON, for
    /// Kubernetes probes and HTTP checkers.
    pub fn http_bind(self, addr: SocketAddr) -> Builder {
        self.listen(Protocol::Http, addr)
    }

    /// Also answer gRPC health v1 (`grpc.health.v1.Health`: Check, Watch,
    /// List) on `addr` (off by default; feature `grpc`), for Kubernetes'
    /// gRPC probes, Envoy and `grpc_health_probe`. The service name is the
    /// component (`""`: the whole service); `ok` and `degraded` are
    /// SERVING, `drain` and `fail` NOT_SERVING.
    #[cfg(feature = "grpc")]
    pub fn grpc_bind(self, addr: SocketAddr) -> Builder {
        self.listen(Protocol::Grpc, addr)
    }

    /// Also speak `protocol` on `addr`, instead of where it was to listen.
    fn listen(mut self, protocol: Protocol, addr: SocketAddr) -> Builder {
        self.listen.retain(|(p, _)| *p != protocol);
        self.listen.push((protocol, addr));
        self
    }

    /// How long a check waits for the main thread (default 500 ms). Past it
    /// the check is answered `fail` "main thread did not answer within ...".
    pub fn answer_deadline(mut self, d: Duration) -> Builder {
        self.answer_deadline = d;
        self
    }

    /// How long to wait for a complete request after accepting a connection
    /// or answering the previous request (default 2 s). Silent and half-open
    /// peers are closed after it.
    pub fn read_timeout(mut self, d: Duration) -> Builder {
        self.read_timeout = d;
        self
    }

    /// How long writing one reply may take (default 2 s). Peers that do not
    /// read are closed after it.
    pub fn write_timeout(mut self, d: Duration) -> Builder {
        self.write_timeout = d;
        self
    }

    /// Most connections held at once, on all ports together (default
    /// 16,384, at least 1; in force, also at most a quarter of the
    /// process's open-file limit). When a new connection would pass it, the
    /// oldest *idle* connection (no request in progress) of the source
    /// holding the most is closed to make room; only when every connection
    /// is busy is the newcomer refused (a `busy` error frame, HTTP 503).
    pub fn max_connections(mut self, n: usize) -> Builder {
        self.max_connections = n.max(1);
        self
    }

    /// Most connections held at once from one source, an IPv4 address or an
    /// IPv6 /64 (default 64, at least 1). A source at its limit that opens
    /// another loses its own oldest idle connection; if none of its
    /// connections is idle, the new one is refused as `busy`.
    pub fn max_per_source(mut self, n: usize) -> Builder {
        self.max_per_source = n.max(1);
        self
    }

    /// Largest payload accepted in a request and sent in a reply (default
    /// 64 KiB). A landmark too large to send is answered as `fail`.
    pub fn max_payload(mut self, bytes: u32) -> Builder {
        self.max_payload = bytes;
        self
    }

    /// Adds a network allowed to connect. With no networks added (the
    /// default), everyone may connect; with some, peers outside them are
    /// closed at once, without an answer. IPv4-mapped IPv6 peers
    /// (`::ffff:10.0.0.5`) are matched as IPv4, and an IPv4-mapped network
    /// (`::ffff:10.0.0.0/104`) as the IPv4 network it names ([`AllowList`]).
    ///
    /// [`AllowList`]: crate::AllowList
    pub fn allow(mut self, net: IpNet) -> Builder {
        self.allow.push(net);
        self
    }

    /// For published landmarks: age after which the landmark is reported as
    /// `fail` "landmark is stale" (default 5 s).
    pub fn stale_after(mut self, d: Duration) -> Builder {
        self.stale_after = d;
        self
    }

    /// Answer time above which a `slow check` tracing event is emitted
    /// (default 100 ms).
    pub fn slow_answer(mut self, d: Duration) -> Builder {
        self.slow_answer = d;
        self
    }

    /// Most `watch` streams open at once, all sources together (default
    /// 1024; at least 1). A stream is also a connection, under the
    /// connection limits; a `watch` over this limit is answered `busy`
    /// and the connection stays open for checks.
    pub fn max_streams(mut self, n: usize) -> Builder {
        self.max_streams = n.max(1);
        self
    }

    /// Most `watch` streams open at once from one source, an IPv4 address
    /// or an IPv6 /64 (default 8; at least 1).
    pub fn max_streams_per_source(mut self, n: usize) -> Builder {
        self.max_streams_per_source = n.max(1);
        self
    }

    /// Also records who is connected to the service's ports (off by
    /// default): a snapshot of their TCP connections every period, kept in
    /// a bounded history, answered to `connections` requests
    /// (`health-probe connections ADDR`), and judged against thresholds
    /// that flag the landmark's `connections` component. See
    /// [`crate::connections::Config`] for what is kept and its memory
    /// bound.
    #[cfg(feature = "connections")]
    pub fn connections(mut self, cfg: crate::connections::Config) -> Builder {
        self.connections = Some(cfg);
        self
    }
}
