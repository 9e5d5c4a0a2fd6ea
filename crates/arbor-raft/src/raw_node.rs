//! The application's handle on the core: inputs (tick, step, propose, read_index) and the
//! `ready` / `advance` hand-off that enforces the persistence contract.

use bytes::Bytes;

#[cfg(feature = "deliberate-bugs")]
use crate::bugs::Bugs;
use crate::conf_change::{ConfChange, ConfChangeError};
use crate::config::Config;
use crate::error::{ProposeError, RaftError, ReadError, StepError, StorageError};
use crate::leader::Proposed;
use crate::message::Message;
use crate::raft::{Raft, ReadState};
use crate::storage::Storage;
use crate::types::{
    ConfState, Entry, EntryKind, HardState, LogIndex, NodeId, Role, Snapshot, SoftState, Term,
};

/// Everything the application must do after the core changed: persist, send, apply.
///
/// The order is the contract (thesis §3.8):
/// 1. `messages` may be sent at once (the leader's appends and heartbeats: a leader may send
///    before its own write completes).
/// 2. `hard_state`, `entries` and `snapshot` must be made durable (fsync) — entries with
///    overwrite-from-first-index semantics.
/// 3. Only then may `persisted_messages` be sent (votes and append acknowledgements).
/// 4. `committed_entries` are committed *and* durable here; apply them in order (and install
///    `snapshot` first if there is one). For membership entries the application updates
///    its own record of the membership with [`ConfChange::apply_to`] (it stores it with its
///    snapshots); the core already switched when the entry was appended.
/// 5. `read_states` may be answered once the state machine has applied their index.
/// 6. Hand the Ready back to [`RawNode::advance`]: that is the explicit acknowledgement that
///    steps 2 and 4 are done, and only then does the leader count itself toward commitment.
#[derive(Debug)]
#[must_use = "a Ready must be handled and handed back to advance()"]
pub struct Ready {
    /// Changed leader or role, if any.
    pub soft_state: Option<SoftState>,
    /// The hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// Entries to persist (replacing any stored entries from the first one's index on).
    pub entries: Vec<Entry>,
    /// A snapshot from the leader to persist and install.
    pub snapshot: Option<Snapshot>,
    /// Committed, durable entries to apply, in order.
    pub committed_entries: Vec<Entry>,
    /// Messages that may be sent at once.
    pub messages: Vec<Message>,
    /// Messages that may be sent only after `hard_state`, `entries` and `snapshot` are durable.
    pub persisted_messages: Vec<Message>,
    /// Reads whose index is known.
    pub read_states: Vec<ReadState>,
}

/// What a leader knows of one follower or learner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The highest index known to be in the follower's log.
    pub matched: LogIndex,
    /// Probe, replicate or snapshot.
    pub state: crate::progress::ProgressState,
    /// Whether it was heard from within the current check-quorum period.
    pub recent_active: bool,
    /// Ticks since the newest heartbeat it answered was sent (none answered yet: `None`).
    /// Unlike `recent_active`, which check-quorum clears every election timeout, this says
    /// how fresh the follower's link is at any moment.
    pub ticks_since_acked: Option<u64>,
    /// In snapshot state, the transfer under way (`None` while waiting to retry).
    pub snapshot: Option<crate::snapshot_send::SnapshotTransferStatus>,
}

/// A summary of the node's state, for observability and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Current term.
    pub term: Term,
    /// Vote in the current term.
    pub vote: Option<NodeId>,
    /// Role.
    pub role: Role,
    /// Known leader.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: LogIndex,
    /// Applied index.
    pub applied: LogIndex,
    /// Last log index.
    pub last_index: LogIndex,
    /// Membership.
    pub conf_state: ConfState,
    /// On a leader, what it knows of each other member (for lag metrics); empty otherwise.
    pub progress: std::collections::BTreeMap<NodeId, FollowerProgress>,
    /// On a leader, the removed members it still replicates to until they learn that their
    /// removal committed (at most two election timeouts); empty otherwise. The application
    /// keeps its links to them open meanwhile. They are not in `progress`.
    pub departing: std::collections::BTreeSet<NodeId>,
    /// On a leader, the learners outside the membership it replicates to
    /// ([`RawNode::attach_guest`]) and what it knows of each; empty otherwise. They are not
    /// in `progress`.
    pub guests: std::collections::BTreeMap<NodeId, FollowerProgress>,
}

/// One Raft node, driven by the application.
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    prev_soft_state: SoftState,
    /// The hard state last handed out for persistence (what the app has, or is writing).
    prev_hard_state: HardState,
    ready_outstanding: bool,
}

