//! Handshakes, session liveness and expiry, and container/TTL cleanup proposals.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_proto::{ConnectRequest, ConnectResponse, Id, SessionId, Zxid};
use arbor_tree::{Command, ServerId};
use bytes::Bytes;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use std::collections::HashMap;

use super::*;
use crate::watches::ConnectionId;

impl Core {
    // ----- connections and sessions -------------------------------------------------------

    /// Whether this server is cut off from the quorum long enough to serve read-only clients
    /// (ZooKeeper's read-only mode: two election timeouts without a leader).
    pub(crate) fn serving_read_only(&self) -> bool {
        let election = u64::from(self.config.raft_tick_ms) * self.config.election_timeout_ticks;
        self.config.read_only_mode_enabled
            && self.config.is_clustered()
            && self.leader.is_none()
            && self
                .leaderless_since
                .is_some_and(|since| since.elapsed() >= Duration::from_millis(election * 2))
    }

    /// A handshake while cut off from the quorum: only clients that accept a read-only server
    /// get in, with their session if this server knows it, else with a session local to this
    /// server (never replicated, gone with the connection).
    fn connect_read_only(
        &mut self,
        connection: ConnectionId,
        mut state: Connection,
        request: ConnectRequest,
        reply: oneshot::Sender<ConnectOutcome>,
    ) {
        if request.read_only != Some(true) {
            let _ = reply.send(ConnectOutcome::Close(
                "no quorum, and the client does not accept a read-only server",
            ));
            return;
        }
        let (min, max) = self.config.session_timeout_bounds_ms();
        let known = self
            .tree
            .session(SessionId(request.session_id))
            .filter(|session| session.password() == request.password.as_ref())
            .map(|session| {
                (
                    session.timeout_ms(),
                    Bytes::copy_from_slice(session.password()),
                )
            });
        let (session_id, timeout_ms, password) = match known {
            Some((timeout_ms, password)) => (SessionId(request.session_id), timeout_ms, password),
            None => {
                let timeout_ms = (request.timeout_ms.max(0) as u32).clamp(min, max) as i32;
                let password: Vec<u8> = (0..16).map(|_| rand::random::<u8>()).collect();
                (self.mint_session_id(), timeout_ms, Bytes::from(password))
            }
        };
        state.session_id = Some(session_id);
        state.read_only = true;
        info!(peer = %state.peer, session = %session_id, "read-only session");
        self.connections.insert(connection, state);
        let _ = reply.send(ConnectOutcome::Accepted(ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id: session_id.0,
            password,
            read_only: Some(true),
        }));
    }

    /// Logs ZooKeeper's "Read-only server started" once each time this server starts serving
    /// read-only clients: operators, and harnesses written for ZooKeeper, watch for it.
    fn announce_read_only(&mut self) {
        let serving = self.serving_read_only();
        if serving && !self.read_only_announced {
            warn!("Read-only server started (no quorum; serving clients that accept read-only)");
        } else if !serving && self.read_only_announced {
            info!("read-only service ended");
        }
        self.read_only_announced = serving;
    }

    /// A clustered server without a leader for an election timeout (time enough for a
    /// healthy cluster to elect one) closes its read-write clients, as ZooKeeper's servers do
    /// when they lose their leader, so that they move to a server of the majority instead of
    /// waiting on one that may be cut off for good. Elections that finish in time cost
    /// clients nothing; read-only clients stay.
    fn release_clients_without_leader(&mut self) {
        let election = u64::from(self.config.raft_tick_ms) * self.config.election_timeout_ticks;
        let long_leaderless = self.config.is_clustered()
            && self.leader.is_none()
            && self
                .leaderless_since
                .is_some_and(|since| since.elapsed() >= Duration::from_millis(election));
        if !long_leaderless {
            return;
        }
        let stranded: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| !c.read_only)
            .map(|(&id, _)| id)
            .collect();
        for connection in stranded {
            self.close_connection(connection, "no leader for an election timeout");
        }
    }

    /// A quorum is back: read-only clients are sent off to find a read-write server.
    pub(super) fn close_read_only_connections(&mut self) {
        let read_only: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.read_only)
            .map(|(&id, _)| id)
            .collect();
        for connection in read_only {
            self.close_connection(connection, "quorum is back: read-only service ends");
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_connect(
        &mut self,
        connection: ConnectionId,
        peer: SocketAddr,
        request: ConnectRequest,
        outbound: crate::limits::OutboundSender,
        closer: CancellationToken,
        permits: Arc<Semaphore>,
        transport_identities: Vec<Id>,
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
        let mut identities = vec![Id::new("ip", peer.ip().to_string())];
        identities.extend(transport_identities);
        let state = Connection {
            peer,
            session_id: None,
            identities,
            outbound,
            closer,
            permits,
            writes_in_flight: 0,
            queued: VecDeque::new(),
            read_only: false,
            received: 1,
            sent: 0,
            established: Instant::now(),
        };
        let read_only = request.read_only;
        if self.serving_read_only() {
            self.connect_read_only(connection, state, request, reply);
            return;
        }
        if self.config.is_clustered() && self.leader.is_none() {
            // Like a ZooKeeper server looking for a leader: a client taken in now could do
            // nothing until one is found (or read-only mode starts), and a cut-off server may
            // never find one; turned away, it tries the next server of its connect string.
            let _ = reply.send(ConnectOutcome::Close("no leader known: try another server"));
            return;
        }
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
                let why = match (
                    self.tree.session(session_id),
                    self.sessions.get(&session_id),
                ) {
                    (None, _) => "not in the session table",
                    (Some(_), None) => "no liveness record",
                    (Some(_), Some(liveness)) if liveness.closing => "closing",
                    (Some(_), Some(_)) => "bad password",
                };
                info!(%peer, session = %session_id, why, "session expired or bad password on reconnect");
                let _ = reply.send(ConnectOutcome::Refused(ConnectResponse::refused(read_only)));
                return;
            }
            self.connections.insert(connection, state);
            let me = ServerId(self.server_id);
            if self
                .tree
                .session(session_id)
                .is_some_and(|session| session.owner() == Some(me))
            {
                self.resume_session(connection, session_id, reply, read_only);
            } else {
                // The client comes from another server (or the log never recorded an owner):
                // the move is logged, and the client answered once it is applied, so that
                // every write the old server sends after it, in log order, is refused as
                // SessionMoved (ZooKeeper's follower revalidates with the leader first too).
                info!(%peer, session = %session_id, "session moving to this server");
                self.propose(
                    Command::MoveSession { session_id },
                    Waiter::Connect {
                        connection,
                        reply,
                        read_only,
                    },
                );
            }
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

    /// A reconnect of `session_id` on `connection` (already registered) is complete: the
    /// session moves to it, the connection it had here before is closed, and the client gets
    /// its session back.
    fn resume_session(
        &mut self,
        connection: ConnectionId,
        session_id: SessionId,
        reply: oneshot::Sender<ConnectOutcome>,
        read_only: Option<bool>,
    ) {
        let Some(session) = self.tree.session(session_id) else {
            let _ = reply.send(ConnectOutcome::Refused(ConnectResponse::refused(read_only)));
            self.drop_connection(connection);
            return;
        };
        let timeout_ms = session.timeout_ms();
        let password = Bytes::copy_from_slice(session.password());
        // The old connection is closed, as ZooKeeper does (ServerCnxnFactory.closeSession
        // with reason CLIENT_RECONNECT).
        if let Some(liveness) = self.sessions.get_mut(&session_id) {
            liveness.last_heard = Instant::now();
            if let Some(old) = liveness.connection.replace(connection)
                && old != connection
            {
                self.close_connection(old, "session moved to a new connection");
            }
        }
        let Some(state) = self.connections.get_mut(&connection) else {
            return;
        };
        state.session_id = Some(session_id);
        info!(peer = %state.peer, session = %session_id, "session resumed");
        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id: session_id.0,
            password,
            read_only: read_only.map(|_| false),
        };
        if reply.send(ConnectOutcome::Accepted(response)).is_err() {
            self.drop_connection(connection);
        }
    }

    /// A `MoveSession` this server proposed for a reconnecting client was applied: the
    /// client gets its session back, unless it ended meanwhile.
    pub(super) fn session_moved_here(
        &mut self,
        connection: ConnectionId,
        session_id: SessionId,
        result: Result<arbor_proto::Response, arbor_proto::ErrorCode>,
        reply: oneshot::Sender<ConnectOutcome>,
        read_only: Option<bool>,
    ) {
        if !self.connections.contains_key(&connection) {
            // The client hung up while the move was in the log.
            return;
        }
        let live = self
            .sessions
            .get(&session_id)
            .is_some_and(|liveness| !liveness.closing);
        if result.is_err() || !live {
            info!(session = %session_id, "session ended while moving to this server");
            let _ = reply.send(ConnectOutcome::Refused(ConnectResponse::refused(read_only)));
            self.drop_connection(connection);
            return;
        }
        self.resume_session(connection, session_id, reply, read_only);
    }

    pub(super) fn mint_session_id(&mut self) -> SessionId {
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
    pub(super) fn drop_connection(&mut self, connection: ConnectionId) {
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
    pub(super) fn close_connection(&mut self, connection: ConnectionId, reason: &str) {
        if let Some(state) = self.connections.get(&connection) {
            info!(peer = %state.peer, reason, "closing connection");
            state.closer.cancel();
        }
        self.drop_connection(connection);
    }

    pub(super) fn touch(&mut self, connection: ConnectionId) {
        if let Some(session_id) = self.connections.get(&connection).and_then(|c| c.session_id)
            && let Some(liveness) = self.sessions.get_mut(&session_id)
            && liveness.connection == Some(connection)
        {
            liveness.last_heard = Instant::now();
            self.touched.insert(session_id);
        }
    }

    pub(super) fn on_tick(&mut self) {
        self.raft.tick();
        self.ticks += 1;
        self.report_touches();
        self.release_clients_without_leader();
        self.announce_read_only();
        if self
            .ticks
            .is_multiple_of(self.config.election_timeout_ticks.max(1))
        {
            self.retry_reads();
            self.maintain_membership();
        }
        self.expire_forwarded();
        self.flush_held();
        self.retry_waiting_reconfigs();
        // Only the leader decides expiry and cleanups, through logged commands (ARCHITECTURE.md,
        // Sessions): every replica then applies the same decision.
        if self.leader != Some(arbor_raft::NodeId(self.server_id)) {
            return;
        }
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
            self.propose(
                Command::CloseSession { session_id },
                Waiter::Expiry { session_id },
            );
        }
        if now >= self.next_cleanup {
            self.next_cleanup =
                now + Duration::from_millis(self.config.container_check_interval_ms);
            self.propose_cleanups();
        }
    }

    /// Rebuilds session liveness from the session table (after recovery or a snapshot from the
    /// leader). Every session gets a fresh timeout: its client could not reach us meanwhile.
    pub(super) fn refresh_sessions(&mut self) {
        let now = Instant::now();
        let mut sessions = HashMap::new();
        for (session_id, session) in self.tree.sessions() {
            let previous = self.sessions.remove(&session_id);
            sessions.insert(
                session_id,
                SessionLiveness {
                    timeout: Duration::from_millis(u64::from(session.timeout_ms().max(0) as u32)),
                    last_heard: now,
                    connection: previous.and_then(|p| p.connection),
                    closing: false,
                },
            );
        }
        // Sessions that no longer exist lose their connection.
        let gone: Vec<ConnectionId> = self
            .sessions
            .values()
            .filter_map(|s| s.connection)
            .collect();
        self.sessions = sessions;
        for connection in gone {
            self.close_connection(connection, "session ended");
        }
    }

    /// Container and TTL removal: decided here (the leader), carried out by logged commands
    /// that every replica applies, never by a replica's own clock.
    pub(super) fn propose_cleanups(&mut self) {
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
}
