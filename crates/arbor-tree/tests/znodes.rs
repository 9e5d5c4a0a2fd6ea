//! Znode semantics: the eleven Stat fields after every operation, sequential names, path
//! rules and ZooKeeper's error order.

mod common;

use arbor_proto::{ErrorCode, EventType, Stat};
use arbor_tree::{DataTree, TreeConfig, WatchTrigger};
use common::{Harness, SESSION};

/// A trigger on an open node (every node these tests watch is `world:anyone` ALL).
fn trigger(path: &str, event: EventType) -> WatchTrigger {
    WatchTrigger {
        path: path.into(),
        event,
        acl: arbor_proto::Acl::open_unsafe().into(),
    }
}

#[test]
fn fresh_tree_has_zookeepers_system_nodes() {
    let tree = DataTree::new(TreeConfig::default());
    let root = tree.exists("/").unwrap();
    // Stored cversion 0 with one child: clients see 0 * 2 - 1, as on a real ZooKeeper.
    assert_eq!(
        root,
        Stat {
            num_children: 1,
            cversion: -1,
            ..Stat::default()
        }
    );
    let zookeeper = tree.exists("/zookeeper").unwrap();
    assert_eq!((zookeeper.num_children, zookeeper.cversion), (2, -2));
    assert_eq!(tree.exists("/zookeeper/quota").unwrap(), Stat::default());
    let config = tree.exists("/zookeeper/config").unwrap();
    assert_eq!(
        config,
        Stat {
            aversion: -1,
            ..Stat::default()
        }
    );
    let (acl, _) = tree.get_acl("/zookeeper/config", &[]).unwrap();
    assert_eq!(acl, arbor_proto::Acl::read_unsafe());
    let (children, _) = tree.get_children("/zookeeper", &[]).unwrap();
    assert_eq!(children, vec!["config", "quota"]);
    let stats = tree.stats();
    assert_eq!(stats.node_count, 4);
    // "/" + "/zookeeper" + "/zookeeper/quota" + "/zookeeper/config", as ZooKeeper counts.
    assert_eq!(stats.approximate_data_size_bytes, 1 + 10 + 16 + 17);
    assert_eq!(stats.acl_count, 2);
    assert_eq!(tree.last_applied_zxid().0, 0);
}

#[test]
fn stat_fields_follow_create_set_delete() {
    let mut h = Harness::new();
    h.time_ms = 5_000;
    let z1 = h.next_zxid();
    let (path, created) = h.create_mode("/a", b"hi", 0).unwrap();
    assert_eq!(path, "/a");
    let expected = Stat {
        czxid: z1,
        mzxid: z1,
        ctime: 5_000,
        mtime: 5_000,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 2,
        num_children: 0,
        pzxid: z1,
    };
    assert_eq!(created, expected);
    assert_eq!(h.stat("/a"), expected);
    let root = h.stat("/");
    assert_eq!((root.num_children, root.cversion, root.pzxid), (2, 0, z1));

    h.time_ms = 6_000;
    let z2 = h.next_zxid();
    h.create("/a/b", b"").unwrap();
    let a = h.stat("/a");
    assert_eq!(
        (a.num_children, a.cversion, a.pzxid, a.mzxid),
        (1, 1, z2, z1)
    );

    let z3 = h.next_zxid();
    h.delete("/a/b", -1).unwrap();
    let a = h.stat("/a");
    // A delete leaves the stored cversion alone; clients see it rise (2 = 1 create + 1 delete).
    assert_eq!(
        (a.num_children, a.cversion, a.pzxid, a.mzxid),
        (0, 2, z3, z1)
    );

    h.time_ms = 7_000;
    let z4 = h.next_zxid();
    let set = h.set_data("/a", b"hello", 0).unwrap();
    assert_eq!(
        set,
        Stat {
            mzxid: z4,
            mtime: 7_000,
            version: 1,
            data_length: 5,
            cversion: 2,
            pzxid: z3,
            ..expected
        }
    );
    assert_eq!(h.set_data("/a", b"x", 0), Err(ErrorCode::BadVersion));
    assert_eq!(h.set_data("/a", b"x", -1).unwrap().version, 2);

    let acl_stat = h.set_acl("/a", arbor_proto::Acl::open_unsafe(), 0).unwrap();
    assert_eq!(
        (acl_stat.aversion, acl_stat.version, acl_stat.mzxid),
        (1, 2, h.stat("/a").mzxid)
    );
    assert_eq!(
        h.set_acl("/a", arbor_proto::Acl::open_unsafe(), 0),
        Err(ErrorCode::BadVersion)
    );
    assert_eq!(h.tree.last_applied_zxid().0, h.next_zxid() - 1);
}

