//! The write path: requests become Raft proposals; each Ready is made durable in one WAL batch
//! (group commit), then its messages go out and its committed entries are applied and
//! answered; snapshots are taken off the core task.

use std::time::{Duration, Instant};

use arbor_log::{Entry as WalEntry, HardState as WalHardState, SnapshotMeta, WriteBatch};
use arbor_proto::{ConnectResponse, ErrorCode, Request, Response, SessionId, Zxid};
use arbor_raft::{Entry, EntryKind, LogIndex, ProposeError, Ready, SoftState, Storage};
use arbor_tree::{Command, ServerId, Txn, WriteRequest};
use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::*;
use crate::outbound::Outbound;
use crate::watches::ConnectionId;

impl Core {
    // ----- requests ----------------------------------------------------------------------------

    pub(super) fn on_request(
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
        // Writes enter the log in arrival order, so a write never waits for the session's
        // earlier writes (pipelining); anything else waits until they are applied, so it sees
        // them and is answered after them (FIFO per session). Once something waits, everything
        // after it waits too.
        let busy = state
            .session_id
            .is_some_and(|session| self.session_pending.get(&session).is_some_and(|&n| n > 0));
        if !state.queued.is_empty() || (busy && !request.is_write()) {
            state.queued.push_back((xid, request, received));
            return;
        }
        self.process(connection, xid, request, received);
    }

    pub(super) fn process(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        request: Request,
        received: Instant,
    ) {
        if self.connections.contains_key(&connection) && self.memory_budget_refuses(&request) {
            let zxid = self.tree.last_applied_zxid().0;
            self.reply(connection, xid, zxid, Err(ErrorCode::ThrottledOp), received);
            return;
        }
        let Some(state) = self.connections.get(&connection) else {
            return;
        };
        let Some(session_id) = state.session_id else {
            return;
        };
        let enforced = &self.config.enforced_auth_schemes;
        if !enforced.is_empty()
            && !matches!(request, Request::Auth(_) | Request::Sasl(_))
            && !state
                .identities
                .iter()
                .any(|id| enforced.contains(&id.scheme))
        {
            // ZooKeeper's enforce.auth (AuthenticationHelper.enforceAuthentication): the first
            // other request of a session not yet authenticated by a required scheme, a ping
            // included, is answered AuthFailed and the connection is closed.
            warn!(session = %session_id, schemes = ?enforced, "request before the required authentication: AuthFailed, closing the connection");
            let zxid = self.tree.last_applied_zxid().0;
            self.reply(connection, xid, zxid, Err(ErrorCode::AuthFailed), received);
            self.send(connection, Outbound::Close);
            return;
        }
        if state.read_only && (request.is_write() || matches!(request, Request::Sync(_))) {
            let zxid = self.tree.last_applied_zxid().0;
            self.reply(connection, xid, zxid, Err(ErrorCode::NotReadOnly), received);
            return;
        }
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
            Request::Reconfig(r) => WriteRequest::Reconfig(r),
            Request::Sync(r) => {
                self.start_read_index(connection, xid, Request::Sync(r), received);
                return;
            }
            // The CAP dial (ARCHITECTURE.md): every data read waits for a ReadIndex round.
            read @ (Request::Exists(_)
            | Request::GetData(_)
            | Request::GetChildren(_)
            | Request::GetChildren2(_)
            | Request::GetAcl(_)
            | Request::GetAllChildrenNumber(_)
            | Request::MultiRead(_))
                if self.config.linearizable_reads =>
            {
                self.start_read_index(connection, xid, read, received);
                return;
            }
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

    pub(super) fn propose_for(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        received: Instant,
        command: Command,
        close_after: bool,
    ) {
        let Some(session_id) = self.begin_ordered(connection) else {
            return;
        };
        self.propose(
            command,
            Waiter::Client {
                connection,
                session_id,
                xid,
                received,
                close_after,
            },
        );
    }

    /// Proposes a command (forwarding it when another server leads); `waiter` is answered when
    /// it is applied.
    pub(super) fn propose(&mut self, command: Command, waiter: Waiter) {
        let Some(leader) = self.leader else {
            if self.parked.len() >= PARKED_MAX {
                self.fail_waiter(waiter, ErrorCode::ThrottledOp);
            } else {
                // No leader yet (start-up, an election): wait for one.
                self.parked.push_back((command, waiter));
            }
            return;
        };
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        if leader.0 == self.server_id {
            match self.propose_envelope(self.server_id, request, command) {
                Ok(()) => {
                    self.waiters.insert(request, waiter);
                }
                Err(code) => self.fail_waiter(waiter, code),
            }
            return;
        }
        let forward = cluster::PeerMessage::Forward { request, command };
        if !self.send_peer(leader.0, &forward) {
            // Dropped (the link to the leader is down and its queue full): the session's
            // later writes may still get through and be answered first, which would break its
            // FIFO order. Losing the connection now is what the client can act on.
            self.fail_waiter(waiter, ErrorCode::ConnectionLoss);
            return;
        }
        self.waiters.insert(request, waiter);
        let deadline = Instant::now() + self.forward_timeout();
        self.forwarded.insert(request, deadline);
    }

    /// How long a forwarded command may go unanswered before its client is disconnected.
    /// Raft's election timeout in wall-clock time.
    fn election_timeout(&self) -> Duration {
        Duration::from_millis(
            u64::from(self.config.raft_tick_ms) * self.config.election_timeout_ticks,
        )
    }

    fn forward_timeout(&self) -> Duration {
        let election = u64::from(self.config.raft_tick_ms) * self.config.election_timeout_ticks;
        Duration::from_millis((election * 4).max(5_000))
    }

    /// Gives up on forwarded commands nobody answered (a message lost with a leader).
    pub(super) fn expire_forwarded(&mut self) {
        if self.forwarded.is_empty() {
            return;
        }
        let now = Instant::now();
        let expired: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(&request, _)| request)
            .collect();
        for request in expired {
            self.forwarded.remove(&request);
            if let Some(waiter) = self.waiters.remove(&request) {
                self.fail_waiter(waiter, ErrorCode::ConnectionLoss);
            }
        }
    }

