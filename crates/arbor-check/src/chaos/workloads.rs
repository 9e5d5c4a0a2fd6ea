//! The clients of a chaos run. Each workload runs workers until the run's stop token fires,
//! recording every invocation and completion; what a check needs at the end (a final read)
//! is taken by [`finish`] once the cluster is healed.
//!
//! Every request is bounded by [`OP_TIMEOUT`]: a write that times out or loses its connection
//! is indeterminate; a read that fails had no effect and is forgotten.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

use crate::checks::{Holding, HoldingEnd, SessionEnd, SessionLife, WatchSeen};
use crate::cluster::connect_with;
use crate::history::{At, Clock, Process, Recorder};
use crate::models::{
    QueueInput, QueueOutput, SequenceInput, SequenceOutput, ZnodeInput, ZnodeOutput,
};

/// Bound on one request.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// The workers' session timeout.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the run's nodes live.
pub const ROOT: &str = "/chaos";

/// What the workers share.
#[derive(Clone)]
pub struct Context {
    /// The run's clock.
    pub clock: Clock,
    /// Every node.
    pub connect_string: String,
    /// Each node alone (a worker pinned to one server).
    pub servers: Vec<String>,
    /// Fires at the end of the fault phase.
    pub stop: CancellationToken,
    /// The run's seed (each worker derives its own generator).
    pub seed: u64,
    /// Broken mode: reads recorded as "after sync" skip the sync, and register workers are
    /// pinned to one server each (for the test that the checker catches stale reads).
    pub skip_sync: bool,
}

