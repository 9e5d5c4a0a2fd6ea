//! Recovery's core: replays segment bytes into a log, pure over byte slices.
//!
//! The shell (`recovery.rs`) reads files and feeds them here in sequence order; this module
//! decides what is a torn tail, what is corruption, and what the log holds.

use std::path::{Path, PathBuf};

use crate::error::{CorruptReason, LogError};
use crate::format::{self, Damage, Record, SegmentEnd, SegmentHeader};
use crate::types::{Entry, HardState};

/// What recovery learned about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayedSegment {
    /// Sequence number from the file name.
    pub seq: u64,
    /// The file.
    pub path: PathBuf,
    /// The log's last index when the segment was started (from its header, or the log's last
    /// index for a last segment whose header was never written).
    pub prev_index: u64,
    /// Whether the segment's header frame is on disk.
    pub has_header: bool,
    /// How its written part ends.
    pub end: SegmentEnd,
}

/// The log as replayed from every segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// The last hard state.
    pub hard_state: HardState,
    /// Entries contiguous from `snapshot_index + 1`.
    pub entries: Vec<Entry>,
    /// The last index as the segments record it (before reconciling with the snapshot).
    pub raw_last_index: u64,
    /// The last index the node has: the last entry, or the snapshot's index.
    pub last_index: u64,
    /// Every segment, in sequence order.
    pub segments: Vec<ReplayedSegment>,
}

impl ReplayOutcome {
    /// Whether the segments must be told that the log ends at `last_index` (a `Truncate`
    /// record) before anything is appended: the log was behind the snapshot, or diverged from
    /// it at the snapshot's index.
    pub fn needs_reset(&self) -> bool {
        self.raw_last_index != self.last_index
    }
}

/// Replays segments one at a time.
#[derive(Debug)]
pub struct Replay {
    snapshot_index: u64,
    snapshot_term: u64,
    /// The index the recovered log starts after: entries up to it are not in the segments.
    /// Invariant at finish: `base <= snapshot_index`, or entries are missing.
    base: u64,
    last_index: u64,
    hard_state: HardState,
    /// Entries with index >= `snapshot_index` (the one at the snapshot index is kept to compare
    /// its term), contiguous and ending at `last_index` when non-empty.
    entries: Vec<Entry>,
    segments: Vec<ReplayedSegment>,
}

