//! The server's side of the native protocol: arbitrary bytes through the
//! tokio-util frame decoder and request parsing, as `native.rs` reads
//! them, including the error replies it sends back.
#![no_main]

use bytes::BytesMut;
use health_proto::codec::FrameCodec;
use health_proto::{ErrorCode, ErrorReply, Request, Response, DEFAULT_MAX_PAYLOAD, HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

/// Encodes the error reply the server would send and checks it is itself a
/// valid frame a client can parse.
fn reply_parses(codec: &mut FrameCodec, reply: ErrorReply) {
    let mut out = BytesMut::new();
    codec
        .encode(Response::Error(reply).to_frame(0), &mut out)
        .expect("encoding into memory");
    let frame = codec.decode(&mut out).expect("own reply").expect("complete");
    assert!(matches!(Response::from_frame(&frame), Ok(Response::Error(_))));
}

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::new(DEFAULT_MAX_PAYLOAD);
    let mut buf = BytesMut::from(data);
    // Bounded: every decoded frame consumes at least a header.
    for _ in 0..=data.len() / HEADER_LEN {
        match codec.decode(&mut buf) {
            Ok(None) => {
                let _ = codec.decode_eof(&mut buf);
                return;
            }
            Ok(Some(frame)) => {
                assert!(frame.payload.len() <= DEFAULT_MAX_PAYLOAD as usize);
                match Request::from_frame(&frame) {
                    Ok(Request::Check(check)) => {
                        // Round trip: what parsed re-encodes to the same request.
                        let again = Request::Check(check.clone()).to_frame(frame.request_id);
                        assert_eq!(Request::from_frame(&again).ok(), Some(Request::Check(check)));
                    }
                    Ok(Request::Connections(query)) => {
                        let again = Request::Connections(query.clone()).to_frame(frame.request_id);
                        assert_eq!(
                            Request::from_frame(&again).ok(),
                            Some(Request::Connections(query))
                        );
                    }
                    Ok(Request::Watch(watch)) => {
                        let again = Request::Watch(watch.clone()).to_frame(frame.request_id);
                        assert_eq!(Request::from_frame(&again).ok(), Some(Request::Watch(watch)));
                    }
                    Err(e) => {
                        let code = e.code().unwrap_or(ErrorCode::BadPayload);
                        reply_parses(&mut codec, ErrorReply::new(code, e.to_string()));
                        if !e.is_recoverable() {
                            return;
                        }
                    }
                }
            }
            // Header-level error: the server replies (if it can) and closes.
            Err(e) => {
                if let Some(code) = e.code() {
                    reply_parses(&mut codec, ErrorReply::new(code, e.to_string()));
                }
                return;
            }
        }
    }
});
