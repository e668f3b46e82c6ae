//! The probe's side: arbitrary bytes as a server's reply, read with the
//! blocking helper the probe uses (its reply limit) and parsed as a response.
#![no_main]

use health_proto::blocking::read_frame;
use health_proto::{Response, State};
use libfuzzer_sys::fuzz_target;

/// The probe's limit on a reply frame's payload (health-probe's MAX_REPLY).
const MAX_REPLY: u32 = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut reader = std::io::Cursor::new(data);
    let Ok(frame) = read_frame(&mut reader, MAX_REPLY) else {
        return;
    };
    assert!(frame.payload.len() <= MAX_REPLY as usize);
    if let Ok(Response::Landmark(reply)) = Response::from_frame(&frame) {
        // Every parsed state is one of the four, and displays as the wire name.
        let name = reply.state.to_string();
        assert_eq!(name.parse::<State>().ok(), Some(reply.state));
        if let Some(w) = reply.weight {
            assert!(w.get() <= health_proto::MAX_WEIGHT);
        }
    }
});
