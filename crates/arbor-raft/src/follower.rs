//! The follower's side: accepting appends (with the log-matching checks), heartbeats and
//! installing a snapshot (its chunks are assembled in `snapshot_receive.rs`).

use crate::message::{MessageBody, RejectHint};
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{Entry, LogIndex, NodeId, Snapshot, Term};

impl<S: Storage> Raft<S> {
    pub(crate) fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        entries: &[Entry],
        commit: LogIndex,
    ) {
        if prev_index < self.log.committed {
            // Everything up to our commit index matches the leader (Leader Completeness).
            let committed = self.log.committed;
            self.send(
                from,
                MessageBody::AppendResponse {
                    index: committed,
                    reject: None,
                },
            );
            return;
        }
        let bugs = self.bugs;
        match self
            .log
            .maybe_append(prev_index, prev_term, commit, entries, &bugs)
        {
            Some((last_new, written)) => {
                if let Some(from_index) = written {
                    self.note_appended(from_index, entries);
                }
                self.send(
                    from,
                    MessageBody::AppendResponse {
                        index: last_new,
                        reject: None,
                    },
                );
            }
            None => {
                let probe = prev_index.min(self.log.last_index());
                let (index, term) = self.log.find_conflict_by_term(probe, prev_term);
                self.send(
                    from,
                    MessageBody::AppendResponse {
                        index: prev_index,
                        reject: Some(RejectHint { index, term }),
                    },
                );
            }
        }
    }

    pub(crate) fn handle_heartbeat(
        &mut self,
        from: NodeId,
        commit: LogIndex,
        sent_tick: u64,
        read_round: u64,
    ) {
        // The leader sends min(commit, what it knows we match), all of which it verified.
        self.log.commit_to(commit.min(self.log.last_index()));
        self.send(
            from,
            MessageBody::HeartbeatResponse {
                sent_tick,
                read_round,
            },
        );
    }

    /// Installs a snapshot from the leader, unless our log already has its last entry (then
    /// only commit moves, and the entries after it are kept).
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        let meta = &snapshot.metadata;
        if self.log.match_term(meta.index, meta.term) {
            self.log.commit_to(meta.index);
            return;
        }
        self.base_conf = meta.conf_state.clone();
        self.conf_history.clear();
        self.conf = self.base_conf.clone();
        self.log.restore(snapshot);
        self.rebuild_progress();
    }
}
