//! The public contract, checked directly: the persistence rules of `Ready`, proposal limits
//! and errors, zxids, single-node operation.

use arbor_raft::{
    ConfState, Config, EntryKind, LogIndex, MemStorage, MessageBody, NodeId, ProposeError, RawNode,
    ReadError, Ready, Role, Storage,
};
use bytes::Bytes;

fn persist(node: &mut RawNode<MemStorage>, ready: &Ready) {
    if let Some(snapshot) = &ready.snapshot {
        node.store_mut()
            .apply_snapshot(snapshot.clone())
            .expect("newer snapshot");
    }
    node.store_mut().append(&ready.entries);
    if let Some(hs) = ready.hard_state {
        node.store_mut().set_hard_state(hs);
    }
}

fn single_node(config: Config) -> RawNode<MemStorage> {
    let storage = MemStorage::new_with_conf_state(ConfState::with_voters([config.id]));
    RawNode::new(&config, storage).expect("valid config")
}

/// Drives a single node until it has nothing left to do; returns the applied entries.
fn drain(node: &mut RawNode<MemStorage>) -> Vec<arbor_raft::Entry> {
    let mut applied = Vec::new();
    while node.has_ready() {
        let ready = node.ready();
        persist(node, &ready);
        applied.extend(ready.committed_entries.iter().cloned());
        node.advance(ready);
    }
    applied
}

#[test]
fn single_voter_commits_a_proposal_once_durable() {
    let mut node = single_node(Config::new(NodeId(1)));
    node.campaign();
    drain(&mut node);
    assert_eq!(node.status().role, Role::Leader);
    node.propose(vec![Bytes::from_static(b"a")])
        .expect("leader");
    let ready = node.ready();
    assert_eq!(ready.entries.len(), 1);
    assert!(ready.committed_entries.is_empty(), "not durable yet");
    persist(&mut node, &ready);
    node.advance(ready);
    // Only the acknowledgement of durability lets the leader count itself.
    let applied = drain(&mut node);
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].data, Bytes::from_static(b"a"));
}

#[test]
fn leader_does_not_count_itself_before_advance() {
    let mut node = single_node(Config::new(NodeId(1)));
    node.campaign();
    drain(&mut node);
    let commit = node.status().commit;
    node.propose(vec![Bytes::from_static(b"a")])
        .expect("leader");
    let ready = node.ready();
    // The application has not said the entry is durable: commit must not move, whatever
    // else happens meanwhile.
    node.tick();
    assert_eq!(node.status().commit, commit);
    persist(&mut node, &ready);
    node.advance(ready);
    assert!(node.status().commit > commit);
}