impl<S: Storage> RawNode<S> {
    /// Starts (or restarts) a node from what `storage` holds.
    ///
    /// # Errors
    /// [`RaftError`] if the config is invalid or the storage cannot be read.
    ///
    /// # Panics
    /// If the storage is inconsistent (a persisted commit index past the last entry).
    pub fn new(config: &Config, storage: S) -> Result<RawNode<S>, RaftError> {
        let raft = Raft::new(config, storage)?;
        let prev_hard_state = raft.hard_state();
        let prev_soft_state = raft.soft_state();
        Ok(RawNode {
            raft,
            prev_soft_state,
            prev_hard_state,
            ready_outstanding: false,
        })
    }

    /// Advances logical time by one tick (election and heartbeat timers, leases).
    /// Drive it from a monotonic clock that keeps counting while the process is stopped, and
    /// after a pause deliver every missed tick before any message.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Leader: replicate to `id`, a node in no configuration (ZooKeeper's way of adding a
    /// server: it syncs as a learner before a `reconfig` makes it a member), counting it
    /// toward no quorum, until it has been silent for two election timeouts; attaching it
    /// again renews it. Returns whether `id` is now a guest: false on a follower, and for this
    /// node, a member or a departing member (which are replicated to anyway).
    pub fn attach_guest(&mut self, id: NodeId) -> bool {
        self.raft.attach_guest(id)
    }

    /// Starts an election now (pre-vote first if configured).
    pub fn campaign(&mut self) {
        self.raft.hup(false);
    }

