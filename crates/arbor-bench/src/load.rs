//! The request/response workloads (create, set, get, mixed, exists-watch, children): N
//! connections, each keeping a bounded window of requests outstanding, closed or open loop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::Plan;
use crate::latency::LatencyRecorder;
use crate::report::Report;
use crate::schedule::{OpenLoopSchedule, latency};
use crate::session::{Incoming, Session, SessionError};
use crate::setup::{Progress, connect_all, with_progress};
use crate::workload::{OpClass, OpGenerator};

/// How long the last outstanding requests may take once sending stopped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Pause between connecting and the first request, so all connections start together.
const START_DELAY: Duration = Duration::from_millis(20);

/// What rides along with each request.
#[derive(Debug, Clone, Copy)]
pub struct Tag {
    /// When the request was meant to be sent (latency counts from here).
    pub intended: Instant,
    /// Read or write.
    pub class: OpClass,
}

/// The measurement window and the op budget, shared by all connections.
#[derive(Debug)]
pub struct Phases {
    /// Nothing is sent before this (all connections start together).
    pub start: Instant,
    /// Requests meant to be sent before this are warm-up and not counted.
    pub measure_start: Instant,
    /// Requests meant to be sent from here on are not sent (duration mode).
    pub end: Option<Instant>,
    /// Measured requests left to send (op-count mode).
    pub budget: Option<AtomicU64>,
    /// Set when a connection failed: the others stop sending.
    pub abort: AtomicBool,
}

impl Phases {
    /// Whether a request meant to be sent at `intended` is measured (true) or warm-up (false);
    /// `None` when it must not be sent at all (past the end, or the budget is spent).
    pub fn admit(&self, intended: Instant) -> Option<bool> {
        if self.abort.load(Ordering::Relaxed) {
            return None;
        }
        if self.end.is_some_and(|end| intended >= end) {
            return None;
        }
        if intended < self.measure_start {
            return Some(false);
        }
        if let Some(budget) = &self.budget {
            let claimed = budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
            if !claimed {
                return None;
            }
        }
        Some(true)
    }
}

/// What one connection measured.
#[derive(Debug, Default)]
pub struct ConnectionOutcome {
    /// Read latencies.
    pub reads: LatencyRecorder,
    /// Write latencies.
    pub writes: LatencyRecorder,
    /// Error replies by code.
    pub errors: BTreeMap<i32, u64>,
    /// Completed measured requests.
    pub ops: u64,
    /// Completed requests that were not measured (warm-up, or sent past the end).
    pub warmup_ops: u64,
    /// Watch events received.
    pub notifications: u64,
    /// Latest completion of a measured request.
    pub last_completion: Option<Instant>,
    /// Open loop: requests due but unsent when sending stopped.
    pub backlog: u64,
}

