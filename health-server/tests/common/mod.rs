//! A blocking test client and helpers for running a health server whose
//! main thread is a plain thread under the test's control.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use health_proto::blocking::{read_frame, write_frame};
use health_proto::{
    CheckRequest, ErrorCode, LandmarkReply, ProtoError, Request, Response, DEFAULT_MAX_PAYLOAD,
};
use health_server::{Asks, Builder, HealthServer, Landmark};
#[allow(unused_imports)] // not every test crate reads the docs
pub(crate) use test_support::doc_blocks;

pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn loopback() -> Builder {
    Builder::new().bind("127.0.0.1:0".parse().unwrap())
}

pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Sends one check on `stream` and reads the response.
pub(crate) fn check_on(
    stream: &mut TcpStream,
    id: u32,
    component: Option<&str>,
) -> Result<Response, ProtoError> {
    let req = Request::Check(CheckRequest {
        component: component.map(str::to_string),
    });
    write_frame(stream, &req.to_frame(id))?;
    let frame = read_frame(stream, 16 * 1024 * 1024)?;
    assert_eq!(frame.request_id, id, "request id not echoed");
    Response::from_frame(&frame)
}

/// One check on a fresh connection, expecting a landmark reply.
pub(crate) fn check(addr: SocketAddr) -> LandmarkReply {
    landmark(check_on(&mut connect(addr), 1, None).expect("check"))
}

pub(crate) fn landmark(r: Response) -> LandmarkReply {
    match r {
        Response::Landmark(l) => l,
        other => panic!("expected a landmark, got {other:?}"),
    }
}

pub(crate) fn error_code(r: Response) -> ErrorCode {
    match r {
        Response::Error(e) => e.known_code().expect("known code"),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Sends raw bytes and reads one response frame (request id 0 expected for
/// header-level errors).
pub(crate) fn send_raw(addr: SocketAddr, bytes: &[u8]) -> (TcpStream, Response) {
    let mut s = connect(addr);
    s.write_all(bytes).unwrap();
    let frame = read_frame(&mut s, DEFAULT_MAX_PAYLOAD).expect("an error frame");
    (s, Response::from_frame(&frame).unwrap())
}

/// Whether the server has closed `stream` (EOF or reset within the timeout).
pub(crate) fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// How many of `conns` the server has closed (reset or EOF), looking
/// without blocking.
pub(crate) fn closed(conns: &mut [TcpStream]) -> usize {
    conns
        .iter_mut()
        .filter(|c| {
            c.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 64];
            let gone = match (&**c).read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
            c.set_nonblocking(false).unwrap();
            gone
        })
        .count()
}

/// A plain-thread main loop that answers every ask with `make()` and counts
/// the asks it answered.
pub(crate) struct MainThread {
    pub asks_answered: Arc<AtomicUsize>,
    pub thread: JoinHandle<()>,
}

pub(crate) fn answering(asks: Asks, make: impl Fn() -> Landmark + Send + 'static) -> MainThread {
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let thread = std::thread::spawn(move || {
        while let Some(ask) = asks.recv_blocking() {
            c.fetch_add(1, Ordering::SeqCst);
            ask.answer(make());
        }
    });
    MainThread {
        asks_answered: count,
        thread,
    }
}

/// A server on a free loopback port whose main thread always answers `ok`.
pub(crate) fn ok_server(b: Builder) -> (HealthServer, MainThread) {
    let (asks, rx) = health_server::channel();
    let server = b.spawn(rx).expect("spawn");
    (server, answering(asks, || Landmark::ok("fine")))
}

/// Connects from a chosen loopback source address (127.0.0.2 is as local as
/// 127.0.0.1 on Linux), to test the allow-list and the connection report.
///
/// The port is left for `connect` to choose (IP_BIND_ADDRESS_NO_PORT):
/// `bind` alone could pick a port another test listens on at another
/// address, and that test's connection report would see this client.
pub(crate) fn connect_from(src: &str, addr: SocketAddr) -> TcpStream {
    use std::os::fd::AsRawFd;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, and a c_int option of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "IP_BIND_ADDRESS_NO_PORT");
    let src: SocketAddr = format!("{src}:0").parse().unwrap();
    sock.bind(&src.into()).unwrap();
    sock.connect_timeout(&addr.into(), IO_TIMEOUT).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

#[allow(unused_imports)] // not every test crate needs a peer
pub(crate) use test_support::require;

/// Sends `send` on a fresh connection and reads until the server closes.
pub(crate) fn read_all(addr: SocketAddr, send: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(send).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
