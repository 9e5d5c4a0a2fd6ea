//! The follower's side: accepting appends (with the log-matching checks), heartbeats and
//! snapshots sent in chunks.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::message::{MessageBody, RejectHint};
use crate::raft::{IncomingSnapshot, Raft};
use crate::storage::Storage;
use crate::types::{Entry, LogIndex, NodeId, Snapshot, SnapshotMetadata, Term};

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

    pub(crate) fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        metadata: SnapshotMetadata,
        offset: u64,
        data: &[u8],
        done: bool,
    ) {
        if metadata.index <= self.log.committed {
            self.incoming_snapshot = None;
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
        let same = self.incoming_snapshot.as_ref().is_some_and(|s| {
            s.metadata.index == metadata.index && s.metadata.term == metadata.term
        });
        if !same {
            let newer = self
                .incoming_snapshot
                .as_ref()
                .is_none_or(|s| metadata.index >= s.metadata.index);
            if !newer {
                return;
            }
            self.incoming_snapshot = Some(IncomingSnapshot {
                metadata,
                chunks: BTreeMap::new(),
                total_bytes: None,
            });
        }
        let Some(incoming) = self.incoming_snapshot.as_mut() else {
            return;
        };
        incoming.chunks.insert(offset, Bytes::copy_from_slice(data));
        if done {
            incoming.total_bytes = Some(offset + data.len() as u64);
        }
        let Some(total) = incoming.total_bytes else {
            return;
        };
        // Complete when the chunks cover [0, total) without a gap.
        let mut covered = 0u64;
        for (&at, chunk) in &incoming.chunks {
            if at > covered {
                return;
            }
            covered = covered.max(at + chunk.len() as u64);
        }
        if covered < total {
            return;
        }
        let Some(incoming) = self.incoming_snapshot.take() else {
            return;
        };
        let mut bytes = Vec::with_capacity(total as usize);
        for (at, chunk) in incoming.chunks {
            let have = bytes.len() as u64;
            if at + chunk.len() as u64 <= have {
                continue;
            }
            bytes.extend_from_slice(&chunk[(have - at) as usize..]);
        }
        bytes.truncate(total as usize);
        let snapshot = Snapshot {
            metadata: incoming.metadata,
            data: bytes.into(),
        };
        self.restore(snapshot);
        let index = self.log.committed;
        self.send(
            from,
            MessageBody::AppendResponse {
                index,
                reject: None,
            },
        );
    }

    /// Installs a snapshot from the leader, unless our log already has its last entry (then
    /// only commit moves, and the entries after it are kept).
    fn restore(&mut self, snapshot: Snapshot) {
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
