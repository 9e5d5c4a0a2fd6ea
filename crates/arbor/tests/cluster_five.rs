//! A 5-node cluster under load: it survives the loss of two members (the leader among them);
//! with three gone no write is acknowledged and no node claims to lead; once a third member is
//! back it serves again, with every acknowledged write on every running node.
//!
//! The figures are printed as `FIGURE <name>=<value>` lines (run with `--nocapture`).

mod support;

use std::time::Instant;

use support::cluster::{Cluster, until};
use support::load::{Fleet, print_reports, verify_acknowledged};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_serve_with_two_lost_and_stop_writing_with_three_lost() {
    let mut cluster = Cluster::start(5).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    let fleet = Fleet::start(&cluster, 0).await;
    let everyone = fleet.load.names();
    fleet.load.wait_progress(&everyone, 10).await;

    // Two down, the leader first: three of five remain, a quorum.
    let second = ids
        .iter()
        .copied()
        .find(|&id| id != leader)
        .expect("a follower");
    let killed_at = Instant::now();
    cluster.kill(leader).await;
    cluster.kill(second).await;
    let mut down = vec![leader, second];
    for id in &down {
        fleet.load.stop_writer(&format!("n{id}"));
    }
    let alive: Vec<u8> = ids
        .iter()
        .copied()
        .filter(|id| !down.contains(id))
        .collect();
    let alive_writers = Fleet::pinned(&alive);
    let resumed = fleet.load.wait_resumed(&alive_writers, killed_at).await;
    let worst = resumed.iter().map(|(_, d)| *d).max().unwrap_or_default();
    println!(
        "FIGURE five_nodes_two_killed_resume_ms={}",
        worst.as_millis()
    );
    let new_leader = cluster.wait_for_leader(&alive).await;
    assert!(alive.contains(&new_leader));
    fleet.load.wait_progress(&alive_writers, 10).await;

    // A third down: two of five, no quorum. Once no node claims to lead, no write sent from
    // then on may be acknowledged, however long the test waits.
    let third = alive[0];
    cluster.kill(third).await;
    fleet.load.stop_writer(&format!("n{third}"));
    down.push(third);
    let remaining: Vec<u8> = ids
        .iter()
        .copied()
        .filter(|id| !down.contains(id))
        .collect();
    let remaining_writers = Fleet::pinned(&remaining);
    until("the leader without a quorum to step down", || async {
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
        let acked = fleet.load.first_ack_sent_after(name, leaderless_at);
        assert!(
            acked.is_none(),
            "writer {name} had a write acknowledged with only two of five members up"
        );
    }
    for &id in &remaining {
        let report = cluster.mntr_ok(id).await;
        assert_ne!(report.state(), "leader", "node {id} leads without a quorum");
    }

    // One back: three of five again.
    let back_at = Instant::now();
    cluster.restart(third).await;
    let resumed = fleet.load.wait_resumed(&remaining_writers, back_at).await;
    let worst = resumed.iter().map(|(_, d)| *d).max().unwrap_or_default();
    println!(
        "FIGURE five_nodes_quorum_back_resume_ms={} (from the restart of node {third}, which \
         includes its start-up)",
        worst.as_millis()
    );
    let mut running = remaining.clone();
    running.push(third);
    running.sort_unstable();
    cluster.wait_for_leader(&running).await;

    let reports = fleet.load.finish().await;
    print_reports("five", &reports);
    for report in &reports {
        if down.iter().any(|id| report.name == format!("n{id}")) {
            continue;
        }
        assert!(
            report.errors.is_empty(),
            "writer {} saw errors beyond ConnectionLoss: {:?}",
            report.name,
            report.errors
        );
    }
    cluster.wait_converged(&running).await;
    let present = verify_acknowledged(&cluster, &running, "/load", &reports).await;
    println!(
        "five: {} writes on the {} running nodes",
        present.len(),
        running.len()
    );
}
