//! Every node operation of the "Standalone arbor" issue against a real `arbor server`, driven
//! by `zookeeper-client` (a client we did not write) and, where that crate cannot express a
//! request or hides the exact answer, by raw frames encoded with `arbor-proto`: the create
//! opcodes in every mode, setData, delete, the reads, sync, ping, check, getEphemerals,
//! getAllChildrenNumber, closeSession, reconfig and sasl, containers and TTL nodes. ACLs and
//! authentication are in `acls.rs`, multi and multiRead in `multi.rs`.
//!
//! Expected behaviour is ZooKeeper 3.9.4's (release-3.9.4: `PrepRequestProcessor`,
//! `FinalRequestProcessor`, `DataTree`, `DataNode.copyStat`). Every Stat field is checked after
//! each write: zxids against the zxids seen before and after, times against this machine's
//! clock (the server's clock too).

mod support;

use arbor_proto::{
    Acl as RawAcl, CheckVersionRequest, CreateRequest, CreateTtlRequest, ErrorCode, GetSaslRequest,
    Id, OpCode, Request, Response, SetDataRequest, SyncRequest, XID_PING, perms,
};
use bytes::Bytes;
use support::raw::{RawConnection, data, resume_request};
use support::{
    Server, ServerOptions, connect, connect_with, connector, created, fails, mode, now_ms, ok,
    persistent, within,
};
use zookeeper_client as zk;

/// Checks a create's stat in full: a new zxid above `last_zxid`, a time within the call.
fn assert_created(stat: &zk::Stat, last_zxid: i64, before: i64, after: i64, len: i32, owner: i64) {
    assert!(
        stat.czxid > last_zxid,
        "czxid {stat:?} not after {last_zxid:#x}"
    );
    assert!(
        (before..=after).contains(&stat.ctime),
        "ctime {} outside [{before}, {after}]",
        stat.ctime
    );
    assert_eq!(*stat, created(stat.czxid, stat.ctime, len, owner));
}

