//! The Raft state machine: roles, terms, elections and message dispatch. Replication and
//! reads on the leader live in `leader.rs`, the follower's side in `follower.rs`.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::bugs::Bugs;
use crate::conf_change::ConfChange;
use crate::config::Config;
use crate::departing::Departure;
use crate::error::RaftError;
use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use crate::quorum::{self, VoteResult};
use crate::raft_log::RaftLog;
use crate::rng::SplitMix64;
use crate::snapshot_receive::IncomingSnapshot;
use crate::storage::Storage;
use crate::types::{
    ConfState, Entry, EntryKind, HardState, LogIndex, NodeId, Role, SoftState, Term,
};

/// A read whose index is known: once the state machine has applied `index`, a read for
/// `context` observes every write that completed before the read was requested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The commit index the read must wait for.
    pub index: LogIndex,
    /// The application's context passed to `read_index`.
    pub context: Bytes,
}

/// A read waiting for a heartbeat round (leader side).
#[derive(Clone, Debug)]
pub(crate) struct PendingRead {
    pub(crate) context: Bytes,
    /// The follower that asked, or `None` for a local read.
    pub(crate) from: Option<NodeId>,
    pub(crate) index: LogIndex,
    pub(crate) round: u64,
}

/// The consensus state of one node.
pub(crate) struct Raft<S: Storage> {
    pub(crate) id: NodeId,
    /// Invariant: never decreases (Raft §5.1).
    pub(crate) term: Term,
    /// Invariant: at most one vote per term (Raft §5.2); reset only when the term grows.
    pub(crate) vote: Option<NodeId>,
    pub(crate) log: RaftLog<S>,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    /// The membership in force: that of the last membership entry in the log, committed or
    /// not (thesis §4.1), else `base_conf`.
    pub(crate) conf: ConfState,
    /// The membership at the start of the log (the snapshot's).
    pub(crate) base_conf: ConfState,
    /// Membership entries in the log after its start: (index, membership it establishes).
    pub(crate) conf_history: Vec<(LogIndex, ConfState)>,
    /// Replication progress of every node in `conf` (the leader's own entry tracks what it
    /// has made durable), and on a leader also of every node in `departing`. Never the set a
    /// quorum is taken over: that is always `conf`'s voters.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Leader: removed members still replicated to until they learn their removal committed
    /// (see `departing.rs`). Invariant: disjoint from `conf.all_nodes()`, each has progress.
    pub(crate) departing: BTreeMap<NodeId, Departure>,
    /// Leader: learners outside every configuration that the application asked it to
    /// replicate to, with the tick from which each is given up (see `guests.rs`).
    /// Invariant: disjoint from `conf.all_nodes()` and from `departing`, each has progress.
    pub(crate) guests: BTreeMap<NodeId, u64>,
    pub(crate) votes: BTreeMap<NodeId, bool>,
    /// Messages that may leave at once.
    pub(crate) msgs: Vec<Message>,
    /// Messages that may leave only once the next Ready is durable (thesis §3.8).
    pub(crate) msgs_after_persist: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) election_elapsed: u64,
    pub(crate) heartbeat_elapsed: u64,
    pub(crate) randomized_election_timeout: u64,
    /// Ticks since this node started: the leader lease is measured on it.
    pub(crate) tick_count: u64,
    /// Whether this node restarted with a term (it may have acknowledged a leader just
    /// before going down, so it honours that leader's lease for one election timeout).
    restarted: bool,
    pub(crate) cfg: Config,
    rng: SplitMix64,
    pub(crate) bugs: Bugs,
    /// Candidate: the term whose self-vote counts once the hard state is durable.
    pub(crate) self_vote_pending: Option<Term>,
    // Leader state.
    pub(crate) lead_transferee: Option<NodeId>,
    /// Set once TimeoutNow went out this term: another leader may now exist without our
    /// lease having expired, so the lease is void for the rest of the term (pitfall 4).
    pub(crate) timeout_now_sent: bool,
    /// Invariant: no new membership change is proposed while `pending_conf_index > applied`.
    pub(crate) pending_conf_index: LogIndex,
    /// Uncommitted entries the leader appended: (index, bytes), oldest first.
    pub(crate) uncommitted: VecDeque<(LogIndex, u64)>,
    pub(crate) uncommitted_bytes: u64,
    /// Position (for the zxid) the next entry of this leader's term gets.
    pub(crate) next_position: u32,
    /// The index of this leader's no-op; reads wait until it commits (pitfall 3).
    pub(crate) noop_index: LogIndex,
    pub(crate) read_round: u64,
    pub(crate) pending_reads: VecDeque<PendingRead>,
    pub(crate) reads_awaiting_noop: VecDeque<(Bytes, Option<NodeId>)>,
    /// Follower: a snapshot being received (at most one, of the current leader and term).
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    /// Leader: the number of the last snapshot chunk transmission. Never goes back while
    /// the node runs, so answers to chunks of an earlier transfer are recognised.
    pub(crate) snapshot_seq: u64,
}

