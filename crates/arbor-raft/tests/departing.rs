//! Removed members and the commit of their removal: the leader goes on replicating to a member
//! a membership change removes until it knows the change committed (so it can answer what it
//! forwarded, and stops campaigning), gives up on a dead one after two election timeouts, and
//! never counts one toward any quorum. Likewise for guests, learners outside every
//! configuration that the application asks the leader to replicate to (ZooKeeper's way of
//! adding a server). Time is simulated (ticks), delivery is in order and
//! complete except to and from the nodes a test declares down.

use std::collections::{BTreeMap, BTreeSet};

use arbor_raft::{
    ConfChange, ConfChangeSingle, ConfState, Config, Entry, EntryKind, LogIndex, MemStorage,
    Message, MessageBody, NodeId, RawNode, Role,
};
use bytes::Bytes;

/// A few nodes wired to each other by a perfect network, except that nodes in `down` neither
/// send nor receive.
struct Cluster {
    nodes: BTreeMap<NodeId, RawNode<MemStorage>>,
    down: BTreeSet<NodeId>,
    /// Every committed entry each node was handed to apply, in order.
    applied: BTreeMap<NodeId, Vec<Entry>>,
    /// Every message any node sent, in order (including those to or from nodes that are down).
    sent: Vec<Message>,
    /// Read states handed out, by any node.
    reads_served: usize,
}

impl Cluster {
    fn new(voters: &[u64]) -> Cluster {
        let conf = ConfState::with_voters(voters.iter().map(|&id| NodeId(id)));
        let nodes = voters
            .iter()
            .map(|&id| {
                let storage = MemStorage::new_with_conf_state(conf.clone());
                let node = RawNode::new(&Config::new(NodeId(id)), storage).expect("valid config");
                (NodeId(id), node)
            })
            .collect();
        Cluster {
            nodes,
            down: BTreeSet::new(),
            applied: BTreeMap::new(),
            sent: Vec::new(),
            reads_served: 0,
        }
    }

    /// A node that starts with its own idea of the membership (`voters`, `learners`), as a
    /// server whose configuration file differs from the cluster's.
    fn add_node(&mut self, id: u64, voters: &[u64], learners: &[u64]) {
        let mut conf = ConfState::with_voters(voters.iter().map(|&v| NodeId(v)));
        conf.learners.extend(learners.iter().map(|&l| NodeId(l)));
        let storage = MemStorage::new_with_conf_state(conf);
        let node = RawNode::new(&Config::new(NodeId(id)), storage).expect("valid config");
        self.nodes.insert(NodeId(id), node);
    }

    fn node(&self, id: u64) -> &RawNode<MemStorage> {
        &self.nodes[&NodeId(id)]
    }

    fn node_mut(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        self.nodes
            .get_mut(&NodeId(id))
            .expect("a node of the cluster")
    }

    /// Handles every Ready and delivers every message until nothing moves.
    fn stabilize(&mut self) {
        for _ in 0..10_000 {
            let mut out = Vec::new();
            for (&id, node) in self.nodes.iter_mut() {
                if self.down.contains(&id) || !node.has_ready() {
                    continue;
                }
                let mut ready = node.ready();
                out.append(&mut ready.messages);
                let store = node.store_mut();
                store.append(&ready.entries);
                if let Some(hard_state) = ready.hard_state {
                    store.set_hard_state(hard_state);
                }
                out.append(&mut ready.persisted_messages);
                self.reads_served += ready.read_states.len();
                self.applied
                    .entry(id)
                    .or_default()
                    .extend(ready.committed_entries.iter().cloned());
                node.advance(ready);
            }
            if out.is_empty() {
                return;
            }
            for m in out {
                self.sent.push(m.clone());
                if self.down.contains(&m.from) || self.down.contains(&m.to) {
                    continue;
                }
                if let Some(node) = self.nodes.get_mut(&m.to) {
                    node.step(m).expect("addressed to this node");
                }
            }
        }
        panic!("the cluster did not settle");
    }

