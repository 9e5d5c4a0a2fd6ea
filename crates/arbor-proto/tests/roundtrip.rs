//! Property tests: every record, request, response and multi of the ZooKeeper client protocol
//! survives encode ⇒ decode unchanged, consumes exactly what was encoded, fails on any strict
//! prefix of its encoding, and no decoder panics on arbitrary bytes.
//!
//! Symmetric bugs (the same wrong field order in encode and decode) cannot be seen here; the
//! hand-written byte vectors of `golden.rs` catch those.

mod common;

use std::collections::BTreeSet;
use std::fmt::Debug;

use arbor_proto::*;
use bytes::Bytes;
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Checks the round trip of one value through both readers, that decoding consumes the
/// whole encoding, and that every strict prefix of the encoding is an error.
fn assert_round_trip<T: Jute + PartialEq + Debug>(value: &T) {
    let encoded = value.to_bytes();
    let mut reader = Reader::new(&encoded);
    assert_eq!(&T::decode(&mut reader).expect("decodes"), value);
    assert_eq!(reader.remaining(), 0, "decode left bytes of {value:?}");
    let shared = Bytes::from(encoded.clone());
    assert_eq!(
        &T::decode(&mut Reader::from_bytes(&shared)).expect("decodes"),
        value
    );
    for end in 0..encoded.len() {
        assert!(
            T::from_slice(&encoded[..end]).is_err(),
            "a {end}-byte prefix of the {}-byte encoding of {value:?} decoded",
            encoded.len()
        );
    }
}

/// Declares one proptest per record type. The names written here are checked against the
/// sources by `every_record_type_has_a_round_trip_test`.
macro_rules! record_round_trips {
    ($( $test:ident : $record:ident => $strategy:expr ),* $(,)?) => {
        proptest! {
            $(
                #[test]
                fn $test(value in $strategy) {
                    let value: $record = value;
                    assert_round_trip(&value);
                }
            )*
        }
    };
}

record_round_trips! {
    id_round_trips: Id => id(),
    acl_round_trips: Acl => acl(),
    stat_round_trips: Stat => stat(),
    client_info_round_trips: ClientInfo => client_info(),
    request_header_round_trips: RequestHeader => request_header(),
    reply_header_round_trips: ReplyHeader => reply_header(),
    multi_header_round_trips: MultiHeader => multi_header(),
    auth_packet_round_trips: AuthPacket => auth_packet(),
    get_data_request_round_trips: GetDataRequest => get_data_request(),
    get_data_response_round_trips: GetDataResponse => get_data_response(),
    set_data_request_round_trips: SetDataRequest => set_data_request(),
    set_data_response_round_trips: SetDataResponse => set_data_response(),
    reconfig_request_round_trips: ReconfigRequest => reconfig_request(),
    get_sasl_request_round_trips: GetSaslRequest => get_sasl_request(),
    set_sasl_response_round_trips: SetSaslResponse => set_sasl_response(),
    create_request_round_trips: CreateRequest => create_request(),
    create_ttl_request_round_trips: CreateTtlRequest => create_ttl_request(),
    create_response_round_trips: CreateResponse => create_response(),
    create2_response_round_trips: Create2Response => create2_response(),
    delete_request_round_trips: DeleteRequest => delete_request(),
    get_children_request_round_trips: GetChildrenRequest => get_children_request(),
    get_children_response_round_trips: GetChildrenResponse => get_children_response(),
    get_children2_response_round_trips: GetChildren2Response => get_children2_response(),
    get_all_children_number_request_round_trips:
        GetAllChildrenNumberRequest => get_all_children_number_request(),
    get_all_children_number_response_round_trips:
        GetAllChildrenNumberResponse => get_all_children_number_response(),
    check_version_request_round_trips: CheckVersionRequest => check_version_request(),
    sync_request_round_trips: SyncRequest => sync_request(),
    sync_response_round_trips: SyncResponse => sync_response(),
    get_acl_request_round_trips: GetAclRequest => get_acl_request(),
    get_acl_response_round_trips: GetAclResponse => get_acl_response(),
    set_acl_request_round_trips: SetAclRequest => set_acl_request(),
    set_acl_response_round_trips: SetAclResponse => set_acl_response(),
    exists_request_round_trips: ExistsRequest => exists_request(),
    exists_response_round_trips: ExistsResponse => exists_response(),
    add_watch_request_round_trips: AddWatchRequest => add_watch_request(),
    check_watches_request_round_trips: CheckWatchesRequest => check_watches_request(),
    remove_watches_request_round_trips: RemoveWatchesRequest => remove_watches_request(),
    get_ephemerals_request_round_trips: GetEphemeralsRequest => get_ephemerals_request(),
    get_ephemerals_response_round_trips: GetEphemeralsResponse => get_ephemerals_response(),
    who_am_i_response_round_trips: WhoAmIResponse => who_am_i_response(),
    set_watches_round_trips: SetWatches => set_watches(),
    set_watches2_round_trips: SetWatches2 => set_watches2(),
    watcher_event_round_trips: WatcherEvent => watcher_event(),
    error_response_round_trips: ErrorResponse => error_response(),
    multi_request_round_trips: MultiRequest => multi_request(),
    multi_response_round_trips: MultiResponse => multi_response(),
}

