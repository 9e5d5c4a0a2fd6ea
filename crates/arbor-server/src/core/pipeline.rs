//! The write path: requests become proposals, batches go to the WAL, durable entries are
//! applied and answered, and snapshots are taken off the core task.

use std::time::{Duration, Instant};

use arbor_log::{Entry, SnapshotMeta, SubmitError, WriteBatch};
use arbor_proto::{ConnectResponse, ErrorCode, Request, Response, SessionId, Zxid};
use arbor_tree::{Command, Txn, WriteRequest};
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
        if state.writes_in_flight > 0 || !state.queued.is_empty() {
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

    pub(super) fn propose_for(
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
    pub(super) fn propose(&mut self, command: Command, waiter: Waiter) {
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
    pub(super) fn submit_batch(&mut self) {
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

    pub(super) fn on_durability(&mut self, notice: Durability) {
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

    pub(super) fn apply(&mut self, proposal: Proposal) {
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
    pub(super) fn session_closed(&mut self, session_id: SessionId, waiter: &Waiter) {
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
    pub(super) fn write_done(&mut self, connection: ConnectionId) {
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

    // ----- snapshots ----------------------------------------------------------------------------

    pub(super) fn maybe_snapshot(&mut self) {
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
}
