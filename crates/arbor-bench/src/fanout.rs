//! Watch fan-out: `--watchers` sessions each leave an exists-watch on one node, another session
//! writes it once, and we time until every watcher has its notification. One round per
//! operation; watches are one-shot, so each round registers them again.

use std::io::Write as _;
use std::time::Duration;

use arbor_proto::{ExistsRequest, Request, SetDataRequest};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::Plan;
use crate::latency::LatencyRecorder;
use crate::report::Report;
use crate::session::{Incoming, Session, SessionError, SessionOptions};
use crate::setup::connect_all;

/// Longest a round may take (registering every watch, or delivering every notification).
pub const ROUND_TIMEOUT: Duration = Duration::from_secs(120);

/// The round number that tells watchers to close their sessions.
const ROUND_CLOSE: u64 = u64::MAX;

#[derive(Debug)]
enum WatcherReport {
    Registered,
    Notified(Instant),
    Failed(SessionError),
}

async fn watcher(
    mut session: Session<()>,
    node: String,
    mut rounds: watch::Receiver<u64>,
    reports: mpsc::Sender<WatcherReport>,
) {
    let mut incoming = Vec::new();
    while rounds.changed().await.is_ok() {
        let round = *rounds.borrow_and_update();
        if round == ROUND_CLOSE {
            let _ = session.close(()).await;
            return;
        }
        let result = async {
            let request = Request::Exists(ExistsRequest {
                path: node.clone(),
                watch: true,
            });
            session.send(&request, ())?;
            let mut registered = false;
            loop {
                session.poll(None, &mut incoming).await?;
                for message in incoming.drain(..) {
                    match message {
                        Incoming::Reply { .. } => {
                            registered = true;
                            let _ = reports.send(WatcherReport::Registered).await;
                        }
                        Incoming::Watch { event, received_at } if event.path == node => {
                            debug_assert!(registered, "notified before the watch was set");
                            return Ok::<Instant, SessionError>(received_at);
                        }
                        Incoming::Watch { .. } => {}
                    }
                }
            }
        }
        .await;
        let report = match result {
            Ok(at) => WatcherReport::Notified(at),
            Err(error) => WatcherReport::Failed(error),
        };
        let failed = matches!(report, WatcherReport::Failed(_));
        let _ = reports.send(report).await;
        if failed {
            return;
        }
    }
}

/// Why a fan-out run failed.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// A session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A round did not complete in [`ROUND_TIMEOUT`].
    #[error("round {round}: only {heard} of {expected} watchers {what} within {ROUND_TIMEOUT:?}")]
    Timeout {
        /// The round.
        round: u64,
        /// Registered or notified.
        what: &'static str,
        /// How many did.
        heard: u32,
        /// How many should have.
        expected: u32,
    },
}

async fn collect(
    reports: &mut mpsc::Receiver<WatcherReport>,
    expected: u32,
    round: u64,
    registering: bool,
    mut on_notified: impl FnMut(Instant),
) -> Result<(), FanoutError> {
    let deadline = Instant::now() + ROUND_TIMEOUT;
    let what = if registering {
        "registered"
    } else {
        "notified"
    };
    let mut heard = 0;
    while heard < expected {
        let report = tokio::time::timeout_at(deadline, reports.recv()).await;
        match report {
            Ok(Some(WatcherReport::Registered)) if registering => heard += 1,
            Ok(Some(WatcherReport::Notified(at))) if !registering => {
                on_notified(at);
                heard += 1;
            }
            Ok(Some(WatcherReport::Failed(error))) => return Err(error.into()),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                return Err(FanoutError::Timeout {
                    round,
                    what,
                    heard,
                    expected,
                });
            }
        }
    }
    Ok(())
}

/// Runs the fan-out workload (setup already done) and fills `report`.
///
/// # Errors
/// [`FanoutError`].
pub async fn run_fanout(plan: &Plan, report: &mut Report) -> Result<(), FanoutError> {
    let options = SessionOptions {
        window: 2,
        ..plan.session.clone()
    };
    let sessions: Vec<Session<()>> = connect_all(&plan.servers, plan.watchers, &options).await?;
    let mut writer: Session<()> = Session::connect(&plan.servers[0], &options).await?;
    let (rounds_tx, rounds_rx) = watch::channel(0u64);
    let (reports_tx, mut reports) = mpsc::channel(plan.watchers as usize * 2);
    let mut tasks = JoinSet::new();
    for session in sessions {
        tasks.spawn(watcher(
            session,
            plan.layout.fanout_node.clone(),
            rounds_rx.clone(),
            reports_tx.clone(),
        ));
    }
    drop(reports_tx);
    let warmup_rounds = u64::from(!plan.warmup.is_zero());
    let mut rounds_recorder = LatencyRecorder::new();
    let mut per_watcher = LatencyRecorder::new();
    let mut measured_time = Duration::ZERO;
    let mut round = 0u64;
    let mut incoming = Vec::new();
    let started = Instant::now();
    loop {
        let measured_rounds = round.saturating_sub(warmup_rounds);
        let finished = match plan.ops {
            Some(ops) => measured_rounds >= ops,
            None => measured_rounds > 0 && measured_time >= plan.duration,
        };
        if finished {
            break;
        }
        round += 1;
        let measured = round > warmup_rounds;
        let _ = rounds_tx.send(round);
        collect(&mut reports, plan.watchers, round, true, |_| {}).await?;
        let write_at = Instant::now();
        writer.send(
            &Request::SetData(SetDataRequest {
                path: plan.layout.fanout_node.clone(),
                data: Some(plan.value.clone()),
                version: -1,
            }),
            (),
        )?;
        writer.flush().await?;
        let mut last = write_at;
        collect(&mut reports, plan.watchers, round, false, |at| {
            if measured {
                per_watcher.record(at.saturating_duration_since(write_at));
            }
            last = last.max(at);
        })
        .await?;
        while writer.outstanding() > 0 {
            writer.poll(None, &mut incoming).await?;
            for message in incoming.drain(..) {
                if let Incoming::Reply { header, .. } = message
                    && header.err != 0
                {
                    report.count_errors(header.err, 1);
                }
            }
        }
        if measured {
            let round_time = last - write_at;
            rounds_recorder.record(round_time);
            measured_time += round_time;
            report.ops += 1;
            report.notifications += u64::from(plan.watchers);
        }
        if plan.progress {
            let _ = writeln!(
                std::io::stderr(),
                "round {round}{}: {} watchers notified in {:.2} ms",
                if measured { "" } else { " (warm-up)" },
                plan.watchers,
                (last - write_at).as_secs_f64() * 1e3
            );
        }
    }
    let _ = rounds_tx.send(ROUND_CLOSE);
    while tasks.join_next().await.is_some() {}
    let _ = writer.close(()).await;
    report.warmup_ops = warmup_rounds.min(round);
    report.latency = rounds_recorder.summary();
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.ops_per_s = if measured_time.is_zero() {
        0.0
    } else {
        report.notifications as f64 / measured_time.as_secs_f64()
    };
    let watchers = per_watcher.summary();
    report
        .extra
        .insert("watcher_p50_ms".into(), watchers.p50_us / 1e3);
    report
        .extra
        .insert("watcher_p99_ms".into(), watchers.p99_us / 1e3);
    report
        .extra
        .insert("watcher_max_ms".into(), watchers.max_us / 1e3);
    Ok(())
}