    /// Stamps a command (this server leads) and proposes it with its envelope. While a
    /// leadership transfer is under way Raft takes no proposals: the command is held, in
    /// order, until the transfer ends (see `flush_held`) rather than refused, so a graceful
    /// handover costs clients no error; held commands also keep later ones behind them, so a
    /// session's writes keep their order.
    pub(super) fn propose_envelope(
        &mut self,
        origin: u64,
        request: u64,
        command: Command,
    ) -> Result<(), ErrorCode> {
        if let Command::Request {
            request: WriteRequest::Reconfig(reconfig),
            ..
        } = &command
            && self.check_reconfig_quorum(reconfig).is_err()
        {
            // A leader elected a moment ago has not heard from its followers yet, and a
            // server may be reconnecting: give the new membership one election timeout to
            // have its quorum before refusing.
            let deadline = Instant::now() + self.election_timeout();
            let held = HeldProposal {
                origin,
                request,
                command,
            };
            self.reconfigs_waiting.push_back((deadline, held));
            return Ok(());
        }
        self.propose_checked(origin, request, command)
    }

    /// Leader, every tick: proposes the waiting `reconfig`s whose membership now has a quorum
    /// of synced servers, refuses those out of time, and hands back the rest when this server
    /// no longer leads (their clients learn it by ConnectionLoss, as of any leader change).
    pub(super) fn retry_waiting_reconfigs(&mut self) {
        let now = Instant::now();
        for (deadline, held) in std::mem::take(&mut self.reconfigs_waiting) {
            let HeldProposal {
                origin,
                request,
                command,
            } = held;
            let quorum = match &command {
                Command::Request {
                    request: WriteRequest::Reconfig(reconfig),
                    ..
                } => self.check_reconfig_quorum(reconfig),
                _ => Ok(()),
            };
            if !self.is_leader() {
                self.refuse_held(origin, request, ErrorCode::ConnectionLoss);
            } else if quorum.is_ok() {
                if let Err(code) = self.propose_checked(origin, request, command) {
                    self.refuse_held(origin, request, code);
                }
            } else if deadline <= now {
                warn!(
                    "reconfig refused (NewConfigNoQuorum): its membership had no quorum of \
                     servers connected and synced within an election timeout"
                );
                self.refuse_held(origin, request, ErrorCode::NewConfigNoQuorum);
            } else {
                let held = HeldProposal {
                    origin,
                    request,
                    command,
                };
                self.reconfigs_waiting.push_back((deadline, held));
            }
        }
    }

