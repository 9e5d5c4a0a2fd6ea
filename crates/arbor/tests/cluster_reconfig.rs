//! Membership change through ZooKeeper's `reconfig` on a running 5-node cluster: removing two
//! members shrinks the quorum for real (with the two removed and one more member down, the
//! remaining two of three still commit, which two of five could not), `/zookeeper/config`
//! shows the new membership on every node, and a removed member added back catches up.

mod support;

use support::cluster::{Cluster, ClusterOptions, SUPER_PASSWORD, until};
use support::{connect_with, connector, digest_id, ok, persistent};
use zookeeper_client as zk;

/// The `server.N` ids `/zookeeper/config` lists, as node `id` sees it after a sync.
async fn members_seen_by(cluster: &Cluster, id: u8) -> Vec<u8> {
    let client = cluster.connect_to(id).await;
    ok("sync", client.sync("/zookeeper/config")).await;
    let (data, _) = ok("read /zookeeper/config", client.get_config()).await;
    let text = String::from_utf8_lossy(&data).into_owned();
    let mut ids: Vec<u8> = text
        .lines()
        .filter_map(|line| line.strip_prefix("server."))
        .filter_map(|rest| rest.split_once('=').and_then(|(id, _)| id.parse().ok()))
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfig_removes_members_from_the_quorum_and_adds_one_back() {
    let options = ClusterOptions::voters(5).set("reconfig_enabled", true).set(
        "super_digest",
        format!("{:?}", digest_id("super", SUPER_PASSWORD)),
    );
    let mut cluster = Cluster::start_with(options).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    // On the leader, which stays (a reconfig through a server it removes is the next test).
    let admin = connect_with(
        connector().with_auth("digest", format!("super:{SUPER_PASSWORD}").as_bytes()),
        &cluster.address(leader),
    )
    .await;
    until("the leader to record the membership", || async {
        members_seen_by(&cluster, leader).await == ids
    })
    .await;

    // Remove two members that do not lead.
    let leaving: Vec<u8> = ids
        .iter()
        .copied()
        .filter(|&id| id != leader)
        .take(2)
        .collect();
    let leaving_text: Vec<String> = leaving.iter().map(u8::to_string).collect();
    let leavings: Vec<&str> = leaving_text.iter().map(String::as_str).collect();
    let (data, _) = ok(
        "reconfig -remove",
        admin.update_ensemble(
            zk::EnsembleUpdate::Incremental {
                joinings: Vec::<&str>::new().into_iter(),
                leavings: leavings.into_iter(),
            },
            None,
        ),
    )
    .await;
    println!(
        "reconfig: removed {leaving:?}; new config:\n{}",
        String::from_utf8_lossy(&data)
    );
    let staying: Vec<u8> = ids
        .iter()
        .copied()
        .filter(|id| !leaving.contains(id))
        .collect();
    for &id in &staying {
        until(&format!("node {id} to show the new membership"), || async {
            members_seen_by(&cluster, id).await == staying
        })
        .await;
    }

    // The removed two and one more follower down: two of the three members remain.
    for &id in &leaving {
        cluster.kill(id).await;
    }
    let third = *staying
        .iter()
        .find(|&&id| id != leader)
        .expect("a follower that stays");
    cluster.kill(third).await;
    let alive: Vec<u8> = staying.iter().copied().filter(|&id| id != third).collect();
    cluster.wait_for_leader(&alive).await;
    let client = cluster.connect_to(alive[0]).await;
    ok(
        "a write with two of the three members (two of the original five) up",
        client.create("/after-remove", b"", &persistent()),
    )
    .await;

    // One removed member comes back and is added again: it catches up with the data.
    cluster.restart(third).await;
    let returning = leaving[0];
    cluster.restart(returning).await;
    let joining = cluster.joining_line(returning);
    ok(
        "reconfig -add",
        admin.update_ensemble(
            zk::EnsembleUpdate::Incremental {
                joinings: vec![joining.as_str()].into_iter(),
                leavings: Vec::<&str>::new().into_iter(),
            },
            None,
        ),
    )
    .await;
    let mut members = staying.clone();
    members.push(returning);
    members.sort_unstable();
    cluster.wait_for_leader(&members).await;
    until(
        &format!("node {returning} to show itself a member again"),
        || async { members_seen_by(&cluster, returning).await == members },
    )
    .await;
    let on_returning = cluster.connect_to(returning).await;
    ok("sync", on_returning.sync("/after-remove")).await;
    assert!(
        ok(
            "read on the returning member",
            on_returning.check_stat("/after-remove")
        )
        .await
        .is_some(),
        "node {returning} caught up with a write made while it was out"
    );
    ok(
        "a write through the returning member",
        on_returning.create("/after-add", b"", &persistent()),
    )
    .await;
    cluster.wait_converged(&members).await;
    drop((admin, client));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconfig_sent_through_a_server_it_removes_is_answered() {
    let options = ClusterOptions::voters(5).set("reconfig_enabled", true).set(
        "super_digest",
        format!("{:?}", digest_id("super", SUPER_PASSWORD)),
    );
    let cluster = Cluster::start_with(options).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    until("the leader to record the membership", || async {
        members_seen_by(&cluster, leader).await == ids
    })
    .await;
    let leaving: Vec<u8> = ids
        .iter()
        .copied()
        .filter(|&id| id != leader)
        .take(2)
        .collect();
    // Connected to a server the change removes (ZooKeeper answers such a reconfig: the leaving
    // servers get the commit before they go).
    let admin = connect_with(
        connector().with_auth("digest", format!("super:{SUPER_PASSWORD}").as_bytes()),
        &cluster.address(leaving[0]),
    )
    .await;
    let leaving_text: Vec<String> = leaving.iter().map(u8::to_string).collect();
    let leavings: Vec<&str> = leaving_text.iter().map(String::as_str).collect();
    ok(
        "reconfig -remove through a leaving server",
        admin.update_ensemble(
            zk::EnsembleUpdate::Incremental {
                joinings: Vec::<&str>::new().into_iter(),
                leavings: leavings.into_iter(),
            },
            None,
        ),
    )
    .await;
}
