//! A member that missed more than the log keeps: with snapshots every few entries, a follower
//! killed while the others write on is past the compacted log when it comes back, so the
//! leader installs its snapshot on it; it then holds the same data as the others (the
//! ephemeral of a session included) and serves writes.

mod support;

use support::cluster::{Cluster, ClusterOptions, children_after_sync};
use support::{ok, persistent};
use zookeeper_client as zk;

/// Entries between snapshots in this test (arbor's default is 100 000).
const SNAPSHOT_EVERY_ENTRIES: u64 = 50;

/// Writes made while the follower is down: several snapshot intervals.
const WRITES_WHILE_DOWN: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_back_from_a_long_absence_gets_the_leaders_snapshot() {
    let mut cluster = Cluster::start_with(
        ClusterOptions::voters(3).set("snapshot_every_entries", SNAPSHOT_EVERY_ENTRIES),
    )
    .await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    let absent = *ids.iter().find(|&&id| id != leader).expect("a follower");
    let client = cluster.connect_to(leader).await;
    ok("create /snap", client.create("/snap", b"", &persistent())).await;
    ok(
        "an ephemeral",
        client.create(
            "/snap-owner",
            b"",
            &support::mode(zk::CreateMode::Ephemeral),
        ),
    )
    .await;

    cluster.kill(absent).await;
    for k in 0..WRITES_WHILE_DOWN {
        ok(
            "a write while the follower is down",
            client.create(&format!("/snap/{k:04}"), &[7u8; 64], &persistent()),
        )
        .await;
    }
    let present: Vec<u8> = ids.iter().copied().filter(|&id| id != absent).collect();
    assert!(
        cluster.log(leader).contains("snapshot saved"),
        "the leader took no snapshot in {WRITES_WHILE_DOWN} writes"
    );

    cluster.restart(absent).await;
    cluster.wait_for_leader(&ids).await;
    cluster.wait_converged(&ids).await;
    let log = cluster.log(absent);
    assert!(
        log.contains("installed the leader's snapshot"),
        "node {absent} caught up without the leader's snapshot"
    );
    let expected = children_after_sync(&cluster, present[0], "/snap").await;
    assert_eq!(expected.len(), WRITES_WHILE_DOWN);
    let restored = children_after_sync(&cluster, absent, "/snap").await;
    assert_eq!(
        restored, expected,
        "node {absent} holds the same data after the snapshot"
    );
    let on_absent = cluster.connect_to(absent).await;
    ok("sync", on_absent.sync("/snap-owner")).await;
    let owner = ok("the ephemeral", on_absent.check_stat("/snap-owner"))
        .await
        .expect("the ephemeral is in the snapshot");
    assert_eq!(owner.ephemeral_owner, client.session_id().0);
    ok(
        "a write through the restored follower",
        on_absent.create("/snap/after", b"", &persistent()),
    )
    .await;
}
