//! An endpoint that predates the `watch` request, for the tests of what
//! follows a landmark (`health-probe ADDR --watch`, the watcher's streamed
//! targets): it answers checks, and any other request `unknown_type`, as
//! servers before the `watch` type did.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use health_proto::blocking::{read_frame, write_frame};
use health_proto::{ErrorCode, ErrorReply, Landmark, LandmarkReply, Request, Response};

/// Such an endpoint on a free loopback port, its address: `ok` while `up`
/// is set, `fail` otherwise. It serves 500 connections, then stops.
pub fn endpoint(up: Arc<AtomicBool>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(500) {
            let Ok(mut s) = conn else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let Ok(frame) = read_frame(&mut s, 1 << 16) else {
                continue;
            };
            let response = match Request::from_frame(&frame) {
                Ok(Request::Check(_)) => Response::Landmark(LandmarkReply::whole(
                    if up.load(Ordering::SeqCst) {
                        Landmark::ok("old server")
                    } else {
                        Landmark::fail("old server down")
                    },
                    120,
                )),
                _ => Response::Error(ErrorReply::new(
                    ErrorCode::UnknownType,
                    format!("unknown message type {:#04x}", frame.kind),
                )),
            };
            let _ = write_frame(&mut s, &response.to_frame(frame.request_id));
            let _ = s.flush();
        }
    });
    addr
}
