//! The writer thread: group commit into the active segment, segment rolls, compaction.
//!
//! One loop owns the segment files. It takes the first queued command, merges every submission
//! already waiting behind it (up to `batch_bytes_max`) into one frame, writes it with one
//! `pwrite` and one `fdatasync`, and only then runs the callbacks. Submissions that arrive while
//! an fdatasync is in progress wait in the queue and form the next group.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::LogError;
use crate::format::{self, FrameBuilder, SegmentHeader};
use crate::fsutil::{self, PreparedSegment};
use crate::stats::StatsCell;
use crate::types::{HardState, WriteBatch};
use crate::validate::LogPosition;

/// Called once a batch is durable (or the WAL failed).
pub(crate) type OnDurable = Box<dyn FnOnce(Result<(), LogError>) + Send>;

/// How many commands the housekeeper queue holds before the writer waits for it.
const HOUSEKEEPER_QUEUE_MAX: usize = 64;

/// A validated batch waiting for the writer.
pub(crate) struct Submission {
    pub batch: WriteBatch,
    pub on_durable: OnDurable,
    /// Encoded size of the batch's records.
    pub encoded_bytes: u64,
}

/// What the writer thread is asked to do, in queue order.
pub(crate) enum Command {
    Submit(Submission),
    Compact { index: u64 },
    Close,
}

/// State shared between `Wal` (the submitting side) and the writer.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub submitted: Mutex<SubmitState>,
    pub stats: StatsCell,
}

/// The submitting side's view: where accepted submissions leave the log, and whether the WAL
/// has failed.
#[derive(Debug, Default)]
pub(crate) struct SubmitState {
    pub position: LogPosition,
    pub failed: Option<Arc<LogError>>,
}

/// A segment the writer knows about.
#[derive(Debug, Clone)]
pub(crate) struct SegmentSlot {
    pub seq: u64,
    pub path: PathBuf,
    /// The log's last index when the segment was started.
    pub prev_index: u64,
}

/// The segment frames are appended to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub seq: u64,
    pub path: PathBuf,
    pub file: File,
    /// Where the next frame goes. Invariant: a multiple of the frame alignment, and every byte
    /// from here to the end of the file is zero.
    pub write_offset: u64,
    /// Whether the segment header frame is durable.
    pub has_header: bool,
    pub prev_index: u64,
}

enum HousekeeperCommand {
    Prepare { seq: u64 },
    Delete { paths: Vec<PathBuf> },
    Stop,
}

/// Preallocates the next segment and deletes compacted ones, off the writer's path.
struct Housekeeper {
    commands: SyncSender<HousekeeperCommand>,
    prepared: Receiver<Result<PreparedSegment, LogError>>,
    thread: Option<JoinHandle<()>>,
}

impl Housekeeper {
    fn start(dir: PathBuf, segment_size_bytes: u64) -> Result<Housekeeper, LogError> {
        let (commands, inbox) = mpsc::sync_channel(HOUSEKEEPER_QUEUE_MAX);
        // Capacity 1: at most one preparation is outstanding at a time.
        let (prepared_sender, prepared) = mpsc::sync_channel(1);
        let thread_dir = dir.clone();
        let thread = std::thread::Builder::new()
            .name("arbor-wal-prep".into())
            .spawn(move || housekeep(&thread_dir, segment_size_bytes, &inbox, &prepared_sender))
            .map_err(|error| LogError::io("spawn housekeeper thread", &dir, error))?;
        Ok(Housekeeper {
            commands,
            prepared,
            thread: Some(thread),
        })
    }

    fn send(&self, command: HousekeeperCommand) {
        // The housekeeper only stops when told to, so a send fails only if it panicked; then
        // the next `take` reports the failure.
        let _ = self.commands.send(command);
    }

    /// The prepared segment `seq`, waiting for it if it is not ready. Returns whether the
    /// writer had to wait.
    fn take(&self, seq: u64) -> Result<(PreparedSegment, bool), LogError> {
        let (result, stalled) = match self.prepared.try_recv() {
            Ok(result) => (result, false),
            Err(TryRecvError::Empty) => (self.prepared.recv().map_err(|_| LogError::Closed)?, true),
            Err(TryRecvError::Disconnected) => return Err(LogError::Closed),
        };
        let prepared = result?;
        assert_eq!(
            prepared.seq, seq,
            "WAL writer: housekeeper prepared segment {} but the writer rolls to {seq}",
            prepared.seq
        );
        Ok((prepared, stalled))
    }

