//! The durable log as the core reads it, and an in-memory implementation.
//!
//! The application owns durability: it writes hard state, entries and snapshots to its WAL
//! and then records them in its [`Storage`] (usually [`MemStorage`], which keeps the entries
//! since the last snapshot in memory). The core only reads from it.

use crate::error::StorageError;
use crate::types::{ConfState, Entry, HardState, LogIndex, Snapshot, SnapshotMetadata, Term};

/// The persisted state a node restarts from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftState {
    /// Term, vote and commit as last persisted.
    pub hard_state: HardState,
    /// The membership as of the last applied configuration persisted.
    pub conf_state: ConfState,
}

/// Read access to durable Raft state (etcd's `Storage` interface).
///
/// Everything returned must be durable: the core treats it as surviving a crash.
pub trait Storage {
    /// The hard state and membership to start from.
    ///
    /// # Errors
    /// Whatever the backing store reports.
    fn initial_state(&self) -> Result<RaftState, StorageError>;

    /// Entries in `[low, high)`, at most `max_bytes` of them but always at least one when the
    /// range is not empty.
    ///
    /// # Errors
    /// [`StorageError::Compacted`] if `low` is before the first index,
    /// [`StorageError::Unavailable`] if `high` is past `last_index() + 1`.
    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError>;

    /// The term of the entry at `index`; `first_index() - 1` answers with the snapshot's term.
    ///
    /// # Errors
    /// [`StorageError::Compacted`] or [`StorageError::Unavailable`].
    fn term(&self, index: LogIndex) -> Result<Term, StorageError>;

    /// The index of the first entry still held (the snapshot index + 1).
    fn first_index(&self) -> LogIndex;

    /// The index of the last entry held (the snapshot index when there are no entries).
    fn last_index(&self) -> LogIndex;

    /// The latest snapshot.
    ///
    /// # Errors
    /// [`StorageError::SnapshotTemporarilyUnavailable`] while one is being made.
    fn snapshot(&self) -> Result<Snapshot, StorageError>;
}

/// A [`Storage`] that holds everything in memory: the latest snapshot and the entries after
/// it. The application records into it what it has made durable elsewhere.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    /// Invariant: `entries[i].index == snapshot.metadata.index + 1 + i` (contiguous).
    entries: Vec<Entry>,
}

impl MemStorage {
    /// An empty log with the given initial membership (a brand-new cluster).
    pub fn new_with_conf_state(conf_state: ConfState) -> MemStorage {
        let mut storage = MemStorage::default();
        storage.snapshot.metadata.conf_state = conf_state;
        storage
    }

    /// Records the hard state as durable.
    pub fn set_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    /// The hard state last recorded.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Sets the membership of the log's starting point (the snapshot's), for bootstrapping a
    /// node. Do not record later changes here: the core re-derives them from the membership
    /// entries in the log after the snapshot, and the membership of a new snapshot is given
    /// to [`MemStorage::create_snapshot`].
    pub fn set_conf_state(&mut self, conf_state: ConfState) {
        self.snapshot.metadata.conf_state = conf_state;
    }

