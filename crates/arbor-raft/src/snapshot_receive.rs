//! The follower's side of a snapshot transfer: chunks are reassembled into a buffer whose
//! size the leader announces with every chunk and which must be within
//! `snapshot_bytes_max` (else the snapshot is refused, with a logged reason, before anything
//! is buffered). Chunks may come in any order and more than once; each is answered with how
//! much of the snapshot is held from its start, and the complete snapshot is installed and
//! answered like an append. Only one partial snapshot is kept: it is discarded when a newer
//! one starts, when the leader or term changes, and (being in memory) when the node restarts.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

use crate::message::{MessageBody, SnapshotRefusal};
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{NodeId, Snapshot, SnapshotMetadata, Term};

/// A snapshot being received in chunks.
///
/// Invariants: `data.len() == total_bytes`; `received` holds disjoint, non-adjacent byte
/// ranges `start -> end` within `[0, total_bytes)`, exactly the bytes of `data` written from
/// chunks.
pub(crate) struct IncomingSnapshot {
    /// The leader sending it, and its term: a partial snapshot of another leader is dropped.
    leader: NodeId,
    leader_term: Term,
    metadata: SnapshotMetadata,
    total_bytes: u64,
    data: Vec<u8>,
    received: BTreeMap<u64, u64>,
    /// The largest `seq` among the chunks taken. Answers carry it: it only grows while this
    /// buffer lives, and so does what the buffer holds, so the leader can order answers.
    seq_max: u64,
}

impl fmt::Debug for IncomingSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingSnapshot")
            .field("leader", &self.leader)
            .field("leader_term", &self.leader_term)
            .field("index", &self.metadata.index)
            .field("total_bytes", &self.total_bytes)
            .field("received", &self.received)
            .field("seq_max", &self.seq_max)
            .finish()
    }
}

impl IncomingSnapshot {
    /// An empty buffer of `total_bytes`, which the caller checked against the limit.
    fn new(
        leader: NodeId,
        leader_term: Term,
        metadata: SnapshotMetadata,
        total_bytes: usize,
    ) -> IncomingSnapshot {
        IncomingSnapshot {
            leader,
            leader_term,
            metadata,
            total_bytes: total_bytes as u64,
            // Zeroed memory is mapped lazily, so this costs what the chunks fill.
            data: vec![0; total_bytes],
            received: BTreeMap::new(),
            seq_max: 0,
        }
    }

    fn is_for(&self, leader: NodeId, term: Term, metadata: &SnapshotMetadata, total: u64) -> bool {
        self.leader == leader
            && self.leader_term == term
            && self.metadata.index == metadata.index
            && self.metadata.term == metadata.term
            && self.total_bytes == total
    }

    /// Writes chunk `seq` at `offset`; the caller checked
    /// `offset + data.len() <= total_bytes`.
    fn insert(&mut self, offset: u64, data: &[u8], seq: u64) {
        self.seq_max = self.seq_max.max(seq);
        let end = offset + data.len() as u64;
        assert!(
            end <= self.total_bytes,
            "chunk [{offset}, {end}) past the snapshot's {} bytes",
            self.total_bytes
        );
        self.data[offset as usize..end as usize].copy_from_slice(data);
        if data.is_empty() {
            return;
        }
        // Merge with every range it overlaps or touches.
        let mut start = offset;
        let mut stop = end;
        let touching: Vec<(u64, u64)> = self
            .received
            .range(..=end)
            .rev()
            .take_while(|&(_, &e)| e >= offset)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in touching {
            self.received.remove(&s);
            start = start.min(s);
            stop = stop.max(e);
        }
        self.received.insert(start, stop);
    }

    /// How many bytes from the start are held without a gap.
    fn prefix_bytes(&self) -> u64 {
        self.received.get(&0).copied().unwrap_or(0)
    }

    fn is_complete(&self) -> bool {
        self.prefix_bytes() == self.total_bytes
    }

    fn into_snapshot(self) -> Snapshot {
        Snapshot {
            metadata: self.metadata,
            data: Bytes::from(self.data),
        }
    }
}

impl<S: Storage> Raft<S> {
    /// Drops the partial snapshot, if any (the leader changed, or this node stopped
    /// following it).
    pub(crate) fn discard_incoming_snapshot(&mut self, why: &'static str) {
        if let Some(incoming) = self.incoming_snapshot.take() {
            tracing::debug!(
                node_id = self.id.0,
                term = self.term.0,
                index = incoming.metadata.index.0,
                received_bytes = incoming.prefix_bytes(),
                why,
                "discarding partial snapshot"
            );
        }
    }