/// The zxid of the last write, as a fresh write shows it: everything before it is older.
async fn write_marker(client: &zk::Client) -> i64 {
    let path = "/marker";
    let stat = match client.check_stat(path).await {
        Ok(Some(_)) => ok("set /marker", client.set_data(path, b"m", None)).await,
        _ => {
            ok("create /marker", client.create(path, b"m", &persistent()))
                .await
                .0
        }
    };
    stat.mzxid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create2_sets_every_stat_field_and_updates_the_parent() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    let root_before = ok("exists /", client.check_stat("/"))
        .await
        .expect("root exists");

    let before = now_ms();
    let (stat, sequence) = ok(
        "create /app",
        client.create("/app", b"hello", &persistent()),
    )
    .await;
    let after = now_ms();
    assert_eq!(sequence.into_i64(), -1, "no sequence for a plain node");
    assert_created(&stat, root_before.pzxid, before, after, 5, 0);
    let (data, read) = ok("get /app", client.get_data("/app")).await;
    assert_eq!((data.as_slice(), read), (&b"hello"[..], stat));
    assert_eq!(
        ok("exists /app", client.check_stat("/app")).await,
        Some(stat)
    );

    // The parent: one more child, cversion + 1, pzxid = the create's zxid; data fields as they
    // were.
    let root = ok("exists /", client.check_stat("/")).await.expect("root");
    assert_eq!(
        root,
        zk::Stat {
            cversion: root_before.cversion + 1,
            num_children: root_before.num_children + 1,
            pzxid: stat.czxid,
            ..root_before
        }
    );

    let before = now_ms();
    let (child, _) = ok(
        "create /app/child",
        client.create("/app/child", b"", &persistent()),
    )
    .await;
    let after = now_ms();
    assert_created(&child, stat.czxid, before, after, 0, 0);
    let parent = ok("exists /app", client.check_stat("/app"))
        .await
        .expect("/app");
    assert_eq!(
        parent,
        zk::Stat {
            cversion: 1,
            num_children: 1,
            pzxid: child.czxid,
            ..stat
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_create_opcode_answers_the_path() {
    let server = Server::start();
    // Told it talks to a 3.4 server, the client sends `create` (opcode 1), whose reply carries
    // the path alone.
    let old = connect_with(connector().with_server_version(3, 4, 0), &server.address()).await;
    let (stat, _) = ok("create /old", old.create("/old", b"x", &persistent())).await;
    assert!(stat.is_invalid(), "opcode 1 has no stat in its reply");
    let (value, stat) = ok("get /old", old.get_data("/old")).await;
    assert_eq!(value, b"x");
    assert_eq!(stat, created(stat.czxid, stat.ctime, 1, 0));

    // And raw, to see the reply body itself.
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let response = raw
        .call_ok(&Request::Create(CreateRequest {
            path: "/raw-seq-".into(),
            data: data(Bytes::new()),
            acl: RawAcl::open_unsafe(),
            flags: 2,
        }))
        .await;
    let Response::Create(created) = response else {
        panic!("create answered {response:?}");
    };
    // One child was created under the root before (/old); /zookeeper is built in and does not
    // count, as in ZooKeeper's DataTree.
    assert_eq!(created.path, "/raw-seq-0000000001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_root_looks_like_zookeepers() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    // `stat /` on a fresh ZooKeeper: everything 0 except cversion −1 (no child was ever
    // created, one child, /zookeeper, is there: 2 × 0 − 1) and numChildren 1.
    let root = ok("exists /", client.check_stat("/")).await.expect("root");
    assert_eq!(
        root,
        zk::Stat {
            cversion: -1,
            num_children: 1,
            ..created(0, 0, 0, 0)
        }
    );
    let mut system = ok("ls /zookeeper", client.list_children("/zookeeper")).await;
    system.sort();
    assert_eq!(system, ["config", "quota"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_mode_sets_owner_and_name() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    let session = client.session_id().0;
    ok("create /modes", client.create("/modes", b"", &persistent())).await;

    let (stat, _) = ok(
        "ephemeral",
        client.create("/modes/e", b"e", &mode(zk::CreateMode::Ephemeral)),
    )
    .await;
    assert_eq!(stat, created(stat.czxid, stat.ctime, 1, session));

    let (stat, sequence) = ok(
        "persistent sequential",
        client.create(
            "/modes/p-",
            b"",
            &mode(zk::CreateMode::PersistentSequential),
        ),
    )
    .await;
    assert_eq!(sequence.into_i64(), 1, "second child of /modes");
    assert_eq!(stat, created(stat.czxid, stat.ctime, 0, 0));
    assert!(
        ok("exists", client.check_stat("/modes/p-0000000001"))
            .await
            .is_some()
    );

    let (stat, sequence) = ok(
        "ephemeral sequential",
        client.create(
            "/modes/es-",
            b"",
            &mode(zk::CreateMode::EphemeralSequential),
        ),
    )
    .await;
    assert_eq!(sequence.into_i64(), 2);
    assert_eq!(stat, created(stat.czxid, stat.ctime, 0, session));

    // A container and TTL nodes show ephemeralOwner 0 to clients (getClientEphemeralOwner).
    let (stat, _) = ok(
        "container",
        client.create("/modes/c", b"", &mode(zk::CreateMode::Container)),
    )
    .await;
    assert_eq!(stat, created(stat.czxid, stat.ctime, 0, 0));

    let ttl = mode(zk::CreateMode::Persistent).with_ttl(std::time::Duration::from_secs(3600));
    let (stat, _) = ok("ttl", client.create("/modes/t", b"t", &ttl)).await;
    assert_eq!(stat, created(stat.czxid, stat.ctime, 1, 0));

    let ttl_sequential =
        mode(zk::CreateMode::PersistentSequential).with_ttl(std::time::Duration::from_secs(3600));
    let (stat, sequence) = ok(
        "sequential ttl",
        client.create("/modes/ts-", b"", &ttl_sequential),
    )
    .await;
    assert_eq!(sequence.into_i64(), 5);
    assert_eq!(stat, created(stat.czxid, stat.ctime, 0, 0));

    let mut children = ok("ls /modes", client.list_children("/modes")).await;
    children.sort();
    assert_eq!(
        children,
        [
            "c",
            "e",
            "es-0000000002",
            "p-0000000001",
            "t",
            "ts-0000000005"
        ]
    );
    let ephemerals = ok("getEphemerals", client.list_ephemerals("/")).await;
    let mut ephemerals = ephemerals;
    ephemerals.sort();
    assert_eq!(ephemerals, ["/modes/e", "/modes/es-0000000002"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_suffix_counts_child_creations_not_deletions() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /seq", client.create("/seq", b"", &persistent())).await;
    ok("create /seq/a", client.create("/seq/a", b"", &persistent())).await;
    ok("create /seq/b", client.create("/seq/b", b"", &persistent())).await;
    ok("delete /seq/a", client.delete("/seq/a", None)).await;
    // Two creations so far: ZooKeeper's stored cversion is 2 (what the suffix uses); clients
    // see 2 × 2 − 1 = 3 (creations plus deletions).
    let stat = ok("exists /seq", client.check_stat("/seq"))
        .await
        .expect("/seq");
    assert_eq!((stat.cversion, stat.num_children), (3, 1));
    let (_, sequence) = ok(
        "sequential",
        client.create("/seq/n-", b"", &mode(zk::CreateMode::PersistentSequential)),
    )
    .await;
    assert_eq!(sequence.to_string(), "0000000002");
    let stat = ok("exists /seq", client.check_stat("/seq"))
        .await
        .expect("/seq");
    assert_eq!((stat.cversion, stat.num_children), (4, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_errors() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /x", client.create("/x", b"", &persistent())).await;
    assert_eq!(
        fails("create /x again", client.create("/x", b"", &persistent())).await,
        zk::Error::NodeExists
    );
    assert_eq!(
        fails(
            "create /none/x",
            client.create("/none/x", b"", &persistent())
        )
        .await,
        zk::Error::NoNode
    );
    ok(
        "create /eph",
        client.create("/eph", b"", &mode(zk::CreateMode::Ephemeral)),
    )
    .await;
    assert_eq!(
        fails(
            "child of ephemeral",
            client.create("/eph/c", b"", &persistent())
        )
        .await,
        zk::Error::NoChildrenForEphemerals
    );

    // What the client library refuses to send, raw.
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let create = |path: &str, acl: Vec<RawAcl>, flags: i32| {
        Request::Create2(CreateRequest {
            path: path.into(),
            data: data(Bytes::new()),
            acl,
            flags,
        })
    };
    let code = |c: ErrorCode| c.code();
    assert_eq!(
        raw.call_code(&create("/empty-acl", Vec::new(), 0)).await,
        code(ErrorCode::InvalidAcl),
        "an empty ACL list (PrepRequestProcessor.fixupACL)"
    );
    let bad_digest = vec![RawAcl {
        perms: perms::ALL,
        id: Id::new("digest", "no-colon"),
    }];
    assert_eq!(
        raw.call_code(&create("/bad-acl", bad_digest, 0)).await,
        code(ErrorCode::InvalidAcl)
    );
    let unknown_scheme = vec![RawAcl {
        perms: perms::ALL,
        id: Id::new("nosuchscheme", "x"),
    }];
    assert_eq!(
        raw.call_code(&create("/bad-scheme", unknown_scheme, 0))
            .await,
        code(ErrorCode::InvalidAcl)
    );
    // Paths whose parent exists, so validatePath (not the parent lookup) decides.
    for path in ["/x/", "relative", "/x/.", "/x/..", "/x/a\0b"] {
        assert_eq!(
            raw.call_code(&create(path, RawAcl::open_unsafe(), 0)).await,
            code(ErrorCode::BadArguments),
            "path {path:?}"
        );
    }
    assert_eq!(
        raw.call_code(&create("/bad-flags", RawAcl::open_unsafe(), 7))
            .await,
        code(ErrorCode::BadArguments),
        "unknown create mode"
    );
    // A TTL mode through create2 has no TTL (-1), and createTTL needs a TTL mode and a TTL in
    // (0, 2^40) (EphemeralType.validateTTL).
    assert_eq!(
        raw.call_code(&create("/ttl-mode", RawAcl::open_unsafe(), 5))
            .await,
        code(ErrorCode::BadArguments)
    );
    let create_ttl = |flags: i32, ttl: i64| {
        Request::CreateTtl(CreateTtlRequest {
            path: "/ttl".into(),
            data: data(Bytes::new()),
            acl: RawAcl::open_unsafe(),
            flags,
            ttl,
        })
    };
    for (flags, ttl) in [(5, 0), (5, -1), (5, 1 << 40), (0, 1000), (1, 1000)] {
        assert_eq!(
            raw.call_code(&create_ttl(flags, ttl)).await,
            code(ErrorCode::BadArguments),
            "createTTL flags {flags} ttl {ttl}"
        );
    }
    assert_eq!(raw.call_code(&create_ttl(5, 1000)).await, 0);
    // The root's parent is "" (the root itself in ZooKeeper's node map), so "/" exists.
    assert_eq!(
        raw.call_code(&create("/", RawAcl::open_unsafe(), 0)).await,
        code(ErrorCode::NodeExists),
        "creating the root"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_data_changes_only_the_data_fields() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /d", client.create("/d", b"one", &persistent())).await;
    ok("create /d/c", client.create("/d/c", b"", &persistent())).await;
    let original = ok("exists /d", client.check_stat("/d")).await.expect("/d");

    let before = now_ms();
    let stat = ok("set /d", client.set_data("/d", b"second", Some(0))).await;
    let after = now_ms();
    assert!(stat.mzxid > original.pzxid, "{stat:?} after {original:?}");
    assert!((before..=after).contains(&stat.mtime), "{stat:?}");
    assert_eq!(
        stat,
        zk::Stat {
            mzxid: stat.mzxid,
            mtime: stat.mtime,
            version: 1,
            data_length: 6,
            ..original
        }
    );
    let (data, read) = ok("get /d", client.get_data("/d")).await;
    assert_eq!((data.as_slice(), read), (&b"second"[..], stat));

    assert_eq!(
        fails("stale version", client.set_data("/d", b"x", Some(0))).await,
        zk::Error::BadVersion
    );
    let unconditional = ok("set -1", client.set_data("/d", b"", None)).await;
    assert_eq!(
        unconditional,
        zk::Stat {
            mzxid: unconditional.mzxid,
            mtime: unconditional.mtime,
            version: 2,
            data_length: 0,
            ..original
        }
    );
    assert!(unconditional.mzxid > stat.mzxid);
    assert_eq!(
        fails("set missing", client.set_data("/missing", b"", None)).await,
        zk::Error::NoNode
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_checks_version_and_children_and_updates_the_parent() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /p", client.create("/p", b"", &persistent())).await;
    ok("create /p/a", client.create("/p/a", b"", &persistent())).await;
    ok("create /p/a/x", client.create("/p/a/x", b"", &persistent())).await;
    ok("create /p/b", client.create("/p/b", b"", &persistent())).await;
    ok("set /p/b", client.set_data("/p/b", b"v1", None)).await;
    let parent = ok("exists /p", client.check_stat("/p")).await.expect("/p");

    assert_eq!(
        fails("delete non-empty", client.delete("/p/a", None)).await,
        zk::Error::NotEmpty
    );
    assert_eq!(
        fails("delete stale version", client.delete("/p/b", Some(0))).await,
        zk::Error::BadVersion
    );
    assert_eq!(
        fails("delete missing", client.delete("/p/none", None)).await,
        zk::Error::NoNode
    );
    let before_zxid = write_marker(&client).await;
    ok("delete /p/b", client.delete("/p/b", Some(1))).await;
    let after_zxid = write_marker(&client).await;
    assert_eq!(ok("exists /p/b", client.check_stat("/p/b")).await, None);

    let now = ok("exists /p", client.check_stat("/p")).await.expect("/p");
    assert!(
        now.pzxid > before_zxid && now.pzxid < after_zxid,
        "pzxid {:#x} is not the delete's zxid (between {before_zxid:#x} and {after_zxid:#x})",
        now.pzxid
    );
    assert_eq!(
        now,
        zk::Stat {
            cversion: parent.cversion + 1,
            num_children: parent.num_children - 1,
            pzxid: now.pzxid,
            ..parent
        }
    );
    ok("delete /p/a/x", client.delete("/p/a/x", Some(0))).await;
    ok("delete /p/a", client.delete("/p/a", None)).await;
    ok("delete /p", client.delete("/p", None)).await;
    assert_eq!(ok("exists /p", client.check_stat("/p")).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_get_data_and_both_get_children() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    assert_eq!(ok("exists missing", client.check_stat("/nope")).await, None);
    assert_eq!(
        fails("get missing", client.get_data("/nope")).await,
        zk::Error::NoNode
    );
    assert_eq!(
        fails("ls missing", client.list_children("/nope")).await,
        zk::Error::NoNode
    );
    assert_eq!(
        fails("ls2 missing", client.get_children("/nope")).await,
        zk::Error::NoNode
    );
    ok("create /k", client.create("/k", b"", &persistent())).await;
    for name in ["c", "a", "b"] {
        ok(
            "create child",
            client.create(&format!("/k/{name}"), b"", &persistent()),
        )
        .await;
    }
    let mut listed = ok("getChildren", client.list_children("/k")).await;
    listed.sort();
    assert_eq!(listed, ["a", "b", "c"]);
    let (mut listed, stat) = ok("getChildren2", client.get_children("/k")).await;
    listed.sort();
    assert_eq!(listed, ["a", "b", "c"]);
    assert_eq!(Some(stat), ok("exists /k", client.check_stat("/k")).await);
    assert_eq!((stat.num_children, stat.cversion), (3, 3));
    let mut root = ok("ls /", client.list_children("/")).await;
    root.sort();
    assert_eq!(root, ["k", "zookeeper"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_ping_and_check() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /s", client.create("/s", b"", &persistent())).await;
    ok("sync", client.sync("/s")).await;

    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let response = raw
        .call_ok(&Request::Sync(SyncRequest { path: "/s".into() }))
        .await;
    assert_eq!(
        response,
        Response::Sync(arbor_proto::SyncResponse { path: "/s".into() })
    );
    raw.send_with_xid(XID_PING, &Request::Ping).await;
    let reply = raw.reply_to(XID_PING).await;
    assert_eq!(reply.err(), 0);
    assert!(reply.body.is_empty());

    let check = |path: &str, version: i32| {
        Request::Check(CheckVersionRequest {
            path: path.into(),
            version,
        })
    };
    assert_eq!(raw.call_code(&check("/s", 0)).await, 0);
    assert_eq!(raw.call_code(&check("/s", -1)).await, 0);
    assert_eq!(
        raw.call_code(&check("/s", 1)).await,
        ErrorCode::BadVersion.code()
    );
    assert_eq!(
        raw.call_code(&check("/missing", 0)).await,
        ErrorCode::NoNode.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_ephemerals_and_all_children_number() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    let other = connect(&server.address()).await;
    for path in ["/e", "/e/a", "/e/a/b", "/e/c", "/ex"] {
        ok("create", client.create(path, b"", &persistent())).await;
    }
    let ephemeral = mode(zk::CreateMode::Ephemeral);
    for path in ["/e/a/b/mine", "/e/c/mine", "/ex/mine"] {
        ok("create ephemeral", client.create(path, b"", &ephemeral)).await;
    }
    ok(
        "other's ephemeral",
        other.create("/e/theirs", b"", &ephemeral),
    )
    .await;

    let mut all = ok("getEphemerals /", client.list_ephemerals("/")).await;
    all.sort();
    assert_eq!(all, ["/e/a/b/mine", "/e/c/mine", "/ex/mine"]);
    // A prefix of the path string, as ZooKeeper matches it.
    let mut under = ok("getEphemerals /e", client.list_ephemerals("/e")).await;
    under.sort();
    assert_eq!(under, ["/e/a/b/mine", "/e/c/mine", "/ex/mine"]);
    let under = ok("getEphemerals /e/a", client.list_ephemerals("/e/a")).await;
    assert_eq!(under, ["/e/a/b/mine"]);
    assert_eq!(
        ok("theirs", other.list_ephemerals("/")).await,
        ["/e/theirs"]
    );

    assert_eq!(
        ok("count /e", client.count_descendants_number("/e")).await,
        6
    );
    assert_eq!(
        ok("count /e/a", client.count_descendants_number("/e/a")).await,
        2
    );
    assert_eq!(
        ok("count leaf", client.count_descendants_number("/e/c/mine")).await,
        0
    );
    assert_eq!(
        fails("count missing", client.count_descendants_number("/nope")).await,
        zk::Error::NoNode
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfig_and_sasl_are_answered_with_errors() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    let update = zk::EnsembleUpdate::New {
        ensemble: ["server.1=127.0.0.1:2888:3888;2181"].into_iter(),
    };
    // reconfigEnabled=false in ZooKeeper answers ReconfigDisabled.
    assert_eq!(
        fails("reconfig", client.update_ensemble(update, None)).await,
        zk::Error::ReconfigDisabled
    );
    // The session is still usable.
    ok(
        "create after reconfig",
        client.create("/after", b"", &persistent()),
    )
    .await;

    // SASL without a SASL setup: ZooKeeper's failed-SASL answer, AuthFailed, then the close.
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let reply = raw
        .call(&Request::Sasl(GetSaslRequest {
            token: Bytes::from_static(b"token"),
        }))
        .await;
    assert_eq!(reply.err(), ErrorCode::AuthFailed.code());
    raw.expect_closed_without_reply().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_session_removes_ephemerals_and_ends_the_session() {
    let server = Server::start();
    let observer = connect(&server.address()).await;

    let (mut raw, session) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let response = raw
        .call_ok(&Request::Create2(CreateRequest {
            path: "/raw-eph".into(),
            data: data(Bytes::new()),
            acl: RawAcl::open_unsafe(),
            flags: 1,
        }))
        .await;
    assert!(matches!(response, Response::Create2(_)), "{response:?}");
    let (stat, watcher) = ok("watch /raw-eph", observer.check_and_watch_stat("/raw-eph")).await;
    assert_eq!(stat.map(|s| s.ephemeral_owner), Some(session.session_id));
    let reply = raw.call(&Request::CloseSession).await;
    assert_eq!(reply.err(), 0);
    raw.expect_closed_without_reply().await;
    let event = within("deletion of /raw-eph", watcher.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    assert_eq!(ok("exists", observer.check_stat("/raw-eph")).await, None);

    // The closed session cannot be resumed.
    let mut again = RawConnection::open(server.socket_address()).await;
    let response = again
        .handshake(&resume_request(session.session_id, &session.password, 0))
        .await
        .expect("an answer");
    assert_eq!(
        (response.session_id, response.timeout_ms),
        (0, 0),
        "{response:?}"
    );

    // zookeeper-client closes its session when the last handle is dropped.
    let client = connect(&server.address()).await;
    ok(
        "ephemeral",
        client.create("/client-eph", b"", &mode(zk::CreateMode::Ephemeral)),
    )
    .await;
    let (_, watcher) = ok("watch", observer.check_and_watch_stat("/client-eph")).await;
    drop(client);
    let event = within("deletion of /client-eph", watcher.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_and_ttl_nodes_are_removed_by_the_server() {
    let server =
        Server::start_with(ServerOptions::default().set("container_check_interval_ms", 50));
    let client = connect(&server.address()).await;
    let container = mode(zk::CreateMode::Container);
    ok("container", client.create("/c", b"", &container)).await;
    ok(
        "never used container",
        client.create("/unused", b"", &container),
    )
    .await;
    ok("child", client.create("/c/x", b"", &persistent())).await;
    ok("delete child", client.delete("/c/x", None)).await;
    let (stat, removed) = ok("watch /c", client.check_and_watch_stat("/c")).await;
    if stat.is_some() {
        let event = within("container removal", removed.changed()).await;
        assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    }
    assert_eq!(ok("exists /c", client.check_stat("/c")).await, None);
    // A container that never had a child stays (ContainerManager: cversion > 0).
    assert!(
        ok("exists /unused", client.check_stat("/unused"))
            .await
            .is_some()
    );

    let ttl = |mode: zk::CreateMode, ms: u64| {
        mode.with_acls(zk::Acls::anyone_all())
            .with_ttl(std::time::Duration::from_millis(ms))
    };
    ok(
        "ttl",
        client.create("/t", b"", &ttl(zk::CreateMode::Persistent, 100)),
    )
    .await;
    let (_, sequence) = ok(
        "sequential ttl",
        client.create("/ts-", b"", &ttl(zk::CreateMode::PersistentSequential, 100)),
    )
    .await;
    let sequential = format!("/ts-{sequence}");
    ok(
        "ttl with child",
        client.create("/tc", b"", &ttl(zk::CreateMode::Persistent, 100)),
    )
    .await;
    ok(
        "child of ttl",
        client.create("/tc/child", b"", &persistent()),
    )
    .await;
    ok(
        "long ttl",
        client.create("/tl", b"", &ttl(zk::CreateMode::Persistent, 3_600_000)),
    )
    .await;
    for path in ["/t", sequential.as_str()] {
        let (stat, removed) = ok("watch ttl node", client.check_and_watch_stat(path)).await;
        if stat.is_some() {
            let event = within("ttl removal", removed.changed()).await;
            assert_eq!(event.event_type, zk::EventType::NodeDeleted, "{path}");
        }
    }
    // A TTL node with children is kept, and one whose TTL has not passed.
    assert!(ok("exists /tc", client.check_stat("/tc")).await.is_some());
    assert!(ok("exists /tl", client.check_stat("/tl")).await.is_some());
    ok("delete child of ttl", client.delete("/tc/child", None)).await;
    let (stat, removed) = ok("watch /tc", client.check_and_watch_stat("/tc")).await;
    if stat.is_some() {
        let event = within("ttl removal once empty", removed.changed()).await;
        assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    }
    assert!(ok("exists /tl", client.check_stat("/tl")).await.is_some());
}

/// Appends a jute string.
fn put_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as i32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_data_reads_back_as_null() {
    let server = Server::start();
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    // create2 "/null" with a null buffer (length −1), world:anyone ALL, persistent: what the
    // Java client sends for `create(path, null, ...)`.
    let mut payload = Vec::new();
    payload.extend_from_slice(&1i32.to_be_bytes());
    payload.extend_from_slice(&OpCode::Create2.code().to_be_bytes());
    put_string(&mut payload, "/null");
    payload.extend_from_slice(&(-1i32).to_be_bytes());
    payload.extend_from_slice(&1i32.to_be_bytes());
    payload.extend_from_slice(&perms::ALL.to_be_bytes());
    put_string(&mut payload, "world");
    put_string(&mut payload, "anyone");
    payload.extend_from_slice(&0i32.to_be_bytes());
    raw.send_frame(&payload).await.expect("send");
    let reply = raw.reply_to(1).await;
    assert_eq!(reply.err(), 0, "{reply:?}");
    // ZooKeeper keeps null apart from empty: getData answers a null buffer, dataLength 0.
    let reply = raw
        .call(&Request::GetData(arbor_proto::GetDataRequest {
            path: "/null".into(),
            watch: false,
        }))
        .await;
    let (value, stat) = reply.get_data();
    assert_eq!(value, None, "null data came back as {value:?}");
    assert_eq!(stat.data_length, 0);
    // The client library reads null as empty.
    let client = connect(&server.address()).await;
    let (value, _) = ok("get /null", client.get_data("/null")).await;
    assert!(value.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_reads_see_earlier_writes() {
    let server = Server::start();
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    raw.call_ok(&Request::Create2(CreateRequest {
        path: "/fifo".into(),
        data: data(Bytes::from_static(b"0")),
        acl: RawAcl::open_unsafe(),
        flags: 0,
    }))
    .await;
    // Writes and reads sent back to back without waiting: the replies come in request order,
    // and each read sees every write sent before it (FIFO per session), whatever the batching
    // of writes behind the scenes.
    const ROUNDS: usize = 300;
    let mut expected = Vec::new();
    for round in 1..=ROUNDS {
        let value = round.to_string();
        let xid = raw
            .send(&Request::SetData(SetDataRequest {
                path: "/fifo".into(),
                data: data(Bytes::from(value.clone())),
                version: -1,
            }))
            .await;
        expected.push((xid, None));
        let xid = raw
            .send(&Request::GetData(arbor_proto::GetDataRequest {
                path: "/fifo".into(),
                watch: false,
            }))
            .await;
        expected.push((xid, Some(value)));
    }
    let mut last_zxid = 0;
    for (xid, read) in expected {
        let reply = raw.reply_to(xid).await;
        assert_eq!(reply.err(), 0, "{reply:?}");
        assert!(
            reply.header.zxid >= last_zxid,
            "zxid went back at xid {xid}"
        );
        last_zxid = reply.header.zxid;
        if let Some(value) = read {
            let (got, _) = reply.get_data();
            assert_eq!(got.as_deref(), Some(value.as_bytes()), "read at xid {xid}");
        }
    }
}