#[test]
fn triggers_are_zookeepers() {
    let mut h = Harness::new();
    let applied = h.request(arbor_tree::WriteRequest::Create(common::create_request(
        "/a", b"", 0,
    )));
    assert_eq!(
        applied.triggers,
        vec![
            trigger("/a", EventType::NodeCreated),
            trigger("/", EventType::NodeChildrenChanged)
        ]
    );
    h.create("/a/b", b"").unwrap();
    let applied = h.request(arbor_tree::WriteRequest::SetData(
        arbor_proto::SetDataRequest {
            path: "/a/b".into(),
            data: Some("d".into()),
            version: -1,
        },
    ));
    assert_eq!(
        applied.triggers,
        vec![trigger("/a/b", EventType::NodeDataChanged)]
    );
    let applied = h.request(arbor_tree::WriteRequest::Delete(
        arbor_proto::DeleteRequest {
            path: "/a/b".into(),
            version: -1,
        },
    ));
    assert_eq!(
        applied.triggers,
        vec![
            trigger("/a/b", EventType::NodeDeleted),
            trigger("/a", EventType::NodeChildrenChanged)
        ]
    );
    // Failed writes, setACL and check change nothing a watch sees.
    let failed = h.request(arbor_tree::WriteRequest::Delete(
        arbor_proto::DeleteRequest {
            path: "/a/b".into(),
            version: -1,
        },
    ));
    assert_eq!(
        (failed.result, failed.triggers),
        (Err(ErrorCode::NoNode), vec![])
    );
    let set_acl = h.request(arbor_tree::WriteRequest::SetAcl(
        arbor_proto::SetAclRequest {
            path: "/a".into(),
            acl: arbor_proto::Acl::open_unsafe(),
            version: -1,
        },
    ));
    assert!(set_acl.result.is_ok() && set_acl.triggers.is_empty());
}

#[test]
fn sequential_suffix_is_the_parents_create_count() {
    let mut h = Harness::new();
    h.create("/s", b"").unwrap();
    assert_eq!(h.create_mode("/s/n-", b"", 2).unwrap().0, "/s/n-0000000000");
    assert_eq!(h.create_mode("/s/n-", b"", 2).unwrap().0, "/s/n-0000000001");
    h.create("/s/plain", b"").unwrap();
    assert_eq!(h.create_mode("/s/n-", b"", 2).unwrap().0, "/s/n-0000000003");
    h.delete("/s/n-0000000001", -1).unwrap();
    assert_eq!(h.create_mode("/s/n-", b"", 3).unwrap().0, "/s/n-0000000004");
    // A trailing slash names the child by the number alone.
    assert_eq!(h.create_mode("/s/", b"", 2).unwrap().0, "/s/0000000005");
    // A failed create does not consume a number.
    assert_eq!(
        h.create_mode("/s/n-0000000000/x-", b"", 2).unwrap().0,
        "/s/n-0000000000/x-0000000000"
    );
    assert_eq!(h.create_mode("/s/", b"", 2).unwrap().0, "/s/0000000006");
    // The root takes sequential children too ("/" + suffix).
    let root_count = (h.stat("/").cversion + h.stat("/").num_children) / 2;
    assert_eq!(
        h.create_mode("/", b"", 2).unwrap().0,
        format!("/{root_count:010}")
    );
}

#[test]
fn create_errors_come_in_zookeepers_order() {
    let mut h = Harness::new();
    h.create("/a", b"").unwrap();
    for (path, flags, error) in [
        ("a", 0, ErrorCode::BadArguments),       // no slash
        ("", 0, ErrorCode::BadArguments),        // empty
        ("/a\u{0}", 0, ErrorCode::BadArguments), // NUL
        ("/a", 7, ErrorCode::BadArguments),      // unknown mode
        ("/missing/x", 0, ErrorCode::NoNode),    // parent first...
        ("/./x", 0, ErrorCode::NoNode),          // ...even when the path is invalid
        ("/a//b", 0, ErrorCode::NoNode),         // parent "/a/" does not exist
        ("/a/", 0, ErrorCode::BadArguments),     // parent exists, then the path is checked
        ("/a/.", 0, ErrorCode::BadArguments),
        ("/a/..", 0, ErrorCode::BadArguments),
        ("/a/\u{1}", 0, ErrorCode::BadArguments),
        ("/a", 0, ErrorCode::NodeExists),
        ("/", 0, ErrorCode::NodeExists),
        ("/a", 5, ErrorCode::BadArguments), // TTL mode through create2: ttl −1
    ] {
        assert_eq!(
            h.create_mode(path, b"", flags),
            Err(error),
            "{path:?} flags {flags}"
        );
    }
    assert_eq!(h.create_acl("/b", vec![]), Err(ErrorCode::InvalidAcl));
    // The ACL is checked before the parent exists.
    assert_eq!(
        h.create_acl("/missing/b", vec![]),
        Err(ErrorCode::InvalidAcl)
    );
    // A create mode of Container through plain create makes a plain persistent node.
    let (_, stat) = h.create_mode("/c", b"", 4).unwrap();
    assert_eq!(stat.ephemeral_owner, 0);
}

