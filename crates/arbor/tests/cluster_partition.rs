//! Partitions of a 3-node cluster under load, made with a fault proxy on every directed peer
//! link: the side without a quorum makes no progress on writes (and cannot `sync`), the side
//! with one does, and after the heal every node holds the same data with every acknowledged
//! write.
//!
//! - symmetric: the leader is cut off both ways (a client that was on it moves to the
//!   majority and keeps its session);
//! - one-way, a deaf follower: nothing reaches one follower, which still reaches the others
//!   (pre-vote and check-quorum keep it from deposing the leader);
//! - one-way, a mute leader: nothing the leader sends arrives, it still hears the others.
//!
//! The figures are printed as `FIGURE <name>=<value>` lines (run with `--nocapture`).

mod support;

use std::time::{Duration, Instant};

use support::cluster::{Cluster, ClusterOptions};
use support::load::{Load, print_reports, verify_acknowledged};
use support::proxy::Proxy;
use support::{connect_with, connector, ok, persistent, within};
use tokio::task::JoinHandle;
use zookeeper_client as zk;

/// Writes the majority must complete while the partition lasts.
const MAJORITY_WRITES: usize = 20;

/// How a test cuts the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// Every link into and out of the leader.
    IsolateLeader,
    /// Every link into one follower.
    DeafFollower,
    /// Every link out of the leader.
    MuteLeader,
}

fn pinned_name(id: u8) -> String {
    format!("n{id}")
}

/// The node whose `cons` lists `session`, if any.
async fn server_of(cluster: &Cluster, session: zk::SessionId) -> Option<u8> {
    let needle = format!("sid=0x{:x},", session.0);
    for id in cluster.ids() {
        if let Some(text) = cluster.four_letter(id, "cons").await
            && text.contains(&needle)
        {
            return Some(id);
        }
    }
    None
}

/// A session that may use every node but starts on `first`: the others are offered through
/// client proxies that turn it away until it is connected.
async fn roaming_from(cluster: &Cluster, first: u8) -> (zk::Client, Vec<Proxy>) {
    let mut proxies = Vec::new();
    let mut hosts = vec![cluster.address(first)];
    for id in cluster.ids().into_iter().filter(|&id| id != first) {
        let proxy = Proxy::start(cluster.socket_address(id)).await;
        proxy.block();
        hosts.push(proxy.address());
        proxies.push(proxy);
    }
    let client = connect_with(connector(), &hosts.join(",")).await;
    for proxy in &proxies {
        proxy.unblock();
    }
    (client, proxies)
}

