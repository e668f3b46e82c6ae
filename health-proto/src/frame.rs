//! The byte layout of a frame: a 16-byte header and a JSON payload.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "LMRK" (0x4c 0x4d 0x52 0x4b)
//!      4     1  version (1)
//!      5     1  message type
//!      6     2  reserved, sent as 0, ignored on receipt
//!      8     4  request id, big-endian; a response echoes its request's id
//!     12     4  payload length in bytes, big-endian
//!     16     n  payload: UTF-8 JSON
//! ```
//!
//! As in mini-redis, checking that a frame is complete ([`Frame::check`]) is
//! separate from taking it out of the buffer ([`Frame::parse`]), and both
//! reject an oversized or foreign frame from the header alone, before any
//! payload is buffered or allocated.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::ProtoError;

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"LMRK";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 16;
/// Default limit on a frame's payload: 64 KiB. Receivers may configure
/// another; senders must stay under the receiver's limit.
pub const DEFAULT_MAX_PAYLOAD: u32 = 64 * 1024;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Raw message type byte (see [`crate::MessageType`]).
    pub kind: u8,
    /// Request id; responses echo the id of the request they answer.
    pub request_id: u32,
    /// Length of the payload that follows the header.
    pub payload_len: u32,
}

impl Header {
    /// Parses and validates the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// Validates the magic, the version and the payload length against
    /// `max_payload`. The message type is *not* validated here: an unknown
    /// type is a per-message error and the frame can still be skipped whole.
    ///
    /// # Panics
    /// Never on any input; `buf` shorter than the header is a caller bug and
    /// is reported as `Truncated`.
    pub fn parse(buf: &[u8], max_payload: u32) -> Result<Header, ProtoError> {
        let Some(head) = buf.get(..HEADER_LEN) else {
            return Err(ProtoError::Truncated {
                got: buf.len(),
                needed: HEADER_LEN,
            });
        };
        let mut head = head;
        let mut magic = [0u8; 4];
        head.copy_to_slice(&mut magic);
        if magic != MAGIC {
            return Err(ProtoError::BadMagic { found: magic });
        }
        let version = head.get_u8();
        if version != VERSION {
            return Err(ProtoError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let kind = head.get_u8();
        let _reserved = head.get_u16();
        let request_id = head.get_u32();
        let payload_len = head.get_u32();
        if payload_len > max_payload {
            return Err(ProtoError::TooLarge {
                len: payload_len,
                max: max_payload,
            });
        }
        Ok(Header {
            kind,
            request_id,
            payload_len,
        })
    }

    /// Appends this header's 16 bytes to `dst`.
    pub fn write(&self, dst: &mut impl BufMut) {
        dst.put_slice(&MAGIC);
        dst.put_u8(VERSION);
        dst.put_u8(self.kind);
        dst.put_u16(0);
        dst.put_u32(self.request_id);
        dst.put_u32(self.payload_len);
    }
}

/// One whole frame: header fields and the raw payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Raw message type byte (see [`crate::MessageType`]).
    pub kind: u8,
    /// Request id; responses echo the id of the request they answer.
    pub request_id: u32,
    /// The JSON payload, not yet parsed.
    pub payload: Bytes,
}

impl Frame {
    /// Checks whether `buf` starts with a whole frame.
    ///
    /// Returns `Ok(None)` if more bytes are needed, `Ok(Some(header))` if a
    /// whole frame is buffered (its length is `HEADER_LEN + payload_len`), and
    /// an error as soon as the header is complete and invalid. Each prefix of
    /// the magic is checked as it arrives, so a peer speaking another protocol
    /// is rejected on its first bytes rather than after a timeout.
    pub fn check(buf: &[u8], max_payload: u32) -> Result<Option<Header>, ProtoError> {
        if buf.len() < HEADER_LEN {
            let n = buf.len().min(MAGIC.len());
            if buf[..n] != MAGIC[..n] {
                let mut found = [0u8; 4];
                found[..n].copy_from_slice(&buf[..n]);
                return Err(ProtoError::BadMagic { found });
            }
            if buf.len() > 4 && buf[4] != VERSION {
                return Err(ProtoError::UnsupportedVersion {
                    found: buf[4],
                    supported: VERSION,
                });
            }
            return Ok(None);
        }
        let header = Header::parse(buf, max_payload)?;
        if buf.len() < HEADER_LEN + header.payload_len as usize {
            return Ok(None);
        }
        Ok(Some(header))
    }