    /// One tick of simulated time on every live node, then everything it caused.
    fn tick(&mut self) {
        for (id, node) in self.nodes.iter_mut() {
            if !self.down.contains(id) {
                node.tick();
            }
        }
        self.stabilize();
    }

    fn ticks(&mut self, n: u64) {
        for _ in 0..n {
            self.tick();
        }
    }

    fn elect(&mut self, id: u64) {
        self.node_mut(id).campaign();
        self.stabilize();
        assert_eq!(self.node(id).status().role, Role::Leader);
    }

    /// Messages sent to `to` since `since` (an index into `sent`).
    fn sent_to(&self, to: u64, since: usize) -> Vec<&Message> {
        self.sent[since..]
            .iter()
            .filter(|m| m.to == NodeId(to))
            .collect()
    }
}

fn remove(ids: &[u64]) -> ConfChange {
    ConfChange {
        changes: ids
            .iter()
            .map(|&id| ConfChangeSingle::Remove(NodeId(id)))
            .collect(),
    }
}

/// The index of the last membership entry `id` applied (0 if none).
fn last_conf_applied(cluster: &Cluster, id: u64) -> LogIndex {
    cluster
        .applied
        .get(&NodeId(id))
        .and_then(|entries| {
            entries
                .iter()
                .rev()
                .find(|e| e.kind == EntryKind::ConfChange)
        })
        .map_or(LogIndex(0), |e| e.index)
}

#[test]
fn a_removed_member_learns_that_its_removal_committed() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    // A write the removed member holds a client for (it forwarded it): it must apply it.
    let write = cluster
        .node_mut(1)
        .propose(vec![Bytes::from_static(b"forwarded by 3")])
        .expect("leader");
    cluster
        .node_mut(1)
        .propose_conf_change(&remove(&[3]))
        .expect("no change pending");
    cluster.stabilize();
    // The joint entry committed and the leader appended the leave-joint entry itself, which
    // removed node 3 from its configuration.
    let status = cluster.node(1).status();
    assert!(!status.conf_state.is_joint());
    assert!(!status.conf_state.is_voter(NodeId(3)));
    let leave_index = last_conf_applied(&cluster, 1);
    assert!(leave_index > write.last, "leader applied the leave entry");
    // Heartbeats carry the commit to node 3 and its answer ends its departure.
    cluster.ticks(3);
    assert!(cluster.node(1).status().departing.is_empty());
    assert_eq!(
        last_conf_applied(&cluster, 3),
        leave_index,
        "node 3 applied its own removal"
    );
    let applied_by_3: Vec<LogIndex> = cluster.applied[&NodeId(3)]
        .iter()
        .map(|e| e.index)
        .collect();
    assert!(applied_by_3.contains(&write.last));
    let removed = cluster.node(3).status();
    assert!(!removed.conf_state.is_voter(NodeId(3)));
    assert!(removed.commit >= leave_index);
    // Knowing it is out, node 3 never campaigns, and the leader no longer talks to it.
    let since = cluster.sent.len();
    cluster.ticks(5 * Config::new(NodeId(1)).election_timeout_ticks);
    let votes_asked = cluster.sent[since..]
        .iter()
        .filter(|m| m.from == NodeId(3) && matches!(m.body, MessageBody::RequestVote { .. }))
        .count();
    assert_eq!(
        votes_asked, 0,
        "a member that knows it is removed campaigns"
    );
    assert!(cluster.sent_to(3, since).is_empty());
    assert_eq!(cluster.node(1).status().role, Role::Leader);
}

