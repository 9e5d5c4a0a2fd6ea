//! Latency recording: HDR histograms in nanoseconds, and the summary the report prints.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The longest latency a histogram can hold exactly; longer ones are clamped to it (and still
/// counted), so a hung request shows up as a huge max instead of vanishing.
pub const LATENCY_NANOS_MAX: u64 = 3_600 * 1_000_000_000;

/// Significant decimal digits kept by every histogram (0.1 % relative error).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// A histogram of latencies.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder for latencies from 1 ns to [`LATENCY_NANOS_MAX`].
    ///
    /// # Panics
    /// Never: the bounds are constants that hdrhistogram accepts (checked by a test).
    pub fn new() -> LatencyRecorder {
        let histogram =
            Histogram::new_with_bounds(1, LATENCY_NANOS_MAX, LATENCY_SIGNIFICANT_DIGITS)
                .unwrap_or_else(|error| panic!("constant histogram bounds rejected: {error}"));
        LatencyRecorder { histogram }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos())
            .unwrap_or(LATENCY_NANOS_MAX)
            .clamp(1, LATENCY_NANOS_MAX);
        self.histogram.saturating_record(nanos);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Same bounds on both sides, so `add` cannot fail; saturate defensively anyway.
        if self.histogram.add(&other.histogram).is_err() {
            for value in other.histogram.iter_recorded() {
                self.histogram
                    .saturating_record_n(value.value_iterated_to(), value.count_at_value());
            }
        }
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The summary in microseconds (all zeros when empty).
    pub fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        let micros = |nanos: u64| nanos as f64 / 1_000.0;
        let quantile = |q: f64| micros(self.histogram.value_at_quantile(q));
        LatencySummary {
            count: self.histogram.len(),
            mean_us: self.histogram.mean() / 1_000.0,
            p50_us: quantile(0.50),
            p90_us: quantile(0.90),
            p99_us: quantile(0.99),
            p999_us: quantile(0.999),
            max_us: micros(self.histogram.max()),
        }
    }
}

/// Percentiles of a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within_precision(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001 + 0.001
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut recorder = LatencyRecorder::new();
        for micros in 1..=1_000u64 {
            recorder.record(Duration::from_micros(micros));
        }
        let summary = recorder.summary();
        assert_eq!(summary.count, 1_000);
        assert!(within_precision(summary.p50_us, 500.0), "{summary:?}");
        assert!(within_precision(summary.p90_us, 900.0), "{summary:?}");
        assert!(within_precision(summary.p99_us, 990.0), "{summary:?}");
        assert!(within_precision(summary.p999_us, 999.0), "{summary:?}");
        assert!(within_precision(summary.max_us, 1_000.0), "{summary:?}");
        assert!(within_precision(summary.mean_us, 500.5), "{summary:?}");
    }

    #[test]
    fn one_outlier_shows_in_max_and_p999_only() {
        let mut recorder = LatencyRecorder::new();
        for _ in 0..9_999 {
            recorder.record(Duration::from_micros(100));
        }
        recorder.record(Duration::from_secs(2));
        let summary = recorder.summary();
        assert!(within_precision(summary.p99_us, 100.0), "{summary:?}");
        assert!(within_precision(summary.p999_us, 100.0), "{summary:?}");
        assert!(within_precision(summary.max_us, 2_000_000.0), "{summary:?}");
    }

    #[test]
    fn merge_adds_samples_and_extremes_are_clamped() {
        let mut a = LatencyRecorder::new();
        let mut b = LatencyRecorder::new();
        a.record(Duration::ZERO);
        b.record(Duration::from_secs(10 * 3_600));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        let summary = a.summary();
        assert!(within_precision(
            summary.max_us,
            LATENCY_NANOS_MAX as f64 / 1_000.0
        ));
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(LatencyRecorder::new().summary(), LatencySummary::default());
    }
}