/// The handshake is the one record with an optional trailing field, so its prefixes are
/// checked by hand: shorter than 44 bytes fails, and the 44-byte prefix of a 45-byte
/// handshake is the same handshake from an old client.
fn assert_connect_round_trip<T: Jute + PartialEq + Debug>(
    value: &T,
    read_only: Option<bool>,
    without_read_only: T,
    body_bytes: usize,
) {
    let encoded = value.to_bytes();
    let mut reader = Reader::new(&encoded);
    assert_eq!(&T::decode(&mut reader).expect("decodes"), value);
    assert_eq!(reader.remaining(), 0);
    let shared = Bytes::from(encoded.clone());
    assert_eq!(
        &T::decode(&mut Reader::from_bytes(&shared)).expect("decodes"),
        value
    );
    let expected_len = body_bytes + usize::from(read_only.is_some());
    assert_eq!(encoded.len(), expected_len);
    for end in 0..body_bytes {
        assert!(
            T::from_slice(&encoded[..end]).is_err(),
            "{end}-byte prefix decoded"
        );
    }
    assert_eq!(
        T::from_slice(&encoded[..body_bytes]).expect("old-client form decodes"),
        without_read_only
    );
}

proptest! {
    #[test]
    fn connect_request_round_trips_with_and_without_read_only(value in connect_request()) {
        let fixed_bytes = 4 + 8 + 4 + 8 + 4;
        assert_connect_round_trip(
            &value,
            value.read_only,
            ConnectRequest { read_only: None, ..value.clone() },
            fixed_bytes + value.password.len(),
        );
    }

    #[test]
    fn connect_response_round_trips_with_and_without_read_only(value in connect_response()) {
        let fixed_bytes = 4 + 4 + 8 + 4;
        assert_connect_round_trip(
            &value,
            value.read_only,
            ConnectResponse { read_only: None, ..value.clone() },
            fixed_bytes + value.password.len(),
        );
    }

    #[test]
    fn every_request_round_trips_with_its_header(request in request(), xid in any::<i32>()) {
        let mut payload = Vec::new();
        request.encode_with_header(xid, &mut payload);
        let (header, decoded) = decode_request(&payload).expect("decodes");
        prop_assert_eq!(header, RequestHeader { xid, op_code: request.op_code().code() });
        prop_assert_eq!(&decoded, &request);

        let mut body = Vec::new();
        request.encode_body(&mut body);
        prop_assert_eq!(&payload[8..], &body[..]);
        let mut reader = Reader::new(&body);
        prop_assert_eq!(&Request::decode(request.op_code().code(), &mut reader).expect("decodes"), &request);
        prop_assert_eq!(reader.remaining(), 0);
        let shared = Bytes::from(body.clone());
        let zero_copy = Request::decode(request.op_code().code(), &mut Reader::from_bytes(&shared));
        prop_assert_eq!(zero_copy.as_ref(), Ok(&request));
        for end in 0..body.len() {
            prop_assert!(
                Request::decode(request.op_code().code(), &mut Reader::new(&body[..end])).is_err(),
                "a {}-byte prefix of {:?} decoded", end, request
            );
        }
    }

    #[test]
    fn every_response_round_trips_decoded_with_its_opcode((op, response) in response_with_op()) {
        let mut body = Vec::new();
        response.encode(&mut body);
        let mut reader = Reader::new(&body);
        prop_assert_eq!(&Response::decode(op, &mut reader).expect("decodes"), &response);
        prop_assert_eq!(reader.remaining(), 0);
        for end in 0..body.len() {
            prop_assert!(
                Response::decode(op, &mut Reader::new(&body[..end])).is_err(),
                "a {}-byte prefix of {:?} decoded", end, response
            );
        }
    }

    #[test]
    fn framed_replies_round_trip((op, response) in response_with_op(), header in reply_header()) {
        let mut wire = Vec::new();
        write_reply(&mut wire, &header, |out| response.encode(out));
        let (payload, consumed) = split_frame(&wire, u32::MAX).expect("in limit").expect("whole");
        prop_assert_eq!(consumed, wire.len());
        let mut reader = Reader::new(payload);
        prop_assert_eq!(&ReplyHeader::decode(&mut reader).expect("decodes"), &header);
        if header.err == 0 {
            prop_assert_eq!(Response::decode(op, &mut reader).expect("decodes"), response);
        }
        prop_assert_eq!(reader.remaining(), 0, "an error reply carries no body");
    }

    #[test]
    fn framed_requests_split_back_out_of_a_stream(requests in vec((request(), any::<i32>()), 0..6)) {
        let mut wire = Vec::new();
        for (request, xid) in &requests {
            write_frame(&mut wire, |out| request.encode_with_header(*xid, out));
        }
        let mut rest = &wire[..];
        for (request, xid) in &requests {
            let (payload, consumed) = split_frame(rest, FRAME_SIZE_BYTES_MAX_DEFAULT)
                .expect("in limit")
                .expect("whole frame");
            let (header, decoded) = decode_request(payload).expect("decodes");
            prop_assert_eq!(header.xid, *xid);
            prop_assert_eq!(&decoded, request);
            rest = &rest[consumed..];
        }
        prop_assert_eq!(split_frame(rest, FRAME_SIZE_BYTES_MAX_DEFAULT), Ok(None));
    }

    #[test]
    fn notifications_round_trip(event in watcher_event(), zxid in any::<i64>()) {
        let mut wire = Vec::new();
        write_notification(&mut wire, zxid, &event);
        let (payload, _) = split_frame(&wire, u32::MAX).expect("in limit").expect("whole");
        let mut reader = Reader::new(payload);
        prop_assert_eq!(
            ReplyHeader::decode(&mut reader).expect("decodes"),
            ReplyHeader { xid: XID_NOTIFICATION, zxid, err: 0 }
        );
        prop_assert_eq!(WatcherEvent::decode(&mut reader).expect("decodes"), event);
        prop_assert_eq!(reader.remaining(), 0);
    }

    #[test]
    fn split_frame_honours_the_limit_exactly(length in 0u32..300, limit in 0u32..300) {
        let mut wire = length.to_be_bytes().to_vec();
        wire.resize(4 + length as usize, 0xab);
        let split = split_frame(&wire, limit);
        if length <= limit {
            prop_assert_eq!(split, Ok(Some((&wire[4..], wire.len()))));
            prop_assert_eq!(split_frame(&wire[..wire.len() - 1], limit), Ok(None));
        } else {
            let too_large = matches!(split, Err(DecodeError::FrameTooLarge { .. }));
            prop_assert!(too_large);
        }
    }
}