#[test]
fn a_dead_removed_member_is_given_up_and_never_blocks_commit() {
    let election_timeout_ticks = Config::new(NodeId(1)).election_timeout_ticks;
    let mut cluster = Cluster::new(&[1, 2, 3, 4, 5]);
    cluster.elect(1);
    // Nodes 4 and 5 die; the two survivors with the leader are a majority of the five.
    cluster.down.extend([NodeId(4), NodeId(5)]);
    cluster
        .node_mut(1)
        .propose_conf_change(&remove(&[4, 5]))
        .expect("no change pending");
    cluster.stabilize();
    let status = cluster.node(1).status();
    assert_eq!(
        status.conf_state.voters,
        [1, 2, 3].into_iter().map(NodeId).collect::<BTreeSet<_>>()
    );
    assert!(!status.conf_state.is_joint());
    assert_eq!(
        status.departing,
        [4, 5].into_iter().map(NodeId).collect::<BTreeSet<_>>()
    );
    assert!(!status.progress.contains_key(&NodeId(4)));
    let leave_index = last_conf_applied(&cluster, 1);
    assert!(status.commit >= leave_index);

    // Meanwhile they are still sent to, count for nothing, and 3 of the 3 members commit.
    // Then node 3 goes down as well: commit, ReadIndex and check-quorum need only 1 and 2.
    let since = cluster.sent.len();
    cluster.tick();
    assert!(
        !cluster.sent_to(4, since).is_empty(),
        "replication to 4 goes on"
    );
    cluster.down.insert(NodeId(3));
    let write = cluster
        .node_mut(1)
        .propose(vec![Bytes::from_static(b"while 4 and 5 depart")])
        .expect("leader");
    cluster.stabilize();
    assert!(cluster.node(1).status().commit >= write.last);
    cluster
        .node_mut(1)
        .read_index(Bytes::from_static(b"read"))
        .expect("leader");
    cluster.stabilize();
    assert_eq!(cluster.reads_served, 1, "ReadIndex confirmed by 1 and 2");

    // Two election timeouts after the removal, the leader gives them up for good; it never
    // stepped down for want of their answers.
    cluster.ticks(2 * election_timeout_ticks);
    let status = cluster.node(1).status();
    assert_eq!(status.role, Role::Leader);
    assert!(status.departing.is_empty(), "still departing: {status:?}");
    let since = cluster.sent.len();
    cluster.ticks(3 * election_timeout_ticks);
    assert!(cluster.sent_to(4, since).is_empty());
    assert!(cluster.sent_to(5, since).is_empty());
    assert_eq!(cluster.node(1).status().role, Role::Leader);
}

fn add_voters(ids: &[u64]) -> ConfChange {
    ConfChange {
        changes: ids
            .iter()
            .map(|&id| ConfChangeSingle::AddVoter(NodeId(id)))
            .collect(),
    }
}

fn nodes(ids: &[u64]) -> BTreeSet<NodeId> {
    ids.iter().copied().map(NodeId).collect()
}

