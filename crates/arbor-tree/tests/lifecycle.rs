//! Nodes that end on their own: ephemerals with their session, containers once emptied,
//! TTL nodes once expired — the last two only through leader-proposed commands.

mod common;

use arbor_proto::{ErrorCode, EventType, Response, SessionId};
use arbor_tree::{Command, TreeConfig, WatchTrigger};
use common::{Harness, OTHER_SESSION, SESSION};

/// A trigger on an open node (every node these tests watch is `world:anyone` ALL).
fn trigger(path: &str, event: EventType) -> WatchTrigger {
    WatchTrigger {
        path: path.into(),
        event,
        acl: arbor_proto::Acl::open_unsafe().into(),
    }
}

#[test]
fn sessions_are_replicated_state() {
    let mut h = Harness::new();
    let session = h.tree.session(SESSION).unwrap();
    assert_eq!(
        (session.timeout_ms(), session.password()),
        (10_000, &[7u8; 16][..])
    );
    assert_eq!(h.open(OTHER_SESSION).result, Ok(Response::Empty));
    assert_eq!(
        h.tree.sessions().map(|(id, _)| id).collect::<Vec<_>>(),
        vec![SESSION, OTHER_SESSION]
    );
    // A duplicate id is refused, not merged.
    assert_eq!(h.open(SESSION).result, Err(ErrorCode::RuntimeInconsistency));
    // Ids that would read as a container or TTL marker, or as "no owner", are refused.
    for bad in [0, i64::MIN, 0xff00_0000_0000_0001_u64 as i64] {
        assert_eq!(
            h.open(SessionId(bad)).result,
            Err(ErrorCode::BadArguments),
            "{bad:#x}"
        );
    }
    let mut plain = Harness::with_config(TreeConfig {
        extended_types_enabled: false,
        ..TreeConfig::default()
    });
    assert_eq!(
        plain
            .open(SessionId(0xff00_0000_0000_0001_u64 as i64))
            .result,
        Ok(Response::Empty)
    );
}

