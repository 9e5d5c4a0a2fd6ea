//! Errors, split by what a caller branches on: I/O, corruption found on disk, a rejected
//! submission, a failed (poisoned) WAL.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Why opening, recovering, writing or reading the log failed.
///
/// `Clone` so that one fatal error can be reported to every pending and later submission.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("fdatasync", "rename", ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A segment holds bytes that are not a torn tail: a damaged frame with valid frames after
    /// it, damage in a segment that is not the last, an index gap, a bad header. Recovery
    /// refuses rather than drop entries that may have been committed.
    #[error("corrupt WAL segment {path} at byte offset {offset}: {reason}{}",
        valid_frame_after.map(|at| format!(" (a valid frame follows at offset {at}, so this is not a torn tail)")).unwrap_or_default())]
    CorruptSegment {
        /// The segment file.
        path: PathBuf,
        /// The byte offset of the damaged frame in that file.
        offset: u64,
        /// What is wrong there.
        reason: CorruptReason,
        /// The offset of a valid frame found after the damage, if any.
        valid_frame_after: Option<u64>,
    },
    /// A snapshot file failed verification.
    #[error("corrupt snapshot {path}: {reason}")]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        reason: SnapshotCorruption,
    },
    /// The log starts after the snapshot's index, so entries in between are missing.
    #[error(
        "the WAL does not reach back to the snapshot: it starts after index {log_base} \
         (segment {path}) but the newest snapshot covers only up to index {snapshot_index}"
    )]
    LogGap {
        /// The index the log starts after.
        log_base: u64,
        /// The newest snapshot's index (0 without a snapshot).
        snapshot_index: u64,
        /// The first segment file.
        path: PathBuf,
    },
    /// A snapshot exists but no WAL segment does: the hard state (term, vote) is gone, and a
    /// node that forgot its vote can vote twice. Refused.
    #[error("{dir} holds a snapshot but no WAL segment: the hard state (term and vote) is lost")]
    MissingSegments {
        /// The data directory.
        dir: PathBuf,
    },
    /// The recovered commit index points past the recovered log.
    #[error("the recovered commit index {commit} is beyond the last recovered index {last_index}")]
    CommitBeyondLog {
        /// The recovered hard state's commit.
        commit: u64,
        /// The last index of the recovered log (or the snapshot's).
        last_index: u64,
    },
    /// Another WAL (in this or another process) has the directory open.
    #[error("the data directory {dir} is locked by another open WAL")]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// The configuration is inconsistent.
    #[error("invalid WAL configuration: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// A snapshot older than the newest saved one was offered.
    #[error(
        "snapshot at index {index} is older than the newest saved snapshot at index {newest_index}"
    )]
    StaleSnapshot {
        /// The offered snapshot's index.
        index: u64,
        /// The newest saved snapshot's index.
        newest_index: u64,
    },
    /// Snapshot application metadata is larger than the format allows.
    #[error("snapshot app_meta of {size_bytes} bytes exceeds the maximum of {max_bytes}")]
    SnapshotMetaTooLarge {
        /// The offered size.
        size_bytes: usize,
        /// [`crate::SNAPSHOT_APP_META_BYTES_MAX`].
        max_bytes: usize,
    },
    /// The WAL failed earlier (for example an fdatasync error) and accepts no more writes:
    /// after a failed fsync the state of the page cache is unknown, so retrying could report
    /// data durable that is not.
    #[error("the WAL failed earlier and accepts no more writes: {0}")]
    Failed(Arc<LogError>),
    /// The WAL writer has stopped.
    #[error("the WAL is closed")]
    Closed,
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> LogError {
        LogError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

/// What is wrong at a damaged place in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptReason {
    /// The frame's CRC32C does not match its bytes.
    #[error("frame checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch {
        /// The CRC stored in the frame header.
        stored: u32,
        /// The CRC of the bytes read.
        computed: u32,
    },
    /// The frame's length runs past the end of the file.
    #[error("frame of {len} bytes runs past the end of the file")]
    FrameOverrunsFile {
        /// The length in the frame header.
        len: u32,
    },
    /// The file ends inside a frame header.
    #[error("file ends inside a frame header")]
    TruncatedFrameHeader,
    /// A zero length (the end of the written part) is followed by non-zero bytes.
    #[error("non-zero bytes after the end-of-log marker")]
    GarbageAfterEnd,
    /// A frame with a valid checksum holds a record that does not parse.
    #[error("malformed record: {0}")]
    MalformedRecord(&'static str),
    /// A record has a type this version does not know.
    #[error("unknown record type {0}")]
    UnknownRecordType(u8),
    /// The segment does not start with a segment header.
    #[error("segment does not start with a segment header")]
    MissingHeader,
    /// The segment header has the wrong magic number.
    #[error("not an arbor WAL segment (bad magic)")]
    BadMagic,
    /// The segment was written by a format version this code does not read.
    #[error("unsupported WAL format version {0}")]
    UnsupportedVersion(u32),
    /// The header's sequence number disagrees with the file name.
    #[error("segment header says sequence {found}, the file name says {expected}")]
    WrongSequence {
        /// From the file name.
        expected: u64,
        /// From the header.
        found: u64,
    },
    /// A segment file is missing between two others.
    #[error("segment sequence gap: expected segment {expected} before this one")]
    SequenceGap {
        /// The missing sequence number.
        expected: u64,
    },
    /// A header appears after the start of a segment.
    #[error("segment header in the middle of a segment")]
    UnexpectedHeader,
    /// A segment header disagrees with where the previous segment ended.
    #[error(
        "segment header says the log ended at index {found}, the previous segment ends at {expected}"
    )]
    PrevIndexMismatch {
        /// Where the previous segment ended.
        expected: u64,
        /// What the header says.
        found: u64,
    },
    /// A segment header's hard state disagrees with the previous segment's.
    #[error("segment header hard state disagrees with the previous segment")]
    HardStateMismatch,
    /// An entry's index does not follow the previous one (a gap, or going backwards).
    #[error("entry index {found} does not follow the previous index (expected {expected})")]
    IndexNotContiguous {
        /// The index that should have come.
        expected: u64,
        /// The index found.
        found: u64,
    },
    /// A segment other than the last holds no frame at all.
    #[error("segment holds no frame but is not the last segment")]
    EmptySegment,
}

