//! What `mntr` says about a 3-node cluster: each server's role and the leader, the term, the
//! commit index moving with writes, the leader's followers and each one's lag (growing while a
//! follower is frozen, back to zero once it catches up), and leader changes counted.

mod support;

use support::cluster::{Cluster, until};
use support::{ok, persistent};

/// Writes made while a follower is frozen.
const WRITES_WHILE_FROZEN: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mntr_reports_roles_term_commit_index_follower_lag_and_leader_changes() {
    let mut cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    let followers: Vec<u8> = ids.iter().copied().filter(|&id| id != leader).collect();

    let report = cluster.mntr_ok(leader).await;
    assert_eq!(report.state(), "leader");
    assert_eq!(report.leader(), Some(leader));
    assert!(report.term() >= 1);
    assert_eq!(report.get("zk_followers"), Some("2"));
    let mut lagging: Vec<u8> = report.follower_lag.iter().map(|(id, _)| *id).collect();
    lagging.sort_unstable();
    assert_eq!(
        lagging, followers,
        "one arbor_follower_lag line per follower"
    );
    for &id in &followers {
        let report = cluster.mntr_ok(id).await;
        assert_eq!(report.state(), "follower", "node {id}");
        assert_eq!(report.leader(), Some(leader), "node {id}");
    }

    // Writes move the commit index.
    let commit_before = cluster.mntr_ok(leader).await.commit_index();
    let client = cluster.connect_to(leader).await;
    ok("create /m", client.create("/m", b"", &persistent())).await;
    let commit_after = cluster.mntr_ok(leader).await.commit_index();
    assert!(
        commit_after > commit_before,
        "commit index {commit_before} -> {commit_after}"
    );

    // A frozen follower falls behind by at least the writes made meanwhile, then catches up.
    let frozen = followers[0];
    cluster.pause(frozen);
    for k in 0..WRITES_WHILE_FROZEN {
        ok(
            "a write while a follower is frozen",
            client.create(&format!("/m/{k}"), b"", &persistent()),
        )
        .await;
    }
    let report = cluster.mntr_ok(leader).await;
    let lag = report
        .follower_lag
        .iter()
        .find(|(id, _)| *id == frozen)
        .map(|(_, lag)| *lag)
        .expect("a lag line for the frozen follower");
    println!("metrics: frozen follower {frozen} lags {lag} entries");
    assert!(
        lag >= WRITES_WHILE_FROZEN,
        "follower {frozen} lags {lag} entries after {WRITES_WHILE_FROZEN} writes it missed"
    );
    cluster.resume(frozen);
    until("the frozen follower to catch up", || async {
        cluster.mntr(leader).await.is_some_and(|report| {
            report
                .follower_lag
                .iter()
                .any(|&(id, lag)| id == frozen && lag == 0)
        })
    })
    .await;

    // A leader change is counted by the survivors.
    let changes_before: Vec<u64> = {
        let mut changes = Vec::new();
        for &id in &followers {
            changes.push(cluster.mntr_ok(id).await.leader_changes());
        }
        changes
    };
    cluster.kill(leader).await;
    let new_leader = cluster.wait_for_leader(&followers).await;
    for (&id, before) in followers.iter().zip(changes_before) {
        let report = cluster.mntr_ok(id).await;
        assert!(
            report.leader_changes() > before,
            "node {id}: arbor_leader_changes {before} -> {}",
            report.leader_changes()
        );
        assert_eq!(report.leader(), Some(new_leader));
    }
    drop(client);
}
