//! The command line of `arbor bench`, and its validation into a [`Plan`].

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbor_proto::FRAME_SIZE_BYTES_MAX_DEFAULT;
use bytes::Bytes;
use thiserror::Error;

use crate::session::{READ_FRAME_SIZE_BYTES_MAX_DEFAULT, SessionOptions};
use crate::workload::{Layout, Workload};

/// Most connections one run opens (each is a socket and a task; the fan-out wants 10k).
pub const CONNECTIONS_MAX: u32 = 100_000;
/// Largest window of outstanding requests per connection.
pub const WINDOW_MAX: u32 = 65_536;
/// Largest value: the request must fit ZooKeeper's default 1 MiB frame with its path.
pub const VALUE_SIZE_BYTES_MAX: u32 = FRAME_SIZE_BYTES_MAX_DEFAULT - 4_096;
/// Most keys the key-value workloads spread over.
pub const KEYS_MAX: u32 = 10_000_000;
/// Most children the getChildren workload creates under one node.
pub const CHILDREN_MAX: u32 = 1_000_000;
/// Most worker threads of the bench's runtime.
pub const THREADS_MAX: u32 = 64;

/// `arbor bench`: a ZooKeeper-protocol load generator (drives arbor and Apache ZooKeeper alike).
///
/// Closed loop by default (each connection keeps `--window` requests outstanding); with
/// `--rate` it is open loop: requests are due at a fixed rate and latency counts from when each
/// was due, so a stalling server cannot hide its stall (no coordinated omission).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Servers, `host:port`, comma separated; connections are spread over them round-robin.
    #[arg(
        long = "server",
        value_delimiter = ',',
        default_value = "127.0.0.1:2181"
    )]
    pub servers: Vec<String>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Workload::Get)]
    pub workload: Workload,
    /// Concurrent sessions (for churn: concurrent connect/create/close loops).
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// Outstanding requests allowed per connection.
    #[arg(long, default_value_t = 16)]
    pub window: u32,
    /// Open loop: total requests per second over all connections. Closed loop when absent.
    #[arg(long = "rate")]
    pub rate_per_s: Option<f64>,
    /// Warm-up before measuring, e.g. `2s`, `500ms` (operations in it are not counted).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// How long to measure (ignored with `--ops`); for `ready`, how long to wait at most.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Measure exactly this many operations instead of a duration (fan-out: rounds).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Bytes of data per written node.
    #[arg(long = "value-size", default_value_t = 100)]
    pub value_size_bytes: u32,
    /// Percentage of reads in the `mixed` workload (0..=100).
    #[arg(long = "read-pct", default_value_t = 90)]
    pub read_pct: u8,
    /// Nodes the get/set/mixed/exists-watch workloads spread over.
    #[arg(long, default_value_t = 1_000)]
    pub keys: u32,
    /// Children of the node that the `children` workload lists.
    #[arg(long, default_value_t = 100_000)]
    pub children: u32,
    /// Watching sessions in the `fanout` workload.
    #[arg(long, default_value_t = 10_000)]
    pub watchers: u32,
    /// The node every run creates its directory under.
    #[arg(long, default_value = "/arbor-bench")]
    pub root: String,
    /// Name of this run's directory under `--root` (default: derived from seed and time).
    #[arg(long = "run-id")]
    pub run_id: Option<String>,
    /// Session timeout asked of the server.
    #[arg(long = "session-timeout-ms", default_value_t = 30_000)]
    pub session_timeout_ms: u32,
    /// Limit on each TCP connect plus handshake.
    #[arg(long = "connect-timeout", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Largest reply frame accepted.
    #[arg(long = "read-frame-max", default_value_t = READ_FRAME_SIZE_BYTES_MAX_DEFAULT)]
    pub read_frame_size_bytes_max: u32,
    /// Worker threads of the load generator (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Seed of the key choices (the same seed sends the same requests).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the JSON report to this file (`-` for stdout; the summary then goes to stderr).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A free-form label copied into the JSON report.
    #[arg(long)]
    pub label: Option<String>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Only create the nodes the workload needs (use `--run-id` to measure them later).
    #[arg(long = "setup-only", conflicts_with = "no_setup")]
    pub setup_only: bool,
    /// Skip the setup: the nodes of `--run-id` were made by an earlier `--setup-only` run.
    #[arg(long = "no-setup", requires = "run_id")]
    pub no_setup: bool,
    /// Directory for the `fsync` probe (default: the current directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// A command line that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgsError {
    /// A numeric option is outside its range.
    #[error("--{option} must be in {min}..={max}, got {value}")]
    OutOfRange {
        /// The option.
        option: &'static str,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// What was given.
        value: u64,
    },
    /// `--rate` is not a positive number.
    #[error("--rate must be a positive number of requests per second")]
    BadRate,
    /// No server to talk to.
    #[error("--server needs at least one host:port")]
    NoServer,
    /// `--root` is not an absolute ZooKeeper path.
    #[error("--root must start with '/' and not be '/' alone, got {0:?}")]
    BadRoot(String),
}