    /// Takes one whole frame off the front of `buf`.
    ///
    /// Returns `Ok(None)` (consuming nothing) while the frame is incomplete.
    /// On a header error nothing is consumed and the stream cannot be
    /// resynchronised; the caller should reply and close.
    pub fn parse(buf: &mut BytesMut, max_payload: u32) -> Result<Option<Frame>, ProtoError> {
        let Some(header) = Frame::check(buf, max_payload)? else {
            // Reserve what the announced frame needs (bounded by the limit,
            // already checked) so the read loop fills it in few syscalls.
            if buf.len() >= HEADER_LEN {
                let want = HEADER_LEN + (buf[12..16].as_ref().get_u32() as usize);
                buf.reserve(want.saturating_sub(buf.len()));
            }
            return Ok(None);
        };
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(header.payload_len as usize).freeze();
        Ok(Some(Frame {
            kind: header.kind,
            request_id: header.request_id,
            payload,
        }))
    }

    /// The header describing this frame.
    pub fn header(&self) -> Header {
        Header {
            kind: self.kind,
            request_id: self.request_id,
            payload_len: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
        }
    }

    /// Appends the encoded frame to `dst`.
    pub fn write(&self, dst: &mut BytesMut) {
        dst.reserve(HEADER_LEN + self.payload.len());
        self.header().write(dst);
        dst.put_slice(&self.payload);
    }

    /// The encoded frame as one byte vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(HEADER_LEN + self.payload.len());
        self.write(&mut out);
        out.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(kind: u8, id: u32, payload: &[u8]) -> BytesMut {
        let f = Frame {
            kind,
            request_id: id,
            payload: Bytes::copy_from_slice(payload),
        };
        BytesMut::from(&f.to_bytes()[..])
    }

    #[test]
    fn incomplete_until_last_byte() {
        let full = frame_bytes(1, 7, b"{}");
        for cut in 0..full.len() {
            assert!(
                Frame::check(&full[..cut], 1024).unwrap().is_none(),
                "cut {cut}"
            );
        }
        let mut buf = full.clone();
        let f = Frame::parse(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(f.request_id, 7);
        assert_eq!(&f.payload[..], b"{}");
        assert!(buf.is_empty());
    }

    #[test]
    fn foreign_bytes_rejected_on_first_byte() {
        assert!(matches!(
            Frame::check(b"G", 1024),
            Err(ProtoError::BadMagic { .. })
        ));
        assert!(matches!(
            Frame::check(b"LMRX", 1024),
            Err(ProtoError::BadMagic { .. })
        ));
        assert!(matches!(
            Frame::check(b"LMRK\x02", 1024),
            Err(ProtoError::UnsupportedVersion { found: 2, .. })
        ));
    }

    #[test]
    fn oversized_rejected_from_header_alone() {
        let mut head = BytesMut::new();
        Header {
            kind: 1,
            request_id: 1,
            payload_len: u32::MAX,
        }
        .write(&mut head);
        let mut buf = head.clone();
        match Frame::parse(&mut buf, DEFAULT_MAX_PAYLOAD) {
            Err(ProtoError::TooLarge { len, max }) => {
                assert_eq!(len, u32::MAX);
                assert_eq!(max, DEFAULT_MAX_PAYLOAD);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // Nothing was reserved for the announced 4 GiB.
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn reserved_bytes_ignored() {
        let mut buf = frame_bytes(1, 1, b"");
        buf[6] = 0xff;
        buf[7] = 0xff;
        assert!(Frame::parse(&mut buf, 1024).unwrap().is_some());
    }
}
