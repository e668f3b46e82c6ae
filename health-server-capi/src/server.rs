//! The endpoint: `hs_settings`, `hs_server` (start, the pollable
//! descriptor, drain, shutdown) and how the main loop gives its landmark:
//! asked (`hs_ask`, answered once) or published.

use std::ffi::{c_char, c_int};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use hs::{Asks, Builder, HealthServer, Landmark, Publisher};

use crate::landmark::{landmark_ref, state, text, weight, HS_MAX_TEXT};
use crate::status::{guard, hs_status, Failure, OK};

/// How [`hs_server_new`] sets up the endpoint. Fill it with
/// [`hs_settings_init`] first, then change what you need: a zero or NULL
/// field keeps the default.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_settings {
    /// `IP:PORT` of the native endpoint; NULL: `0.0.0.0:9100`.
    pub bind: *const c_char,
    /// `IP:PORT` for HAProxy's agent-check; NULL: off.
    pub agent_bind: *const c_char,
    /// `IP:PORT` for HTTP `/healthz`, `/livez`, `/readyz` and `/metrics`;
    /// NULL: off.
    pub http_bind: *const c_char,
    /// How long a check waits for the main loop's answer; 0: 500 ms.
    pub answer_deadline_ms: u32,
    /// Connections held at once, all ports together; 0: the default
    /// (16,384, at most a quarter of the open-file limit).
    pub max_connections: u32,
    /// Connections one source may hold at once; 0: 64.
    pub max_per_source: u32,
    /// Comma-separated networks (`10.0.0.0/8,192.0.2.7/32`) allowed to
    /// connect; NULL: everyone.
    pub allow: *const c_char,
    /// Nonzero: publish mode. The loop pushes its landmark with
    /// [`hs_publish`] and is never asked; [`hs_server_fd`] has no use.
    pub publish: c_int,
    /// Publish mode: a landmark older than this is reported as failed;
    /// 0: 5000 ms.
    pub stale_after_ms: u32,
}

/// Fills `s` with the defaults (all NULL and zero).
///
/// # Safety
/// `s` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hs_settings_init(s: *mut hs_settings) -> c_int {
    guard(|| {
        if s.is_null() {
            return Err(Failure::null("settings"));
        }
        // SAFETY: `s` is writable (the caller's promise, checked non-NULL).
        unsafe { s.write(hs_settings::default()) };
        OK
    })
}

impl Default for hs_settings {
    /// All NULL and zero: every default.
    fn default() -> hs_settings {
        hs_settings {
            bind: std::ptr::null(),
            agent_bind: std::ptr::null(),
            http_bind: std::ptr::null(),
            answer_deadline_ms: 0,
            max_connections: 0,
            max_per_source: 0,
            allow: std::ptr::null(),
            publish: 0,
            stale_after_ms: 0,
        }
    }
}

/// Where the main loop's landmark comes from.
#[derive(Debug)]
enum Source {
    /// Asked: the asks, and the eventfd the server writes to when one is
    /// queued.
    Ask(Asks, Arc<OwnedFd>),
    Publish(Publisher),
}

/// A running endpoint. Made by [`hs_server_new`], freed by
/// [`hs_server_free`].
#[derive(Debug)]
pub struct hs_server {
    server: Option<HealthServer>,
    source: Source,
}

/// One ask from the endpoint, taken by [`hs_server_next_ask`]: answer it
/// once with [`hs_answer`] or [`hs_answer_landmark`], or give it up with
/// [`hs_ask_drop`]; each of them frees it.
#[derive(Debug)]
pub struct hs_ask {
    ask: hs::Ask,
}

/// An optional `IP:PORT` setting.
unsafe fn addr(p: *const c_char, what: &str) -> Result<Option<SocketAddr>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's promise.
    let s = unsafe { text(p, 256) };
    s.trim()
        .parse()
        .map(Some)
        .map_err(|_| Failure::invalid(format!("{what} {s:?} is not IP:PORT or [IPv6]:PORT")))
}

fn millis(ms: u32) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
}

/// The endpoint's builder for `s`.
unsafe fn builder(s: &hs_settings) -> Result<Builder, Failure> {
    let mut b = Builder::new();
    // SAFETY (each call below): the caller's promise about `s`'s strings.
    if let Some(a) = unsafe { addr(s.bind, "bind") }? {
        b = b.bind(a);
    }
    if let Some(a) = unsafe { addr(s.agent_bind, "agent_bind") }? {
        b = b.agent_bind(a);
    }
    if let Some(a) = unsafe { addr(s.http_bind, "http_bind") }? {
        b = b.http_bind(a);
    }
    if let Some(d) = millis(s.answer_deadline_ms) {
        b = b.answer_deadline(d);
    }
    if s.max_connections > 0 {
        b = b.max_connections(s.max_connections as usize);
    }
    if s.max_per_source > 0 {
        b = b.max_per_source(s.max_per_source as usize);
    }
    if let Some(d) = millis(s.stale_after_ms) {
        b = b.stale_after(d);
    }
    if !s.allow.is_null() {
        // SAFETY: the caller's promise.
        let list = unsafe { text(s.allow, HS_MAX_TEXT) };
        for net in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let net: ipnet::IpNet = net
                .parse()
                .or_else(|_| net.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| Failure::invalid(format!("allow: {net:?} is not a network")))?;
            b = b.allow(net);
        }
    }
    Ok(b)
}

