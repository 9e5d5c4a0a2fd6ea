//! SessionMoved: a session belongs to the server its client last connected to. A write that
//! arrives on a connection the client has left behind (its TCP connection to the old server is
//! still open, or the request was delayed) is refused as SessionMoved on every replica (it is
//! not applied) and, as ZooKeeper 3.9 does, that connection is closed without a reply (the
//! client sees ConnectionLoss and retries); the connection the client moved to writes as before. With a
//! single server, a reconnect closes the older connection of the session, so its later
//! requests are never served.

mod support;

use std::collections::BTreeSet;

use arbor_proto::{CreateRequest, ErrorCode, ExistsRequest, Request};
use support::cluster::{Cluster, children_after_sync};
use support::raw::{RawConnection, data, resume_request};
use support::{SESSION_TIMEOUT, Server};

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: data(b"x".to_vec()),
        acl: arbor_proto::Acl::open_unsafe(),
        flags: 0,
    })
}

/// Reconnects the session of `response` on a new raw connection to `address`, as a client
/// that has seen `zxid` does, and checks it got the same session back.
async fn resume(
    address: std::net::SocketAddr,
    session: &arbor_proto::ConnectResponse,
    zxid: i64,
) -> RawConnection {
    let mut connection = RawConnection::open(address).await;
    let answer = connection
        .handshake(&resume_request(session.session_id, &session.password, zxid))
        .await
        .expect("the server answers the reconnect");
    assert_eq!(
        (answer.session_id, &answer.password),
        (session.session_id, &session.password),
        "the reconnect to {address} was refused: {answer:?}"
    );
    connection
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_the_connection_a_session_left_is_session_moved_and_not_applied() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_for_leader(&cluster.ids()).await;
    let followers: Vec<u8> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    // Follower to follower (both forward their writes), to the leader (whose own proposals
    // are checked too), and back to the first follower (the leader's leftover is refused).
    let route = [followers[0], followers[1], leader, followers[0]];
    let timeout_ms = SESSION_TIMEOUT.as_millis() as i32;
    let (mut current, session) =
        RawConnection::new_session(cluster.socket_address(route[0]), timeout_ms).await;
    let mut zxid = current.call(&create("/via-0")).await.header.zxid;
    let (mut applied, mut refused) = (BTreeSet::from(["via-0".to_owned()]), Vec::new());

    for (step, pair) in route.windows(2).enumerate() {
        let to = pair[1];
        let mut moved = resume(cluster.socket_address(to), &session, zxid).await;
        // The client's old connection to `pair[0]` is still open; writes sent on it now come
        // after the move in the log. Two, pipelined: the first is refused as SessionMoved and
        // the connection is closed without an answer to either.
        let late = [format!("late-{step}"), format!("late-{step}-pipelined")];
        current.send(&create(&format!("/{}", late[0]))).await;
        current.send(&create(&format!("/{}", late[1]))).await;
        current.expect_closed_without_reply().await;
        refused.extend(late);

        let via = format!("via-{}", step + 1);
        let reply = moved.call(&create(&format!("/{via}"))).await;
        assert_eq!(
            reply.err(),
            0,
            "a write on node {to}, which now has the session"
        );
        zxid = reply.header.zxid;
        applied.insert(via);
        current = moved;
    }

    // No server ever applied a refused write; every accepted one is everywhere.
    for id in cluster.ids() {
        let children = children_after_sync(&cluster, id, "/").await;
        for late in &refused {
            assert!(
                !children.contains(late),
                "node {id} has /{late}, a write refused as SessionMoved"
            );
        }
        assert!(
            applied.is_subset(&children),
            "node {id} lacks some of {applied:?}: {children:?}"
        );
    }
    // The session lives on where it was last moved to.
    let exists = Request::Exists(ExistsRequest {
        path: "/via-0".into(),
        watch: false,
    });
    assert_eq!(current.call(&exists).await.err(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_to_the_same_server_closes_the_older_connection_of_the_session() {
    let server = Server::start();
    let timeout_ms = SESSION_TIMEOUT.as_millis() as i32;
    let (mut first, session) =
        RawConnection::new_session(server.socket_address(), timeout_ms).await;
    let zxid = first.call(&create("/before")).await.header.zxid;
    let mut second = resume(server.socket_address(), &session, zxid).await;

    // A write on the older connection after the reconnect: the server closed that connection
    // when it answered the reconnect, so the write is never served (the send itself may fail
    // on the closed socket).
    let mut payload = Vec::new();
    create("/late").encode_with_header(100, &mut payload);
    let _ = first.send_frame(&payload).await;
    first.expect_closed_without_reply().await;

    assert_eq!(second.call(&create("/after")).await.err(), 0);
    let exists = |path: &str| {
        Request::Exists(ExistsRequest {
            path: path.into(),
            watch: false,
        })
    };
    assert_eq!(
        ErrorCode::from_i32(second.call(&exists("/late")).await.err()),
        Some(ErrorCode::NoNode),
        "a write on the connection the session left was applied"
    );
    for path in ["/before", "/after"] {
        assert_eq!(second.call(&exists(path)).await.err(), 0, "{path}");
    }
}