/// Opcodes that never head a client request: server-to-client, server-internal, or the
/// multi error marker.
const NOT_CLIENT_REQUESTS: [OpCode; 4] = [
    OpCode::Notification,
    OpCode::DeleteContainer,
    OpCode::CreateSession,
    OpCode::Error,
];

fn client_request_opcodes() -> BTreeSet<OpCode> {
    OpCode::ALL
        .iter()
        .copied()
        .filter(|op| !NOT_CLIENT_REQUESTS.contains(op))
        .collect()
}

#[test]
fn request_strategy_covers_every_client_opcode() {
    let seen: BTreeSet<OpCode> = sample(request(), 2_000)
        .iter()
        .map(Request::op_code)
        .collect();
    assert_eq!(seen, client_request_opcodes());
}

#[test]
fn opcodes_a_client_may_not_send_are_refused() {
    for op in NOT_CLIENT_REQUESTS {
        assert_eq!(
            Request::decode(op.code(), &mut Reader::new(&[0; 64])),
            Err(DecodeError::UnexpectedOpCode(op.code()))
        );
    }
    for unknown in [10, 23, 99, 108, -2, -12, i32::MIN, i32::MAX] {
        assert_eq!(
            Request::decode(unknown, &mut Reader::new(&[0; 64])),
            Err(DecodeError::UnknownOpCode(unknown))
        );
    }
}

