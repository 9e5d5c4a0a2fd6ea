//! The leader's side: proposals, replication with flow control, commitment, heartbeats,
//! check-quorum and leadership transfer. Sending snapshots to followers that fell behind
//! the log is in `snapshot_send.rs`.

use bytes::Bytes;

use crate::bugs::Bugs;
use crate::error::{ProposeError, StorageError};
use crate::message::{Message, MessageBody, RejectHint};
use crate::progress::ProgressState;
use crate::quorum;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{Entry, EntryKind, LogIndex, NodeId, Role, Term};
use crate::zxid::next_position;

/// Where a proposal landed in the log. It is committed once an entry with this index *and*
/// term is applied; a different term at that index means it was lost to a leader change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposed {
    /// The leader's term.
    pub term: Term,
    /// Index of the first proposed entry.
    pub first: LogIndex,
    /// Index of the last proposed entry.
    pub last: LogIndex,
}

impl<S: Storage> Raft<S> {
    pub(crate) fn append_noop(&mut self) {
        let index = self.log.last_index().next();
        let entry = Entry {
            term: self.term,
            index,
            position: 0,
            kind: EntryKind::NoOp,
            data: Bytes::new(),
        };
        self.noop_index = index;
        self.next_position = 1;
        self.log.append(&[entry]);
        self.uncommitted.push_back((index, 0));
    }

