//! A rolling restart of a 3-node cluster under load: each member in turn is stopped gracefully
//! (SIGTERM; a leader hands over first) and started again on its data, waiting for it to serve
//! its writer again before the next one goes. Clients may see ConnectionLoss (and retry), nothing
//! else; no acknowledged write is lost; every session and its ephemeral survives.
//!
//! The figures are printed as `FIGURE <name>=<value>` lines (run with `--nocapture`).

mod support;

use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::load::{Fleet, print_reports, verify_acknowledged, verify_ephemerals};

/// Writes every writer completes between two restarts.
const WRITES_BETWEEN_RESTARTS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_costs_only_connection_loss_retries() {
    let mut cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    let first_leader = cluster.wait_for_leader(&ids).await;
    let fleet = Fleet::start(&cluster, 2).await;
    let everyone = fleet.load.names();
    fleet
        .load
        .wait_progress(&everyone, WRITES_BETWEEN_RESTARTS)
        .await;

    // Followers first, the leader last, as an operator does; every member goes once.
    let mut order: Vec<u8> = ids
        .iter()
        .copied()
        .filter(|&id| id != first_leader)
        .collect();
    order.push(first_leader);
    let mut gap_worst = Duration::ZERO;
    for &id in &order {
        let leader = cluster.wait_for_leader(&ids).await;
        let stopped_at = Instant::now();
        let status = cluster.terminate(id).await;
        assert!(status.success(), "node {id} stopped with {status}");
        let others: Vec<String> = Fleet::pinned(&ids)
            .into_iter()
            .filter(|name| *name != format!("n{id}"))
            .collect();
        // The writers on the other servers do not wait for this one to come back.
        let resumed = fleet.load.wait_resumed(&others, stopped_at).await;
        let gap = resumed.iter().map(|(_, d)| *d).max().unwrap_or_default();
        gap_worst = gap_worst.max(gap);
        println!(
            "rolling: node {id} ({}) stopped; the others' writers went on within {} ms",
            if id == leader { "leader" } else { "follower" },
            gap.as_millis()
        );
        cluster.restart(id).await;
        let restarted_at = Instant::now();
        let back = fleet
            .load
            .wait_resumed(&[format!("n{id}")], restarted_at)
            .await
            .remove(0)
            .1;
        println!(
            "rolling: node {id} serves its writer again {} ms after it serves",
            back.as_millis()
        );
        cluster.wait_for_leader(&ids).await;
        fleet
            .load
            .wait_progress(&everyone, WRITES_BETWEEN_RESTARTS)
            .await;
    }
    println!(
        "FIGURE rolling_restart_other_writers_gap_max_ms={}",
        gap_worst.as_millis()
    );

    let sessions = fleet.sessions;
    let reports = fleet.load.finish().await;
    print_reports("rolling", &reports);
    let latency_worst = reports
        .iter()
        .map(|r| r.latency_max)
        .max()
        .unwrap_or_default();
    println!(
        "FIGURE rolling_restart_write_latency_max_ms={}",
        latency_worst.as_millis()
    );
    for report in &reports {
        assert!(
            report.errors.is_empty(),
            "writer {} saw errors beyond ConnectionLoss: {:?}",
            report.name,
            report.errors
        );
        assert_eq!(
            report.silences, 0,
            "writer {}: the server held its connection silent until the client gave up",
            report.name
        );
        assert_eq!(
            report.client.session_id(),
            sessions[&report.name].id(),
            "writer {} kept its session",
            report.name
        );
    }
    cluster.wait_converged(&ids).await;
    let present = verify_acknowledged(&cluster, &ids, "/load", &reports).await;
    println!("rolling: {} writes on every node", present.len());
    let names: Vec<String> = sessions.keys().cloned().collect();
    verify_ephemerals(&cluster, &ids, &sessions, &names).await;
    drop(reports);
}
