//! `multi` and `multiRead` on a real `arbor server`: one zxid for every operation, the
//! per-operation results of a failing multi (0 before the failure, its code, then
//! RuntimeInconsistency), operations that see the earlier ones of the same multi, containers
//! and TTL nodes created inside one, and multiRead's per-read results.
//!
//! Expected behaviour is ZooKeeper 3.9.4's (`PrepRequestProcessor` multi,
//! `FinalRequestProcessor`, which does not throw for a failed multi).

mod support;

use arbor_proto::{
    Acl as RawAcl, CheckVersionRequest, CreateRequest, DeleteRequest, ErrorCode, MultiOp,
    MultiRequest, OpCode, OpResult, Request, Response, SetDataRequest,
};
use bytes::Bytes;
use support::raw::{RawConnection, data};
use support::{Server, ServerOptions, connect, created, fails, mode, ok, persistent, within};
use zookeeper_client as zk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_applies_everything_at_one_zxid() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /m", client.create("/m", b"", &persistent())).await;
    let mut writer = client.new_multi_writer();
    writer
        .add_create("/m/a", b"a", &persistent())
        .expect("add create");
    writer
        .add_create("/m/s-", b"", &mode(zk::CreateMode::PersistentSequential))
        .expect("add create");
    writer
        .add_set_data("/m", b"parent", Some(0))
        .expect("add set");
    writer.add_check_version("/m", 1).expect("add check");
    writer
        .add_create("/m/b", b"b", &persistent())
        .expect("add create");
    writer.add_delete("/m/b", Some(0)).expect("add delete");
    let results = ok("multi", writer.commit()).await;
    assert_eq!(results.len(), 6, "{results:?}");
    let zk::MultiWriteResult::Create { path, stat: a } = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(path, "/m/a");
    let zk::MultiWriteResult::Create { path, stat: s } = &results[1] else {
        panic!("{results:?}")
    };
    assert_eq!(path, "/m/s-0000000001");
    let zk::MultiWriteResult::SetData { stat: m } = &results[2] else {
        panic!("{results:?}")
    };
    assert_eq!(results[3], zk::MultiWriteResult::Check);
    assert!(matches!(results[4], zk::MultiWriteResult::Create { .. }));
    assert_eq!(results[5], zk::MultiWriteResult::Delete);
    // One transaction: one zxid for every operation.
    assert_eq!(a.czxid, s.czxid);
    assert_eq!(a.czxid, m.mzxid);
    assert_eq!(*a, created(a.czxid, a.ctime, 1, 0));
    assert_eq!(m.version, 1);
    // The setData result shows /m as it was at that point of the transaction (two children
    // created); afterwards a third was created and deleted.
    assert_eq!((m.num_children, m.cversion), (2, 2));
    let parent = ok("exists /m", client.check_stat("/m")).await.expect("/m");
    assert_eq!(parent, zk::Stat { cversion: 4, ..*m });
    assert_eq!(
        (parent.num_children, parent.cversion, parent.pzxid),
        (2, 4, a.czxid)
    );
    assert_eq!(ok("exists /m/b", client.check_stat("/m/b")).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_multi_reports_every_result_and_changes_nothing() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /f", client.create("/f", b"v", &persistent())).await;
    let before = ok("exists /f", client.check_stat("/f")).await;

    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let multi = Request::Multi(MultiRequest {
        ops: vec![
            MultiOp::Create(CreateRequest {
                path: "/f/new".into(),
                data: data(Bytes::new()),
                acl: RawAcl::open_unsafe(),
                flags: 0,
            }),
            MultiOp::SetData(SetDataRequest {
                path: "/f".into(),
                data: data(Bytes::from_static(b"w")),
                version: -1,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/f".into(),
                version: 0,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/nope".into(),
                version: -1,
            }),
        ],
    });
    // The check sees the setData before it (version 1 by then) and fails: the ops before it
    // report 0, the failing one its code, the ones after RuntimeInconsistency; the reply header
    // itself carries 0 (FinalRequestProcessor does not throw for multi).
    let reply = raw.call(&multi).await;
    assert_eq!(reply.err(), 0, "{reply:?}");
    let Response::Multi(response) = reply.decode(OpCode::Multi) else {
        panic!("{reply:?}");
    };
    assert_eq!(
        response.results,
        [
            OpResult::Error { err: 0 },
            OpResult::Error { err: 0 },
            OpResult::Error {
                err: ErrorCode::BadVersion.code()
            },
            OpResult::Error {
                err: ErrorCode::RuntimeInconsistency.code()
            },
        ]
    );
    assert_eq!(ok("exists /f", client.check_stat("/f")).await, before);
    assert_eq!(ok("exists /f/new", client.check_stat("/f/new")).await, None);

    // The same through the client library: the index of the failing operation.
    let mut writer = client.new_multi_writer();
    writer
        .add_create("/f/new", b"", &persistent())
        .expect("add");
    writer.add_delete("/nope", None).expect("add");
    let error = fails("failing multi", writer.commit()).await;
    assert_eq!(
        error,
        zk::MultiWriteError::OperationFailed {
            index: 1,
            source: zk::Error::NoNode
        }
    );
    assert_eq!(ok("exists /f/new", client.check_stat("/f/new")).await, None);

    // An empty multi succeeds with no results.
    let reply = raw
        .call(&Request::Multi(MultiRequest { ops: Vec::new() }))
        .await;
    assert_eq!(reply.err(), 0);
    assert_eq!(
        reply.decode(OpCode::Multi),
        Response::Multi(arbor_proto::MultiResponse {
            results: Vec::new()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_read_answers_each_read() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /r", client.create("/r", b"data", &persistent())).await;
    ok("create /r/x", client.create("/r/x", b"", &persistent())).await;
    let stat = ok("exists /r", client.check_stat("/r")).await.expect("/r");
    let mut reader = client.new_multi_reader();
    reader.add_get_data("/r").expect("add");
    reader.add_get_children("/r").expect("add");
    reader.add_get_data("/missing").expect("add");
    reader.add_get_children("/missing").expect("add");
    let results = ok("multiRead", reader.commit()).await;
    assert_eq!(results.len(), 4);
    match &results[0] {
        zk::MultiReadResult::Data { data, stat: read } => {
            assert_eq!((data.as_slice(), *read), (&b"data"[..], stat));
        }
        other => panic!("{other:?}"),
    }
    match &results[1] {
        zk::MultiReadResult::Children { children } => assert_eq!(children, &["x"]),
        other => panic!("{other:?}"),
    }
    for result in &results[2..] {
        assert!(
            matches!(
                result,
                zk::MultiReadResult::Error {
                    err: zk::Error::NoNode
                }
            ),
            "{result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_creates_containers_and_ttl_nodes() {
    let server =
        Server::start_with(ServerOptions::default().set("container_check_interval_ms", 50));
    let client = connect(&server.address()).await;
    let mut writer = client.new_multi_writer();
    writer
        .add_create("/mc", b"", &mode(zk::CreateMode::Container))
        .expect("add");
    writer.add_create("/mc/x", b"", &persistent()).expect("add");
    writer
        .add_create(
            "/mt",
            b"",
            &mode(zk::CreateMode::Persistent).with_ttl(std::time::Duration::from_millis(200)),
        )
        .expect("add");
    let results = ok("multi", writer.commit()).await;
    let paths: Vec<&str> = results
        .iter()
        .map(|result| match result {
            zk::MultiWriteResult::Create { path, .. } => path.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(paths, ["/mc", "/mc/x", "/mt"]);
    // They are a real container and a real TTL node: the server removes them.
    ok("delete /mc/x", client.delete("/mc/x", None)).await;
    for path in ["/mc", "/mt"] {
        let (stat, removed) = ok("watch", client.check_and_watch_stat(path)).await;
        if stat.is_some() {
            let event = within("removal", removed.changed()).await;
            assert_eq!(event.event_type, zk::EventType::NodeDeleted, "{path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_sees_its_own_earlier_operations() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /r", client.create("/r", b"old", &persistent())).await;
    ok("create /q", client.create("/q", b"", &persistent())).await;
    let before = ok("exists /", client.check_stat("/")).await.expect("root");

    // Delete and re-create the same node; create, check and delete another; an ephemeral.
    let mut writer = client.new_multi_writer();
    writer.add_delete("/r", Some(0)).expect("add");
    writer.add_create("/r", b"new", &persistent()).expect("add");
    writer.add_create("/t", b"", &persistent()).expect("add");
    writer.add_check_version("/t", 0).expect("add");
    writer.add_set_data("/t", b"t", Some(0)).expect("add");
    writer.add_delete("/t", Some(1)).expect("add");
    writer
        .add_create("/q/e", b"", &mode(zk::CreateMode::Ephemeral))
        .expect("add");
    let results = ok("multi", writer.commit()).await;
    assert_eq!(results.len(), 7, "{results:?}");
    let zk::MultiWriteResult::Create {
        stat: recreated, ..
    } = &results[1]
    else {
        panic!("{results:?}");
    };
    let zk::MultiWriteResult::Create {
        stat: ephemeral, ..
    } = &results[6]
    else {
        panic!("{results:?}");
    };
    assert_eq!(
        *recreated,
        created(recreated.czxid, recreated.ctime, 3, 0),
        "a new node, not the old one"
    );
    assert_eq!(ephemeral.ephemeral_owner, client.session_id().0);
    assert_eq!(ephemeral.czxid, recreated.czxid);
    let (value, stat) = ok("get /r", client.get_data("/r")).await;
    assert_eq!((value.as_slice(), stat), (&b"new"[..], *recreated));
    assert_eq!(ok("exists /t", client.check_stat("/t")).await, None);
    // The root saw /r deleted and created, /t created and deleted: four child changes.
    let root = ok("exists /", client.check_stat("/")).await.expect("root");
    assert_eq!(
        (root.cversion, root.num_children, root.pzxid),
        (before.cversion + 4, before.num_children, recreated.czxid)
    );
}
