//! Replays the committed corpus of the `decode_stream` fuzz target (`fuzz/corpus/decode_stream`)
//! through the very function the target calls, so every input the fuzzer kept stays a
//! regression test on stable Rust, and checks that the corpus still reaches what it should:
//! past the handshake, every client opcode, both frame limits.
//!
//! The seed corpus is written by `write_seed_corpus` below (ignored unless asked for):
//!
//! ```text
//! ARBOR_PROTO_SEED_CORPUS_DIR=/tmp/seeds cargo test -p arbor-proto --test fuzz_corpus \
//!     -- --ignored write_seed_corpus
//! ```

mod common;

#[path = "../fuzz/src/decode_stream.rs"]
mod decode_stream;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arbor_proto::*;
use bytes::Bytes;
use decode_stream::{FRAME_SIZE_BYTES_MAX_SMALL, Stop, StreamOutcome, decode_stream};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_stream")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("the fuzz corpus is committed")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_replays_and_the_corpus_covers_the_protocol() {
    let files = corpus_files();
    assert!(files.len() >= 50, "corpus has only {} inputs", files.len());
    let mut opcodes = BTreeSet::new();
    let mut stops = BTreeSet::new();
    let mut past_handshake = 0;
    let mut request_errors = 0;
    for file in &files {
        let bytes = std::fs::read(file).expect("readable corpus file");
        let outcomes: Vec<StreamOutcome> = decode_stream(&bytes);
        for outcome in outcomes {
            if outcome.frame_size_max == FRAME_SIZE_BYTES_MAX_DEFAULT {
                opcodes.extend(outcome.requests.iter().copied());
                past_handshake += usize::from(outcome.connect.is_some());
                request_errors += outcome.request_errors;
            }
            stops.insert((outcome.frame_size_max, outcome.stop));
        }
    }
    let missing: Vec<OpCode> = OpCode::ALL
        .iter()
        .copied()
        .filter(|op| {
            !matches!(
                op,
                OpCode::Notification
                    | OpCode::DeleteContainer
                    | OpCode::CreateSession
                    | OpCode::Error
            )
        })
        .filter(|op| !opcodes.contains(op))
        .collect();
    assert!(missing.is_empty(), "no corpus input decodes {missing:?}");
    assert!(
        past_handshake * 2 >= files.len(),
        "few inputs pass the handshake"
    );
    assert!(
        request_errors > 0,
        "no input exercises a request that fails to decode"
    );
    for stop in [
        Stop::FourLetterWord,
        Stop::NeedMoreBytes,
        Stop::FrameTooLarge,
        Stop::BadConnectRequest,
    ] {
        assert!(
            stops.contains(&(FRAME_SIZE_BYTES_MAX_DEFAULT, stop)),
            "no input stops with {stop:?} under the default limit"
        );
    }
    assert!(
        stops.contains(&(FRAME_SIZE_BYTES_MAX_SMALL, Stop::FrameTooLarge)),
        "no input hits the small frame limit"
    );
}

/// A stream as a client writes one: the handshake, then `requests` framed with xids 1, 2...
fn client_stream(connect: &ConnectRequest, requests: &[Request]) -> Vec<u8> {
    let mut wire = Vec::new();
    write_frame(&mut wire, |out| connect.encode(out));
    for (xid, request) in (1..).zip(requests) {
        write_frame(&mut wire, |out| request.encode_with_header(xid, out));
    }
    wire
}