/// What is wrong with a snapshot file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotCorruption {
    /// The file is shorter than the fixed header and trailer.
    #[error("file too short ({len} bytes)")]
    TooShort {
        /// The file's length.
        len: u64,
    },
    /// The header or trailer magic is wrong.
    #[error("bad magic")]
    BadMagic,
    /// An unknown format version.
    #[error("unsupported snapshot format version {0}")]
    UnsupportedVersion(u32),
    /// The metadata checksum does not match.
    #[error("metadata checksum mismatch")]
    MetaChecksum,
    /// The data length in the trailer disagrees with the file size.
    #[error("data length {recorded} in the trailer, but the file holds {actual}")]
    LengthMismatch {
        /// What the trailer says.
        recorded: u64,
        /// What the file holds.
        actual: u64,
    },
    /// The data checksum does not match.
    #[error("data checksum mismatch")]
    DataChecksum,
    /// The file name's index disagrees with the metadata.
    #[error("file name says index {name_index}, the metadata says {meta_index}")]
    NameMismatch {
        /// From the file name.
        name_index: u64,
        /// From the metadata.
        meta_index: u64,
    },
}

/// An inconsistent [`crate::LogConfig`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// `record_size_bytes_max` cannot hold even an entry without data.
    #[error(
        "record_size_bytes_max {record_size_bytes_max} is below the entry record overhead of {overhead_bytes} bytes"
    )]
    RecordSmallerThanOverhead {
        /// The configured record limit.
        record_size_bytes_max: u32,
        /// [`crate::ENTRY_RECORD_OVERHEAD_BYTES`].
        overhead_bytes: usize,
    },
    /// `batch_bytes_max` cannot hold one maximal entry with a hard state and a truncation.
    #[error(
        "batch_bytes_max {batch_bytes_max} is below record_size_bytes_max {record_size_bytes_max} plus {overhead_bytes} bytes of batch overhead"
    )]
    BatchSmallerThanRecord {
        /// The configured batch limit.
        batch_bytes_max: usize,
        /// The configured record limit.
        record_size_bytes_max: u32,
        /// Hard state and truncation records.
        overhead_bytes: usize,
    },
    /// A segment cannot hold one maximal frame.
    #[error(
        "segment_size_bytes {segment_size_bytes} cannot hold one frame of {frame_bytes_max} bytes"
    )]
    SegmentSmallerThanFrame {
        /// The configured segment size.
        segment_size_bytes: u64,
        /// The largest frame a batch can produce.
        frame_bytes_max: u64,
    },
    /// `batch_bytes_max` does not fit the format's 32-bit frame length.
    #[error("batch_bytes_max {0} exceeds the format's limit")]
    BatchTooLargeForFormat(usize),
}

