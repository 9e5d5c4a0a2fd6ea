//! The core: one task that owns the applied state (the data tree and the session table), the
//! watch table and the write pipeline. Everything that must be ordered goes through it, so FIFO
//! per session, "an event reaches the client before the reply to any later request", and the
//! atomicity of a read with the watch it sets all follow from running on one task.
//!
//! The path of a write: a client request becomes a [`Txn`](arbor_tree::Txn) (stamped with the leader's wall clock
//! and the connection's identities) and is proposed to Raft with an envelope naming this server
//! and a request number. Raft's `Ready` hands back what to make durable: every entry proposed
//! while the previous fsync ran goes into the next WAL batch (one fsync for all: group commit).
//! Committed entries are applied by the tree on every replica; the server whose envelope an
//! entry carries answers its client. A standalone server is a cluster of one voter.

mod cluster;
mod introspect;
mod membership;
mod pipeline;
mod replies;
mod security;
mod sessions;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arbor_log::Wal;
use arbor_proto::{ConnectRequest, ConnectResponse, Id, Request, SessionId};
use arbor_raft::{ConfState, RawNode, Ready};

use crate::storage::ArborStorage;
use arbor_tree::{Command, DataTree, TreeConfig};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::limits::OutboundSender;
use crate::stats::Stats;
use crate::watches::{ConnectionId, WatchManager};
pub(crate) use security::SaslOutcome;

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
        outbound: OutboundSender,
        closer: CancellationToken,
        permits: Arc<Semaphore>,
        /// Identities the transport proved (a TLS client certificate's subject).
        identities: Vec<Id>,
        reply: oneshot::Sender<ConnectOutcome>,
    },
    /// A SASL step the connection task ran; the core answers it in order and, on success,
    /// adds the identities.
    Sasl {
        connection: ConnectionId,
        xid: i32,
        received: Instant,
        outcome: SaslOutcome,
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

/// What the WAL writer thread and the snapshot thread tell the core.
#[derive(Debug)]
pub(crate) enum Durability {
    /// The Ready being persisted is durable (or the WAL failed).
    Persisted { result: Result<(), String> },
    /// A snapshot of the tree at `index` was saved to disk (or failed).
    Snapshot {
        index: u64,
        conf_state: ConfState,
        result: Result<(), String>,
    },
}

/// Who waits for a proposal to be applied.
#[derive(Debug)]
enum Waiter {
    Client {
        connection: ConnectionId,
        session_id: SessionId,
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
    Expiry {
        session_id: SessionId,
    },
    /// The first recording of a cluster's membership.
    Bootstrap,
}

/// A connection as the core sees it.
#[derive(Debug)]
struct Connection {
    peer: SocketAddr,
    session_id: Option<SessionId>,
    /// The connection's authenticated identities, `ip:<address>` first, as ZooKeeper adds it.
    identities: Vec<Id>,
    outbound: OutboundSender,
    closer: CancellationToken,
    permits: Arc<Semaphore>,
    /// Writes proposed but not yet applied. While non-zero, later requests wait in `queued`
    /// (FIFO per session: a read must see the session's own earlier writes).
    writes_in_flight: u32,
    queued: VecDeque<(i32, Request, Instant)>,
    /// Accepted by a server cut off from the quorum, for a client that allows read-only
    /// service: reads are served, writes answered NotReadOnly.
    read_only: bool,
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
    /// This server's Raft node id (also the top byte of the session ids it mints).
    server_id: u64,
    raft: RawNode<ArborStorage>,
    /// The Ready whose hard state, entries and snapshot the WAL is making durable; Raft hands
    /// out the next one only after it (one Ready at a time).
    persisting: Option<Ready>,
    /// Proposals of this server not yet applied, by the request number in their envelope.
    waiters: HashMap<u64, Waiter>,
    /// Waiters whose command was forwarded to a leader, with the time to give up on it.
    forwarded: HashMap<u64, Instant>,
    /// `sync` requests waiting on ReadIndex, by request number.
    pending_reads: HashMap<u64, cluster::PendingRead>,
    /// The transport to the other members; none for a standalone server.
    network: Option<Arc<crate::peer::PeerNetwork>>,
    /// A SetClusterConfig proposed and not yet applied (a starting cluster records its
    /// membership once).
    config_bootstrap_pending: bool,
    /// Leader: where its Raft guests (servers outside the membership syncing as learners)
    /// said they listen.
    guest_addresses: BTreeMap<u64, std::net::SocketAddr>,
    /// Whether the recorded membership has named this server (it then never asks to be
    /// replicated to as an outsider again).
    was_member: bool,
    /// Whether "Read-only server started" was logged for the current spell without a quorum.
    read_only_announced: bool,
    /// Sessions heard from since the last touch report to the leader.
    touched: cluster::Touched,
    /// Raft ticks since start.
    ticks: u64,
    /// Per session, writes and syncs proposed and not yet answered, whichever connection sent
    /// them: while non-zero the session's later requests wait (FIFO per session, across a
    /// reconnect too).
    session_pending: HashMap<SessionId, u32>,
    /// Set by a graceful stop that waits for a leadership transfer: when to stop anyway.
    stopping: Option<Instant>,
    /// Since when no leader is known (None while one is).
    leaderless_since: Option<Instant>,
    next_request: u64,
    /// Commands waiting for a leader to be known (bounded by `PARKED_MAX`).
    parked: VecDeque<(Command, Waiter)>,
    /// Commands this leader took while a leadership transfer was under way, in arrival order
    /// (bounded by `PARKED_MAX`; see `propose_envelope`).
    held: VecDeque<HeldProposal>,
    /// Leader: `reconfig`s whose new membership has no quorum of synced servers yet, with the
    /// moment they are refused (NewConfigNoQuorum) unless it gets one.
    reconfigs_waiting: VecDeque<(Instant, HeldProposal)>,
    /// The membership as of `applied_index`.
    conf_state: ConfState,
    /// Invariant: applied_index <= commit <= last index (Raft §5.3).
    applied_index: u64,
    leader: Option<arbor_raft::NodeId>,
    cleanup_pending: BTreeSet<String>,
    next_cleanup: Instant,
    entries_since_snapshot: u64,
    snapshot_in_progress: bool,
    session_id_next: i64,
    pub(crate) stats: Stats,
    /// Audit log, limits and memory budget bookkeeping (security.rs).
    pub(crate) security: security::SecurityState,
    fatal: Option<String>,
    /// Until the entries committed before a restart are applied again: the commit index to
    /// reach and whom to tell (the server binds its client port only then).
    startup: Option<(u64, oneshot::Sender<()>)>,
}

/// Commands that may wait for a leader before they are refused.
const PARKED_MAX: usize = 10_000;

/// A command held by the leader during a leadership transfer, with the envelope fields it
/// will be proposed with.
#[derive(Debug)]
struct HeldProposal {
    /// The server whose client sent it (this one, or a follower that forwarded it).
    origin: u64,
    /// The origin's request number, which its reply is matched by.
    request: u64,
    command: Command,
}

/// The recovered state a core starts from.
pub(crate) struct Recovery {
    pub tree: DataTree,
    pub tree_config: TreeConfig,
    pub wal: Wal,
    pub raft: RawNode<ArborStorage>,
    pub conf_state: ConfState,
    pub applied_index: u64,
    /// The durable commit index: every acknowledged write is at or below it.
    pub commit_index: u64,
    /// The cluster id the peer transport starts with.
    pub cluster_id: u64,
    /// Where to record a cluster id adopted from the cluster this fresh observer joins.
    pub cluster_id_adoption: Option<std::path::PathBuf>,
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
        caught_up: oneshot::Sender<()>,
        network: Option<Arc<crate::peer::PeerNetwork>>,
    ) -> Core {
        let now = Instant::now();
        // ZooKeeper's session id: server id in the top byte, wall-clock milliseconds below
        // (SessionTrackerImpl.initializeNextSessionId), so ids stay unique across restarts.
        let session_id_next =
            ((wall_clock_ms() << 24) as u64 >> 8) as i64 | (i64::from(config.server_id) << 56);
        let container_interval = Duration::from_millis(config.container_check_interval_ms);
        let mut core = Core {
            tree_config: recovery.tree_config,
            tree: recovery.tree,
            watches: WatchManager::new(),
            connections: HashMap::new(),
            sessions: HashMap::new(),
            wal: Some(recovery.wal),
            durability_tx,
            server_id: u64::from(config.server_id),
            raft: recovery.raft,
            persisting: None,
            waiters: HashMap::new(),
            forwarded: HashMap::new(),
            pending_reads: HashMap::new(),
            network,
            config_bootstrap_pending: false,
            guest_addresses: BTreeMap::new(),
            was_member: false,
            read_only_announced: false,
            touched: Default::default(),
            ticks: 0,
            session_pending: HashMap::new(),
            stopping: None,
            leaderless_since: Some(now),
            // Request numbers of this run must not meet those of entries proposed before a
            // restart (they are re-applied from the log): start somewhere random.
            next_request: rand::random::<u64>() >> 1,
            parked: VecDeque::new(),
            held: VecDeque::new(),
            reconfigs_waiting: VecDeque::new(),
            conf_state: recovery.conf_state,
            applied_index: recovery.applied_index,
            leader: None,
            cleanup_pending: BTreeSet::new(),
            next_cleanup: now + container_interval,
            entries_since_snapshot: 0,
            snapshot_in_progress: false,
            session_id_next,
            stats: Stats::new(),
            security: security::SecurityState::new(&config),
            fatal: None,
            startup: Some((recovery.commit_index, caught_up)),
            config,
        };
        core.refresh_sessions();
        // A lone voter need not wait for an election timeout to lead.
        if core.conf_state.voters.len() == 1
            && core.conf_state.is_voter(arbor_raft::NodeId(core.server_id))
        {
            core.raft.campaign();
        }
        core.check_caught_up();
        core
    }

    /// Tells the server once every entry committed before the restart is applied again.
    pub(super) fn check_caught_up(&mut self) {
        if let Some((target, _)) = &self.startup
            && self.applied_index >= *target
            && let Some((_, tell)) = self.startup.take()
        {
            let _ = tell.send(());
        }
    }

    /// Runs until shutdown or a fatal storage error.
    pub(crate) async fn run(
        mut self,
        mut inbox: mpsc::Receiver<CoreMessage>,
        mut durability: mpsc::UnboundedReceiver<Durability>,
        mut peer_inbox: mpsc::Receiver<(u64, bytes::Bytes)>,
    ) -> Result<(), String> {
        let tick = Duration::from_millis(u64::from(self.config.raft_tick_ms).clamp(1, 1000));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                Some(notice) = durability.recv() => self.on_durability(notice),
                Some((from, payload)) = peer_inbox.recv() => {
                    self.on_peer_message(from, &payload);
                    let mut drained = 0;
                    while drained < 1024 {
                        match peer_inbox.try_recv() {
                            Ok((from, payload)) => {
                                drained += 1;
                                self.on_peer_message(from, &payload);
                            }
                            Err(_) => break,
                        }
                    }
                }
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
            self.drive_raft();
            if let Some(deadline) = self.stopping
                && (!self.is_leader() || Instant::now() >= deadline)
            {
                break;
            }
        }
        self.finish()
    }

    /// A graceful stop. A leader with other voters first hands leadership to the most
    /// up-to-date of them (TimeoutNow), so a rolling restart costs no election timeout; the
    /// loop ends once leadership moved or after two election timeouts. False: stop now.
    fn begin_shutdown(&mut self) -> bool {
        if !self.is_leader() {
            return false;
        }
        let status = self.raft.status();
        let successor = status
            .progress
            .iter()
            .filter(|(id, progress)| status.conf_state.is_voter(**id) && progress.recent_active)
            .max_by_key(|(_, progress)| progress.matched)
            .map(|(&id, _)| id);
        let Some(successor) = successor else {
            return false;
        };
        tracing::info!(to = successor.0, "handing over leadership before stopping");
        self.raft.transfer_leader(successor);
        let election = u64::from(self.config.raft_tick_ms) * self.config.election_timeout_ticks;
        self.stopping = Some(Instant::now() + Duration::from_millis(election * 2));
        true
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
                identities,
                reply,
            } => {
                self.on_connect(
                    connection, peer, request, outbound, closer, permits, identities, reply,
                );
            }
            CoreMessage::Sasl {
                connection,
                xid,
                received,
                outcome,
            } => self.on_sasl(connection, xid, received, outcome),
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
            CoreMessage::Shutdown => return self.begin_shutdown(),
        }
        true
    }
}
