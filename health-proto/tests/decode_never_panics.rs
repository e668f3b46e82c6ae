//! Property tests: decoding arbitrary bytes never panics, never buffers past
//! the limit, and every message survives an encode/decode round trip.

use bytes::BytesMut;
use health_proto::blocking::read_frame;
use health_proto::{
    CheckRequest, Frame, Landmark, LandmarkReply, Request, Response, State, Weight, HEADER_LEN,
};
use proptest::prelude::*;

fn state() -> impl Strategy<Value = State> {
    prop::sample::select(State::ALL.to_vec())
}

fn landmark() -> impl Strategy<Value = Landmark> {
    (
        state(),
        ".{0,40}",
        prop::option::of(0u8..=253),
        prop::collection::btree_map("[a-z]{1,8}", (state(), ".{0,20}"), 0..4),
        prop::collection::btree_map("[a-z_]{1,8}", any::<i64>(), 0..4),
    )
        .prop_map(|(st, detail, w, comps, fields)| {
            let mut l = Landmark::new(st, detail);
            l.weight = w.map(|w| Weight::new(w).unwrap());
            for (k, (s, d)) in comps {
                l = l.with_component(k, s, d);
            }
            for (k, v) in fields {
                l = l.with_field(k, v);
            }
            l
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), max in 0u32..1024) {
        let mut buf = BytesMut::from(&bytes[..]);
        // Drain as many frames as the bytes hold; each must be within the limit.
        for _ in 0..64 {
            match Frame::parse(&mut buf, max) {
                Ok(Some(f)) => {
                    prop_assert!(f.payload.len() <= max as usize);
                    let _ = Request::from_frame(&f);
                    let _ = Response::from_frame(&f);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let _ = read_frame(&mut &bytes[..], max);
    }

    #[test]
    fn valid_header_with_random_payload_never_panics(kind in any::<u8>(), id in any::<u32>(), payload in prop::collection::vec(any::<u8>(), 0..256)) {
        let frame = Frame { kind, request_id: id, payload: payload.into() };
        let bytes = frame.to_bytes();
        let mut buf = BytesMut::from(&bytes[..]);
        let back = Frame::parse(&mut buf, 1024).unwrap().unwrap();
        prop_assert_eq!(&back, &frame);
        let _ = Request::from_frame(&back);
        let _ = Response::from_frame(&back);
    }

    #[test]
    fn landmark_replies_round_trip(l in landmark(), id in any::<u32>(), us in any::<u64>()) {
        let reply = Response::Landmark(LandmarkReply::whole(l, us));
        let bytes = reply.to_frame(id).to_bytes();
        prop_assert!(bytes.len() >= HEADER_LEN);
        let back = read_frame(&mut &bytes[..], u32::MAX).unwrap();
        prop_assert_eq!(back.request_id, id);
        prop_assert_eq!(Response::from_frame(&back).unwrap(), reply);
    }

    #[test]
    fn check_requests_round_trip(component in prop::option::of("[a-zA-Z0-9_.-]{1,32}"), id in any::<u32>()) {
        let req = Request::Check(CheckRequest { component });
        let back = Request::from_frame(&read_frame(&mut &req.to_frame(id).to_bytes()[..], 1024).unwrap()).unwrap();
        prop_assert_eq!(back, req);
    }
}
