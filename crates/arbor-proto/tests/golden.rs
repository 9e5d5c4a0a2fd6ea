//! Golden byte vectors, written by hand from `zookeeper.jute` (ZooKeeper 3.9) and the Java
//! serialization of `MultiOperationRecord` / `MultiResponse`, one field per line. Each vector
//! is checked both ways (our encoding equals it, and it decodes to the value), so a bug made
//! the same way in encode and decode — a swapped field pair, a missing field, a wrong width —
//! fails here even though every round trip passes.
//!
//! jute on the wire: `int` 4 bytes and `long` 8 bytes big-endian, `boolean` 1 byte,
//! `buffer`/`ustring` an `int` length then the bytes (−1 for null), `vector` an `int` count
//! then the elements. Every frame is an `int` length then the payload.

use arbor_proto::*;
use bytes::Bytes;

/// Joins hex fields (spaces allowed inside a field) into bytes.
fn hex(fields: &[&str]) -> Vec<u8> {
    let digits: Vec<u8> = fields
        .concat()
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(text, 16).expect("hex digit")
        })
        .collect()
}

/// The hex of an ASCII string's bytes, for the body of a `ustring`.
fn ascii(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn assert_golden<T: Jute + PartialEq + std::fmt::Debug>(value: &T, golden: &[u8]) {
    assert_eq!(value.to_bytes(), golden, "encoding of {value:?}");
    let mut reader = Reader::new(golden);
    assert_eq!(&T::decode(&mut reader).expect("golden decodes"), value);
    assert_eq!(reader.remaining(), 0);
}

fn frame(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, write);
    out
}

/// The first frame a ZooKeeper 3.9 Java client sends for a new session (`ClientCnxn`
/// `primeConnection`: `new ConnectRequest(0, lastZxid, sessionTimeout, sessId, sessionPasswd,
/// readOnly)` with a fresh client's zeroed 16-byte password).
const JAVA_NEW_SESSION_CONNECT_FRAME: &[&str] = &[
    "0000002d",         // frame length: 45
    "00000000",         // protocolVersion 0
    "0000000000000000", // lastZxidSeen 0
    "00007530",         // timeOut 30000 ms
    "0000000000000000", // sessionId 0: new session
    "00000010",         // passwd length 16
    "00000000000000000000000000000000",
    "00", // readOnly false
];

#[test]
fn connect_request_as_the_java_client_sends_it() {
    let expected = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30_000,
        session_id: 0,
        password: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    };
    let wire = hex(JAVA_NEW_SESSION_CONNECT_FRAME);
    assert_eq!(wire.len(), 49);
    assert_eq!(frame(|out| expected.encode(out)), wire);
    let (payload, consumed) = split_frame(&wire, FRAME_SIZE_BYTES_MAX_DEFAULT)
        .expect("in limit")
        .expect("whole frame");
    assert_eq!(consumed, 49);
    assert_golden(&expected, payload);
}

#[test]
fn connect_request_of_a_pre_3_4_client_resuming_a_session_has_no_read_only_byte() {
    let golden = hex(&[
        "00000000",         // protocolVersion
        "0000000100000005", // lastZxidSeen: epoch 1, counter 5
        "00002710",         // timeOut 10000 ms
        "0100000000000001", // sessionId: server 1's first session
        "00000010",         // passwd length 16
        "0102030405060708090a0b0c0d0e0f10",
    ]);
    assert_eq!(golden.len(), 44);
    assert_golden(
        &ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x1_0000_0005,
            timeout_ms: 10_000,
            session_id: 0x0100_0000_0000_0001,
            password: Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
            read_only: None,
        },
        &golden,
    );
}