    fn stop(&mut self) {
        self.send(HousekeeperCommand::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("WAL housekeeper thread panicked");
        }
        // A segment prepared but never used: remove it now rather than at the next open.
        while let Ok(Ok(prepared)) = self.prepared.try_recv() {
            let _ = fs::remove_file(&prepared.temporary);
        }
    }
}

impl Drop for Housekeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn housekeep(
    dir: &std::path::Path,
    segment_size_bytes: u64,
    inbox: &Receiver<HousekeeperCommand>,
    prepared: &SyncSender<Result<PreparedSegment, LogError>>,
) {
    while let Ok(command) = inbox.recv() {
        match command {
            HousekeeperCommand::Prepare { seq } => {
                let result = fsutil::prepare_segment(dir, seq, segment_size_bytes);
                if prepared.send(result).is_err() {
                    return;
                }
            }
            HousekeeperCommand::Delete { paths } => {
                // Oldest first, each unlink made durable before the next, so a crash leaves a
                // contiguous run of segments.
                for path in paths {
                    // Durably out of the log before the next one goes (see remove_gradually).
                    let removed = fsutil::remove_gradually(dir, &path);
                    match removed {
                        Ok(()) => {
                            tracing::debug!(path = %path.display(), "removed compacted segment")
                        }
                        Err(error) => {
                            tracing::warn!(%error, "could not remove a compacted segment");
                            break;
                        }
                    }
                }
            }
            HousekeeperCommand::Stop => return,
        }
    }
}

/// Where recovery left the log, for the writer to continue from.
pub(crate) struct WriterStart {
    pub dir: PathBuf,
    pub segment_size_bytes: u64,
    pub batch_bytes_max: usize,
    /// Every segment, the active one last.
    pub segments: Vec<SegmentSlot>,
    pub active: ActiveSegment,
    /// The last index as the segments record it.
    pub last_index: u64,
    pub hard_state: HardState,
}

/// Owns the segment files.
pub(crate) struct Writer {
    dir: PathBuf,
    segment_size_bytes: u64,
    batch_bytes_max: usize,
    /// Every segment in sequence order, the active one last.
    segments: VecDeque<SegmentSlot>,
    active: ActiveSegment,
    /// The last index written. Invariant: equals what replaying the segments gives.
    last_index: u64,
    /// The last hard state written.
    hard_state: HardState,
    frame: FrameBuilder,
    shared: Arc<Shared>,
    housekeeper: Housekeeper,
    failed: Option<Arc<LogError>>,
}

impl Writer {
    /// Takes over from recovery and starts preparing the next segment.
    pub fn new(start: WriterStart, shared: Arc<Shared>) -> Result<Writer, LogError> {
        let housekeeper = Housekeeper::start(start.dir.clone(), start.segment_size_bytes)?;
        housekeeper.send(HousekeeperCommand::Prepare {
            seq: start.active.seq + 1,
        });
        Ok(Writer {
            dir: start.dir,
            segment_size_bytes: start.segment_size_bytes,
            batch_bytes_max: start.batch_bytes_max,
            segments: start.segments.into(),
            active: start.active,
            last_index: start.last_index,
            hard_state: start.hard_state,
            frame: FrameBuilder::default(),
            shared,
            housekeeper,
            failed: None,
        })
    }

    /// Records durably that the log ends at `index` (recovery's reconciliation with the
    /// snapshot), before the writer thread starts.
    pub fn write_reset(&mut self, index: u64) -> Result<(), LogError> {
        let batch = WriteBatch {
            truncate_after: Some(index),
            ..WriteBatch::default()
        };
        self.write_frame(&[&batch], format::TRUNCATE_RECORD_BYTES as u64)
    }

