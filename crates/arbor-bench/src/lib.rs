//! `arbor bench`: a load generator that speaks ZooKeeper's client protocol, so it drives arbor
//! and Apache ZooKeeper alike, with the same client, on the same machine.
//!
//! N sessions each keep a bounded window of pipelined requests outstanding (closed loop), or
//! send at a fixed rate (open loop, latency counted from each request's intended send time so a
//! stalling server cannot hide its stall). After a warm-up it measures for a duration or an op
//! count and reports ops/s, errors and HDR-histogram latencies (p50/p90/p99/p99.9/max), as a
//! one-screen summary and as JSON.
//!
//! The binary wires `arbor bench <args>` to [`run`]:
//!
//! ```no_run
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     bench: arbor_bench::BenchArgs,
//! }
//!
//! fn main() -> anyhow::Result<()> {
//!     arbor_bench::run(Cli::parse().bench)
//! }
//! ```
//!
//! The building blocks are public for tests and tools: [`Session`] (a pipelined client
//! session), [`Pipeline`] (xid matching and the window, no I/O), [`OpenLoopSchedule`],
//! [`LatencyRecorder`] and [`Report`].
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod args;
mod churn;
mod fanout;
mod latency;
mod load;
mod pipeline;
mod probes;
mod report;
mod schedule;
mod session;
mod setup;
mod workload;

#[cfg(test)]
mod driver_tests;
#[cfg(test)]
mod fake_server;

use std::io::Write;

use anyhow::Context;

pub use args::{
    ArgsError, BenchArgs, CHILDREN_MAX, CONNECTIONS_MAX, KEYS_MAX, THREADS_MAX,
    VALUE_SIZE_BYTES_MAX, WINDOW_MAX, parse_duration,
};
pub use latency::{LATENCY_NANOS_MAX, LatencyRecorder, LatencySummary};
pub use load::DRAIN_TIMEOUT;
pub use pipeline::{Pipeline, PipelineError, XID_FIRST};
pub use probes::{FSYNC_WRITE_BYTES, fsync_latency, loopback_rtt, wait_ready};
pub use report::{REPORT_SCHEMA_VERSION, Report, RunConfig, format_micros};
pub use schedule::{OpenLoopSchedule, latency};
pub use session::{
    Incoming, READ_FRAME_SIZE_BYTES_MAX_DEFAULT, Session, SessionError, SessionOptions,
};
pub use setup::CONNECT_CONCURRENCY_MAX;
pub use workload::{OpClass, Workload};

use args::Plan;

/// Runs `arbor bench` with `args`: builds its own tokio runtime (`--threads` workers), runs the
/// workload, prints the summary and writes the JSON report if asked.
///
/// # Errors
/// Invalid arguments, a server that cannot be reached or fails mid-run, or a report that cannot
/// be written.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = measure(&args)?;
    emit(&args, &report)
}

/// Runs the workload and returns the report without printing anything but the progress line.
///
/// # Errors
/// As [`run`].
pub fn measure(args: &BenchArgs) -> anyhow::Result<Report> {
    let plan = args.plan()?;
    let cpu_before = process_cpu_seconds();
    let mut report = Report {
        schema: REPORT_SCHEMA_VERSION,
        workload: plan.workload.name().to_owned(),
        label: args.label.clone(),
        config: run_config(args, &plan),
        ..Report::default()
    };
    match plan.workload {
        Workload::Fsync => {
            let dir = args.dir.clone().unwrap_or_else(|| ".".into());
            let recorder = fsync_latency(&dir, probe_samples(args))
                .with_context(|| format!("fsync probe in {}", dir.display()))?;
            probe_report(&mut report, &recorder);
        }
        Workload::LoopbackRtt => {
            let recorder = loopback_rtt(probe_samples(args)).context("loopback probe")?;
            probe_report(&mut report, &recorder);
        }
        _ => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.threads as usize)
                .enable_all()
                .build()
                .context("building the tokio runtime")?;
            runtime.block_on(measure_server(&plan, &mut report))?;
        }
    }
    report.client_cpu_s = process_cpu_seconds() - cpu_before;
    Ok(report)
}

async fn measure_server(plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    if plan.workload == Workload::Ready {
        let ready = wait_ready(&plan.servers[0], &plan.session, plan.duration)
            .await
            .with_context(|| format!("{} never became ready", plan.servers[0]))?;
        report.ops = 1;
        report.elapsed_s = ready.as_secs_f64();
        report
            .extra
            .insert("ready_ms".into(), ready.as_secs_f64() * 1e3);
        return Ok(());
    }
    if !plan.no_setup {
        let setup = setup::prepare(plan).await.with_context(|| {
            format!("setting up {} on {}", plan.workload.name(), plan.servers[0])
        })?;
        report.setup_s = setup.as_secs_f64();
    }
    if plan.setup_only {
        return Ok(());
    }
    match plan.workload {
        Workload::Churn => churn::run_churn(plan, report).await,
        Workload::Fanout => fanout::run_fanout(plan, report)
            .await
            .context("fan-out workload")?,
        _ => load::run_load(plan, report)
            .await
            .with_context(|| format!("{} workload", plan.workload.name()))?,
    }
    Ok(())
}

fn probe_samples(args: &BenchArgs) -> u64 {
    args.ops.unwrap_or(probes::PROBE_SAMPLES_DEFAULT).max(1)
}

fn probe_report(report: &mut Report, recorder: &LatencyRecorder) {
    report.latency = recorder.summary();
    report.ops = recorder.count();
    let total_s = report.latency.mean_us * report.ops as f64 / 1e6;
    report.elapsed_s = total_s;
    report.ops_per_s = if total_s > 0.0 {
        report.ops as f64 / total_s
    } else {
        0.0
    };
}

fn run_config(args: &BenchArgs, plan: &Plan) -> RunConfig {
    RunConfig {
        servers: plan.servers.clone(),
        connections: args.connections,
        window: args.window,
        mode: if args.rate_per_s.is_some() {
            "open".into()
        } else {
            "closed".into()
        },
        rate_per_s: args.rate_per_s,
        warmup_s: args.warmup.as_secs_f64(),
        duration_s: args.ops.is_none().then_some(args.duration.as_secs_f64()),
        ops_target: args.ops,
        value_size_bytes: args.value_size_bytes,
        read_pct: args.read_pct,
        keys: args.keys,
        children: args.children,
        watchers: args.watchers,
        seed: args.seed,
        threads: args.threads,
        run_dir: plan.layout.run_dir.clone(),
    }
}

/// Prints the summary and writes the JSON report where `--json` says.
fn emit(args: &BenchArgs, report: &Report) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("encoding the report")?;
    let summary = report.summary();
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            std::io::stderr().write_all(summary.as_bytes())?;
            writeln!(std::io::stdout(), "{json}")?;
        }
        Some(path) => {
            std::fs::write(path, format!("{json}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            std::io::stdout().write_all(summary.as_bytes())?;
        }
        None => std::io::stdout().write_all(summary.as_bytes())?,
    }
    Ok(())
}

/// CPU seconds (user + system) this process used so far, from `/proc/self/stat`; 0 where that
/// file does not exist. Assumes the Linux USER_HZ of 100 ticks per second.
fn process_cpu_seconds() -> f64 {
    const TICKS_PER_SECOND: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let Some(after_name) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}