impl Replay {
    /// Starts a replay against the newest snapshot's `(index, term)`, if any.
    pub fn new(snapshot: Option<(u64, u64)>) -> Replay {
        let (snapshot_index, snapshot_term) = snapshot.unwrap_or((0, 0));
        Replay {
            snapshot_index,
            snapshot_term,
            base: 0,
            last_index: 0,
            hard_state: HardState::default(),
            entries: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// Replays the segment with sequence number `seq` whose file holds `bytes`.
    ///
    /// # Errors
    /// [`LogError::CorruptSegment`] naming `path` and the byte offset of the problem.
    pub fn segment(
        &mut self,
        seq: u64,
        path: &Path,
        bytes: &[u8],
        is_last: bool,
    ) -> Result<(), LogError> {
        let corrupt = |offset: u64, reason: CorruptReason| LogError::CorruptSegment {
            path: path.to_path_buf(),
            offset,
            reason,
            valid_frame_after: None,
        };
        let is_first = self.segments.is_empty();
        if let Some(previous) = self.segments.last() {
            let expected = previous.seq + 1;
            if seq != expected {
                return Err(corrupt(0, CorruptReason::SequenceGap { expected }));
            }
        }
        let (frames, end) = format::scan_frames(bytes, is_last).map_err(
            |Damage {
                 offset,
                 reason,
                 valid_frame_after,
             }| LogError::CorruptSegment {
                path: path.to_path_buf(),
                offset,
                reason,
                valid_frame_after,
            },
        )?;
        if frames.is_empty() {
            if !is_last {
                return Err(corrupt(0, CorruptReason::EmptySegment));
            }
            // The segment was started (renamed into place) but its first frame never became
            // durable. Only the very first segment of a fresh log may lack the header that
            // carries the hard state.
            if is_first && seq != 0 {
                return Err(corrupt(0, CorruptReason::MissingHeader));
            }
            self.segments.push(ReplayedSegment {
                seq,
                path: path.to_path_buf(),
                prev_index: self.last_index,
                has_header: false,
                end,
            });
            return Ok(());
        }
        let mut prev_index = None;
        for frame in &frames {
            let records = format::decode_records(&bytes[frame.payload.clone()])
                .map_err(|reason| corrupt(frame.offset, reason))?;
            for record in records {
                match record {
                    Record::SegmentHeader(header) => {
                        if prev_index.is_some() {
                            return Err(corrupt(frame.offset, CorruptReason::UnexpectedHeader));
                        }
                        self.header(&header, seq, is_first)
                            .map_err(|reason| corrupt(frame.offset, reason))?;
                        prev_index = Some(header.prev_index);
                    }
                    _ if prev_index.is_none() => {
                        return Err(corrupt(frame.offset, CorruptReason::MissingHeader));
                    }
                    Record::HardState(hard_state) => self.hard_state = hard_state,
                    Record::Truncate { after } => self.truncate(after),
                    Record::Entry(entry) => self
                        .append(entry)
                        .map_err(|reason| corrupt(frame.offset, reason))?,
                }
            }
        }
        self.segments.push(ReplayedSegment {
            seq,
            path: path.to_path_buf(),
            prev_index: prev_index.unwrap_or(self.last_index),
            has_header: true,
            end,
        });
        Ok(())
    }

    fn header(
        &mut self,
        header: &SegmentHeader,
        seq: u64,
        is_first: bool,
    ) -> Result<(), CorruptReason> {
        if header.seq != seq {
            return Err(CorruptReason::WrongSequence {
                expected: seq,
                found: header.seq,
            });
        }
        if is_first {
            self.base = header.prev_index;
            self.last_index = header.prev_index;
            self.hard_state = header.hard_state;
            return Ok(());
        }
        if header.prev_index != self.last_index {
            return Err(CorruptReason::PrevIndexMismatch {
                expected: self.last_index,
                found: header.prev_index,
            });
        }
        if header.hard_state != self.hard_state {
            return Err(CorruptReason::HardStateMismatch);
        }
        Ok(())
    }

    fn truncate(&mut self, after: u64) {
        if after > self.last_index {
            // A reset: the log now starts after `after`, which a snapshot must cover.
            self.entries.clear();
            self.base = after;
        } else if after <= self.snapshot_index {
            // Everything up to `after` is covered by the snapshot, including the entry at the
            // snapshot's index: a follower that installed a leader's snapshot truncates there
            // and may hold a stale entry at that index, which must not be compared with the
            // snapshot's term in `finish`.
            self.entries.clear();
        } else {
            let keep = self.entries.partition_point(|entry| entry.index <= after);
            self.entries.truncate(keep);
        }
        self.last_index = after;
    }

    fn append(&mut self, entry: Entry) -> Result<(), CorruptReason> {
        let expected = self.last_index + 1;
        if entry.index != expected {
            return Err(CorruptReason::IndexNotContiguous {
                expected,
                found: entry.index,
            });
        }
        self.last_index = entry.index;
        if entry.index >= self.snapshot_index {
            self.entries.push(entry);
        }
        Ok(())
    }

    /// Reconciles the log with the snapshot.
    ///
    /// Entries after the snapshot are kept only if the log's entry at the snapshot's index has
    /// the snapshot's term (or the log starts right at the snapshot). If the terms differ, the
    /// log diverged from the committed history at that index, so (by Log Matching, Raft §5.3)
    /// nothing after it can be committed, and it is dropped.
    ///
    /// # Errors
    /// [`LogError::LogGap`] when the log starts after the snapshot; [`LogError::CommitBeyondLog`]
    /// when the hard state's commit is beyond what was recovered.
    ///
    /// # Panics
    /// If called before any segment was replayed.
    pub fn finish(mut self) -> Result<ReplayOutcome, LogError> {
        let first = self
            .segments
            .first()
            .unwrap_or_else(|| panic!("replay finished without any segment"));
        if self.base > self.snapshot_index {
            return Err(LogError::LogGap {
                log_base: self.base,
                snapshot_index: self.snapshot_index,
                path: first.path.clone(),
            });
        }
        if self.snapshot_index > 0
            && let Some(at_snapshot) = self.entries.first()
            && at_snapshot.index == self.snapshot_index
        {
            if at_snapshot.term == self.snapshot_term {
                self.entries.remove(0);
            } else {
                tracing::warn!(
                    snapshot_index = self.snapshot_index,
                    snapshot_term = self.snapshot_term,
                    log_term = at_snapshot.term,
                    dropped = self.entries.len(),
                    "WAL diverges from the snapshot at its index; dropping the uncommitted suffix"
                );
                self.entries.clear();
            }
        }
        let last_index = self
            .entries
            .last()
            .map_or(self.snapshot_index, |entry| entry.index);
        assert!(
            self.entries
                .first()
                .is_none_or(|entry| entry.index == self.snapshot_index + 1),
            "replay: recovered entries do not start right after the snapshot at {}",
            self.snapshot_index
        );
        if self.hard_state.commit > last_index {
            return Err(LogError::CommitBeyondLog {
                commit: self.hard_state.commit,
                last_index,
            });
        }
        Ok(ReplayOutcome {
            hard_state: self.hard_state,
            entries: self.entries,
            raw_last_index: self.last_index,
            last_index,
            segments: self.segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::format::FrameBuilder;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::from(format!("e{index}t{term}")),
        }
    }

    /// Builds a segment from frames of records.
    fn segment(frames: &[Vec<Record>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut builder = FrameBuilder::default();
        for records in frames {
            builder.start();
            for record in records {
                match record {
                    Record::SegmentHeader(header) => builder.segment_header(header),
                    Record::HardState(hard_state) => builder.hard_state(hard_state),
                    Record::Truncate { after } => builder.truncate(*after),
                    Record::Entry(entry) => builder.entry(entry),
                }
            }
            out.extend_from_slice(builder.finish());
        }
        out.resize(out.len() + 64, 0);
        out
    }

    fn header(seq: u64, prev_index: u64, hard_state: HardState) -> Record {
        Record::SegmentHeader(SegmentHeader {
            seq,
            prev_index,
            hard_state,
        })
    }

    fn replay_all(
        snapshot: Option<(u64, u64)>,
        segments: &[(u64, Vec<u8>)],
    ) -> Result<ReplayOutcome, LogError> {
        let mut replay = Replay::new(snapshot);
        for (position, (seq, bytes)) in segments.iter().enumerate() {
            let path = PathBuf::from(format!("seg-{seq}"));
            replay.segment(*seq, &path, bytes, position + 1 == segments.len())?;
        }
        replay.finish()
    }

    fn indexes(outcome: &ReplayOutcome) -> Vec<(u64, u64)> {
        outcome
            .entries
            .iter()
            .map(|entry| (entry.index, entry.term))
            .collect()
    }

    #[test]
    fn truncation_and_reappend_replay_across_segments() {
        let hs = HardState {
            term: 2,
            vote: Some(1),
            commit: 2,
        };
        let first = segment(&[
            vec![
                header(0, 0, HardState::default()),
                Record::Entry(entry(1, 1)),
                Record::Entry(entry(2, 1)),
                Record::Entry(entry(3, 1)),
            ],
            vec![Record::HardState(hs)],
        ]);
        let second = segment(&[vec![
            header(1, 3, hs),
            Record::Truncate { after: 2 },
            Record::Entry(entry(3, 2)),
            Record::Entry(entry(4, 2)),
        ]]);
        let outcome = replay_all(None, &[(0, first), (1, second)]).unwrap();
        assert_eq!(indexes(&outcome), vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
        assert_eq!(outcome.hard_state, hs);
        assert_eq!(outcome.last_index, 4);
        assert!(!outcome.needs_reset());
        assert_eq!(outcome.segments[1].prev_index, 3);
    }

    #[test]
    fn index_gap_names_the_frame() {
        let bytes = segment(&[
            vec![
                header(0, 0, HardState::default()),
                Record::Entry(entry(1, 1)),
            ],
            vec![Record::Entry(entry(3, 1))],
        ]);
        let error = replay_all(None, &[(0, bytes)]).unwrap_err();
        match error {
            LogError::CorruptSegment { offset, reason, .. } => {
                assert!(offset > 0);
                assert_eq!(
                    reason,
                    CorruptReason::IndexNotContiguous {
                        expected: 2,
                        found: 3
                    }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn going_backwards_without_truncation_is_corruption() {
        let bytes = segment(&[vec![
            header(0, 0, HardState::default()),
            Record::Entry(entry(1, 1)),
            Record::Entry(entry(2, 1)),
            Record::Entry(entry(2, 2)),
        ]]);
        assert!(matches!(
            replay_all(None, &[(0, bytes)]),
            Err(LogError::CorruptSegment {
                reason: CorruptReason::IndexNotContiguous { .. },
                ..
            })
        ));
    }

    #[test]
    fn segments_must_be_consecutive_and_agree_at_the_boundary() {
        let first = segment(&[vec![
            header(0, 0, HardState::default()),
            Record::Entry(entry(1, 1)),
        ]]);
        let skipped = segment(&[vec![header(2, 1, HardState::default())]]);
        assert!(matches!(
            replay_all(None, &[(0, first.clone()), (2, skipped)]),
            Err(LogError::CorruptSegment {
                reason: CorruptReason::SequenceGap { expected: 1 },
                ..
            })
        ));
        let wrong_prev = segment(&[vec![header(1, 5, HardState::default())]]);
        assert!(matches!(
            replay_all(None, &[(0, first), (1, wrong_prev)]),
            Err(LogError::CorruptSegment {
                reason: CorruptReason::PrevIndexMismatch {
                    expected: 1,
                    found: 5
                },
                ..
            })
        ));
    }

    #[test]
    fn compacted_log_needs_a_snapshot_covering_its_start() {
        let hs = HardState {
            term: 1,
            vote: None,
            commit: 5,
        };
        let later = segment(&[vec![header(4, 5, hs), Record::Entry(entry(6, 1))]]);
        assert!(matches!(
            replay_all(Some((4, 1)), &[(4, later.clone())]),
            Err(LogError::LogGap {
                log_base: 5,
                snapshot_index: 4,
                ..
            })
        ));
        let outcome = replay_all(Some((5, 1)), &[(4, later)]).unwrap();
        assert_eq!(indexes(&outcome), vec![(6, 1)]);
    }

    #[test]
    fn log_diverging_from_the_snapshot_drops_its_suffix_and_asks_for_a_reset() {
        let bytes = segment(&[vec![
            header(0, 0, HardState::default()),
            Record::Entry(entry(1, 1)),
            Record::Entry(entry(2, 1)),
            Record::Entry(entry(3, 1)),
        ]]);
        let same = replay_all(Some((2, 1)), &[(0, bytes.clone())]).unwrap();
        assert_eq!(indexes(&same), vec![(3, 1)]);
        let diverged = replay_all(Some((2, 7)), &[(0, bytes.clone())]).unwrap();
        assert!(diverged.entries.is_empty());
        assert_eq!(diverged.last_index, 2);
        assert!(diverged.needs_reset());
        let behind = replay_all(Some((9, 3)), &[(0, bytes)]).unwrap();
        assert!(behind.entries.is_empty());
        assert_eq!(behind.last_index, 9);
        assert!(behind.needs_reset());
    }

    #[test]
    fn truncation_at_the_snapshot_forgets_a_stale_entry_there() {
        // A follower held entry 2 of term 1; the leader's snapshot at 2 has term 5. The
        // follower saved the snapshot, truncated after 2 and appended the leader's entries.
        let bytes = segment(&[vec![
            header(0, 0, HardState::default()),
            Record::Entry(entry(1, 1)),
            Record::Entry(entry(2, 1)),
            Record::Entry(entry(3, 1)),
            Record::Truncate { after: 2 },
            Record::Entry(entry(3, 5)),
        ]]);
        let outcome = replay_all(Some((2, 5)), &[(0, bytes.clone())]).unwrap();
        assert_eq!(indexes(&outcome), vec![(3, 5)]);
        assert!(!outcome.needs_reset());
        // Without the snapshot the same log is an ordinary conflict truncation.
        let outcome = replay_all(None, &[(0, bytes)]).unwrap();
        assert_eq!(indexes(&outcome), vec![(1, 1), (2, 1), (3, 5)]);
    }

    #[test]
    fn reset_beyond_the_log_restarts_it() {
        let bytes = segment(&[vec![
            header(0, 0, HardState::default()),
            Record::Entry(entry(1, 1)),
            Record::Truncate { after: 10 },
            Record::Entry(entry(11, 2)),
        ]]);
        let outcome = replay_all(Some((10, 2)), &[(0, bytes.clone())]).unwrap();
        assert_eq!(indexes(&outcome), vec![(11, 2)]);
        assert!(matches!(
            replay_all(Some((9, 2)), &[(0, bytes)]),
            Err(LogError::LogGap { log_base: 10, .. })
        ));
    }

    #[test]
    fn empty_last_segment_is_allowed_but_not_alone_after_compaction() {
        let first = segment(&[vec![
            header(0, 0, HardState::default()),
            Record::Entry(entry(1, 1)),
        ]]);
        let zeros = vec![0u8; 128];
        let outcome = replay_all(None, &[(0, first), (1, zeros.clone())]).unwrap();
        assert_eq!(outcome.segments[1].prev_index, 1);
        assert!(!outcome.segments[1].has_header);
        assert!(replay_all(None, &[(0, zeros.clone())]).is_ok());
        assert!(matches!(
            replay_all(None, &[(3, zeros.clone())]),
            Err(LogError::CorruptSegment {
                reason: CorruptReason::MissingHeader,
                ..
            })
        ));
        assert!(matches!(
            replay_all(None, &[(0, zeros.clone()), (1, zeros)]),
            Err(LogError::CorruptSegment {
                reason: CorruptReason::EmptySegment,
                ..
            })
        ));
    }

    #[test]
    fn commit_beyond_the_recovered_log_is_refused() {
        let bytes = segment(&[vec![
            header(0, 0, HardState::default()),
            Record::Entry(entry(1, 1)),
            Record::HardState(HardState {
                term: 1,
                vote: None,
                commit: 2,
            }),
        ]]);
        assert!(matches!(
            replay_all(None, &[(0, bytes)]),
            Err(LogError::CommitBeyondLog {
                commit: 2,
                last_index: 1
            })
        ));
    }

    #[test]
    fn records_before_the_header_are_refused() {
        let bytes = segment(&[vec![Record::Entry(entry(1, 1))]]);
        assert!(matches!(
            replay_all(None, &[(0, bytes)]),
            Err(LogError::CorruptSegment {
                reason: CorruptReason::MissingHeader,
                offset: 0,
                ..
            })
        ));
    }
}
