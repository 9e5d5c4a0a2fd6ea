//! proptest strategies for every arbor-proto record, shared by the round-trip tests and the
//! seed-corpus writer of the fuzz target. Each strategy covers the whole domain of the wire
//! types (any `i32`, any `i64`, any Unicode string, empty and non-empty buffers and vectors),
//! not just the values a well-behaved client sends, because the codec must not care.
#![allow(dead_code)] // Each test crate uses a different subset.

use arbor_proto::*;
use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// A `ustring`: mostly path-like ASCII, sometimes arbitrary Unicode (multi-byte UTF-8).
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9/._-]{0,12}",
        1 => vec(any::<char>(), 0..6).prop_map(String::from_iter),
    ]
}

/// A data buffer as clients send it: bytes, or null.
pub fn nullable_buffer() -> impl Strategy<Value = Option<Bytes>> {
    prop_oneof![4 => buffer().prop_map(Some), 1 => Just(None)]
}

/// A `buffer`.
pub fn buffer() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

/// A `vector<ustring>`.
pub fn texts() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..4)
}

/// Builds a strategy for a record from one strategy per field, in declaration order.
macro_rules! record_strategies {
    ($( $name:ident -> $record:ident { $( $field:ident : $strategy:expr ),+ $(,)? } )*) => {
        $(
            #[doc = concat!("Any `", stringify!($record), "`.")]
            pub fn $name() -> impl Strategy<Value = $record> {
                ( $( $strategy, )+ ).prop_map(|( $( $field, )+ )| $record { $( $field ),+ })
            }
        )*
    };
}

record_strategies! {
    id -> Id { scheme: text(), id: text() }
    acl -> Acl { perms: any::<i32>(), id: id() }
    stat -> Stat {
        czxid: any::<i64>(),
        mzxid: any::<i64>(),
        ctime: any::<i64>(),
        mtime: any::<i64>(),
        version: any::<i32>(),
        cversion: any::<i32>(),
        aversion: any::<i32>(),
        ephemeral_owner: any::<i64>(),
        data_length: any::<i32>(),
        num_children: any::<i32>(),
        pzxid: any::<i64>(),
    }
    client_info -> ClientInfo { auth_scheme: text(), user: text() }
    request_header -> RequestHeader { xid: any::<i32>(), op_code: any::<i32>() }
    reply_header -> ReplyHeader { xid: any::<i32>(), zxid: any::<i64>(), err: any::<i32>() }
    multi_header -> MultiHeader { op_code: any::<i32>(), done: any::<bool>(), err: any::<i32>() }
    auth_packet -> AuthPacket { auth_type: any::<i32>(), scheme: text(), auth: buffer() }
    get_data_request -> GetDataRequest { path: text(), watch: any::<bool>() }
    get_data_response -> GetDataResponse { data: nullable_buffer(), stat: stat() }
    set_data_request -> SetDataRequest { path: text(), data: nullable_buffer(), version: any::<i32>() }
    set_data_response -> SetDataResponse { stat: stat() }
    reconfig_request -> ReconfigRequest {
        joining_servers: text(),
        leaving_servers: text(),
        new_members: text(),
        cur_config_id: any::<i64>(),
    }
    get_sasl_request -> GetSaslRequest { token: buffer() }
    set_sasl_response -> SetSaslResponse { token: buffer() }
    create_request -> CreateRequest {
        path: text(),
        data: nullable_buffer(),
        acl: vec(acl(), 0..3),
        flags: any::<i32>(),
    }
    create_ttl_request -> CreateTtlRequest {
        path: text(),
        data: nullable_buffer(),
        acl: vec(acl(), 0..3),
        flags: any::<i32>(),
        ttl: any::<i64>(),
    }
    create_response -> CreateResponse { path: text() }
    create2_response -> Create2Response { path: text(), stat: stat() }
    delete_request -> DeleteRequest { path: text(), version: any::<i32>() }
    get_children_request -> GetChildrenRequest { path: text(), watch: any::<bool>() }
    get_children_response -> GetChildrenResponse { children: texts() }
    get_children2_response -> GetChildren2Response { children: texts(), stat: stat() }
    get_all_children_number_request -> GetAllChildrenNumberRequest { path: text() }
    get_all_children_number_response -> GetAllChildrenNumberResponse {
        total_number: any::<i32>(),
    }
    check_version_request -> CheckVersionRequest { path: text(), version: any::<i32>() }
    sync_request -> SyncRequest { path: text() }
    sync_response -> SyncResponse { path: text() }
    get_acl_request -> GetAclRequest { path: text() }
    get_acl_response -> GetAclResponse { acl: vec(acl(), 0..3), stat: stat() }
    set_acl_request -> SetAclRequest { path: text(), acl: vec(acl(), 0..3), version: any::<i32>() }
    set_acl_response -> SetAclResponse { stat: stat() }
    exists_request -> ExistsRequest { path: text(), watch: any::<bool>() }
    exists_response -> ExistsResponse { stat: stat() }
    add_watch_request -> AddWatchRequest { path: text(), mode: any::<i32>() }
    check_watches_request -> CheckWatchesRequest { path: text(), watcher_type: any::<i32>() }
    remove_watches_request -> RemoveWatchesRequest { path: text(), watcher_type: any::<i32>() }
    get_ephemerals_request -> GetEphemeralsRequest { prefix_path: text() }
    get_ephemerals_response -> GetEphemeralsResponse { ephemerals: texts() }
    who_am_i_response -> WhoAmIResponse { client_info: vec(client_info(), 0..3) }
    set_watches -> SetWatches {
        relative_zxid: any::<i64>(),
        data_watches: texts(),
        exist_watches: texts(),
        child_watches: texts(),
    }
    set_watches2 -> SetWatches2 {
        relative_zxid: any::<i64>(),
        data_watches: texts(),
        exist_watches: texts(),
        child_watches: texts(),
        persistent_watches: texts(),
        persistent_recursive_watches: texts(),
    }
    watcher_event -> WatcherEvent { event_type: any::<i32>(), state: any::<i32>(), path: text() }
    error_response -> ErrorResponse { err: any::<i32>() }
    connect_request -> ConnectRequest {
        protocol_version: any::<i32>(),
        last_zxid_seen: any::<i64>(),
        timeout_ms: any::<i32>(),
        session_id: any::<i64>(),
        password: buffer(),
        read_only: any::<Option<bool>>(),
    }
    connect_response -> ConnectResponse {
        protocol_version: any::<i32>(),
        timeout_ms: any::<i32>(),
        session_id: any::<i64>(),
        password: buffer(),
        read_only: any::<Option<bool>>(),
    }
}

