//! The C ABI from Rust: every function through its exported symbol, the
//! rules on NULL, bad arguments and hostile text, a whole ask and answer
//! over a real socket, and the committed header against cbindgen's.

use std::ffi::{c_int, CStr};
use std::ptr;

use proptest::prelude::*;

use crate::*;

fn ok(status: c_int) -> bool {
    status == hs_status::HS_OK as c_int
}

fn c(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap()
}

fn last_error() -> String {
    // SAFETY: hs_last_error returns a live NUL-terminated string.
    unsafe { CStr::from_ptr(hs_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn status(s: hs_status) -> c_int {
    s as c_int
}

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads the crate")
        .write(&mut generated);
    let path = format!("{dir}/include/health_server.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/health_server.h is stale: run UPDATE_HEADER=1 cargo test -p health-server-capi and commit it"
    );
}

#[test]
fn nulls_and_bad_arguments_are_errors_with_a_reason() {
    let mut l = ptr::null_mut();
    // SAFETY (every call in this test): valid or NULL pointers, as each
    // function allows.
    unsafe {
        assert_eq!(
            hs_landmark_new(0, ptr::null(), ptr::null_mut()),
            status(hs_status::HS_E_NULL)
        );
        assert_eq!(last_error(), "out is NULL");
        assert_eq!(
            hs_landmark_new(7, ptr::null(), &mut l),
            status(hs_status::HS_E_INVALID)
        );
        assert!(last_error().starts_with("state 7 is not"));
        assert!(l.is_null());
        assert!(ok(hs_landmark_new(1, ptr::null(), &mut l)));
        assert_eq!((*l).landmark.detail, "");
        assert_eq!(
            hs_landmark_set_weight(l, 254),
            status(hs_status::HS_E_INVALID)
        );
        assert!(ok(hs_landmark_set_weight(l, 253)));
        assert!(ok(hs_landmark_set_weight(l, -1)));
        assert!((*l).landmark.weight.is_none());
        assert_eq!(
            hs_landmark_add_field_int(l, ptr::null(), 1),
            status(hs_status::HS_E_NULL)
        );
        assert_eq!(
            hs_landmark_add_field_int(l, c("").as_ptr(), 1),
            status(hs_status::HS_E_INVALID)
        );
        assert_eq!(
            hs_landmark_add_component(ptr::null_mut(), c("db").as_ptr(), 0, ptr::null()),
            status(hs_status::HS_E_NULL)
        );
        assert_eq!(last_error(), "landmark is NULL");
        hs_landmark_free(l);
        hs_landmark_free(ptr::null_mut());
        hs_ask_drop(ptr::null_mut());
        hs_server_free(ptr::null_mut());
        assert_eq!(hs_server_fd(ptr::null()), status(hs_status::HS_E_NULL));
        let mut s = std::mem::zeroed::<hs_settings>();
        assert!(ok(hs_settings_init(&mut s)));
        let bad = c("not an address");
        s.bind = bad.as_ptr();
        let mut server = ptr::null_mut();
        assert_eq!(
            hs_server_new(&s, &mut server),
            status(hs_status::HS_E_INVALID)
        );
        assert!(last_error().contains("is not IP:PORT"), "{}", last_error());
    }
}

/// One check over loopback, with the health-proto client.
fn check(port: c_int) -> hs::Landmark {
    use hs_check::*;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write_frame(&mut s, &Request::Check(Default::default()).to_frame(1)).unwrap();
    match Response::from_frame(&read_frame(&mut s, 1 << 20).unwrap()).unwrap() {
        Response::Landmark(l) => l.landmark,
        other => panic!("expected a landmark, got {other:?}"),
    }
}

mod hs_check {
    pub(super) use health_proto::blocking::{read_frame, write_frame};
    pub(super) use health_proto::{Request, Response};
}

#[test]
fn an_ask_arrives_on_the_descriptor_and_its_answer_is_the_reply() {
    // SAFETY (every call in this test): live pointers from the library.
    unsafe {
        let mut s = std::mem::zeroed::<hs_settings>();
        hs_settings_init(&mut s);
        let bind = c("127.0.0.1:0");
        s.bind = bind.as_ptr();
        let mut server = ptr::null_mut();
        assert!(ok(hs_server_new(&s, &mut server)), "{}", last_error());
        let fd = hs_server_fd(server);
        assert!(fd >= 0);
        let port = hs_server_port(server);
        let main = server as usize;
        let loop_thread = std::thread::spawn(move || {
            let server = main as *const hs_server;
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // Wait for the descriptor, as an event loop would.
            assert_eq!(libc::poll(&mut pfd, 1, 5000), 1);
            let mut ask = ptr::null_mut();
            assert_eq!(hs_server_next_ask(server, &mut ask), 1);
            let mut l = ptr::null_mut();
            hs_landmark_new(1, c("replica lag 12s").as_ptr(), &mut l);
            hs_landmark_set_weight(l, 40);
            hs_landmark_add_field_int(l, c("clients").as_ptr(), 3);
            hs_landmark_add_field_str(l, c("role").as_ptr(), c("primary").as_ptr());
            hs_landmark_add_component(l, c("db").as_ptr(), 0, c("fine").as_ptr());
            assert!(ok(hs_answer_landmark(ask, l)));
            hs_landmark_free(l);
            // Nothing else waits: readiness is cleared.
            assert_eq!(libc::poll(&mut pfd, 1, 0), 0);
            assert_eq!(hs_server_next_ask(server, &mut ask), 0);
            assert!(ask.is_null());
        });
        let l = check(port);
        loop_thread.join().unwrap();
        assert_eq!(l.state, hs::State::Degraded);
        assert_eq!(l.detail, "replica lag 12s");
        assert_eq!(l.weight.map(|w| w.get()), Some(40));
        assert_eq!(l.fields["clients"], 3);
        assert_eq!(l.fields["role"], "primary");
        assert_eq!(l.components["db"].detail, "fine");
        assert!(ok(hs_server_drain(server)));
        assert_eq!(hs_publish_touch(server), status(hs_status::HS_E_MODE));
        hs_server_free(server);
    }
}

#[test]
fn publish_mode_answers_the_latest_landmark() {
    // SAFETY (every call in this test): live pointers from the library.
    unsafe {
        let mut s = std::mem::zeroed::<hs_settings>();
        hs_settings_init(&mut s);
        let bind = c("127.0.0.1:0");
        s.bind = bind.as_ptr();
        s.publish = 1;
        let mut server = ptr::null_mut();
        assert!(ok(hs_server_new(&s, &mut server)), "{}", last_error());
        let port = hs_server_port(server);
        assert_eq!(check(port).state, hs::State::Fail);
        assert_eq!(hs_server_fd(server), status(hs_status::HS_E_MODE));
        let mut l = ptr::null_mut();
        hs_landmark_new(0, c("serving").as_ptr(), &mut l);
        assert!(ok(hs_publish(server, l)));
        hs_landmark_free(l);
        let got = check(port);
        assert_eq!((got.state, got.detail.as_str()), (hs::State::Ok, "serving"));
        hs_server_free(server);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Hostile text (NUL inside, invalid UTF-8, more than the limits)
    /// never fails an answer, is read only up to its NUL, comes out as
    /// valid UTF-8 within the limit, and names are refused cleanly.
    #[test]
    fn hostile_text_is_cut_and_made_valid(bytes in proptest::collection::vec(any::<u8>(), 0..20_000), state in 0..4i32) {
        let mut terminated = bytes.clone();
        terminated.push(0);
        let p = terminated.as_ptr().cast();
        let upto = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        let mut l = ptr::null_mut();
        // SAFETY: a NUL-terminated buffer, live pointers.
        unsafe {
            prop_assert!(ok(hs_landmark_new(state, p, &mut l)));
            let detail = &(*l).landmark.detail;
            prop_assert!(detail.len() <= HS_MAX_TEXT + 2);
            if upto <= HS_MAX_TEXT && std::str::from_utf8(&bytes[..upto]).is_ok() {
                prop_assert_eq!(detail.as_bytes(), &bytes[..upto]);
            }
            prop_assert!(ok(hs_landmark_add_field_str(l, c("k").as_ptr(), p)));
            let named = hs_landmark_add_component(l, p, state, p);
            if upto == 0 || upto > HS_MAX_NAME {
                prop_assert_eq!(named, status(hs_status::HS_E_INVALID));
            } else {
                prop_assert!(ok(named));
            }
            let json = serde_json::to_string(&(*l).landmark).unwrap();
            prop_assert!(json.len() < 4 * (HS_MAX_TEXT + HS_MAX_NAME) + 200);
            hs_landmark_free(l);
        }
    }
}