/// The name of a response variant; no wildcard, so a new variant fails to compile here
/// until the strategy and this test know about it.
fn response_variant(response: &Response) -> &'static str {
    match response {
        Response::Empty => "Empty",
        Response::AddWatch(_) => "AddWatch",
        Response::Create(_) => "Create",
        Response::Create2(_) => "Create2",
        Response::Exists(_) => "Exists",
        Response::GetData(_) => "GetData",
        Response::SetData(_) => "SetData",
        Response::GetAcl(_) => "GetAcl",
        Response::SetAcl(_) => "SetAcl",
        Response::GetChildren(_) => "GetChildren",
        Response::GetChildren2(_) => "GetChildren2",
        Response::Sync(_) => "Sync",
        Response::Multi(_) => "Multi",
        Response::GetEphemerals(_) => "GetEphemerals",
        Response::GetAllChildrenNumber(_) => "GetAllChildrenNumber",
        Response::WhoAmI(_) => "WhoAmI",
        Response::Sasl(_) => "Sasl",
    }
}

#[test]
fn response_strategy_covers_every_variant_and_every_answered_opcode() {
    let samples = sample(response_with_op(), 3_000);
    let variants: BTreeSet<&str> = samples.iter().map(|(_, r)| response_variant(r)).collect();
    assert_eq!(variants.len(), 17, "variants seen: {variants:?}");
    let ops: BTreeSet<OpCode> = samples.iter().map(|(op, _)| *op).collect();
    assert_eq!(ops, client_request_opcodes());
}

/// The kind of a multi result; no wildcard, as above.
fn op_result_kind(result: &OpResult) -> &'static str {
    match result {
        OpResult::Create { stat: None, .. } => "Create",
        OpResult::Create { stat: Some(_), .. } => "Create2",
        OpResult::Delete => "Delete",
        OpResult::SetData { .. } => "SetData",
        OpResult::Check => "Check",
        OpResult::GetChildren { .. } => "GetChildren",
        OpResult::GetData { .. } => "GetData",
        OpResult::Error { .. } => "Error",
    }
}

#[test]
fn multi_strategies_cover_every_op_and_result_kind() {
    let ops: BTreeSet<OpCode> = sample(multi_request(), 500)
        .iter()
        .flat_map(|multi| multi.ops.iter().map(MultiOp::op_code))
        .collect();
    let expected: BTreeSet<OpCode> = [
        OpCode::Create,
        OpCode::Create2,
        OpCode::CreateContainer,
        OpCode::CreateTtl,
        OpCode::Delete,
        OpCode::SetData,
        OpCode::Check,
        OpCode::GetChildren,
        OpCode::GetData,
    ]
    .into_iter()
    .collect();
    assert_eq!(ops, expected);
    let kinds: BTreeSet<&str> = sample(multi_response(), 500)
        .iter()
        .flat_map(|multi| multi.results.iter().map(op_result_kind))
        .collect();
    assert_eq!(kinds.len(), 8, "kinds seen: {kinds:?}");
}

#[test]
fn connect_strategies_cover_both_handshake_forms() {
    let forms: BTreeSet<Option<bool>> = sample(connect_request(), 200)
        .iter()
        .map(|c| c.read_only)
        .collect();
    assert_eq!(forms.len(), 3);
    let forms: BTreeSet<Option<bool>> = sample(connect_response(), 200)
        .iter()
        .map(|c| c.read_only)
        .collect();
    assert_eq!(forms.len(), 3);
}

/// Every `pub struct Name {` in the record modules must appear in `record_round_trips!` above
/// (or, for the handshake, in its own tests), so a record added later cannot go untested.
#[test]
fn every_record_type_has_a_round_trip_test() {
    let sources = [
        include_str!("../src/records.rs"),
        include_str!("../src/data.rs"),
        include_str!("../src/connect.rs"),
        include_str!("../src/request.rs"),
        include_str!("../src/response.rs"),
    ];
    let this_file = include_str!("roundtrip.rs");
    let mut records = Vec::new();
    for source in sources {
        for line in source.lines() {
            let Some(rest) = line.trim_start().strip_prefix("pub struct ") else {
                continue;
            };
            if let Some(name) = rest.strip_suffix(" {") {
                records.push(name.to_owned());
            }
        }
    }
    assert!(records.len() >= 45, "found only {records:?}");
    for name in &records {
        let tested = this_file.contains(&format!(" {name} =>"))
            || this_file.contains(&format!(
                "fn {}_round_trips_with_and_without_read_only",
                snake(name)
            ));
        assert!(tested, "record {name} has no round-trip test");
    }
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

// Decoding arbitrary bytes: never a panic, whatever the decoder.

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..200)
}