/// Any operation of a `multi` or `multiRead`, every kind (the codec does not restrict which
/// kinds go in which: that is the tree's job).
pub fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        create_request().prop_map(MultiOp::Create),
        create_request().prop_map(MultiOp::Create2),
        create_request().prop_map(MultiOp::CreateContainer),
        create_ttl_request().prop_map(MultiOp::CreateTtl),
        delete_request().prop_map(MultiOp::Delete),
        set_data_request().prop_map(MultiOp::SetData),
        check_version_request().prop_map(MultiOp::Check),
        get_children_request().prop_map(MultiOp::GetChildren),
        get_data_request().prop_map(MultiOp::GetData),
    ]
}

/// Any `MultiOperationRecord`, including the empty one (just the terminating header).
pub fn multi_request() -> impl Strategy<Value = MultiRequest> {
    vec(multi_op(), 0..5).prop_map(|ops| MultiRequest { ops })
}

/// Any result of a multi operation, every kind.
pub fn op_result() -> impl Strategy<Value = OpResult> {
    prop_oneof![
        (text(), proptest::option::of(stat()))
            .prop_map(|(path, stat)| OpResult::Create { path, stat }),
        Just(OpResult::Delete),
        stat().prop_map(|stat| OpResult::SetData { stat }),
        Just(OpResult::Check),
        texts().prop_map(|children| OpResult::GetChildren { children }),
        (nullable_buffer(), stat()).prop_map(|(data, stat)| OpResult::GetData { data, stat }),
        any::<i32>().prop_map(|err| OpResult::Error { err }),
    ]
}

/// Any `MultiResponse`, including the empty one.
pub fn multi_response() -> impl Strategy<Value = MultiResponse> {
    vec(op_result(), 0..5).prop_map(|results| MultiResponse { results })
}

