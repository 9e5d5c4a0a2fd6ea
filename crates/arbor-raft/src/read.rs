//! Linearizable reads: ReadIndex (thesis §6.4) and lease reads (§6.4.1).
//!
//! The leader records its commit index for the read, then confirms it is still the leader
//! with a heartbeat round acknowledged by a quorum; the read may then be served once the
//! state machine has applied that index. A fresh leader does not know the latest commit
//! index until an entry of its own term commits, so reads wait for its no-op (pitfall 3).

use bytes::Bytes;

use crate::bugs::Bugs;
use crate::config::ReadOnlyOption;
use crate::error::ReadError;
use crate::message::MessageBody;
use crate::quorum;
use crate::raft::{PendingRead, Raft, ReadState};
use crate::storage::Storage;
use crate::types::{LogIndex, NodeId, Role};

impl<S: Storage> Raft<S> {
    /// Asks for a read index for `context`, on behalf of this node (`from == None`) or of a
    /// follower.
    pub(crate) fn read_index(
        &mut self,
        context: Bytes,
        from: Option<NodeId>,
    ) -> Result<(), ReadError> {
        if self.role != Role::Leader {
            let leader = self.leader.ok_or(ReadError::NoLeader)?;
            self.send(leader, MessageBody::ReadIndex { context });
            return Ok(());
        }
        if !self.committed_in_term() && !Bugs::on(self.bugs.read_index_before_noop) {
            if self.reads_awaiting_noop.len() >= self.cfg.pending_reads_max {
                return Err(ReadError::Overloaded);
            }
            self.reads_awaiting_noop.push_back((context, from));
            return Ok(());
        }
        let index = self.log.committed;
        let single_voter = self.conf.voters.len() == 1
            && self.conf.voters.contains(&self.id)
            && !self.conf.is_joint();
        let lease = self.cfg.read_only_option == ReadOnlyOption::LeaseBased
            && self.lease_remaining_ticks().is_some();
        if single_voter || lease {
            self.answer_read(context, from, index);
            return Ok(());
        }
        if self.pending_reads.len() >= self.cfg.pending_reads_max {
            return Err(ReadError::Overloaded);
        }
        self.read_round += 1;
        let round = self.read_round;
        self.pending_reads.push_back(PendingRead {
            context,
            from,
            index,
            round,
        });
        self.broadcast_heartbeat(round);
        Ok(())
    }

    fn answer_read(&mut self, context: Bytes, from: Option<NodeId>, index: LogIndex) {
        match from {
            None => self.read_states.push(ReadState { index, context }),
            Some(to) => self.send(
                to,
                MessageBody::ReadIndexResponse {
                    context,
                    index: Some(index),
                },
            ),
        }
    }

    /// Serves every pending read whose heartbeat round a quorum has acknowledged.
    pub(crate) fn release_reads(&mut self) {
        if self.pending_reads.is_empty() {
            return;
        }
        let id = self.id;
        let newest = self.read_round;
        let progress = &self.progress;
        let acked = quorum::committed_value(&self.conf, &|n| {
            if n == id {
                Some(newest)
            } else {
                progress.get(&n).map(|p| p.read_round)
            }
        });
        while let Some(read) = self.pending_reads.front() {
            if read.round > acked {
                break;
            }
            let Some(read) = self.pending_reads.pop_front() else {
                break;
            };
            self.answer_read(read.context, read.from, read.index);
        }
    }
}