    /// A chunk of a snapshot from the leader `from` (already validated as our leader in our
    /// term by `step`).
    pub(crate) fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        metadata: SnapshotMetadata,
        total_bytes: u64,
        offset: u64,
        data: &[u8],
        seq: u64,
    ) {
        let committed = self.log.committed;
        if metadata.index <= committed {
            // We have it already (this may repeat a question whose answer was lost).
            if self
                .incoming_snapshot
                .as_ref()
                .is_some_and(|s| s.metadata.index <= committed)
            {
                self.discard_incoming_snapshot("already committed");
            }
            self.send(
                from,
                MessageBody::AppendResponse {
                    index: committed,
                    reject: None,
                },
            );
            return;
        }
        let in_range = offset
            .checked_add(data.len() as u64)
            .is_some_and(|end| end <= total_bytes);
        if !in_range {
            tracing::warn!(
                node_id = self.id.0,
                from = from.0,
                offset,
                len = data.len() as u64,
                total_bytes,
                "dropping a snapshot chunk outside the announced size"
            );
            return;
        }
        let limit_bytes = self.cfg.snapshot_bytes_max;
        let size = usize::try_from(total_bytes)
            .ok()
            .filter(|_| total_bytes <= limit_bytes);
        let Some(size) = size else {
            tracing::warn!(
                node_id = self.id.0,
                term = self.term.0,
                from = from.0,
                index = metadata.index.0,
                total_bytes,
                limit_bytes,
                "refusing a snapshot larger than snapshot_bytes_max"
            );
            self.send(
                from,
                MessageBody::SnapshotAck {
                    snapshot_index: metadata.index,
                    snapshot_term: metadata.term,
                    seq,
                    received_bytes: 0,
                    refused: Some(SnapshotRefusal::TooLarge {
                        size_bytes: total_bytes,
                        limit_bytes,
                    }),
                },
            );
            return;
        };
        let term = self.term;
        let current = self
            .incoming_snapshot
            .as_ref()
            .is_some_and(|s| s.is_for(from, term, &metadata, total_bytes));
        if !current {
            let older = self.incoming_snapshot.as_ref().is_some_and(|s| {
                s.leader == from && s.leader_term == term && s.metadata.index > metadata.index
            });
            if older {
                // A late chunk of a snapshot the leader has since replaced.
                return;
            }
            self.discard_incoming_snapshot("a newer snapshot started");
            self.incoming_snapshot = Some(IncomingSnapshot::new(from, term, metadata, size));
        }
        let Some(incoming) = self.incoming_snapshot.as_mut() else {
            return;
        };
        incoming.insert(offset, data, seq);
        if !incoming.is_complete() {
            let ack = MessageBody::SnapshotAck {
                snapshot_index: incoming.metadata.index,
                snapshot_term: incoming.metadata.term,
                seq: incoming.seq_max,
                received_bytes: incoming.prefix_bytes(),
                refused: None,
            };
            self.send(from, ack);
            return;
        }
        let Some(incoming) = self.incoming_snapshot.take() else {
            return;
        };
        self.restore(incoming.into_snapshot());
        // Leaves once the snapshot is durable (an AppendResponse needs persistence).
        let index = self.log.committed;
        self.send(
            from,
            MessageBody::AppendResponse {
                index,
                reject: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LogIndex;

    fn buffer(total: usize) -> IncomingSnapshot {
        let metadata = SnapshotMetadata {
            index: LogIndex(7),
            term: Term(3),
            ..SnapshotMetadata::default()
        };
        IncomingSnapshot::new(NodeId(1), Term(4), metadata, total)
    }

    #[test]
    fn chunks_in_any_order_and_repeated_assemble_the_snapshot() {
        let mut b = buffer(10);
        b.insert(6, b"ghij", 1);
        assert_eq!(b.prefix_bytes(), 0);
        b.insert(0, b"abc", 1);
        assert_eq!(b.prefix_bytes(), 3);
        b.insert(6, b"ghij", 1);
        b.insert(0, b"abc", 1);
        assert_eq!(b.received.len(), 2, "duplicates add no range");
        b.insert(3, b"def", 1);
        assert!(b.is_complete());
        assert_eq!(b.received.len(), 1);
        assert_eq!(&b.into_snapshot().data[..], b"abcdefghij");
    }

    #[test]
    fn overlapping_chunks_merge() {
        let mut b = buffer(10);
        b.insert(2, b"cde", 1);
        b.insert(8, b"ij", 1);
        b.insert(4, b"efgh", 1);
        assert_eq!(b.received, BTreeMap::from([(2, 10)]));
        b.insert(0, b"abc", 1);
        assert!(b.is_complete());
        assert_eq!(&b.into_snapshot().data[..], b"abcdefghij");
    }

    #[test]
    fn answers_carry_the_largest_seq_taken() {
        let mut b = buffer(10);
        b.insert(0, b"ab", 7);
        b.insert(2, b"cd", 5);
        assert_eq!(
            b.seq_max, 7,
            "a late chunk does not make the buffer look older"
        );
    }

    #[test]
    fn an_empty_snapshot_is_complete_at_once() {
        let mut b = buffer(0);
        b.insert(0, b"", 1);
        assert!(b.is_complete());
    }

    #[test]
    fn the_buffer_is_the_announced_size() {
        let b = buffer(1000);
        assert_eq!(b.data.len(), 1000);
        assert!(b.is_for(NodeId(1), Term(4), &b.metadata.clone(), 1000));
        assert!(!b.is_for(NodeId(2), Term(4), &b.metadata.clone(), 1000));
        assert!(!b.is_for(NodeId(1), Term(5), &b.metadata.clone(), 1000));
        assert!(!b.is_for(NodeId(1), Term(4), &b.metadata.clone(), 999));
    }

    #[test]
    #[should_panic(expected = "past the snapshot")]
    fn a_chunk_past_the_end_is_a_bug() {
        buffer(4).insert(2, b"cde", 1);
    }
}