#[test]
fn connect_request_with_read_only_true_and_null_password() {
    // A null buffer (−1) reads as empty, and any non-zero boolean byte is true (Java's
    // DataInput.readBoolean).
    let golden = hex(&[
        "00000000",
        "0000000000000000",
        "00000fa0", // 4000 ms
        "0000000000000000",
        "ffffffff", // passwd: null
        "07",       // readOnly: non-zero
    ]);
    let decoded = ConnectRequest::from_slice(&golden).expect("decodes");
    assert_eq!(decoded.password, Bytes::new());
    assert_eq!(decoded.read_only, Some(true));
    assert_eq!(decoded.timeout_ms, 4_000);
}

#[test]
fn connect_response_granting_a_session() {
    let golden = hex(&[
        "00000000",         // protocolVersion
        "00004e20",         // timeOut 20000 ms (negotiated)
        "0100000000000001", // sessionId
        "00000010",         // passwd length 16
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
        "01", // readOnly: this server is read-only
    ]);
    let mut password = [0u8; 16];
    for (i, byte) in password.iter_mut().enumerate() {
        *byte = 0xa0 + i as u8;
    }
    assert_golden(
        &ConnectResponse {
            protocol_version: 0,
            timeout_ms: 20_000,
            session_id: 0x0100_0000_0000_0001,
            password: Bytes::copy_from_slice(&password),
            read_only: Some(true),
        },
        &golden,
    );
}

#[test]
fn refused_connect_response_is_zeroes_with_or_without_read_only() {
    let without = hex(&[
        "00000000",
        "00000000",
        "0000000000000000",
        "00000010",
        "00000000000000000000000000000000",
    ]);
    assert_golden(&ConnectResponse::refused(None), &without);
    let mut with = without.clone();
    with.push(0);
    assert_golden(&ConnectResponse::refused(Some(true)), &with);
}

#[test]
fn stat_fields_are_in_jute_order_with_their_widths() {
    let golden = hex(&[
        "0000000000000001", // czxid
        "0000000000000002", // mzxid
        "0000000000000003", // ctime
        "0000000000000004", // mtime
        "00000005",         // version
        "00000006",         // cversion
        "00000007",         // aversion
        "0000000000000008", // ephemeralOwner
        "00000009",         // dataLength
        "0000000a",         // numChildren
        "000000000000000b", // pzxid
    ]);
    assert_golden(
        &Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        },
        &golden,
    );
}

#[test]
fn multi_with_create_and_delete_as_multi_operation_record_writes_it() {
    // RequestHeader, then per op MultiHeader{type, done=false, err=-1} and the op's request
    // record, then MultiHeader{-1, true, -1}.
    let world = ascii("world");
    let anyone = ascii("anyone");
    let golden = hex(&[
        "00000001", // RequestHeader.xid 1
        "0000000e", // RequestHeader.type 14: multi
        // op 1
        "00000001 00 ffffffff", // MultiHeader: create, not done, err -1
        "00000002",
        &ascii("/a"),  // CreateRequest.path
        "00000001 78", // data "x"
        "00000001",    // acl: one entry
        "0000001f",    // perms ALL
        "00000005",
        &world, // id.scheme
        "00000006",
        &anyone,    // id.id
        "00000002", // flags: persistent sequential
        // op 2
        "00000002 00 ffffffff", // MultiHeader: delete
        "00000002",
        &ascii("/b"), // DeleteRequest.path
        "ffffffff",   // version -1: any
        // end
        "ffffffff 01 ffffffff",
    ]);
    let request = Request::Multi(MultiRequest {
        ops: vec![
            MultiOp::Create(CreateRequest {
                path: "/a".into(),
                data: Some(Bytes::from_static(b"x")),
                acl: Acl::open_unsafe(),
                flags: CreateMode::PersistentSequential.flags(),
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/b".into(),
                version: -1,
            }),
        ],
    });
    let mut encoded = Vec::new();
    request.encode_with_header(1, &mut encoded);
    assert_eq!(encoded, golden);
    let (header, decoded) = decode_request(&golden).expect("decodes");
    assert_eq!(
        header,
        RequestHeader {
            xid: 1,
            op_code: 14
        }
    );
    assert_eq!(decoded, request);
}