impl Context {
    fn rng(&self, workload: u64, worker: u32) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(
            self.seed ^ workload.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(worker) << 40,
        )
    }

    async fn session(&self, pinned: Option<usize>) -> Option<zk::Client> {
        let address = match pinned {
            Some(index) => self.servers[index % self.servers.len()].clone(),
            None => self.connect_string.clone(),
        };
        loop {
            if self.stop.is_cancelled() {
                return None;
            }
            match connect_with(&address, SESSION_TIMEOUT).await {
                Ok(client) => return Some(client),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The outcome of one bounded request: `Err(None)` when it timed out.
async fn bounded<T>(
    future: impl std::future::Future<Output = Result<T, zk::Error>>,
) -> Result<T, Option<zk::Error>> {
    match tokio::time::timeout(OP_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Some(error)),
        Err(_) => Err(None),
    }
}

fn session_id(client: &zk::Client) -> i64 {
    client.session_id().0
}

/// Whether a client should be replaced (its session is over).
fn dead(client: &zk::Client) -> bool {
    client.state().is_terminated()
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Creates `path` if it is missing (idempotent, retried until the stop).
async fn ensure(client: &zk::Client, path: &str) -> anyhow::Result<()> {
    for _ in 0..50 {
        match bounded(client.create(path, b"", &persistent())).await {
            Ok(_) | Err(Some(zk::Error::NodeExists)) => return Ok(()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    anyhow::bail!("cannot create {path}")
}

/// Creates the run's directories.
///
/// # Errors
/// A directory that cannot be created.
pub async fn prepare(client: &zk::Client) -> anyhow::Result<()> {
    for path in [
        ROOT.to_owned(),
        format!("{ROOT}/reg"),
        format!("{ROOT}/seq"),
        format!("{ROOT}/queue"),
        format!("{ROOT}/lock"),
        format!("{ROOT}/eph"),
        format!("{ROOT}/watch"),
    ] {
        ensure(client, &path).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Registers: create, delete, setData (blind or CAS), getData after sync or plain.

/// A register key's path.
pub fn register_path(key: usize) -> String {
    format!("{ROOT}/reg/k{key}")
}

/// Register operations: the key and the input; the output and the `mzxid` of the answer's
/// stat (-1 when the answer has none).
pub type RegisterRecorder = Recorder<(usize, ZnodeInput), (ZnodeOutput, i64)>;

fn parse_value(data: &[u8]) -> Option<u64> {
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// A register worker: random operations on `keys` registers.
pub async fn register_worker(
    context: Context,
    recorder: RegisterRecorder,
    worker: u32,
    keys: usize,
) {
    let mut rng = context.rng(1, worker);
    let pinned = context.skip_sync.then_some(worker as usize);
    let mut counter: u64 = 0;
    let mut known_version: BTreeMap<usize, i32> = BTreeMap::new();
    let Some(mut client) = context.session(pinned).await else {
        return;
    };
    while !context.stop.is_cancelled() {
        if dead(&client) {
            let Some(next) = context.session(pinned).await else {
                return;
            };
            client = next;
        }
        let key = rng.random_range(0..keys);
        let path = register_path(key);
        counter += 1;
        let value = u64::from(worker) << 32 | counter;
        let roll = rng.random_range(0..100);
        let process = Process {
            worker,
            session_id: session_id(&client),
        };
        let input = match roll {
            0..35 => ZnodeInput::Read { synced: true },
            35..50 => ZnodeInput::Read { synced: false },
            50..75 => ZnodeInput::Set {
                value,
                expected: Some(known_version.get(&key).copied().unwrap_or(0)),
            },
            75..85 => ZnodeInput::Set {
                value,
                expected: None,
            },
            85..93 => ZnodeInput::Create { value },
            _ => ZnodeInput::Delete {
                expected: rng
                    .random_bool(0.5)
                    .then(|| known_version.get(&key).copied().unwrap_or(0)),
            },
        };
        let pending = recorder.invoke(process, (key, input.clone()));
        let outcome: Result<(ZnodeOutput, i64), Option<zk::Error>> = match &input {
            ZnodeInput::Read { synced } => {
                let synced_ok = if *synced && !context.skip_sync {
                    bounded(client.sync(&path)).await.map(|_| ())
                } else {
                    Ok(())
                };
                match synced_ok {
                    Ok(()) => match bounded(client.get_data(&path)).await {
                        Ok((data, stat)) => match parse_value(&data) {
                            Some(value) => Ok((
                                ZnodeOutput::Value {
                                    value,
                                    version: stat.version,
                                },
                                stat.mzxid,
                            )),
                            None => Err(Some(zk::Error::UnexpectedError(format!(
                                "unparsable data {data:?}"
                            )))),
                        },
                        Err(Some(zk::Error::NoNode)) => Ok((ZnodeOutput::NoNode, -1)),
                        Err(error) => Err(error),
                    },
                    Err(error) => Err(error),
                }
            }
            ZnodeInput::Set { value, expected } => {
                match bounded(client.set_data(&path, value.to_string().as_bytes(), *expected)).await
                {
                    Ok(stat) => Ok((
                        ZnodeOutput::Written {
                            version: stat.version,
                        },
                        stat.mzxid,
                    )),
                    Err(Some(zk::Error::BadVersion)) => Ok((ZnodeOutput::BadVersion, -1)),
                    Err(Some(zk::Error::NoNode)) => Ok((ZnodeOutput::NoNode, -1)),
                    Err(error) => Err(error),
                }
            }
            ZnodeInput::Create { value } => {
                match bounded(client.create(&path, value.to_string().as_bytes(), &persistent()))
                    .await
                {
                    Ok((stat, _)) => Ok((ZnodeOutput::Created, stat.mzxid)),
                    Err(Some(zk::Error::NodeExists)) => Ok((ZnodeOutput::NodeExists, -1)),
                    Err(error) => Err(error),
                }
            }
            ZnodeInput::Delete { expected } => match bounded(client.delete(&path, *expected)).await
            {
                Ok(()) => Ok((ZnodeOutput::Deleted, -1)),
                Err(Some(zk::Error::BadVersion)) => Ok((ZnodeOutput::BadVersion, -1)),
                Err(Some(zk::Error::NoNode)) => Ok((ZnodeOutput::NoNode, -1)),
                Err(error) => Err(error),
            },
        };
        match outcome {
            Ok(output) => {
                match &output.0 {
                    ZnodeOutput::Value { version, .. } | ZnodeOutput::Written { version } => {
                        known_version.insert(key, *version);
                    }
                    ZnodeOutput::Created => {
                        known_version.insert(key, 0);
                    }
                    _ => {}
                }
                recorder.complete(pending, session_id(&client), output);
            }
            Err(_) if matches!(input, ZnodeInput::Read { .. }) => recorder.forget(pending),
            Err(_) => {
                recorder.indeterminate(pending);
                // A request lost with its connection: back off so a dead node is not hammered.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Sequential names.

/// The parent of the sequential creates.
pub fn sequence_parent() -> String {
    format!("{ROOT}/seq")
}

/// A sequential-create worker; acknowledged names go to `names`.
pub async fn sequence_worker(
    context: Context,
    recorder: Recorder<SequenceInput, SequenceOutput>,
    names: Arc<Mutex<Vec<(Process, String)>>>,
    worker: u32,
) {
    let mut rng = context.rng(2, worker);
    let prefix = format!("{}/n-", sequence_parent());
    let options = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let Some(mut client) = context.session(None).await else {
        return;
    };
    while !context.stop.is_cancelled() {
        if dead(&client) {
            let Some(next) = context.session(None).await else {
                return;
            };
            client = next;
        }
        let process = Process {
            worker,
            session_id: session_id(&client),
        };
        let pending = recorder.invoke(process, SequenceInput(prefix.clone()));
        match bounded(client.create(&prefix, worker.to_string().as_bytes(), &options)).await {
            Ok((_, sequence)) => {
                let number = sequence.into_i64();
                let name = format!("n-{number:010}");
                let process = Process {
                    worker,
                    session_id: session_id(&client),
                };
                lock(&names).push((process, name));
                recorder.complete(
                    pending,
                    process.session_id,
                    SequenceOutput(i32::try_from(number).unwrap_or(i32::MAX)),
                );
            }
            Err(_) => {
                recorder.indeterminate(pending);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..30))).await;
    }
}

// ---------------------------------------------------------------------------------------------
// FIFO queue on sequential nodes.

fn queue_parent() -> String {
    format!("{ROOT}/queue")
}

/// A queue worker: producers enqueue unique items, consumers take the oldest.
pub async fn queue_worker(
    context: Context,
    recorder: Recorder<QueueInput, QueueOutput>,
    attempts: Arc<Mutex<Vec<DequeueAttempt>>>,
    worker: u32,
    producer: bool,
) {
    let mut rng = context.rng(3, worker);
    let options = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let prefix = format!("{}/q-", queue_parent());
    let mut counter = 0u64;
    let Some(mut client) = context.session(None).await else {
        return;
    };
    while !context.stop.is_cancelled() {
        if dead(&client) {
            let Some(next) = context.session(None).await else {
                return;
            };
            client = next;
        }
        let process = Process {
            worker,
            session_id: session_id(&client),
        };
        if producer {
            counter += 1;
            let value = u64::from(worker) << 32 | counter;
            let pending = recorder.invoke(process, QueueInput::Enqueue { value });
            match bounded(client.create(&prefix, value.to_string().as_bytes(), &options)).await {
                Ok(_) => recorder.complete(pending, process.session_id, QueueOutput::Enqueued),
                Err(_) => recorder.indeterminate(pending),
            }
        } else {
            let pending = recorder.invoke(process, QueueInput::Dequeue);
            match dequeue(&client).await {
                Ok(Some(output)) => recorder.complete(pending, process.session_id, output),
                // Nothing was deleted: the attempt had no effect.
                Ok(None) => recorder.forget(pending),
                Err(value) => {
                    lock(&attempts).push(DequeueAttempt {
                        worker,
                        call: pending.call(),
                        value,
                    });
                    recorder.indeterminate(pending);
                }
            }
        }
        let pause = if producer { 20..100 } else { 5..40 };
        tokio::time::sleep(Duration::from_millis(rng.random_range(pause))).await;
    }
}

/// An indeterminate dequeue: which item its delete was for. After the run the item's fate
/// tells whether the delete took effect ([`resolve_queue`]).
#[derive(Clone, Copy, Debug)]
pub struct DequeueAttempt {
    /// The worker.
    pub worker: u32,
    /// When the dequeue was invoked.
    pub call: At,
    /// The item whose node it tried to delete.
    pub value: u64,
}

/// One dequeue: sync, list, then take the lowest child that is still there. `Ok(None)` when
/// a read failed before anything was deleted; `Err(item)` when the outcome of the delete of
/// `item` is unknown.
async fn dequeue(client: &zk::Client) -> Result<Option<QueueOutput>, u64> {
    let parent = queue_parent();
    if bounded(client.sync(&parent)).await.is_err() {
        return Ok(None);
    }
    let Ok(mut children) = bounded(client.list_children(&parent)).await else {
        return Ok(None);
    };
    if children.is_empty() {
        return Ok(Some(QueueOutput::Empty));
    }
    children.sort();
    for child in children {
        let path = format!("{parent}/{child}");
        let value = match bounded(client.get_data(&path)).await {
            Ok((data, _)) => match parse_value(&data) {
                Some(value) => value,
                None => return Ok(None),
            },
            Err(Some(zk::Error::NoNode)) => continue,
            Err(_) => return Ok(None),
        };
        match bounded(client.delete(&path, None)).await {
            Ok(()) => return Ok(Some(QueueOutput::Dequeued { value })),
            Err(Some(zk::Error::NoNode)) => continue,
            Err(_) => return Err(value),
        }
    }
    // Every item listed was taken by others meanwhile: the queue was not seen empty at any
    // one moment, and nothing was taken.
    Ok(None)
}

/// The final read of the queue: every item, oldest first, after a sync.
///
/// # Errors
/// A read that failed.
pub async fn read_queue(client: &zk::Client) -> anyhow::Result<Vec<u64>> {
    let parent = queue_parent();
    bounded(client.sync(&parent))
        .await
        .map_err(|e| anyhow::anyhow!("sync: {e:?}"))?;
    let mut children = bounded(client.list_children(&parent))
        .await
        .map_err(|e| anyhow::anyhow!("list: {e:?}"))?;
    children.sort();
    let mut items = Vec::new();
    for child in children {
        let (data, _) = bounded(client.get_data(&format!("{parent}/{child}")))
            .await
            .map_err(|e| anyhow::anyhow!("get {child}: {e:?}"))?;
        items.push(parse_value(&data).ok_or_else(|| anyhow::anyhow!("bad item {data:?}"))?);
    }
    Ok(items)
}

/// Resolves the queue's indeterminate operations with what the end of the run shows, which
/// keeps the search small (an operation of unknown outcome can be placed anywhere after its
/// invocation):
/// - an enqueue whose item was dequeued or is in the final read took effect: its answer is
///   known, its completion time is not (it stays open-ended); otherwise it never took effect
///   (nothing observed it), and it is dropped;
/// - a dequeue whose delete was of item `x` took effect exactly when `x` is neither in the
///   final read nor dequeued by anyone else: it then answered `x`; otherwise it is dropped.
pub fn resolve_queue(
    ops: Vec<crate::history::Op<QueueInput, QueueOutput>>,
    attempts: &[DequeueAttempt],
) -> Vec<crate::history::Op<QueueInput, QueueOutput>> {
    let mut observed: BTreeSet<u64> = BTreeSet::new();
    let mut dequeued: BTreeSet<u64> = BTreeSet::new();
    for op in &ops {
        match &op.output {
            Some(QueueOutput::Dequeued { value }) => {
                observed.insert(*value);
                dequeued.insert(*value);
            }
            Some(QueueOutput::Items(items)) => observed.extend(items.iter().copied()),
            _ => {}
        }
    }
    let attempted: BTreeSet<u64> = attempts.iter().map(|attempt| attempt.value).collect();
    let attempt_of: BTreeMap<(u32, At), u64> = attempts
        .iter()
        .map(|attempt| ((attempt.worker, attempt.call), attempt.value))
        .collect();
    let mut kept = Vec::with_capacity(ops.len());
    // Two indeterminate dequeues may have tried the same item: one at most took it.
    let mut taken: BTreeSet<u64> = BTreeSet::new();
    for mut op in ops {
        if op.output.is_none() {
            match op.input {
                QueueInput::Enqueue { value } => {
                    // A dequeue attempt that read the item's node saw it too.
                    if !observed.contains(&value) && !attempted.contains(&value) {
                        continue;
                    }
                    op.output = Some(QueueOutput::Enqueued);
                }
                QueueInput::Dequeue => {
                    let Some(value) = attempt_of.get(&(op.process.worker, op.call)) else {
                        continue;
                    };
                    if observed.contains(value) || !taken.insert(*value) {
                        continue;
                    }
                    op.output = Some(QueueOutput::Dequeued { value: *value });
                }
                QueueInput::ReadAll => continue,
            }
        }
        kept.push(op);
    }
    for (index, op) in kept.iter_mut().enumerate() {
        op.id = u32::try_from(index).unwrap_or(u32::MAX);
    }
    kept
}

// ---------------------------------------------------------------------------------------------
// Lock recipe.

/// The moments a worker's session was seen disconnected (from its state watcher).
fn watch_disconnections(client: &zk::Client, clock: Clock) -> Arc<Mutex<Vec<At>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut watcher = client.state_watcher();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let state = watcher.changed().await;
            if state != zk::SessionState::SyncConnected {
                lock(&record).push(clock.now());
            }
            if state.is_terminated() {
                return;
            }
        }
    });
    seen
}

/// A lock worker: acquire, hold briefly, release; holdings go to `holdings`.
pub async fn lock_worker(context: Context, holdings: Arc<Mutex<Vec<Holding>>>, worker: u32) {
    let mut rng = context.rng(4, worker);
    let dir = format!("{ROOT}/lock");
    while !context.stop.is_cancelled() {
        let Some(client) = context.session(None).await else {
            return;
        };
        let disconnections = watch_disconnections(&client, context.clock);
        let process = Process {
            worker,
            session_id: session_id(&client),
        };
        while !context.stop.is_cancelled() && !dead(&client) {
            let Ok(prefix) = zk::LockPrefix::new_curator(&dir, "lock-") else {
                return;
            };
            let options = zk::LockOptions::new(zk::Acls::anyone_all());
            let acquired = tokio::select! {
                acquired = client.lock(prefix, b"", options) => acquired,
                () = tokio::time::sleep(Duration::from_secs(15)) => continue,
                () = context.stop.cancelled() => break,
            };
            let Ok(guard) = acquired else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let acquired_at = context.clock.now();
            tokio::time::sleep(Duration::from_millis(rng.random_range(5..50))).await;
            let released_at = context.clock.now();
            drop(guard);
            let lost = lock(&disconnections)
                .iter()
                .copied()
                .find(|at| *at >= acquired_at && *at < released_at);
            lock(&holdings).push(Holding {
                process,
                acquired: acquired_at,
                released: lost.unwrap_or(released_at),
                end: if lost.is_some() {
                    HoldingEnd::Suspended
                } else {
                    HoldingEnd::Released
                },
            });
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..20))).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions and ephemerals.

/// A session worker: one session at a time owns an ephemeral, checks it, then closes (or
/// loses) the session; an observer session checks the ephemeral is gone afterwards.
pub async fn session_worker(context: Context, lives: Arc<Mutex<Vec<SessionLife>>>, worker: u32) {
    let mut rng = context.rng(5, worker);
    let Some(observer) = context.session(None).await else {
        return;
    };
    let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let mut generation = 0u32;
    while !context.stop.is_cancelled() {
        generation += 1;
        let Some(client) = context.session(None).await else {
            return;
        };
        let process = Process {
            worker,
            session_id: session_id(&client),
        };
        let mut state = client.state_watcher();
        let path = format!("{ROOT}/eph/w{worker}-{generation}");
        if bounded(client.create(&path, b"", &options)).await.is_err() {
            continue;
        }
        let mut life = SessionLife {
            process,
            path: path.clone(),
            created: context.clock.now(),
            own_checks: Vec::new(),
            ended: None,
            later_checks: Vec::new(),
        };
        let checks = rng.random_range(5..40);
        for _ in 0..checks {
            if context.stop.is_cancelled() || dead(&client) {
                break;
            }
            let call = context.clock.now();
            if bounded(client.sync(&path)).await.is_ok()
                && let Ok(stat) = bounded(client.check_stat(&path)).await
            {
                life.own_checks
                    .push((call, context.clock.now(), stat.is_some()));
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..200))).await;
        }
        if client.state() == zk::SessionState::Expired {
            life.ended = Some((context.clock.now(), SessionEnd::Expired));
        } else {
            drop(client);
            let closed = tokio::time::timeout(OP_TIMEOUT, async {
                loop {
                    let next = state.changed().await;
                    if next.is_terminated() {
                        return next;
                    }
                }
            })
            .await;
            life.ended = match closed {
                Ok(zk::SessionState::Closed) => Some((context.clock.now(), SessionEnd::Closed)),
                Ok(zk::SessionState::Expired) => Some((context.clock.now(), SessionEnd::Expired)),
                _ => None,
            };
        }
        if life.ended.is_some() {
            // Until it is seen gone (bounded): a report then shows how long it outlived its
            // session.
            for _ in 0..20 {
                let call = context.clock.now();
                if bounded(observer.sync(&path)).await.is_ok()
                    && let Ok(stat) = bounded(observer.check_stat(&path)).await
                {
                    life.later_checks
                        .push((call, context.clock.now(), stat.is_some()));
                    if stat.is_none() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        lock(&lives).push(life);
    }
}

// ---------------------------------------------------------------------------------------------
// Watch delivery.

/// The node watch worker `worker` watches.
pub fn watch_path(worker: u32) -> String {
    format!("{ROOT}/watch/w{worker}")
}

/// What one watcher session saw, with its process.
pub type WatchLog = (Process, Vec<WatchSeen>);

/// Watch delivery in rounds: a writer session sets the node's data a few times (each
/// acknowledged), then the watcher session syncs and reads it; no write is in flight while the
/// watcher reads, so every notification of the round must arrive before the read's reply.
/// After a round with an indeterminate write (which may still apply late, in the middle of a
/// later read) the watcher starts a fresh session and watch.
pub async fn watch_worker(context: Context, logs: Arc<Mutex<Vec<WatchLog>>>, worker: u32) {
    let mut rng = context.rng(6, worker);
    let path = watch_path(worker);
    let Some(mut writer) = context.session(None).await else {
        return;
    };
    if ensure(&writer, &path).await.is_err() {
        return;
    }
    'sessions: while !context.stop.is_cancelled() {
        let Some(watcher_client) = context.session(None).await else {
            return;
        };
        let process = Process {
            worker,
            session_id: session_id(&watcher_client),
        };
        let Ok(mut watcher) =
            bounded(watcher_client.watch(&path, zk::AddWatchMode::Persistent)).await
        else {
            continue;
        };
        let mut states = watcher_client.state_watcher();
        let mut seen = Vec::new();
        while !context.stop.is_cancelled() && !dead(&watcher_client) {
            if dead(&writer) {
                let Some(next) = context.session(None).await else {
                    break 'sessions;
                };
                writer = next;
            }
            let mut clean = true;
            for _ in 0..rng.random_range(0..4) {
                if bounded(writer.set_data(&path, b"w", None)).await.is_err() {
                    clean = false;
                }
            }
            let read = async {
                bounded(watcher_client.sync(&path)).await?;
                bounded(watcher_client.get_data(&path)).await
            };
            let mut read = std::pin::pin!(read);
            let reply = loop {
                tokio::select! {
                    biased;
                    event = watcher.changed() => {
                        let terminated = event.event_type == zk::EventType::Session
                            && event.session_state.is_terminated();
                        seen.push(classify(&event, context.clock.now()));
                        if terminated {
                            // The watcher panics if polled after its session's end.
                            break Err(None);
                        }
                    }
                    // Any change of the session's state means it was disconnected meanwhile.
                    _ = states.changed() => seen.push(WatchSeen::Disconnected {
                        at: context.clock.now(),
                    }),
                    reply = &mut read => break reply,
                }
            };
            match reply {
                Ok((_, stat)) => seen.push(WatchSeen::Read {
                    at: context.clock.now(),
                    version: stat.version,
                }),
                Err(_) => seen.push(WatchSeen::Disconnected {
                    at: context.clock.now(),
                }),
            }
            // zookeeper-client 0.11.2 does not get a persistent watch back after a reconnect
            // (seen against ZooKeeper 3.8 and arbor alike): after a disconnection the watcher
            // starts over with a new session and watch.
            let is_disconnection = |s: &WatchSeen| matches!(s, WatchSeen::Disconnected { .. });
            let disconnected = seen.last().is_some_and(is_disconnection)
                || seen
                    .iter()
                    .rev()
                    .skip(1)
                    .take_while(|s| !matches!(s, WatchSeen::Read { .. }))
                    .any(is_disconnection);
            if !clean || disconnected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(10..60))).await;
        }
        lock(&logs).push((process, seen));
    }
}

fn classify(event: &zk::WatchedEvent, at: At) -> WatchSeen {
    match event.event_type {
        zk::EventType::NodeDataChanged => WatchSeen::Changed {
            at,
            zxid: event.zxid,
        },
        zk::EventType::Session => WatchSeen::Disconnected { at },
        other => WatchSeen::Other {
            at,
            what: format!("{other:?} {}", event.path),
        },
    }
}

/// Children of `parent` after a sync (for the final check of the sequential names).
///
/// # Errors
/// A read that failed.
pub async fn children_after_sync(
    client: &zk::Client,
    parent: &str,
) -> anyhow::Result<BTreeSet<String>> {
    bounded(client.sync(parent))
        .await
        .map_err(|e| anyhow::anyhow!("sync: {e:?}"))?;
    let children = bounded(client.list_children(parent))
        .await
        .map_err(|e| anyhow::anyhow!("list: {e:?}"))?;
    Ok(children.into_iter().collect())
}

/// Each register's final data and version after a sync (recorded as a synced read).
///
/// # Errors
/// A read that failed.
pub async fn final_register_reads(
    client: &zk::Client,
    recorder: &RegisterRecorder,
    keys: usize,
) -> anyhow::Result<()> {
    for key in 0..keys {
        let path = register_path(key);
        let process = Process {
            worker: u32::MAX,
            session_id: session_id(client),
        };
        let pending = recorder.invoke(process, (key, ZnodeInput::Read { synced: true }));
        bounded(client.sync(&path))
            .await
            .map_err(|e| anyhow::anyhow!("sync: {e:?}"))?;
        let output = match bounded(client.get_data(&path)).await {
            Ok((data, stat)) => (
                ZnodeOutput::Value {
                    value: parse_value(&data).ok_or_else(|| anyhow::anyhow!("bad data"))?,
                    version: stat.version,
                },
                stat.mzxid,
            ),
            Err(Some(zk::Error::NoNode)) => (ZnodeOutput::NoNode, -1),
            Err(e) => anyhow::bail!("final read of {path}: {e:?}"),
        };
        recorder.complete(pending, process.session_id, output);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    fn op(
        worker: u32,
        call: u64,
        input: QueueInput,
        output: Option<QueueOutput>,
    ) -> Op<QueueInput, QueueOutput> {
        Op {
            id: 0,
            process: Process {
                worker,
                session_id: 1,
            },
            call: At(call),
            ret: output.as_ref().map(|_| At(call + 5)),
            input,
            output,
        }
    }

    #[test]
    fn queue_resolution_follows_what_the_end_of_the_run_shows() {
        let ops = vec![
            // Seen by an indeterminate dequeue only: it was enqueued, and that dequeue took it.
            op(0, 0, QueueInput::Enqueue { value: 1 }, None),
            // Never seen: never enqueued.
            op(0, 10, QueueInput::Enqueue { value: 2 }, None),
            op(1, 20, QueueInput::Dequeue, None),
            // Two attempts on one item: one at most took it.
            op(
                0,
                25,
                QueueInput::Enqueue { value: 3 },
                Some(QueueOutput::Enqueued),
            ),
            op(1, 30, QueueInput::Dequeue, None),
            op(2, 31, QueueInput::Dequeue, None),
            op(3, 40, QueueInput::ReadAll, Some(QueueOutput::Items(vec![]))),
        ];
        let attempts = [
            DequeueAttempt {
                worker: 1,
                call: At(20),
                value: 1,
            },
            DequeueAttempt {
                worker: 1,
                call: At(30),
                value: 3,
            },
            DequeueAttempt {
                worker: 2,
                call: At(31),
                value: 3,
            },
        ];
        let resolved = resolve_queue(ops, &attempts);
        let outputs: Vec<(QueueInput, Option<QueueOutput>)> = resolved
            .into_iter()
            .map(|op| (op.input, op.output))
            .collect();
        assert_eq!(
            outputs,
            vec![
                (
                    QueueInput::Enqueue { value: 1 },
                    Some(QueueOutput::Enqueued)
                ),
                (
                    QueueInput::Dequeue,
                    Some(QueueOutput::Dequeued { value: 1 })
                ),
                (
                    QueueInput::Enqueue { value: 3 },
                    Some(QueueOutput::Enqueued)
                ),
                (
                    QueueInput::Dequeue,
                    Some(QueueOutput::Dequeued { value: 3 })
                ),
                (QueueInput::ReadAll, Some(QueueOutput::Items(vec![]))),
            ]
        );
    }
}
