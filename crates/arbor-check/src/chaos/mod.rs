//! A chaos run: a cluster of real processes, concurrent clients recording every operation,
//! the nemesis on a seeded schedule; then heal, settle, check every history and report.
//!
//! The clients are the `zookeeper-client` crate (a client we did not write, with
//! ZooKeeper's semantics: FIFO per session, automatic reconnection within the session), so the
//! same workloads run against arbor and Apache ZooKeeper unchanged.

pub mod nemesis;
pub mod workloads;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::checks;
use crate::cluster::{Cluster, NodeId, Target, connect_with};
use crate::history::{At, Clock, Op, Process, Recorder};
use crate::linearizability::{Budget, Model, Verdict, check, render};
use crate::models::{Queue, QueueInput, QueueOutput, Sequence, Znode, ZnodeInput, ZnodeOutput};
use nemesis::{Fault, FaultKind};
use workloads::Context;

/// Roughly the most memory one key's search may use.
const SEARCH_MEMORY_BYTES_MAX: u64 = 1 << 30;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The servers.
    pub target: Target,
    /// Nodes (3 or 5).
    pub nodes: NodeId,
    /// Length of the fault phase.
    pub duration: Duration,
    /// The faults the nemesis draws from.
    pub nemesis: Vec<FaultKind>,
    /// Seeds the schedule and every worker's choices.
    pub seed: u64,
    /// Where the nodes keep their data and logs (a temporary directory if `None`, removed
    /// after a passing run).
    pub dir: Option<PathBuf>,
    /// Broken mode: register reads recorded as "after sync" skip the sync, workers pinned to
    /// one server each, only the register workload runs. The checker must object.
    pub skip_sync: bool,
    /// The servers make every read linearizable (arbor's `linearizable_reads`): plain reads
    /// are then checked as linearizable too.
    pub linearizable_reads: bool,
    /// Register keys.
    pub keys: usize,
    /// Register workers.
    pub register_workers: u32,
    /// Report an ephemeral seen after its client was told "session expired" as a known
    /// issue instead of a violation (the arbor bug in VERIFICATION.md, Findings 1).
    pub known_early_expiry: bool,
}

/// Operation counts of one workload.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Answered.
    pub ok: u64,
    /// Outcome unknown (timeout, lost connection).
    pub indeterminate: u64,
}

/// A run's outcome.
#[derive(Debug)]
pub struct Outcome {
    /// Whether every check passed.
    pub passed: bool,
    /// Violations, readable.
    pub problems: Vec<String>,
    /// Checks that could not decide (search budget exhausted).
    pub undecided: Vec<String>,
    /// Violations of a known, reported bug that the run was told not to fail on.
    pub known: Vec<String>,
    /// The faults.
    pub faults: Vec<Fault>,
    /// Per workload.
    pub counts: BTreeMap<&'static str, Counts>,
}

fn count<I, O>(ops: &[Op<I, O>]) -> Counts {
    let indeterminate = ops.iter().filter(|op| op.is_indeterminate()).count() as u64;
    Counts {
        ok: ops.len() as u64 - indeterminate,
        indeterminate,
    }
}