#[test]
fn delete_errors_and_special_paths() {
    let mut h = Harness::new();
    h.create("/a", b"").unwrap();
    h.create("/a/b", b"").unwrap();
    for (path, version, error) in [
        ("/", -1, ErrorCode::BadArguments),
        ("/zookeeper", -1, ErrorCode::BadArguments),
        ("/zookeeper/quota", -1, ErrorCode::BadArguments),
        ("/zookeeper/config", -1, ErrorCode::BadArguments),
        ("a", -1, ErrorCode::BadArguments),
        ("/x/y", -1, ErrorCode::NoNode),
        ("/a/c", -1, ErrorCode::NoNode),
        ("/a/", -1, ErrorCode::NoNode),
        ("/a", 3, ErrorCode::BadVersion), // the version is checked before emptiness
        ("/a", -1, ErrorCode::NotEmpty),
        ("/a", 0, ErrorCode::NotEmpty),
    ] {
        assert_eq!(h.delete(path, version), Err(error), "{path:?}");
    }
    h.create("/zookeeper/quota/app", b"").unwrap();
    h.delete("/zookeeper/quota/app", -1).unwrap();
    h.delete("/a/b", 0).unwrap();
    h.delete("/a", 0).unwrap();
    assert_eq!(h.tree.exists("/a"), Err(ErrorCode::NoNode));
}

#[test]
fn set_data_and_check_validate_the_path() {
    let mut h = Harness::new();
    assert_eq!(h.set_data("/a/", b"", -1), Err(ErrorCode::BadArguments));
    assert_eq!(h.set_data("/a", b"", -1), Err(ErrorCode::NoNode));
    assert_eq!(h.check("a", -1), Err(ErrorCode::BadArguments));
    assert_eq!(h.check("/a", -1), Err(ErrorCode::NoNode));
    h.create("/a", b"").unwrap();
    assert_eq!(h.check("/a", 1), Err(ErrorCode::BadVersion));
    assert_eq!(h.check("/a", 0), Ok(()));
    assert_eq!(h.check("/a", -1), Ok(()));
    // The root can be written.
    assert_eq!(h.set_data("/", b"r", -1).unwrap().version, 1);
}

#[test]
fn unknown_session_gets_session_expired() {
    let mut h = Harness::new();
    let applied = h.request_as(
        common::OTHER_SESSION,
        arbor_tree::WriteRequest::Create(common::create_request("/a", b"", 0)),
    );
    assert_eq!(
        (applied.result, applied.triggers),
        (Err(ErrorCode::SessionExpired), vec![])
    );
    assert_eq!(h.tree.exists("/a"), Err(ErrorCode::NoNode));
    assert!(h.tree.session(SESSION).is_some());
}

#[test]
fn reads_by_path() {
    let mut h = Harness::new();
    h.create("/a", b"data").unwrap();
    for name in ["c", "a", "b"] {
        h.create(&format!("/a/{name}"), b"").unwrap();
    }
    h.create("/a/b/x", b"").unwrap();
    h.create("/ab", b"").unwrap();
    h.create("/a-", b"").unwrap();
    let ids = h.identities.clone();
    assert_eq!(
        h.tree.get_children("/a", &ids).unwrap().0,
        vec!["a", "b", "c"]
    );
    assert_eq!(
        h.tree.get_children("/a/b/x", &ids).unwrap().0,
        Vec::<String>::new()
    );
    assert_eq!(h.tree.get_children("/nope", &ids), Err(ErrorCode::NoNode));
    assert_eq!(
        h.tree.get_data("/a", &ids).unwrap().0.as_deref(),
        Some(&b"data"[..])
    );
    assert_eq!(h.tree.get_all_children_number("/a", &ids), Ok(4));
    assert_eq!(h.tree.get_all_children_number("/a/b", &ids), Ok(1));
    // The root counts everything but itself, /zookeeper's children included.
    assert_eq!(
        h.tree.get_all_children_number("/", &ids),
        Ok(h.tree.stats().node_count as i32 - 1)
    );
    assert_eq!(h.tree.exists("/a/"), Err(ErrorCode::NoNode));
    assert_eq!(h.tree.exists("//a"), Err(ErrorCode::NoNode));
    assert_eq!(h.tree.exists("/a\u{0}"), Err(ErrorCode::BadArguments));
    // ZooKeeper's node map aliases "" to the root.
    assert_eq!(h.tree.exists(""), h.tree.exists("/"));
}

#[test]
fn data_size_and_counts_track_writes() {
    let mut h = Harness::new();
    let base = h.tree.stats();
    h.create("/abc", b"12345").unwrap();
    let stats = h.tree.stats();
    assert_eq!(stats.node_count, base.node_count + 1);
    assert_eq!(
        stats.approximate_data_size_bytes,
        base.approximate_data_size_bytes + 4 + 5
    );
    h.set_data("/abc", b"1", -1).unwrap();
    assert_eq!(
        h.tree.stats().approximate_data_size_bytes,
        base.approximate_data_size_bytes + 4 + 1
    );
    h.delete("/abc", -1).unwrap();
    assert_eq!(h.tree.stats(), base);
}
