//! Blocking frame I/O over `std::io`, for clients without an async runtime.
//!
//! These helpers never allocate more than the payload limit and reject a
//! foreign peer on its first bytes. They do not set deadlines themselves:
//! give them a reader whose every `read` is bounded (a socket with a read
//! timeout, or a wrapper that shrinks the timeout towards one overall
//! deadline, as `health-probe` does).

use std::io::{ErrorKind, Read, Write};

use bytes::Bytes;

use crate::frame::{Frame, Header, HEADER_LEN};
use crate::ProtoError;

/// Writes one frame in a single `write_all`.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> Result<(), ProtoError> {
    w.write_all(&frame.to_bytes())?;
    w.flush()?;
    Ok(())
}

/// Reads exactly one frame whose payload is at most `max_payload` bytes.
pub fn read_frame(r: &mut impl Read, max_payload: u32) -> Result<Frame, ProtoError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = read_some(r, &mut head[got..])?;
        if n == 0 {
            return Err(if got == 0 {
                ProtoError::Closed
            } else {
                ProtoError::Truncated {
                    got,
                    needed: HEADER_LEN,
                }
            });
        }
        got += n;
        // Reject foreign bytes as soon as they arrive (checks the magic and
        // version prefix; complete headers are validated below).
        Frame::check(&head[..got], max_payload)?;
    }
    let header = Header::parse(&head, max_payload)?;
    let len = header.payload_len as usize;
    let mut payload = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = read_some(r, &mut payload[filled..])?;
        if n == 0 {
            return Err(ProtoError::Truncated {
                got: HEADER_LEN + filled,
                needed: HEADER_LEN + len,
            });
        }
        filled += n;
    }
    Ok(Frame {
        kind: header.kind,
        request_id: header.request_id,
        payload: Bytes::from(payload),
    })
}

fn read_some(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, ProtoError> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CheckRequest, Request, DEFAULT_MAX_PAYLOAD};

    #[test]
    fn round_trip_through_a_byte_stream() {
        let frame = Request::Check(CheckRequest::default()).to_frame(42);
        let mut wire = Vec::new();
        write_frame(&mut wire, &frame).unwrap();
        let back = read_frame(&mut &wire[..], DEFAULT_MAX_PAYLOAD).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn eof_is_closed_or_truncated() {
        assert!(matches!(
            read_frame(&mut &b""[..], 64),
            Err(ProtoError::Closed)
        ));
        let wire = Request::Check(CheckRequest {
            component: Some("x".into()),
        })
        .to_frame(1)
        .to_bytes();
        assert!(matches!(
            read_frame(&mut &wire[..wire.len() - 1], 64),
            Err(ProtoError::Truncated { .. })
        ));
        assert!(matches!(
            read_frame(&mut &wire[..5], 64),
            Err(ProtoError::Truncated { got: 5, needed: 16 })
        ));
    }

    #[test]
    fn http_request_rejected_on_first_byte() {
        // A reader that would block after the first read: the error must come
        // from the bytes already seen, not from waiting.
        struct OneShot(Option<&'static [u8]>);
        impl Read for OneShot {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                match self.0.take() {
                    Some(b) => {
                        buf[..b.len()].copy_from_slice(b);
                        Ok(b.len())
                    }
                    None => Err(std::io::Error::new(ErrorKind::WouldBlock, "would block")),
                }
            }
        }
        assert!(matches!(
            read_frame(&mut OneShot(Some(b"GET")), 64),
            Err(ProtoError::BadMagic { .. })
        ));
    }
}
