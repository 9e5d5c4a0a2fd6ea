//! Writers that keep a cluster busy while a test breaks it, and remember what was acknowledged.
//!
//! Each writer creates `<prefix>/<name>-<seq>` one after the other on its own
//! `zookeeper-client` session. A create that fails with ConnectionLoss is retried with the same
//! path (so NodeExists on a retry means the lost attempt went through: acknowledged); any other
//! error is recorded. A create still unanswered when the writer stops is *uncertain*: it may or
//! may not have been applied, and a test may only require that every node agrees on it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use super::cluster::{Cluster, children_after_sync};
use super::persistent;

/// One acknowledged create: when it was sent and when its reply came.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    /// When the attempt that succeeded was sent.
    pub sent: Instant,
    /// When its reply arrived.
    pub acked: Instant,
}

/// What a writer did.
pub struct WriterReport {
    /// The writer's name (also its path prefix).
    pub name: String,
    /// Paths whose create was acknowledged.
    pub acked: Vec<String>,
    /// Paths whose create was in flight when the writer stopped.
    pub uncertain: Vec<String>,
    /// Errors other than ConnectionLoss, with their path.
    pub errors: Vec<(String, zk::Error)>,
    /// ConnectionLoss errors (each retried).
    pub connection_losses: u32,
    /// Requests the client gave up on because the server answered nothing, pings included,
    /// for its ping timeout (see [`is_silence`]); retried like ConnectionLoss.
    pub silences: u32,
    /// The longest time from sending a create to its acknowledgement.
    pub latency_max: Duration,
    /// The writer's client, for checks of its session afterwards.
    pub client: zk::Client,
}

struct Writer {
    name: String,
    stop: watch::Sender<bool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    task: JoinHandle<WriterReport>,
}

/// Writers running against a cluster.
pub struct Load {
    writers: Vec<Writer>,
}

impl Load {
    /// Starts one writer per `(name, client)`, writing under `prefix` (which must exist).
    pub fn start(prefix: &str, clients: Vec<(String, zk::Client)>) -> Load {
        let writers = clients
            .into_iter()
            .map(|(name, client)| {
                let (stop, stopped) = watch::channel(false);
                let acks = Arc::new(Mutex::new(Vec::new()));
                let task = tokio::spawn(write_loop(
                    format!("{prefix}/{name}"),
                    name.clone(),
                    client,
                    stopped,
                    acks.clone(),
                ));
                Writer {
                    name,
                    stop,
                    acks,
                    task,
                }
            })
            .collect();
        Load { writers }
    }

    /// The writers' names.
    pub fn names(&self) -> Vec<String> {
        self.writers.iter().map(|w| w.name.clone()).collect()
    }