    /// Records entries as durable. Entries at or after the first new index are replaced (the
    /// leader overwrote them).
    ///
    /// # Panics
    /// If the entries are not contiguous or leave a gap after the current last index: the
    /// core never hands out such entries, so this is a caller bug.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        for pair in entries.windows(2) {
            assert_eq!(
                pair[0].index.next(),
                pair[1].index,
                "entries not contiguous"
            );
        }
        let snap_index = self.snapshot.metadata.index;
        // Entries already covered by the snapshot are dropped (pitfall 9).
        let skip = snap_index.0.saturating_sub(first.index.0 - 1) as usize;
        if skip >= entries.len() {
            return;
        }
        let entries = &entries[skip..];
        let first_index = entries[0].index;
        assert!(
            first_index.0 <= self.last_index().0 + 1,
            "gap in log: appending {} after {}",
            first_index,
            self.last_index()
        );
        let keep = (first_index.0 - snap_index.0 - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }

    /// Installs a snapshot received from the leader, discarding every entry.
    ///
    /// # Errors
    /// [`StorageError::SnapshotOutOfDate`] if it is older than the current snapshot.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        if snapshot.metadata.index < self.snapshot.metadata.index {
            return Err(StorageError::SnapshotOutOfDate {
                index: snapshot.metadata.index,
            });
        }
        self.entries.clear();
        if self.hard_state.commit < snapshot.metadata.index {
            self.hard_state.commit = snapshot.metadata.index;
        }
        if self.hard_state.term < snapshot.metadata.term {
            self.hard_state.term = snapshot.metadata.term;
            self.hard_state.vote = None;
        }
        self.snapshot = snapshot;
        Ok(())
    }

    /// Makes a snapshot of the application state `data` at `index` (which the application
    /// has applied) and compacts the log up to it.
    ///
    /// # Errors
    /// [`StorageError::SnapshotOutOfDate`] if `index` is not after the current snapshot,
    /// [`StorageError::Unavailable`] if `index` is past the last entry.
    pub fn create_snapshot(
        &mut self,
        index: LogIndex,
        conf_state: ConfState,
        data: bytes::Bytes,
    ) -> Result<&Snapshot, StorageError> {
        if index <= self.snapshot.metadata.index {
            return Err(StorageError::SnapshotOutOfDate { index });
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable { index });
        }
        let offset = (index.0 - self.snapshot.metadata.index.0 - 1) as usize;
        let entry = &self.entries[offset];
        self.snapshot = Snapshot {
            metadata: SnapshotMetadata {
                index,
                term: entry.term,
                position: entry.position,
                conf_state,
            },
            data,
        };
        self.entries.drain(..=offset);
        Ok(&self.snapshot)
    }

    /// All entries held (after the snapshot).
    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        Ok(RaftState {
            hard_state: self.hard_state,
            conf_state: self.snapshot.metadata.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low < self.first_index() {
            return Err(StorageError::Compacted { index: low });
        }
        if high > self.last_index().next() {
            return Err(StorageError::Unavailable { index: high });
        }
        let base = self.snapshot.metadata.index.0 + 1;
        let mut out = Vec::new();
        let mut size = 0u64;
        for entry in &self.entries[(low.0 - base) as usize..(high.0 - base) as usize] {
            size += entry.size_bytes();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let snap = &self.snapshot.metadata;
        if index == snap.index {
            return Ok(snap.term);
        }
        if index < snap.index {
            return Err(StorageError::Compacted { index });
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable { index });
        }
        Ok(self.entries[(index.0 - snap.index.0 - 1) as usize].term)
    }

    fn first_index(&self) -> LogIndex {
        self.snapshot.metadata.index.next()
    }

    fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot.metadata.index.0 + self.entries.len() as u64)
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryKind;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            position: 0,
            kind: EntryKind::Normal,
            data: bytes::Bytes::new(),
        }
    }

    #[test]
    fn append_replaces_a_conflicting_suffix() {
        let mut s = MemStorage::default();
        s.append(&[entry(1, 1), entry(1, 2), entry(1, 3)]);
        s.append(&[entry(2, 2)]);
        assert_eq!(s.last_index(), LogIndex(2));
        assert_eq!(s.term(LogIndex(2)), Ok(Term(2)));
    }

    #[test]
    fn compaction_keeps_the_snapshot_term() {
        let mut s = MemStorage::default();
        s.append(&[entry(1, 1), entry(2, 2), entry(2, 3)]);
        s.create_snapshot(LogIndex(2), ConfState::default(), bytes::Bytes::new())
            .unwrap();
        assert_eq!(s.first_index(), LogIndex(3));
        assert_eq!(s.term(LogIndex(2)), Ok(Term(2)));
        assert_eq!(
            s.term(LogIndex(1)),
            Err(StorageError::Compacted { index: LogIndex(1) })
        );
        assert_eq!(
            s.entries(LogIndex(3), LogIndex(4), u64::MAX).unwrap().len(),
            1
        );
    }

    #[test]
    fn entries_respect_the_byte_limit_but_return_one() {
        let mut s = MemStorage::default();
        s.append(&[entry(1, 1), entry(1, 2)]);
        assert_eq!(s.entries(LogIndex(1), LogIndex(3), 0).unwrap().len(), 1);
    }
}
