//! Codec micro-benchmarks: what one check costs in framing and JSON on each
//! side, how cheaply hostile frames are refused, and the same messages of
//! the peer, gRPC health (protobuf via prost with gRPC's 5-byte message
//! prefix; HTTP/2 framing and HPACK, which gRPC adds on top, not included).
//!
//! `cargo bench -p health-bench --bench codec`

// criterion_group! makes a public `benches` function it cannot document.
#![allow(missing_docs)]

use bytes::{BufMut, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use health_proto::codec::FrameCodec;
use health_proto::{
    CheckRequest, Frame, Landmark, LandmarkReply, Request, Response, State, Weight,
    DEFAULT_MAX_PAYLOAD,
};
use prost::Message;
use std::hint::black_box;
use tokio_util::codec::{Decoder, Encoder};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// A landmark as a busy service would report it: weight, two components and
/// a few fields.
fn typical_landmark() -> Landmark {
    Landmark::ok("serving 1200 clients")
        .with_weight(Weight::new(100).expect("weight in range"))
        .with_component("epg", State::Ok, "guide loaded 14:02")
        .with_component("db", State::Degraded, "replica lag 2s")
        .with_field("clients", 1200)
        .with_field("queue_depth", 3)
        .with_field("version", "2.4.1")
}

fn encoded(frame: Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    FrameCodec::default()
        .encode(frame, &mut buf)
        .expect("encoding into memory");
    buf
}

/// Times turning `message` into frame bytes: the JSON payload and header.
fn bench_encode<M>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    message: &M,
    to_frame: impl Fn(&M) -> Frame,
) {
    g.bench_function(name, |b| {
        let mut buf = BytesMut::with_capacity(512);
        b.iter(|| {
            buf.clear();
            let frame = to_frame(black_box(message));
            FrameCodec::default()
                .encode(frame, &mut buf)
                .expect("encode");
            black_box(&buf);
        })
    });
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    let request = Request::Check(CheckRequest::default());
    bench_encode(&mut g, "check_request", &request, |r| r.to_frame(7));
    let minimal = Response::Landmark(LandmarkReply::whole(Landmark::ok(""), 412));
    bench_encode(&mut g, "landmark_reply_minimal", &minimal, |r| {
        r.to_frame(7)
    });
    let reply = Response::Landmark(LandmarkReply::whole(typical_landmark(), 412));
    bench_encode(&mut g, "landmark_reply", &reply, |r| r.to_frame(7));
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    let request = encoded(Request::Check(CheckRequest::default()).to_frame(7));
    let component = encoded(
        Request::Check(CheckRequest {
            component: Some("epg".into()),
        })
        .to_frame(7),
    );
    for (name, bytes) in [("check_request", &request), ("check_component", &component)] {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new(name, bytes.len()), bytes, |b, bytes| {
            b.iter(|| {
                let mut buf = bytes.clone();
                let frame = FrameCodec::default()
                    .decode(&mut buf)
                    .expect("valid")
                    .expect("complete");
                black_box(Request::from_frame(&frame).expect("parses"))
            })
        });
    }
    let minimal =
        encoded(Response::Landmark(LandmarkReply::whole(Landmark::ok(""), 412)).to_frame(7));
    let reply =
        encoded(Response::Landmark(LandmarkReply::whole(typical_landmark(), 412)).to_frame(7));
    for (name, bytes) in [
        ("landmark_reply_minimal", &minimal),
        ("landmark_reply", &reply),
    ] {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new(name, bytes.len()), bytes, |b, bytes| {
            b.iter(|| {
                let mut buf = bytes.clone();
                let frame = FrameCodec::default()
                    .decode(&mut buf)
                    .expect("valid")
                    .expect("complete");
                black_box(Response::from_frame(&frame).expect("parses"))
            })
        });
    }
    g.finish();
}

/// gRPC's length-prefixed message: flag byte, u32 BE length, protobuf.
fn grpc_message<M: Message>(m: &M, dst: &mut BytesMut) {
    dst.put_u8(0);
    dst.put_u32(m.encoded_len() as u32);
    m.encode(dst).expect("capacity grows");
}

fn grpc_decode<M: Message + Default>(bytes: &[u8]) -> M {
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    M::decode(&bytes[5..5 + len]).expect("valid protobuf")
}

fn peer_grpc_health(c: &mut Criterion) {
    let mut g = c.benchmark_group("peer_grpc_health");
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let response = HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    };
    g.bench_function("encode/check_request", |b| {
        let mut buf = BytesMut::with_capacity(256);
        b.iter(|| {
            buf.clear();
            grpc_message(black_box(&request), &mut buf);
            black_box(&buf);
        })
    });
    g.bench_function("encode/check_response", |b| {
        let mut buf = BytesMut::with_capacity(256);
        b.iter(|| {
            buf.clear();
            grpc_message(black_box(&response), &mut buf);
            black_box(&buf);
        })
    });
    let mut req_bytes = BytesMut::new();
    grpc_message(&request, &mut req_bytes);
    let mut resp_bytes = BytesMut::new();
    grpc_message(&response, &mut resp_bytes);
    g.bench_function("decode/check_request", |b| {
        b.iter(|| black_box(grpc_decode::<HealthCheckRequest>(black_box(&req_bytes))))
    });
    g.bench_function("decode/check_response", |b| {
        b.iter(|| black_box(grpc_decode::<HealthCheckResponse>(black_box(&resp_bytes))))
    });
    g.finish();
}

fn refuse(c: &mut Criterion) {
    let mut g = c.benchmark_group("refuse");
    // A header announcing a 1 GiB payload: refused from 16 bytes, nothing
    // allocated for it.
    let mut huge = encoded(Request::Check(CheckRequest::default()).to_frame(1));
    huge[12..16].copy_from_slice(&(1u32 << 30).to_be_bytes());
    g.bench_function("oversized_header", |b| {
        b.iter(|| black_box(Frame::check(black_box(&huge), DEFAULT_MAX_PAYLOAD)).is_err())
    });
    let garbage = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    g.bench_function("garbage", |b| {
        b.iter(|| black_box(Frame::check(black_box(&garbage), DEFAULT_MAX_PAYLOAD)).is_err())
    });
    let half = encoded(Request::Check(CheckRequest::default()).to_frame(1));
    let half = &half[..10];
    g.bench_function("incomplete_header", |b| {
        b.iter(|| black_box(Frame::check(black_box(half), DEFAULT_MAX_PAYLOAD)))
    });
    g.finish();
}

criterion_group!(benches, encode, decode, refuse, peer_grpc_health);
criterion_main!(benches);