    /// Acknowledgements of writer `name` so far.
    pub fn acks(&self, name: &str) -> Vec<Ack> {
        let writer = self
            .writers
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no writer {name}"));
        writer.acks.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// The first acknowledgement of writer `name` for a create sent at or after `since`.
    pub fn first_ack_sent_after(&self, name: &str, since: Instant) -> Option<Ack> {
        self.acks(name).into_iter().find(|ack| ack.sent >= since)
    }

    /// Waits until every writer in `names` has an acknowledgement for a create sent after
    /// `since`; returns, per writer, the time from `since` to that acknowledgement.
    pub async fn wait_resumed(&self, names: &[String], since: Instant) -> Vec<(String, Duration)> {
        super::cluster::until("writes to resume on every writer", || async {
            names
                .iter()
                .all(|name| self.first_ack_sent_after(name, since).is_some())
        })
        .await;
        names
            .iter()
            .map(|name| {
                let ack = self
                    .first_ack_sent_after(name, since)
                    .expect("an acknowledgement");
                (name.clone(), ack.acked.duration_since(since))
            })
            .collect()
    }

    /// Waits until every writer in `names` has `count` more acknowledgements than now.
    pub async fn wait_progress(&self, names: &[String], count: usize) {
        let start: Vec<usize> = names.iter().map(|name| self.acks(name).len()).collect();
        super::cluster::until("the writers to make progress", || async {
            names
                .iter()
                .zip(&start)
                .all(|(name, &before)| self.acks(name).len() >= before + count)
        })
        .await;
    }

    /// Stops writer `name` (its create in flight becomes uncertain).
    pub fn stop_writer(&self, name: &str) {
        for writer in &self.writers {
            if writer.name == name {
                writer.stop.send_replace(true);
            }
        }
    }

    /// Stops every writer and returns their reports.
    pub async fn finish(self) -> Vec<WriterReport> {
        for writer in &self.writers {
            writer.stop.send_replace(true);
        }
        let mut reports = Vec::new();
        for writer in self.writers {
            let report = super::within(&format!("writer {} to stop", writer.name), writer.task)
                .await
                .expect("a writer task");
            reports.push(report);
        }
        reports
    }
}

async fn write_loop(
    prefix: String,
    name: String,
    client: zk::Client,
    mut stopped: watch::Receiver<bool>,
    acks: Arc<Mutex<Vec<Ack>>>,
) -> WriterReport {
    let mut report = WriterReport {
        name,
        acked: Vec::new(),
        uncertain: Vec::new(),
        errors: Vec::new(),
        connection_losses: 0,
        silences: 0,
        latency_max: Duration::ZERO,
        client,
    };
    let mut seq: u64 = 0;
    let mut retrying = false;
    loop {
        let path = format!("{prefix}-{seq:08}");
        if *stopped.borrow() {
            if retrying {
                report.uncertain.push(path);
            }
            break;
        }
        let sent = Instant::now();
        let result = tokio::select! {
            result = report.client.create(&path, b"w", &persistent()) => Some(result.map(|_| ())),
            _ = stopped.changed() => None,
        };
        let Some(result) = result else {
            report.uncertain.push(path);
            break;
        };
        match result {
            Ok(()) => {}
            Err(zk::Error::NodeExists) if retrying => {}
            Err(error) if is_connection_loss(&error) || is_silence(&error) => {
                if is_silence(&error) {
                    report.silences += 1;
                } else {
                    report.connection_losses += 1;
                }
                retrying = true;
                if !wait_connected(&report.client, &mut stopped).await {
                    report.uncertain.push(path);
                    break;
                }
                continue;
            }
            Err(error) => {
                let terminal = matches!(
                    error,
                    zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
                );
                report.errors.push((path.clone(), error));
                if terminal {
                    break;
                }
                retrying = false;
                seq += 1;
                continue;
            }
        }
        let acked = Instant::now();
        report.latency_max = report.latency_max.max(acked.duration_since(sent));
        report.acked.push(path);
        if let Ok(mut acks) = acks.lock() {
            acks.push(Ack { sent, acked });
        }
        retrying = false;
        seq += 1;
    }
    report
}

/// Waits until the client is connected again; false if it stopped or the session ended.
async fn wait_connected(client: &zk::Client, stopped: &mut watch::Receiver<bool>) -> bool {
    let mut states = client.state_watcher();
    loop {
        match states.peek_state() {
            zk::SessionState::SyncConnected => return true,
            zk::SessionState::Disconnected => {}
            _ => return false,
        }
        tokio::select! {
            _ = states.changed() => {}
            _ = stopped.changed() => return false,
        }
    }
}

/// Checks, after a `sync` on each node of `ids`, that every acknowledged create of `reports`
/// is there and that all nodes hold the same children under `prefix`. Returns that set.
pub async fn verify_acknowledged(
    cluster: &Cluster,
    ids: &[u8],
    prefix: &str,
    reports: &[WriterReport],
) -> BTreeSet<String> {
    let acked: BTreeSet<String> = reports
        .iter()
        .flat_map(|r| r.acked.iter())
        .map(|path| path.rsplit('/').next().unwrap_or(path).to_owned())
        .collect();
    let mut reference: Option<(u8, BTreeSet<String>)> = None;
    for &id in ids {
        let children = children_after_sync(cluster, id, prefix).await;
        let missing: Vec<&String> = acked.difference(&children).collect();
        assert!(
            missing.is_empty(),
            "node {id} lacks {} acknowledged writes, e.g. {:?}",
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        );
        match &reference {
            None => reference = Some((id, children)),
            Some((first, expected)) => assert!(
                *expected == children,
                "nodes {first} and {id} disagree on {prefix}: only on {first}: {:?}, only on {id}: {:?}",
                expected.difference(&children).take(5).collect::<Vec<_>>(),
                children.difference(expected).take(5).collect::<Vec<_>>()
            ),
        }
    }
    reference.map(|(_, set)| set).unwrap_or_default()
}

/// Prints one line per writer (acked, uncertain, connection losses, errors, worst latency).
pub fn print_reports(label: &str, reports: &[WriterReport]) {
    for report in reports {
        println!(
            "{label}: writer {} acked {} uncertain {} connection_losses {} silences {} errors {} \
             latency_max_ms {}",
            report.name,
            report.acked.len(),
            report.uncertain.len(),
            report.connection_losses,
            report.silences,
            report.errors.len(),
            report.latency_max.as_millis()
        );
    }
}

/// Writers on a cluster: one pinned to each node (`n<id>`, a session that cannot leave its
/// server, detached so dropping it never closes the session) and `roaming` ones that may use
/// any node (`r<k>`). Each owns an ephemeral `/eph/<name>`; they write under `/load`.
pub struct Fleet {
    /// The running writers.
    pub load: Load,
    /// Each writer's session, by writer name.
    pub sessions: std::collections::BTreeMap<String, zk::SessionInfo>,
}

impl Fleet {
    /// Creates `/load` and `/eph` and starts the writers.
    pub async fn start(cluster: &Cluster, roaming: usize) -> Fleet {
        let setup = cluster.connect_any().await;
        for path in ["/load", "/eph"] {
            match super::within("setup", setup.create(path, b"", &persistent())).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(error) => panic!("create {path}: {error}"),
            }
        }
        let mut clients = Vec::new();
        for id in cluster.ids() {
            let client =
                super::connect_with(super::connector().with_detached(), &cluster.address(id)).await;
            clients.push((format!("n{id}"), client));
        }
        for k in 1..=roaming {
            clients.push((format!("r{k}"), cluster.connect_any().await));
        }
        let mut sessions = std::collections::BTreeMap::new();
        for (name, client) in &clients {
            super::ok(
                &format!("ephemeral of {name}"),
                client.create(
                    &format!("/eph/{name}"),
                    b"",
                    &super::mode(zk::CreateMode::Ephemeral),
                ),
            )
            .await;
            sessions.insert(name.clone(), client.session().clone());
        }
        Fleet {
            load: Load::start("/load", clients),
            sessions,
        }
    }

