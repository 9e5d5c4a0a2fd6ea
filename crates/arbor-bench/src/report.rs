//! The result of a run: a JSON document (for scripts) and a one-screen summary (for people).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use arbor_proto::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::latency::LatencySummary;

/// Version of the JSON layout; bumped when a field changes meaning.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The parameters a run was made with (enough to repeat it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Servers driven.
    pub servers: Vec<String>,
    /// Sessions (or churn loops, or fan-out watchers).
    pub connections: u32,
    /// Outstanding requests per connection.
    pub window: u32,
    /// `closed` or `open`.
    pub mode: String,
    /// Open-loop target rate.
    pub rate_per_s: Option<f64>,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// Measured seconds asked for (absent in op-count mode).
    pub duration_s: Option<f64>,
    /// Operations asked for (op-count mode).
    pub ops_target: Option<u64>,
    /// Bytes per written value.
    pub value_size_bytes: u32,
    /// Read percentage (mixed).
    pub read_pct: u8,
    /// Keys.
    pub keys: u32,
    /// Children (children workload).
    pub children: u32,
    /// Watchers (fan-out).
    pub watchers: u32,
    /// Seed.
    pub seed: u64,
    /// Load generator threads.
    pub threads: u32,
    /// The run directory on the server.
    pub run_dir: String,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema: u32,
    /// The workload's name.
    pub workload: String,
    /// The `--label` given.
    pub label: Option<String>,
    /// How the run was made.
    pub config: RunConfig,
    /// Operations completed in the measured interval (fan-out: rounds).
    pub ops: u64,
    /// Operations completed outside the measured interval (warm-up, or the tail sent past the
    /// end): with `ops`, what the server did while the run lasted.
    #[serde(default)]
    pub warmup_ops: u64,
    /// Of those, how many the server answered with an error (or, for churn, that failed).
    pub errors: u64,
    /// Errors by name (`NoNode`, `connect`...).
    pub error_codes: BTreeMap<String, u64>,
    /// Measured interval: from the end of warm-up to the last counted completion.
    pub elapsed_s: f64,
    /// `ops / elapsed_s`.
    pub ops_per_s: f64,
    /// Latency of every counted operation (fan-out: of a round, write until the last watcher
    /// heard; probes: of one sample).
    pub latency: LatencySummary,
    /// Latency of reads only, when the workload mixes.
    pub reads: Option<LatencySummary>,
    /// Latency of writes only, when the workload mixes.
    pub writes: Option<LatencySummary>,
    /// Watch notifications received.
    pub notifications: u64,
    /// Open loop: requests that were due but never sent when the run ended (the server could
    /// not keep up with the rate).
    pub backlog_at_end: u64,
    /// Seconds spent creating the nodes the workload needs, before the measurement.
    pub setup_s: f64,
    /// CPU seconds the load generator used (user + system), setup included.
    pub client_cpu_s: f64,
    /// Workload-specific figures (e.g. `ready_ms`, per-watcher notification percentiles).
    pub extra: BTreeMap<String, f64>,
}

impl Report {
    /// Counts `count` error replies with ZooKeeper error code `code`.
    pub fn count_errors(&mut self, code: i32, count: u64) {
        let name =
            ErrorCode::from_i32(code).map_or_else(|| format!("err{code}"), |c| c.name().to_owned());
        self.count_named_errors(name, count);
    }

    /// Counts `count` failures that are not server error codes (e.g. `connect`).
    pub fn count_named_errors(&mut self, name: String, count: u64) {
        if count > 0 {
            *self.error_codes.entry(name).or_default() += count;
            self.errors += count;
        }
    }

    /// The one-screen summary.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let config = &self.config;
        let _ = writeln!(
            out,
            "arbor bench: {} against {}",
            self.workload,
            config.servers.join(",")
        );
        let _ = writeln!(
            out,
            "  {} connections, window {}, {}{}, value {} B, warm-up {:.1}s, seed {}",
            config.connections,
            config.window,
            config.mode,
            config
                .rate_per_s
                .map_or_else(String::new, |r| format!(" at {r:.0}/s")),
            config.value_size_bytes,
            config.warmup_s,
            config.seed
        );
        let _ = writeln!(
            out,
            "  ops {}  errors {}  elapsed {:.2}s  throughput {:.0} ops/s  (setup {:.1}s, client cpu {:.2}s)",
            self.ops, self.errors, self.elapsed_s, self.ops_per_s, self.setup_s, self.client_cpu_s
        );
        let _ = writeln!(
            out,
            "  {:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "latency", "p50", "p90", "p99", "p99.9", "max", "count"
        );
        let mut row = |name: &str, s: &LatencySummary| {
            let _ = writeln!(
                out,
                "  {:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                name,
                format_micros(s.p50_us),
                format_micros(s.p90_us),
                format_micros(s.p99_us),
                format_micros(s.p999_us),
                format_micros(s.max_us),
                s.count
            );
        };
        row("all", &self.latency);
        if let Some(reads) = &self.reads {
            row("reads", reads);
        }
        if let Some(writes) = &self.writes {
            row("writes", writes);
        }
        if !self.error_codes.is_empty() {
            let codes: Vec<String> = self
                .error_codes
                .iter()
                .map(|(name, count)| format!("{name}={count}"))
                .collect();
            let _ = writeln!(out, "  errors: {}", codes.join(" "));
        }
        if self.notifications > 0 {
            let _ = writeln!(out, "  notifications: {}", self.notifications);
        }
        if self.backlog_at_end > 0 {
            let _ = writeln!(
                out,
                "  rate not sustained: {} requests were due but unsent at the end",
                self.backlog_at_end
            );
        }
        for (key, value) in &self.extra {
            let _ = writeln!(out, "  {key}: {value:.3}");
        }
        out
    }
}

/// `812us`, `3.41ms`, `1.20s`.
pub fn format_micros(micros: f64) -> String {
    if micros < 1_000.0 {
        format!("{micros:.0}us")
    } else if micros < 1_000_000.0 {
        format!("{:.2}ms", micros / 1_000.0)
    } else {
        format!("{:.2}s", micros / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_name() {
        let mut report = Report::default();
        report.count_errors(-101, 2);
        report.count_errors(-9999, 1);
        assert_eq!(report.errors, 3);
        assert_eq!(report.error_codes.get("NoNode"), Some(&2));
        assert_eq!(report.error_codes.get("err-9999"), Some(&1));
    }

    #[test]
    fn summary_fits_one_screen_and_json_round_trips() {
        let mut report = Report {
            workload: "mixed".into(),
            reads: Some(LatencySummary::default()),
            writes: Some(LatencySummary::default()),
            ..Report::default()
        };
        report.count_errors(-110, 1);
        report.extra.insert("ready_ms".into(), 12.5);
        let text = report.summary();
        assert!(text.lines().count() <= 24, "{text}");
        assert!(text.lines().all(|line| line.len() <= 120), "{text}");
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn micros_format_with_units() {
        assert_eq!(format_micros(812.0), "812us");
        assert_eq!(format_micros(3_410.0), "3.41ms");
        assert_eq!(format_micros(1_200_000.0), "1.20s");
    }
}