/// Any request, every variant of [`Request`].
pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        create_request().prop_map(Request::Create),
        create_request().prop_map(Request::Create2),
        create_request().prop_map(Request::CreateContainer),
        create_ttl_request().prop_map(Request::CreateTtl),
        delete_request().prop_map(Request::Delete),
        exists_request().prop_map(Request::Exists),
        get_data_request().prop_map(Request::GetData),
        set_data_request().prop_map(Request::SetData),
        get_acl_request().prop_map(Request::GetAcl),
        set_acl_request().prop_map(Request::SetAcl),
        get_children_request().prop_map(Request::GetChildren),
        get_children_request().prop_map(Request::GetChildren2),
        sync_request().prop_map(Request::Sync),
        Just(Request::Ping),
        check_version_request().prop_map(Request::Check),
        multi_request().prop_map(Request::Multi),
        multi_request().prop_map(Request::MultiRead),
        reconfig_request().prop_map(Request::Reconfig),
        check_watches_request().prop_map(Request::CheckWatches),
        remove_watches_request().prop_map(Request::RemoveWatches),
        auth_packet().prop_map(Request::Auth),
        set_watches().prop_map(Request::SetWatches),
        set_watches2().prop_map(Request::SetWatches2),
        get_sasl_request().prop_map(Request::Sasl),
        get_ephemerals_request().prop_map(Request::GetEphemerals),
        get_all_children_number_request().prop_map(Request::GetAllChildrenNumber),
        add_watch_request().prop_map(Request::AddWatch),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

/// Any successful reply body together with an opcode of a request it answers (the body does
/// not name itself, so a client decodes it knowing the opcode it sent).
pub fn response_with_op() -> impl Strategy<Value = (OpCode, Response)> {
    fn one_of(ops: &'static [OpCode]) -> impl Strategy<Value = OpCode> + Clone {
        proptest::sample::select(ops)
    }
    prop_oneof![
        one_of(&[
            OpCode::Delete,
            OpCode::Check,
            OpCode::Ping,
            OpCode::Auth,
            OpCode::SetWatches,
            OpCode::SetWatches2,
            OpCode::RemoveWatches,
            OpCode::CheckWatches,
            OpCode::CloseSession,
        ])
        .prop_map(|op| (op, Response::Empty)),
        error_response().prop_map(|r| (OpCode::AddWatch, Response::AddWatch(r))),
        create_response().prop_map(|r| (OpCode::Create, Response::Create(r))),
        (
            one_of(&[OpCode::Create2, OpCode::CreateTtl, OpCode::CreateContainer]),
            create2_response()
        )
            .prop_map(|(op, r)| (op, Response::Create2(r))),
        exists_response().prop_map(|r| (OpCode::Exists, Response::Exists(r))),
        (
            one_of(&[OpCode::GetData, OpCode::Reconfig]),
            get_data_response()
        )
            .prop_map(|(op, r)| (op, Response::GetData(r))),
        set_data_response().prop_map(|r| (OpCode::SetData, Response::SetData(r))),
        get_acl_response().prop_map(|r| (OpCode::GetAcl, Response::GetAcl(r))),
        set_acl_response().prop_map(|r| (OpCode::SetAcl, Response::SetAcl(r))),
        get_children_response().prop_map(|r| (OpCode::GetChildren, Response::GetChildren(r))),
        get_children2_response().prop_map(|r| (OpCode::GetChildren2, Response::GetChildren2(r))),
        sync_response().prop_map(|r| (OpCode::Sync, Response::Sync(r))),
        (
            one_of(&[OpCode::Multi, OpCode::MultiRead]),
            multi_response()
        )
            .prop_map(|(op, r)| (op, Response::Multi(r))),
        get_ephemerals_response().prop_map(|r| (OpCode::GetEphemerals, Response::GetEphemerals(r))),
        get_all_children_number_response().prop_map(|r| (
            OpCode::GetAllChildrenNumber,
            Response::GetAllChildrenNumber(r)
        )),
        who_am_i_response().prop_map(|r| (OpCode::WhoAmI, Response::WhoAmI(r))),
        set_sasl_response().prop_map(|r| (OpCode::Sasl, Response::Sasl(r))),
    ]
}

/// `count` values drawn from `strategy` with proptest's fixed-seed runner, for tests that
/// check what a strategy covers and for the seed-corpus writer.
pub fn sample<S: Strategy>(strategy: S, count: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..count)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("strategies here never reject")
                .current()
        })
        .collect()
}
