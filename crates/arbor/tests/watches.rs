//! Watches on a real `arbor server`: one-shot data, exist and child watches, persistent and
//! persistent-recursive watches, their removal and checking, the order of an event against
//! replies, and watches carried across a server restart by the client's `setWatches`.
//!
//! Expected behaviour is ZooKeeper 3.9.4's (`DataTree.setWatches`, `WatchManager`,
//! `FinalRequestProcessor` removeWatches/checkWatches, `NIOServerCnxn.process`).

mod support;

use arbor_proto::{
    AddWatchRequest, CheckWatchesRequest, CreateRequest, ErrorCode, EventType, GetDataRequest,
    KeeperState, RemoveWatchesRequest, Request, SetDataRequest, SetWatches, SetWatches2,
    WatcherEvent, XID_SET_WATCHES,
};
use bytes::Bytes;
use support::proxy::Proxy;
use support::raw::{Message, RawConnection, data, resume_request};
use support::{
    Server, connect, connect_with, connector, digest_id, ok, persistent, wait_for_state, within,
};
use zookeeper_client as zk;

fn event(event_type: EventType, path: &str) -> WatcherEvent {
    WatcherEvent {
        event_type: event_type.code(),
        state: KeeperState::SyncConnected.code(),
        path: path.into(),
    }
}

fn get_data(path: &str, watch: bool) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch,
    })
}

fn set_data(path: &str, value: &'static [u8]) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: data(Bytes::from_static(value)),
        version: -1,
    })
}

fn create(path: &str) -> Request {
    Request::Create2(CreateRequest {
        path: path.into(),
        data: data(Bytes::new()),
        acl: arbor_proto::Acl::open_unsafe(),
        flags: 0,
    })
}