    /// [`Core::propose_envelope`] past the `reconfig` check.
    fn propose_checked(
        &mut self,
        origin: u64,
        request: u64,
        command: Command,
    ) -> Result<(), ErrorCode> {
        if !self.held.is_empty() {
            return self.hold(origin, request, command);
        }
        match self
            .try_propose(origin, request, command)
            .map_err(|refused| *refused)
        {
            Ok(()) => Ok(()),
            Err((ProposeError::TransferInProgress, command)) => self.hold(origin, request, command),
            Err((error, _)) => Err(refusal_code(&error)),
        }
    }

    /// Proposes at once; gives the command back with Raft's refusal.
    fn try_propose(
        &mut self,
        origin: u64,
        request: u64,
        command: Command,
    ) -> Result<(), Box<(ProposeError, Command)>> {
        let txn = Txn {
            time_ms: wall_clock_ms(),
            command,
        };
        let payload = crate::envelope::encode(origin, request, &txn);
        match self.raft.propose(vec![payload]) {
            Ok(_) => Ok(()),
            Err(error) => {
                if !matches!(error, ProposeError::TransferInProgress) {
                    warn!(%error, "proposal refused");
                }
                Err(Box::new((error, txn.command)))
            }
        }
    }

    fn hold(&mut self, origin: u64, request: u64, command: Command) -> Result<(), ErrorCode> {
        if self.held.len() >= PARKED_MAX {
            return Err(ErrorCode::ThrottledOp);
        }
        self.held.push_back(HeldProposal {
            origin,
            request,
            command,
        });
        Ok(())
    }

    /// Proposes the commands held during a leadership transfer that ended with this server
    /// still leading (the transfer timed out or was refused), oldest first.
    pub(super) fn flush_held(&mut self) {
        if self.held.is_empty() || !self.is_leader() {
            return;
        }
        while let Some(held) = self.held.pop_front() {
            let HeldProposal {
                origin,
                request,
                command,
            } = held;
            match self
                .try_propose(origin, request, command)
                .map_err(|refused| *refused)
            {
                Ok(()) => {}
                Err((ProposeError::TransferInProgress, command)) => {
                    self.held.push_front(HeldProposal {
                        origin,
                        request,
                        command,
                    });
                    return;
                }
                Err((error, _)) => self.refuse_held(origin, request, refusal_code(&error)),
            }
        }
    }

    /// Leadership moved away: the held commands will never be proposed here. Their clients
    /// learn it as they learn of any leader change, by ConnectionLoss (and retry).
    pub(super) fn drop_held(&mut self) {
        let held: Vec<HeldProposal> = self.held.drain(..).collect();
        for HeldProposal {
            origin, request, ..
        } in held
        {
            self.refuse_held(origin, request, ErrorCode::ConnectionLoss);
        }
    }

    fn refuse_held(&mut self, origin: u64, request: u64, code: ErrorCode) {
        if origin == self.server_id {
            if let Some(waiter) = self.waiters.remove(&request) {
                self.fail_waiter(waiter, code);
            }
        } else {
            let code = code.code();
            self.send_peer(
                origin,
                &cluster::PeerMessage::ForwardRefused { request, code },
            );
        }
    }

