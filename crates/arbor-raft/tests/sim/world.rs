//! The simulated cluster: nodes, a faulty network, crashes that lose unsynced writes, long
//! pauses, membership changes and snapshots, all driven by one seeded RNG.

use std::collections::{BTreeMap, BTreeSet};

use arbor_raft::{
    Bugs, ConfChange, ConfChangeSingle, ConfState, Config, Entry, EntryKind, LogIndex, MemStorage,
    Message, MessageBody, NodeId, ProposeError, RawNode, ReadOnlyOption, Ready, Role, Snapshot,
    Storage, Term,
};
use bytes::Bytes;

use super::checker::{Checker, Violation, apply_digest};
pub use super::faults::{Faults, Rng};

/// One simulated server.
pub struct SimNode {
    pub id: NodeId,
    pub config: Config,
    /// `None` while crashed.
    pub raw: Option<RawNode<MemStorage>>,
    /// What survives a crash (kept in sync on every persist).
    pub durable: MemStorage,
    /// A Ready whose messages went out and whose writes are not durable yet.
    pending: Option<(u64, Ready)>,
    pub paused_until: Option<u64>,
    missed_ticks: u64,
    /// -1: this node's clock runs slow, 1: fast, 0: exact.
    pub clock_skew: i8,
    pub down_until: Option<u64>,
    /// State machine: applied index and running digest, and the membership applied.
    pub applied: LogIndex,
    pub digest: u64,
    pub conf: ConfState,
    last_zxid: u64,
    durable_commit: LogIndex,
}

pub struct World {
    pub rng: Rng,
    /// Decides guest attachments only, so that adding them left the rest of every seed's
    /// draws as they were.
    guest_rng: Rng,
    pub now: u64,
    pub nodes: BTreeMap<NodeId, SimNode>,
    /// (deliver at, sequence, message)
    network: Vec<(u64, u64, Message)>,
    seq: u64,
    /// Directed links that drop everything: (from, to) -> until.
    blocked: BTreeMap<(NodeId, NodeId), u64>,
    pub faults: Faults,
    pub checker: Checker,
    pub bugs: Bugs,
    next_proposal: u64,
    /// Accepted proposals not yet seen applied: payload -> term.
    pub pending_proposals: BTreeMap<Vec<u8>, Term>,
    pub committed_proposals: BTreeSet<Vec<u8>>,
    next_read: u64,
    pub stats: Stats,
    pub trace: bool,
    /// Bytes of padding in each snapshot taken (its size, less the 8-byte digest).
    pub snapshot_pad_bytes: usize,
    /// Snapshot transfers: (leader, leader term, follower, snapshot index) -> the largest
    /// `received_bytes` delivered to the leader. Every chunk the leader sends must end
    /// within its window of that (an upper bound of what the leader believes acknowledged,
    /// so the check does not trust the leader's own accounting).
    snapshot_acked: BTreeMap<(NodeId, Term, NodeId, LogIndex), u64>,
    /// Followers holding part of a snapshot they have not installed: follower -> index.
    receiving_snapshot: BTreeMap<NodeId, LogIndex>,
}

#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub crashes: u64,
    pub pauses: u64,
    pub partitions: u64,
    pub conf_changes: u64,
    /// Nodes outside the membership a leader was asked to replicate to.
    pub guests_attached: u64,
    pub snapshots: u64,
    pub snapshots_installed: u64,
    pub proposals_rejected: u64,
    /// Snapshot chunks leaders put on the wire (first sends and resends).
    pub snapshot_chunks_sent: u64,
    /// Chunks sent below what the follower had acknowledged: the leader went back after the
    /// follower reported holding less (it restarted).
    pub snapshot_chunks_below_ack: u64,
    /// Chunk acknowledgements delivered to leaders.
    pub snapshot_acks_delivered: u64,
    /// Crashes of a follower holding part of a snapshot it had not installed.
    pub crashes_mid_snapshot: u64,
    /// The largest snapshot installed, in bytes.
    pub largest_snapshot_installed_bytes: u64,
}

pub const ELECTION_TICKS: u64 = 10;

impl World {
    pub fn new(
        seed: u64,
        voters: usize,
        spares: usize,
        read_only: ReadOnlyOption,
        bugs: Bugs,
    ) -> World {
        World::new_with(seed, voters, spares, read_only, bugs, &|_| {})
    }

