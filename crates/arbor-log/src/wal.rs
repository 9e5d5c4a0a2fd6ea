//! The public handle: open (recover), submit, compact, close.

use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::config::LogConfig;
use crate::error::{BatchError, LogError, SubmitError};
use crate::recovery;
use crate::snapshot::SnapshotStore;
use crate::stats::{StatsCell, WalStats};
use crate::types::{Recovered, WriteBatch};
use crate::validate::{self, BatchLimits, LogPosition};
use crate::writer::{Command, Shared, Submission, SubmitState, Writer};

/// The write-ahead log: the Raft log, hard state and snapshots of one node, in one directory.
///
/// Writes go through [`Wal::submit`] to a writer thread that group-commits them; snapshots
/// through the [`SnapshotStore`] from [`Wal::snapshots`], on any thread.
#[derive(Debug)]
pub struct Wal {
    config: LogConfig,
    sender: Option<SyncSender<Command>>,
    writer: Option<JoinHandle<Result<(), LogError>>>,
    shared: Arc<Shared>,
    /// Also holds the directory's exclusive lock, for as long as any handle to it lives.
    snapshots: SnapshotStore,
}

impl Wal {
    /// Opens (creating if absent) the data directory, recovers, starts the writer thread.
    ///
    /// Recovery reads the newest snapshot and every segment, discards a torn write at the very
    /// end of the log (zeroing it on disk), and returns the hard state, the snapshot and every
    /// entry after it.
    ///
    /// # Errors
    /// [`LogError::InvalidConfig`]; [`LogError::Locked`] when another WAL has the directory
    /// open; [`LogError::CorruptSegment`] / [`LogError::CorruptSnapshot`] /
    /// [`LogError::LogGap`] / [`LogError::MissingSegments`] / [`LogError::CommitBeyondLog`]
    /// when the directory does not hold a log that can be trusted (nothing is modified then);
    /// [`LogError::Io`].
    pub fn open(config: LogConfig) -> Result<(Wal, Recovered), LogError> {
        config.validate()?;
        crate::fsutil::create_dir(&config.dir)?;
        let lock = crate::fsutil::lock_dir(&config.dir)?;
        let recovery = recovery::recover(&config)?;
        let hard_state = recovery.recovered.hard_state;
        let snapshot_meta = recovery
            .recovered
            .snapshot
            .as_ref()
            .map(|(meta, _)| meta.clone());
        let shared = Arc::new(Shared {
            submitted: Mutex::new(SubmitState {
                position: LogPosition {
                    last_index: recovery.last_index,
                    hard_state,
                },
                failed: None,
            }),
            stats: StatsCell::default(),
        });
        let mut writer = Writer::new(recovery.writer, shared.clone())?;
        if let Some(index) = recovery.reset_to {
            writer.write_reset(index)?;
        }
        let (sender, commands) = mpsc::sync_channel(config.submit_queue_max);
        let thread = std::thread::Builder::new()
            .name("arbor-wal-writer".into())
            .spawn(move || writer.run(&commands))
            .map_err(|error| LogError::io("spawn writer thread", &config.dir, error))?;
        let snapshots = SnapshotStore::new(
            config.dir.clone(),
            config.snapshots_retained,
            snapshot_meta,
            lock,
        );
        Ok((
            Wal {
                config,
                sender: Some(sender),
                writer: Some(thread),
                shared,
                snapshots,
            },
            recovery.recovered,
        ))
    }

