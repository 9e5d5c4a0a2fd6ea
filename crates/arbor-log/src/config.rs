//! The WAL's configuration: where it lives and every limit it enforces.

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::format;

/// Default size of a segment file (preallocated in full).
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// Default number of submissions (batches, compactions) the queue holds.
pub const SUBMIT_QUEUE_MAX_DEFAULT: usize = 1024;
/// Default largest encoded batch, and the most bytes one group commit merges.
pub const BATCH_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;
/// Default largest encoded entry record (data plus [`crate::ENTRY_RECORD_OVERHEAD_BYTES`]).
pub const RECORD_SIZE_BYTES_MAX_DEFAULT: u32 = 4 * 1024 * 1024;
/// Default number of snapshot files kept (the newest and older ones).
pub const SNAPSHOTS_RETAINED_DEFAULT: usize = 2;

/// Overhead a batch may add to its entries: one hard state and one truncation record.
pub(crate) const BATCH_OVERHEAD_BYTES: usize =
    format::HARD_STATE_RECORD_BYTES + format::TRUNCATE_RECORD_BYTES;

/// Where the WAL lives and the limits it enforces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// The data directory: segments, snapshots and the lock file. Created if absent.
    pub dir: PathBuf,
    /// Size each segment file is preallocated to; a new segment starts when the next frame
    /// does not fit.
    pub segment_size_bytes: u64,
    /// How many submissions may wait for the writer; beyond it `submit` returns
    /// [`crate::SubmitError::Full`].
    pub submit_queue_max: usize,
    /// The largest encoded [`crate::WriteBatch`] accepted, and the most bytes the writer merges
    /// into one write + fdatasync.
    pub batch_bytes_max: usize,
    /// The largest encoded entry record accepted: data plus
    /// [`crate::ENTRY_RECORD_OVERHEAD_BYTES`].
    pub record_size_bytes_max: u32,
    /// How many snapshot files to keep (the newest plus older ones, for manual recovery).
    pub snapshots_retained: usize,
}

impl LogConfig {
    /// The default configuration for a WAL in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> LogConfig {
        LogConfig {
            dir: dir.into(),
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            submit_queue_max: SUBMIT_QUEUE_MAX_DEFAULT,
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            record_size_bytes_max: RECORD_SIZE_BYTES_MAX_DEFAULT,
            snapshots_retained: SNAPSHOTS_RETAINED_DEFAULT,
        }
    }

    /// The largest frame the writer can produce: a segment header plus a full batch.
    pub(crate) fn frame_bytes_max(&self) -> u64 {
        format::frame_bytes(format::SEGMENT_HEADER_RECORD_BYTES + self.batch_bytes_max)
    }

    /// Checks that the limits fit together.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the limit that does not fit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.submit_queue_max == 0 {
            return Err(ConfigError::Zero("submit_queue_max"));
        }
        if self.snapshots_retained == 0 {
            return Err(ConfigError::Zero("snapshots_retained"));
        }
        if self.record_size_bytes_max < format::ENTRY_RECORD_OVERHEAD_BYTES as u32 {
            return Err(ConfigError::RecordSmallerThanOverhead {
                record_size_bytes_max: self.record_size_bytes_max,
                overhead_bytes: format::ENTRY_RECORD_OVERHEAD_BYTES,
            });
        }
        // Keep a frame's length (payload plus header record) well inside the u32 length field.
        if self.batch_bytes_max > (u32::MAX / 2) as usize {
            return Err(ConfigError::BatchTooLargeForFormat(self.batch_bytes_max));
        }
        if self.batch_bytes_max < self.record_size_bytes_max as usize + BATCH_OVERHEAD_BYTES {
            return Err(ConfigError::BatchSmallerThanRecord {
                batch_bytes_max: self.batch_bytes_max,
                record_size_bytes_max: self.record_size_bytes_max,
                overhead_bytes: BATCH_OVERHEAD_BYTES,
            });
        }
        if self.segment_size_bytes < self.frame_bytes_max() {
            return Err(ConfigError::SegmentSmallerThanFrame {
                segment_size_bytes: self.segment_size_bytes,
                frame_bytes_max: self.frame_bytes_max(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(LogConfig::new("/x").validate(), Ok(()));
    }

    #[test]
    fn inconsistent_limits_are_named() {
        let mut config = LogConfig::new("/x");
        config.submit_queue_max = 0;
        assert_eq!(
            config.validate(),
            Err(ConfigError::Zero("submit_queue_max"))
        );
        let mut config = LogConfig::new("/x");
        config.batch_bytes_max = config.record_size_bytes_max as usize;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::BatchSmallerThanRecord { .. })
        ));
        let mut config = LogConfig::new("/x");
        config.segment_size_bytes = config.batch_bytes_max as u64;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::SegmentSmallerThanFrame { .. })
        ));
    }
}
