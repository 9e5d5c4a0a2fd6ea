//! The Raft storage of a server: the log since the last snapshot in memory (it is durable in
//! the WAL), and the snapshot's data on disk only. Keeping a million-node snapshot in memory
//! would double the server's footprint for the rare follower that needs it; it is read back
//! from the snapshot file when Raft must send it.

use arbor_log::SnapshotStore;
use arbor_raft::{
    ConfState, Entry, HardState, LogIndex, MemStorage, RaftState, Snapshot, Storage, StorageError,
    Term,
};
use bytes::Bytes;
use tracing::warn;

/// [`MemStorage`] whose snapshot data lives in the snapshot files.
pub(crate) struct ArborStorage {
    memory: MemStorage,
    snapshots: SnapshotStore,
}

impl ArborStorage {
    pub(crate) fn new(memory: MemStorage, snapshots: SnapshotStore) -> ArborStorage {
        ArborStorage { memory, snapshots }
    }

    /// Records entries made durable by the WAL.
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        self.memory.append(entries);
    }

    /// Records the hard state made durable by the WAL.
    pub(crate) fn set_hard_state(&mut self, hard_state: HardState) {
        self.memory.set_hard_state(hard_state);
    }

    /// Records a snapshot saved to disk (its data is not kept in memory).
    ///
    /// # Errors
    /// [`StorageError::SnapshotOutOfDate`] for a snapshot older than the current one.
    pub(crate) fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.memory.apply_snapshot(Snapshot {
            metadata: snapshot.metadata.clone(),
            data: Bytes::new(),
        })
    }

    /// Compacts the log up to `index`, whose snapshot was saved to disk.
    ///
    /// # Errors
    /// As [`MemStorage::create_snapshot`].
    pub(crate) fn compact(
        &mut self,
        index: LogIndex,
        conf_state: ConfState,
    ) -> Result<(), StorageError> {
        self.memory
            .create_snapshot(index, conf_state, Bytes::new())
            .map(|_| ())
    }
}

impl Storage for ArborStorage {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        self.memory.initial_state()
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.memory.entries(low, high, max_bytes)
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        self.memory.term(index)
    }

    fn first_index(&self) -> LogIndex {
        self.memory.first_index()
    }

    fn last_index(&self) -> LogIndex {
        self.memory.last_index()
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        let mut snapshot = self.memory.snapshot()?;
        if snapshot.metadata.index == LogIndex(0) {
            return Ok(snapshot);
        }
        // Blocking file I/O on the core task: only when a follower fell behind the log.
        match self.snapshots.load_newest() {
            Ok(Some((meta, data))) if meta.index == snapshot.metadata.index.0 => {
                snapshot.data = Bytes::from(data);
                Ok(snapshot)
            }
            Ok(_) => Err(StorageError::SnapshotTemporarilyUnavailable),
            Err(error) => {
                warn!(%error, "cannot read the snapshot to send to a follower");
                Err(StorageError::SnapshotTemporarilyUnavailable)
            }
        }
    }
}