/// Parses `250ms`, `10s`, `2m`, `1h` or a plain number of seconds.
///
/// # Errors
/// A message naming the bad input.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}: expected e.g. 500ms, 10s, 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1_000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3_600.0,
        other => return Err(format!("bad duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("bad duration {text:?}: {error}"))
}

/// A validated run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub workload: Workload,
    pub servers: Vec<String>,
    pub connections: u32,
    pub rate_per_s: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub ops: Option<u64>,
    pub value: Bytes,
    pub read_pct: u8,
    pub children: u32,
    pub watchers: u32,
    pub session: SessionOptions,
    pub seed: u64,
    pub layout: Layout,
    pub progress: bool,
    pub setup_only: bool,
    pub no_setup: bool,
}

fn check_range(option: &'static str, value: u64, min: u64, max: u64) -> Result<(), ArgsError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ArgsError::OutOfRange {
            option,
            min,
            max,
            value,
        })
    }
}

impl BenchArgs {
    /// Checks every limit.
    ///
    /// # Errors
    /// The first [`ArgsError`] found.
    pub fn validate(&self) -> Result<(), ArgsError> {
        if self.servers.iter().all(|s| s.trim().is_empty()) {
            return Err(ArgsError::NoServer);
        }
        check_range(
            "connections",
            self.connections.into(),
            1,
            CONNECTIONS_MAX.into(),
        )?;
        check_range("window", self.window.into(), 1, WINDOW_MAX.into())?;
        check_range(
            "value-size",
            self.value_size_bytes.into(),
            0,
            VALUE_SIZE_BYTES_MAX.into(),
        )?;
        check_range("read-pct", self.read_pct.into(), 0, 100)?;
        check_range("keys", self.keys.into(), 1, KEYS_MAX.into())?;
        check_range("children", self.children.into(), 0, CHILDREN_MAX.into())?;
        check_range("watchers", self.watchers.into(), 1, CONNECTIONS_MAX.into())?;
        check_range("threads", self.threads.into(), 1, THREADS_MAX.into())?;
        check_range(
            "session-timeout-ms",
            self.session_timeout_ms.into(),
            1,
            i32::MAX as u64,
        )?;
        if let Some(rate) = self.rate_per_s
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(ArgsError::BadRate);
        }
        if !self.root.starts_with('/') || self.root.trim_end_matches('/').is_empty() {
            return Err(ArgsError::BadRoot(self.root.clone()));
        }
        Ok(())
    }

    pub(crate) fn plan(&self) -> Result<Plan, ArgsError> {
        self.validate()?;
        let run_id = self.run_id.clone().unwrap_or_else(|| {
            let millis = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            format!("r{}-{millis}", self.seed)
        });
        Ok(Plan {
            workload: self.workload,
            servers: self
                .servers
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            connections: self.connections,
            rate_per_s: self.rate_per_s,
            warmup: self.warmup,
            duration: self.duration,
            ops: self.ops,
            value: Bytes::from(vec![b'x'; self.value_size_bytes as usize]),
            read_pct: self.read_pct,
            children: self.children,
            watchers: self.watchers,
            session: SessionOptions {
                session_timeout_ms: i32::try_from(self.session_timeout_ms).unwrap_or(i32::MAX),
                window: self.window as usize,
                read_frame_size_bytes_max: self.read_frame_size_bytes_max,
                connect_timeout: self.connect_timeout,
            },
            seed: self.seed,
            layout: Layout::new(&self.root, &run_id, self.keys),
            progress: !self.quiet,
            setup_only: self.setup_only,
            no_setup: self.no_setup,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(line: &[&str]) -> BenchArgs {
        let mut argv = vec!["bench"];
        argv.extend_from_slice(line);
        Cli::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1_500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn command_line_parses_and_validates() {
        let args = parse(&[
            "--server",
            "127.0.0.1:1,127.0.0.1:2",
            "--workload",
            "mixed",
            "--read-pct",
            "99",
            "--rate",
            "5000",
            "--value-size",
            "1024",
        ]);
        assert_eq!(args.servers.len(), 2);
        assert_eq!(args.workload, Workload::Mixed);
        assert_eq!(args.rate_per_s, Some(5_000.0));
        args.validate().unwrap();
        let plan = args.plan().unwrap();
        assert_eq!(plan.value.len(), 1_024);
    }

    #[test]
    fn limits_are_enforced() {
        let mut args = parse(&[]);
        args.window = 0;
        assert!(matches!(
            args.validate(),
            Err(ArgsError::OutOfRange {
                option: "window",
                ..
            })
        ));
        let mut args = parse(&[]);
        args.value_size_bytes = FRAME_SIZE_BYTES_MAX_DEFAULT;
        assert!(args.validate().is_err());
        let mut args = parse(&[]);
        args.rate_per_s = Some(0.0);
        assert_eq!(args.validate(), Err(ArgsError::BadRate));
        let mut args = parse(&[]);
        args.root = "/".into();
        assert!(matches!(args.validate(), Err(ArgsError::BadRoot(_))));
    }
}