    /// Feeds a message from a peer.
    ///
    /// # Errors
    /// [`StepError::WrongRecipient`] if the message is addressed to another node.
    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        if message.to != self.raft.id {
            return Err(StepError::WrongRecipient {
                to: message.to,
                id: self.raft.id,
            });
        }
        self.raft.step(message);
        Ok(())
    }

    /// Proposes a batch of application entries (one entry per payload).
    ///
    /// # Errors
    /// [`ProposeError`]: not the leader (with the leader to forward to), overloaded, too
    /// large, or a transfer in progress.
    pub fn propose(&mut self, payloads: Vec<Bytes>) -> Result<Proposed, ProposeError> {
        self.raft.propose(payloads, EntryKind::Normal)
    }

    /// Proposes a membership change (joint consensus; see the crate docs).
    ///
    /// # Errors
    /// [`ProposeError::ConfChangePending`] while another change is unapplied,
    /// [`ProposeError::InvalidConfChange`] if it cannot apply, or any propose error.
    pub fn propose_conf_change(&mut self, change: &ConfChange) -> Result<Proposed, ProposeError> {
        if self.raft.role == Role::Leader && self.raft.pending_conf_index > self.raft.log.committed
        {
            return Err(ProposeError::ConfChangePending);
        }
        match change.apply_to(&self.raft.conf) {
            Ok(_) => {}
            Err(ConfChangeError::Invalid(why)) => return Err(ProposeError::InvalidConfChange(why)),
            Err(ConfChangeError::Malformed) => {
                return Err(ProposeError::InvalidConfChange("malformed"));
            }
        }
        self.raft
            .propose(vec![change.encode()], EntryKind::ConfChange)
    }

    /// Requests a linearizable read. The answer arrives as a [`ReadState`] in a later Ready;
    /// serve the read once the state machine has applied its index.
    ///
    /// # Errors
    /// [`ReadError::NoLeader`] when no leader is known, [`ReadError::Overloaded`] when too
    /// many reads are pending.
    pub fn read_index(&mut self, context: Bytes) -> Result<(), ReadError> {
        self.raft.read_index(context, None)
    }

    /// Starts a leadership transfer to `to` (only on the leader; otherwise ignored).
    pub fn transfer_leader(&mut self, to: NodeId) {
        self.raft.transfer_leader(to);
    }

    /// Ticks the leader lease remains valid, or `None` when this node holds no valid lease.
    /// A read served under the lease is linearizable if clocks drift at most
    /// `lease_drift_ticks` per election timeout and ticks come from a clock that counts
    /// through pauses.
    pub fn lease_remaining_ticks(&self) -> Option<u64> {
        if self.raft.role != Role::Leader {
            return None;
        }
        self.raft.lease_remaining_ticks()
    }

    /// Whether this leader holds a valid lease right now.
    pub fn has_valid_lease(&self) -> bool {
        self.lease_remaining_ticks().is_some()
    }

    /// The term of the entry at `index` in this node's log (durable or not).
    ///
    /// # Errors
    /// [`StorageError::Compacted`] or [`StorageError::Unavailable`].
    pub fn term_at(&self, index: LogIndex) -> Result<Term, StorageError> {
        self.raft.log.term(index)
    }

    /// A summary of the node's state.
    pub fn status(&self) -> Status {
        Status {
            id: self.raft.id,
            term: self.raft.term,
            vote: self.raft.vote,
            role: self.raft.role,
            leader: self.raft.leader,
            commit: self.raft.log.committed,
            applied: self.raft.log.applied,
            last_index: self.raft.log.last_index(),
            conf_state: self.raft.conf.clone(),
            progress: self.follower_progress(|id| {
                !self.raft.departing.contains_key(&id) && !self.raft.guests.contains_key(&id)
            }),
            departing: self.raft.departing.keys().copied().collect(),
            guests: self.follower_progress(|id| self.raft.guests.contains_key(&id)),
        }
    }

    /// On a leader, what it knows of the other nodes it replicates to that `include` selects;
    /// empty on a follower.
    fn follower_progress(
        &self,
        include: impl Fn(NodeId) -> bool,
    ) -> std::collections::BTreeMap<NodeId, FollowerProgress> {
        if self.raft.role != Role::Leader {
            return std::collections::BTreeMap::new();
        }
        self.raft
            .progress
            .iter()
            .filter(|(id, _)| **id != self.raft.id && include(**id))
            .map(|(&id, p)| {
                (
                    id,
                    FollowerProgress {
                        matched: p.matched,
                        state: p.state,
                        recent_active: p.recent_active,
                        ticks_since_acked: p
                            .acked_sent_tick
                            .map(|sent| self.raft.tick_count.saturating_sub(sent)),
                        snapshot: p.snapshot_transfer.as_ref().map(|t| t.status()),
                    },
                )
            })
            .collect()
    }

    /// The storage (read access).
    pub fn store(&self) -> &S {
        &self.raft.log.storage
    }

    /// The storage, for recording what was made durable (append, hard state, snapshot,
    /// compaction). Only record what the Ready asked for.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.raft.log.storage
    }

    /// Switches deliberate bugs on this node (test builds only).
    #[cfg(feature = "deliberate-bugs")]
    pub fn set_deliberate_bugs(&mut self, bugs: Bugs) {
        self.raft.bugs = bugs;
    }

    /// Whether a Ready is waiting (and none is outstanding).
    pub fn has_ready(&self) -> bool {
        if self.ready_outstanding {
            return false;
        }
        let raft = &self.raft;
        raft.soft_state() != self.prev_soft_state
            || raft.hard_state() != self.prev_hard_state
            || !raft.log.entries_to_persist().is_empty()
            || raft.log.snapshot_to_persist().is_some()
            || !raft.msgs.is_empty()
            || !raft.msgs_after_persist.is_empty()
            || !raft.read_states.is_empty()
            || !raft
                .log
                .entries_to_apply(raft.log.applied.next(), 1)
                .is_empty()
    }

    /// Takes what the application must do now. Call only when no Ready is outstanding.
    ///
    /// # Panics
    /// If the previous Ready was not handed back to [`RawNode::advance`].
    pub fn ready(&mut self) -> Ready {
        assert!(
            !self.ready_outstanding,
            "node {}: ready() called before advance() of the previous Ready",
            self.raft.id
        );
        self.ready_outstanding = true;
        let raft = &mut self.raft;
        let soft = raft.soft_state();
        let soft_state = (soft != self.prev_soft_state).then_some(soft);
        self.prev_soft_state = soft;
        let hard = raft.hard_state();
        let hard_state = (hard != self.prev_hard_state).then(|| {
            let mut persisted = hard;
            if cfg!(feature = "deliberate-bugs") && raft.bugs.forget_vote {
                persisted.vote = None;
            }
            persisted
        });
        self.prev_hard_state = hard;
        let entries = raft.log.entries_to_persist().to_vec();
        let snapshot = raft.log.snapshot_to_persist().cloned();
        let committed_entries = raft.log.entries_to_apply(
            raft.log.applied.next(),
            raft.cfg.committed_bytes_per_ready_max,
        );
        raft.log.mark_handed_out();
        Ready {
            soft_state,
            hard_state,
            entries,
            snapshot,
            committed_entries,
            messages: std::mem::take(&mut raft.msgs),
            persisted_messages: std::mem::take(&mut raft.msgs_after_persist),
            read_states: std::mem::take(&mut raft.read_states),
        }
    }

    /// Acknowledges a Ready: its hard state, entries and snapshot are durable and its
    /// committed entries are applied. The leader now counts its own entries toward commit,
    /// and a candidate its own vote.
    pub fn advance(&mut self, ready: Ready) {
        assert!(
            self.ready_outstanding,
            "node {}: advance() without an outstanding Ready",
            self.raft.id
        );
        self.ready_outstanding = false;
        let raft = &mut self.raft;
        if let Some(snapshot) = &ready.snapshot {
            raft.log.stable_snapshot_to(snapshot.metadata.index);
        }
        if let Some(last) = ready.entries.last() {
            raft.log.stable_to(last.index, last.term);
        }
        if let Some(last) = ready.committed_entries.last() {
            raft.log.applied_to(last.index);
        }
        let persisted = self.prev_hard_state;
        raft.on_persisted(persisted);
    }
}
