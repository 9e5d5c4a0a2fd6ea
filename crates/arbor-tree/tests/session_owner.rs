//! Session ownership (ZooKeeper's SessionMoved): a session is owned by the server that created
//! it and then by each server it moves to, in log order; a write another server sends for it is
//! refused with SessionMoved and changes nothing. Old snapshots (format 1, no owners) still
//! load.

mod common;

use arbor_proto::{ErrorCode, Id, MultiOp, Response};
use arbor_tree::{Command, DataTree, ServerId, TreeConfig, WriteRequest};
use common::{Harness, OTHER_SESSION, SESSION, create_request};

const A: ServerId = ServerId(1);
const B: ServerId = ServerId(2);

fn create(path: &str) -> Command {
    Command::Request {
        session_id: OTHER_SESSION,
        identities: vec![Id::new("ip", "127.0.0.1")],
        request: WriteRequest::Create(create_request(path, b"", 0)),
    }
}

fn open_on(harness: &mut Harness, server: ServerId) {
    let applied = harness.run_from(
        server,
        Command::CreateSession {
            session_id: OTHER_SESSION,
            timeout_ms: 10_000,
            password: vec![7; 16],
        },
    );
    assert_eq!(applied.result, Ok(Response::Empty));
}

fn move_to(harness: &mut Harness, server: ServerId) -> Result<Response, ErrorCode> {
    let session_id = OTHER_SESSION;
    harness
        .run_from(server, Command::MoveSession { session_id })
        .result
}

fn owner(tree: &DataTree) -> Option<ServerId> {
    tree.session(OTHER_SESSION)
        .and_then(|session| session.owner())
}

#[test]
fn the_creating_server_owns_a_session_and_others_writes_are_refused() {
    let mut harness = Harness::new();
    open_on(&mut harness, A);
    assert_eq!(owner(&harness.tree), Some(A));
    assert!(harness.run_from(A, create("/from-a")).result.is_ok());
    let zxid_before = harness.tree.last_applied_zxid();
    let refused = harness.run_from(B, create("/from-b"));
    assert_eq!(refused.result, Err(ErrorCode::SessionMoved));
    assert!(refused.triggers.is_empty(), "a refused write fires nothing");
    assert!(harness.tree.exists("/from-b").is_err());
    assert!(harness.tree.last_applied_zxid() > zxid_before);
    harness.tree.assert_invariants();
}

#[test]
fn a_moved_session_refuses_its_old_servers_writes_and_takes_the_new_ones() {
    let mut harness = Harness::new();
    open_on(&mut harness, A);
    assert_eq!(move_to(&mut harness, B), Ok(Response::Empty));
    assert_eq!(owner(&harness.tree), Some(B));
    // A write that the old server sent after the move, in log order, is refused...
    assert_eq!(
        harness.run_from(A, create("/late")).result,
        Err(ErrorCode::SessionMoved)
    );
    assert!(harness.tree.exists("/late").is_err());
    // ...and so is a multi, whole, before any of its ops is looked at.
    let multi = Command::Request {
        session_id: OTHER_SESSION,
        identities: vec![],
        request: WriteRequest::Multi(vec![MultiOp::Create(create_request("/m", b"", 0))]),
    };
    assert_eq!(
        harness.run_from(A, multi).result,
        Err(ErrorCode::SessionMoved)
    );
    assert!(harness.tree.exists("/m").is_err());
    // The new owner writes.
    assert!(harness.run_from(B, create("/from-b")).result.is_ok());
    // Back to the first server: its writes apply again, the other's no longer.
    assert_eq!(move_to(&mut harness, A), Ok(Response::Empty));
    assert!(harness.run_from(A, create("/back")).result.is_ok());
    assert_eq!(
        harness.run_from(B, create("/stale")).result,
        Err(ErrorCode::SessionMoved)
    );
    harness.tree.assert_invariants();
}