#[test]
fn multi_response_of_a_successful_create_then_delete() {
    // MultiHeader{type, false, 0} then the result record; MultiHeader{-1, true, -1} ends it.
    let golden = hex(&[
        "00000001 00 00000000", // create result
        "00000004",
        &ascii("/a00"),         // CreateResponse.path
        "00000002 00 00000000", // delete result: no body
        "ffffffff 01 ffffffff",
    ]);
    let response = MultiResponse {
        results: vec![
            OpResult::Create {
                path: "/a00".into(),
                stat: None,
            },
            OpResult::Delete,
        ],
    };
    assert_golden(&response, &golden);
    assert_eq!(
        Response::decode(OpCode::Multi, &mut Reader::new(&golden)).expect("decodes"),
        Response::Multi(response)
    );
}

#[test]
fn multi_response_of_a_failed_multi_is_error_results_only() {
    // ZooKeeper rolls back: ops before the failure carry 0, the failing one its code
    // (NodeExists −110), later ones RuntimeInconsistency (−2). Each is
    // MultiHeader{type −1, done false, err} followed by ErrorResponse{err}.
    let golden = hex(&[
        "ffffffff 00 00000000",
        "00000000",
        "ffffffff 00 ffffff92",
        "ffffff92",
        "ffffffff 00 fffffffe",
        "fffffffe",
        "ffffffff 01 ffffffff",
    ]);
    assert_golden(
        &MultiResponse {
            results: vec![
                OpResult::error(ErrorCode::Ok),
                OpResult::error(ErrorCode::NodeExists),
                OpResult::error(ErrorCode::RuntimeInconsistency),
            ],
        },
        &golden,
    );
}

#[test]
fn multi_response_create2_result_carries_path_and_stat() {
    let mut golden = hex(&["0000000f 00 00000000", "00000002", &ascii("/c")]);
    golden.extend(Stat::default().to_bytes());
    golden.extend(hex(&["00000005 00 00000000"])); // setData result
    golden.extend(
        Stat {
            version: 1,
            ..Stat::default()
        }
        .to_bytes(),
    );
    golden.extend(hex(&["0000000d 00 00000000"])); // check result: no body
    golden.extend(hex(&["ffffffff 01 ffffffff"]));
    assert_golden(
        &MultiResponse {
            results: vec![
                OpResult::Create {
                    path: "/c".into(),
                    stat: Some(Stat::default()),
                },
                OpResult::SetData {
                    stat: Stat {
                        version: 1,
                        ..Stat::default()
                    },
                },
                OpResult::Check,
            ],
        },
        &golden,
    );
}

#[test]
fn notification_frame_for_a_data_change() {
    let golden = hex(&[
        "00000027",         // frame length 39
        "ffffffff",         // ReplyHeader.xid −1: notification
        "0000000500000007", // ReplyHeader.zxid
        "00000000",         // ReplyHeader.err
        "00000003",         // WatcherEvent.type: NodeDataChanged
        "00000003",         // WatcherEvent.state: SyncConnected
        "0000000b",
        &ascii("/app/config"),
    ]);
    let event = WatcherEvent {
        event_type: EventType::NodeDataChanged.code(),
        state: KeeperState::SyncConnected.code(),
        path: "/app/config".into(),
    };
    let mut wire = Vec::new();
    write_notification(&mut wire, 0x5_0000_0007, &event);
    assert_eq!(wire, golden);
    let (payload, _) = split_frame(&golden, FRAME_SIZE_BYTES_MAX_DEFAULT)
        .expect("in limit")
        .expect("whole frame");
    let mut reader = Reader::new(payload);
    assert_eq!(
        ReplyHeader::decode(&mut reader).expect("header"),
        ReplyHeader {
            xid: XID_NOTIFICATION,
            zxid: 0x5_0000_0007,
            err: 0
        }
    );
    assert_eq!(WatcherEvent::decode(&mut reader).expect("event"), event);
}