/// Asserts the connection has received no event by the time a fresh round trip completes
/// (events are sent before any later reply, so one would be queued by then).
async fn assert_no_event(raw: &mut RawConnection) {
    raw.call_ok(&Request::Exists(arbor_proto::ExistsRequest {
        path: "/".into(),
        watch: false,
    }))
    .await;
    assert!(raw.events.is_empty(), "unexpected events {:?}", raw.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_watches_fire_once_with_the_changes_zxid() {
    let server = Server::start();
    let watcher = connect(&server.address()).await;
    let writer = connect(&server.address()).await;
    ok("create /w", writer.create("/w", b"0", &persistent())).await;

    // Data watch: fires on a data change, with the zxid of that change.
    let (_, _, data_watch) = ok("getData watch", watcher.get_and_watch_data("/w")).await;
    let stat = ok("set /w", writer.set_data("/w", b"1", None)).await;
    let fired = within("data watch", data_watch.changed()).await;
    assert_eq!(
        (fired.event_type, fired.path.as_str(), fired.zxid),
        (zk::EventType::NodeDataChanged, "/w", stat.mzxid)
    );

    // Exist watch on a missing node: fires on creation.
    let (missing, exist_watch) = ok("exists watch", watcher.check_and_watch_stat("/new")).await;
    assert_eq!(missing, None);
    let (created, _) = ok("create /new", writer.create("/new", b"", &persistent())).await;
    let fired = within("exist watch", exist_watch.changed()).await;
    assert_eq!(
        (fired.event_type, fired.path.as_str(), fired.zxid),
        (zk::EventType::NodeCreated, "/new", created.czxid)
    );

    // Exist watch on a present node: fires on a data change and on deletion.
    let (_, exist_watch) = ok("exists watch", watcher.check_and_watch_stat("/new")).await;
    ok("set /new", writer.set_data("/new", b"x", None)).await;
    let fired = within("exist watch on data", exist_watch.changed()).await;
    assert_eq!(fired.event_type, zk::EventType::NodeDataChanged);
    let (_, exist_watch) = ok("exists watch", watcher.check_and_watch_stat("/new")).await;
    ok("delete /new", writer.delete("/new", None)).await;
    let fired = within("exist watch on delete", exist_watch.changed()).await;
    assert_eq!(
        (fired.event_type, fired.path.as_str()),
        (zk::EventType::NodeDeleted, "/new")
    );

    // Child watch: fires on a child's creation and deletion (path is the parent), and on the
    // parent's deletion.
    let (_, child_watch) = ok("ls watch", watcher.list_and_watch_children("/w")).await;
    let (child, _) = ok("create child", writer.create("/w/c", b"", &persistent())).await;
    let fired = within("child watch", child_watch.changed()).await;
    assert_eq!(
        (fired.event_type, fired.path.as_str(), fired.zxid),
        (zk::EventType::NodeChildrenChanged, "/w", child.czxid)
    );
    let (_, _, child_watch) = ok("ls2 watch", watcher.get_and_watch_children("/w")).await;
    ok("delete child", writer.delete("/w/c", None)).await;
    let fired = within("child watch on delete", child_watch.changed()).await;
    assert_eq!(fired.event_type, zk::EventType::NodeChildrenChanged);
    let (_, child_watch) = ok("ls watch", watcher.list_and_watch_children("/w")).await;
    let (_, _, data_watch) = ok("getData watch", watcher.get_and_watch_data("/w")).await;
    ok("delete /w", writer.delete("/w", None)).await;
    for watch in [child_watch, data_watch] {
        let fired = within("deletion", watch.changed()).await;
        assert_eq!(
            (fired.event_type, fired.path.as_str()),
            (zk::EventType::NodeDeleted, "/w")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sends_each_one_shot_event_once_and_only_for_its_kind() {
    let server = Server::start();
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let writer = connect(&server.address()).await;
    ok("create /o", writer.create("/o", b"", &persistent())).await;

    raw.call_ok(&get_data("/o", true)).await;
    ok("set 1", writer.set_data("/o", b"1", None)).await;
    ok("set 2", writer.set_data("/o", b"2", None)).await;
    // Both writes are applied; the one event they fired is queued ahead of the next reply.
    assert_no_event_but(&mut raw, &[event(EventType::NodeDataChanged, "/o")]).await;

    // A child watch ignores data changes; a data watch ignores children.
    raw.call_ok(&Request::GetChildren(arbor_proto::GetChildrenRequest {
        path: "/o".into(),
        watch: true,
    }))
    .await;
    ok("set 3", writer.set_data("/o", b"3", None)).await;
    assert_no_event(&mut raw).await;
    raw.call_ok(&get_data("/o", true)).await;
    ok("create child", writer.create("/o/c", b"", &persistent())).await;
    assert_no_event_but(&mut raw, &[event(EventType::NodeChildrenChanged, "/o")]).await;
    ok("set 4", writer.set_data("/o", b"4", None)).await;
    assert_no_event_but(&mut raw, &[event(EventType::NodeDataChanged, "/o")]).await;

    // A node watched both ways hears of its deletion once (WatchManager: one notification per
    // watcher).
    ok("delete child", writer.delete("/o/c", None)).await;
    raw.call_ok(&get_data("/o", true)).await;
    raw.call_ok(&Request::GetChildren(arbor_proto::GetChildrenRequest {
        path: "/o".into(),
        watch: true,
    }))
    .await;
    ok("delete /o", writer.delete("/o", None)).await;
    assert_no_event_but(&mut raw, &[event(EventType::NodeDeleted, "/o")]).await;
}

/// Asserts the events received by the end of a fresh round trip are exactly `expected`.
async fn assert_no_event_but(raw: &mut RawConnection, expected: &[WatcherEvent]) {
    raw.call_ok(&Request::Exists(arbor_proto::ExistsRequest {
        path: "/".into(),
        watch: false,
    }))
    .await;
    let received: Vec<WatcherEvent> = raw.events.drain(..).map(|(_, event)| event).collect();
    assert_eq!(received, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_watches_stay_and_see_the_node_and_its_children() {
    let server = Server::start();
    let watcher = connect(&server.address()).await;
    let writer = connect(&server.address()).await;
    let mut persistent_watch = ok(
        "addWatch persistent",
        watcher.watch("/p", zk::AddWatchMode::Persistent),
    )
    .await;
    ok("create /p", writer.create("/p", b"", &persistent())).await;
    ok("set /p", writer.set_data("/p", b"1", None)).await;
    ok("create /p/c", writer.create("/p/c", b"", &persistent())).await;
    ok("create /p/c/g", writer.create("/p/c/g", b"", &persistent())).await;
    ok("set /p/c", writer.set_data("/p/c", b"x", None)).await;
    ok("set /p", writer.set_data("/p", b"2", None)).await;
    ok("delete /p/c/g", writer.delete("/p/c/g", None)).await;
    ok("delete /p/c", writer.delete("/p/c", None)).await;
    ok("delete /p", writer.delete("/p", None)).await;
    ok("create /p", writer.create("/p", b"", &persistent())).await;
    // Grandchildren and a child's data are not the node's business; everything else is, and
    // the watch survives each event and even the node's deletion.
    let expected = [
        (zk::EventType::NodeCreated, "/p"),
        (zk::EventType::NodeDataChanged, "/p"),
        (zk::EventType::NodeChildrenChanged, "/p"),
        (zk::EventType::NodeDataChanged, "/p"),
        (zk::EventType::NodeChildrenChanged, "/p"),
        (zk::EventType::NodeDeleted, "/p"),
        (zk::EventType::NodeCreated, "/p"),
    ];
    for (event_type, path) in expected {
        let fired = within("persistent watch", persistent_watch.changed()).await;
        assert_eq!((fired.event_type, fired.path.as_str()), (event_type, path));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_watches_see_every_descendant_but_no_child_lists() {
    let server = Server::start();
    let watcher = connect(&server.address()).await;
    let writer = connect(&server.address()).await;
    ok("create /r", writer.create("/r", b"", &persistent())).await;
    let mut recursive = ok(
        "addWatch recursive",
        watcher.watch("/r", zk::AddWatchMode::PersistentRecursive),
    )
    .await;
    ok("create /r/a", writer.create("/r/a", b"", &persistent())).await;
    ok("create /r/a/b", writer.create("/r/a/b", b"", &persistent())).await;
    ok("set /r/a/b", writer.set_data("/r/a/b", b"x", None)).await;
    ok("create /rx", writer.create("/rx", b"", &persistent())).await;
    ok("delete /r/a/b", writer.delete("/r/a/b", None)).await;
    ok("set /r", writer.set_data("/r", b"x", None)).await;
    let expected = [
        (zk::EventType::NodeCreated, "/r/a"),
        (zk::EventType::NodeCreated, "/r/a/b"),
        (zk::EventType::NodeDataChanged, "/r/a/b"),
        (zk::EventType::NodeDeleted, "/r/a/b"),
        (zk::EventType::NodeDataChanged, "/r"),
    ];
    for (event_type, path) in expected {
        let fired = within("recursive watch", recursive.changed()).await;
        assert_eq!((fired.event_type, fired.path.as_str()), (event_type, path));
    }

    // Raw, to see that the server itself sends no NodeChildrenChanged for a recursive watch.
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    raw.call_ok(&Request::AddWatch(AddWatchRequest {
        path: "/r".into(),
        mode: 1,
    }))
    .await;
    ok("create /r/z", writer.create("/r/z", b"", &persistent())).await;
    assert_no_event_but(&mut raw, &[event(EventType::NodeCreated, "/r/z")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_are_checked_and_removed_by_type() {
    let server = Server::start();
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    raw.call_ok(&create("/x")).await;
    let check = |path: &str, watcher_type: i32| {
        Request::CheckWatches(CheckWatchesRequest {
            path: path.into(),
            watcher_type,
        })
    };
    let remove = |path: &str, watcher_type: i32| {
        Request::RemoveWatches(RemoveWatchesRequest {
            path: path.into(),
            watcher_type,
        })
    };
    let (children, data, any, persistent_type, recursive) = (1, 2, 3, 4, 5);
    let no_watcher = ErrorCode::NoWatcher.code();

    raw.call_ok(&get_data("/x", true)).await;
    assert_eq!(raw.call_code(&check("/x", data)).await, 0);
    assert_eq!(raw.call_code(&check("/x", any)).await, 0);
    assert_eq!(raw.call_code(&check("/x", children)).await, no_watcher);
    assert_eq!(raw.call_code(&check("/y", data)).await, no_watcher);
    assert_eq!(raw.call_code(&remove("/x", children)).await, no_watcher);
    assert_eq!(raw.call_code(&remove("/x", data)).await, 0);
    assert_eq!(raw.call_code(&check("/x", data)).await, no_watcher);
    assert_eq!(raw.call_code(&remove("/x", data)).await, no_watcher);
    // A removed watch does not fire.
    raw.call_ok(&set_data("/x", b"changed")).await;
    assert_no_event(&mut raw).await;

    // Persistent watches, and "any".
    for (mode, watcher_type) in [(0, persistent_type), (1, recursive)] {
        raw.call_ok(&Request::AddWatch(AddWatchRequest {
            path: "/x".into(),
            mode,
        }))
        .await;
        assert_eq!(raw.call_code(&check("/x", watcher_type)).await, 0);
    }
    raw.call_ok(&Request::GetChildren(arbor_proto::GetChildrenRequest {
        path: "/x".into(),
        watch: true,
    }))
    .await;
    assert_eq!(raw.call_code(&check("/x", children)).await, 0);
    assert_eq!(raw.call_code(&remove("/x", any)).await, 0);
    for watcher_type in [children, data, any, persistent_type, recursive] {
        assert_eq!(
            raw.call_code(&check("/x", watcher_type)).await,
            no_watcher,
            "type {watcher_type}"
        );
    }
    raw.call_ok(&set_data("/x", b"again")).await;
    raw.call_ok(&create("/x/child")).await;
    assert_no_event(&mut raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_reaches_the_client_before_the_reply_to_any_later_request() {
    let server = Server::start();
    let writer = connect(&server.address()).await;
    ok("create /o", writer.create("/o", b"old", &persistent())).await;
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;

    // Another session changes the node: by the time that write is acknowledged, the event is
    // on its way to us, ahead of the reply to our next read ("a client sees the watch event
    // before it sees the new data").
    raw.call_ok(&get_data("/o", true)).await;
    let stat = ok("set /o", writer.set_data("/o", b"new", None)).await;
    let xid = raw.send(&get_data("/o", false)).await;
    let first = raw.next_message().await.expect("a message");
    assert_eq!(
        first,
        Message::Event {
            zxid: stat.mzxid,
            event: event(EventType::NodeDataChanged, "/o"),
        }
    );
    let reply = raw.reply_to(xid).await;
    let (data, read) = reply.get_data();
    assert_eq!(
        (data.as_deref(), read.mzxid),
        (Some(&b"new"[..]), stat.mzxid)
    );

    // Our own write, pipelined with a read: event, then the write's reply, then the read's.
    raw.call_ok(&get_data("/o", true)).await;
    let write = raw.send(&set_data("/o", b"mine")).await;
    let read = raw.send(&get_data("/o", false)).await;
    let Some(Message::Event { zxid, event: fired }) = raw.next_message().await else {
        panic!("expected the event first");
    };
    assert_eq!(fired, event(EventType::NodeDataChanged, "/o"));
    let Some(Message::Reply(write_reply)) = raw.next_message().await else {
        panic!("expected the write's reply second");
    };
    assert_eq!(
        (write_reply.header.xid, write_reply.header.zxid),
        (write, zxid)
    );
    let Some(Message::Reply(read_reply)) = raw.next_message().await else {
        panic!("expected the read's reply third");
    };
    assert_eq!(read_reply.header.xid, read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_about_nodes_the_watcher_may_not_read_are_not_delivered() {
    let server = Server::start();
    let watcher = connect(&server.address()).await;
    let alice = connect_with(
        connector().with_auth("digest", b"alice:secret"),
        &server.address(),
    )
    .await;
    ok("create /area", alice.create("/area", b"", &persistent())).await;
    let mut recursive = ok(
        "addWatch recursive",
        watcher.watch("/area", zk::AddWatchMode::PersistentRecursive),
    )
    .await;
    let private = [zk::Acl::new(
        zk::Permission::ALL,
        zk::AuthId::new("digest", &digest_id("alice", "secret")),
    )];
    let private = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&private));
    ok("create secret", alice.create("/area/secret", b"", &private)).await;
    ok("set secret", alice.set_data("/area/secret", b"s", None)).await;
    ok(
        "create public",
        alice.create("/area/public", b"", &persistent()),
    )
    .await;
    // ZooKeeper 3.9 checks READ on the node before delivering (NIOServerCnxn.process, "filtered
    // by ACL"): the watcher hears of the public node only.
    let fired = within("recursive watch", recursive.changed()).await;
    assert_eq!(
        (fired.event_type, fired.path.as_str()),
        (zk::EventType::NodeCreated, "/area/public")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_survive_a_restart_and_fire_for_what_changed_meanwhile() {
    let mut server = Server::start();
    let proxy = Proxy::start(server.socket_address()).await;
    let setup = connect(&server.address()).await;
    for path in [
        "/w",
        "/w/data",
        "/w/kids",
        "/w/doomed",
        "/w/same",
        "/w/same-kids",
    ] {
        ok("create", setup.create(path, b"0", &persistent())).await;
    }
    drop(setup);

    let client = connect(&proxy.address()).await;
    let session = client.session_id();
    let mut state = client.state_watcher();
    let (_, _, data) = ok("getData watch", client.get_and_watch_data("/w/data")).await;
    let (_, absent) = ok("exists watch", client.check_and_watch_stat("/w/absent")).await;
    let (_, kids) = ok("ls watch", client.list_and_watch_children("/w/kids")).await;
    let (_, _, doomed) = ok("getData watch", client.get_and_watch_data("/w/doomed")).await;
    let (_, _, same) = ok("getData watch", client.get_and_watch_data("/w/same")).await;
    let (_, same_kids) = ok("ls watch", client.list_and_watch_children("/w/same-kids")).await;

    // Cut the client off, restart the server, change things while the client is away.
    proxy.block();
    wait_for_state(&mut state, zk::SessionState::Disconnected).await;
    assert!(server.terminate().success(), "graceful stop");
    server.restart();
    let writer = connect(&server.address()).await;
    ok("set /w/data", writer.set_data("/w/data", b"1", None)).await;
    ok(
        "create /w/absent",
        writer.create("/w/absent", b"", &persistent()),
    )
    .await;
    ok(
        "create /w/kids/k",
        writer.create("/w/kids/k", b"", &persistent()),
    )
    .await;
    ok("delete /w/doomed", writer.delete("/w/doomed", None)).await;

    // Back in: the client resumes its session and re-registers its watches (setWatches with
    // its last zxid); those whose node changed fire at once.
    proxy.unblock();
    wait_for_state(&mut state, zk::SessionState::SyncConnected).await;
    assert_eq!(
        client.session_id(),
        session,
        "same session after the restart"
    );
    for (watch, event_type, path) in [
        (data, zk::EventType::NodeDataChanged, "/w/data"),
        (absent, zk::EventType::NodeCreated, "/w/absent"),
        (kids, zk::EventType::NodeChildrenChanged, "/w/kids"),
        (doomed, zk::EventType::NodeDeleted, "/w/doomed"),
    ] {
        let fired = within(path, watch.changed()).await;
        assert_eq!((fired.event_type, fired.path.as_str()), (event_type, path));
    }
    // The unchanged ones were re-registered and fire on the next change.
    ok("set /w/same", writer.set_data("/w/same", b"1", None)).await;
    ok(
        "create /w/same-kids/k",
        writer.create("/w/same-kids/k", b"", &persistent()),
    )
    .await;
    let fired = within("/w/same", same.changed()).await;
    assert_eq!(
        (fired.event_type, fired.path.as_str()),
        (zk::EventType::NodeDataChanged, "/w/same")
    );
    let fired = within("/w/same-kids", same_kids.changed()).await;
    assert_eq!(
        (fired.event_type, fired.path.as_str()),
        (zk::EventType::NodeChildrenChanged, "/w/same-kids")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_watches2_restores_persistent_watches_on_a_resumed_session() {
    let server = Server::start();
    let writer = connect(&server.address()).await;
    for path in ["/s", "/s/data", "/s/tree", "/s/gone"] {
        ok("create", writer.create(path, b"", &persistent())).await;
    }
    let (mut first, session) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let last_seen = first.call(&get_data("/s/data", false)).await.header.zxid;
    drop(first);

    // While no connection holds the session: changes that one-shot watches must learn of.
    ok("set /s/data", writer.set_data("/s/data", b"x", None)).await;
    ok("delete /s/gone", writer.delete("/s/gone", None)).await;

    let mut resumed = RawConnection::open(server.socket_address()).await;
    let response = resumed
        .handshake(&resume_request(
            session.session_id,
            &session.password,
            last_seen,
        ))
        .await
        .expect("an answer");
    assert_eq!(response.session_id, session.session_id);
    resumed
        .send_with_xid(
            XID_SET_WATCHES,
            &Request::SetWatches2(SetWatches2 {
                relative_zxid: last_seen,
                data_watches: vec!["/s/data".into(), "/s/gone".into()],
                exist_watches: vec!["/s/new".into()],
                child_watches: vec!["/s".into()],
                persistent_watches: vec!["/s/tree".into()],
                persistent_recursive_watches: vec!["/s/tree".into()],
            }),
        )
        .await;
    let reply = resumed.reply_to(XID_SET_WATCHES).await;
    assert_eq!(reply.err(), 0);
    let mut fired: Vec<WatcherEvent> = resumed.events.drain(..).map(|(_, e)| e).collect();
    fired.sort_by(|a, b| a.path.cmp(&b.path));
    // DataTree.setWatches: deleted → NodeDeleted, changed after relativeZxid →
    // NodeDataChanged / NodeChildrenChanged; the rest are registered.
    assert_eq!(
        fired,
        [
            event(EventType::NodeChildrenChanged, "/s"),
            event(EventType::NodeDataChanged, "/s/data"),
            event(EventType::NodeDeleted, "/s/gone"),
        ]
    );
    ok("create /s/new", writer.create("/s/new", b"", &persistent())).await;
    ok(
        "create /s/tree/a",
        writer.create("/s/tree/a", b"", &persistent()),
    )
    .await;
    ok("set /s/tree", writer.set_data("/s/tree", b"t", None)).await;
    // /s/new fires the exist watch. /s/tree/a fires the recursive watch (NodeCreated) and the
    // persistent one (NodeChildrenChanged), in an order ZooKeeper does not promise within one
    // change. The data change of /s/tree is one event although two watches match (a watcher
    // is notified once per change).
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(resumed.next_event().await.1);
    }
    assert_eq!(seen[0], event(EventType::NodeCreated, "/s/new"));
    let mut middle = seen[1..3].to_vec();
    middle.sort_by_key(|e| e.event_type);
    assert_eq!(
        middle,
        [
            event(EventType::NodeCreated, "/s/tree/a"),
            event(EventType::NodeChildrenChanged, "/s/tree"),
        ]
    );
    assert_eq!(seen[3], event(EventType::NodeDataChanged, "/s/tree"));
    assert_no_event(&mut resumed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_set_watches_fires_on_changes_after_the_relative_zxid() {
    let server = Server::start();
    let writer = connect(&server.address()).await;
    ok("create /v", writer.create("/v", b"", &persistent())).await;
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let relative = raw.call(&get_data("/v", false)).await.header.zxid;
    ok("set /v", writer.set_data("/v", b"1", None)).await;
    raw.send_with_xid(
        XID_SET_WATCHES,
        &Request::SetWatches(SetWatches {
            relative_zxid: relative,
            data_watches: vec!["/v".into()],
            exist_watches: vec!["/v".into()],
            child_watches: vec!["/v".into()],
        }),
    )
    .await;
    assert_eq!(raw.reply_to(XID_SET_WATCHES).await.err(), 0);
    let fired: Vec<WatcherEvent> = raw.events.drain(..).map(|(_, e)| e).collect();
    // Data changed after relative: NodeDataChanged; the exist watch on a present node:
    // NodeCreated; the child list did not change: the child watch is registered.
    assert_eq!(
        fired,
        [
            event(EventType::NodeDataChanged, "/v"),
            event(EventType::NodeCreated, "/v"),
        ]
    );
    ok("create /v/c", writer.create("/v/c", b"", &persistent())).await;
    assert_eq!(
        raw.next_event().await.1,
        event(EventType::NodeChildrenChanged, "/v")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fired_by_set_watches_carry_no_zxid() {
    let server = Server::start();
    let writer = connect(&server.address()).await;
    ok("create /z", writer.create("/z", b"", &persistent())).await;
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    ok("set /z", writer.set_data("/z", b"1", None)).await;
    raw.send_with_xid(
        XID_SET_WATCHES,
        &Request::SetWatches(SetWatches {
            relative_zxid: 0,
            data_watches: vec!["/z".into()],
            exist_watches: Vec::new(),
            child_watches: Vec::new(),
        }),
    )
    .await;
    assert_eq!(raw.reply_to(XID_SET_WATCHES).await.err(), 0);
    // DataTree.setWatches builds the event without a zxid: NIOServerCnxn.process sends
    // WatchedEvent.NO_ZXID (−1) in the header.
    let (zxid, fired) = raw.events.pop_front().expect("an event");
    assert_eq!(fired, event(EventType::NodeDataChanged, "/z"));
    assert_eq!(zxid, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_fires_each_watch_with_its_one_zxid_and_a_failed_multi_none() {
    let server = Server::start();
    let writer = connect(&server.address()).await;
    for path in ["/a", "/b"] {
        ok("create", writer.create(path, b"", &persistent())).await;
    }
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    for path in ["/a", "/b"] {
        raw.call_ok(&get_data(path, true)).await;
    }
    raw.call_ok(&Request::GetChildren(arbor_proto::GetChildrenRequest {
        path: "/a".into(),
        watch: true,
    }))
    .await;

    // A failed multi changes nothing and fires nothing.
    let mut failing = writer.new_multi_writer();
    failing.add_set_data("/a", b"x", None).expect("add");
    failing.add_check_version("/b", 7).expect("add");
    let error = support::fails("failing multi", failing.commit()).await;
    assert!(
        matches!(
            error,
            zk::MultiWriteError::OperationFailed {
                index: 1,
                source: zk::Error::BadVersion
            }
        ),
        "{error:?}"
    );
    assert_no_event(&mut raw).await;

    let mut multi = writer.new_multi_writer();
    multi.add_set_data("/a", b"1", None).expect("add");
    multi.add_create("/a/c", b"", &persistent()).expect("add");
    multi.add_delete("/b", None).expect("add");
    let results = ok("multi", multi.commit()).await;
    let zk::MultiWriteResult::SetData { stat } = &results[0] else {
        panic!("{results:?}");
    };
    let zxid = stat.mzxid;
    raw.call_ok(&Request::Exists(arbor_proto::ExistsRequest {
        path: "/".into(),
        watch: false,
    }))
    .await;
    let mut fired: Vec<(i64, WatcherEvent)> = raw.events.drain(..).collect();
    fired.sort_by(|a, b| {
        a.1.path
            .cmp(&b.1.path)
            .then(a.1.event_type.cmp(&b.1.event_type))
    });
    assert_eq!(
        fired,
        [
            (zxid, event(EventType::NodeDataChanged, "/a")),
            (zxid, event(EventType::NodeChildrenChanged, "/a")),
            (zxid, event(EventType::NodeDeleted, "/b")),
        ]
    );
}
