//! Recovery's shell: reads the data directory, feeds the pure replay, repairs a torn tail, and
//! hands the writer where to continue.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::config::LogConfig;
use crate::error::LogError;
use crate::format::SegmentEnd;
use crate::fsutil;
use crate::replay::{Replay, ReplayOutcome};
use crate::snapshot;
use crate::types::{Recovered, TornTail};
use crate::writer::{ActiveSegment, SegmentSlot, WriterStart};

/// What recovery produced: the state for the caller, and the writer's starting point.
pub(crate) struct Recovery {
    pub recovered: Recovered,
    pub writer: WriterStart,
    /// Set when the segments must durably record that the log ends at this index before
    /// anything is appended (see [`ReplayOutcome::needs_reset`]).
    pub reset_to: Option<u64>,
    /// The last index as the caller sees it (last entry, or the snapshot's index).
    pub last_index: u64,
}

/// Recovers the log in `config.dir`, which the caller has locked.
///
/// # Errors
/// Any [`LogError`] of recovery: corruption, a missing range, I/O.
pub(crate) fn recover(config: &LogConfig) -> Result<Recovery, LogError> {
    let dir = &config.dir;
    let listing = fsutil::list_dir(dir)?;
    // Only the newest snapshot is considered: if it is corrupt we refuse rather than guess
    // whether an older one plus the log still covers everything.
    let snapshot = match listing.snapshots.last() {
        Some((index, path)) => Some(snapshot::load(path, *index)?),
        None => None,
    };
    let snapshot_index = snapshot.as_ref().map_or(0, |(meta, _)| meta.index);

    if listing.segments.is_empty() {
        if snapshot.is_some() {
            return Err(LogError::MissingSegments { dir: dir.clone() });
        }
        remove_temporaries(dir, &listing.temporaries)?;
        let prepared = fsutil::prepare_segment(dir, 0, config.segment_size_bytes)?;
        let (path, file) = fsutil::install_segment(dir, prepared)?;
        tracing::info!(dir = %dir.display(), "created a new WAL");
        return Ok(Recovery {
            recovered: Recovered::default(),
            writer: WriterStart {
                dir: dir.clone(),
                segment_size_bytes: config.segment_size_bytes,
                batch_bytes_max: config.batch_bytes_max,
                segments: vec![SegmentSlot {
                    seq: 0,
                    path: path.clone(),
                    prev_index: 0,
                }],
                active: ActiveSegment {
                    seq: 0,
                    path,
                    file,
                    write_offset: 0,
                    has_header: false,
                    prev_index: 0,
                },
                last_index: 0,
                hard_state: Default::default(),
            },
            reset_to: None,
            last_index: 0,
        });
    }

    let mut replay = Replay::new(snapshot.as_ref().map(|(meta, _)| (meta.index, meta.term)));
    let count = listing.segments.len();
    for (position, (seq, path)) in listing.segments.iter().enumerate() {
        let bytes = fs::read(path).map_err(|error| LogError::io("read segment", path, error))?;
        replay.segment(*seq, path, &bytes, position + 1 == count)?;
    }
    let outcome: ReplayOutcome = replay.finish()?;
    // From here on the directory is known good and may be modified.
    remove_temporaries(dir, &listing.temporaries)?;
    let reset_to = outcome.needs_reset().then_some(outcome.last_index);
    let Some(last) = outcome.segments.last().cloned() else {
        unreachable!("replay of {count} segments lists none");
    };

    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&last.path)
        .map_err(|error| LogError::io("open segment", &last.path, error))?;
    let torn_tail = match last.end {
        SegmentEnd::Clean { .. } => None,
        SegmentEnd::Torn {
            offset,
            damaged_end,
            reason,
        } => {
            // Zero the torn bytes, so that no remnant of them can ever be read as part of a
            // later frame, and make that durable before anything is appended.
            let zeros = vec![0u8; (damaged_end - offset) as usize];
            file.write_all_at(&zeros, offset)
                .map_err(|error| LogError::io("zero torn tail", &last.path, error))?;
            file.sync_data()
                .map_err(|error| LogError::io("fdatasync", &last.path, error))?;
            tracing::warn!(
                path = %last.path.display(),
                offset,
                bytes = damaged_end - offset,
                %reason,
                "discarded a torn write at the end of the WAL"
            );
            Some(TornTail {
                path: last.path.clone(),
                offset,
                bytes_discarded: damaged_end - offset,
            })
        }
    };
    tracing::info!(
        dir = %dir.display(),
        segments = count,
        snapshot_index,
        entries = outcome.entries.len(),
        last_index = outcome.last_index,
        "recovered the WAL"
    );
    let segments = outcome
        .segments
        .iter()
        .map(|segment| SegmentSlot {
            seq: segment.seq,
            path: segment.path.clone(),
            prev_index: segment.prev_index,
        })
        .collect();
    Ok(Recovery {
        recovered: Recovered {
            hard_state: outcome.hard_state,
            snapshot,
            entries: outcome.entries,
            torn_tail,
        },
        writer: WriterStart {
            dir: dir.clone(),
            segment_size_bytes: config.segment_size_bytes,
            batch_bytes_max: config.batch_bytes_max,
            segments,
            active: ActiveSegment {
                seq: last.seq,
                path: last.path.clone(),
                file,
                write_offset: last.end.offset(),
                has_header: last.has_header,
                prev_index: last.prev_index,
            },
            last_index: outcome.raw_last_index,
            hard_state: outcome.hard_state,
        },
        reset_to,
        last_index: outcome.last_index,
    })
}

/// Removes files of interrupted writes (a preallocated segment never used, a snapshot never
/// renamed into place).
fn remove_temporaries(dir: &Path, temporaries: &[PathBuf]) -> Result<(), LogError> {
    if temporaries.is_empty() {
        return Ok(());
    }
    for temporary in temporaries {
        fs::remove_file(temporary)
            .map_err(|error| LogError::io("remove temporary file", temporary, error))?;
    }
    fsutil::sync_dir(dir)
}