#[test]
fn ping_frame() {
    let golden = hex(&["00000008", "fffffffe", "0000000b"]); // xid −2, type 11, no body
    let wire = frame(|out| Request::Ping.encode_with_header(XID_PING, out));
    assert_eq!(wire, golden);
    assert_eq!(
        decode_request(&golden[4..]).expect("decodes"),
        (
            RequestHeader {
                xid: XID_PING,
                op_code: 11
            },
            Request::Ping
        )
    );
}

#[test]
fn auth_packet_for_digest() {
    let golden = hex(&[
        "fffffffc", // xid −4: auth
        "00000064", // type 100
        "00000000", // AuthPacket.type
        "00000006",
        &ascii("digest"),
        "00000009",
        &ascii("user:pass"),
    ]);
    let request = Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: Bytes::from_static(b"user:pass"),
    });
    let mut encoded = Vec::new();
    request.encode_with_header(XID_AUTH, &mut encoded);
    assert_eq!(encoded, golden);
    assert_eq!(decode_request(&golden).expect("decodes").1, request);
}

#[test]
fn create_ttl_request_has_ttl_after_flags() {
    let golden = hex(&[
        "00000002",
        &ascii("/t"),
        "ffffffff",         // data: null
        "00000000",         // acl: empty
        "00000005",         // flags: persistent with TTL
        "00000000000003e8", // ttl 1000 ms
    ]);
    let decoded = CreateTtlRequest::from_slice(&golden).expect("decodes");
    assert_eq!(
        decoded,
        CreateTtlRequest {
            path: "/t".into(),
            data: None,
            acl: Vec::new(),
            flags: 5,
            ttl: 1000,
        }
    );
}

#[test]
fn set_watches2_vectors_are_in_jute_order() {
    let golden = hex(&[
        "0000000000000009", // relativeZxid
        "00000001 00000002",
        &ascii("/d"), // dataWatches
        "00000001 00000002",
        &ascii("/e"), // existWatches
        "00000001 00000002",
        &ascii("/c"), // childWatches
        "00000001 00000002",
        &ascii("/p"), // persistentWatches
        "00000001 00000002",
        &ascii("/r"), // persistentRecursiveWatches
    ]);
    assert_golden(
        &SetWatches2 {
            relative_zxid: 9,
            data_watches: vec!["/d".into()],
            exist_watches: vec!["/e".into()],
            child_watches: vec!["/c".into()],
            persistent_watches: vec!["/p".into()],
            persistent_recursive_watches: vec!["/r".into()],
        },
        &golden,
    );
}

#[test]
fn get_data_reply_frame() {
    let mut golden = hex(&[
        "00000058",         // frame length 88: header 16, empty data 4, stat 68
        "00000007",         // xid
        "0000000100000002", // zxid
        "00000000",         // err 0
        "00000000",         // data: empty
    ]);
    golden.extend([0u8; 68]); // Stat::default(): eleven zero fields
    let mut wire = Vec::new();
    write_reply(
        &mut wire,
        &ReplyHeader {
            xid: 7,
            zxid: 0x1_0000_0002,
            err: 0,
        },
        |out| {
            Response::GetData(GetDataResponse {
                data: Some(Bytes::new()),
                stat: Stat::default(),
            })
            .encode(out)
        },
    );
    assert_eq!(wire, golden);
}

#[test]
fn error_reply_frame_is_the_header_alone() {
    let golden = hex(&[
        "00000010",         // frame length 16
        "00000003",         // xid
        "0000000000000009", // zxid
        "ffffff9b",         // err −101: NoNode
    ]);
    let mut wire = Vec::new();
    write_reply(
        &mut wire,
        &ReplyHeader {
            xid: 3,
            zxid: 9,
            err: ErrorCode::NoNode.code(),
        },
        |out| Response::Exists(ExistsResponse::default()).encode(out),
    );
    assert_eq!(wire, golden);
}

