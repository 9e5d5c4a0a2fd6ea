//! Read-only views of a data directory for `arbor inspect`. Safe to run against a directory a
//! live WAL has open: nothing here locks or writes, and a damaged file is described rather
//! than refused.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{CorruptReason, LogError, SnapshotCorruption};
use crate::format::{self, Damage, Record, SegmentEnd};
use crate::fsutil;
use crate::snapshot;
use crate::types::{HardState, SnapshotMeta};

/// How the written part of a segment ends, as seen by inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentCondition {
    /// Frames end cleanly at `offset`; zeros follow.
    Clean {
        /// Where the next frame would go.
        offset: u64,
    },
    /// A torn write starts at `offset` (recovery drops it if this is the last segment).
    Torn {
        /// Where the torn frame starts.
        offset: u64,
        /// What is wrong with it.
        reason: CorruptReason,
    },
    /// Damage that recovery refuses.
    Corrupt {
        /// Where the damage starts.
        offset: u64,
        /// What is wrong there.
        reason: CorruptReason,
    },
}

/// One record of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Byte offset of the frame holding the record.
    pub frame_offset: u64,
    /// Payload length of that frame.
    pub frame_len: u32,
    /// What the record is.
    pub kind: RecordKind,
}

/// What a record holds (entry data is summarized by its length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The segment header.
    SegmentHeader {
        /// Sequence number.
        seq: u64,
        /// The log's last index when the segment was started.
        prev_index: u64,
        /// The hard state when the segment was started.
        hard_state: HardState,
    },
    /// A new hard state.
    HardState(HardState),
    /// Entries after `after` were discarded.
    Truncate {
        /// The index kept up to.
        after: u64,
    },
    /// A log entry.
    Entry {
        /// Its index.
        index: u64,
        /// Its term.
        term: u64,
        /// Length of its data.
        data_len: u32,
    },
}

/// Every record of one segment file, and how it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRecords {
    /// The records, in order.
    pub records: Vec<RecordInfo>,
    /// How the written part ends.
    pub condition: SegmentCondition,
}

/// A summary of one segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The file.
    pub path: PathBuf,
    /// Its sequence number.
    pub seq: u64,
    /// The file's size.
    pub size_bytes: u64,
    /// From the header, when there is one.
    pub prev_index: Option<u64>,
    /// The first entry index written in the segment.
    pub first_index: Option<u64>,
    /// The last entry index written in the segment (later truncations not applied).
    pub last_index: Option<u64>,
    /// Entry records in the segment.
    pub entry_count: u64,
    /// Frames (group commits) in the segment.
    pub frame_count: u64,
    /// How its written part ends.
    pub condition: SegmentCondition,
}

/// A summary of one snapshot file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The file.
    pub path: PathBuf,
    /// The index in the file name.
    pub name_index: u64,
    /// The file's size.
    pub size_bytes: u64,
    /// The verified metadata and data length, or what is wrong with the file.
    pub verified: Result<(SnapshotMeta, u64), SnapshotCorruption>,
}

/// Reads every record of the segment file at `path`.
///
/// # Errors
/// [`LogError::Io`] when the file cannot be read; damage is reported in
/// [`SegmentRecords::condition`].
pub fn segment_records(path: &Path) -> Result<SegmentRecords, LogError> {
    let bytes = fs::read(path).map_err(|error| LogError::io("read segment", path, error))?;
    Ok(records_of(&bytes))
}

fn records_of(bytes: &[u8]) -> SegmentRecords {
    let (frames, condition) = match format::scan_frames(bytes, true) {
        Ok((frames, SegmentEnd::Clean { offset })) => (frames, SegmentCondition::Clean { offset }),
        Ok((frames, SegmentEnd::Torn { offset, reason, .. })) => {
            (frames, SegmentCondition::Torn { offset, reason })
        }
        Err(Damage { offset, reason, .. }) => {
            // Show the frames before the damage.
            let prefix = &bytes[..offset as usize];
            let frames = format::scan_frames(prefix, true)
                .map(|(frames, _)| frames)
                .unwrap_or_default();
            (frames, SegmentCondition::Corrupt { offset, reason })
        }
    };
    let mut records = Vec::new();
    for frame in &frames {
        let frame_len = (frame.payload.end - frame.payload.start) as u32;
        let decoded = match format::decode_records(&bytes[frame.payload.clone()]) {
            Ok(decoded) => decoded,
            Err(reason) => {
                return SegmentRecords {
                    records,
                    condition: SegmentCondition::Corrupt {
                        offset: frame.offset,
                        reason,
                    },
                };
            }
        };
        records.extend(decoded.into_iter().map(|record| RecordInfo {
            frame_offset: frame.offset,
            frame_len,
            kind: match record {
                Record::SegmentHeader(header) => RecordKind::SegmentHeader {
                    seq: header.seq,
                    prev_index: header.prev_index,
                    hard_state: header.hard_state,
                },
                Record::HardState(hard_state) => RecordKind::HardState(hard_state),
                Record::Truncate { after } => RecordKind::Truncate { after },
                Record::Entry(entry) => RecordKind::Entry {
                    index: entry.index,
                    term: entry.term,
                    data_len: entry.data.len() as u32,
                },
            },
        }));
    }
    SegmentRecords { records, condition }
}