    /// Answers a waiter whose proposal will never be applied.
    pub(super) fn fail_waiter(&mut self, waiter: Waiter, code: ErrorCode) {
        match waiter {
            Waiter::Client {
                connection,
                session_id,
                xid,
                received,
                close_after,
            } => {
                if close_after && let Some(liveness) = self.sessions.get_mut(&session_id) {
                    // A closeSession that will never be applied: the session lives on, and
                    // its client may come back to it (zookeeper-client reconnects to finish
                    // a close). Left marked, the session would be refused as expired here
                    // while it lives everywhere else until its timeout.
                    liveness.closing = false;
                }
                // An error answered now would overtake the connection's earlier writes still
                // in flight (replies go in request order): then the connection is closed
                // instead, as for a lost request.
                let earlier_in_flight = self
                    .connections
                    .get(&connection)
                    .is_some_and(|state| state.writes_in_flight > 1);
                if code == ErrorCode::ConnectionLoss || earlier_in_flight {
                    // A client learns of a lost request by losing its connection, as with
                    // ZooKeeper; it reconnects and keeps its session.
                    self.close_connection(connection, "request lost (leader change or overload)");
                } else {
                    let zxid = self.tree.last_applied_zxid().0;
                    self.reply(connection, xid, zxid, Err(code), received);
                }
                self.write_done(connection, session_id);
            }
            Waiter::Connect {
                connection, reply, ..
            } => {
                let _ = reply.send(ConnectOutcome::Close(
                    "session could not be created or moved",
                ));
                self.drop_connection(connection);
            }
            Waiter::Cleanup { path } => {
                self.cleanup_pending.remove(&path);
            }
            Waiter::Expiry { session_id } => {
                if let Some(liveness) = self.sessions.get_mut(&session_id) {
                    liveness.closing = false;
                }
            }
            Waiter::Bootstrap => self.config_bootstrap_pending = false,
        }
    }

    /// Takes the next Ready if none is being persisted, sends what may leave at once, and
    /// hands its hard state, entries and snapshot to the WAL.
    pub(super) fn drive_raft(&mut self) {
        while self.persisting.is_none() && self.fatal.is_none() && self.raft.has_ready() {
            let ready = self.raft.ready();
            if let Some(soft_state) = ready.soft_state {
                self.on_soft_state(soft_state);
            }
            // The leader may replicate before its own fsync completes (thesis §10.2.1).
            self.send_raft_messages(&ready.messages);
            if let Some(snapshot) = &ready.snapshot
                && let Err(error) = self.install_snapshot(snapshot)
            {
                self.fatal = Some(error);
                return;
            }
            // Committed entries are already durable here and on a quorum: apply (and answer)
            // them now rather than after this Ready's fsync, which only records the commit
            // index (replay after a crash re-derives it; a snapshot never outruns it, as
            // recovery takes the larger of the two).
            for entry in &ready.committed_entries {
                self.apply_entry(entry);
            }
            self.on_read_states(&ready.read_states);
            self.check_caught_up();
            let stored_last = self.raft.store().last_index().0;
            let truncate_after = match (&ready.snapshot, ready.entries.first()) {
                (Some(snapshot), _) => Some(snapshot.metadata.index.0),
                (None, Some(first)) if first.index.0 <= stored_last => Some(first.index.0 - 1),
                _ => None,
            };
            let batch = WriteBatch {
                hard_state: ready.hard_state.map(|hard| WalHardState {
                    term: hard.term.0,
                    vote: hard.vote.map(|v| v.0),
                    commit: hard.commit.0,
                }),
                truncate_after,
                entries: ready.entries.iter().map(wal_entry).collect(),
            };
            if batch.is_empty() {
                self.on_persisted(ready);
                continue;
            }
            let Some(wal) = self.wal.as_ref() else {
                return;
            };
            let notify = self.durability_tx.clone();
            let submitted = wal.submit(
                batch,
                Box::new(move |result| {
                    let result = result.map_err(|error| error.to_string());
                    let _ = notify.send(Durability::Persisted { result });
                }),
            );
            match submitted {
                Ok(()) => self.persisting = Some(ready),
                Err(error) => {
                    // The queue cannot be full (one Ready at a time): this is a failed WAL.
                    self.fatal = Some(format!("WAL refused a batch: {error}"));
                }
            }
        }
    }