impl<S: Storage> Raft<S> {
    pub(crate) fn new(cfg: &Config, storage: S) -> Result<Raft<S>, RaftError> {
        cfg.validate()?;
        let state = storage.initial_state()?;
        let log = RaftLog::new(storage, state.hard_state.commit);
        let mut raft = Raft {
            id: cfg.id,
            term: state.hard_state.term,
            vote: state.hard_state.vote,
            log,
            role: Role::Follower,
            leader: None,
            conf: state.conf_state.clone(),
            base_conf: state.conf_state,
            conf_history: Vec::new(),
            progress: BTreeMap::new(),
            departing: BTreeMap::new(),
            guests: BTreeMap::new(),
            votes: BTreeMap::new(),
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            read_states: Vec::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: cfg.election_timeout_ticks,
            tick_count: 0,
            restarted: state.hard_state.term > Term(0),
            cfg: cfg.clone(),
            rng: SplitMix64::new(cfg.random_seed),
            bugs: Bugs::default(),
            self_vote_pending: None,
            lead_transferee: None,
            timeout_now_sent: false,
            pending_conf_index: LogIndex(0),
            uncommitted: VecDeque::new(),
            uncommitted_bytes: 0,
            next_position: 0,
            noop_index: LogIndex(0),
            read_round: 0,
            pending_reads: VecDeque::new(),
            reads_awaiting_noop: VecDeque::new(),
            incoming_snapshot: None,
            snapshot_seq: 0,
        };
        let first = raft.log.first_index();
        let last = raft.log.last_index();
        if first <= last {
            let entries = raft.log.entries(first, last.next(), u64::MAX)?;
            raft.note_appended(first, &entries);
        }
        raft.rebuild_progress();
        let term = raft.term;
        raft.become_follower(term, None);
        Ok(raft)
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            leader: self.leader,
            role: self.role,
        }
    }

    /// Whether this node may campaign: it votes in its latest configuration, or it was
    /// removed by a membership entry not yet known committed — until that entry commits the
    /// others may still need this node to lead, since it may hold the only copies of entries
    /// they need (otherwise a cluster can be left where nobody can win an election).
    pub(crate) fn promotable(&self) -> bool {
        if self.conf.is_voter(self.id) {
            return true;
        }
        if self.last_conf_index() <= self.log.committed {
            return false;
        }
        let previous = match self.conf_history.len() {
            0 | 1 => &self.base_conf,
            n => &self.conf_history[n - 2].1,
        };
        previous.is_voter(self.id)
    }

    /// Entries from `from` on were (re)written: drop membership entries that were truncated
    /// and adopt those among `entries` (a membership takes effect when appended).
    pub(crate) fn note_appended(&mut self, from: LogIndex, entries: &[Entry]) {
        let before = self.conf_history.len();
        self.conf_history.retain(|(index, _)| *index < from);
        let mut changed = self.conf_history.len() != before;
        for e in entries
            .iter()
            .filter(|e| e.index >= from && e.kind == EntryKind::ConfChange)
        {
            let current = self
                .conf_history
                .last()
                .map_or_else(|| self.base_conf.clone(), |(_, c)| c.clone());
            // Every replica computes the same result, including "invalid: unchanged".
            let next = ConfChange::decode(&e.data)
                .and_then(|cc| cc.apply_to(&current))
                .unwrap_or(current);
            self.conf_history.push((e.index, next));
            changed = true;
        }
        if changed {
            tracing::debug!(node_id = self.id.0, from = from.0, "membership changed");
            self.conf = self
                .conf_history
                .last()
                .map_or_else(|| self.base_conf.clone(), |(_, c)| c.clone());
            self.rebuild_progress();
        }
    }

    /// The index of the latest membership entry in the log (0 if none).
    pub(crate) fn last_conf_index(&self) -> LogIndex {
        self.conf_history.last().map_or(LogIndex(0), |(i, _)| *i)
    }

    pub(crate) fn rebuild_progress(&mut self) {
        let next = self.log.last_index().next();
        let nodes = self.conf.all_nodes();
        // A departing member that a change brings back is a member again.
        self.departing.retain(|id, _| !nodes.contains(id));
        // So does a guest the change makes a member, with the progress it has.
        self.guests.retain(|id, _| !nodes.contains(id));
        let removed: Vec<NodeId> = self
            .progress
            .keys()
            .filter(|id| {
                !nodes.contains(id)
                    && !self.departing.contains_key(id)
                    && !self.guests.contains_key(id)
            })
            .copied()
            .collect();
        let conf_index = self.last_conf_index();
        for id in removed {
            if self.role == Role::Leader && id != self.id {
                self.begin_departure(id, conf_index);
            } else {
                self.progress.remove(&id);
            }
        }
        for id in nodes {
            self.progress.entry(id).or_insert_with(|| {
                Progress::new(
                    next,
                    self.cfg.inflight_msgs_max,
                    self.cfg.inflight_bytes_max,
                )
            });
        }
    }

    fn reset(&mut self, term: Term) {
        assert!(
            term >= self.term,
            "node {}: term going back from {} to {term}",
            self.id,
            self.term
        );
        if term != self.term {
            self.term = term;
            self.vote = None;
            self.discard_incoming_snapshot("new term");
        }
        self.leader = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_election_timeout = self.rng.range(
            self.cfg.election_timeout_ticks,
            2 * self.cfg.election_timeout_ticks,
        );
        self.lead_transferee = None;
        self.timeout_now_sent = false;
        self.votes.clear();
        self.self_vote_pending = None;
        self.pending_conf_index = LogIndex(0);
        self.uncommitted.clear();
        self.uncommitted_bytes = 0;
        self.pending_reads.clear();
        self.reads_awaiting_noop.clear();
        // Only a leader replicates to departing members; a new leader decides afresh.
        self.departing.clear();
        self.guests.clear();
        let nodes = self.conf.all_nodes();
        self.progress.retain(|id, _| nodes.contains(id));
        let next = self.log.last_index().next();
        let persisted = self.log.persisted;
        for (id, pr) in self.progress.iter_mut() {
            *pr = Progress::new(
                next,
                self.cfg.inflight_msgs_max,
                self.cfg.inflight_bytes_max,
            );
            if *id == self.id {
                pr.matched = persisted;
                pr.recent_active = true;
            }
        }
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if self.role == Role::Leader {
            tracing::info!(node_id = self.id.0, term = term.0, "stepped down");
        }
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
    }

    fn become_pre_candidate(&mut self) {
        assert!(
            self.role != Role::Leader,
            "node {}: leader cannot pre-campaign",
            self.id
        );
        // A pre-vote changes neither term nor vote; it does forget the leader, or this node
        // would keep refusing others' votes for a leader that is gone (pitfall 5).
        let leader = self.leader;
        self.votes.clear();
        self.election_elapsed = 0;
        self.role = Role::PreCandidate;
        self.discard_incoming_snapshot("leader lost");
        if Bugs::on(self.bugs.pre_vote_keeps_leader) {
            // The bug as etcd had it: the leader is kept, and the timeout is not drawn anew.
            self.leader = leader;
            return;
        }
        // A fresh timeout each round also keeps two pre-candidates from staying in step.
        self.randomized_election_timeout = self.rng.range(
            self.cfg.election_timeout_ticks,
            2 * self.cfg.election_timeout_ticks,
        );
        self.leader = None;
    }

    fn become_candidate(&mut self) -> bool {
        assert!(
            self.role != Role::Leader,
            "node {}: leader cannot campaign",
            self.id
        );
        let next = Term(self.term.0 + 1);
        if next.0 > u64::from(u32::MAX) {
            // The zxid has 32 bits of term: refuse to start a term no entry could be named in.
            tracing::error!(
                node_id = self.id.0,
                term = self.term.0,
                "term space exhausted"
            );
            return false;
        }
        self.reset(next);
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        tracing::debug!(node_id = self.id.0, term = next.0, "became candidate");
        // Our own vote counts once it is durable (see `on_persisted`).
        self.self_vote_pending = Some(next);
        true
    }

    pub(crate) fn become_leader(&mut self) {
        assert!(
            self.role == Role::Candidate,
            "node {}: only a candidate becomes leader (term {})",
            self.id,
            self.term
        );
        let term = self.term;
        self.reset(term);
        self.role = Role::Leader;
        self.leader = Some(self.id);
        tracing::info!(node_id = self.id.0, term = self.term.0, "became leader");
        // Every membership change already in the log must apply before another is proposed.
        self.pending_conf_index = self.log.last_index();
        self.next_position = 0;
        self.begin_departures_after_election();
        self.append_noop();
        self.broadcast_append();
    }

    /// Starts an election (or pre-election) if this node may.
    pub(crate) fn hup(&mut self, transfer: bool) {
        if self.role == Role::Leader || !self.promotable() {
            return;
        }
        if self.cfg.pre_vote && !transfer {
            self.campaign_pre_vote();
        } else {
            self.campaign(transfer);
        }
    }

    fn campaign_pre_vote(&mut self) {
        self.become_pre_candidate();
        let term = Term(self.term.0 + 1);
        self.request_votes(term, true, false);
        self.poll(self.id, true);
    }

    fn campaign(&mut self, transfer: bool) {
        if !self.become_candidate() {
            return;
        }
        let term = self.term;
        self.request_votes(term, false, transfer);
        if quorum::vote_result(&self.conf, &self.votes) == VoteResult::Lost {
            self.become_follower(term, None);
        }
    }

    fn request_votes(&mut self, term: Term, pre_vote: bool, transfer: bool) {
        let last_index = self.log.last_index();
        let last_term = self.log.last_term();
        let voters: Vec<NodeId> = self
            .conf
            .voters
            .union(&self.conf.voters_outgoing)
            .copied()
            .filter(|&id| id != self.id)
            .collect();
        for to in voters {
            self.send_with_term(
                to,
                term,
                MessageBody::RequestVote {
                    pre_vote,
                    last_index,
                    last_term,
                    transfer,
                },
            );
        }
    }

    /// Records a vote and acts on the result.
    pub(crate) fn poll(&mut self, from: NodeId, granted: bool) {
        self.votes.entry(from).or_insert(granted);
        match quorum::vote_result(&self.conf, &self.votes) {
            VoteResult::Won => {
                if self.role == Role::PreCandidate {
                    self.campaign(false);
                } else {
                    self.become_leader();
                }
            }
            VoteResult::Lost => {
                let term = self.term;
                self.become_follower(term, None);
            }
            VoteResult::Pending => {}
        }
    }

    pub(crate) fn tick(&mut self) {
        self.tick_count += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.randomized_election_timeout {
                if self.promotable() {
                    self.election_elapsed = 0;
                    self.hup(false);
                } else if self.leader.is_some() {
                    // A learner never campaigns, but a leader it has not heard from for an
                    // election timeout is as gone for it as for a voter (which forgets it by
                    // pre-campaigning): naming it would send its clients' writes into the
                    // void. The next message of any leader makes it known again.
                    self.leader = None;
                    self.discard_incoming_snapshot("leader lost");
                }
            }
        }
    }

    /// Whether this node currently honours a leader lease and must ignore vote requests
    /// (check-quorum, thesis §9.6; also for one election timeout after it starts, since it
    /// may have acknowledged a leader just before a restart).
    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && ((self.leader.is_some() && self.election_elapsed < self.cfg.election_timeout_ticks)
                || (self.restarted && self.tick_count < self.cfg.election_timeout_ticks))
    }

    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        let term = self.term;
        self.send_with_term(to, term, body);
    }

    fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let after_persist = body.needs_persistence()
            && !(Bugs::on(self.bugs.ack_before_persist)
                && matches!(body, MessageBody::AppendResponse { .. }));
        let m = Message {
            from: self.id,
            to,
            term,
            body,
        };
        if after_persist {
            self.msgs_after_persist.push(m);
        } else {
            self.msgs.push(m);
        }
    }

    /// Handles a message from a peer.
    pub(crate) fn step(&mut self, m: Message) {
        if m.term > self.term {
            match m.body {
                MessageBody::RequestVote { transfer, .. } if !transfer && self.in_lease() => {
                    // A leader we heard from recently is alive: do not let a partitioned
                    // node with an inflated term disrupt it.
                    return;
                }
                MessageBody::RequestVote { pre_vote: true, .. } => {}
                MessageBody::RequestVoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Snapshot { .. } => self.become_follower(m.term, Some(m.from)),
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            match m.body {
                MessageBody::Append { .. } | MessageBody::Heartbeat { .. }
                    if self.cfg.check_quorum || self.cfg.pre_vote =>
                {
                    // Tell a stale leader (e.g. one waking from a long pause) about our term
                    // so it steps down.
                    self.send(
                        m.from,
                        MessageBody::AppendResponse {
                            index: LogIndex(0),
                            reject: None,
                        },
                    );
                }
                MessageBody::RequestVote { pre_vote: true, .. } => {
                    self.send(
                        m.from,
                        MessageBody::RequestVoteResponse {
                            pre_vote: true,
                            granted: false,
                        },
                    );
                }
                _ => {}
            }
            return;
        }

        if let MessageBody::RequestVote {
            pre_vote,
            last_index,
            last_term,
            ..
        } = m.body
        {
            self.handle_vote_request(m.from, m.term, pre_vote, last_index, last_term);
            return;
        }
        match self.role {
            Role::Leader => self.step_leader(m),
            Role::Candidate | Role::PreCandidate => self.step_candidate(m),
            Role::Follower => self.step_follower(m),
        }
    }

    fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        last_index: LogIndex,
        last_term: Term,
    ) {
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        if can_vote && self.log.is_up_to_date(last_index, last_term) {
            // Raft §5.2, §5.4.1. The response leaves only once the vote is durable.
            self.send_with_term(
                from,
                term,
                MessageBody::RequestVoteResponse {
                    pre_vote,
                    granted: true,
                },
            );
            if !pre_vote {
                self.election_elapsed = 0;
                self.vote = Some(from);
            }
        } else {
            self.send(
                from,
                MessageBody::RequestVoteResponse {
                    pre_vote,
                    granted: false,
                },
            );
        }
    }

    fn step_candidate(&mut self, m: Message) {
        match m.body {
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::Snapshot { .. } => {
                // A leader exists in our term (Raft §5.2).
                let term = m.term;
                self.become_follower(term, Some(m.from));
                self.step_follower(m);
            }
            MessageBody::RequestVoteResponse { pre_vote, granted }
                if pre_vote == (self.role == Role::PreCandidate) =>
            {
                self.poll(m.from, granted);
            }
            _ => {}
        }
    }

    fn step_follower(&mut self, m: Message) {
        match m.body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_append(m.from, prev_index, prev_term, &entries, commit);
            }
            MessageBody::Heartbeat {
                commit,
                sent_tick,
                read_round,
            } => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_heartbeat(m.from, commit, sent_tick, read_round);
            }
            MessageBody::Snapshot {
                metadata,
                total_bytes,
                offset,
                data,
                seq,
            } => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_snapshot_chunk(m.from, metadata, total_bytes, offset, &data, seq);
            }
            MessageBody::TimeoutNow => {
                // Leadership transfer (thesis §3.10): campaign at once, bypassing pre-vote
                // and the voters' leases.
                self.hup(true);
            }
            MessageBody::ReadIndexResponse {
                context,
                index: Some(index),
            } => {
                self.read_states.push(ReadState { index, context });
            }
            _ => {}
        }
    }

    /// The application made the hard state `persisted` and the log up to
    /// `self.log.persisted` durable.
    pub(crate) fn on_persisted(&mut self, persisted: HardState) {
        if let Some(term) = self.self_vote_pending
            && self.role == Role::Candidate
            && self.term == term
            && persisted.term == term
        {
            self.self_vote_pending = None;
            self.poll(self.id, true);
        }
        if self.role == Role::Leader {
            let durable = self.log.persisted;
            let id = self.id;
            if let Some(pr) = self.progress.get_mut(&id) {
                pr.maybe_update(durable);
            }
            if self.maybe_commit() {
                self.broadcast_append();
            }
        }
    }
}
