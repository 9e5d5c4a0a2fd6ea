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

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arbor_log::{Entry, SnapshotMeta, SubmitError, Wal, WriteBatch};
use arbor_proto::{
    ConnectRequest, ConnectResponse, ErrorCode, EventType, Id, KeeperState, Request, Response,
    SessionId, WatcherEvent, Zxid,
};
use arbor_tree::{Command, DataTree, TreeConfig, Txn, WriteRequest};
use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::ServerConfig;
use crate::outbound::Outbound;
use crate::stats::Stats;
use crate::watches::{ConnectionId, Notification, WatchManager};

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

    // ----- connections and sessions -------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn on_connect(
        &mut self,
        connection: ConnectionId,
        peer: SocketAddr,
        request: ConnectRequest,
        outbound: mpsc::Sender<Outbound>,
        closer: CancellationToken,
        permits: Arc<Semaphore>,
        reply: oneshot::Sender<ConnectOutcome>,
    ) {
        let last_applied = self.tree.last_applied_zxid();
        if request.last_zxid_seen > last_applied.0 {
            // ZooKeeper closes without an answer so the client tries a server that is not
            // behind it (single system image: a client never goes back in time).
            warn!(
                %peer,
                client_zxid = %Zxid(request.last_zxid_seen),
                server_zxid = %last_applied,
                "refusing client that has seen a newer zxid than this server"
            );
            let _ = reply.send(ConnectOutcome::Close("client has seen a newer zxid"));
            return;
        }
        let mut state = Connection {
            peer,
            session_id: None,
            identities: vec![Id::new("ip", peer.ip().to_string())],
            outbound,
            closer,
            permits,
            writes_in_flight: 0,
            queued: VecDeque::new(),
            received: 1,
            sent: 0,
            established: Instant::now(),
        };
        let read_only = request.read_only;
        if request.session_id != 0 {
            let session_id = SessionId(request.session_id);
            let valid = match (
                self.tree.session(session_id),
                self.sessions.get(&session_id),
            ) {
                (Some(session), Some(liveness)) => {
                    !liveness.closing && session.password() == request.password.as_ref()
                }
                _ => false,
            };
            if !valid {
                info!(%peer, session = %session_id, "session expired or bad password on reconnect");
                let _ = reply.send(ConnectOutcome::Refused(ConnectResponse::refused(read_only)));
                return;
            }
            let Some(session) = self.tree.session(session_id) else {
                return;
            };
            let timeout_ms = session.timeout_ms();
            let password = Bytes::copy_from_slice(session.password());
            // The session moves to this connection; the old one is closed, as ZooKeeper does
            // (ServerCnxnFactory.closeSession with reason CLIENT_RECONNECT).
            if let Some(liveness) = self.sessions.get_mut(&session_id) {
                liveness.last_heard = Instant::now();
                if let Some(old) = liveness.connection.replace(connection)
                    && old != connection
                {
                    self.close_connection(old, "session moved to a new connection");
                }
            }
            state.session_id = Some(session_id);
            self.connections.insert(connection, state);
            info!(%peer, session = %session_id, "session resumed");
            let _ = reply.send(ConnectOutcome::Accepted(ConnectResponse {
                protocol_version: 0,
                timeout_ms,
                session_id: session_id.0,
                password,
                read_only: read_only.map(|_| false),
            }));
            return;
        }
        let (min, max) = self.config.session_timeout_bounds_ms();
        let timeout_ms = (request.timeout_ms.max(0) as u32).clamp(min, max) as i32;
        let session_id = self.mint_session_id();
        let password: Vec<u8> = (0..16).map(|_| rand::random::<u8>()).collect();
        self.connections.insert(connection, state);
        self.propose(
            Command::CreateSession {
                session_id,
                timeout_ms,
                password,
            },
            Waiter::Connect {
                connection,
                reply,
                read_only,
            },
        );
    }

    fn mint_session_id(&mut self) -> SessionId {
        loop {
            let candidate = SessionId(self.session_id_next);
            self.session_id_next = self.session_id_next.wrapping_add(1);
            // i64::MIN is the container marker in ephemeralOwner; never hand it out.
            if candidate.0 != i64::MIN
                && candidate.0 != 0
                && self.tree.session(candidate).is_none()
                && !self.sessions.contains_key(&candidate)
            {
                return candidate;
            }
        }
    }

    /// Forgets a connection whose socket closed. Its session lives on until it times out.
    fn drop_connection(&mut self, connection: ConnectionId) {
        let Some(state) = self.connections.remove(&connection) else {
            return;
        };
        self.watches.remove_connection(connection);
        if let Some(session_id) = state.session_id
            && let Some(liveness) = self.sessions.get_mut(&session_id)
            && liveness.connection == Some(connection)
        {
            liveness.connection = None;
        }
        debug!(peer = %state.peer, "connection closed");
    }

    /// Closes a connection from our side.
    fn close_connection(&mut self, connection: ConnectionId, reason: &str) {
        if let Some(state) = self.connections.get(&connection) {
            info!(peer = %state.peer, reason, "closing connection");
            state.closer.cancel();
        }
        self.drop_connection(connection);
    }

    fn touch(&mut self, connection: ConnectionId) {
        if let Some(session_id) = self.connections.get(&connection).and_then(|c| c.session_id)
            && let Some(liveness) = self.sessions.get_mut(&session_id)
            && liveness.connection == Some(connection)
        {
            liveness.last_heard = Instant::now();
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.closing && now.duration_since(s.last_heard) > s.timeout)
            .map(|(&id, _)| id)
            .collect();
        for session_id in expired {
            info!(session = %session_id, "session expired");
            if let Some(liveness) = self.sessions.get_mut(&session_id) {
                liveness.closing = true;
            }
            self.stats.sessions_expired += 1;
            self.propose(Command::CloseSession { session_id }, Waiter::Expiry);
        }
        if now >= self.next_cleanup {
            self.next_cleanup =
                now + Duration::from_millis(self.config.container_check_interval_ms);
            self.propose_cleanups();
        }
    }

    /// Container and TTL removal: decided here (the leader), carried out by logged commands
    /// that every replica applies, never by a replica's own clock.
    fn propose_cleanups(&mut self) {
        const CLEANUPS_PER_ROUND_MAX: usize = 1000;
        let now_ms = wall_clock_ms();
        let ttl = self.tree.expired_ttl_nodes(now_ms, CLEANUPS_PER_ROUND_MAX);
        let containers = self.tree.empty_containers(CLEANUPS_PER_ROUND_MAX);
        for path in ttl {
            if self.cleanup_pending.insert(path.clone()) {
                self.propose(
                    Command::DeleteExpiredTtl { path: path.clone() },
                    Waiter::Cleanup { path },
                );
            }
        }
        for path in containers {
            if self.cleanup_pending.insert(path.clone()) {
                self.propose(
                    Command::DeleteEmptyContainer { path: path.clone() },
                    Waiter::Cleanup { path },
                );
            }
        }
    }

    // ----- requests ----------------------------------------------------------------------------

    fn on_request(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        request: Request,
        received: Instant,
    ) {
        self.stats.packets_received += 1;
        self.touch(connection);
        let Some(state) = self.connections.get_mut(&connection) else {
            return;
        };
        state.received += 1;
        if state.writes_in_flight > 0 || !state.queued.is_empty() {
            state.queued.push_back((xid, request, received));
            return;
        }
        self.process(connection, xid, request, received);
    }

    fn process(&mut self, connection: ConnectionId, xid: i32, request: Request, received: Instant) {
        let Some(state) = self.connections.get(&connection) else {
            return;
        };
        let Some(session_id) = state.session_id else {
            return;
        };
        let write = match request {
            Request::Create(r) => WriteRequest::Create(r),
            Request::Create2(r) => WriteRequest::Create2(r),
            Request::CreateContainer(r) => WriteRequest::CreateContainer(r),
            Request::CreateTtl(r) => WriteRequest::CreateTtl(r),
            Request::Delete(r) => WriteRequest::Delete(r),
            Request::SetData(r) => WriteRequest::SetData(r),
            Request::SetAcl(r) => WriteRequest::SetAcl(r),
            Request::Check(r) => WriteRequest::Check(r),
            Request::Multi(r) => WriteRequest::Multi(r.ops),
            Request::CloseSession => {
                if let Some(liveness) = self.sessions.get_mut(&session_id) {
                    liveness.closing = true;
                }
                self.propose_for(
                    connection,
                    xid,
                    received,
                    Command::CloseSession { session_id },
                    true,
                );
                return;
            }
            read => {
                let close_after = matches!(read, Request::Auth(_) | Request::Sasl(_));
                let result = self.serve_read(connection, session_id, read);
                let failed = result.is_err();
                let zxid = self.tree.last_applied_zxid().0;
                self.reply(connection, xid, zxid, result, received);
                if close_after && failed {
                    // ZooKeeper answers a failed authentication and then closes the connection.
                    self.send(connection, Outbound::Close);
                }
                return;
            }
        };
        let identities = state.identities.clone();
        self.propose_for(
            connection,
            xid,
            received,
            Command::Request {
                session_id,
                identities,
                request: write,
            },
            false,
        );
    }

    fn propose_for(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        received: Instant,
        command: Command,
        close_after: bool,
    ) {
        if let Some(state) = self.connections.get_mut(&connection) {
            state.writes_in_flight += 1;
        }
        self.propose(
            command,
            Waiter::Client {
                connection,
                xid,
                received,
                close_after,
            },
        );
    }

    /// Gives a command its log position and zxid and adds it to the batch being built.
    fn propose(&mut self, command: Command, waiter: Waiter) {
        let index = self.next_index;
        self.next_index += 1;
        let epoch = self.term as u32;
        let counter = if self.last_zxid_assigned.epoch() == epoch {
            self.last_zxid_assigned.counter().wrapping_add(1)
        } else {
            1
        };
        let zxid = Zxid::from_parts(epoch, counter);
        self.last_zxid_assigned = zxid;
        let txn = Txn {
            time_ms: wall_clock_ms(),
            command,
        };
        self.building.push(Proposal {
            index,
            zxid,
            txn,
            waiter,
        });
    }

    /// Sends this iteration's proposals to the WAL as one batch.
    fn submit_batch(&mut self) {
        if self.building.is_empty() {
            return;
        }
        let Some(wal) = self.wal.as_ref() else { return };
        let proposals = std::mem::take(&mut self.building);
        let entries: Vec<Entry> = proposals
            .iter()
            .map(|p| Entry {
                index: p.index,
                term: self.term,
                data: p.txn.encode().into(),
            })
            .collect();
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let notify = self.durability_tx.clone();
        let batch = WriteBatch {
            hard_state: None,
            truncate_after: None,
            entries,
        };
        let submitted = wal.submit(
            batch,
            Box::new(move |result| {
                let result = result.map_err(|error| error.to_string());
                let _ = notify.send(Durability::Batch { sequence, result });
            }),
        );
        match submitted {
            Ok(()) => self.in_flight.push_back(Batch {
                sequence,
                proposals,
            }),
            Err(SubmitError::Full { .. }) => {
                // Nothing after these proposals was submitted, so keeping them at the front of
                // the next batch preserves the log order; retried on the next loop turn.
                self.next_sequence -= 1;
                let mut later = std::mem::take(&mut self.building);
                self.building = proposals;
                self.building.append(&mut later);
            }
            Err(error) => {
                self.fatal = Some(format!("WAL refused a batch: {error}"));
            }
        }
    }

    fn on_durability(&mut self, notice: Durability) {
        match notice {
            Durability::Batch { sequence, result } => {
                if let Err(error) = result {
                    error!(%error, "WAL write failed; stopping (no write is acknowledged unless durable)");
                    self.fatal = Some(format!("WAL write failed: {error}"));
                    return;
                }
                let Some(batch) = self.in_flight.pop_front() else {
                    self.fatal = Some(format!("durability notice {sequence} for no batch"));
                    return;
                };
                assert_eq!(
                    batch.sequence, sequence,
                    "WAL reported batches out of order"
                );
                self.stats.fsync_batches += 1;
                for proposal in batch.proposals {
                    self.apply(proposal);
                }
                self.maybe_snapshot();
            }
            Durability::Snapshot { index, result } => {
                self.snapshot_in_progress = false;
                match result {
                    Ok(()) => {
                        info!(index, "snapshot saved");
                        if let Some(wal) = self.wal.as_ref()
                            && let Err(error) = wal.compact(index)
                        {
                            warn!(%error, index, "could not compact the WAL after a snapshot");
                        }
                    }
                    Err(error) => warn!(%error, index, "snapshot failed; will retry later"),
                }
            }
        }
    }

    fn apply(&mut self, proposal: Proposal) {
        let Proposal {
            index,
            zxid,
            txn,
            waiter,
        } = proposal;
        let applied = self.tree.apply(zxid, &txn);
        self.last_applied_index = index;
        self.last_applied_term = self.term;
        self.entries_since_snapshot += 1;
        let mut notifications = Vec::new();
        for trigger in &applied.triggers {
            self.watches
                .trigger(&trigger.path, trigger.event, &mut notifications);
        }
        self.deliver(zxid, notifications);
        match &txn.command {
            Command::CloseSession { session_id } => self.session_closed(*session_id, &waiter),
            Command::CreateSession {
                session_id,
                timeout_ms,
                ..
            } if applied.result.is_ok() => {
                self.sessions.insert(
                    *session_id,
                    SessionLiveness {
                        timeout: Duration::from_millis(u64::from((*timeout_ms).max(0) as u32)),
                        last_heard: Instant::now(),
                        connection: None,
                        closing: false,
                    },
                );
            }
            _ => {}
        }
        match waiter {
            Waiter::Client {
                connection,
                xid,
                received,
                close_after,
            } => {
                self.reply(connection, xid, zxid.0, applied.result, received);
                if close_after {
                    self.send(connection, Outbound::Close);
                }
                self.write_done(connection);
            }
            Waiter::Connect {
                connection,
                reply,
                read_only,
            } => {
                self.session_created(connection, &txn.command, applied.result, reply, read_only);
            }
            Waiter::Cleanup { path } => {
                self.cleanup_pending.remove(&path);
            }
            Waiter::Expiry => {}
        }
    }

    fn session_created(
        &mut self,
        connection: ConnectionId,
        command: &Command,
        result: Result<Response, ErrorCode>,
        reply: oneshot::Sender<ConnectOutcome>,
        read_only: Option<bool>,
    ) {
        let Command::CreateSession {
            session_id,
            timeout_ms,
            password,
        } = command
        else {
            return;
        };
        if let Err(code) = result {
            warn!(session = %session_id, %code, "session creation failed");
            let _ = reply.send(ConnectOutcome::Refused(ConnectResponse::refused(read_only)));
            self.drop_connection(connection);
            return;
        }
        let Some(state) = self.connections.get_mut(&connection) else {
            // The client hung up before its session was durable; the session will time out.
            return;
        };
        state.session_id = Some(*session_id);
        if let Some(liveness) = self.sessions.get_mut(session_id) {
            liveness.connection = Some(connection);
        }
        info!(peer = %state.peer, session = %session_id, timeout_ms, "session established");
        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms: *timeout_ms,
            session_id: session_id.0,
            password: Bytes::copy_from_slice(password),
            read_only: read_only.map(|_| false),
        };
        if reply.send(ConnectOutcome::Accepted(response)).is_err() {
            self.drop_connection(connection);
        }
    }

    /// A session ended (closed by its client or expired): its connection goes too, unless the
    /// close came from that connection, which gets its reply first.
    fn session_closed(&mut self, session_id: SessionId, waiter: &Waiter) {
        let Some(liveness) = self.sessions.remove(&session_id) else {
            return;
        };
        if let Some(connection) = liveness.connection {
            let closing_itself =
                matches!(waiter, Waiter::Client { connection: c, .. } if *c == connection);
            if !closing_itself {
                self.close_connection(connection, "session ended");
            }
        }
    }

    /// A write of this connection was applied: serve what queued behind it.
    fn write_done(&mut self, connection: ConnectionId) {
        let Some(state) = self.connections.get_mut(&connection) else {
            return;
        };
        state.writes_in_flight = state.writes_in_flight.saturating_sub(1);
        while let Some(state) = self.connections.get_mut(&connection) {
            if state.writes_in_flight > 0 {
                break;
            }
            let Some((xid, request, received)) = state.queued.pop_front() else {
                break;
            };
            self.process(connection, xid, request, received);
        }
    }

    // ----- replies and events -----------------------------------------------------------------

    fn reply(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        zxid: i64,
        result: Result<Response, ErrorCode>,
        received: Instant,
    ) {
        self.stats.record_latency(received.elapsed());
        self.stats.packets_sent += 1;
        if let Some(state) = self.connections.get_mut(&connection) {
            state.sent += 1;
            state.permits.add_permits(1);
        }
        self.send(connection, Outbound::Reply { xid, zxid, result });
    }

    fn deliver(&mut self, zxid: Zxid, notifications: Vec<Notification>) {
        for Notification {
            connection,
            event,
            path,
        } in notifications
        {
            let event = WatcherEvent {
                event_type: event.code(),
                state: KeeperState::SyncConnected.code(),
                path,
            };
            self.stats.packets_sent += 1;
            self.send(
                connection,
                Outbound::Event {
                    zxid: zxid.0,
                    event,
                },
            );
        }
    }

    fn send(&mut self, connection: ConnectionId, message: Outbound) {
        let Some(state) = self.connections.get(&connection) else {
            return;
        };
        match state.outbound.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // A client that does not read its socket must not grow our memory: its queue
                // is bounded, and past the bound it loses the connection (not the session).
                self.close_connection(connection, "slow reader: outbound queue full");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.drop_connection(connection),
        }
    }

    // ----- snapshots ----------------------------------------------------------------------------

    fn maybe_snapshot(&mut self) {
        if self.snapshot_in_progress
            || self.entries_since_snapshot < self.config.snapshot_every_entries
        {
            return;
        }
        let Some(wal) = self.wal.as_ref() else { return };
        self.snapshot_in_progress = true;
        self.entries_since_snapshot = 0;
        // A clone of persistent structures: cheap here, serialized on a blocking thread while
        // this task keeps applying.
        let tree = self.tree.clone();
        let store = wal.snapshots();
        let meta = SnapshotMeta {
            index: self.last_applied_index,
            term: self.last_applied_term,
            app_meta: Vec::new(),
        };
        let notify = self.durability_tx.clone();
        tokio::task::spawn_blocking(move || {
            let index = meta.index;
            let result = store
                .save(&meta, &mut |out: &mut dyn std::io::Write| {
                    tree.write_snapshot(out)
                })
                .map_err(|error| error.to_string());
            let _ = notify.send(Durability::Snapshot { index, result });
        });
    }

    // ----- accessors for the admin words -------------------------------------------------------

    pub(crate) fn tree(&self) -> &DataTree {
        &self.tree
    }

    pub(crate) fn tree_config(&self) -> &TreeConfig {
        &self.tree_config
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub(crate) fn watches(&self) -> &WatchManager {
        &self.watches
    }

    pub(crate) fn outstanding_requests(&self) -> usize {
        self.connections
            .values()
            .map(|c| c.queued.len() + c.writes_in_flight as usize)
            .sum()
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.connections.len()
    }

    pub(crate) fn wal_stats(&self) -> Option<arbor_log::WalStats> {
        self.wal.as_ref().map(Wal::stats)
    }

    /// One line per connection, as `cons` and `stat` print them.
    pub(crate) fn connection_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .connections
            .values()
            .map(|c| {
                let session = c.session_id.map_or(0, |s| s.0);
                format!(
                    " /{}[1](queued={},recved={},sent={},sid=0x{:x},lop=NA,est={},to={})",
                    c.peer,
                    c.queued.len(),
                    c.received,
                    c.sent,
                    session,
                    c.established.elapsed().as_millis(),
                    c.session_id
                        .and_then(|s| self.tree.session(s))
                        .map_or(0, |s| s.timeout_ms()),
                )
            })
            .collect();
        lines.sort();
        lines
    }

    /// Sessions with their ephemerals, for `dump`.
    pub(crate) fn session_ephemerals(&self) -> Vec<(SessionId, Vec<String>)> {
        let mut rows: Vec<(SessionId, Vec<String>)> = self
            .tree
            .sessions()
            .map(|(id, _)| (id, self.tree.get_ephemerals(id, "/")))
            .collect();
        rows.sort();
        rows
    }

    /// Watches grouped by session, for `wchc`.
    pub(crate) fn watches_by_session(&self) -> Vec<(SessionId, Vec<String>)> {
        let mut rows = Vec::new();
        for (&id, connection) in &self.connections {
            let paths: Vec<String> = self
                .watches
                .paths_of(id)
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            if let Some(session) = connection.session_id
                && !paths.is_empty()
            {
                rows.push((session, paths));
            }
        }
        rows.sort();
        rows
    }

    /// Watches grouped by path with session ids, for `wchp`.
    pub(crate) fn watches_by_path(&self) -> Vec<(String, Vec<SessionId>)> {
        self.watches
            .watchers_by_path()
            .into_iter()
            .map(|(path, connections)| {
                let sessions = connections
                    .iter()
                    .filter_map(|c| self.connections.get(c).and_then(|c| c.session_id))
                    .collect();
                (path, sessions)
            })
            .collect()
    }

    // Read handling lives in reads.rs.
    pub(crate) fn connection_identities(&self, connection: ConnectionId) -> &[Id] {
        self.connections
            .get(&connection)
            .map_or(&[], |c| c.identities.as_slice())
    }

    pub(crate) fn add_identities(&mut self, connection: ConnectionId, identities: Vec<Id>) {
        if let Some(state) = self.connections.get_mut(&connection) {
            for id in identities {
                if !state.identities.contains(&id) {
                    state.identities.push(id);
                }
            }
        }
    }

    pub(crate) fn watches_mut(&mut self) -> &mut WatchManager {
        &mut self.watches
    }

    pub(crate) fn send_event_now(
        &mut self,
        connection: ConnectionId,
        event: EventType,
        path: &str,
    ) {
        let zxid = self.tree.last_applied_zxid();
        self.deliver(
            zxid,
            vec![Notification {
                connection,
                event,
                path: path.to_owned(),
            }],
        );
    }
}
