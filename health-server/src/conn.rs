//! One accepted connection, from accept to close, and the cheapest way to
//! do its I/O.
//!
//! keepalived, HAProxy and Kubernetes open a new connection for every
//! check, one server at a time: nothing batches, and every syscall and
//! wake-up is paid in full. So a connection starts as a plain non-blocking
//! socket that the runtime's reactor does not know. It is read straight
//! after accept (with deferred accept its request is already in), its reply
//! goes out in one `send`, and a peer that has said it is done (a
//! half-close after its request, as `health-probe` does) is seen with one
//! `recv`. Only a connection that must wait, for the rest of a request, for
//! room to write, or for its peer's next request or close, is registered
//! with the reactor, once, and waits there under the same deadlines.
//!
//! tokio offers I/O only on sockets it has registered (each registration
//! is an `epoll_ctl` to add and another to remove), so these few calls on
//! the unregistered socket are written here, over `socket2`.

use std::io::{self, ErrorKind, Read};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use socket2::{SockRef, Socket};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Most bytes one read takes (a stack buffer, copied into the connection's
/// own): a check request is 16 bytes plus a short payload, an HTTP request
/// head a few hundred.
const READ_CHUNK: usize = 4096;

/// An accepted TCP connection: its socket, registered with the reactor
/// only once it has to wait.
pub(crate) struct Conn {
    /// The socket before registration; `None` after.
    plain: Option<Socket>,
    /// The socket after registration.
    registered: Option<TcpStream>,
    peer: SocketAddr,
}

impl Conn {
    /// A connection accepted as a non-blocking socket.
    pub(crate) fn accepted(socket: Socket, peer: SocketAddr) -> Conn {
        Conn {
            plain: Some(socket),
            registered: None,
            peer,
        }
    }

    /// The peer's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn sock(&self) -> io::Result<SockRef<'_>> {
        match (&self.plain, &self.registered) {
            (Some(s), _) => Ok(SockRef::from(s)),
            (None, Some(s)) => Ok(SockRef::from(s)),
            (None, None) => Err(ErrorKind::NotConnected.into()),
        }
    }

    /// The socket registered with the reactor (registering it the first
    /// time).
    fn register(&mut self) -> io::Result<&TcpStream> {
        if let Some(socket) = self.plain.take() {
            self.registered = Some(TcpStream::from_std(socket.into())?);
        }
        self.registered
            .as_ref()
            .ok_or_else(|| ErrorKind::NotConnected.into())
    }

    /// The socket, registered with the reactor, for a protocol served by a
    /// library that does its own I/O (gRPC's HTTP/2).
    #[cfg(feature = "grpc")]
    pub(crate) fn into_stream(mut self) -> io::Result<TcpStream> {
        self.register()?;
        self.registered
            .take()
            .ok_or_else(|| ErrorKind::NotConnected.into())
    }

    /// Reads what has arrived, at most `max` bytes, into `buf`, without
    /// waiting: `Ok(0)` when the peer has closed its side, `WouldBlock`
    /// when nothing is there.
    pub(crate) fn read_now(&self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        recv(&*self.sock()?, buf, max)
    }

    /// Reads at most `max` bytes into `buf`, waiting for them if none has
    /// arrived: `Ok(0)` when the peer has closed its side. Cancel-safe:
    /// bytes are only taken when the future completes.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        match self.read_now(buf, max) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            done => return done,
        }
        let stream = self.register()?;
        loop {
            stream.readable().await?;
            // try_io clears the reactor's readiness on WouldBlock, so a
            // spurious wake-up waits again instead of spinning.
            match stream.try_io(Interest::READABLE, || {
                recv(&SockRef::from(stream), buf, max)
            }) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                done => return done,
            }
        }
    }

    /// Sends as much of `bytes` as the socket takes now, without waiting.
    pub(crate) fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        send(&*self.sock()?, bytes)
    }

    /// Writes all of `bytes`: at once when the socket's buffer has room (a
    /// reply on a fresh connection always has), else waiting for room.
    /// Bound it with a timeout; a cancelled write may have sent a part.
    pub(crate) async fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        match self.write_now(bytes) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let stream = self.register()?;
        while !bytes.is_empty() {
            stream.writable().await?;
            match stream.try_io(Interest::WRITABLE, || send(&SockRef::from(stream), bytes)) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Closes the sending side: the peer reads the end of the reply.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        self.sock()?.shutdown(std::net::Shutdown::Write)
    }

    /// Makes the coming close a reset (linger 0): the peer learns at once,
    /// and no TIME_WAIT is left behind.
    pub(crate) fn reset_on_close(&self) {
        if let Ok(s) = self.sock() {
            let _ = s.set_linger(Some(Duration::ZERO));
        }
    }
}

/// One `recv` of at most `max` bytes (and [`READ_CHUNK`]) into `buf`,
/// retried when a signal interrupts it.
fn recv(sock: &Socket, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK];
    let room = max.clamp(1, READ_CHUNK);
    loop {
        match (&*sock).read(&mut chunk[..room]) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One `send`, with MSG_NOSIGNAL: a peer that has gone away is an error
/// here, never a SIGPIPE in a host that has not ignored it (a C service).
fn send(sock: &Socket, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match sock.send_with_flags(bytes, libc::MSG_NOSIGNAL) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            done => return done,
        }
    }
}