/// Bytes that look like jute more often than uniform noise does: small lengths, opcodes,
/// and real encodings with bytes flipped or cut.
fn jute_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let word = prop_oneof![
        (-2i32..40).prop_map(|v| v.to_be_bytes().to_vec()),
        proptest::sample::select(OpCode::ALL).prop_map(|op| op.code().to_be_bytes().to_vec()),
        vec(any::<u8>(), 1..6),
    ];
    let stitched = vec(word, 0..24).prop_map(|words| words.concat());
    let mutated = (
        request(),
        vec((any::<usize>(), any::<u8>()), 1..4),
        any::<usize>(),
    )
        .prop_map(|(request, flips, cut)| {
            let mut bytes = Vec::new();
            request.encode_with_header(1, &mut bytes);
            for (at, byte) in flips {
                let len = bytes.len();
                bytes[at % len] = byte;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            bytes
        });
    prop_oneof![stitched, mutated]
}

fn decode_everything(bytes: &[u8], op_code: i32) {
    macro_rules! records {
        ($($record:ident),* $(,)?) => {
            $( let _ = $record::from_slice(bytes); )*
        };
    }
    records!(
        Id,
        Acl,
        Stat,
        ClientInfo,
        RequestHeader,
        ReplyHeader,
        MultiHeader,
        AuthPacket,
        GetDataRequest,
        GetDataResponse,
        SetDataRequest,
        SetDataResponse,
        ReconfigRequest,
        GetSaslRequest,
        SetSaslResponse,
        CreateRequest,
        CreateTtlRequest,
        CreateResponse,
        Create2Response,
        DeleteRequest,
        GetChildrenRequest,
        GetChildrenResponse,
        GetChildren2Response,
        GetAllChildrenNumberRequest,
        GetAllChildrenNumberResponse,
        CheckVersionRequest,
        SyncRequest,
        SyncResponse,
        GetAclRequest,
        GetAclResponse,
        SetAclRequest,
        SetAclResponse,
        ExistsRequest,
        ExistsResponse,
        AddWatchRequest,
        CheckWatchesRequest,
        RemoveWatchesRequest,
        GetEphemeralsRequest,
        GetEphemeralsResponse,
        WhoAmIResponse,
        SetWatches,
        SetWatches2,
        WatcherEvent,
        ErrorResponse,
        ConnectRequest,
        ConnectResponse,
        MultiRequest,
        MultiResponse,
    );
    let _ = decode_request(bytes);
    let _ = Request::decode(op_code, &mut Reader::new(bytes));
    for &op in OpCode::ALL {
        let _ = Request::decode(op.code(), &mut Reader::new(bytes));
        let _ = Response::decode(op, &mut Reader::new(bytes));
    }
    let shared = Bytes::copy_from_slice(bytes);
    let _ = MultiRequest::decode(&mut Reader::from_bytes(&shared));
    let _ = MultiResponse::decode(&mut Reader::from_bytes(&shared));
    let _ = split_frame(bytes, FRAME_SIZE_BYTES_MAX_DEFAULT);
    let _ = split_frame(bytes, 16);
    if let Some(first) = bytes.first_chunk::<4>() {
        let _ = four_letter_word(*first);
    }
    for kind in 0..4 {
        let mut reader = Reader::new(bytes);
        let _ = match kind {
            0 => EventType::decode(&mut reader).map(|_| ()),
            1 => KeeperState::decode(&mut reader).map(|_| ()),
            2 => WatcherType::decode(&mut reader).map(|_| ()),
            _ => AddWatchMode::decode(&mut reader).map(|_| ()),
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn no_decoder_panics_on_arbitrary_bytes(bytes in arbitrary_bytes(), op_code in any::<i32>()) {
        decode_everything(&bytes, op_code);
    }

    #[test]
    fn no_decoder_panics_on_jute_like_bytes(bytes in jute_ish_bytes(), op_code in any::<i32>()) {
        decode_everything(&bytes, op_code);
    }
}
