//! Session churn: each operation is a whole session's life — connect, create an ephemeral
//! node, close — measured end to end. `--connections` loops run side by side.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arbor_proto::CreateMode;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::Plan;
use crate::latency::LatencyRecorder;
use crate::load::Phases;
use crate::report::Report;
use crate::schedule::{OpenLoopSchedule, latency};
use crate::session::{Incoming, Session, SessionError, SessionOptions};
use crate::setup::{Progress, with_progress};
use crate::workload::create_request;

/// What one churn loop measured.
#[derive(Debug, Default)]
struct ChurnOutcome {
    cycles: LatencyRecorder,
    /// Failures by name: a server error code name, or the session error's kind.
    errors: BTreeMap<String, u64>,
    ops: u64,
    warmup_ops: u64,
    last_completion: Option<Instant>,
    backlog: u64,
}

/// One connect / create ephemeral / close cycle. Returns the create's error code.
async fn cycle(
    addr: &str,
    options: &SessionOptions,
    path: String,
    value: bytes::Bytes,
) -> Result<i32, SessionError> {
    let mut session: Session<()> = Session::connect(addr, options).await?;
    session.send(&create_request(path, value, CreateMode::Ephemeral), ())?;
    let mut incoming = Vec::new();
    let err = loop {
        session.poll(None, &mut incoming).await?;
        if let Some(err) = incoming.iter().find_map(|message| match message {
            Incoming::Reply { header, .. } => Some(header.err),
            Incoming::Watch { .. } => None,
        }) {
            break err;
        }
        incoming.clear();
    };
    session.close(()).await?;
    Ok(err)
}

fn session_error_name(error: &SessionError) -> &'static str {
    match error {
        SessionError::Io { .. } => "io",
        SessionError::ConnectTimeout { .. } => "connect-timeout",
        SessionError::SessionRefused { .. } => "session-refused",
        SessionError::Closed { .. } => "closed",
        SessionError::Decode { .. } => "decode",
        SessionError::Pipeline { .. } => "protocol",
        SessionError::Silent { .. } => "silent",
    }
}

async fn churn_loop(
    slot: u32,
    plan: Arc<Plan>,
    mut schedule: Option<OpenLoopSchedule>,
    phases: Arc<Phases>,
    progress: Arc<Progress>,
) -> ChurnOutcome {
    let mut outcome = ChurnOutcome::default();
    let addr = &plan.servers[slot as usize % plan.servers.len()];
    let options = SessionOptions {
        window: 1,
        ..plan.session.clone()
    };
    let mut sequence = 0u64;
    tokio::time::sleep_until(phases.start).await;
    loop {
        let now = Instant::now();
        let intended = match schedule.as_mut() {
            Some(schedule) => {
                let next = schedule.next_at();
                if next > now {
                    tokio::time::sleep_until(next).await;
                }
                next
            }
            None => now,
        };
        let Some(measured) = phases.admit(intended) else {
            if let Some(schedule) = &schedule {
                outcome.backlog = schedule.backlog(phases.end.unwrap_or(now).min(now));
            }
            return outcome;
        };
        if let Some(schedule) = schedule.as_mut() {
            schedule.take_due(intended);
        }
        sequence += 1;
        let path = format!("{}/e{slot}-{sequence}", plan.layout.create_dir);
        let result = cycle(addr, &options, path, plan.value.clone()).await;
        let done = Instant::now();
        if !measured {
            outcome.warmup_ops += 1;
            continue;
        }
        outcome.ops += 1;
        outcome.cycles.record(latency(intended, done));
        outcome.last_completion = Some(done);
        progress.completed.fetch_add(1, Ordering::Relaxed);
        let failure = match result {
            Ok(0) => None,
            Ok(code) => Some(
                arbor_proto::ErrorCode::from_i32(code)
                    .map_or_else(|| format!("err{code}"), |c| c.name().to_owned()),
            ),
            Err(error) => Some(session_error_name(&error).to_owned()),
        };
        if let Some(name) = failure {
            *outcome.errors.entry(name).or_default() += 1;
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs the churn workload (setup already done) and fills `report`.
pub async fn run_churn(plan: &Plan, report: &mut Report) {
    let start = Instant::now() + Duration::from_millis(20);
    let measure_start = start + plan.warmup;
    let phases = Arc::new(Phases {
        start,
        measure_start,
        end: plan.ops.is_none().then(|| measure_start + plan.duration),
        budget: plan.ops.map(AtomicU64::new),
        abort: AtomicBool::new(false),
    });
    let progress = Arc::new(Progress::default());
    let shared_plan = Arc::new(plan.clone());
    let per_slot_rate = plan
        .rate_per_s
        .map(|rate| rate / f64::from(plan.connections));
    let mut tasks = JoinSet::new();
    for slot in 0..plan.connections {
        let schedule = per_slot_rate.map(|rate| {
            let offset =
                Duration::from_secs_f64(f64::from(slot) / f64::from(plan.connections) / rate);
            OpenLoopSchedule::new(start + offset, rate)
        });
        tasks.spawn(churn_loop(
            slot,
            Arc::clone(&shared_plan),
            schedule,
            Arc::clone(&phases),
            Arc::clone(&progress),
        ));
    }
    let outcomes = with_progress(plan.progress, Arc::clone(&progress), measure_start, async {
        let mut outcomes = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(outcome) = joined {
                outcomes.push(outcome);
            }
        }
        outcomes
    })
    .await;
    let mut cycles = LatencyRecorder::new();
    let mut last_completion = measure_start;
    for outcome in &outcomes {
        cycles.merge(&outcome.cycles);
        report.ops += outcome.ops;
        report.warmup_ops += outcome.warmup_ops;
        report.backlog_at_end += outcome.backlog;
        for (name, &count) in &outcome.errors {
            report.count_named_errors(name.clone(), count);
        }
        if let Some(last) = outcome.last_completion {
            last_completion = last_completion.max(last);
        }
    }
    report.latency = cycles.summary();
    report.elapsed_s = (last_completion - measure_start).as_secs_f64();
    report.ops_per_s = if report.elapsed_s > 0.0 {
        report.ops as f64 / report.elapsed_s
    } else {
        0.0
    };
}