#[test]
fn zxid_positions_restart_at_each_term() {
    let mut node = single_node(Config::new(NodeId(1)));
    node.campaign();
    let mut applied = drain(&mut node);
    node.propose(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")])
        .expect("leader");
    applied.extend(drain(&mut node));
    let zxids: Vec<(u64, u32)> = applied
        .iter()
        .map(|e| {
            let z = e.zxid().expect("small term");
            (z.term().0, z.position())
        })
        .collect();
    assert_eq!(zxids, vec![(1, 0), (1, 1), (1, 2)]);
    assert_eq!(applied[0].kind, EntryKind::NoOp);
}

#[test]
fn follower_rejects_proposals_naming_the_leader() {
    let conf = ConfState::with_voters([NodeId(1), NodeId(2)]);
    let mut a = RawNode::new(
        &Config::new(NodeId(1)),
        MemStorage::new_with_conf_state(conf.clone()),
    )
    .expect("valid");
    let mut b = RawNode::new(
        &Config::new(NodeId(2)),
        MemStorage::new_with_conf_state(conf),
    )
    .expect("valid");
    assert_eq!(
        b.propose(vec![Bytes::new()]),
        Err(ProposeError::NotLeader { leader: None })
    );
    assert_eq!(b.read_index(Bytes::new()), Err(ReadError::NoLeader));
    a.campaign();
    // Exchange messages until a leads.
    for _ in 0..20 {
        let mut out = Vec::new();
        for node in [&mut a, &mut b] {
            if node.has_ready() {
                let mut ready = node.ready();
                out.append(&mut ready.messages);
                persist(node, &ready);
                out.append(&mut ready.persisted_messages);
                node.advance(ready);
            }
        }
        for m in out {
            if m.to == NodeId(1) {
                a.step(m).expect("for a");
            } else {
                b.step(m).expect("for b");
            }
        }
    }
    assert_eq!(a.status().role, Role::Leader);
    assert_eq!(
        b.propose(vec![Bytes::new()]),
        Err(ProposeError::NotLeader {
            leader: Some(NodeId(1))
        })
    );
}

#[test]
fn votes_leave_only_after_persistence() {
    let conf = ConfState::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
    let mut config = Config::new(NodeId(2));
    config.pre_vote = false;
    let mut node = RawNode::new(&config, MemStorage::new_with_conf_state(conf)).expect("valid");
    node.step(arbor_raft::Message {
        from: NodeId(1),
        to: NodeId(2),
        term: arbor_raft::Term(1),
        body: MessageBody::RequestVote {
            pre_vote: false,
            last_index: LogIndex(0),
            last_term: arbor_raft::Term(0),
            transfer: false,
        },
    })
    .expect("for 2");
    let ready = node.ready();
    assert!(
        ready.messages.is_empty(),
        "a vote must not leave before it is durable"
    );
    assert_eq!(ready.persisted_messages.len(), 1);
    assert_eq!(ready.hard_state.map(|h| h.vote), Some(Some(NodeId(1))));
    node.advance(ready);
}

#[test]
fn proposals_beyond_the_uncommitted_limit_are_rejected() {
    let mut config = Config::new(NodeId(1));
    config.uncommitted_entries_max = 3;
    config.entry_bytes_max = 8;
    let mut node = single_node(config);
    node.campaign();
    drain(&mut node);
    assert_eq!(
        node.propose(vec![Bytes::from_static(b"too large!")]),
        Err(ProposeError::EntryTooLarge {
            size_bytes: 10 + arbor_raft::ENTRY_HEADER_BYTES,
            limit_bytes: 8
        })
    );
    node.propose(vec![Bytes::new(), Bytes::new()])
        .expect("room for two");
    assert_eq!(
        node.propose(vec![Bytes::new(), Bytes::new()]),
        Err(ProposeError::Overloaded)
    );
    drain(&mut node);
    node.propose(vec![Bytes::new(), Bytes::new()])
        .expect("room again once committed");
}

#[test]
fn a_restarted_node_reapplies_from_its_snapshot() {
    let mut node = single_node(Config::new(NodeId(1)));
    node.campaign();
    drain(&mut node);
    node.propose(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")])
        .expect("leader");
    drain(&mut node);
    let conf = node.status().conf_state;
    node.store_mut()
        .create_snapshot(LogIndex(2), conf, Bytes::from_static(b"state@2"))
        .expect("applied");
    let storage = node.store().clone();
    assert_eq!(storage.first_index(), LogIndex(3));
    let mut restarted = RawNode::new(&Config::new(NodeId(1)), storage).expect("restart");
    let applied = drain(&mut restarted);
    let indexes: Vec<u64> = applied.iter().map(|e| e.index.0).collect();
    assert_eq!(
        indexes,
        vec![3],
        "only what follows the snapshot is re-applied"
    );
}

#[test]
fn a_learner_forgets_a_leader_it_has_not_heard_from_for_an_election_timeout() {
    let mut conf = ConfState::with_voters([NodeId(1), NodeId(2)]);
    conf.learners.insert(NodeId(3));
    let config = Config::new(NodeId(3));
    let mut learner =
        RawNode::new(&config, MemStorage::new_with_conf_state(conf)).expect("valid config");
    let heartbeat = |term| arbor_raft::Message {
        from: NodeId(1),
        to: NodeId(3),
        term,
        body: MessageBody::Heartbeat {
            commit: LogIndex(0),
            sent_tick: 0,
            read_round: 0,
        },
    };
    learner
        .step(heartbeat(arbor_raft::Term(1)))
        .expect("a heartbeat");
    drain(&mut learner);
    assert_eq!(learner.status().leader, Some(NodeId(1)));
    // Heard from within the timeout: still the leader.
    for _ in 0..config.election_timeout_ticks - 1 {
        learner.tick();
    }
    learner
        .step(heartbeat(arbor_raft::Term(1)))
        .expect("a heartbeat");
    drain(&mut learner);
    for _ in 0..config.election_timeout_ticks - 1 {
        learner.tick();
    }
    assert_eq!(learner.status().leader, Some(NodeId(1)));
    // Silence for two election timeouts (past any randomized timeout): gone, and the learner
    // never campaigns.
    for _ in 0..2 * config.election_timeout_ticks {
        learner.tick();
        let ready = learner.ready();
        assert!(ready.messages.is_empty() && ready.persisted_messages.is_empty());
        persist(&mut learner, &ready);
        learner.advance(ready);
    }
    let status = learner.status();
    assert_eq!(status.leader, None);
    assert_eq!(status.term, arbor_raft::Term(1));
    assert_eq!(status.role, Role::Follower);
    // The next word from a leader makes it known again.
    learner
        .step(heartbeat(arbor_raft::Term(1)))
        .expect("a heartbeat");
    drain(&mut learner);
    assert_eq!(learner.status().leader, Some(NodeId(1)));
}
