//! A 3-node cluster of real `arbor server` processes, no faults: any server takes writes and
//! reads; a client on a follower reads its own writes in order and, after `sync`, every write
//! completed elsewhere; a session moves to another server with its ephemerals; a closed
//! session's ephemerals vanish everywhere; watches fire on every server; a silent session is
//! expired once, by the leader, with its ephemerals and watches everywhere.

mod support;

use std::time::{Duration, Instant};

use arbor_proto::{CreateRequest, GetDataRequest, Request, SetDataRequest, SyncRequest};
use bytes::Bytes;
use support::cluster::{Cluster, ClusterOptions};
use support::raw::{RawConnection, data, resume_request};
use support::{connect_with, connector, mode, ok, persistent, within};
use zookeeper_client as zk;

fn followers(cluster: &Cluster, leader: u8) -> Vec<u8> {
    cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_server_accepts_writes_and_every_server_reads_them() {
    let cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    let setup = cluster.connect_to(ids[0]).await;
    ok("create /any", setup.create("/any", b"", &persistent())).await;
    for &id in &ids {
        let client = cluster.connect_to(id).await;
        let path = format!("/any/{id}");
        ok(
            &format!("create {path} on node {id}"),
            client.create(&path, id.to_string().as_bytes(), &persistent()),
        )
        .await;
        // The writer reads its own write at once, on the server it wrote through.
        let (value, _) = ok("read back", client.get_data(&path)).await;
        assert_eq!(value, id.to_string().as_bytes());
    }
    for &reader in &ids {
        let client = cluster.connect_to(reader).await;
        ok("sync", client.sync("/any")).await;
        for &writer in &ids {
            let (value, stat) = ok(
                &format!("node {reader} reads node {writer}'s write"),
                client.get_data(&format!("/any/{writer}")),
            )
            .await;
            assert_eq!(value, writer.to_string().as_bytes());
            assert_eq!(stat.version, 0);
        }
        let children = ok("children", client.list_children("/any")).await;
        assert_eq!(children.len(), ids.len(), "node {reader}: {children:?}");
    }
    // Every server applied the same history: same zxid, same commit index.
    cluster.wait_converged(&ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_a_follower_reads_its_own_pipelined_writes_in_order() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_for_leader(&cluster.ids()).await;
    let follower = followers(&cluster, leader)[0];
    let (mut raw, _) = RawConnection::new_session(cluster.socket_address(follower), 10_000).await;
    let reply = raw
        .call(&Request::Create(CreateRequest {
            path: "/fifo".into(),
            data: data(Bytes::new()),
            acl: arbor_proto::Acl::open_unsafe(),
            flags: 0,
        }))
        .await;
    assert_eq!(reply.err(), 0, "create /fifo: {reply:?}");
    // Everything is sent before any reply is read: each read must still see the writes the
    // session sent before it (they travel to the leader and back; the reads do not).
    const ROUNDS: usize = 25;
    let mut expected = Vec::new();
    for k in 0..ROUNDS {
        let path = format!("/fifo/{k}");
        let create = raw
            .send(&Request::Create(CreateRequest {
                path: path.clone(),
                data: data(Bytes::from(format!("a{k}"))),
                acl: arbor_proto::Acl::open_unsafe(),
                flags: 0,
            }))
            .await;
        let first_read = raw
            .send(&Request::GetData(GetDataRequest {
                path: path.clone(),
                watch: false,
            }))
            .await;
        let set = raw
            .send(&Request::SetData(SetDataRequest {
                path: path.clone(),
                data: data(Bytes::from(format!("b{k}"))),
                version: 0,
            }))
            .await;
        let second_read = raw
            .send(&Request::GetData(GetDataRequest {
                path: path.clone(),
                watch: false,
            }))
            .await;
        expected.push((k, create, first_read, set, second_read));
    }
    let mut last_zxid = 0;
    for (k, create, first_read, set, second_read) in expected {
        let reply = raw.reply_to(create).await;
        assert_eq!(reply.err(), 0, "create /fifo/{k}: {reply:?}");
        assert!(reply.header.zxid > last_zxid, "zxids must grow");
        let (value, stat) = raw.reply_to(first_read).await.get_data();
        assert_eq!(value.as_deref(), Some(format!("a{k}").as_bytes()));
        assert_eq!(stat.version, 0);
        assert_eq!(
            stat.czxid, reply.header.zxid,
            "the read sees exactly the create"
        );
        let reply = raw.reply_to(set).await;
        assert_eq!(reply.err(), 0, "setData /fifo/{k}: {reply:?}");
        last_zxid = reply.header.zxid;
        let (value, stat) = raw.reply_to(second_read).await.get_data();
        assert_eq!(value.as_deref(), Some(format!("b{k}").as_bytes()));
        assert_eq!(stat.version, 1);
        assert_eq!(
            stat.mzxid, last_zxid,
            "the read sees exactly the session's last write"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sync_any_server_reads_every_write_completed_elsewhere() {
    let cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    let mut clients = Vec::new();
    for &id in &ids {
        clients.push((id, cluster.connect_to(id).await));
    }
    ok(
        "create /sync",
        clients[0].1.create("/sync", b"0", &persistent()),
    )
    .await;
    // Every ordered pair of servers, several times: a write acknowledged through `writer`,
    // then sync + read through `reader`, which must see it (or something newer).
    let mut value = 0u32;
    for round in 0..5 {
        for (writer_id, writer) in &clients {
            for (reader_id, reader) in &clients {
                if writer_id == reader_id {
                    continue;
                }
                value += 1;
                ok(
                    "write",
                    writer.set_data("/sync", value.to_string().as_bytes(), None),
                )
                .await;
                ok("sync", reader.sync("/sync")).await;
                let (read, _) = ok("read", reader.get_data("/sync")).await;
                assert_eq!(
                    read,
                    value.to_string().as_bytes(),
                    "round {round}: node {reader_id} after sync missed the write completed \
                     through node {writer_id}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_to_another_server_with_its_ephemerals() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_for_leader(&cluster.ids()).await;
    let others = followers(&cluster, leader);
    let (first, second, third) = (others[0], others[1], leader);
    let setup = cluster.connect_to(third).await;
    ok(
        "create /moving",
        setup.create("/moving", b"", &persistent()),
    )
    .await;

    // Detached: dropping the client closes its connection, not its session.
    let original = connect_with(connector().with_detached(), &cluster.address(first)).await;
    let session = original.session().clone();
    let session_id = original.session_id();
    ok(
        "create ephemeral",
        original.create("/moving/e1", b"1", &mode(zk::CreateMode::Ephemeral)),
    )
    .await;
    drop(original);

    let resumed = connect_with(connector().with_session(session), &cluster.address(second)).await;
    assert_eq!(resumed.session_id(), session_id, "the session was resumed");
    // A new client built from a `SessionInfo` connects with lastZxidSeen 0 (zookeeper-client
    // does not carry the old client's zxid over and documents `sync` after re-establishing a
    // session), so the server cannot hold it back until it has applied the session's writes.
    ok("sync after re-establishing", resumed.sync("/moving")).await;
    let stat = ok("exists", resumed.check_stat("/moving/e1"))
        .await
        .expect("the ephemeral survived the move");
    assert_eq!(stat.ephemeral_owner, session_id.0);
    ok(
        "create a second ephemeral on the new server",
        resumed.create("/moving/e2", b"2", &mode(zk::CreateMode::Ephemeral)),
    )
    .await;
    let ephemerals = ok("getEphemerals", resumed.list_ephemerals("/moving")).await;
    assert_eq!(ephemerals.len(), 2, "{ephemerals:?}");

    // The third server sees both, owned by the session.
    ok("sync", setup.sync("/moving")).await;
    for path in ["/moving/e1", "/moving/e2"] {
        let (_, stat) = ok("read", setup.get_data(path)).await;
        assert_eq!(stat.ephemeral_owner, session_id.0, "{path}");
    }

    // The session outlives more than its timeout on the new server (its touches reach the
    // leader from there).
    let timeout = resumed.session_timeout();
    let deadline = Instant::now() + timeout + timeout / 2;
    while Instant::now() < deadline {
        ok("exists", resumed.check_stat("/moving/e1")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ok("sync", setup.sync("/moving")).await;
    let children = ok("children", setup.list_children("/moving")).await;
    assert_eq!(children.len(), 2, "the moved session expired: {children:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_sessions_ephemerals_vanish_on_every_server_and_fire_watches() {
    let cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    let owner_node = followers(&cluster, leader)[0];
    let owner = cluster.connect_to(owner_node).await;
    ok(
        "create /closing",
        owner.create("/closing", b"", &persistent()),
    )
    .await;
    for k in 0..3 {
        ok(
            "ephemeral",
            owner.create(
                &format!("/closing/e{k}"),
                b"",
                &mode(zk::CreateMode::Ephemeral),
            ),
        )
        .await;
    }
    // A watcher on every server.
    let mut watchers = Vec::new();
    for &id in &ids {
        let client = cluster.connect_to(id).await;
        ok("sync", client.sync("/closing")).await;
        let (_, watcher) = ok("watch e0", client.check_and_watch_stat("/closing/e0")).await;
        watchers.push((id, client, watcher));
    }
    drop(owner); // closes the session
    for (id, client, watcher) in watchers {
        let event = within(&format!("NodeDeleted on node {id}"), watcher.changed()).await;
        assert_eq!(event.event_type, zk::EventType::NodeDeleted, "node {id}");
        assert_eq!(event.path, "/closing/e0");
        let children = ok("children", client.list_children("/closing")).await;
        assert!(children.is_empty(), "node {id} still has {children:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_fire_on_every_server() {
    let cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    let setup = cluster.connect_to(ids[0]).await;
    ok(
        "create /watched",
        setup.create("/watched", b"0", &persistent()),
    )
    .await;
    let mut watchers = Vec::new();
    for &id in &ids {
        let client = cluster.connect_to(id).await;
        ok("sync", client.sync("/watched")).await;
        let (_, _, data_watch) = ok("data watch", client.get_and_watch_data("/watched")).await;
        let (_, _, child_watch) =
            ok("child watch", client.get_and_watch_children("/watched")).await;
        watchers.push((id, client, data_watch, child_watch));
    }
    // One write through the last server fires the watches set on all three.
    let writer = cluster.connect_to(ids[2]).await;
    ok("setData", writer.set_data("/watched", b"1", None)).await;
    ok(
        "create child",
        writer.create("/watched/c", b"", &persistent()),
    )
    .await;
    for (id, client, data_watch, child_watch) in watchers {
        let event = within(&format!("data event on node {id}"), data_watch.changed()).await;
        assert_eq!(
            event.event_type,
            zk::EventType::NodeDataChanged,
            "node {id}"
        );
        assert_eq!(event.path, "/watched");
        let event = within(&format!("child event on node {id}"), child_watch.changed()).await;
        assert_eq!(
            event.event_type,
            zk::EventType::NodeChildrenChanged,
            "node {id}"
        );
        // The event came with the change applied: a read now sees it without a sync.
        let (value, _) = ok("read", client.get_data("/watched")).await;
        assert_eq!(value, b"1", "node {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_session_is_expired_once_by_the_leader_everywhere() {
    // tick_ms 250: negotiated timeouts within [500 ms, 5 s].
    let cluster = Cluster::start_with(ClusterOptions::voters(3).set("tick_ms", 250)).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    let follower = followers(&cluster, leader)[0];
    const TIMEOUT_MS: i32 = 1500;
    let (mut raw, response) =
        RawConnection::new_session(cluster.socket_address(follower), TIMEOUT_MS).await;
    assert_eq!(response.timeout_ms, TIMEOUT_MS);
    let session_id = response.session_id;
    let reply = raw
        .call(&Request::Create2(CreateRequest {
            path: "/expiring".into(),
            data: data(Bytes::new()),
            acl: arbor_proto::Acl::open_unsafe(),
            flags: 1,
        }))
        .await;
    assert_eq!(reply.err(), 0, "create ephemeral: {reply:?}");

    let mut watchers = Vec::new();
    for &id in &ids {
        let client = cluster.connect_to(id).await;
        ok("sync", client.sync("/")).await;
        let (stat, watcher) = ok("watch", client.check_and_watch_stat("/expiring")).await;
        let stat = stat.unwrap_or_else(|| panic!("node {id} does not have the ephemeral"));
        assert_eq!(stat.ephemeral_owner, session_id);
        watchers.push((id, client, watcher));
    }

    // Alive while it pings its follower, for three timeouts: the follower reports the touches
    // to the leader, which alone decides expiry.
    let timeout = Duration::from_millis(TIMEOUT_MS as u64);
    let deadline = Instant::now() + timeout * 3;
    while Instant::now() < deadline {
        raw.ping().await;
        tokio::time::sleep(timeout / 5).await;
    }
    let mut expired_before = Vec::new();
    for (id, client, _) in &watchers {
        ok("sync", client.sync("/")).await;
        let stat = ok("exists", client.check_stat("/expiring")).await;
        assert!(
            stat.is_some(),
            "node {id} lost the ephemeral of a live session"
        );
        expired_before.push(cluster.mntr_ok(*id).await.sessions_expired());
    }

    // Its last word, then silence: the connection closes without a CloseSession.
    let reply = raw
        .call(&Request::Sync(SyncRequest { path: "/".into() }))
        .await;
    assert_eq!(reply.err(), 0, "the pinging session is alive: {reply:?}");
    let silent = Instant::now();
    drop(raw);
    for (id, _, watcher) in watchers {
        let event = within(&format!("expiry seen on node {id}"), watcher.changed()).await;
        assert_eq!(event.event_type, zk::EventType::NodeDeleted, "node {id}");
    }
    let took = silent.elapsed();
    println!(
        "FIGURE session_expiry_after_silence_ms={} (timeout {TIMEOUT_MS} ms)",
        took.as_millis()
    );
    assert!(
        took >= timeout,
        "expired {took:?} after its last request, before its {timeout:?} timeout"
    );

    // Decided once: only the leader counted (and logged) an expiry.
    let mut expired = Vec::new();
    for (k, &id) in ids.iter().enumerate() {
        let now = cluster.mntr_ok(id).await.sessions_expired();
        expired.push((id, now - expired_before[k]));
    }
    let deciders: Vec<u8> = expired
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        deciders,
        vec![leader],
        "expiry counts per node: {expired:?}"
    );
    assert_eq!(
        expired.iter().map(|(_, n)| n).sum::<u64>(),
        1,
        "{expired:?}"
    );
    let needle = format!("session={}", arbor_proto::SessionId(session_id));
    let logged: Vec<u8> = ids
        .iter()
        .copied()
        .filter(|&id| {
            cluster
                .log(id)
                .lines()
                .any(|line| line.contains("session expired") && line.contains(&needle))
        })
        .collect();
    assert_eq!(
        logged,
        vec![leader],
        "nodes that logged the expiry of {needle}"
    );

    // The session is gone everywhere: resuming it is refused by every server.
    for &id in &ids {
        let mut again = RawConnection::open(cluster.socket_address(id)).await;
        let answer = again
            .handshake(&resume_request(session_id, &response.password, 0))
            .await
            .expect("an answer");
        assert_eq!(
            (answer.timeout_ms, answer.session_id),
            (0, 0),
            "node {id} resumed an expired session: {answer:?}"
        );
    }
}