fn take<T: Clone>(shared: &Arc<Mutex<Vec<T>>>) -> Vec<T> {
    shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Runs the whole thing and prints as it goes.
///
/// # Errors
/// The harness itself failed (a node that does not start, a final read that cannot be made):
/// no verdict.
pub async fn run(options: Options) -> anyhow::Result<Outcome> {
    let temp = tempfile::Builder::new().prefix("arbor-chaos-").tempdir()?;
    let dir = options
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    println!(
        "chaos: target {} nodes {} duration {}s nemesis {} seed {} dir {}",
        options.target.name(),
        options.nodes,
        options.duration.as_secs(),
        options
            .nemesis
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        options.seed,
        dir.display()
    );
    let mut cluster = Cluster::start(
        options.target.clone(),
        options.nodes,
        &dir,
        (options.seed % 900) as u16,
    )
    .await?;
    println!("cluster up: {}", cluster.connect_string());
    let outcome = drive(&options, &mut cluster, &dir).await;
    cluster.stop().await;
    let outcome = outcome?;
    if options.dir.is_some() {
        println!("node logs and histories in {}", dir.display());
    } else if !outcome.passed {
        // Keep the logs of a failing run.
        let kept = temp.keep();
        println!("node logs and histories kept in {}", kept.display());
    }
    Ok(outcome)
}

async fn drive(
    options: &Options,
    cluster: &mut Cluster,
    dir: &std::path::Path,
) -> anyhow::Result<Outcome> {
    let clock = Clock::start();
    let stop = CancellationToken::new();
    let servers: Vec<String> = cluster
        .ids()
        .iter()
        .map(|&id| cluster.client_address(id).to_string())
        .collect();
    let context = Context {
        clock,
        connect_string: cluster.connect_string(),
        servers,
        stop: stop.clone(),
        seed: options.seed,
        skip_sync: options.skip_sync,
    };
    let admin = connect_with(&context.connect_string, workloads::SESSION_TIMEOUT).await?;
    workloads::prepare(&admin).await?;

    let registers: workloads::RegisterRecorder = Recorder::new(clock);
    let sequence = Recorder::new(clock);
    let names = Arc::new(Mutex::new(Vec::new()));
    let queue = Recorder::new(clock);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let holdings = Arc::new(Mutex::new(Vec::new()));
    let lives = Arc::new(Mutex::new(Vec::new()));
    let watch_logs = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for worker in 0..options.register_workers {
        tasks.push(tokio::spawn(workloads::register_worker(
            context.clone(),
            registers.clone(),
            worker,
            options.keys,
        )));
    }
    if !options.skip_sync {
        for worker in 0..2 {
            tasks.push(tokio::spawn(workloads::sequence_worker(
                context.clone(),
                sequence.clone(),
                names.clone(),
                worker,
            )));
        }
        // One producer: concurrent enqueues would leave their order open until the items are
        // dequeued, which with a backlog makes the search exponential (see VERIFICATION.md).
        for worker in 0..3 {
            tasks.push(tokio::spawn(workloads::queue_worker(
                context.clone(),
                queue.clone(),
                attempts.clone(),
                worker,
                worker == 0,
            )));
        }
        for worker in 0..3 {
            tasks.push(tokio::spawn(workloads::lock_worker(
                context.clone(),
                holdings.clone(),
                worker,
            )));
        }
        for worker in 0..2 {
            tasks.push(tokio::spawn(workloads::session_worker(
                context.clone(),
                lives.clone(),
                worker,
            )));
            tasks.push(tokio::spawn(workloads::watch_worker(
                context.clone(),
                watch_logs.clone(),
                worker,
            )));
        }
    }
    let timer = {
        let stop = stop.clone();
        let duration = options.duration;
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            stop.cancel();
        })
    };
    let faults = nemesis::run(cluster, &options.nemesis, options.seed, clock, stop.clone()).await;
    stop.cancel();
    timer.abort();
    let faults = faults?;
    println!("faults over at {}: healing and settling", clock.now());
    cluster.restore().await?;
    cluster.wait_for_leader(Duration::from_secs(60)).await?;
    for task in tasks {
        // Workers finish their current request (bounded) and stop.
        let _ = tokio::time::timeout(Duration::from_secs(60), task).await;
    }

    // Final observations, after a sync.
    let reader = connect_with(&context.connect_string, workloads::SESSION_TIMEOUT).await?;
    workloads::final_register_reads(&reader, &registers, options.keys).await?;
    let final_names =
        workloads::children_after_sync(&reader, &workloads::sequence_parent()).await?;
    {
        let process = Process {
            worker: u32::MAX,
            session_id: reader.session_id().0,
        };
        let pending = queue.invoke(process, QueueInput::ReadAll);
        let items = workloads::read_queue(&reader).await?;
        queue.complete(pending, process.session_id, QueueOutput::Items(items));
    }
    println!("final reads done at {}: checking", clock.now());

    let mut problems = Vec::new();
    let mut undecided = Vec::new();
    let mut known = Vec::new();
    let mut counts = BTreeMap::new();
    let budget = Budget::default();

    // Registers: per key, linearizable part and sequentially consistent part.
    let register_ops = registers.snapshot();
    counts.insert("register", count(&register_ops));
    type KeyHistory = (Vec<Op<ZnodeInput, ZnodeOutput>>, Vec<i64>);
    let mut by_key: BTreeMap<usize, KeyHistory> = BTreeMap::new();
    for op in register_ops {
        let (key, input) = op.input;
        let (output, zxid) = match op.output {
            Some((output, zxid)) => (Some(output), zxid),
            None => (None, -1),
        };
        let (ops, zxids) = by_key.entry(key).or_default();
        ops.push(Op {
            id: op.id,
            process: op.process,
            call: op.call,
            ret: op.ret,
            input,
            output,
        });
        zxids.push(zxid);
    }
    // arbor answers `sync` with a ReadIndex round, so a read after it is linearizable.
    // ZooKeeper's `sync` is not a quorum operation (a follower still following a deposed
    // leader can answer it), and its documentation promises sequential consistency only:
    // there, reads after sync are checked as sequentially consistent (see VERIFICATION.md).
    let synced_reads_linearizable = matches!(options.target, Target::Arbor { .. });
    for (key, (ops, zxids)) in &by_key {
        let path = workloads::register_path(*key);
        let linearizable: Vec<_> = ops
            .iter()
            .filter(|op| match op.input {
                ZnodeInput::Read { synced: false } => options.linearizable_reads,
                ZnodeInput::Read { synced: true } => synced_reads_linearizable,
                _ => true,
            })
            .cloned()
            .collect();
        judge(
            dir,
            &path,
            &Znode::new(None),
            &linearizable,
            budget,
            &mut problems,
            &mut undecided,
        );
        if synced_reads_linearizable {
            problems.extend(checks::sequential_reads(&path, ops, zxids, None));
        } else {
            // ZooKeeper: every read, after sync or not, as sequentially consistent.
            let relabelled: Vec<_> = ops
                .iter()
                .cloned()
                .map(|mut op| {
                    if let ZnodeInput::Read { synced: true } = op.input {
                        op.input = ZnodeInput::Read { synced: false };
                    }
                    op
                })
                .collect();
            problems.extend(checks::sequential_reads(&path, &relabelled, zxids, None));
        }
    }

    if !options.skip_sync {
        let sequence_ops = sequence.snapshot();
        counts.insert("sequential", count(&sequence_ops));
        let parent = workloads::sequence_parent();
        // Each create of unknown outcome either made one of the children nobody was told
        // about or nothing: there can be no more such children than such creates. Past that,
        // the acknowledged creates alone must have increasing numbers in real-time order
        // (the relaxed model: gaps are the unknown creates), which keeps the search linear.
        let unknown = sequence_ops
            .iter()
            .filter(|op| op.is_indeterminate())
            .count();
        let names = take(&names);
        let told: std::collections::BTreeSet<&str> =
            names.iter().map(|(_, name)| name.as_str()).collect();
        let untold = final_names
            .iter()
            .filter(|name| !told.contains(name.as_str()))
            .count();
        if untold > unknown {
            problems.push(format!(
                "{parent}: {untold} children nobody was told about, but only {unknown} creates of unknown outcome"
            ));
        }
        let acknowledged: Vec<_> = sequence_ops
            .iter()
            .filter(|op| !op.is_indeterminate())
            .cloned()
            .collect();
        judge(
            dir,
            &parent,
            &Sequence::default().relaxed(),
            &acknowledged,
            budget,
            &mut problems,
            &mut undecided,
        );
        problems.extend(checks::unique_names(&parent, &names, &final_names));

        let queue_ops = queue.snapshot();
        counts.insert("queue", count(&queue_ops));
        let queue_ops = workloads::resolve_queue(queue_ops, &take(&attempts));
        judge(
            dir,
            "/chaos/queue",
            &Queue::default(),
            &queue_ops,
            budget,
            &mut problems,
            &mut undecided,
        );

        let holdings = take(&holdings);
        counts.insert(
            "lock",
            Counts {
                ok: holdings.len() as u64,
                indeterminate: 0,
            },
        );
        problems.extend(checks::mutual_exclusion("/chaos/lock", &holdings));

        let lives = take(&lives);
        counts.insert(
            "session",
            Counts {
                ok: lives.len() as u64,
                indeterminate: 0,
            },
        );
        for problem in checks::session_semantics(&lives) {
            if options.known_early_expiry && problem.contains("outlived its session (Expired") {
                known.push(problem);
            } else {
                problems.push(problem);
            }
        }

        let watch_logs = take(&watch_logs);
        let reads: usize = watch_logs
            .iter()
            .map(|(_, seen)| {
                seen.iter()
                    .filter(|s| matches!(s, checks::WatchSeen::Read { .. }))
                    .count()
            })
            .sum();
        counts.insert(
            "watch",
            Counts {
                ok: reads as u64,
                indeterminate: 0,
            },
        );
        for (process, seen) in &watch_logs {
            problems.extend(checks::watch_delivery("/chaos/watch", *process, seen));
        }
    }

    let passed = problems.is_empty();
    let outcome = Outcome {
        passed,
        problems,
        undecided,
        known,
        faults,
        counts,
    };
    print_report(options, &outcome, clock.now());
    Ok(outcome)
}

