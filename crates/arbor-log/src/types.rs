//! The vocabulary of the log: entries, hard state, snapshot metadata, write batches and what
//! recovery hands back.

use std::path::PathBuf;

use bytes::Bytes;

/// One entry of the Raft log, as the WAL stores it. The WAL does not interpret `data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The position of the entry in the log; the first entry ever has index 1.
    pub index: u64,
    /// The term of the leader that created the entry.
    pub term: u64,
    /// The payload, opaque to the WAL.
    pub data: Bytes,
}

/// The Raft state that must be durable before a vote or an append ack leaves the node
/// (Raft thesis §3.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen. Never decreases.
    pub term: u64,
    /// Whom this node voted for in `term`; once set it does not change within the term.
    pub vote: Option<u64>,
    /// The highest index known committed. Never decreases.
    pub commit: u64,
}

/// What a snapshot covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The last log index the snapshot covers.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
    /// Opaque application metadata (for example the cluster configuration at `index`).
    pub app_meta: Vec<u8>,
}

/// One unit of durable work: optionally truncate the log's suffix, then append entries, then
/// record a new hard state. All of it becomes durable together (it is written in one frame).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The hard state to record, if it changed.
    pub hard_state: Option<HardState>,
    /// Discard every entry after this index before appending `entries` (Raft §5.3: entries
    /// that conflict with a new leader's log). An index beyond the current last index resets
    /// the log to start after it, which is only allowed when a saved snapshot covers it.
    pub truncate_after: Option<u64>,
    /// Entries to append, contiguous, starting right after the last index (after truncation).
    pub entries: Vec<Entry>,
}

impl WriteBatch {
    /// Whether the batch carries nothing to write (it then only orders its callback after every
    /// earlier batch).
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.truncate_after.is_none() && self.entries.is_empty()
    }
}

/// Where recovery found and discarded a torn write at the end of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment file.
    pub path: PathBuf,
    /// The byte offset where the torn frame started; everything from here on was discarded.
    pub offset: u64,
    /// How many bytes between `offset` and the last non-zero byte were discarded (then zeroed).
    pub bytes_discarded: u64,
}

/// What [`crate::Wal::open`] found on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The last durable hard state (the default when none was ever written).
    pub hard_state: HardState,
    /// The newest snapshot, verified, with its data.
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// Every entry after the snapshot, contiguous from `snapshot.index + 1` (or from 1).
    pub entries: Vec<Entry>,
    /// Set when the end of the log held a torn write that recovery discarded.
    pub torn_tail: Option<TornTail>,
}

impl Recovered {
    /// The index of the last entry the node has: the last recovered entry, or the snapshot's
    /// index, or 0 for an empty log.
    pub fn last_index(&self) -> u64 {
        match self.entries.last() {
            Some(entry) => entry.index,
            None => self.snapshot_index(),
        }
    }

    /// The index the snapshot covers, or 0 without a snapshot.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |(meta, _)| meta.index)
    }
}