    /// The names of the writers pinned to `ids`.
    pub fn pinned(ids: &[u8]) -> Vec<String> {
        ids.iter().map(|id| format!("n{id}")).collect()
    }

    /// The roaming writers' names.
    pub fn roaming(&self) -> Vec<String> {
        self.sessions
            .keys()
            .filter(|name| name.starts_with('r'))
            .cloned()
            .collect()
    }
}

/// Checks on every node of `ids` (after a sync) that `/eph/<name>` exists and is owned by the
/// session of `name`, for each of `names`.
pub async fn verify_ephemerals(
    cluster: &Cluster,
    ids: &[u8],
    sessions: &std::collections::BTreeMap<String, zk::SessionInfo>,
    names: &[String],
) {
    for &id in ids {
        let client = cluster.connect_to(id).await;
        super::ok("sync", client.sync("/eph")).await;
        for name in names {
            let path = format!("/eph/{name}");
            let stat = super::ok(&format!("{path} on node {id}"), client.check_stat(&path))
                .await
                .unwrap_or_else(|| panic!("node {id} lost {path}: the session of {name} ended"));
            let owner = sessions[name].id().0;
            assert_eq!(stat.ephemeral_owner, owner, "owner of {path} on node {id}");
        }
    }
}

/// Whether `error` means the connection was lost with the request in flight. The
/// `zookeeper-client` crate reports most such losses as ConnectionLoss, but a socket reset by
/// a killed server while a request is on the wire comes back as `Error::Custom` holding the
/// I/O error behind an `Arc<dyn Error>` (which cannot be downcast, hence the Debug text); to
/// the application both mean the same: outcome unknown, retry.
fn is_connection_loss(error: &zk::Error) -> bool {
    match error {
        zk::Error::ConnectionLoss => true,
        zk::Error::Custom(_) => {
            let text = format!("{error:?}");
            [
                "kind: ConnectionReset",
                "kind: ConnectionAborted",
                "kind: BrokenPipe",
                "kind: UnexpectedEof",
            ]
            .iter()
            .any(|kind| text.contains(kind))
        }
        _ => false,
    }
}

/// Whether the client gave up on the connection because the server sent nothing, not even a
/// ping's answer, for the client's ping timeout: `zookeeper-client` fails the requests in
/// flight with `Error::Custom("no response from connection in <n>ms")` (the Java client says
/// ConnectionLoss). Outcome unknown, as with ConnectionLoss, but it means the server held a
/// connection open in silence, so tests count these apart.
pub fn is_silence(error: &zk::Error) -> bool {
    matches!(error, zk::Error::Custom(_))
        && format!("{error:?}").contains("no response from connection")
}