/// Drives one connection until the phases say stop and its window drained.
///
/// # Errors
/// The session's failure, or [`SessionError::Silent`] if the drain exceeds
/// [`DRAIN_TIMEOUT`].
pub async fn drive_connection(
    mut session: Session<Tag>,
    mut ops: OpGenerator,
    mut schedule: Option<OpenLoopSchedule>,
    phases: Arc<Phases>,
    progress: Arc<Progress>,
) -> Result<ConnectionOutcome, SessionError> {
    let mut outcome = ConnectionOutcome::default();
    let mut incoming = Vec::new();
    let mut measured_sends: u64 = 0;
    let mut drain_deadline: Option<Instant> = None;
    tokio::time::sleep_until(phases.start).await;
    loop {
        let now = Instant::now();
        if drain_deadline.is_none() {
            while session.can_send() {
                let intended = match schedule.as_mut() {
                    Some(schedule) => {
                        if schedule.next_at() > now {
                            break;
                        }
                        schedule.next_at()
                    }
                    None => now,
                };
                let Some(measured) = phases.admit(intended) else {
                    drain_deadline = Some(now + DRAIN_TIMEOUT);
                    if let Some(schedule) = &schedule {
                        let stop = phases.end.map_or(now, |end| end.min(now));
                        outcome.backlog = schedule.backlog(stop);
                    }
                    break;
                };
                if let Some(schedule) = schedule.as_mut() {
                    schedule.take_due(now);
                }
                measured_sends += u64::from(measured);
                let (request, class) = ops.next_request();
                session.send(&request, Tag { intended, class })?;
            }
        }
        if drain_deadline.is_some() && session.outstanding() == 0 {
            break;
        }
        let wake_at = match (drain_deadline, &schedule) {
            (Some(deadline), _) => {
                if now >= deadline {
                    return Err(SessionError::Silent {
                        addr: session.addr().to_owned(),
                        silent: DRAIN_TIMEOUT,
                    });
                }
                Some(deadline)
            }
            (None, Some(schedule)) if session.can_send() => Some(schedule.next_at()),
            (None, _) if session.outstanding() == 0 => {
                // Closed loop with nothing outstanding only happens before the first send.
                Some(now + Duration::from_millis(1))
            }
            (None, _) => phases.end.filter(|end| *end > now),
        };
        session.poll(wake_at, &mut incoming).await?;
        for message in incoming.drain(..) {
            match message {
                Incoming::Reply {
                    tag,
                    header,
                    received_at,
                    ..
                } => {
                    let counted = tag.intended >= phases.measure_start
                        && phases.end.is_none_or(|end| tag.intended < end);
                    if !counted {
                        outcome.warmup_ops += 1;
                        continue;
                    }
                    let elapsed = latency(tag.intended, received_at);
                    match tag.class {
                        OpClass::Read => outcome.reads.record(elapsed),
                        OpClass::Write => outcome.writes.record(elapsed),
                    }
                    outcome.ops += 1;
                    outcome.last_completion = Some(
                        outcome
                            .last_completion
                            .map_or(received_at, |last| last.max(received_at)),
                    );
                    progress.completed.fetch_add(1, Ordering::Relaxed);
                    if header.err != 0 {
                        *outcome.errors.entry(header.err).or_default() += 1;
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Incoming::Watch { .. } => outcome.notifications += 1,
            }
        }
    }
    debug_assert!(outcome.ops <= measured_sends, "more replies than requests");
    Ok(outcome)
}

/// Runs a request/response workload on `plan` (setup already done) and fills `report`.
///
/// # Errors
/// The first connection failure.
pub async fn run_load(plan: &Plan, report: &mut Report) -> Result<(), SessionError> {
    let sessions: Vec<Session<Tag>> =
        connect_all(&plan.servers, plan.connections, &plan.session).await?;
    let start = Instant::now() + START_DELAY;
    let measure_start = start + plan.warmup;
    let phases = Arc::new(Phases {
        start,
        measure_start,
        end: match plan.ops {
            Some(_) => None,
            None => Some(measure_start + plan.duration),
        },
        budget: plan.ops.map(AtomicU64::new),
        abort: AtomicBool::new(false),
    });
    let progress = Arc::new(Progress::default());
    let per_connection_rate = plan
        .rate_per_s
        .map(|rate| rate / f64::from(plan.connections));
    let mut tasks = JoinSet::new();
    for (index, session) in sessions.into_iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let ops = OpGenerator::new(
            plan.workload,
            plan.layout.clone(),
            plan.value.clone(),
            plan.read_pct,
            index,
            plan.seed,
        );
        // Stagger the connections' schedules across one interval so the aggregate is smooth.
        let schedule = per_connection_rate.map(|rate| {
            let offset =
                Duration::from_secs_f64(f64::from(index) / f64::from(plan.connections) / rate);
            OpenLoopSchedule::new(start + offset, rate)
        });
        tasks.spawn(drive_connection(
            session,
            ops,
            schedule,
            Arc::clone(&phases),
            Arc::clone(&progress),
        ));
    }
    let phases_for_join = Arc::clone(&phases);
    let joined = with_progress(
        plan.progress,
        Arc::clone(&progress),
        measure_start,
        async move {
            let mut outcomes = Vec::new();
            let mut failure = None;
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok(Ok(outcome)) => outcomes.push(outcome),
                    Ok(Err(error)) => {
                        phases_for_join.abort.store(true, Ordering::Relaxed);
                        failure.get_or_insert(error);
                    }
                    Err(join_error) => {
                        phases_for_join.abort.store(true, Ordering::Relaxed);
                        failure.get_or_insert(SessionError::Io {
                            addr: "task".into(),
                            source: std::io::Error::other(join_error.to_string()),
                        });
                    }
                }
            }
            (outcomes, failure)
        },
    )
    .await;
    let (outcomes, failure) = joined;
    if let Some(error) = failure {
        return Err(error);
    }
    let mut reads = LatencyRecorder::new();
    let mut writes = LatencyRecorder::new();
    let mut last_completion = measure_start;
    for outcome in &outcomes {
        reads.merge(&outcome.reads);
        writes.merge(&outcome.writes);
        report.ops += outcome.ops;
        report.warmup_ops += outcome.warmup_ops;
        report.notifications += outcome.notifications;
        report.backlog_at_end += outcome.backlog;
        for (&code, &count) in &outcome.errors {
            report.count_errors(code, count);
        }
        if let Some(last) = outcome.last_completion {
            last_completion = last_completion.max(last);
        }
    }
    let mut all = reads.clone();
    all.merge(&writes);
    report.latency = all.summary();
    if reads.count() > 0 && writes.count() > 0 {
        report.reads = Some(reads.summary());
        report.writes = Some(writes.summary());
    }
    report.elapsed_s = (last_completion - measure_start).as_secs_f64();
    report.ops_per_s = if report.elapsed_s > 0.0 {
        report.ops as f64 / report.elapsed_s
    } else {
        0.0
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases(budget: Option<u64>, end: Option<Duration>) -> (Instant, Phases) {
        let start = Instant::now();
        let measure_start = start + Duration::from_secs(1);
        let phases = Phases {
            start,
            measure_start,
            end: end.map(|end| measure_start + end),
            budget: budget.map(AtomicU64::new),
            abort: AtomicBool::new(false),
        };
        (start, phases)
    }

    #[test]
    fn warm_up_requests_are_sent_unmeasured_and_spend_no_budget() {
        let (start, phases) = phases(Some(2), None);
        assert_eq!(phases.admit(start), Some(false));
        assert_eq!(phases.admit(start), Some(false));
        let measuring = start + Duration::from_secs(1);
        assert_eq!(phases.admit(measuring), Some(true));
        assert_eq!(phases.admit(measuring), Some(true));
        assert_eq!(phases.admit(measuring), None, "budget of 2 spent");
    }

    #[test]
    fn nothing_is_sent_at_or_after_the_end_or_after_an_abort() {
        let (start, phases) = phases(None, Some(Duration::from_secs(5)));
        assert_eq!(phases.admit(start + Duration::from_secs(5)), Some(true));
        assert_eq!(phases.admit(start + Duration::from_secs(6)), None);
        phases.abort.store(true, Ordering::Relaxed);
        assert_eq!(phases.admit(start + Duration::from_secs(2)), None);
    }
}