fn judge<M: Model>(
    dir: &std::path::Path,
    key: &str,
    model: &M,
    ops: &[Op<M::Input, M::Output>],
    budget: Budget,
    problems: &mut Vec<String>,
    undecided: &mut Vec<String>,
) {
    // The search cache holds a bit per operation for every state it visits: bound the steps
    // so that it stays within SEARCH_MEMORY_BYTES_MAX (an undecided key is reported as such).
    let per_step_bytes = (ops.len() as u64 / 8 + 128).max(1);
    let budget = Budget {
        steps_max: budget
            .steps_max
            .min(SEARCH_MEMORY_BYTES_MAX / per_step_bytes)
            .max(100_000),
        ..budget
    };
    let file = dir.join(format!("history{}.txt", key.replace('/', "-")));
    let text: String = ops.iter().map(|op| format!("{op}\n")).collect();
    let _ = std::fs::write(file, text);
    let started = std::time::Instant::now();
    let verdict = check(model, ops, budget);
    println!(
        "checked {key} ({}, {} ops) in {} ms",
        model.name(),
        ops.len(),
        started.elapsed().as_millis()
    );
    match verdict {
        Verdict::Linearizable => {}
        Verdict::RelaxedOnly { steps } => undecided.push(format!(
            "{key}: exact search gave up after {steps} steps; the relaxed model accepts ({} ops)",
            ops.len()
        )),
        Verdict::Unknown { steps } => undecided.push(format!(
            "{key}: search gave up after {steps} steps ({} ops): NOT CHECKED",
            ops.len()
        )),
        Verdict::Violation(violation) => problems.push(render(key, model.name(), &violation)),
    }
}

