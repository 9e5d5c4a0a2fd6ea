//! Counters the writer keeps for operators (`mntr`, `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of the WAL's counters since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// fdatasync calls on segment files (one per group commit).
    pub fsyncs: u64,
    /// fsync calls on the data directory (segment rolls).
    pub dir_fsyncs: u64,
    /// Group commits: frames written, each with one fdatasync.
    pub writes: u64,
    /// Write batches reported durable.
    pub batches: u64,
    /// Entries written.
    pub entries: u64,
    /// Bytes written to segments (frames including padding).
    pub bytes: u64,
    /// Latency of the most recent fdatasync.
    pub fsync_latency_last: Duration,
    /// Longest fdatasync.
    pub fsync_latency_max: Duration,
    /// Sum of all fdatasync latencies (divide by `fsyncs` for the mean).
    pub fsync_latency_sum: Duration,
    /// Segments rolled to.
    pub segments_rolled: u64,
    /// Rolls that had to wait for the next segment to be preallocated.
    pub roll_stalls: u64,
    /// Segments handed over for deletion by compaction.
    pub segments_removed: u64,
    /// Submissions refused because the queue was full.
    pub queue_full: u64,
}

/// The live counters, shared between the writer and `Wal::stats`.
#[derive(Debug, Default)]
pub(crate) struct StatsCell {
    pub fsyncs: AtomicU64,
    pub dir_fsyncs: AtomicU64,
    pub writes: AtomicU64,
    pub batches: AtomicU64,
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
    pub fsync_last_ns: AtomicU64,
    pub fsync_max_ns: AtomicU64,
    pub fsync_sum_ns: AtomicU64,
    pub segments_rolled: AtomicU64,
    pub roll_stalls: AtomicU64,
    pub segments_removed: AtomicU64,
    pub queue_full: AtomicU64,
}

impl StatsCell {
    pub fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    pub fn record_fsync(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        Self::add(&self.fsyncs, 1);
        self.fsync_last_ns.store(nanos, Ordering::Relaxed);
        self.fsync_max_ns.fetch_max(nanos, Ordering::Relaxed);
        Self::add(&self.fsync_sum_ns, nanos);
    }

    pub fn snapshot(&self) -> WalStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WalStats {
            fsyncs: load(&self.fsyncs),
            dir_fsyncs: load(&self.dir_fsyncs),
            writes: load(&self.writes),
            batches: load(&self.batches),
            entries: load(&self.entries),
            bytes: load(&self.bytes),
            fsync_latency_last: Duration::from_nanos(load(&self.fsync_last_ns)),
            fsync_latency_max: Duration::from_nanos(load(&self.fsync_max_ns)),
            fsync_latency_sum: Duration::from_nanos(load(&self.fsync_sum_ns)),
            segments_rolled: load(&self.segments_rolled),
            roll_stalls: load(&self.roll_stalls),
            segments_removed: load(&self.segments_removed),
            queue_full: load(&self.queue_full),
        }
    }
}
