//! Reads in a cluster beyond ZooKeeper's default consistency:
//!
//! - `linearizable_reads = true`: every read is linearizable without a `sync`, on a follower
//!   right after a write completed elsewhere, and on a leader woken from a long freeze (which
//!   still believes it leads: it must not answer from its stale state);
//! - read-only mode: a server cut off from the quorum serves clients that asked for read-only
//!   (`canBeReadOnly`), refuses their writes with NotReadOnly, refuses other clients, and goes
//!   back to read-write once the quorum is back.
//!
//! The figures are printed as `FIGURE <name>=<value>` lines (run with `--nocapture`).

mod support;

use std::time::{Duration, Instant};

use support::cluster::{Cluster, ClusterOptions, until};
use support::load::Counter;
use support::{connect_with, connector, ok, persistent, within};
use zookeeper_client as zk;

/// How long a read-write client is given to (wrongly) get a session from a read-only server.
const READ_WRITE_REFUSAL_WAIT: Duration = Duration::from_secs(3);

/// Reads checked in each phase.
const READS: usize = 30;

/// The counter's value as `client` reads it (no `sync`), retried across connection losses;
/// returns the floor read just before the read was sent, and the value.
async fn read_counter(client: &zk::Client, counter: &Counter) -> (u64, u64) {
    within("a read of the counter", async {
        loop {
            let floor = counter.acknowledged();
            match client.get_data(counter.path()).await {
                Ok((data, _)) => {
                    let value = String::from_utf8_lossy(&data)
                        .parse::<u64>()
                        .unwrap_or_else(|_| panic!("the counter holds {data:?}"));
                    return (floor, value);
                }
                Err(zk::Error::ConnectionLoss) => {
                    let mut states = client.state_watcher();
                    while states.peek_state() == zk::SessionState::Disconnected {
                        states.changed().await;
                    }
                }
                Err(error) => panic!("read {}: {error}", counter.path()),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_linearizable_reads_no_read_is_stale_even_on_a_woken_leader() {
    let cluster =
        Cluster::start_with(ClusterOptions::voters(3).set("linearizable_reads", true)).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    let followers: Vec<u8> = ids.iter().copied().filter(|&id| id != leader).collect();
    let counter = Counter::start(cluster.connect_to(followers[0]).await, "/counter").await;
    counter.wait_progress(5).await;

    // On the other follower, no sync: each read sees what was acknowledged before it was sent.
    let on_follower = cluster.connect_to(followers[1]).await;
    for round in 0..READS {
        let (floor, value) = read_counter(&on_follower, &counter).await;
        assert!(
            value >= floor,
            "round {round}: node {} read {value}, but {floor} was acknowledged on node {} \
             before the read",
            followers[1],
            followers[0]
        );
    }

    // The leader freezes for three election timeouts while the counter goes on elsewhere.
    let on_leader = cluster.connect_to(leader).await;
    let frozen_at = Instant::now();
    cluster.pause(leader);
    let new_leader = cluster.wait_for_leader(&followers).await;
    assert_ne!(new_leader, leader);
    counter.wait_progress(5).await;
    tokio::time::sleep_until((frozen_at + cluster.election_timeout() * 3).into()).await;
    cluster.resume(leader);
    let woke_at = Instant::now();
    for round in 0..READS {
        let (floor, value) = read_counter(&on_leader, &counter).await;
        assert!(
            value >= floor,
            "round {round}: the woken node {leader} read {value} without sync, but {floor} \
             was acknowledged elsewhere before the read"
        );
        if round == 0 {
            println!(
                "FIGURE linearizable_first_read_after_wake_ms={}",
                woke_at.elapsed().as_millis()
            );
        }
    }
    let report = counter.finish().await;
    assert!(report.errors.is_empty(), "counter: {:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_cut_off_from_the_quorum_serves_read_only_clients_only() {
    let mut cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    let kept = *ids.iter().find(|&&id| id != leader).expect("a follower");
    let setup = cluster.connect_any().await;
    ok("create /ro", setup.create("/ro", b"before", &persistent())).await;
    assert_eq!(
        cluster.four_letter(kept, "isro").await.as_deref(),
        Some("rw")
    );

    let lost_at = Instant::now();
    for &id in &ids {
        if id != kept {
            cluster.kill(id).await;
        }
    }
    until("the cut-off server to serve read-only", || async {
        cluster.four_letter(kept, "isro").await.as_deref() == Some("ro")
    })
    .await;
    println!(
        "FIGURE read_only_mode_after_quorum_loss_ms={}",
        lost_at.elapsed().as_millis()
    );
    // The line ZooKeeper logs, which operators and ZooKeeper test harnesses wait for.
    until(
        "the cut-off server to log that it serves read-only",
        || async { cluster.log(kept).contains("Read-only server started") },
    )
    .await;

    // A client that accepts a read-only server gets in, reads, and cannot write.
    let reader = connect_with(connector().with_readonly(true), &cluster.address(kept)).await;
    assert_eq!(reader.state(), zk::SessionState::ConnectedReadOnly);
    let (value, _) = ok("a read-only read", reader.get_data("/ro")).await;
    assert_eq!(value, b"before");
    let refused = within(
        "a write on a read-only server",
        reader.create("/ro/x", b"", &persistent()),
    )
    .await
    .expect_err("a write on a read-only server");
    assert_eq!(refused, zk::Error::NotReadOnly);
    // A client that does not accept read-only is turned away.
    let normal = tokio::time::timeout(
        READ_WRITE_REFUSAL_WAIT,
        connector().connect(&cluster.address(kept)),
    )
    .await;
    assert!(
        !matches!(normal, Ok(Ok(_))),
        "a read-write client got a session from a server without a quorum"
    );

    // The quorum is back: the server serves writes again.
    let back = *ids.iter().find(|&&id| id != kept).expect("another node");
    cluster.restart(back).await;
    until("the server to leave read-only mode", || async {
        cluster.four_letter(kept, "isro").await.as_deref() == Some("rw")
    })
    .await;
    let writer = cluster.connect_to(kept).await;
    ok(
        "a write once the quorum is back",
        writer.set_data("/ro", b"after", None),
    )
    .await;
    drop((setup, reader));
}