    /// The writer loop; returns when told to close (or every sender is gone).
    pub fn run(mut self, commands: &Receiver<Command>) -> Result<(), LogError> {
        let mut carried = None;
        loop {
            let command = match carried.take() {
                Some(command) => command,
                None => match commands.recv() {
                    Ok(command) => command,
                    Err(_) => break,
                },
            };
            match command {
                Command::Submit(first) => {
                    let mut group_bytes = first.encoded_bytes;
                    let mut group = vec![first];
                    loop {
                        match commands.try_recv() {
                            Ok(Command::Submit(next))
                                if group_bytes + next.encoded_bytes
                                    <= self.batch_bytes_max as u64 =>
                            {
                                group_bytes += next.encoded_bytes;
                                group.push(next);
                            }
                            Ok(other) => {
                                carried = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group, group_bytes);
                }
                Command::Compact { index } => self.compact(index),
                Command::Close => break,
            }
        }
        self.housekeeper.stop();
        match self.failed {
            Some(error) => Err(LogError::Failed(error)),
            None => Ok(()),
        }
    }

    fn commit_group(&mut self, group: Vec<Submission>, group_bytes: u64) {
        if let Some(error) = &self.failed {
            for submission in group {
                (submission.on_durable)(Err(LogError::Failed(error.clone())));
            }
            return;
        }
        let batches: Vec<&WriteBatch> = group.iter().map(|submission| &submission.batch).collect();
        match self.write_frame(&batches, group_bytes) {
            Ok(()) => {
                let entries: usize = group.iter().map(|s| s.batch.entries.len()).sum();
                StatsCell::add(&self.shared.stats.batches, group.len() as u64);
                StatsCell::add(&self.shared.stats.entries, entries as u64);
                for submission in group {
                    (submission.on_durable)(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(%error, "WAL write failed; refusing all further writes");
                let error = Arc::new(error);
                self.failed = Some(error.clone());
                self.shared
                    .submitted
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .failed = Some(error.clone());
                for submission in group {
                    (submission.on_durable)(Err((*error).clone()));
                }
            }
        }
    }

    /// Writes `batches` as one frame and fdatasyncs it. `body_bytes` is their encoded size.
    fn write_frame(&mut self, batches: &[&WriteBatch], body_bytes: u64) -> Result<(), LogError> {
        if body_bytes == 0 {
            return Ok(());
        }
        let header_bytes = |has_header: bool| {
            if has_header {
                0
            } else {
                format::SEGMENT_HEADER_RECORD_BYTES
            }
        };
        let frame_bytes =
            format::frame_bytes(header_bytes(self.active.has_header) + body_bytes as usize);
        if self.active.write_offset + frame_bytes > self.segment_size_bytes {
            self.roll()?;
        }
        self.frame.start();
        if !self.active.has_header {
            self.frame.segment_header(&SegmentHeader {
                seq: self.active.seq,
                prev_index: self.active.prev_index,
                hard_state: self.hard_state,
            });
        }
        for batch in batches {
            self.encode(batch);
        }
        let frame = self.frame.finish();
        let written = frame.len() as u64;
        assert!(
            self.active.write_offset + written <= self.segment_size_bytes,
            "WAL writer: frame of {written} bytes does not fit segment {} at offset {}",
            self.active.seq,
            self.active.write_offset
        );
        let path = &self.active.path;
        self.active
            .file
            .write_all_at(frame, self.active.write_offset)
            .map_err(|error| LogError::io("write", path, error))?;
        let started = Instant::now();
        self.active
            .file
            .sync_data()
            .map_err(|error| LogError::io("fdatasync", path, error))?;
        let stats = &self.shared.stats;
        stats.record_fsync(started.elapsed());
        StatsCell::add(&stats.writes, 1);
        StatsCell::add(&stats.bytes, written);
        self.active.write_offset += written;
        self.active.has_header = true;
        Ok(())
    }

    /// Appends a batch's records to the frame and applies them to the writer's view.
    fn encode(&mut self, batch: &WriteBatch) {
        if let Some(after) = batch.truncate_after {
            assert!(
                after >= self.hard_state.commit,
                "WAL writer: truncation after {after} would discard committed entries (commit {})",
                self.hard_state.commit
            );
            self.frame.truncate(after);
            self.last_index = after;
        }
        for entry in &batch.entries {
            assert_eq!(
                entry.index,
                self.last_index + 1,
                "WAL writer: entry index {} (term {}) does not follow {}",
                entry.index,
                entry.term,
                self.last_index
            );
            self.frame.entry(entry);
            self.last_index = entry.index;
        }
        if let Some(hard_state) = batch.hard_state {
            assert!(
                hard_state.term >= self.hard_state.term
                    && hard_state.commit >= self.hard_state.commit,
                "WAL writer: hard state went backwards from {:?} to {hard_state:?}",
                self.hard_state
            );
            self.frame.hard_state(&hard_state);
            self.hard_state = hard_state;
        }
    }

    /// Starts the next segment: renames the preallocated file into place (durably).
    fn roll(&mut self) -> Result<(), LogError> {
        let seq = self.active.seq + 1;
        let (prepared, stalled) = self.housekeeper.take(seq)?;
        let stats = &self.shared.stats;
        if stalled {
            StatsCell::add(&stats.roll_stalls, 1);
        }
        let (path, file) = fsutil::install_segment(&self.dir, prepared)?;
        StatsCell::add(&stats.dir_fsyncs, 1);
        StatsCell::add(&stats.segments_rolled, 1);
        self.housekeeper
            .send(HousekeeperCommand::Prepare { seq: seq + 1 });
        tracing::debug!(
            seq,
            prev_index = self.last_index,
            "rolled to a new WAL segment"
        );
        self.segments.push_back(SegmentSlot {
            seq,
            path: path.clone(),
            prev_index: self.last_index,
        });
        self.active = ActiveSegment {
            seq,
            path,
            file,
            write_offset: 0,
            has_header: false,
            prev_index: self.last_index,
        };
        Ok(())
    }

    /// Drops the oldest segments that a snapshot at `index` makes unnecessary: a segment may
    /// go when the segment after it starts at or before `index` (its header then carries the
    /// hard state and where the log stood), and that header is durable.
    fn compact(&mut self, index: u64) {
        if self.failed.is_some() {
            return;
        }
        let mut doomed = Vec::new();
        while let Some(successor) = self.segments.get(1) {
            let successor_durable = successor.seq != self.active.seq || self.active.has_header;
            if successor.prev_index > index || !successor_durable {
                break;
            }
            if let Some(slot) = self.segments.pop_front() {
                doomed.push(slot.path);
            }
        }
        if doomed.is_empty() {
            return;
        }
        StatsCell::add(&self.shared.stats.segments_removed, doomed.len() as u64);
        tracing::info!(index, segments = doomed.len(), "compacting the WAL");
        self.housekeeper
            .send(HousekeeperCommand::Delete { paths: doomed });
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::sync::mpsc;

    use bytes::Bytes;

    use super::*;
    use crate::types::Entry;

    fn append(index: u64) -> WriteBatch {
        WriteBatch {
            entries: vec![Entry {
                index,
                term: 1,
                data: Bytes::from_static(b"data"),
            }],
            ..WriteBatch::default()
        }
    }

    fn submission(
        batch: WriteBatch,
        results: &mpsc::Sender<(u64, Result<(), LogError>)>,
    ) -> Command {
        let index = batch.entries[0].index;
        let results = results.clone();
        Command::Submit(Submission {
            encoded_bytes: crate::validate::batch_bytes(&batch),
            batch,
            on_durable: Box::new(move |result| {
                let _ = results.send((index, result));
            }),
        })
    }

    /// A write error (here: the segment is open read-only) is fatal: the batches of that
    /// write get the error, every later one gets `Failed`, and the submitting side learns it,
    /// with no retry. An fdatasync error takes the same path.
    #[test]
    fn a_failed_write_fails_its_batches_and_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let prepared = fsutil::prepare_segment(dir.path(), 0, 8192).unwrap();
        let (path, _) = fsutil::install_segment(dir.path(), prepared).unwrap();
        let read_only = OpenOptions::new().read(true).open(&path).unwrap();
        let shared = Arc::new(Shared::default());
        let start = WriterStart {
            dir: dir.path().to_path_buf(),
            segment_size_bytes: 8192,
            batch_bytes_max: 1024,
            segments: vec![SegmentSlot {
                seq: 0,
                path: path.clone(),
                prev_index: 0,
            }],
            active: ActiveSegment {
                seq: 0,
                path,
                file: read_only,
                write_offset: 0,
                has_header: false,
                prev_index: 0,
            },
            last_index: 0,
            hard_state: HardState::default(),
        };
        let writer = Writer::new(start, shared.clone()).unwrap();
        let (commands, inbox) = mpsc::sync_channel(16);
        let (results, received) = mpsc::channel();
        // Queue two batches before the writer starts, so they form one (failing) write.
        commands.send(submission(append(1), &results)).unwrap();
        commands.send(submission(append(2), &results)).unwrap();
        let thread = std::thread::spawn(move || writer.run(&inbox));
        let first = received.recv().unwrap();
        let second = received.recv().unwrap();
        assert!(
            matches!(first, (1, Err(LogError::Io { op: "write", .. }))),
            "{first:?}"
        );
        assert!(
            matches!(second, (2, Err(LogError::Io { op: "write", .. }))),
            "{second:?}"
        );
        assert!(shared.submitted.lock().unwrap().failed.is_some());
        commands.send(submission(append(3), &results)).unwrap();
        let third = received.recv().unwrap();
        assert!(matches!(third, (3, Err(LogError::Failed(_)))), "{third:?}");
        commands.send(Command::Close).unwrap();
        assert!(matches!(thread.join().unwrap(), Err(LogError::Failed(_))));
        assert_eq!(shared.stats.snapshot().fsyncs, 0);
    }
}
