//! The core: one task that owns the applied state (the data tree and the session table), the
//! watch table and the write pipeline. Everything that must be ordered goes through it, so FIFO
//! per session, "an event reaches the client before the reply to any later request", and the
//! atomicity of a read with the watch it sets all follow from running on one task.
//!
//! The path of a write: a client request becomes a [`Txn`] (stamped with the leader's wall clock
//! and the connection's identities), gets the next log index and zxid, is appended to the WAL
//! in a batch with every other write of this loop iteration (one fsync for all: group commit),
//! and only once the WAL reports it durable is it applied by the tree and answered. Replication
//! slots in between "durable" and "applied" without changing either end.

mod introspect;
mod pipeline;
mod replies;
mod sessions;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arbor_log::Wal;
use arbor_proto::{ConnectRequest, ConnectResponse, Id, Request, SessionId, Zxid};
use arbor_tree::{DataTree, TreeConfig, Txn};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::outbound::Outbound;
use crate::stats::Stats;
use crate::watches::{ConnectionId, WatchManager};

/// How a handshake ended, as the connection task needs to know it.
#[derive(Debug)]
pub(crate) enum ConnectOutcome {
    /// Write this response, then serve requests.
    Accepted(ConnectResponse),
    /// Write this response (session expired or bad password), then close.
    Refused(ConnectResponse),
    /// Close without answering (the client is ahead of us: it must try another server).
    Close(&'static str),
}

/// Messages into the core.
#[derive(Debug)]
pub(crate) enum CoreMessage {
    /// A handshake, after the connection task decoded it.
    Connect {
        connection: ConnectionId,
        peer: SocketAddr,
        request: ConnectRequest,
        outbound: mpsc::Sender<Outbound>,
        closer: CancellationToken,
        permits: Arc<Semaphore>,
        reply: oneshot::Sender<ConnectOutcome>,
    },
    /// A request on an established connection.
    Request {
        connection: ConnectionId,
        xid: i32,
        request: Request,
        received: Instant,
    },
    /// The connection's socket closed.
    Closed { connection: ConnectionId },
    /// A four-letter word.
    Admin {
        word: &'static str,
        reply: oneshot::Sender<String>,
    },
    /// Stop: answer nothing more, flush, and return.
    Shutdown,
}

/// What the WAL writer thread tells the core.
#[derive(Debug)]
pub(crate) enum Durability {
    /// The batch with this sequence number is durable (or the WAL failed).
    Batch {
        sequence: u64,
        result: Result<(), String>,
    },
    /// A snapshot at this index was saved (or failed).
    Snapshot {
        index: u64,
        result: Result<(), String>,
    },
}

/// Who waits for a proposal to be applied.
#[derive(Debug)]
enum Waiter {
    Client {
        connection: ConnectionId,
        xid: i32,
        received: Instant,
        close_after: bool,
    },
    Connect {
        connection: ConnectionId,
        reply: oneshot::Sender<ConnectOutcome>,
        read_only: Option<bool>,
    },
    Cleanup {
        path: String,
    },
    Expiry,
}

#[derive(Debug)]
struct Proposal {
    index: u64,
    zxid: Zxid,
    txn: Txn,
    waiter: Waiter,
}

#[derive(Debug)]
struct Batch {
    sequence: u64,
    proposals: Vec<Proposal>,
}

/// A connection as the core sees it.
#[derive(Debug)]
struct Connection {
    peer: SocketAddr,
    session_id: Option<SessionId>,
    /// The connection's authenticated identities, `ip:<address>` first, as ZooKeeper adds it.
    identities: Vec<Id>,
    outbound: mpsc::Sender<Outbound>,
    closer: CancellationToken,
    permits: Arc<Semaphore>,
    /// Writes proposed but not yet applied. While non-zero, later requests wait in `queued`
    /// (FIFO per session: a read must see the session's own earlier writes).
    writes_in_flight: u32,
    queued: VecDeque<(i32, Request, Instant)>,
    received: u64,
    sent: u64,
    established: Instant,
}

/// Liveness bookkeeping of a session; not replicated (ARCHITECTURE.md, Sessions).
#[derive(Debug)]
struct SessionLiveness {
    timeout: Duration,
    last_heard: Instant,
    connection: Option<ConnectionId>,
    closing: bool,
}

/// The core task's state.
pub(crate) struct Core {
    config: Arc<ServerConfig>,
    tree_config: TreeConfig,
    tree: DataTree,
    watches: WatchManager,
    connections: HashMap<ConnectionId, Connection>,
    sessions: HashMap<SessionId, SessionLiveness>,
    wal: Option<Wal>,
    durability_tx: mpsc::UnboundedSender<Durability>,
    term: u64,
    next_index: u64,
    last_zxid_assigned: Zxid,
    building: Vec<Proposal>,
    in_flight: VecDeque<Batch>,
    next_sequence: u64,
    cleanup_pending: BTreeSet<String>,
    next_cleanup: Instant,
    entries_since_snapshot: u64,
    snapshot_in_progress: bool,
    last_applied_index: u64,
    last_applied_term: u64,
    session_id_next: i64,
    pub(crate) stats: Stats,
    fatal: Option<String>,
}

/// The recovered state a core starts from.
pub(crate) struct Recovery {
    pub tree: DataTree,
    pub tree_config: TreeConfig,
    pub wal: Wal,
    pub term: u64,
    pub last_index: u64,
    pub last_term: u64,
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Core {
    pub(crate) fn new(
        config: Arc<ServerConfig>,
        recovery: Recovery,
        durability_tx: mpsc::UnboundedSender<Durability>,
    ) -> Core {
        let now = Instant::now();
        let mut sessions = HashMap::new();
        for (session_id, session) in recovery.tree.sessions() {
            // Every session recovered from disk gets a fresh timeout: the clients could not
            // reach us while we were down, so that time must not count against them.
            sessions.insert(
                session_id,
                SessionLiveness {
                    timeout: Duration::from_millis(u64::from(session.timeout_ms().max(0) as u32)),
                    last_heard: now,
                    connection: None,
                    closing: false,
                },
            );
        }
        // ZooKeeper's session id: server id in the top byte, wall-clock milliseconds below
        // (SessionTrackerImpl.initializeNextSessionId), so ids stay unique across restarts.
        let session_id_next =
            ((wall_clock_ms() << 24) as u64 >> 8) as i64 | (i64::from(config.server_id) << 56);
        let last_zxid = recovery.tree.last_applied_zxid();
        let container_interval = Duration::from_millis(config.container_check_interval_ms);
        Core {
            tree_config: recovery.tree_config,
            tree: recovery.tree,
            watches: WatchManager::new(),
            connections: HashMap::new(),
            sessions,
            wal: Some(recovery.wal),
            durability_tx,
            term: recovery.term,
            next_index: recovery.last_index + 1,
            last_zxid_assigned: last_zxid,
            building: Vec::new(),
            in_flight: VecDeque::new(),
            next_sequence: 0,
            cleanup_pending: BTreeSet::new(),
            next_cleanup: now + container_interval,
            entries_since_snapshot: 0,
            snapshot_in_progress: false,
            last_applied_index: recovery.last_index,
            last_applied_term: recovery.last_term,
            session_id_next,
            stats: Stats::new(),
            fatal: None,
            config,
        }
    }

    /// Runs until shutdown or a fatal storage error.
    pub(crate) async fn run(
        mut self,
        mut inbox: mpsc::Receiver<CoreMessage>,
        mut durability: mpsc::UnboundedReceiver<Durability>,
    ) -> Result<(), String> {
        let tick = Duration::from_millis(u64::from(self.config.tick_ms / 2).clamp(10, 1000));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                Some(notice) = durability.recv() => self.on_durability(notice),
                message = inbox.recv() => {
                    let Some(message) = message else { break };
                    if !self.on_message(message) {
                        break;
                    }
                    // Drain what else is waiting so its writes share this batch's fsync.
                    let mut drained = 0;
                    while drained < 1024 {
                        match inbox.try_recv() {
                            Ok(message) => {
                                drained += 1;
                                if !self.on_message(message) {
                                    return self.finish();
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                _ = ticker.tick() => self.on_tick(),
            }
            if self.fatal.is_some() {
                break;
            }
            self.submit_batch();
        }
        self.finish()
    }

    fn finish(&mut self) -> Result<(), String> {
        for (_, connection) in self.connections.drain() {
            connection.closer.cancel();
        }
        if let Some(wal) = self.wal.take()
            && let Err(error) = wal.close()
            && self.fatal.is_none()
        {
            self.fatal = Some(format!("closing the WAL: {error}"));
        }
        match self.fatal.take() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Handles one message; false means stop.
    fn on_message(&mut self, message: CoreMessage) -> bool {
        match message {
            CoreMessage::Connect {
                connection,
                peer,
                request,
                outbound,
                closer,
                permits,
                reply,
            } => {
                self.on_connect(connection, peer, request, outbound, closer, permits, reply);
            }
            CoreMessage::Request {
                connection,
                xid,
                request,
                received,
            } => {
                self.on_request(connection, xid, request, received);
            }
            CoreMessage::Closed { connection } => self.drop_connection(connection),
            CoreMessage::Admin { word, reply } => {
                let text = crate::admin::answer(self, word);
                let _ = reply.send(text);
            }
            CoreMessage::Shutdown => return false,
        }
        true
    }
}
