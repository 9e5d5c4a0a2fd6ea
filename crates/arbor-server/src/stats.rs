//! Counters an operator asks for (the `mntr`/`srvr` set), kept by the core task.

use std::time::Duration;

/// Request counters and latencies since start (or the last `srst`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub sessions_expired: u64,
    pub fsync_batches: u64,
    pub peer_messages_dropped: u64,
    pub leader_changes: u64,
    latency_count: u64,
    latency_sum_us: u64,
    latency_min_us: u64,
    latency_max_us: u64,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats::default()
    }

    pub(crate) fn record_latency(&mut self, latency: Duration) {
        let micros = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        if self.latency_count == 0 || micros < self.latency_min_us {
            self.latency_min_us = micros;
        }
        self.latency_max_us = self.latency_max_us.max(micros);
        self.latency_sum_us = self.latency_sum_us.saturating_add(micros);
        self.latency_count += 1;
    }

    /// (min, avg, max) in milliseconds, as ZooKeeper prints them.
    pub(crate) fn latency_ms(&self) -> (f64, f64, f64) {
        if self.latency_count == 0 {
            return (0.0, 0.0, 0.0);
        }
        let avg = self.latency_sum_us as f64 / self.latency_count as f64;
        (
            self.latency_min_us as f64 / 1000.0,
            avg / 1000.0,
            self.latency_max_us as f64 / 1000.0,
        )
    }

    pub(crate) fn reset(&mut self) {
        *self = Stats {
            sessions_expired: self.sessions_expired,
            ..Stats::default()
        };
    }
}