/// Summarizes every segment in `dir`, in sequence order.
///
/// # Errors
/// [`LogError::Io`].
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentSummary>, LogError> {
    let listing = fsutil::list_dir(dir)?;
    let mut summaries = Vec::with_capacity(listing.segments.len());
    for (seq, path) in listing.segments {
        let bytes = fs::read(&path).map_err(|error| LogError::io("read segment", &path, error))?;
        let SegmentRecords { records, condition } = records_of(&bytes);
        let mut summary = SegmentSummary {
            path,
            seq,
            size_bytes: bytes.len() as u64,
            prev_index: None,
            first_index: None,
            last_index: None,
            entry_count: 0,
            frame_count: 0,
            condition,
        };
        let mut last_frame = None;
        for record in &records {
            if last_frame != Some(record.frame_offset) {
                last_frame = Some(record.frame_offset);
                summary.frame_count += 1;
            }
            match record.kind {
                RecordKind::SegmentHeader { prev_index, .. } => {
                    summary.prev_index = Some(prev_index)
                }
                RecordKind::Entry { index, .. } => {
                    summary.first_index.get_or_insert(index);
                    summary.last_index = Some(index);
                    summary.entry_count += 1;
                }
                RecordKind::HardState(_) | RecordKind::Truncate { .. } => {}
            }
        }
        summaries.push(summary);
    }
    Ok(summaries)
}

/// Summarizes and verifies every snapshot in `dir`, oldest first.
///
/// # Errors
/// [`LogError::Io`].
pub fn list_snapshots(dir: &Path) -> Result<Vec<SnapshotSummary>, LogError> {
    let listing = fsutil::list_dir(dir)?;
    let mut summaries = Vec::with_capacity(listing.snapshots.len());
    for (name_index, path) in listing.snapshots {
        let bytes = fs::read(&path).map_err(|error| LogError::io("read snapshot", &path, error))?;
        let size_bytes = bytes.len() as u64;
        let verified = snapshot::decode(bytes).and_then(|(meta, data)| {
            if meta.index == name_index {
                Ok((meta, data.len() as u64))
            } else {
                Err(SnapshotCorruption::NameMismatch {
                    name_index,
                    meta_index: meta.index,
                })
            }
        });
        summaries.push(SnapshotSummary {
            path,
            name_index,
            size_bytes,
            verified,
        });
    }
    Ok(summaries)
}

/// What recovery would make of segment images, computed in memory without touching disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplaySummary {
    /// The recovered hard state.
    pub hard_state: HardState,
    /// The recovered entries' `(index, term)`, contiguous after the snapshot.
    pub entries: Vec<(u64, u64)>,
    /// The offset of a torn tail recovery would drop from the last segment.
    pub torn_tail_offset: Option<u64>,
}

/// Replays `segments` (`(seq, bytes)` in sequence order, as if read from files named by their
/// seq) against a snapshot at `(index, term)`, exactly as [`crate::Wal::open`] would, and says
/// what it would recover. Used by `arbor inspect` and by the recovery fuzz targets.
///
/// # Errors
/// The [`LogError`] recovery would return; an empty `segments` is
/// [`LogError::MissingSegments`] when a snapshot is given.
pub fn replay_images(
    segments: &[(u64, &[u8])],
    snapshot: Option<(u64, u64)>,
) -> Result<ReplaySummary, LogError> {
    if segments.is_empty() {
        return match snapshot {
            Some(_) => Err(LogError::MissingSegments {
                dir: PathBuf::new(),
            }),
            None => Ok(ReplaySummary {
                hard_state: HardState::default(),
                entries: Vec::new(),
                torn_tail_offset: None,
            }),
        };
    }
    let mut replay = crate::replay::Replay::new(snapshot);
    for (position, (seq, bytes)) in segments.iter().enumerate() {
        let path = fsutil::segment_path(Path::new(""), *seq);
        replay.segment(*seq, &path, bytes, position + 1 == segments.len())?;
    }
    let outcome = replay.finish()?;
    let torn_tail_offset = outcome.segments.last().and_then(|last| match last.end {
        SegmentEnd::Torn { offset, .. } => Some(offset),
        SegmentEnd::Clean { .. } => None,
    });
    Ok(ReplaySummary {
        hard_state: outcome.hard_state,
        entries: outcome
            .entries
            .iter()
            .map(|entry| (entry.index, entry.term))
            .collect(),
        torn_tail_offset,
    })
}
