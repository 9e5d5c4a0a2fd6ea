//! When each request is *meant* to be sent. Pure: instants come in as arguments.
//!
//! In the open-loop (fixed-rate) mode every request has an intended send time fixed in advance,
//! `start + k × interval`, whatever the server does. Latency is measured from that time, not
//! from when the request finally left (it may wait for a free window slot): otherwise a server
//! that stalls would also stall the load that measures it, and the stall would be recorded as
//! one slow request instead of the many that real clients would have suffered (coordinated
//! omission, Gil Tene). In the closed-loop mode the intended time is the actual send time.

use std::time::Duration;

use tokio::time::Instant;

/// A fixed-rate schedule of intended send times for one connection.
#[derive(Debug, Clone)]
pub struct OpenLoopSchedule {
    start: Instant,
    interval_nanos: u128,
    /// How many intended times have been taken; the next one is `start + issued × interval`.
    issued: u64,
}

impl OpenLoopSchedule {
    /// A schedule of `rate_per_s` requests per second whose first request is due at `start`.
    ///
    /// # Panics
    /// If `rate_per_s` is not positive and finite (validated from user input before).
    pub fn new(start: Instant, rate_per_s: f64) -> OpenLoopSchedule {
        assert!(
            rate_per_s.is_finite() && rate_per_s > 0.0,
            "open-loop rate must be positive, got {rate_per_s}"
        );
        let interval_nanos = ((1e9 / rate_per_s).round() as u128).max(1);
        OpenLoopSchedule {
            start,
            interval_nanos,
            issued: 0,
        }
    }

    /// The intended send time of the next request.
    pub fn next_at(&self) -> Instant {
        let offset = self.interval_nanos.saturating_mul(u128::from(self.issued));
        self.start + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    /// Takes the next intended time if it is due at `now`.
    pub fn take_due(&mut self, now: Instant) -> Option<Instant> {
        let next = self.next_at();
        if next <= now {
            self.issued += 1;
            Some(next)
        } else {
            None
        }
    }

    /// Intended times that are due at `now` but not taken yet (the backlog a slow server built).
    pub fn backlog(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let due = if now < self.start {
            0
        } else {
            elapsed / self.interval_nanos + 1
        };
        u64::try_from(due)
            .unwrap_or(u64::MAX)
            .saturating_sub(self.issued)
    }
}

/// The latency of a request meant to be sent at `intended` and answered at `completed`.
pub fn latency(intended: Instant, completed: Instant) -> Duration {
    completed.saturating_duration_since(intended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_do_not_drift_with_late_sends() {
        let start = Instant::now();
        let mut schedule = OpenLoopSchedule::new(start, 1_000.0);
        assert_eq!(schedule.take_due(start), Some(start));
        assert_eq!(schedule.take_due(start), None, "second is due at +1 ms");
        // The sender was stuck for 10 ms: ten requests are due, each at its own time.
        let late = start + Duration::from_millis(10);
        assert_eq!(schedule.backlog(late), 10);
        let mut taken = Vec::new();
        while let Some(intended) = schedule.take_due(late) {
            taken.push(intended - start);
        }
        let expected: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(taken, expected);
        assert_eq!(schedule.backlog(late), 0);
    }

    #[test]
    fn latency_counts_from_the_intended_time_not_the_send() {
        // A request due at +1 ms that could only be sent at +10 ms (full window) and was
        // answered at +10.1 ms waited 9.1 ms: coordinated omission would record 0.1 ms.
        let start = Instant::now();
        let mut schedule = OpenLoopSchedule::new(start, 1_000.0);
        schedule.take_due(start);
        let intended = schedule
            .take_due(start + Duration::from_millis(10))
            .unwrap();
        let completed = start + Duration::from_micros(10_100);
        assert_eq!(latency(intended, completed), Duration::from_micros(9_100));
    }

    #[test]
    fn nothing_is_due_before_start() {
        let start = Instant::now() + Duration::from_secs(1);
        let mut schedule = OpenLoopSchedule::new(start, 10.0);
        assert_eq!(schedule.backlog(Instant::now()), 0);
        assert_eq!(schedule.take_due(Instant::now()), None);
    }
}
