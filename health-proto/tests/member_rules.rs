//! The member rules of docs/PROTOCOL.md section 5 (empty payloads, integer
//! ranges, `null`, repeated members), as the code reads payloads.

use bytes::Bytes;
use health_proto::{Frame, LandmarkReply, MessageType, ProtoError, Request};

fn check(payload: &str) -> Result<Request, ProtoError> {
    Request::from_frame(&Frame {
        kind: MessageType::Check as u8,
        request_id: 1,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    })
}

fn watch(payload: &str) -> Result<Request, ProtoError> {
    Request::from_frame(&Frame {
        kind: MessageType::Watch as u8,
        request_id: 1,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    })
}

fn connections(payload: &str) -> Result<Request, ProtoError> {
    Request::from_frame(&Frame {
        kind: MessageType::Connections as u8,
        request_id: 1,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    })
}

#[test]
fn empty_payload_and_empty_object_mean_the_same_for_every_request() {
    assert_eq!(check("").unwrap(), check("{}").unwrap());
    assert_eq!(connections("").unwrap(), connections("{}").unwrap());
    assert_eq!(watch("").unwrap(), watch("{}").unwrap());
    // And `"component":""` is the whole service, as for a check.
    assert_eq!(watch(r#"{"component":""}"#).unwrap(), watch("").unwrap());
}

#[test]
fn null_is_absent_for_optional_members_and_malformed_for_defaulted_ones() {
    assert_eq!(
        check(r#"{"component":null}"#).unwrap(),
        check("{}").unwrap()
    );
    assert_eq!(
        connections(r#"{"port":null,"top":null,"group_by":null}"#).unwrap(),
        connections("{}").unwrap()
    );
    assert!(connections(r#"{"states":null}"#).is_err());
    let reply = |p: &str| serde_json::from_str::<LandmarkReply>(p);
    assert!(reply(r#"{"state":"ok","weight":null}"#).is_ok());
    assert!(reply(r#"{"state":"ok","detail":null}"#).is_err());
    assert!(reply(r#"{"state":null}"#).is_err());
    assert!(reply(r#"{"state":"drain","established":null}"#).is_ok());
    assert!(reply(r#"{"state":"ok","push":null,"period_ms":null,"heartbeat_ms":null}"#).is_ok());
    assert_eq!(
        watch(r#"{"component":null,"period_ms":null,"heartbeat_ms":null}"#).unwrap(),
        watch("").unwrap()
    );
}

#[test]
fn a_known_member_twice_is_malformed_an_unknown_one_is_ignored() {
    assert!(check(r#"{"component":"a","component":"b"}"#).is_err());
    assert!(check(r#"{"x":1,"x":2}"#).is_ok());
}

#[test]
fn integers_are_whole_and_within_their_width() {
    assert!(connections(r#"{"port":65535}"#).is_ok());
    assert!(connections(r#"{"port":65536}"#).is_err());
    assert!(connections(r#"{"port":-1}"#).is_err());
    assert!(connections(r#"{"top":1.0}"#).is_err());
    assert!(connections(r#"{"top":1e3}"#).is_err());
    assert!(connections(r#"{"top":4294967295}"#).is_ok());
    assert!(connections(r#"{"top":4294967296}"#).is_err());
    assert!(connections(r#"{"prefix":255}"#).is_ok());
    assert!(connections(r#"{"at_ms":18446744073709551615}"#).is_ok());
    let reply = |p: &str| serde_json::from_str::<health_proto::LandmarkReply>(p);
    assert_eq!(
        reply(r#"{"state":"drain","established":4294967295}"#)
            .unwrap()
            .established,
        Some(u32::MAX)
    );
    assert!(reply(r#"{"state":"drain","established":4294967296}"#).is_err());
    assert!(reply(r#"{"state":"drain","established":-1}"#).is_err());
    assert!(watch(r#"{"period_ms":18446744073709551615}"#).is_ok());
    assert!(watch(r#"{"period_ms":100.0}"#).is_err());
    assert!(watch(r#"{"heartbeat_ms":-5}"#).is_err());
    assert!(watch(r#"{"period_ms":1,"period_ms":2}"#).is_err());
}

/// The reference encoding of section 5, byte for byte: table order, sorted
/// names in `components` and `fields`, defaults left out but `detail` and
/// `answer_us`, and serde_json's escapes (control characters only, `/`,
/// DEL and non-ASCII as they are).
#[test]
fn the_reference_encoding_follows_the_written_rules() {
    use health_proto::{Component, Landmark, Response, State, Weight};
    let mut landmark = Landmark::degraded("a\u{1}\n\"q\"\\/\u{7f}é")
        .with_weight(Weight::new(7).unwrap())
        .with_field("b", 1)
        .with_field("a", serde_json::json!({"z": 1, "y": 2.5}));
    landmark.components.insert(
        "zeta".into(),
        Component {
            state: State::Ok,
            detail: String::new(),
        },
    );
    landmark.components.insert(
        "alpha".into(),
        Component {
            state: State::Fail,
            detail: "x".into(),
        },
    );
    let reply = Response::Landmark(LandmarkReply::whole(landmark, 0));
    let payload = reply.to_frame(1).payload;
    assert_eq!(
        std::str::from_utf8(&payload).unwrap(),
        concat!(
            r#"{"state":"degraded","detail":"a\u0001\n\"q\"\\/"#,
            "\u{7f}é",
            r#"","weight":7,"components":{"alpha":{"state":"fail","detail":"x"},"zeta":{"state":"ok","detail":""}},"fields":{"a":{"y":2.5,"z":1},"b":1},"answer_us":0}"#
        )
    );
}