/// A client that sets one node to 1, 2, 3, ... one write after the other, and remembers the
/// highest value acknowledged: a write completed at a known moment, for checks that a read
/// after `sync` is never older than it.
pub struct Counter {
    path: String,
    stop: watch::Sender<bool>,
    acknowledged: Arc<std::sync::atomic::AtomicU64>,
    task: JoinHandle<CounterReport>,
}

/// What a counter did.
pub struct CounterReport {
    /// The highest value acknowledged.
    pub acknowledged: u64,
    /// ConnectionLoss errors (each retried with the same value).
    pub connection_losses: u32,
    /// Errors other than ConnectionLoss.
    pub errors: Vec<zk::Error>,
}

impl Counter {
    /// Creates `path` (holding `0`) through `client` and starts counting on it.
    pub async fn start(client: zk::Client, path: &str) -> Counter {
        super::ok(
            &format!("create {path}"),
            client.create(path, b"0", &persistent()),
        )
        .await;
        let (stop, stopped) = watch::channel(false);
        let acknowledged = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn(count_loop(
            path.to_owned(),
            client,
            stopped,
            acknowledged.clone(),
        ));
        Counter {
            path: path.to_owned(),
            stop,
            acknowledged,
            task,
        }
    }

    /// The node counted on.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The highest value acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `count` more values are acknowledged than now.
    pub async fn wait_progress(&self, count: u64) {
        let target = self.acknowledged() + count;
        super::cluster::until("the counter to make progress", || async {
            self.acknowledged() >= target
        })
        .await;
    }

    /// Stops counting and returns the report.
    pub async fn finish(self) -> CounterReport {
        self.stop.send_replace(true);
        super::within("the counter to stop", self.task)
            .await
            .expect("the counter task")
    }
}

async fn count_loop(
    path: String,
    client: zk::Client,
    mut stopped: watch::Receiver<bool>,
    acknowledged: Arc<std::sync::atomic::AtomicU64>,
) -> CounterReport {
    let mut report = CounterReport {
        acknowledged: 0,
        connection_losses: 0,
        errors: Vec::new(),
    };
    let mut value: u64 = 1;
    while !*stopped.borrow() {
        let data = value.to_string();
        let result = tokio::select! {
            result = client.set_data(&path, data.as_bytes(), None) => result,
            _ = stopped.changed() => break,
        };
        match result {
            Ok(_) => {
                report.acknowledged = value;
                acknowledged.store(value, std::sync::atomic::Ordering::SeqCst);
                value += 1;
            }
            Err(error) if is_connection_loss(&error) => {
                report.connection_losses += 1;
                if !wait_connected(&client, &mut stopped).await {
                    break;
                }
            }
            Err(error) => {
                let terminal = matches!(
                    error,
                    zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
                );
                report.errors.push(error);
                if terminal {
                    break;
                }
            }
        }
    }
    report
}

/// The counter's value as `client` reads it after a `sync`, retried across ConnectionLoss;
/// `floor` is read just before each `sync` is sent. Returns `(floor, value)` of the attempt
/// that succeeded.
pub async fn read_counter_after_sync(
    client: &zk::Client,
    path: &str,
    floor: impl Fn() -> u64,
) -> (u64, u64) {
    super::within("a sync and a read of the counter", async {
        loop {
            let at_least = floor();
            match client.sync(path).await {
                Ok(()) => {}
                Err(error) if is_connection_loss(&error) => {
                    let (_never, mut stopped) = watch::channel(false);
                    wait_connected(client, &mut stopped).await;
                    continue;
                }
                Err(error) => panic!("sync {path}: {error}"),
            }
            match client.get_data(path).await {
                Ok((data, _)) => {
                    let value = String::from_utf8_lossy(&data)
                        .parse::<u64>()
                        .unwrap_or_else(|_| panic!("{path} holds {data:?}"));
                    return (at_least, value);
                }
                Err(error) if is_connection_loss(&error) => {
                    let (_never, mut stopped) = watch::channel(false);
                    wait_connected(client, &mut stopped).await;
                }
                Err(error) => panic!("read {path}: {error}"),
            }
        }
    })
    .await
}