    /// Appends proposals to the leader's log and starts replicating them. The entries go out
    /// to followers at once; the leader counts itself toward commitment only once the
    /// application reports them durable.
    pub(crate) fn propose(
        &mut self,
        payloads: Vec<Bytes>,
        kind: EntryKind,
    ) -> Result<Proposed, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.lead_transferee.is_some() || !self.conf.is_voter(self.id) {
            return Err(ProposeError::TransferInProgress);
        }
        let mut bytes = 0u64;
        for data in &payloads {
            let size = data.len() as u64 + crate::types::ENTRY_HEADER_BYTES;
            if data.len() as u64 > self.cfg.entry_bytes_max {
                return Err(ProposeError::EntryTooLarge {
                    size_bytes: size,
                    limit_bytes: self.cfg.entry_bytes_max,
                });
            }
            bytes += size;
        }
        let count = payloads.len() as u64;
        if count == 0 {
            return Err(ProposeError::Empty);
        }
        let pending = self.uncommitted.len() as u64;
        if pending + count > self.cfg.uncommitted_entries_max
            || self.uncommitted_bytes + bytes > self.cfg.uncommitted_bytes_max
        {
            return Err(ProposeError::Overloaded);
        }
        self.append_proposal(payloads, kind)
    }

    /// Appends entries of this leader's term, adopts any membership among them, and
    /// replicates them.
    pub(crate) fn append_proposal(
        &mut self,
        payloads: Vec<Bytes>,
        kind: EntryKind,
    ) -> Result<Proposed, ProposeError> {
        let first = self.log.last_index().next();
        let mut entries = Vec::with_capacity(payloads.len());
        let mut position = self.next_position;
        for (i, data) in payloads.into_iter().enumerate() {
            if i > 0 {
                position = next_position(self.term, position)?;
            }
            entries.push(Entry {
                term: self.term,
                index: LogIndex(first.0 + i as u64),
                position,
                kind,
                data,
            });
        }
        // The position after the last one must exist too, or the next proposal would fail
        // after this one was accepted; check now so the error is this proposal's.
        self.next_position = next_position(self.term, position)?;
        for e in &entries {
            self.uncommitted.push_back((e.index, e.size_bytes()));
            self.uncommitted_bytes += e.size_bytes();
        }
        let last = self.log.append(&entries);
        if kind == EntryKind::ConfChange {
            self.pending_conf_index = last;
            self.note_appended(first, &entries);
        }
        self.broadcast_append();
        Ok(Proposed {
            term: self.term,
            first,
            last,
        })
    }

    /// Once the latest membership entry is committed: leave a joint configuration, or step
    /// down if this leader is no longer a voter (thesis §4.2.2; pitfall 7).
    pub(crate) fn after_membership_commit(&mut self) {
        if self.role != Role::Leader || self.last_conf_index() > self.log.committed {
            return;
        }
        if self.conf.is_joint() {
            let leave = crate::conf_change::ConfChange::leave_joint().encode();
            let _ = self.append_proposal(vec![leave], EntryKind::ConfChange);
        } else if !self.conf.is_voter(self.id) {
            // Hand over to the most caught-up voter, then stop leading.
            self.broadcast_append();
            let last = self.log.last_index();
            let successor = self
                .progress
                .iter()
                .filter(|(id, pr)| self.conf.voters.contains(id) && pr.matched == last)
                .map(|(id, _)| *id)
                .next();
            if let Some(to) = successor {
                self.send_timeout_now(to);
            }
            let term = self.term;
            self.become_follower(term, None);
        }
    }

    pub(crate) fn step_leader(&mut self, m: Message) {
        let from = m.from;
        self.renew_guest(from);
        match m.body {
            MessageBody::AppendResponse { index, reject } => {
                self.handle_append_response(from, index, reject);
            }
            MessageBody::HeartbeatResponse {
                sent_tick,
                read_round,
            } => self.handle_heartbeat_response(from, sent_tick, read_round),
            MessageBody::SnapshotAck {
                snapshot_index,
                snapshot_term,
                seq,
                received_bytes,
                refused,
            } => self.handle_snapshot_ack(
                from,
                snapshot_index,
                snapshot_term,
                seq,
                received_bytes,
                refused,
            ),
            MessageBody::ReadIndex { context }
                if self.read_index(context.clone(), Some(from)).is_err() =>
            {
                self.send(
                    from,
                    MessageBody::ReadIndexResponse {
                        context,
                        index: None,
                    },
                );
            }
            // Another leader in our term would break election safety; the simulator's
            // checker reports it, so it is not acted upon here.
            _ => {}
        }
    }

    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_timeout_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let id = self.id;
                let active =
                    |n: NodeId| n == id || self.progress.get(&n).is_some_and(|p| p.recent_active);
                if !quorum::is_quorum(&self.conf, &active) {
                    // Check-quorum: we cannot hear a majority, so another leader may exist.
                    tracing::info!(
                        node_id = self.id.0,
                        term = self.term.0,
                        "no quorum heard within an election timeout"
                    );
                    let term = self.term;
                    self.become_follower(term, None);
                    return;
                }
                for (n, pr) in self.progress.iter_mut() {
                    pr.recent_active = *n == id;
                }
            }
            // A transfer that did not finish within an election timeout is abandoned.
            self.lead_transferee = None;
            self.after_membership_commit();
            if self.role != Role::Leader {
                return;
            }
        }
        self.expire_departures();
        self.expire_guests();
        self.tick_snapshot_transfers();
        if self.heartbeat_elapsed >= self.cfg.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(0);
        }
    }

    /// Everyone the leader replicates to: the other members, the departing ones and the guests.
    fn peers(&self) -> Vec<NodeId> {
        self.progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect()
    }

    pub(crate) fn broadcast_append(&mut self) {
        for id in self.peers() {
            self.maybe_send_append(id, true);
        }
    }

    pub(crate) fn broadcast_heartbeat(&mut self, read_round: u64) {
        let committed = self.log.committed;
        let sent_tick = self.tick_count;
        for id in self.peers() {
            let matched = self.progress.get(&id).map_or(LogIndex(0), |p| p.matched);
            let commit = committed.min(matched);
            self.note_commit_sent(id, commit, sent_tick);
            self.send(
                id,
                MessageBody::Heartbeat {
                    commit,
                    sent_tick,
                    read_round,
                },
            );
        }
    }

    /// Sends the next append to `to` if flow control allows; returns whether one was sent.
    pub(crate) fn maybe_send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        if self.role != Role::Leader {
            // E.g. a removed leader that just stepped down inside the same step.
            return false;
        }
        let Some(pr) = self.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next;
        let prev_index = next.prev();
        let prev_term = self.log.term(prev_index);
        let entries = self.log.entries(
            next,
            self.log.last_index().next(),
            self.cfg.append_bytes_max,
        );
        let (prev_term, entries) = match (prev_term, entries) {
            (Ok(t), Ok(e)) => (t, e),
            (Err(StorageError::Compacted { .. }), _) | (_, Err(StorageError::Compacted { .. })) => {
                self.send_snapshot(to);
                return true;
            }
            // Unavailable cannot happen for indexes within the leader's log.
            _ => return false,
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let last = entries.last().map(|e| e.index);
        let bytes: u64 = entries.iter().map(Entry::size_bytes).sum();
        let commit = self.log.committed;
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.sent_entries(last, bytes);
        }
        self.send(
            to,
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
        true
    }

    fn handle_append_response(
        &mut self,
        from: NodeId,
        index: LogIndex,
        reject: Option<RejectHint>,
    ) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if let Some(hint) = reject {
            // Fast back-off: skip every entry of a term the follower cannot have.
            let mut probe = hint.index;
            if hint.term > Term(0) {
                probe = self.log.find_conflict_by_term(hint.index, hint.term).0;
            }
            let Some(pr) = self.progress.get_mut(&from) else {
                return;
            };
            if pr.maybe_decrease_to(index, probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.maybe_send_append(from, true);
            }
            return;
        }
        let was_paused = pr.is_paused();
        if !pr.maybe_update(index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot => {
                if pr.matched >= pr.pending_snapshot {
                    pr.become_probe();
                    pr.become_replicate();
                }
            }
            ProgressState::Replicate => pr.inflights.free_le(index),
        }
        let matched = pr.matched;
        if self.maybe_commit() {
            self.broadcast_append();
        } else if was_paused {
            self.maybe_send_append(from, true);
        }
        // Pipelining: keep the window full.
        while self.maybe_send_append(from, false) {}
        if self.lead_transferee == Some(from) && matched == last_index {
            self.send_timeout_now(from);
        }
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, sent_tick: u64, read_round: u64) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        pr.acked_sent_tick = Some(pr.acked_sent_tick.map_or(sent_tick, |t| t.max(sent_tick)));
        pr.read_round = pr.read_round.max(read_round);
        match pr.state {
            // A lost probe is retried on every heartbeat answer.
            ProgressState::Probe => pr.probe_sent = false,
            // Appends in a full window may all have been lost: let one more through, so a
            // gap is eventually reported and replication resumes (etcd does the same).
            ProgressState::Replicate if pr.inflights.full() => pr.inflights.free_first_one(),
            _ => {}
        }
        if pr.matched < last_index {
            self.maybe_send_append(from, true);
        }
        self.release_reads();
        self.note_departure_heard(from, sent_tick);
    }

    /// Advances commit to what a (joint) quorum has durably, but only through an entry of
    /// the current term (Raft §5.4.2, figure 8). Returns whether commit moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let progress = &self.progress;
        let quorum_match = LogIndex(quorum::committed_value(&self.conf, &|id| {
            progress.get(&id).map(|p| p.matched.0)
        }));
        if quorum_match <= self.log.committed {
            return false;
        }
        let current_term = self.log.term(quorum_match) == Ok(self.term);
        if !current_term && !Bugs::on(self.bugs.commit_prior_term) {
            return false;
        }
        let had_term_commit = self.log.committed >= self.noop_index;
        let before = self.log.committed;
        self.log.commit_to(quorum_match);
        while let Some(&(index, bytes)) = self.uncommitted.front() {
            if index > quorum_match {
                break;
            }
            self.uncommitted.pop_front();
            self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(bytes);
        }
        if !had_term_commit && self.log.committed >= self.noop_index {
            // Our no-op committed: reads held back until now can be served (pitfall 3).
            let waiting: Vec<(Bytes, Option<NodeId>)> =
                self.reads_awaiting_noop.drain(..).collect();
            for (context, from) in waiting {
                let _ = self.read_index(context, from);
            }
        }
        if self.last_conf_index() > before {
            self.after_membership_commit();
        }
        true
    }

    /// Whether an entry of this leader's term has committed.
    pub(crate) fn committed_in_term(&self) -> bool {
        self.role == Role::Leader && self.log.committed >= self.noop_index
    }

    /// Starts a leadership transfer to `to` (thesis §3.10).
    pub(crate) fn transfer_leader(&mut self, to: NodeId) {
        if self.role != Role::Leader || to == self.id || !self.conf.is_voter(to) {
            return;
        }
        if self.lead_transferee == Some(to) {
            return;
        }
        self.lead_transferee = Some(to);
        // The transfer must complete within an election timeout or it is abandoned.
        self.election_elapsed = 0;
        let caught_up = self
            .progress
            .get(&to)
            .is_some_and(|p| p.matched == self.log.last_index());
        if caught_up {
            self.send_timeout_now(to);
        } else {
            self.maybe_send_append(to, true);
        }
    }

    fn send_timeout_now(&mut self, to: NodeId) {
        self.timeout_now_sent = true;
        self.send(to, MessageBody::TimeoutNow);
    }

    /// The number of ticks the leader lease remains valid, or `None` when there is no valid
    /// lease (thesis §6.4.1).
    ///
    /// Followers honouring check-quorum ignore vote requests for an election timeout after
    /// hearing the leader, so once a quorum acknowledged a heartbeat the leader sent at tick
    /// `t`, no other leader can be elected before `t + election_timeout` on a clock that runs
    /// at the same rate; `lease_drift_ticks` absorbs bounded drift. The lease is void until an
    /// entry of the leader's term commits, and after TimeoutNow was sent (pitfall 4).
    pub(crate) fn lease_remaining_ticks(&self) -> Option<u64> {
        if !self.cfg.check_quorum || !self.committed_in_term() {
            return None;
        }
        if (self.timeout_now_sent || self.lead_transferee.is_some())
            && !Bugs::on(self.bugs.lease_survives_transfer)
        {
            return None;
        }
        let now = self.tick_count;
        let id = self.id;
        let progress = &self.progress;
        let acked = |n: NodeId| {
            if n == id {
                Some(now)
            } else {
                progress.get(&n).and_then(|p| p.acked_sent_tick)
            }
        };
        if !quorum::is_quorum(&self.conf, &|n| acked(n).is_some()) {
            return None;
        }
        let start = quorum::committed_value(&self.conf, &acked);
        let expiry =
            start.saturating_add(self.cfg.election_timeout_ticks - self.cfg.lease_drift_ticks);
        (now < expiry).then(|| expiry - now)
    }
}