/// Hand-made streams, one per situation the replay test expects to see covered.
fn hand_made_streams() -> Vec<Vec<u8>> {
    let java_connect = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30_000,
        session_id: 0,
        password: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    };
    let old_connect = ConnectRequest {
        read_only: None,
        ..java_connect.clone()
    };
    let multi = Request::Multi(MultiRequest {
        ops: vec![
            MultiOp::Create(CreateRequest {
                path: "/a".into(),
                data: Some(Bytes::from_static(b"x")),
                acl: Acl::open_unsafe(),
                flags: 0,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/b".into(),
                version: -1,
            }),
        ],
    });
    let mut streams = vec![
        b"ruok".to_vec(),
        b"mntr".to_vec(),
        client_stream(&java_connect, &[]),
        client_stream(&old_connect, &[Request::Ping, multi.clone()]),
        client_stream(&java_connect, &[Request::Ping, Request::CloseSession]),
        (-1i32).to_be_bytes().to_vec(),
        0x0010_0000i32.to_be_bytes().to_vec(),
        // A first frame too short to be a handshake.
        vec![0, 0, 0, 3, 1, 2, 3],
    ];
    // A request frame with an unknown opcode, then one cut short.
    let mut bad = client_stream(&java_connect, &[]);
    write_frame(&mut bad, |out| {
        RequestHeader {
            xid: 1,
            op_code: 10,
        }
        .encode(out);
    });
    write_frame(&mut bad, |out| {
        RequestHeader { xid: 2, op_code: 4 }.encode(out);
        out.extend_from_slice(&[0, 0, 0, 9, b'/']);
    });
    streams.push(bad);
    // A notification and a reply as a client would read them.
    let mut replies = Vec::new();
    write_frame(&mut replies, |out| {
        ConnectResponse::refused(Some(false)).encode(out)
    });
    write_notification(
        &mut replies,
        7,
        &WatcherEvent {
            event_type: 3,
            state: 3,
            path: "/app".into(),
        },
    );
    streams.push(replies);
    // Over the small limit but under the default one.
    streams.push(client_stream(
        &java_connect,
        &[Request::SetData(SetDataRequest {
            path: "/big".into(),
            data: Some(Bytes::from(vec![7; 200])),
            version: -1,
        })],
    ));
    streams
}

/// A stable file name for a corpus input (FNV-1a, so no hashing crate is needed).
fn file_name(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("seed-{hash:016x}")
}

/// Writes the seed corpus: the hand-made streams, then streams of requests drawn from the
/// round-trip strategies (every variant), each after a drawn handshake.
#[test]
#[ignore = "writes files; run by hand to regenerate the seed corpus"]
fn write_seed_corpus() {
    let Some(dir) = std::env::var_os("ARBOR_PROTO_SEED_CORPUS_DIR") else {
        panic!("set ARBOR_PROTO_SEED_CORPUS_DIR to the directory to write");
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    let mut streams = hand_made_streams();
    let connects = common::sample(common::connect_request(), 300);
    let requests = common::sample(common::request(), 900);
    for (connect, chunk) in connects.iter().zip(requests.chunks(3)) {
        streams.push(client_stream(connect, chunk));
    }
    for stream in &streams {
        decode_stream(stream);
        std::fs::write(dir.join(file_name(stream)), stream).expect("write a corpus file");
    }
}

#[test]
fn hand_made_streams_decode_as_intended() {
    let streams = hand_made_streams();
    let outcome = |index: usize| decode_stream(&streams[index]).remove(0);
    assert_eq!(outcome(0).stop, Stop::FourLetterWord);
    assert_eq!(outcome(2).stop, Stop::NeedMoreBytes);
    assert!(outcome(2).connect.is_some());
    assert_eq!(outcome(3).requests, vec![OpCode::Ping, OpCode::Multi]);
    assert_eq!(outcome(3).connect.and_then(|c| c.read_only), None);
    assert_eq!(outcome(5).stop, Stop::FrameTooLarge);
    assert_eq!(outcome(6).stop, Stop::FrameTooLarge);
    assert_eq!(outcome(7).stop, Stop::BadConnectRequest);
    assert_eq!(outcome(8).request_errors, 2);
    let big = decode_stream(&streams[10]);
    assert_eq!(big[0].requests, vec![OpCode::SetData]);
    assert_eq!(big[1].frame_size_max, FRAME_SIZE_BYTES_MAX_SMALL);
    assert_eq!(big[1].stop, Stop::FrameTooLarge);
}
