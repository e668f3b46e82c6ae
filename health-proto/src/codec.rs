//! tokio-util `Decoder`/`Encoder` for frames, for async servers.
//!
//! The decoder enforces the payload limit from the header (via
//! [`Frame::parse`]) so a peer announcing a huge frame is rejected before
//! anything is buffered for it.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{Frame, DEFAULT_MAX_PAYLOAD};
use crate::ProtoError;

/// Frames ⇄ bytes, with a limit on the payload of received frames.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_payload: u32,
}

impl FrameCodec {
    /// A codec that rejects received payloads over `max_payload` bytes.
    pub fn new(max_payload: u32) -> FrameCodec {
        FrameCodec { max_payload }
    }

    /// The limit on received payloads.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }
}

impl Default for FrameCodec {
    fn default() -> FrameCodec {
        FrameCodec::new(DEFAULT_MAX_PAYLOAD)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        Frame::parse(src, self.max_payload)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(ProtoError::Truncated {
                got: src.len(),
                needed: needed(src),
            }),
        }
    }
}

/// How many bytes the partial frame in `src` announces (header only if the
/// header itself is incomplete).
fn needed(src: &[u8]) -> usize {
    match src.get(12..16) {
        Some(len) => {
            crate::HEADER_LEN + u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize
        }
        None => crate::HEADER_LEN,
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtoError> {
        frame.write(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CheckRequest, Request};

    #[test]
    fn decodes_across_split_reads_and_reports_truncation() {
        let bytes = Request::Check(CheckRequest {
            component: Some("db".into()),
        })
        .to_frame(9)
        .to_bytes();
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for (i, b) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let got = codec.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == bytes.len() - 1);
        }
        let mut half = BytesMut::from(&bytes[..20]);
        match codec.decode_eof(&mut half) {
            Err(ProtoError::Truncated { got, needed }) => {
                assert_eq!(got, 20);
                assert_eq!(needed, bytes.len());
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
    }
}
