//! Observers (Raft learners): a cluster of three voters and one observer. The observer serves
//! reads (after `sync`, every write completed elsewhere), forwards writes, never leads, and
//! does not count towards a quorum: with two voters down no write is acknowledged even though
//! the observer runs.
//!
//! The figures are printed as `FIGURE <name>=<value>` lines (run with `--nocapture`).

mod support;

use std::time::Instant;

use support::cluster::{Cluster, ClusterOptions, until};
use support::load::{Fleet, print_reports, verify_acknowledged};
use support::{ok, persistent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_serves_reads_forwards_writes_and_does_not_vote() {
    let mut cluster = Cluster::start_with(ClusterOptions::voters(3).observers(1)).await;
    let ids = cluster.ids();
    let voters = cluster.voter_ids();
    let observer = *ids
        .iter()
        .find(|id| !voters.contains(id))
        .expect("an observer");
    let leader = cluster.wait_for_leader(&ids).await;
    assert!(voters.contains(&leader), "the observer {observer} leads");
    let report = cluster.mntr_ok(observer).await;
    assert_eq!(report.state(), "observer");
    assert_eq!(report.leader(), Some(leader));

    // Writes through the observer, reads on it of writes made elsewhere.
    let on_observer = cluster.connect_to(observer).await;
    let on_voter = cluster.connect_to(voters[0]).await;
    ok(
        "create through the observer",
        on_observer.create("/observed", b"o", &persistent()),
    )
    .await;
    let (value, _) = ok(
        "the observer's client reads its own write",
        on_observer.get_data("/observed"),
    )
    .await;
    assert_eq!(value, b"o");
    ok("sync on a voter", on_voter.sync("/observed")).await;
    let (value, _) = ok(
        "a voter reads the observer's write",
        on_voter.get_data("/observed"),
    )
    .await;
    assert_eq!(value, b"o");
    for k in 0..10u32 {
        ok(
            "a write on a voter",
            on_voter.set_data("/observed", k.to_string().as_bytes(), None),
        )
        .await;
        ok("sync on the observer", on_observer.sync("/observed")).await;
        let (value, _) = ok("read on the observer", on_observer.get_data("/observed")).await;
        assert_eq!(
            value,
            k.to_string().as_bytes(),
            "after sync the observer reads the write completed on node {}",
            voters[0]
        );
    }

    let fleet = Fleet::start(&cluster, 0).await;
    let everyone = fleet.load.names();
    fleet.load.wait_progress(&everyone, 10).await;

    // The leader down: two voters of three remain; the new leader is a voter.
    let killed_at = Instant::now();
    cluster.kill(leader).await;
    fleet.load.stop_writer(&format!("n{leader}"));
    let alive: Vec<u8> = ids.iter().copied().filter(|&id| id != leader).collect();
    let alive_writers = Fleet::pinned(&alive);
    let resumed = fleet.load.wait_resumed(&alive_writers, killed_at).await;
    let worst = resumed.iter().map(|(_, d)| *d).max().unwrap_or_default();
    println!("FIGURE observer_cluster_failover_ms={}", worst.as_millis());
    let new_leader = cluster.wait_for_leader(&alive).await;
    assert_ne!(new_leader, observer, "the observer became leader");

    // A second voter down: one voter and the observer remain, which is no quorum of three.
    let second = *alive
        .iter()
        .find(|&&id| id != observer && id != new_leader)
        .expect("a second voter");
    cluster.kill(second).await;
    fleet.load.stop_writer(&format!("n{second}"));
    let remaining: Vec<u8> = alive.iter().copied().filter(|&id| id != second).collect();
    let remaining_writers = Fleet::pinned(&remaining);
    until("the voter without a quorum to stop leading", || async {
        let mut any_leader = false;
        for &id in &remaining {
            match cluster.mntr(id).await {
                Some(report) => any_leader |= report.state() == "leader",
                None => return false,
            }
        }
        !any_leader
    })
    .await;
    let leaderless_at = Instant::now();
    // Long enough for an election to finish several times over, were one possible.
    tokio::time::sleep(cluster.election_timeout() * 4).await;
    for name in &remaining_writers {
        assert!(
            fleet
                .load
                .first_ack_sent_after(name, leaderless_at)
                .is_none(),
            "writer {name} had a write acknowledged with one voter of three and the observer"
        );
    }
    // Without a leader the observer serves read-only clients, as ZooKeeper's observer does
    // (readonlymode.enabled is on by default): "read-only", never a voter's state.
    let report = cluster.mntr_ok(observer).await;
    assert!(
        matches!(report.state(), "observer" | "read-only"),
        "the observer changed role: {}",
        report.state()
    );

    // A voter back: the writers on the observer and the voter go on.
    let back_at = Instant::now();
    cluster.restart(second).await;
    let resumed = fleet.load.wait_resumed(&remaining_writers, back_at).await;
    let worst = resumed.iter().map(|(_, d)| *d).max().unwrap_or_default();
    println!(
        "FIGURE observer_cluster_quorum_back_resume_ms={} (includes the voter's start-up)",
        worst.as_millis()
    );
    let mut running = remaining.clone();
    running.push(second);
    running.sort_unstable();
    let leader_now = cluster.wait_for_leader(&running).await;
    assert_ne!(leader_now, observer);

    let reports = fleet.load.finish().await;
    print_reports("observer", &reports);
    let errors: Vec<_> = reports
        .iter()
        .filter(|r| remaining_writers.contains(&r.name))
        .flat_map(|r| r.errors.iter().map(move |e| (r.name.clone(), e)))
        .collect();
    assert!(
        errors.is_empty(),
        "writers saw errors beyond ConnectionLoss (observer {observer}, killed {leader} and \
         {second}): {errors:?}"
    );
    cluster.wait_converged(&running).await;
    verify_acknowledged(&cluster, &running, "/load", &reports).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_notices_that_the_voters_lost_their_leader() {
    let mut cluster = Cluster::start_with(ClusterOptions::voters(3).observers(1)).await;
    let ids = cluster.ids();
    let voters = cluster.voter_ids();
    let observer = *ids
        .iter()
        .find(|id| !voters.contains(id))
        .expect("an observer");
    let leader = cluster.wait_for_leader(&ids).await;
    let last_voter = *voters.iter().find(|&&id| id != leader).expect("a follower");
    for &id in &voters {
        if id != last_voter {
            cluster.kill(id).await;
        }
    }
    until("the last voter to have no leader", || async {
        cluster
            .mntr(last_voter)
            .await
            .is_some_and(|report| report.state() != "leader" && report.leader().is_none())
    })
    .await;
    // Nobody leads: the observer must not go on naming a leader (ZooKeeper's observer loses its
    // connection to the leader, which shuts down without a quorum, and stops serving).
    until("the observer to name no leader", || async {
        cluster
            .mntr(observer)
            .await
            .is_some_and(|report| report.leader().is_none())
    })
    .await;
}