#[test]
fn any_server_may_close_a_session_it_does_not_own() {
    // The leader expires sessions owned by other servers; ZooKeeper does not check the owner
    // of a closeSession either.
    let mut harness = Harness::new();
    open_on(&mut harness, A);
    let session_id = OTHER_SESSION;
    let closed = harness.run_from(B, Command::CloseSession { session_id });
    assert_eq!(closed.result, Ok(Response::Empty));
    assert!(harness.tree.session(OTHER_SESSION).is_none());
}

#[test]
fn moving_a_session_that_is_gone_is_session_expired() {
    let mut harness = Harness::new();
    assert_eq!(move_to(&mut harness, B), Err(ErrorCode::SessionExpired));
    assert!(harness.tree.session(OTHER_SESSION).is_none());
}

#[test]
fn without_a_recorded_owner_or_origin_every_write_is_taken() {
    // The harness opens SESSION with `apply`, without an origin: no owner is recorded (as for
    // a session from before owners were logged), so any server's writes apply.
    let mut harness = Harness::new();
    assert_eq!(harness.tree.session(SESSION).map(|s| s.owner()), Some(None));
    let write = |path: &str| Command::Request {
        session_id: SESSION,
        identities: vec![],
        request: WriteRequest::Create(create_request(path, b"", 0)),
    };
    assert!(harness.run_from(A, write("/a")).result.is_ok());
    assert!(harness.run_from(B, write("/b")).result.is_ok());
    // An owned session is not checked against an entry with no origin (tools, replays).
    open_on(&mut harness, A);
    assert!(harness.run(create("/no-origin")).result.is_ok());
}

#[test]
fn owners_survive_a_snapshot() {
    let mut harness = Harness::new();
    open_on(&mut harness, A);
    assert_eq!(move_to(&mut harness, B), Ok(Response::Empty));
    let mut bytes = Vec::new();
    harness.tree.write_snapshot(&mut bytes).unwrap();
    let restored = DataTree::read_snapshot(&mut &bytes[..], TreeConfig::default()).unwrap();
    assert_eq!(restored, harness.tree);
    assert_eq!(owner(&restored), Some(B));
    assert_eq!(restored.session(SESSION).map(|s| s.owner()), Some(None));
}

/// `tests/data/snapshot-format-1.bin` was written by the build before session owners (format
/// version 1): SESSION and OTHER_SESSION open (timeout 10 s, password 7 × 16), `/persistent`
/// and SESSION's ephemeral `/ephemeral`, both with data "v1".
#[test]
fn a_format_1_snapshot_still_loads_with_no_owners() {
    let bytes = include_bytes!("data/snapshot-format-1.bin");
    assert_eq!(&bytes[8..12], &1u32.to_le_bytes(), "the file is format 1");
    let tree = DataTree::read_snapshot(&mut &bytes[..], TreeConfig::default()).unwrap();
    tree.assert_invariants();
    for session_id in [SESSION, OTHER_SESSION] {
        let session = tree
            .session(session_id)
            .expect("the session is in the snapshot");
        assert_eq!(
            (session.timeout_ms(), session.password(), session.owner()),
            (10_000, &[7u8; 16][..], None)
        );
    }
    let ephemeral = tree.exists("/ephemeral").unwrap();
    assert_eq!(ephemeral.ephemeral_owner, SESSION.0);
    assert_eq!(tree.session(SESSION).map(|s| s.ephemeral_count()), Some(1));
    assert!(tree.exists("/persistent").is_ok());
    // Written again, it is the current format and reads back equal.
    let mut again = Vec::new();
    tree.write_snapshot(&mut again).unwrap();
    assert_eq!(
        &again[8..12],
        &arbor_tree::SNAPSHOT_FORMAT_VERSION.to_le_bytes()
    );
    let reread = DataTree::read_snapshot(&mut &again[..], TreeConfig::default()).unwrap();
    assert_eq!(reread, tree);
}