#[test]
fn ephemerals_belong_to_their_session_and_go_with_it() {
    let mut h = Harness::new();
    h.open(OTHER_SESSION);
    h.create("/app", b"").unwrap();
    let (path, stat) = h.create_mode("/app/e-", b"", 3).unwrap();
    assert_eq!(path, "/app/e-0000000000");
    assert_eq!(stat.ephemeral_owner, SESSION.0);
    h.create_mode("/e", b"", 1).unwrap();
    assert_eq!(
        h.create_mode("/e/child", b"", 0),
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    assert_eq!(
        h.create_mode("/e/child", b"", 1),
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    let other = h.request_as(
        OTHER_SESSION,
        arbor_tree::WriteRequest::Create(common::create_request("/o", b"", 1)),
    );
    assert!(other.result.is_ok());
    assert_eq!(
        h.tree.get_ephemerals(SESSION, ""),
        vec!["/app/e-0000000000", "/e"]
    );
    assert_eq!(
        h.tree.get_ephemerals(SESSION, " / "),
        vec!["/app/e-0000000000", "/e"]
    );
    assert_eq!(
        h.tree.get_ephemerals(SESSION, "/app"),
        vec!["/app/e-0000000000"]
    );
    assert_eq!(
        h.tree.get_ephemerals(SESSION, "/ap"),
        vec!["/app/e-0000000000"]
    );
    assert_eq!(h.tree.get_ephemerals(OTHER_SESSION, "/"), vec!["/o"]);
    assert_eq!(h.tree.stats().ephemeral_count, 3);
    assert_eq!(h.tree.session(SESSION).unwrap().ephemeral_count(), 2);

    // Deleting an ephemeral by hand takes it off its session.
    h.delete("/e", -1).unwrap();
    assert_eq!(
        h.tree.get_ephemerals(SESSION, "/"),
        vec!["/app/e-0000000000"]
    );
    h.create_mode("/e", b"", 1).unwrap();

    let pzxid_before = h.stat("/app").pzxid;
    let close_zxid = h.next_zxid();
    let closed = h.close(SESSION);
    assert_eq!(closed.result, Ok(Response::Empty));
    assert_eq!(
        closed.triggers,
        vec![
            trigger("/e", EventType::NodeDeleted),
            trigger("/", EventType::NodeChildrenChanged),
            trigger("/app/e-0000000000", EventType::NodeDeleted),
            trigger("/app", EventType::NodeChildrenChanged),
        ]
    );
    assert!(close_zxid > pzxid_before);
    assert_eq!(h.stat("/app").pzxid, close_zxid);
    assert_eq!(h.stat("/app").num_children, 0);
    assert!(h.tree.session(SESSION).is_none());
    assert_eq!(h.tree.get_ephemerals(SESSION, ""), Vec::<String>::new());
    assert_eq!(h.tree.stats().ephemeral_count, 1);
    assert_eq!(
        h.tree.exists("/o").unwrap().ephemeral_owner,
        OTHER_SESSION.0
    );

    // Closing again is a no-op success; the closed session's requests are refused.
    let again = h.close(SESSION);
    assert_eq!(
        (again.result, again.triggers),
        (Ok(Response::Empty), vec![])
    );
    assert_eq!(h.create("/late", b""), Err(ErrorCode::SessionExpired));
}

#[test]
fn containers_go_once_emptied_through_a_logged_command() {
    let mut h = Harness::new();
    let (path, stat) = h.create_container("/c").unwrap();
    assert_eq!(path, "/c");
    // Clients see 0 for the container marker (DataNode.getClientEphemeralOwner).
    assert_eq!(stat.ephemeral_owner, 0);
    h.create("/plain", b"").unwrap();
    // Never had a child: not a candidate, and the command refuses it.
    assert!(h.tree.empty_containers(10).is_empty());
    let refused = h.run(Command::DeleteEmptyContainer { path: "/c".into() });
    assert_eq!(refused.result, Err(ErrorCode::BadVersion));
    h.create("/c/x", b"").unwrap();
    assert!(h.tree.empty_containers(10).is_empty());
    let busy = h.run(Command::DeleteEmptyContainer { path: "/c".into() });
    assert_eq!(busy.result, Err(ErrorCode::NotEmpty));
    h.delete("/c/x", -1).unwrap();
    assert_eq!(h.tree.empty_containers(10), vec!["/c"]);
    assert_eq!(h.tree.empty_containers(0), Vec::<String>::new());
    let not_container = h.run(Command::DeleteEmptyContainer {
        path: "/plain".into(),
    });
    assert_eq!(not_container.result, Err(ErrorCode::BadVersion));
    let deleted = h.run(Command::DeleteEmptyContainer { path: "/c".into() });
    assert_eq!(deleted.result, Ok(Response::Empty));
    assert_eq!(
        deleted.triggers,
        vec![
            trigger("/c", EventType::NodeDeleted),
            trigger("/", EventType::NodeChildrenChanged)
        ]
    );
    assert!(h.tree.empty_containers(10).is_empty());
    let gone = h.run(Command::DeleteEmptyContainer { path: "/c".into() });
    assert_eq!(gone.result, Err(ErrorCode::NoNode));
}

#[test]
fn ttl_nodes_expire_by_the_txn_clock_only() {
    let mut h = Harness::new();
    h.time_ms = 10_000;
    let (path, stat) = h.create_ttl("/t", 5, 1_000).unwrap();
    assert_eq!(path, "/t");
    assert_eq!(stat.ephemeral_owner, 0);
    assert_eq!(h.create_ttl("/t-", 6, 1_000).unwrap().0, "/t-0000000001");
    // Expired means strictly more than the TTL since the last modification.
    assert!(h.tree.expired_ttl_nodes(11_000, 10).is_empty());
    assert_eq!(
        h.tree.expired_ttl_nodes(11_001, 10),
        vec!["/t", "/t-0000000001"]
    );
    assert_eq!(h.tree.expired_ttl_nodes(11_001, 1), vec!["/t"]);

    // A write renews it; the leader's late command then finds it unexpired.
    h.time_ms = 10_500;
    h.set_data("/t", b"renew", -1).unwrap();
    assert_eq!(h.tree.expired_ttl_nodes(11_001, 10), vec!["/t-0000000001"]);
    h.time_ms = 11_001;
    let early = h.run(Command::DeleteExpiredTtl { path: "/t".into() });
    assert_eq!(early.result, Err(ErrorCode::BadVersion));
    assert!(h.tree.exists("/t").is_ok());

    // A child keeps it alive.
    h.create("/t/child", b"").unwrap();
    assert!(
        h.tree
            .expired_ttl_nodes(20_000, 10)
            .iter()
            .all(|p| p != "/t")
    );
    h.time_ms = 20_000;
    let busy = h.run(Command::DeleteExpiredTtl { path: "/t".into() });
    assert_eq!(busy.result, Err(ErrorCode::NotEmpty));
    h.delete("/t/child", -1).unwrap();
    let deleted = h.run(Command::DeleteExpiredTtl { path: "/t".into() });
    assert_eq!(deleted.result, Ok(Response::Empty));
    assert_eq!(
        deleted.triggers,
        vec![
            trigger("/t", EventType::NodeDeleted),
            trigger("/", EventType::NodeChildrenChanged)
        ]
    );
    h.create("/p", b"").unwrap();
    let not_ttl = h.run(Command::DeleteExpiredTtl { path: "/p".into() });
    assert_eq!(not_ttl.result, Err(ErrorCode::BadVersion));
    let missing = h.run(Command::DeleteExpiredTtl { path: "/t".into() });
    assert_eq!(missing.result, Err(ErrorCode::NoNode));
}

#[test]
fn ttl_validation_matches_zookeeper() {
    let mut h = Harness::new();
    let max = 0x0000_00ff_ffff_ffff_i64;
    assert!(h.create_ttl("/max", 5, max).is_ok());
    for (flags, ttl, error) in [
        (5, 0, ErrorCode::BadArguments),
        (5, -1, ErrorCode::BadArguments),
        (5, max + 1, ErrorCode::BadArguments),
        (0, 100, ErrorCode::BadArguments), // not a TTL mode, TTL given
        (0, -1, ErrorCode::BadArguments),  // not a TTL mode at all (ZooKeeper would throw)
        (1, 100, ErrorCode::BadArguments),
        (9, 100, ErrorCode::BadArguments),
    ] {
        assert_eq!(
            h.create_ttl("/x", flags, ttl),
            Err(error),
            "flags {flags} ttl {ttl}"
        );
    }
    let mut off = Harness::with_config(TreeConfig {
        extended_types_enabled: false,
        ..TreeConfig::default()
    });
    assert_eq!(off.create_ttl("/x", 5, 100), Err(ErrorCode::Unimplemented));
    assert_eq!(off.create_ttl("/x", 6, 0), Err(ErrorCode::Unimplemented));
    assert!(off.tree.expired_ttl_nodes(i64::MAX, 10).is_empty());
}