/// ZooKeeper's `FinalRequestProcessor` answers addWatch with `new ErrorResponse(0)` and the
/// Java client reads that body; arbor once sent none (a Java client then lost its connection).
#[test]
fn add_watch_reply_carries_an_error_response_body_like_zookeeper() {
    let golden = hex(&["00000000"]);
    let reply = Response::AddWatch(ErrorResponse { err: 0 });
    let mut body = Vec::new();
    reply.encode(&mut body);
    assert_eq!(body, golden);
    assert_eq!(
        Response::decode(OpCode::AddWatch, &mut Reader::new(&golden)).expect("decodes"),
        reply
    );
    assert!(
        Response::decode(OpCode::AddWatch, &mut Reader::new(&[])).is_err(),
        "an empty addWatch body is what the Java client cannot read"
    );
}

#[test]
fn add_watch_request_for_a_persistent_recursive_watch() {
    let golden = hex(&[
        "0000000a", // xid 10
        "0000006a", // type 106
        "00000004",
        &ascii("/app"),
        "00000001", // mode: persistent recursive
    ]);
    let request = Request::AddWatch(AddWatchRequest {
        path: "/app".into(),
        mode: AddWatchMode::PersistentRecursive.code(),
    });
    let mut encoded = Vec::new();
    request.encode_with_header(10, &mut encoded);
    assert_eq!(encoded, golden);
    assert_eq!(decode_request(&golden).expect("decodes").1, request);
}

#[test]
fn every_opcode_and_error_code_has_zookeeper_3_9_value() {
    let opcodes: Vec<(OpCode, i32)> = OpCode::ALL.iter().map(|&op| (op, op.code())).collect();
    let expected_opcodes = [
        (OpCode::Notification, 0),
        (OpCode::Create, 1),
        (OpCode::Delete, 2),
        (OpCode::Exists, 3),
        (OpCode::GetData, 4),
        (OpCode::SetData, 5),
        (OpCode::GetAcl, 6),
        (OpCode::SetAcl, 7),
        (OpCode::GetChildren, 8),
        (OpCode::Sync, 9),
        (OpCode::Ping, 11),
        (OpCode::GetChildren2, 12),
        (OpCode::Check, 13),
        (OpCode::Multi, 14),
        (OpCode::Create2, 15),
        (OpCode::Reconfig, 16),
        (OpCode::CheckWatches, 17),
        (OpCode::RemoveWatches, 18),
        (OpCode::CreateContainer, 19),
        (OpCode::DeleteContainer, 20),
        (OpCode::CreateTtl, 21),
        (OpCode::MultiRead, 22),
        (OpCode::Auth, 100),
        (OpCode::SetWatches, 101),
        (OpCode::Sasl, 102),
        (OpCode::GetEphemerals, 103),
        (OpCode::GetAllChildrenNumber, 104),
        (OpCode::SetWatches2, 105),
        (OpCode::AddWatch, 106),
        (OpCode::WhoAmI, 107),
        (OpCode::CreateSession, -10),
        (OpCode::CloseSession, -11),
        (OpCode::Error, -1),
    ];
    assert_eq!(opcodes, expected_opcodes);

    let codes: Vec<i32> = ErrorCode::ALL.iter().map(|code| code.code()).collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    // KeeperException.Code, read from release-3.9.4.
    let expected_codes = [
        0, -1, -2, -3, -4, -5, -6, -7, -8, -12, -13, -14, -100, -101, -102, -103, -108, -110, -111,
        -112, -113, -114, -115, -118, -119, -120, -121, -122, -123, -124, -125, -127,
    ];
    assert_eq!(sorted, expected_codes);
    for (name, value) in [
        (ErrorCode::NoNode, -101),
        (ErrorCode::NodeExists, -110),
        (ErrorCode::BadVersion, -103),
        (ErrorCode::SessionExpired, -112),
        (ErrorCode::SessionMoved, -118),
        (ErrorCode::NotReadOnly, -119),
        (ErrorCode::ThrottledOp, -127),
    ] {
        assert_eq!(name.code(), value, "{name:?}");
    }
}