    /// Queues a batch; `on_durable` runs on the writer thread once it is fsynced (or failed).
    /// Batches become durable in submission order. Never blocks: `Err(Full)` when the queue is
    /// full.
    ///
    /// When this returns `Ok`, `on_durable` is called exactly once (unless the writer thread
    /// panics); when it returns `Err`, `on_durable` is dropped uncalled. `on_durable` runs on
    /// the writer thread, so it must be quick and must not wait for another submission.
    ///
    /// # Errors
    /// [`SubmitError::Invalid`] when the batch breaks a rule of the log (see [`BatchError`]);
    /// [`SubmitError::Full`]; [`SubmitError::Failed`] once a write has failed;
    /// [`SubmitError::Closed`].
    pub fn submit(
        &self,
        batch: WriteBatch,
        on_durable: Box<dyn FnOnce(Result<(), LogError>) + Send>,
    ) -> Result<(), SubmitError> {
        let sender = self.sender.as_ref().ok_or(SubmitError::Closed)?;
        // Validation and queueing happen under one lock, so queue order is validation order.
        let mut state = self
            .shared
            .submitted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(error) = &state.failed {
            return Err(SubmitError::Failed(error.clone()));
        }
        let limits = BatchLimits {
            record_size_bytes_max: self.config.record_size_bytes_max,
            batch_bytes_max: self.config.batch_bytes_max,
        };
        let (position, encoded_bytes) = validate::validate_batch(
            &batch,
            &state.position,
            self.snapshots.newest_index(),
            limits,
        )?;
        let submission = Submission {
            batch,
            on_durable,
            encoded_bytes,
        };
        self.enqueue(sender, Command::Submit(submission))?;
        state.position = position;
        Ok(())
    }

    /// After a snapshot at `index` is saved: drop segments wholly covered by it. Ordered with
    /// appends (it goes through the same queue); the files are deleted off the writer thread.
    ///
    /// # Errors
    /// [`SubmitError::Invalid`] with [`BatchError::CompactNotCovered`] when no saved snapshot
    /// covers `index`; [`SubmitError::Full`]; [`SubmitError::Failed`]; [`SubmitError::Closed`].
    pub fn compact(&self, index: u64) -> Result<(), SubmitError> {
        let sender = self.sender.as_ref().ok_or(SubmitError::Closed)?;
        let snapshot_index = self.snapshots.newest_index();
        if index > snapshot_index {
            return Err(BatchError::CompactNotCovered {
                index,
                snapshot_index,
            }
            .into());
        }
        if let Some(error) = &self
            .shared
            .submitted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed
        {
            return Err(SubmitError::Failed(error.clone()));
        }
        self.enqueue(sender, Command::Compact { index })
    }

    fn enqueue(&self, sender: &SyncSender<Command>, command: Command) -> Result<(), SubmitError> {
        match sender.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                StatsCell::add(&self.shared.stats.queue_full, 1);
                Err(SubmitError::Full {
                    capacity: self.config.submit_queue_max,
                })
            }
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Closed),
        }
    }

    /// A handle usable from another thread to write snapshots.
    pub fn snapshots(&self) -> SnapshotStore {
        self.snapshots.clone()
    }

    /// Counters since the WAL was opened.
    pub fn stats(&self) -> WalStats {
        self.shared.stats.snapshot()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// The configuration the WAL was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Flushes and stops the writer thread (also on Drop). Every batch submitted before has
    /// had its callback run when this returns.
    ///
    /// # Errors
    /// [`LogError::Failed`] when a write failed while the WAL was open.
    ///
    /// # Panics
    /// Re-raises a panic of the writer thread (a broken storage invariant, or a panicking
    /// `on_durable` callback).
    pub fn close(mut self) -> Result<(), LogError> {
        match self.stop() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn stop(&mut self) -> std::thread::Result<Result<(), LogError>> {
        if let Some(sender) = self.sender.take() {
            // Blocks while the queue is full: closing waits for the work ahead of it.
            let _ = sender.send(Command::Close);
        }
        match self.writer.take() {
            Some(thread) => thread.join(),
            None => Ok(Ok(())),
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        match self.stop() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "WAL closed after a failure"),
            Err(_) => tracing::error!("WAL writer thread panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_be_shared_across_threads() {
        assert_send_sync::<Wal>();
        assert_send_sync::<SnapshotStore>();
    }

    #[test]
    fn a_failed_wal_refuses_submissions_and_compactions() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(LogConfig::new(dir.path())).unwrap();
        // What the writer records when a write or fdatasync fails (see the writer's tests).
        let cause = Arc::new(LogError::io(
            "fdatasync",
            dir.path(),
            std::io::Error::other("EIO"),
        ));
        wal.shared.submitted.lock().unwrap().failed = Some(cause);
        assert!(matches!(
            wal.submit(WriteBatch::default(), Box::new(|_| {})),
            Err(SubmitError::Failed(_))
        ));
        assert!(matches!(wal.compact(0), Err(SubmitError::Failed(_))));
    }
}