/// Why [`crate::Wal::submit`] or [`crate::Wal::compact`] refused work. When submit returns an
/// error its callback is dropped without being called.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The submit queue holds `capacity` requests already; try again later.
    #[error("the WAL submit queue is full ({capacity} requests)")]
    Full {
        /// `LogConfig::submit_queue_max`.
        capacity: usize,
    },
    /// The writer has stopped.
    #[error("the WAL is closed")]
    Closed,
    /// The WAL failed earlier and accepts no more writes.
    #[error("the WAL failed: {0}")]
    Failed(Arc<LogError>),
    /// The batch breaks a rule of the log.
    #[error("invalid write batch: {0}")]
    Invalid(#[from] BatchError),
}

/// A write batch or compaction that breaks a rule of the log. Each is a bug in the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// One entry's record is larger than `record_size_bytes_max`.
    #[error("entry {index} encodes to {size_bytes} bytes, more than the maximum of {max_bytes}")]
    EntryTooLarge {
        /// The entry's index.
        index: u64,
        /// Its encoded size.
        size_bytes: u64,
        /// `LogConfig::record_size_bytes_max`.
        max_bytes: u32,
    },
    /// The whole batch encodes to more than `batch_bytes_max`.
    #[error("batch encodes to {size_bytes} bytes, more than the maximum of {max_bytes}")]
    BatchTooLarge {
        /// Its encoded size.
        size_bytes: u64,
        /// `LogConfig::batch_bytes_max`.
        max_bytes: usize,
    },
    /// An entry's index is not the next one.
    #[error("entry index {found} where {expected} was expected")]
    IndexNotContiguous {
        /// The next index of the log.
        expected: u64,
        /// The entry's index.
        found: u64,
    },
    /// Entry terms go down inside the batch.
    #[error("entry {index} has term {term}, below the previous entry's term {previous_term}")]
    EntryTermDecreased {
        /// The entry's index.
        index: u64,
        /// Its term.
        term: u64,
        /// The term of the entry before it.
        previous_term: u64,
    },
    /// The truncation would discard a committed entry.
    #[error("truncate_after {truncate_after} would discard committed entries (commit is {commit})")]
    TruncatesCommitted {
        /// The requested truncation point.
        truncate_after: u64,
        /// The commit index submitted so far.
        commit: u64,
    },
    /// A truncation beyond the last index (a reset) that no saved snapshot covers.
    #[error(
        "truncate_after {truncate_after} is beyond the last index {last_index} and the newest snapshot ({snapshot_index}) does not cover it"
    )]
    ResetNotCovered {
        /// The requested truncation point.
        truncate_after: u64,
        /// The log's last index.
        last_index: u64,
        /// The newest saved snapshot's index (0 without one).
        snapshot_index: u64,
    },
    /// The hard state's term went down.
    #[error("hard state term went from {from} down to {to}")]
    TermDecreased {
        /// The previous term.
        from: u64,
        /// The offered term.
        to: u64,
    },
    /// The vote changed within a term (a node votes at most once per term, Raft §5.2).
    #[error("vote in term {term} changed from {from:?} to {to:?}")]
    VoteChanged {
        /// The term.
        term: u64,
        /// The vote already recorded.
        from: Option<u64>,
        /// The offered vote.
        to: Option<u64>,
    },
    /// The commit index went down.
    #[error("commit index went from {from} down to {to}")]
    CommitDecreased {
        /// The previous commit index.
        from: u64,
        /// The offered commit index.
        to: u64,
    },
    /// The commit index points past the log.
    #[error("commit index {commit} is beyond the last index {last_index}")]
    CommitBeyondLastIndex {
        /// The offered commit index.
        commit: u64,
        /// The log's last index after this batch.
        last_index: u64,
    },
    /// Compaction past the newest saved snapshot would drop entries nothing else holds.
    #[error(
        "cannot compact up to {index}: the newest saved snapshot covers only up to {snapshot_index}"
    )]
    CompactNotCovered {
        /// The requested compaction index.
        index: u64,
        /// The newest saved snapshot's index (0 without one).
        snapshot_index: u64,
    },
}
