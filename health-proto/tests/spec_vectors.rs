//! Checks every test vector in docs/PROTOCOL.md against this crate, in both
//! directions, so the specification cannot drift from the code.

use bytes::BytesMut;
use health_proto::{Frame, ProtoError, Request, Response, DEFAULT_MAX_PAYLOAD};

struct Vector {
    name: String,
    fields: Vec<(String, String)>,
    hex: String,
}

impl Vector {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn vectors() -> Vec<Vector> {
    let doc = include_str!("../../docs/PROTOCOL.md");
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```vector" {
            continue;
        }
        let mut v = Vector {
            name: String::new(),
            fields: Vec::new(),
            hex: String::new(),
        };
        let mut in_hex = false;
        for line in lines.by_ref() {
            if line.trim() == "```" {
                break;
            }
            if in_hex && line.starts_with(char::is_whitespace) {
                v.hex.push_str(line);
                continue;
            }
            in_hex = false;
            let (key, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("malformed vector line {line:?}"));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match key {
                "name" => v.name = value,
                "hex" => {
                    v.hex = value;
                    in_hex = true;
                }
                _ => v.fields.push((key.to_string(), value)),
            }
        }
        out.push(v);
    }
    out
}

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn parse_int(s: &str) -> u32 {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

/// Decodes `bytes` as one frame and its typed message, as a server (requests)
/// or a client (responses) would; returns the re-encoded bytes.
fn decode_as(bytes: &[u8], as_server: bool) -> Result<(Frame, Vec<u8>), ProtoError> {
    let mut buf = BytesMut::from(bytes);
    let frame =
        Frame::parse(&mut buf, DEFAULT_MAX_PAYLOAD)?.expect("vector is not a complete frame");
    assert!(buf.is_empty(), "bytes left after the frame");
    let reencoded = if as_server {
        Request::from_frame(&frame)?.to_frame(frame.request_id)
    } else {
        Response::from_frame(&frame)?.to_frame(frame.request_id)
    };
    Ok((frame, reencoded.to_bytes()))
}

#[test]
fn spec_has_vectors() {
    let vs = vectors();
    assert!(vs.len() >= 21, "only {} vectors found", vs.len());
    assert!(vs.iter().any(|v| v.get("reject").is_some()));
}

#[test]
fn valid_vectors_decode_and_reencode_exactly() {
    for v in vectors().iter().filter(|v| v.get("reject").is_none()) {
        let bytes = unhex(&v.hex);
        let (frame, reencoded) = decode_as(&bytes, parse_int(v.get("type").unwrap()) & 0x80 == 0)
            .unwrap_or_else(|e| panic!("{}: does not decode: {e}", v.name));
        assert_eq!(
            u32::from(frame.kind),
            parse_int(v.get("type").unwrap()),
            "{}: type",
            v.name
        );
        assert_eq!(
            frame.request_id,
            parse_int(v.get("request_id").unwrap()),
            "{}: request id",
            v.name
        );
        assert_eq!(
            &frame.payload[..],
            v.get("payload").unwrap().as_bytes(),
            "{}: payload",
            v.name
        );
        if v.get("decode-only") != Some("yes") {
            assert_eq!(reencoded, bytes, "{}: re-encoding differs", v.name);
        }
    }
}

#[test]
fn payloads_encode_to_the_vector_bytes() {
    // Other direction: build the frame from the documented JSON.
    for v in vectors().iter().filter(|v| v.get("reject").is_none()) {
        if v.get("decode-only") == Some("yes") {
            continue;
        }
        let kind = parse_int(v.get("type").unwrap()) as u8;
        let id = parse_int(v.get("request_id").unwrap());
        let payload = v.get("payload").unwrap();
        let frame = match kind {
            0x01 => {
                let req = if payload.is_empty() {
                    Default::default()
                } else {
                    serde_json::from_str(payload).unwrap()
                };
                Request::Check(req).to_frame(id)
            }
            0x02 => Request::Connections(serde_json::from_str(payload).unwrap()).to_frame(id),
            0x03 => {
                let req = if payload.is_empty() {
                    Default::default()
                } else {
                    serde_json::from_str(payload).unwrap()
                };
                Request::Watch(req).to_frame(id)
            }
            0x81 => Response::Landmark(serde_json::from_str(payload).unwrap()).to_frame(id),
            0x82 => Response::Error(serde_json::from_str(payload).unwrap()).to_frame(id),
            0x83 => Response::ConnectionReport(serde_json::from_str(payload).unwrap()).to_frame(id),
            other => panic!("{}: unexpected type {other:#x}", v.name),
        };
        assert_eq!(
            frame.to_bytes(),
            unhex(&v.hex),
            "{}: encoding differs",
            v.name
        );
    }
}

#[test]
fn reject_vectors_are_refused_with_their_code() {
    for v in vectors() {
        let Some(want) = v.get("reject") else {
            continue;
        };
        let as_server = match v.get("receiver") {
            Some("server") => true,
            Some("client") => false,
            other => panic!(
                "{}: receiver must be server or client, not {other:?}",
                v.name
            ),
        };
        let bytes = unhex(&v.hex);
        // Frames may be rejected before they are complete (bad magic).
        let err = match Frame::check(&bytes, DEFAULT_MAX_PAYLOAD) {
            Err(e) => e,
            Ok(None) => panic!("{}: accepted as incomplete", v.name),
            Ok(Some(_)) => decode_as(&bytes, as_server)
                .err()
                .unwrap_or_else(|| panic!("{}: accepted", v.name)),
        };
        let code = err
            .code()
            .unwrap_or_else(|| panic!("{}: error without a code: {err}", v.name));
        assert_eq!(code.name(), want, "{}: {err}", v.name);
    }
}
