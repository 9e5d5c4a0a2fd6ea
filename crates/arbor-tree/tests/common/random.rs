//! Random command sequences over a small name space, so that they collide often: creates of
//! every kind, deletes, writes, ACL changes, multis, sessions opening and closing, and the
//! leader's cleanup commands.

use arbor_proto::{
    Acl, CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, Id, MultiOp,
    SessionId, SetAclRequest, SetDataRequest, Zxid, perms,
};
use arbor_tree::{Applied, Command, DataTree, Txn, WriteRequest, digest};
use proptest::prelude::*;

pub const SESSIONS: [SessionId; 3] = [
    SessionId(0x0100_0000_0000_0001),
    SessionId(0x0100_0000_0000_0002),
    SessionId(0x0200_0000_0000_0001),
];

/// Proptest settings for this crate: a fixed seed (replayable; `PROPTEST_RNG_SEED=<n>`
/// picks another) and no regression files written into the source tree.
pub fn proptest_config(cases: u32) -> ProptestConfig {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x0a2b_0b7e);
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One step of a run.
#[derive(Clone, Debug)]
pub enum Step {
    /// A command as generated.
    Command(Command),
    /// What a leader would propose now: expire TTL nodes or empty containers of the tree.
    LeaderCleanup,
}

fn path() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        6 => prop::sample::select(vec!["a", "b", "s-"]),
        1 => prop::sample::select(vec!["c", "zookeeper", "", "."]),
    ];
    let depth = prop_oneof![3 => 1..3usize, 1 => 3..5usize];
    (depth, prop::collection::vec(name, 4))
        .prop_map(|(depth, names)| format!("/{}", names[..depth].join("/")))
}

fn identities() -> impl Strategy<Value = Vec<Id>> {
    prop::sample::select(vec![
        vec![Id::new("ip", "127.0.0.1")],
        vec![
            Id::new("ip", "10.1.2.3"),
            Id::new("digest", digest("bob:pw")),
        ],
        vec![Id::new("super", "")],
    ])
}

fn acl() -> impl Strategy<Value = Vec<Acl>> {
    let entry = |perms, scheme: &str, id: &str| Acl {
        perms,
        id: Id::new(scheme, id),
    };
    prop::sample::select(vec![
        Acl::open_unsafe(),
        Acl::open_unsafe(),
        Acl::read_unsafe(),
        vec![entry(perms::ALL, "digest", &digest("bob:pw"))],
        vec![entry(perms::READ | perms::CREATE, "ip", "10.0.0.0/8")],
        vec![entry(perms::ALL, "auth", "")],
        Acl::open_unsafe(),
        Acl::open_unsafe(),
        Acl::open_unsafe(),
        vec![],
    ])
}

/// Data as clients send it: bytes, or (sometimes) null.
fn data() -> impl Strategy<Value = Option<bytes::Bytes>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..8).prop_map(|d| Some(bytes::Bytes::from(d))),
        1 => Just(None),
    ]
}

fn create_request() -> impl Strategy<Value = CreateRequest> {
    let flags = prop_oneof![8 => 0..4i32, 1 => 4..8i32];
    (path(), data(), acl(), flags).prop_map(|(path, data, acl, flags)| CreateRequest {
        path,
        data,
        acl,
        flags,
    })
}

fn version() -> impl Strategy<Value = i32> {
    prop_oneof![Just(-1), 0..3i32]
}

fn sub_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        create_request().prop_map(MultiOp::Create),
        create_request().prop_map(MultiOp::Create2),
        (path(), version())
            .prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
        (path(), data(), version()).prop_map(|(path, data, version)| MultiOp::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        (path(), version())
            .prop_map(|(path, version)| MultiOp::Check(CheckVersionRequest { path, version })),
    ]
}

