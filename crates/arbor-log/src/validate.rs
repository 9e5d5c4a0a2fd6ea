//! The gateway: checks a write batch against the log as submitted so far, before it is
//! queued. Past this point the writer asserts the same rules.

use crate::error::BatchError;
use crate::format;
use crate::types::{HardState, WriteBatch};

/// The log as every accepted submission will leave it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogPosition {
    /// The last index: the last entry, or the snapshot's index.
    pub last_index: u64,
    /// The last hard state.
    pub hard_state: HardState,
}

/// The limits a batch must respect.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// `LogConfig::record_size_bytes_max`.
    pub record_size_bytes_max: u32,
    /// `LogConfig::batch_bytes_max`.
    pub batch_bytes_max: usize,
}

/// The encoded size of a batch's records.
pub fn batch_bytes(batch: &WriteBatch) -> u64 {
    let hard_state = batch
        .hard_state
        .map_or(0, |_| format::HARD_STATE_RECORD_BYTES as u64);
    let truncate = batch
        .truncate_after
        .map_or(0, |_| format::TRUNCATE_RECORD_BYTES as u64);
    let entries: u64 = batch.entries.iter().map(format::entry_record_bytes).sum();
    hard_state + truncate + entries
}

/// Checks `batch` against the log at `position`, with the newest saved snapshot at
/// `snapshot_index`; returns the position after the batch and its encoded size.
///
/// # Errors
/// The [`BatchError`] for the first rule the batch breaks.
pub fn validate_batch(
    batch: &WriteBatch,
    position: &LogPosition,
    snapshot_index: u64,
    limits: BatchLimits,
) -> Result<(LogPosition, u64), BatchError> {
    let committed = position.hard_state.commit;
    let mut last_index = match batch.truncate_after {
        None => position.last_index,
        Some(truncate_after) => {
            // Raft never truncates a committed entry (Leader Completeness, §5.4).
            if truncate_after < committed {
                return Err(BatchError::TruncatesCommitted {
                    truncate_after,
                    commit: committed,
                });
            }
            if truncate_after > position.last_index && truncate_after > snapshot_index {
                return Err(BatchError::ResetNotCovered {
                    truncate_after,
                    last_index: position.last_index,
                    snapshot_index,
                });
            }
            truncate_after
        }
    };
    let mut previous_term = None;
    for entry in &batch.entries {
        let expected = last_index + 1;
        if entry.index != expected {
            return Err(BatchError::IndexNotContiguous {
                expected,
                found: entry.index,
            });
        }
        if let Some(previous_term) = previous_term
            && entry.term < previous_term
        {
            return Err(BatchError::EntryTermDecreased {
                index: entry.index,
                term: entry.term,
                previous_term,
            });
        }
        let size_bytes = format::entry_record_bytes(entry);
        if size_bytes > u64::from(limits.record_size_bytes_max) {
            return Err(BatchError::EntryTooLarge {
                index: entry.index,
                size_bytes,
                max_bytes: limits.record_size_bytes_max,
            });
        }
        previous_term = Some(entry.term);
        last_index = entry.index;
    }
    let mut hard_state = position.hard_state;
    if let Some(next) = batch.hard_state {
        let previous = position.hard_state;
        if next.term < previous.term {
            return Err(BatchError::TermDecreased {
                from: previous.term,
                to: next.term,
            });
        }
        // One vote per term (Raft §5.2): a recorded vote stands until the term moves on.
        if next.term == previous.term && previous.vote.is_some() && next.vote != previous.vote {
            return Err(BatchError::VoteChanged {
                term: next.term,
                from: previous.vote,
                to: next.vote,
            });
        }
        if next.commit < previous.commit {
            return Err(BatchError::CommitDecreased {
                from: previous.commit,
                to: next.commit,
            });
        }
        if next.commit > last_index {
            return Err(BatchError::CommitBeyondLastIndex {
                commit: next.commit,
                last_index,
            });
        }
        hard_state = next;
    }
    let size_bytes = batch_bytes(batch);
    if size_bytes > limits.batch_bytes_max as u64 {
        return Err(BatchError::BatchTooLarge {
            size_bytes,
            max_bytes: limits.batch_bytes_max,
        });
    }
    Ok((
        LogPosition {
            last_index,
            hard_state,
        },
        size_bytes,
    ))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::types::Entry;

    const LIMITS: BatchLimits = BatchLimits {
        record_size_bytes_max: 100,
        batch_bytes_max: 250,
    };

    fn entries(first: u64, count: u64, term: u64) -> Vec<Entry> {
        (first..first + count)
            .map(|index| Entry {
                index,
                term,
                data: Bytes::from_static(b"abc"),
            })
            .collect()
    }

    fn at(last_index: u64, term: u64, vote: Option<u64>, commit: u64) -> LogPosition {
        LogPosition {
            last_index,
            hard_state: HardState { term, vote, commit },
        }
    }

    fn check(batch: WriteBatch, position: LogPosition) -> Result<(LogPosition, u64), BatchError> {
        validate_batch(&batch, &position, 0, LIMITS)
    }

    #[test]
    fn append_truncate_and_hard_state_move_the_position() {
        let batch = WriteBatch {
            hard_state: Some(HardState {
                term: 2,
                vote: Some(1),
                commit: 4,
            }),
            truncate_after: Some(3),
            entries: entries(4, 2, 2),
        };
        let (position, size) = check(batch.clone(), at(9, 1, Some(3), 3)).unwrap();
        assert_eq!(position, at(5, 2, Some(1), 4));
        assert_eq!(size, batch_bytes(&batch));
        assert_eq!(
            size,
            (format::HARD_STATE_RECORD_BYTES
                + format::TRUNCATE_RECORD_BYTES
                + 2 * (format::ENTRY_RECORD_OVERHEAD_BYTES + 3)) as u64
        );
    }

    #[test]
    fn index_rules() {
        let gap = WriteBatch {
            entries: entries(7, 1, 1),
            ..WriteBatch::default()
        };
        assert_eq!(
            check(gap, at(5, 1, None, 0)),
            Err(BatchError::IndexNotContiguous {
                expected: 6,
                found: 7
            })
        );
        let mut decreasing = entries(1, 2, 2);
        decreasing[1].term = 1;
        assert!(matches!(
            check(
                WriteBatch {
                    entries: decreasing,
                    ..WriteBatch::default()
                },
                LogPosition::default()
            ),
            Err(BatchError::EntryTermDecreased { index: 2, .. })
        ));
    }

    #[test]
    fn committed_entries_are_never_truncated() {
        let batch = WriteBatch {
            truncate_after: Some(2),
            ..WriteBatch::default()
        };
        assert_eq!(
            check(batch, at(5, 1, None, 3)),
            Err(BatchError::TruncatesCommitted {
                truncate_after: 2,
                commit: 3
            })
        );
    }

    #[test]
    fn reset_beyond_the_log_needs_a_snapshot() {
        let batch = WriteBatch {
            truncate_after: Some(20),
            ..WriteBatch::default()
        };
        assert!(matches!(
            validate_batch(&batch, &at(5, 1, None, 0), 19, LIMITS),
            Err(BatchError::ResetNotCovered { .. })
        ));
        let (position, _) = validate_batch(&batch, &at(5, 1, None, 0), 20, LIMITS).unwrap();
        assert_eq!(position.last_index, 20);
    }

    #[test]
    fn hard_state_rules() {
        let with = |term, vote, commit| WriteBatch {
            hard_state: Some(HardState { term, vote, commit }),
            ..WriteBatch::default()
        };
        let position = at(5, 3, Some(2), 2);
        assert!(matches!(
            check(with(2, None, 2), position),
            Err(BatchError::TermDecreased { from: 3, to: 2 })
        ));
        assert!(matches!(
            check(with(3, Some(4), 2), position),
            Err(BatchError::VoteChanged { term: 3, .. })
        ));
        assert!(matches!(
            check(with(3, None, 2), position),
            Err(BatchError::VoteChanged { .. })
        ));
        assert!(matches!(
            check(with(3, Some(2), 1), position),
            Err(BatchError::CommitDecreased { from: 2, to: 1 })
        ));
        assert!(matches!(
            check(with(3, Some(2), 6), position),
            Err(BatchError::CommitBeyondLastIndex {
                commit: 6,
                last_index: 5
            })
        ));
        assert!(check(with(4, None, 5), position).is_ok());
        assert!(check(with(3, Some(2), 5), at(5, 3, None, 0)).is_ok());
    }

    #[test]
    fn size_limits() {
        let big = Entry {
            index: 1,
            term: 1,
            data: Bytes::from(vec![0u8; 80]),
        };
        assert!(matches!(
            check(
                WriteBatch {
                    entries: vec![big],
                    ..WriteBatch::default()
                },
                LogPosition::default()
            ),
            Err(BatchError::EntryTooLarge {
                index: 1,
                size_bytes: 101,
                ..
            })
        ));
        let many = WriteBatch {
            entries: (1..=11)
                .map(|index| Entry {
                    index,
                    term: 1,
                    data: Bytes::new(),
                })
                .collect(),
            ..WriteBatch::default()
        };
        assert_eq!(batch_bytes(&many), 231);
        assert!(check(many, LogPosition::default()).is_ok());
        let too_many = WriteBatch {
            entries: (1..=12)
                .map(|index| Entry {
                    index,
                    term: 1,
                    data: Bytes::new(),
                })
                .collect(),
            ..WriteBatch::default()
        };
        assert!(matches!(
            check(too_many, LogPosition::default()),
            Err(BatchError::BatchTooLarge {
                size_bytes: 252,
                max_bytes: 250
            })
        ));
    }
}