    /// Like [`World::new`], with a last say on each node's configuration.
    pub fn new_with(
        seed: u64,
        voters: usize,
        spares: usize,
        read_only: ReadOnlyOption,
        bugs: Bugs,
        tweak: &dyn Fn(&mut Config),
    ) -> World {
        let mut rng = Rng::new(seed);
        let faults = Faults::random(&mut rng);
        let initial = ConfState::with_voters((1..=voters as u64).map(NodeId));
        let mut nodes = BTreeMap::new();
        for i in 1..=(voters + spares) as u64 {
            let id = NodeId(i);
            let mut config = Config::new(id);
            config.election_timeout_ticks = ELECTION_TICKS;
            config.heartbeat_interval_ticks = 2;
            config.random_seed = rng.next_u64();
            config.read_only_option = read_only;
            config.append_bytes_max = 200;
            config.inflight_msgs_max = 4;
            config.inflight_bytes_max = 2000;
            config.uncommitted_entries_max = 64;
            config.snapshot_chunk_bytes_max = 64;
            config.snapshot_inflight_chunks_max = 4;
            config.snapshot_inflight_bytes_max = 4 * 64;
            config.snapshot_chunk_timeout_ticks = 8;
            tweak(&mut config);
            let durable = MemStorage::new_with_conf_state(initial.clone());
            let mut raw = RawNode::new(&config, durable.clone()).expect("valid config");
            raw.set_deliberate_bugs(bugs);
            nodes.insert(
                id,
                SimNode {
                    id,
                    config,
                    raw: Some(raw),
                    durable,
                    pending: None,
                    paused_until: None,
                    missed_ticks: 0,
                    clock_skew: [-1, 0, 1][rng.below(3) as usize],
                    down_until: None,
                    applied: LogIndex(0),
                    digest: 0,
                    conf: initial.clone(),
                    last_zxid: 0,
                    durable_commit: LogIndex(0),
                },
            );
        }
        World {
            rng,
            guest_rng: Rng::new(seed ^ 0x6775_6573_7473),
            now: 0,
            nodes,
            network: Vec::new(),
            seq: 0,
            blocked: BTreeMap::new(),
            faults,
            checker: Checker::default(),
            bugs,
            next_proposal: 0,
            pending_proposals: BTreeMap::new(),
            committed_proposals: BTreeSet::new(),
            next_read: 0,
            stats: Stats::default(),
            trace: false,
            snapshot_pad_bytes: 150,
            snapshot_acked: BTreeMap::new(),
            receiving_snapshot: BTreeMap::new(),
        }
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn running(&self, id: NodeId) -> bool {
        let n = &self.nodes[&id];
        n.raw.is_some() && n.paused_until.is_none()
    }

    /// The leader with the highest term among running nodes.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.paused_until.is_none())
            .filter_map(|n| n.raw.as_ref().map(|r| (n.id, r.status())))
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(_, s)| s.term)
            .map(|(id, _)| id)
    }

    fn send(&mut self, m: Message) {
        if self.blocked.contains_key(&(m.from, m.to)) || self.rng.chance(self.faults.drop_per_mille)
        {
            return;
        }
        let copies = if self.rng.chance(self.faults.duplicate_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + 1 + self.rng.below(self.faults.delay_ticks_max + 1);
            self.seq += 1;
            self.network.push((at, self.seq, m.clone()));
        }
    }

    /// One tick of simulated time. `faulty` enables the fault injection.
    pub fn step(&mut self, faulty: bool, client_load: bool) -> Result<(), Violation> {
        self.now += 1;
        if faulty {
            self.inject_faults();
        }
        self.wake_up();
        let every = self.faults.clock_skew_every;
        let now = self.now;
        for id in self.ids() {
            if self.running(id) {
                if let Some(n) = self.nodes.get_mut(&id) {
                    let ticks = match n.clock_skew {
                        _ if every == 0 || !(now + id.0).is_multiple_of(every) => 1,
                        -1 => 0,
                        1 => 2,
                        _ => 1,
                    };
                    if let Some(raw) = n.raw.as_mut() {
                        for _ in 0..ticks {
                            raw.tick();
                        }
                    }
                }
            } else if self.nodes[&id].paused_until.is_some()
                && let Some(n) = self.nodes.get_mut(&id)
            {
                n.missed_ticks += 1;
            }
        }
        self.deliver()?;
        if client_load {
            self.client_actions();
        }
        if faulty && self.rng.chance(self.faults.conf_change_per_mille) {
            self.propose_conf_change();
        }
        if faulty && self.rng.chance(self.faults.transfer_per_mille) {
            self.transfer_leadership();
        }
        if faulty && self.guest_rng.chance(self.faults.guest_per_mille) {
            self.attach_guest();
        }
        if self.rng.chance(self.faults.snapshot_per_mille) {
            self.take_snapshot();
        }
        for id in self.ids() {
            self.handle_ready(id)?;
        }
        self.check()
    }

    fn inject_faults(&mut self) {
        let ids = self.ids();
        self.blocked.retain(|_, until| *until > self.now);
        if self.rng.chance(self.faults.partition_per_mille) {
            self.stats.partitions += 1;
            let until = self.now + 5 + self.rng.below(8 * ELECTION_TICKS);
            match self.rng.below(3) {
                0 => {
                    // Isolate one node (often the leader) both ways.
                    let victim = if self.rng.chance(500) {
                        self.leader()
                    } else {
                        None
                    }
                    .or_else(|| self.rng.pick(&ids));
                    if let Some(v) = victim {
                        for &o in &ids {
                            if o != v {
                                self.blocked.insert((v, o), until);
                                self.blocked.insert((o, v), until);
                            }
                        }
                    }
                }
                1 => {
                    // Split into two random halves.
                    let side: BTreeSet<NodeId> = ids
                        .iter()
                        .copied()
                        .filter(|_| self.rng.chance(500))
                        .collect();
                    for &a in &ids {
                        for &b in &ids {
                            if side.contains(&a) != side.contains(&b) {
                                self.blocked.insert((a, b), until);
                            }
                        }
                    }
                }
                _ => {
                    // One-way: a can no longer reach b.
                    if let (Some(a), Some(b)) = (self.rng.pick(&ids), self.rng.pick(&ids))
                        && a != b
                    {
                        self.blocked.insert((a, b), until);
                    }
                }
            }
        }
        if self.rng.chance(self.faults.crash_per_mille)
            && let Some(id) = self.rng.pick(&ids)
        {
            let down_for = 1 + self.rng.below(4 * ELECTION_TICKS);
            self.crash(id, self.now + down_for);
        }
        if self.rng.chance(self.faults.pause_per_mille) {
            let victim = if self.rng.chance(500) {
                self.leader()
            } else {
                None
            }
            .or_else(|| self.rng.pick(&ids));
            if let Some(id) = victim {
                let pause = ELECTION_TICKS + self.rng.below(5 * ELECTION_TICKS);
                self.pause(id, self.now + pause);
            }
        }
    }

    /// Crashes `id`: everything not yet durable (its outstanding Ready) is lost.
    pub fn crash(&mut self, id: NodeId, until: u64) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        if n.raw.is_none() {
            return;
        }
        self.stats.crashes += 1;
        if self.receiving_snapshot.remove(&id).is_some() {
            self.stats.crashes_mid_snapshot += 1;
        }
        n.raw = None;
        n.pending = None;
        n.paused_until = None;
        n.missed_ticks = 0;
        n.down_until = Some(until);
        if self.trace {
            println!("t={} crash {id}", self.now);
        }
    }

    /// Freezes `id` (a stop-the-world pause); messages to it wait.
    pub fn pause(&mut self, id: NodeId, until: u64) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        if n.raw.is_none() || n.paused_until.is_some() {
            return;
        }
        self.stats.pauses += 1;
        n.paused_until = Some(until);
        if self.trace {
            println!("t={} pause {id} until {until}", self.now);
        }
    }

    fn restart(&mut self, id: NodeId) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        let mut raw = RawNode::new(&n.config, n.durable.clone()).expect("restart");
        raw.set_deliberate_bugs(self.bugs);
        let snapshot = n.durable.snapshot().unwrap_or_default();
        n.applied = snapshot.metadata.index;
        n.digest = decode_digest(&snapshot);
        n.conf = snapshot.metadata.conf_state.clone();
        n.last_zxid = 0;
        n.raw = Some(raw);
        n.down_until = None;
        if self.trace {
            println!("t={} restart {id}", self.now);
        }
    }

    fn wake_up(&mut self) {
        for id in self.ids() {
            let n = &self.nodes[&id];
            if n.down_until.is_some_and(|t| t <= self.now) {
                self.restart(id);
            }
            let n = &self.nodes[&id];
            if n.paused_until.is_some_and(|t| t <= self.now) {
                self.resume(id);
            }
        }
    }

    /// Ends a pause: a monotonic clock kept counting, so every missed tick comes first.
    pub fn resume(&mut self, id: NodeId) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        n.paused_until = None;
        let missed = std::mem::take(&mut n.missed_ticks);
        if let Some(raw) = n.raw.as_mut() {
            for _ in 0..missed {
                raw.tick();
            }
        }
        if self.trace {
            println!("t={} resume {id} after {missed} ticks", self.now);
        }
    }

    /// Cuts `id` off from every other node in both directions until `until`.
    pub fn isolate(&mut self, id: NodeId, until: u64) {
        for other in self.ids() {
            if other != id {
                self.blocked.insert((id, other), until);
                self.blocked.insert((other, id), until);
            }
        }
    }

    /// Prints every node's status (for traces).
    pub fn dump(&self) {
        for n in self.nodes.values() {
            match n.raw.as_ref() {
                Some(raw) => println!(
                    "node {}: {:?} applied={} paused={:?}",
                    n.id,
                    raw.status(),
                    n.applied,
                    n.paused_until
                ),
                None => println!("node {}: down", n.id),
            }
        }
    }

    /// Drops every message from `from` to `to` until `until` (a one-way partition).
    pub fn block(&mut self, from: NodeId, to: NodeId, until: u64) {
        self.blocked.insert((from, to), until);
    }

    /// Removes every partition.
    pub fn unblock_all(&mut self) {
        self.blocked.clear();
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
        for id in self.ids() {
            if self.nodes[&id].raw.is_none() {
                self.restart(id);
            }
            if self.nodes[&id].paused_until.is_some() {
                self.resume(id);
            }
        }
        self.faults.drop_per_mille = 0;
        self.faults.duplicate_per_mille = 0;
        // Raft's timing requirement (§5.6): a round trip, fsyncs included, well below the
        // election timeout. The faulty phase may break it; liveness is owed only once it holds.
        self.faults.delay_ticks_max = self.faults.delay_ticks_max.min(1);
        self.faults.persist_delay_ticks_max = self.faults.persist_delay_ticks_max.min(1);
    }

    fn deliver(&mut self) -> Result<(), Violation> {
        let now = self.now;
        let mut due = Vec::new();
        let mut keep = Vec::with_capacity(self.network.len());
        for item in self.network.drain(..) {
            let paused = self
                .nodes
                .get(&item.2.to)
                .is_some_and(|n| n.paused_until.is_some());
            if item.0 <= now && !paused {
                due.push(item);
            } else {
                keep.push(item);
            }
        }
        self.network = keep;
        // Random order among the due messages: reordering.
        for i in (1..due.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            due.swap(i, j);
        }
        for (_, _, m) in due {
            let to = m.to;
            if self.trace {
                println!("t={} deliver {m}", self.now);
            }
            self.observe_delivery(&m);
            if let Some(raw) = self.nodes.get_mut(&to).and_then(|n| n.raw.as_mut()) {
                raw.step(m)
                    .map_err(|e| Violation(format!("step refused: {e}")))?;
            }
        }
        Ok(())
    }

    fn client_actions(&mut self) {
        if self.rng.chance(300)
            && let Some(id) = self.rng.pick(&self.ids())
        {
            self.propose_on(id);
        }
        if self.rng.chance(100)
            && let Some(id) = self.rng.pick(&self.ids())
        {
            self.read_on(id);
        }
    }

    pub fn propose_on(&mut self, id: NodeId) -> bool {
        if !self.running(id) {
            return false;
        }
        self.next_proposal += 1;
        let payload = format!("p{}", self.next_proposal).into_bytes();
        let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut()) else {
            return false;
        };
        match raw.propose(vec![Bytes::from(payload.clone())]) {
            Ok(p) => {
                self.pending_proposals.insert(payload, p.term);
                true
            }
            Err(ProposeError::NotLeader { .. }) => false,
            Err(e) => {
                if self.trace {
                    println!("t={} propose on {id} refused: {e}", self.now);
                }
                self.stats.proposals_rejected += 1;
                false
            }
        }
    }

    fn read_on(&mut self, id: NodeId) {
        if !self.running(id) {
            return;
        }
        self.next_read += 1;
        let context = format!("r{}", self.next_read).into_bytes();
        let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut()) else {
            return;
        };
        if raw.read_index(Bytes::from(context.clone())).is_ok() {
            self.checker.read_requested(context);
        }
    }

    fn propose_conf_change(&mut self) {
        let Some(leader) = self.leader() else { return };
        let conf = self.nodes[&leader]
            .raw
            .as_ref()
            .map(|r| r.status().conf_state)
            .unwrap_or_default();
        if conf.is_joint() {
            return;
        }
        let all = self.ids();
        let voters: Vec<NodeId> = conf.voters.iter().copied().collect();
        let others: Vec<NodeId> = all
            .iter()
            .copied()
            .filter(|id| !conf.voters.contains(id))
            .collect();
        let mut changes = Vec::new();
        match self.rng.below(4) {
            0 => {
                if let Some(id) = self.rng.pick(&others) {
                    changes.push(ConfChangeSingle::AddLearner(id));
                }
            }
            1 => {
                if let Some(id) = self.rng.pick(&others) {
                    changes.push(ConfChangeSingle::AddVoter(id));
                }
            }
            2 => {
                if voters.len() > 3
                    && let Some(id) = self.rng.pick(&voters)
                {
                    changes.push(ConfChangeSingle::Remove(id));
                }
            }
            _ => {
                // Replace one voter by another at once (joint consensus).
                if let (Some(out), Some(inn)) = (self.rng.pick(&voters), self.rng.pick(&others)) {
                    changes.push(ConfChangeSingle::AddVoter(inn));
                    changes.push(ConfChangeSingle::AddLearner(out));
                }
            }
        }
        if changes.is_empty() {
            return;
        }
        let Some(raw) = self.nodes.get_mut(&leader).and_then(|n| n.raw.as_mut()) else {
            return;
        };
        if raw.propose_conf_change(&ConfChange { changes }).is_ok() {
            self.stats.conf_changes += 1;
        }
    }

    /// The application asks the leader to replicate to a node outside its membership (a
    /// server joining ZooKeeper-style); the node must then never count toward a quorum, and
    /// must apply exactly the committed log like everyone else.
    fn attach_guest(&mut self) {
        let Some(leader) = self.leader() else { return };
        let Some(raw) = self.nodes.get_mut(&leader).and_then(|n| n.raw.as_mut()) else {
            return;
        };
        let members = raw.status().conf_state.all_nodes();
        let outsiders: Vec<NodeId> = self
            .ids()
            .into_iter()
            .filter(|id| !members.contains(id))
            .collect();
        let Some(id) = self.guest_rng.pick(&outsiders) else {
            return;
        };
        let Some(raw) = self.nodes.get_mut(&leader).and_then(|n| n.raw.as_mut()) else {
            return;
        };
        if raw.attach_guest(id) {
            self.stats.guests_attached += 1;
        }
    }

    fn transfer_leadership(&mut self) {
        let Some(leader) = self.leader() else { return };
        let Some(raw) = self.nodes.get_mut(&leader).and_then(|n| n.raw.as_mut()) else {
            return;
        };
        let voters: Vec<NodeId> = raw
            .status()
            .conf_state
            .voters
            .iter()
            .copied()
            .filter(|&id| id != leader)
            .collect();
        if let Some(to) = self.rng.pick(&voters)
            && let Some(raw) = self.nodes.get_mut(&leader).and_then(|n| n.raw.as_mut())
        {
            raw.transfer_leader(to);
        }
    }

    /// Notes snapshot traffic arriving at a running node, for the window check and stats.
    fn observe_delivery(&mut self, m: &Message) {
        if self.nodes.get(&m.to).is_none_or(|n| n.raw.is_none()) {
            return;
        }
        match &m.body {
            MessageBody::SnapshotAck {
                snapshot_index,
                received_bytes,
                refused: None,
                ..
            } => {
                self.stats.snapshot_acks_delivered += 1;
                let acked = self
                    .snapshot_acked
                    .entry((m.to, m.term, m.from, *snapshot_index))
                    .or_insert(0);
                *acked = (*acked).max(*received_bytes);
            }
            MessageBody::Snapshot { metadata, .. }
                if self.nodes[&m.to].applied < metadata.index =>
            {
                self.receiving_snapshot.insert(m.to, metadata.index);
            }
            _ => {}
        }
    }

    /// Flow control: a chunk a leader sends ends within its window past the most the
    /// follower ever acknowledged to it.
    fn check_snapshot_window(&mut self, m: &Message) -> Result<(), Violation> {
        let MessageBody::Snapshot {
            metadata,
            offset,
            data,
            ..
        } = &m.body
        else {
            return Ok(());
        };
        self.stats.snapshot_chunks_sent += 1;
        let window = self.nodes[&m.from].config.snapshot_inflight_bytes_max;
        let acked = self
            .snapshot_acked
            .get(&(m.from, m.term, m.to, metadata.index))
            .copied()
            .unwrap_or(0);
        if *offset < acked {
            self.stats.snapshot_chunks_below_ack += 1;
        }
        let end = offset + data.len() as u64;
        if end > acked + window {
            return Err(Violation(format!(
                "snapshot flow control: {} sent [{offset}, {end}) of snapshot {} to {} with at \
                 most {acked} bytes acknowledged and a window of {window}",
                m.from, metadata.index, m.to
            )));
        }
        Ok(())
    }

    /// Snapshots `id`'s applied state now (padded by `snapshot_pad_bytes`) and compacts its
    /// log. Returns the snapshot's index, or `None` when there is too little to compact.
    pub fn snapshot_on(&mut self, id: NodeId) -> Option<LogIndex> {
        let pad = self.snapshot_pad_bytes;
        let n = self.nodes.get_mut(&id)?;
        let raw = n.raw.as_mut()?;
        let first = raw.store().first_index();
        if n.applied.0 < first.0 + 3 {
            return None;
        }
        // The state: its digest, padded so that it travels in several chunks.
        let mut data = n.digest.to_be_bytes().to_vec();
        data.extend(std::iter::repeat_n(0xab, pad));
        let index = n.applied;
        raw.store_mut()
            .create_snapshot(index, n.conf.clone(), Bytes::from(data))
            .ok()?;
        self.stats.snapshots += 1;
        n.durable = raw.store().clone();
        Some(index)
    }

    fn take_snapshot(&mut self) {
        let Some(id) = self.rng.pick(&self.ids()) else {
            return;
        };
        self.snapshot_on(id);
    }

    /// Drives one node's Ready cycle: take a Ready (its messages leave at once), persist it
    /// when its delay expired, then send what needed persistence, apply and advance.
    fn handle_ready(&mut self, id: NodeId) -> Result<(), Violation> {
        for _ in 0..4 {
            if !self.running(id) {
                return Ok(());
            }
            let n = self.nodes.get_mut(&id).expect("node exists");
            if n.pending.is_none() {
                let Some(raw) = n.raw.as_mut() else {
                    return Ok(());
                };
                if !raw.has_ready() {
                    return Ok(());
                }
                let mut ready = raw.ready();
                let messages = std::mem::take(&mut ready.messages);
                let delay = self.rng.below(self.faults.persist_delay_ticks_max + 1);
                let n = self.nodes.get_mut(&id).expect("node exists");
                n.pending = Some((self.now + delay, ready));
                for m in messages {
                    self.check_snapshot_window(&m)?;
                    self.send(m);
                }
            }
            let n = self.nodes.get_mut(&id).expect("node exists");
            match &n.pending {
                Some((at, _)) if *at <= self.now => {}
                _ => return Ok(()),
            }
            let Some((_, ready)) = n.pending.take() else {
                return Ok(());
            };
            self.persist_and_apply(id, ready)?;
        }
        Ok(())
    }

    fn persist_and_apply(&mut self, id: NodeId, mut ready: Ready) -> Result<(), Violation> {
        let n = self.nodes.get_mut(&id).expect("node exists");
        let raw = n.raw.as_mut().expect("running");
        if let Some(snapshot) = &ready.snapshot {
            raw.store_mut()
                .apply_snapshot(snapshot.clone())
                .map_err(|e| Violation(format!("node {id}: snapshot refused: {e}")))?;
            n.applied = snapshot.metadata.index;
            n.digest = decode_digest(snapshot);
            n.conf = snapshot.metadata.conf_state.clone();
            n.last_zxid = 0;
            self.stats.snapshots_installed += 1;
            self.stats.largest_snapshot_installed_bytes = self
                .stats
                .largest_snapshot_installed_bytes
                .max(snapshot.data.len() as u64);
            if self
                .receiving_snapshot
                .get(&id)
                .is_some_and(|&i| i <= snapshot.metadata.index)
            {
                self.receiving_snapshot.remove(&id);
            }
            self.checker.observe_snapshot(id, n.applied, n.digest)?;
        }
        raw.store_mut().append(&ready.entries);
        for e in &ready.entries {
            let prev = raw.store().term(e.index.prev()).ok();
            self.checker.observe_durable_entry(id, e, prev)?;
        }
        if let Some(hs) = ready.hard_state {
            raw.store_mut().set_hard_state(hs);
            let from = n
                .durable_commit
                .next()
                .max(raw.store().first_index().prev());
            for i in from.0..=hs.commit.0 {
                if let Ok(term) = raw.store().term(LogIndex(i)) {
                    self.checker
                        .observe_commit(id, LogIndex(i), term, hs.term)?;
                }
            }
            n.durable_commit = n.durable_commit.max(hs.commit);
        }
        n.durable = raw.store().clone();
        let persisted = std::mem::take(&mut ready.persisted_messages);
        for e in &ready.committed_entries {
            self.apply(id, e)?;
        }
        for rs in &ready.read_states {
            self.checker.read_answered(id, &rs.context, rs.index)?;
        }
        let raw = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.raw.as_mut())
            .expect("running");
        raw.advance(ready);
        for m in persisted {
            self.send(m);
        }
        Ok(())
    }

    fn apply(&mut self, id: NodeId, e: &Entry) -> Result<(), Violation> {
        let n = self.nodes.get_mut(&id).expect("node exists");
        if e.index <= n.applied {
            return Ok(());
        }
        if e.index != n.applied.next() {
            return Err(Violation(format!(
                "node {id} applies {} after {}",
                e.index, n.applied
            )));
        }
        let zxid = e.zxid().map_err(|err| Violation(format!("zxid: {err}")))?.0;
        if zxid <= n.last_zxid && n.last_zxid != 0 {
            return Err(Violation(format!(
                "node {id}: zxid {zxid:#x} not after {:#x}",
                n.last_zxid
            )));
        }
        n.last_zxid = zxid;
        n.digest = apply_digest(n.digest, e);
        n.applied = e.index;
        if e.kind == EntryKind::ConfChange {
            let cc = ConfChange::decode(&e.data).map_err(|err| Violation(format!("{err}")))?;
            if let Ok(conf) = cc.apply_to(&n.conf) {
                n.conf = conf;
            }
        }
        let digest = n.digest;
        if e.kind == EntryKind::Normal {
            let payload = e.data.to_vec();
            self.pending_proposals.remove(&payload);
            self.committed_proposals.insert(payload);
        }
        self.checker.observe_apply(id, e, digest)
    }

    fn check(&mut self) -> Result<(), Violation> {
        let mut leaders = Vec::new();
        for n in self.nodes.values() {
            let Some(raw) = n.raw.as_ref() else { continue };
            let s = raw.status();
            if s.commit > self.checker.max_commit && n.paused_until.is_none() {
                self.checker.max_commit = s.commit;
            }
            if s.role == Role::Leader {
                leaders.push((n.id, s.term, s.commit, raw.has_valid_lease()));
            }
        }
        for (id, term, commit, lease) in leaders {
            self.checker.observe_leader(term, id)?;
            if lease && self.nodes[&id].paused_until.is_none() {
                self.checker.lease_held(id, commit)?;
            }
            self.check_leader_completeness(id)?;
        }
        Ok(())
    }

    /// Leader completeness (§5.4): a leader's log holds every committed entry.
    fn check_leader_completeness(&self, id: NodeId) -> Result<(), Violation> {
        let Some(raw) = self.nodes[&id].raw.as_ref() else {
            return Ok(());
        };
        let first = raw.store().first_index();
        let leader_term = raw.status().term;
        for (index, term, commit_term) in self.checker.committed_entries().rev().take(8) {
            if index < first {
                break;
            }
            if leader_term <= commit_term {
                // Completeness binds leaders of later terms only.
                continue;
            }
            match raw.term_at(index) {
                Ok(t) if t == term => {}
                other => {
                    return Err(Violation(format!(
                        "leader completeness: leader {id} has {other:?} at committed {term}/{index}"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn decode_digest(snapshot: &Snapshot) -> u64 {
    let mut bytes = [0u8; 8];
    if snapshot.data.len() >= 8 {
        bytes.copy_from_slice(&snapshot.data[..8]);
    }
    u64::from_be_bytes(bytes)
}
