//! What every server-driving workload shares: opening many sessions, pipelining a batch of
//! setup requests, creating the nodes a workload needs, and the progress line.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arbor_proto::{CreateMode, ErrorCode, Request};
use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::Plan;
use crate::session::{Incoming, Session, SessionError, SessionOptions};
use crate::workload::{Layout, Workload, create_request};

/// Connects opened at the same time (a burst of 10k SYNs overflows accept backlogs, and the
/// retransmit after a drop costs a second).
pub const CONNECT_CONCURRENCY_MAX: usize = 256;

/// Window of the setup session that creates the workload's nodes.
pub const SETUP_WINDOW: usize = 512;

/// Opens `count` sessions, spread round-robin over `servers`, at most
/// [`CONNECT_CONCURRENCY_MAX`] connecting at once. Returned in connection order.
///
/// # Errors
/// The first connection that failed.
pub async fn connect_all<T: Send + 'static>(
    servers: &[String],
    count: u32,
    options: &SessionOptions,
) -> Result<Vec<Session<T>>, SessionError> {
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY_MAX));
    let mut tasks = JoinSet::new();
    for index in 0..count {
        let addr = servers[index as usize % servers.len()].clone();
        let options = options.clone();
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (index, Session::connect(&addr, &options).await)
        });
    }
    let mut sessions: Vec<Option<Session<T>>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, result) = joined.map_err(|error| SessionError::Io {
            addr: "connect task".into(),
            source: std::io::Error::other(error.to_string()),
        })?;
        sessions[index as usize] = Some(result?);
    }
    Ok(sessions.into_iter().flatten().collect())
}

/// Sends every request with the session's window full, and counts the replies by error code
/// (0 for success).
///
/// # Errors
/// Any [`SessionError`].
pub async fn pipelined(
    session: &mut Session<()>,
    requests: impl IntoIterator<Item = Request>,
) -> Result<BTreeMap<i32, u64>, SessionError> {
    let mut counts = BTreeMap::new();
    let mut requests = requests.into_iter().peekable();
    let mut incoming = Vec::new();
    while requests.peek().is_some() || session.outstanding() > 0 {
        while session.can_send() {
            let Some(request) = requests.next() else {
                break;
            };
            session.send(&request, ())?;
        }
        session.poll(None, &mut incoming).await?;
        for message in incoming.drain(..) {
            if let Incoming::Reply { header, .. } = message {
                *counts.entry(header.err).or_default() += 1;
            }
        }
    }
    Ok(counts)
}

/// Why setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The server refused to create a node the workload needs.
    #[error("creating {what} failed: {codes:?} (error code: count)")]
    Refused {
        /// What was being created.
        what: String,
        /// Replies by error code.
        codes: BTreeMap<i32, u64>,
    },
}

fn accept_created_or_existing(what: &str, codes: BTreeMap<i32, u64>) -> Result<(), SetupError> {
    let node_exists = ErrorCode::NodeExists.code();
    if codes.keys().all(|&code| code == 0 || code == node_exists) {
        Ok(())
    } else {
        Err(SetupError::Refused {
            what: what.to_owned(),
            codes,
        })
    }
}

/// Creates `path` and every missing ancestor (empty persistent nodes).
///
/// # Errors
/// [`SetupError`].
pub async fn ensure_path(session: &mut Session<()>, path: &str) -> Result<(), SetupError> {
    let mut prefix = String::new();
    for part in path.split('/').filter(|part| !part.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        let request = create_request(prefix.clone(), Bytes::new(), CreateMode::Persistent);
        let codes = pipelined(session, [request]).await?;
        accept_created_or_existing(&prefix, codes)?;
    }
    Ok(())
}

/// Creates the nodes `plan.workload` needs. Returns how long it took.
///
/// # Errors
/// [`SetupError`].
pub async fn prepare(plan: &Plan) -> Result<Duration, SetupError> {
    let started = Instant::now();
    let options = SessionOptions {
        window: SETUP_WINDOW,
        ..plan.session.clone()
    };
    let mut session = Session::connect(&plan.servers[0], &options).await?;
    let layout: &Layout = &plan.layout;
    ensure_path(&mut session, &layout.run_dir).await?;
    match plan.workload {
        workload if workload.needs_keys() => {
            ensure_path(&mut session, &layout.keys_dir).await?;
            let value = plan.value.clone();
            let keys = layout
                .keys
                .iter()
                .map(|path| create_request(path.clone(), value.clone(), CreateMode::Persistent));
            let codes = pipelined(&mut session, keys).await?;
            accept_created_or_existing("keys", codes)?;
        }
        Workload::Children => {
            ensure_path(&mut session, &layout.children_dir).await?;
            let dir = layout.children_dir.clone();
            let children = (0..plan.children).map(|index| {
                let path = format!("{dir}/{}", Layout::child_name(index));
                create_request(path, Bytes::new(), CreateMode::Persistent)
            });
            let codes = pipelined(&mut session, children).await?;
            accept_created_or_existing("children", codes)?;
        }
        Workload::Create | Workload::Churn => {
            ensure_path(&mut session, &layout.create_dir).await?;
        }
        Workload::Fanout => {
            let node = create_request(
                layout.fanout_node.clone(),
                plan.value.clone(),
                CreateMode::Persistent,
            );
            let codes = pipelined(&mut session, [node]).await?;
            accept_created_or_existing("fan-out node", codes)?;
        }
        _ => {}
    }
    session.close(()).await?;
    Ok(started.elapsed())
}

/// Counters the connections bump and the progress line reads.
#[derive(Debug, Default)]
pub struct Progress {
    /// Operations completed in the measured interval.
    pub completed: AtomicU64,
    /// Of those, errors.
    pub errors: AtomicU64,
}

/// Prints a progress line to stderr every second until `done` resolves; returns its output.
pub async fn with_progress<F: Future>(
    enabled: bool,
    progress: Arc<Progress>,
    measure_start: Instant,
    done: F,
) -> F::Output {
    let mut done = std::pin::pin!(done);
    if !enabled {
        return done.await;
    }
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut previous = 0u64;
    loop {
        tokio::select! {
            output = &mut done => {
                if terminal {
                    let _ = writeln!(std::io::stderr());
                }
                return output;
            }
            _ = ticker.tick() => {
                let now = Instant::now();
                let completed = progress.completed.load(Ordering::Relaxed);
                let errors = progress.errors.load(Ordering::Relaxed);
                let phase = if now < measure_start { "warm-up" } else { "measure" };
                let line = format!(
                    "[{:>6.1}s] {phase:<7} ops {completed:>10}  {:>9} ops/s  errors {errors}",
                    (now - started).as_secs_f64(),
                    completed - previous,
                );
                previous = completed;
                let mut stderr = std::io::stderr().lock();
                let _ = if terminal {
                    write!(stderr, "\r{line}")
                } else {
                    writeln!(stderr, "{line}")
                };
                let _ = stderr.flush();
            }
        }
    }
}