fn write_request() -> impl Strategy<Value = WriteRequest> {
    prop_oneof![
        3 => create_request().prop_map(WriteRequest::Create),
        3 => create_request().prop_map(WriteRequest::Create2),
        2 => (create_request(), prop_oneof![4 => Just(4), 1 => 0..8i32])
            .prop_map(|(r, flags)| WriteRequest::CreateContainer(CreateRequest { flags, ..r })),
        2 => (
            create_request(),
            prop_oneof![4 => 5..7i32, 1 => 0..8i32],
            prop::sample::select(vec![-1i64, 0, 50, 50, 1_000]),
        )
            .prop_map(|(r, flags, ttl)| {
                WriteRequest::CreateTtl(CreateTtlRequest {
                    path: r.path,
                    data: r.data,
                    acl: r.acl,
                    flags,
                    ttl,
                })
            }),
        3 => (path(), version()).prop_map(|(path, version)| WriteRequest::Delete(DeleteRequest { path, version })),
        2 => (path(), data(), version())
            .prop_map(|(path, data, version)| WriteRequest::SetData(SetDataRequest { path, data, version })),
        1 => (path(), acl(), version())
            .prop_map(|(path, acl, version)| WriteRequest::SetAcl(SetAclRequest { path, acl, version })),
        1 => (path(), version())
            .prop_map(|(path, version)| WriteRequest::Check(CheckVersionRequest { path, version })),
        2 => prop::collection::vec(sub_op(), 0..5).prop_map(WriteRequest::Multi),
    ]
}

fn session() -> impl Strategy<Value = SessionId> {
    prop::sample::select(SESSIONS.to_vec())
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        1 => session().prop_map(|session_id| Command::CreateSession {
            session_id,
            timeout_ms: 30_000,
            password: vec![session_id.0 as u8; 16],
        }),
        1 => session().prop_map(|session_id| Command::CloseSession { session_id }),
        60 => (session(), identities(), write_request()).prop_map(|(session_id, identities, request)| {
            Command::Request { session_id, identities, request }
        }),
        1 => path().prop_map(|path| Command::DeleteExpiredTtl { path }),
        1 => path().prop_map(|path| Command::DeleteEmptyContainer { path }),
        1 => Just(Command::Noop),
    ]
}

/// A step and the time that passes before it.
pub fn step() -> impl Strategy<Value = (Step, i64)> {
    let step = prop_oneof![
        8 => command().prop_map(Step::Command),
        1 => Just(Step::LeaderCleanup),
    ];
    (step, 0..400i64)
}

/// Commands every run starts with: the sessions open.
pub fn prelude() -> Vec<Command> {
    SESSIONS
        .iter()
        .map(|&session_id| Command::CreateSession {
            session_id,
            timeout_ms: 30_000,
            password: vec![session_id.0 as u8; 16],
        })
        .collect()
}

/// Turns a step into the txn the leader would log, given the leader's tree.
pub fn txn_for(step: &Step, leader: &DataTree, time_ms: i64) -> Txn {
    let command = match step {
        Step::Command(command) => command.clone(),
        Step::LeaderCleanup => match leader.expired_ttl_nodes(time_ms, 1).pop() {
            Some(path) => Command::DeleteExpiredTtl { path },
            None => match leader.empty_containers(1).pop() {
                Some(path) => Command::DeleteEmptyContainer { path },
                None => Command::Noop,
            },
        },
    };
    Txn { time_ms, command }
}

/// Applies `steps` to a fresh tree, returning it and every outcome.
pub fn build(steps: &[(Step, i64)], config: arbor_tree::TreeConfig) -> (DataTree, Vec<Applied>) {
    let mut tree = DataTree::new(config);
    let mut time_ms = 1_000_000;
    let mut outcomes = Vec::with_capacity(steps.len());
    let prelude = prelude()
        .into_iter()
        .map(|command| (Step::Command(command), 0));
    let steps: Vec<(Step, i64)> = prelude.chain(steps.iter().cloned()).collect();
    for (index, (step, elapsed)) in steps.iter().enumerate() {
        time_ms += elapsed;
        let txn = txn_for(step, &tree, time_ms);
        outcomes.push(tree.apply(Zxid::from_parts(1, index as u32 + 1), &txn));
    }
    (tree, outcomes)
}