#[test]
fn a_guest_is_synced_counts_for_nothing_and_becomes_a_member_with_its_progress() {
    // A one-voter cluster with history, and a server that starts as an observer of it.
    let mut cluster = Cluster::new(&[1]);
    cluster.elect(1);
    for k in 0..5u8 {
        cluster
            .node_mut(1)
            .propose(vec![Bytes::from(vec![k])])
            .expect("leader");
    }
    cluster.stabilize();
    cluster.add_node(2, &[1], &[2]);
    cluster.ticks(3);
    assert_eq!(
        cluster.node(2).status().commit,
        LogIndex(0),
        "the leader replicates to a node it does not know"
    );

    // Attached, it is brought up to date and kept there, outside the membership.
    assert!(cluster.node_mut(1).attach_guest(NodeId(2)));
    cluster.stabilize();
    cluster.tick();
    let leader = cluster.node(1).status();
    assert_eq!(
        leader.guests.keys().copied().collect::<BTreeSet<_>>(),
        nodes(&[2])
    );
    assert!(!leader.progress.contains_key(&NodeId(2)));
    assert_eq!(leader.conf_state.voters, nodes(&[1]));
    let guest = cluster.node(2).status();
    assert_eq!(guest.commit, leader.commit);
    assert_eq!(guest.leader, Some(NodeId(1)));
    let applied_by_2: Vec<LogIndex> = cluster.applied[&NodeId(2)]
        .iter()
        .map(|e| e.index)
        .collect();
    let applied_by_1: Vec<LogIndex> = cluster.applied[&NodeId(1)]
        .iter()
        .map(|e| e.index)
        .collect();
    assert_eq!(applied_by_2, applied_by_1);

    // It counts toward nothing: with it down, the lone voter still commits.
    cluster.down.insert(NodeId(2));
    let write = cluster
        .node_mut(1)
        .propose(vec![Bytes::from_static(b"guest down")])
        .expect("leader");
    cluster.stabilize();
    assert!(cluster.node(1).status().commit >= write.last);
    cluster.down.remove(&NodeId(2));
    cluster.tick();
    assert_eq!(
        cluster.node(2).status().commit,
        cluster.node(1).status().commit
    );

    // A membership change makes it a voter: no longer a guest, and now needed for commit.
    cluster
        .node_mut(1)
        .propose_conf_change(&add_voters(&[2]))
        .expect("no change pending");
    cluster.stabilize();
    cluster.tick();
    let leader = cluster.node(1).status();
    assert_eq!(leader.conf_state.voters, nodes(&[1, 2]));
    assert!(!leader.conf_state.is_joint());
    assert!(leader.guests.is_empty());
    assert!(leader.progress.contains_key(&NodeId(2)));
    assert_eq!(cluster.node(2).status().conf_state.voters, nodes(&[1, 2]));
    cluster.down.insert(NodeId(2));
    let write = cluster
        .node_mut(1)
        .propose(vec![Bytes::from_static(b"needs 2 of 2")])
        .expect("leader");
    cluster.stabilize();
    assert!(
        cluster.node(1).status().commit < write.last,
        "committed without the new voter"
    );
    cluster.down.remove(&NodeId(2));
    cluster.tick();
    assert!(cluster.node(1).status().commit >= write.last);
}

#[test]
fn only_a_leader_takes_guests_and_a_silent_one_is_dropped() {
    let election_timeout_ticks = Config::new(NodeId(1)).election_timeout_ticks;
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    cluster.add_node(4, &[1, 2, 3], &[4]);
    assert!(!cluster.node_mut(2).attach_guest(NodeId(4)), "a follower");
    assert!(!cluster.node_mut(1).attach_guest(NodeId(1)), "itself");
    assert!(!cluster.node_mut(1).attach_guest(NodeId(3)), "a member");
    assert!(cluster.node_mut(1).attach_guest(NodeId(4)));
    cluster.stabilize();
    assert_eq!(
        cluster.node(4).status().commit,
        cluster.node(1).status().commit
    );

    // While it answers, it stays; once silent for two election timeouts, it is dropped.
    cluster.ticks(3 * election_timeout_ticks);
    assert_eq!(
        cluster
            .node(1)
            .status()
            .guests
            .keys()
            .copied()
            .collect::<BTreeSet<_>>(),
        nodes(&[4])
    );
    cluster.down.insert(NodeId(4));
    cluster.ticks(2 * election_timeout_ticks);
    let status = cluster.node(1).status();
    assert!(status.guests.is_empty(), "still a guest: {status:?}");
    assert_eq!(status.role, Role::Leader);
    let since = cluster.sent.len();
    cluster.ticks(election_timeout_ticks);
    assert!(cluster.sent_to(4, since).is_empty());

    // A new leader starts without guests.
    cluster.down.remove(&NodeId(4));
    assert!(cluster.node_mut(1).attach_guest(NodeId(4)));
    cluster.stabilize();
    cluster.node_mut(1).transfer_leader(NodeId(2));
    cluster.stabilize();
    assert_eq!(cluster.node(2).status().role, Role::Leader);
    assert!(cluster.node(2).status().guests.is_empty());
    assert!(cluster.node(1).status().guests.is_empty());
}