/// Runs the scenario; returns, with a roaming client, how long it took to move to the
/// majority (from the cut to its first write acknowledged there).
async fn partition_under_load(cut: Cut) -> Option<Duration> {
    let cluster = Cluster::start_with(ClusterOptions::voters(3).link_control()).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    let followers: Vec<u8> = ids.iter().copied().filter(|&id| id != leader).collect();
    let minority = match cut {
        Cut::IsolateLeader | Cut::MuteLeader => leader,
        Cut::DeafFollower => followers[0],
    };
    let majority: Vec<u8> = ids.iter().copied().filter(|&id| id != minority).collect();
    let term_before = cluster.mntr_ok(leader).await.term();

    let setup = cluster.connect_any().await;
    ok("create /load", setup.create("/load", b"", &persistent())).await;
    let mut clients = Vec::new();
    for &id in &ids {
        clients.push((pinned_name(id), cluster.connect_to(id).await));
    }
    let mut client_proxies = Vec::new();
    let roaming = cut == Cut::IsolateLeader;
    if roaming {
        let (client, proxies) = roaming_from(&cluster, minority).await;
        assert_eq!(
            server_of(&cluster, client.session_id()).await,
            Some(minority)
        );
        clients.push(("roam".to_owned(), client));
        client_proxies = proxies;
    }
    let load = Load::start("/load", clients);
    let everyone = load.names();
    load.wait_progress(&everyone, 10).await;
    let syncer = cluster.connect_to(minority).await;

    let cut_at = Instant::now();
    match cut {
        Cut::IsolateLeader => cluster.isolate(minority),
        Cut::DeafFollower => {
            for &other in &majority {
                cluster
                    .link(other, minority)
                    .set_mode(arbor_check::proxy::Mode::Drop);
            }
        }
        Cut::MuteLeader => {
            for &other in &majority {
                cluster
                    .link(minority, other)
                    .set_mode(arbor_check::proxy::Mode::Drop);
            }
        }
    }
    let majority_names: Vec<String> = majority.iter().map(|&id| pinned_name(id)).collect();
    let resumed = load.wait_resumed(&majority_names, cut_at).await;
    let worst = resumed.iter().map(|(_, d)| *d).max().unwrap_or_default();
    println!(
        "FIGURE partition_{cut:?}_majority_resume_ms={}",
        worst.as_millis()
    );
    // A `sync` on the cut-off node needs the leader's answer (ReadIndex): it must not finish.
    let sync: JoinHandle<Result<(), zk::Error>> = {
        let syncer = syncer.clone();
        tokio::spawn(async move { syncer.sync("/load").await })
    };
    load.wait_progress(&majority_names, MAJORITY_WRITES).await;
    let mut roam_moved = None;
    if roaming {
        let moved = load
            .wait_resumed(&["roam".to_owned()], cut_at)
            .await
            .remove(0)
            .1;
        println!(
            "FIGURE partition_roaming_client_moved_ms={}",
            moved.as_millis()
        );
        roam_moved = Some(moved);
    }
    let new_leader = cluster.wait_for_leader(&majority).await;
    let during = cluster.mntr_ok(new_leader).await;
    match cut {
        Cut::DeafFollower => {
            assert_eq!(new_leader, leader, "a deaf follower deposed the leader");
            assert_eq!(
                during.term(),
                term_before,
                "a deaf follower disturbed the term (pre-vote should keep it out)"
            );
        }
        Cut::IsolateLeader | Cut::MuteLeader => {
            assert_ne!(new_leader, leader);
            assert!(during.term() > term_before);
        }
    }
    if let Some(report) = cluster.mntr(minority).await {
        println!(
            "partition {cut:?}: node {minority} (cut off) is {} term {} commit {} last {}; \
             node {new_leader} (majority leader) commit {}",
            report.state(),
            report.term(),
            report.commit_index(),
            report.last_index(),
            during.commit_index()
        );
    }
    let healed_at = Instant::now();
    let sync_finished = sync.is_finished();
    cluster.heal();

    // No create the cut-off node's writer sent after the cut was acknowledged before the heal.
    let minority_name = pinned_name(minority);
    let acked_while_cut: Vec<_> = load
        .acks(&minority_name)
        .into_iter()
        .filter(|ack| ack.sent >= cut_at && ack.acked < healed_at)
        .collect();
    assert!(
        acked_while_cut.is_empty(),
        "{cut:?}: node {minority} acknowledged {} writes while cut off from the quorum",
        acked_while_cut.len()
    );
    if sync_finished {
        let result = within("the sync's result", sync).await.expect("sync task");
        assert!(
            result.is_err(),
            "{cut:?}: a sync on node {minority} succeeded while it was cut off"
        );
    }
    // After the heal the cut-off node's writer goes on.
    let back = load
        .wait_resumed(std::slice::from_ref(&minority_name), healed_at)
        .await
        .remove(0)
        .1;
    println!(
        "FIGURE partition_{cut:?}_minority_resume_after_heal_ms={}",
        back.as_millis()
    );
    let reports = load.finish().await;
    print_reports(&format!("partition {cut:?}"), &reports);
    for report in &reports {
        assert!(
            report.errors.is_empty(),
            "writer {} saw errors beyond ConnectionLoss: {:?}",
            report.name,
            report.errors
        );
    }
    cluster.wait_converged(&ids).await;
    let present = verify_acknowledged(&cluster, &ids, "/load", &reports).await;
    println!(
        "partition {cut:?}: {} writes on every node after the heal",
        present.len()
    );
    drop((setup, syncer, client_proxies, reports));
    roam_moved
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_makes_no_progress_while_the_majority_does_and_they_converge() {
    partition_under_load(Cut::IsolateLeader).await;
}

/// What "a short pause" allows a client of a cut-off server before it writes on the majority:
/// the majority's election plus a reconnection.
const ROAMING_MOVE_BOUND: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_cut_off_leader_moves_to_the_majority_within_two_seconds() {
    let moved = partition_under_load(Cut::IsolateLeader)
        .await
        .expect("a roaming client");
    assert!(
        moved < ROAMING_MOVE_BOUND,
        "the client of the cut-off leader wrote on the majority only {moved:?} after the cut"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deaf_follower_neither_progresses_nor_deposes_the_leader() {
    partition_under_load(Cut::DeafFollower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_leader_is_replaced_and_catches_up_after_the_heal() {
    partition_under_load(Cut::MuteLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_server_turns_away_a_client_that_has_seen_newer_writes() {
    use arbor_proto::{CreateRequest, GetDataRequest, Request};
    use support::raw::{RawConnection, data, resume_request};

    let cluster = Cluster::start_with(ClusterOptions::voters(3).link_control()).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    let lagging = *ids.iter().find(|&&id| id != leader).expect("a follower");
    let (mut on_leader, session) =
        RawConnection::new_session(cluster.socket_address(leader), 10_000).await;

    // Nothing reaches the follower any more; a write on the leader commits without it.
    for &other in ids.iter().filter(|&&id| id != lagging) {
        cluster
            .link(other, lagging)
            .set_mode(arbor_check::proxy::Mode::Drop);
    }
    let reply = on_leader
        .call(&Request::Create(CreateRequest {
            path: "/seen".into(),
            data: data(bytes::Bytes::new()),
            acl: arbor_proto::Acl::open_unsafe(),
            flags: 0,
        }))
        .await;
    assert_eq!(reply.err(), 0, "create /seen: {reply:?}");
    let seen = reply.header.zxid;

    // The session moves to the follower, which has not applied that write: ZooKeeper's single
    // system image has the server close the connection so the client tries another one.
    let mut on_lagging = RawConnection::open(cluster.socket_address(lagging)).await;
    let answer = on_lagging
        .handshake(&resume_request(session.session_id, &session.password, seen))
        .await;
    assert!(
        answer.is_none(),
        "node {lagging} took a client that has seen zxid {seen:#x}, which it has not applied: \
         {answer:?}"
    );

    // Once it has caught up it takes the session, and the client reads its write there.
    cluster.heal();
    let mut on_lagging = within("the follower to take the session once caught up", async {
        loop {
            let mut connection = RawConnection::open(cluster.socket_address(lagging)).await;
            let answer = connection
                .handshake(&resume_request(session.session_id, &session.password, seen))
                .await;
            if let Some(response) = answer {
                assert_eq!(response.session_id, session.session_id, "{response:?}");
                return connection;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let reply = on_lagging
        .call(&Request::GetData(GetDataRequest {
            path: "/seen".into(),
            watch: false,
        }))
        .await;
    assert_eq!(reply.err(), 0, "node {lagging} reads /seen: {reply:?}");
}
