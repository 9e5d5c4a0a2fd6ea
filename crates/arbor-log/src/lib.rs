//! arbor's durable storage: the Raft log as a segmented write-ahead log, the hard state, and
//! snapshots, with crash recovery.
//!
//! - **The WAL** is a directory of preallocated segment files (`seg-<seq>.wal`) holding
//!   checksummed frames (`[len:u32le][crc32c:u32le][payload]`, see the format below). A writer
//!   thread group-commits: every submission waiting when it is free goes into one frame, one
//!   `pwrite`, one `fdatasync`. A submission's callback runs only after that fdatasync.
//! - **Hard state** (term, vote, commit) is a record in the same frames, so it is durable
//!   together with the entries of its batch, before the callback says so (Raft thesis §3.8).
//! - **Truncation** of an uncommitted suffix is a record too; recovery replays it.
//! - **Snapshots** (`snap-<index>.snap`) are streamed by the caller on any thread to a
//!   temporary file, fsynced, renamed, the directory fsynced; checksummed and verified on load.
//!   [`Wal::compact`] then drops segments the snapshot covers.
//! - **Recovery** ([`Wal::open`]) drops a torn write at the very end of the log and refuses
//!   everything else that is wrong, naming the file and byte offset: it never silently drops an
//!   entry that may have been committed.
//!
//! # Using it
//!
//! ```
//! use std::sync::mpsc;
//! use arbor_log::{Entry, HardState, LogConfig, SnapshotMeta, Wal, WriteBatch};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let (wal, recovered) = Wal::open(LogConfig::new(dir.path()))?;
//! assert!(recovered.entries.is_empty());
//!
//! // Persist what Raft's `ready()` asks for; send the acks only once it is durable.
//! let (durable, wait) = mpsc::channel();
//! let batch = WriteBatch {
//!     hard_state: Some(HardState { term: 1, vote: Some(1), commit: 0 }),
//!     truncate_after: None,
//!     entries: vec![Entry { index: 1, term: 1, data: "create /a".into() }],
//! };
//! wal.submit(batch, Box::new(move |result| { durable.send(result).ok(); }))?;
//! wait.recv()??;
//!
//! // A snapshot at index 1 is streamed from any thread; then older segments may go.
//! let meta = SnapshotMeta { index: 1, term: 1, app_meta: b"voters=1".to_vec() };
//! wal.snapshots().save(&meta, &mut |out| out.write_all(b"the tree at index 1"))?;
//! wal.compact(1)?;
//! wal.close()?;
//!
//! // After a restart (or a crash), everything acknowledged is back.
//! let (wal, recovered) = Wal::open(LogConfig::new(dir.path()))?;
//! assert_eq!(recovered.hard_state, HardState { term: 1, vote: Some(1), commit: 0 });
//! assert_eq!(recovered.snapshot.as_ref().map(|(meta, _)| meta.index), Some(1));
//! assert_eq!(recovered.last_index(), 1);
//! wal.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Segment format
//!
//! All integers are explicitly sized and little-endian. Frames start at multiples of 8 bytes;
//! a zero length marks the end of the written part (the rest of the preallocated file is
//! zeros).
//!
//! ```text
//! frame   := len:u32le crc:u32le payload[len] zero-padding-to-8      crc = CRC32C(len bytes ++ payload)
//! record  := 1 SegmentHeader "ARBORWAL" version:u32 seq:u64 prev_index:u64 hard_state
//!          | 2 HardState hard_state | 3 Truncate after:u64
//!          | 4 Entry index:u64 term:u64 data_len:u32 data
//! hard_state := term:u64 has_vote:u8 vote:u64 commit:u64
//! ```
//!
//! One frame is one group commit. A crash can therefore tear only the last frame of the last
//! segment; recovery drops such a frame when no valid frame follows it, and treats any other
//! damage as corruption. The first frame of every segment starts with a header repeating the
//! hard state and the last index, so compacted segments can be deleted without losing either.
//!
//! What recovery cannot tell apart: a bit flip inside the very last frame looks exactly like a
//! torn write, and that frame is dropped (as etcd and ZooKeeper do). [`Recovered::torn_tail`]
//! reports it, and it is logged. The opposite mistake fails safe: if the bytes of a torn frame
//! happen to contain a complete valid frame at an 8-byte-aligned offset (an entry whose data
//! embeds WAL bytes), recovery reports corruption instead of dropping the tail.
//!
//! # Durability assumptions
//!
//! `fdatasync` makes a file's written bytes (and the size/allocation needed to read them)
//! durable; directory entries (create, rename, unlink) are made durable by fsyncing the
//! directory; unsynced bytes may reach the disk in any order and any subset. A failed
//! `fdatasync` is fatal: the WAL reports the error to the batches of that write and to every
//! later submission, and never retries.

#![deny(missing_docs)]

mod config;
mod error;
mod format;
mod fsutil;
pub mod inspect;
mod recovery;
mod replay;
mod snapshot;
mod stats;
mod types;
mod validate;
mod wal;
mod writer;

pub use config::{
    BATCH_BYTES_MAX_DEFAULT, LogConfig, RECORD_SIZE_BYTES_MAX_DEFAULT, SEGMENT_SIZE_BYTES_DEFAULT,
    SNAPSHOTS_RETAINED_DEFAULT, SUBMIT_QUEUE_MAX_DEFAULT,
};
pub use error::{
    BatchError, ConfigError, CorruptReason, LogError, SnapshotCorruption, SubmitError,
};
pub use format::{
    ENTRY_RECORD_OVERHEAD_BYTES, FRAME_ALIGN_BYTES, FRAME_HEADER_BYTES, HARD_STATE_RECORD_BYTES,
    SEGMENT_HEADER_RECORD_BYTES, TRUNCATE_RECORD_BYTES,
};
pub use snapshot::{SNAPSHOT_APP_META_BYTES_MAX, SnapshotStore};
pub use stats::WalStats;
pub use types::{Entry, HardState, Recovered, SnapshotMeta, TornTail, WriteBatch};
pub use wal::Wal;