    pub(super) fn on_durability(&mut self, notice: Durability) {
        match notice {
            Durability::Persisted { result } => {
                if let Err(error) = result {
                    error!(%error, "WAL write failed; stopping (no write is acknowledged unless durable)");
                    self.fatal = Some(format!("WAL write failed: {error}"));
                    return;
                }
                let Some(ready) = self.persisting.take() else {
                    self.fatal = Some("durability notice with nothing being persisted".into());
                    return;
                };
                self.stats.fsync_batches += 1;
                self.on_persisted(ready);
            }
            Durability::Snapshot {
                index,
                conf_state,
                result,
            } => {
                self.snapshot_in_progress = false;
                match result {
                    Ok(()) => {
                        info!(index, "snapshot saved");
                        let created = self.raft.store_mut().compact(LogIndex(index), conf_state);
                        if let Err(error) = created {
                            warn!(%error, index, "snapshot not usable for replication");
                        } else if let Some(wal) = self.wal.as_ref()
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

    /// A Ready is durable: record it in the Raft storage and let the acknowledgements go.
    fn on_persisted(&mut self, ready: Ready) {
        {
            let store = self.raft.store_mut();
            if let Some(snapshot) = &ready.snapshot
                && let Err(error) = store.apply_snapshot(snapshot)
            {
                warn!(%error, "stale snapshot ignored");
            }
            store.append(&ready.entries);
            if let Some(hard_state) = ready.hard_state {
                store.set_hard_state(hard_state);
            }
        }
        // Votes and append acknowledgements leave only now (thesis §3.8).
        self.send_raft_messages(&ready.persisted_messages);
        self.raft.advance(ready);
        self.maybe_snapshot();
    }

    /// Leadership changed hands (or became known).
    fn on_soft_state(&mut self, soft_state: SoftState) {
        let me = arbor_raft::NodeId(self.server_id);
        let was_leader = self.leader == Some(me);
        if soft_state.leader.is_some() && soft_state.leader != self.leader {
            self.stats.leader_changes += 1;
        }
        match soft_state.leader {
            Some(_) => {
                self.leaderless_since = None;
                self.close_read_only_connections();
            }
            None => {
                self.leaderless_since.get_or_insert_with(Instant::now);
            }
        }
        self.leader = soft_state.leader;
        info!(leader = ?soft_state.leader, role = ?soft_state.role, "raft role changed");
        if !was_leader && !self.forwarded.is_empty() {
            // Commands forwarded to the old leader may be lost with it.
            let forwarded: Vec<u64> = self.forwarded.drain().map(|(r, _)| r).collect();
            for request in forwarded {
                if let Some(waiter) = self.waiters.remove(&request) {
                    self.fail_waiter(waiter, ErrorCode::ConnectionLoss);
                }
            }
        }
        if was_leader && self.leader != Some(me) {
            self.drop_held();
            // Proposals of the old term may be truncated: their clients find out by losing
            // the connection, as ZooKeeper's clients do on a leader change.
            let waiters: Vec<Waiter> = self.waiters.drain().map(|(_, w)| w).collect();
            for waiter in waiters {
                self.fail_waiter(waiter, ErrorCode::ConnectionLoss);
            }
        }
        if self.leader == Some(me) && !was_leader {
            // A new leader gives every session a full timeout before expiring it.
            let now = Instant::now();
            for liveness in self.sessions.values_mut() {
                liveness.last_heard = now;
            }
            self.maintain_membership();
        }
        if self.leader.is_some() {
            let parked: Vec<(Command, Waiter)> = self.parked.drain(..).collect();
            for (command, waiter) in parked {
                self.propose(command, waiter);
            }
            self.retry_reads();
        }
    }

    /// A snapshot from the leader replaces the whole state (the WAL batch that follows resets
    /// the log to start after it).
    fn install_snapshot(&mut self, snapshot: &arbor_raft::Snapshot) -> Result<(), String> {
        let index = snapshot.metadata.index.0;
        let tree = DataTree::read_snapshot(&mut snapshot.data.as_ref(), self.tree_config.clone())
            .map_err(|error| format!("snapshot at {index} from the leader: {error}"))?;
        let Some(wal) = self.wal.as_ref() else {
            return Err("WAL closed".into());
        };
        let meta = SnapshotMeta {
            index,
            term: snapshot.metadata.term.0,
            app_meta: crate::envelope::snapshot_app_meta(
                snapshot.metadata.position,
                &snapshot.metadata.conf_state,
            ),
        };
        let data = snapshot.data.clone();
        let store = wal.snapshots();
        tokio::task::block_in_place(|| {
            store.save(&meta, &mut |out: &mut dyn std::io::Write| {
                out.write_all(&data)
            })
        })
        .map_err(|error| format!("saving the leader's snapshot at {index}: {error}"))?;
        self.tree = tree;
        self.applied_index = index;
        self.conf_state = snapshot.metadata.conf_state.clone();
        self.refresh_sessions();
        info!(index, "installed the leader's snapshot");
        // The entries the snapshot covers are never applied here one by one, so the requests
        // this server forwarded among them would never be answered while the session's later
        // ones would be: a reply out of order. Their clients lose the connection instead and
        // retry, as on a leader change (a request that made it into the log stays applied).
        let forwarded: Vec<u64> = self.forwarded.keys().copied().collect();
        for request in forwarded {
            self.forwarded.remove(&request);
            if let Some(waiter) = self.waiters.remove(&request) {
                self.fail_waiter(waiter, ErrorCode::ConnectionLoss);
            }
        }
        Ok(())
    }

    /// Applies one committed entry on this replica and answers its waiter if it is ours.
    fn apply_entry(&mut self, entry: &Entry) {
        if entry.index.0 <= self.applied_index {
            return;
        }
        self.applied_index = entry.index.0;
        self.entries_since_snapshot += 1;
        let Ok(zxid) = entry.zxid() else {
            self.fatal = Some(format!("entry {} has no zxid", entry.index));
            return;
        };
        let zxid = Zxid(zxid.0 as i64);
        match entry.kind {
            EntryKind::NoOp => {
                let txn = Txn {
                    time_ms: 0,
                    command: Command::Noop,
                };
                self.tree.apply(zxid, &txn);
            }
            EntryKind::ConfChange => {
                let change = crate::envelope::decode_conf_change(&entry.data);
                match change.map(|change| change.apply_to(&self.conf_state)) {
                    Ok(Ok(conf_state)) => self.conf_state = conf_state,
                    Ok(Err(error)) => {
                        warn!(%error, index = entry.index.0, "membership change not applicable");
                    }
                    Err(error) => {
                        self.fatal = Some(format!("entry {}: {error}", entry.index));
                        return;
                    }
                }
                // The tree still sees the zxid so zxids stay gap-free to clients.
                let txn = Txn {
                    time_ms: 0,
                    command: Command::Noop,
                };
                self.tree.apply(zxid, &txn);
            }
            EntryKind::Normal => {
                let (origin, request, txn) = match crate::envelope::decode(&entry.data) {
                    Ok(decoded) => decoded,
                    Err(error) => {
                        self.fatal = Some(format!("entry {}: {error}", entry.index));
                        return;
                    }
                };
                let waiter = if origin == self.server_id {
                    self.forwarded.remove(&request);
                    self.waiters.remove(&request)
                } else {
                    None
                };
                self.apply_txn(zxid, ServerId(origin), &txn, waiter);
            }
        }
    }

    /// Applies a txn that server `origin` proposed (the envelope's origin: the server that
    /// holds the connection of the client that asked for it, which session ownership is
    /// judged by).
    fn apply_txn(&mut self, zxid: Zxid, origin: ServerId, txn: &Txn, waiter: Option<Waiter>) {
        let applied = self.tree.apply_from(zxid, origin, txn);
        let mut notifications = Vec::new();
        let mut fired = Vec::new();
        for trigger in &applied.triggers {
            self.watches
                .trigger(&trigger.path, trigger.event, &mut fired);
            // A watch fires (and a one-shot one is used up) whoever holds it, but the event
            // reaches only watchers allowed to read the node (ZOOKEEPER-4799).
            for notification in fired.drain(..) {
                let identities = self.connection_identities(notification.connection);
                if arbor_tree::readable_by(&trigger.acl, identities, &self.tree_config) {
                    notifications.push(notification);
                }
            }
        }
        self.deliver(zxid, notifications);
        let answered_here = matches!(waiter, Some(Waiter::Client { .. } | Waiter::Connect { .. }));
        self.after_apply(txn, &applied.result, &applied.triggers, answered_here);
        match &txn.command {
            Command::CloseSession { session_id } => {
                self.session_closed(*session_id, waiter.as_ref())
            }
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
            Command::MoveSession { session_id } if applied.result.is_ok() => {
                // The client just reconnected (to `origin`): a fresh timeout, as on a
                // reconnect to this server.
                if let Some(liveness) = self.sessions.get_mut(session_id) {
                    liveness.last_heard = Instant::now();
                }
            }
            Command::DeleteExpiredTtl { path } | Command::DeleteEmptyContainer { path } => {
                self.cleanup_pending.remove(path);
            }
            Command::SetClusterConfig { .. } => {
                self.config_bootstrap_pending = false;
                self.on_membership_changed();
            }
            Command::Request {
                request: WriteRequest::Reconfig(_),
                ..
            } if applied.result.is_ok() => self.on_membership_changed(),
            _ => {}
        }
        match waiter {
            Some(Waiter::Client {
                connection,
                session_id,
                xid,
                received,
                close_after,
            }) => {
                if matches!(applied.result, Err(ErrorCode::SessionMoved)) {
                    // The client has since reconnected to another server: this connection is
                    // a leftover. ZooKeeper 3.9 closes it without a reply (FinalRequestProcessor,
                    // ZOOKEEPER-710), so a client that still uses it sees ConnectionLoss, which
                    // every client retries (kazoo does not retry SessionMovedError). Once per
                    // connection: its pipelined writes behind this one find it gone.
                    if self.connections.contains_key(&connection) {
                        info!(session = %session_id, "write refused: the session moved to another server; closing the leftover connection");
                        self.send(connection, Outbound::Close);
                        self.drop_connection(connection);
                    }
                } else {
                    self.reply(connection, xid, zxid.0, applied.result, received);
                    if close_after {
                        self.send(connection, Outbound::Close);
                    }
                }
                self.write_done(connection, session_id);
            }
            Some(Waiter::Connect {
                connection,
                reply,
                read_only,
            }) => match &txn.command {
                Command::MoveSession { session_id } => {
                    self.session_moved_here(
                        connection,
                        *session_id,
                        applied.result,
                        reply,
                        read_only,
                    );
                }
                command => {
                    self.session_created(connection, command, applied.result, reply, read_only)
                }
            },
            Some(Waiter::Cleanup { .. })
            | Some(Waiter::Expiry { .. })
            | Some(Waiter::Bootstrap)
            | None => {}
        }
    }

    pub(super) fn session_created(
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
    pub(super) fn session_closed(&mut self, session_id: SessionId, waiter: Option<&Waiter>) {
        let Some(liveness) = self.sessions.remove(&session_id) else {
            return;
        };
        if let Some(connection) = liveness.connection {
            let closing_itself =
                matches!(waiter, Some(Waiter::Client { connection: c, .. }) if *c == connection);
            if !closing_itself {
                self.close_connection(connection, "session ended");
            }
        }
    }

    /// Marks a write or sync of this connection's session as pending; the session's later
    /// requests wait behind it. None when the connection has no session (any more).
    pub(super) fn begin_ordered(&mut self, connection: ConnectionId) -> Option<SessionId> {
        let state = self.connections.get_mut(&connection)?;
        let session_id = state.session_id?;
        state.writes_in_flight += 1;
        *self.session_pending.entry(session_id).or_insert(0) += 1;
        Some(session_id)
    }

    /// A write or sync of `session_id` was answered (on `connection`, or dropped with it):
    /// serve what queued behind it on the session's current connection.
    pub(super) fn write_done(&mut self, connection: ConnectionId, session_id: SessionId) {
        if let Some(state) = self.connections.get_mut(&connection) {
            state.writes_in_flight = state.writes_in_flight.saturating_sub(1);
        }
        if let Some(pending) = self.session_pending.get_mut(&session_id) {
            *pending = pending.saturating_sub(1);
            if *pending == 0 {
                self.session_pending.remove(&session_id);
            }
        }
        let current = self
            .sessions
            .get(&session_id)
            .and_then(|liveness| liveness.connection)
            .unwrap_or(connection);
        loop {
            let idle = self
                .session_pending
                .get(&session_id)
                .is_none_or(|&n| n == 0);
            let Some(state) = self.connections.get_mut(&current) else {
                break;
            };
            // A queued write may go as soon as it is first in line; anything else needs the
            // session's writes applied.
            let ready = state
                .queued
                .front()
                .is_some_and(|(_, request, _)| idle || request.is_write());
            if !ready {
                break;
            }
            let Some((xid, request, received)) = state.queued.pop_front() else {
                break;
            };
            self.process(current, xid, request, received);
        }
    }

    // ----- snapshots ----------------------------------------------------------------------------

    pub(super) fn maybe_snapshot(&mut self) {
        if self.snapshot_in_progress
            || self.entries_since_snapshot < self.config.snapshot_every_entries
        {
            return;
        }
        let Some(wal) = self.wal.as_ref() else {
            return;
        };
        let index = self.applied_index;
        let Ok(term) = self.raft.term_at(LogIndex(index)) else {
            return;
        };
        let position = self.tree.last_applied_zxid().counter();
        self.snapshot_in_progress = true;
        self.entries_since_snapshot = 0;
        // A clone of persistent structures: cheap here, serialized on a blocking thread while
        // this task keeps applying.
        let tree = self.tree.clone();
        let store = wal.snapshots();
        let conf_state = self.conf_state.clone();
        let meta = SnapshotMeta {
            index,
            term: term.0,
            app_meta: crate::envelope::snapshot_app_meta(position, &conf_state),
        };
        let notify = self.durability_tx.clone();
        tokio::task::spawn_blocking(move || {
            // Streamed straight into the snapshot file: no copy of the tree in memory.
            let result = store
                .save(&meta, &mut |out: &mut dyn std::io::Write| {
                    tree.write_snapshot(out)
                })
                .map_err(|error| error.to_string());
            let _ = notify.send(Durability::Snapshot {
                index,
                conf_state,
                result,
            });
        });
    }
}

/// A Raft entry as the WAL stores it: kind and zxid position ahead of the payload.
fn wal_entry(entry: &Entry) -> WalEntry {
    WalEntry {
        index: entry.index.0,
        term: entry.term.0,
        data: crate::envelope::encode_wal_data(entry),
    }
}

/// The error a client gets for a proposal Raft refused.
fn refusal_code(error: &ProposeError) -> ErrorCode {
    match error {
        ProposeError::Overloaded | ProposeError::TransferInProgress => ErrorCode::ThrottledOp,
        ProposeError::EntryTooLarge { .. } => ErrorCode::BadArguments,
        _ => ErrorCode::ConnectionLoss,
    }
}