/// Starts an endpoint with `settings` (NULL: the defaults) and stores it
/// in `*out`. Listening starts before it returns: an address in use is
/// `HS_E_BIND`. Free it with [`hs_server_free`].
///
/// # Safety
/// `settings` is NULL or a valid `hs_settings` whose strings are NULL or
/// NUL-terminated; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hs_server_new(
    settings: *const hs_settings,
    out: *mut *mut hs_server,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: the caller's promise: NULL or a valid `hs_settings`.
        let s = unsafe { settings.as_ref() }.copied().unwrap_or_default();
        // SAFETY: the caller's promise about `settings`.
        let builder = unsafe { builder(&s) }?;
        let (source, rx) = if s.publish != 0 {
            let (publisher, rx) = hs::publisher(Landmark::fail("no landmark published yet"));
            (Source::Publish(publisher), rx)
        } else {
            let efd = eventfd()?;
            let woken = Arc::clone(&efd);
            let (asks, rx) = hs::channel_with_wakeup(move || wake(&woken));
            (Source::Ask(asks, efd), rx)
        };
        let server = builder
            .spawn(rx)
            .map_err(|e| Failure::new(hs_status::HS_E_BIND, e.to_string()))?;
        let boxed = Box::new(hs_server {
            server: Some(server),
            source,
        });
        // SAFETY: `out` is writable (checked non-NULL; the caller's promise).
        unsafe { *out = Box::into_raw(boxed) };
        OK
    })
}

/// A non-blocking eventfd, closed on exec.
fn eventfd() -> Result<Arc<OwnedFd>, Failure> {
    // SAFETY: eventfd has no memory arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::new(
            hs_status::HS_E_SYSTEM,
            format!("eventfd: {e}"),
        ));
    }
    // SAFETY: a descriptor just made, owned by nothing else.
    Ok(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Makes the eventfd readable. Never blocks: a full counter (2^64 - 2
/// wake-ups unread) is already readable.
fn wake(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: 8 bytes from a local to a descriptor we own.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Clears the eventfd's readiness.
fn clear(fd: &OwnedFd) {
    let mut n: u64 = 0;
    // SAFETY: 8 bytes into a local from a descriptor we own.
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
}

unsafe fn server_ref<'a>(s: *const hs_server) -> Result<&'a hs_server, Failure> {
    // SAFETY: the caller's promise.
    unsafe { s.as_ref() }.ok_or_else(|| Failure::null("server"))
}

/// The descriptor to wait on (readable when an ask is waiting), or
/// `HS_E_MODE` in publish mode. Register it once with epoll, select,
/// libevent or libuv; it stays the same until [`hs_server_free`] closes it.
///
/// # Safety
/// `s` is NULL or a live `hs_server`.
#[no_mangle]
pub unsafe extern "C" fn hs_server_fd(s: *const hs_server) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        match &unsafe { server_ref(s) }?.source {
            Source::Ask(_, fd) => Ok(fd.as_raw_fd()),
            Source::Publish(_) => Err(mode("hs_server_fd", "publish")),
        }
    })
}

fn mode(call: &str, mode: &str) -> Failure {
    Failure::new(
        hs_status::HS_E_MODE,
        format!("{call} does not apply to a server in {mode} mode"),
    )
}

/// Takes the waiting ask, if any, without blocking: returns 1 with it in
/// `*out`, 0 when none is waiting (`*out` is set to NULL), or an error.
/// It also clears the descriptor's readiness, so call it each time the
/// descriptor is readable. At most one ask waits at a time: the endpoint
/// shares one ask among all the checks that arrive while it is open.
///
/// # Safety
/// `s` is NULL or a live `hs_server`; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hs_server_next_ask(s: *const hs_server, out: *mut *mut hs_ask) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: `out` is writable (checked; the caller's promise).
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: the caller's promise.
        let Source::Ask(asks, fd) = &unsafe { server_ref(s) }?.source else {
            return Err(mode("hs_server_next_ask", "publish"));
        };
        // Cleared before looking: an ask queued after the look writes to
        // the descriptor again, so none is missed.
        clear(fd);
        match asks.try_recv() {
            Some(ask) => {
                // SAFETY: as above.
                unsafe { *out = Box::into_raw(Box::new(hs_ask { ask })) };
                Ok(1)
            }
            None => Ok(0),
        }
    })
}

/// Takes back an `hs_ask`.
///
/// # Safety
/// `a` is NULL or a live `hs_ask`, not used again after.
unsafe fn take(a: *mut hs_ask) -> Result<hs::Ask, Failure> {
    if a.is_null() {
        return Err(Failure::null("ask"));
    }
    // SAFETY: made by Box::into_raw in hs_server_next_ask, taken once.
    Ok(unsafe { Box::from_raw(a) }.ask)
}