fn print_report(options: &Options, outcome: &Outcome, end: At) {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\n==== chaos report (seed {}, ended {end}) ====",
        options.seed
    );
    let _ = writeln!(text, "operations:");
    let mut total = Counts::default();
    for (workload, counts) in &outcome.counts {
        let _ = writeln!(
            text,
            "  {workload:<11} {:>7} ok {:>6} indeterminate",
            counts.ok, counts.indeterminate
        );
        total.ok += counts.ok;
        total.indeterminate += counts.indeterminate;
    }
    let _ = writeln!(
        text,
        "  {:<11} {:>7} ok {:>6} indeterminate",
        "total", total.ok, total.indeterminate
    );
    let _ = writeln!(text, "faults ({}):", outcome.faults.len());
    let mut by_kind: BTreeMap<FaultKind, Vec<Option<Duration>>> = BTreeMap::new();
    for fault in &outcome.faults {
        by_kind.entry(fault.kind).or_default().push(fault.recovery);
    }
    for (kind, recoveries) in &by_kind {
        let mut known: Vec<u128> = recoveries
            .iter()
            .flatten()
            .map(Duration::as_millis)
            .collect();
        known.sort_unstable();
        let unrecovered = recoveries.len() - known.len();
        let summary = if known.is_empty() {
            "no recovery measured".to_owned()
        } else {
            format!(
                "recovery ms min {} median {} max {}",
                known[0],
                known[known.len() / 2],
                known[known.len() - 1]
            )
        };
        let _ = writeln!(
            text,
            "  {kind:<10} x{:<3} {summary}{}",
            recoveries.len(),
            if unrecovered > 0 {
                format!(
                    ", {unrecovered} NOT RECOVERED within {:?}",
                    nemesis::RECOVERY_WAIT
                )
            } else {
                String::new()
            }
        );
    }
    for line in &outcome.known {
        let _ = writeln!(text, "KNOWN ISSUE (not counted): {line}");
    }
    for line in &outcome.undecided {
        let _ = writeln!(text, "undecided: {line}");
    }
    for problem in &outcome.problems {
        let _ = writeln!(text, "VIOLATION: {problem}");
    }
    let unrecovered = outcome.faults.iter().any(|f| f.recovery.is_none());
    let verdict = if !outcome.passed {
        "FAIL (violations found)"
    } else if !outcome.undecided.is_empty() || unrecovered || !outcome.known.is_empty() {
        "PASS with reservations (see above)"
    } else {
        "PASS"
    };
    let _ = writeln!(text, "verdict: {verdict}");
    if !outcome.passed {
        let _ = writeln!(text, "replay: {}", replay_command(options));
    }
    println!("{text}");
}

/// The command that replays a run's schedule and choices (timing differs, so a replay
/// reproduces the fault sequence, not necessarily the same interleaving).
pub fn replay_command(options: &Options) -> String {
    let mut command = format!(
        "arbor-check chaos --nodes {} --duration {}s --nemesis {} --seed {}",
        options.nodes,
        options.duration.as_secs(),
        options
            .nemesis
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        options.seed
    );
    if matches!(options.target, Target::ZooKeeper) {
        command.push_str(" --target zookeeper");
    }
    if options.skip_sync {
        command.push_str(" --broken-skip-sync");
    }
    if options.linearizable_reads {
        command.push_str(" --linearizable-reads");
    }
    if options.known_early_expiry {
        command.push_str(" --known-early-expiry");
    }
    command
}