/// Answers `ask` with `state`, `detail` (NULL: empty) and `weight` (0 to
/// 253, or -1 for none), and frees it. With a bad state or weight the ask
/// is freed unanswered (the checks waiting on it fail) and
/// `HS_E_INVALID` returned.
///
/// # Safety
/// `ask` is NULL or a live `hs_ask`, not used again after; `detail` is
/// NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn hs_answer(
    ask: *mut hs_ask,
    state: c_int,
    detail: *const c_char,
    weight: c_int,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        let ask = unsafe { take(ask) }?;
        let mut landmark = Landmark::new(self::state(state)?, unsafe { text(detail, HS_MAX_TEXT) });
        landmark.weight = self::weight(weight)?;
        ask.answer(landmark);
        OK
    })
}

/// Answers `ask` with a copy of `landmark` (which stays the caller's) and
/// frees the ask. A NULL `landmark` frees the ask unanswered and returns
/// `HS_E_NULL`.
///
/// # Safety
/// `ask` is NULL or a live `hs_ask`, not used again after; `landmark` is
/// NULL or a live `hs_landmark`.
#[no_mangle]
pub unsafe extern "C" fn hs_answer_landmark(
    ask: *mut hs_ask,
    landmark: *const crate::landmark::hs_landmark,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        let ask = unsafe { take(ask) }?;
        // SAFETY: the caller's promise.
        let landmark = unsafe { landmark_ref(landmark) }?;
        ask.answer(landmark.clone());
        OK
    })
}

/// Frees `ask` without answering: the checks waiting on it fail with
/// "main thread dropped the ask without answering". NULL is ignored.
///
/// # Safety
/// `ask` is NULL or a live `hs_ask`, not used again after.
#[no_mangle]
pub unsafe extern "C" fn hs_ask_drop(ask: *mut hs_ask) {
    guard(|| {
        if !ask.is_null() {
            // SAFETY: the caller's promise.
            drop(unsafe { take(ask) });
        }
        OK
    });
}

/// Publish mode: the landmark every check answers from now on (copied;
/// `landmark` stays the caller's). `HS_E_MODE` in ask mode.
///
/// # Safety
/// `s` is NULL or a live `hs_server`; `landmark` is NULL or a live
/// `hs_landmark`.
#[no_mangle]
pub unsafe extern "C" fn hs_publish(
    s: *const hs_server,
    landmark: *const crate::landmark::hs_landmark,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        let Source::Publish(p) = &unsafe { server_ref(s) }?.source else {
            return Err(mode("hs_publish", "ask"));
        };
        // SAFETY: the caller's promise.
        p.publish(unsafe { landmark_ref(landmark) }?.clone());
        OK
    })
}

/// Publish mode: the landmark published last is still true: it is
/// stamped fresh, so it does not go stale. `HS_E_MODE` in ask mode.
///
/// # Safety
/// `s` is NULL or a live `hs_server`.
#[no_mangle]
pub unsafe extern "C" fn hs_publish_touch(s: *const hs_server) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        let Source::Publish(p) = &unsafe { server_ref(s) }?.source else {
            return Err(mode("hs_publish_touch", "ask"));
        };
        p.touch();
        OK
    })
}

/// The running endpoint of `s`.
fn running(s: &hs_server) -> &HealthServer {
    s.server
        .as_ref()
        .expect("an hs_server is running until hs_server_free")
}

/// Drains: every check answers at least `drain` from now on, so balancers
/// take the server out before it restarts. A `fail` answer still wins.
///
/// # Safety
/// `s` is NULL or a live `hs_server`.
#[no_mangle]
pub unsafe extern "C" fn hs_server_drain(s: *const hs_server) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        running(unsafe { server_ref(s) }?).drain();
        OK
    })
}

/// Ends a drain: checks answer the main loop's landmark again.
///
/// # Safety
/// `s` is NULL or a live `hs_server`.
#[no_mangle]
pub unsafe extern "C" fn hs_server_resume(s: *const hs_server) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        running(unsafe { server_ref(s) }?).resume();
        OK
    })
}

/// The port the native endpoint listens on (useful with port 0).
///
/// # Safety
/// `s` is NULL or a live `hs_server`.
#[no_mangle]
pub unsafe extern "C" fn hs_server_port(s: *const hs_server) -> c_int {
    guard(|| {
        // SAFETY: the caller's promise.
        Ok(c_int::from(
            running(unsafe { server_ref(s) }?).local_addr().port(),
        ))
    })
}

/// Stops the endpoint: its listeners close, checks in flight end, its
/// threads are joined, the descriptor is closed; then frees `s`. An ask
/// taken and not answered yet may still be answered or dropped after.
/// NULL is ignored. Must be the last call on `s`, from one thread.
///
/// # Safety
/// `s` is NULL or a live `hs_server`, not used again after.
#[no_mangle]
pub unsafe extern "C" fn hs_server_free(s: *mut hs_server) {
    guard(|| {
        if !s.is_null() {
            // SAFETY: made by Box::into_raw in hs_server_new, freed once.
            let mut boxed = unsafe { Box::from_raw(s) };
            if let Some(server) = boxed.server.take() {
                server.shutdown_blocking();
            }
        }
        OK
    });
}
