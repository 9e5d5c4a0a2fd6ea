//! What servers of one cluster say to each other besides Raft: writes forwarded to the leader,
//! the leader's refusal of a forward, and session touches reported to the leader. Also the
//! ReadIndex path that makes `sync` (and linearizable reads) linearizable on any server.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbor_proto::{ErrorCode, Request, Response, SessionId, SyncResponse};
use arbor_raft::NodeId;
use arbor_tree::Command;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::*;
use crate::watches::ConnectionId;

/// A message between servers (postcard-encoded in the peer transport's frames).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerMessage {
    /// Consensus traffic.
    Raft(arbor_raft::Message),
    /// A follower's command for the leader to stamp and propose, with the follower's request
    /// number (the envelope carries both back to it when the entry is applied).
    Forward { request: u64, command: Command },
    /// The leader could not propose a forwarded command; the follower answers its client.
    ForwardRefused { request: u64, code: i32 },
    /// Sessions a follower heard from since its last report (ARCHITECTURE.md: touches reported
    /// to the leader; expiry decided by the leader).
    Touch { sessions: Vec<SessionId> },
    /// A server outside the membership asks the leader to replicate to it at `peer_address`
    /// (ZooKeeper's observer that syncs before a `reconfig` names it; see `membership.rs`).
    Join { peer_address: std::net::SocketAddr },
}

/// A `sync` waiting for its read index, then for the state to reach it.
#[derive(Debug)]
pub(super) struct PendingRead {
    pub connection: ConnectionId,
    pub session_id: SessionId,
    pub xid: i32,
    pub received: Instant,
    /// The `sync`, or (with linearizable reads on) the read, to answer once the index is
    /// applied.
    pub request: Request,
    pub deadline: Instant,
    /// Set once the leader confirmed the index to wait for.
    pub index: Option<u64>,
}

impl Core {
    /// Whether this server leads.
    pub(super) fn is_leader(&self) -> bool {
        self.leader == Some(NodeId(self.server_id))
    }

    /// Queues a message for peer `to`; false when it was dropped (no link, or its queue is
    /// full). Raft tolerates lost messages; a caller whose message must arrive acts on false.
    pub(super) fn send_peer(&mut self, to: u64, message: &PeerMessage) -> bool {
        let Some(network) = self.network.as_ref() else {
            return false;
        };
        match postcard::to_allocvec(message) {
            Ok(bytes) => {
                if network.send(to, Bytes::from(bytes)).is_err() {
                    self.stats.peer_messages_dropped += 1;
                    return false;
                }
                true
            }
            Err(error) => {
                warn!(%error, to, "peer message does not encode");
                false
            }
        }
    }

    /// Consensus messages go to their peers as they are.
    pub(super) fn send_raft_messages(&mut self, messages: &[arbor_raft::Message]) {
        for message in messages {
            let to = message.to.0;
            if to == self.server_id {
                continue;
            }
            self.send_peer(to, &PeerMessage::Raft(message.clone()));
        }
    }

    /// A payload from peer `from`.
    pub(super) fn on_peer_message(&mut self, from: u64, payload: &[u8]) {
        let message: PeerMessage = match postcard::from_bytes(payload) {
            Ok(message) => message,
            Err(error) => {
                warn!(%error, from, "undecodable peer message dropped");
                return;
            }
        };
        match message {
            PeerMessage::Raft(message) => {
                if let Err(error) = self.raft.step(message) {
                    debug!(%error, from, "raft message rejected");
                }
            }
            PeerMessage::Forward { request, command } => {
                if !self.is_leader() {
                    let code = ErrorCode::ConnectionLoss.code();
                    self.send_peer(from, &PeerMessage::ForwardRefused { request, code });
                    return;
                }
                if let Err(code) = self.propose_envelope(from, request, command) {
                    self.send_peer(
                        from,
                        &PeerMessage::ForwardRefused {
                            request,
                            code: code.code(),
                        },
                    );
                }
            }
            PeerMessage::ForwardRefused { request, code } => {
                if let Some(waiter) = self.waiters.remove(&request) {
                    let code = ErrorCode::from_i32(code).unwrap_or(ErrorCode::ConnectionLoss);
                    self.fail_waiter(waiter, code);
                }
            }
            PeerMessage::Join { peer_address } => self.on_join(from, peer_address),
            PeerMessage::Touch { sessions } => {
                if self.is_leader() {
                    let now = Instant::now();
                    for session_id in sessions {
                        if let Some(liveness) = self.sessions.get_mut(&session_id) {
                            liveness.last_heard = now;
                        }
                    }
                }
            }
        }
    }

    /// Followers tell the leader which of their sessions were heard from (every tick).
    pub(super) fn report_touches(&mut self) {
        if self.touched.is_empty() || self.is_leader() {
            self.touched.clear();
            return;
        }
        let Some(leader) = self.leader else {
            return;
        };
        let sessions: Vec<SessionId> = std::mem::take(&mut self.touched).into_iter().collect();
        self.send_peer(leader.0, &PeerMessage::Touch { sessions });
    }

    // ----- ReadIndex --------------------------------------------------------------------------

    /// `sync`: answered once this server has applied everything committed when the leader
    /// confirmed its leadership (Raft §6.4), so a read after it sees every write completed
    /// before it, whichever server took the write.
    pub(super) fn start_read_index(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        request: Request,
        received: Instant,
    ) {
        // A sync is ordered with the session's other requests, like a write.
        let Some(session_id) = self.begin_ordered(connection) else {
            return;
        };
        let number = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        let timeout = Duration::from_millis(
            u64::from(self.config.raft_tick_ms) * self.config.election_timeout_ticks * 4,
        );
        self.pending_reads.insert(
            number,
            PendingRead {
                connection,
                session_id,
                xid,
                received,
                request,
                deadline: Instant::now() + timeout,
                index: None,
            },
        );
        if let Err(error) = self
            .raft
            .read_index(Bytes::copy_from_slice(&number.to_le_bytes()))
        {
            debug!(%error, "read index not available yet; retried on the next tick");
        }
    }

    /// Read states from a Ready: the index each read must wait for.
    pub(super) fn on_read_states(&mut self, states: &[arbor_raft::ReadState]) {
        for state in states {
            let Ok(bytes) = <[u8; 8]>::try_from(state.context.as_ref()) else {
                continue;
            };
            let request = u64::from_le_bytes(bytes);
            if let Some(read) = self.pending_reads.get_mut(&request) {
                read.index = Some(state.index.0);
            }
        }
        self.answer_reads();
    }

    /// Answers every read whose index is applied; retries or times out the others.
    pub(super) fn answer_reads(&mut self) {
        if self.pending_reads.is_empty() {
            return;
        }
        let applied = self.applied_index;
        let now = Instant::now();
        let ready: Vec<u64> = self
            .pending_reads
            .iter()
            .filter(|(_, r)| r.index.is_some_and(|index| index <= applied) || r.deadline <= now)
            .map(|(&request, _)| request)
            .collect();
        for request in ready {
            let Some(read) = self.pending_reads.remove(&request) else {
                continue;
            };
            if read.index.is_some_and(|index| index <= applied) {
                let result = match read.request {
                    Request::Sync(sync) => Ok(Response::Sync(SyncResponse { path: sync.path })),
                    other => self.serve_read(read.connection, read.session_id, other),
                };
                let zxid = self.tree.last_applied_zxid().0;
                self.reply(read.connection, read.xid, zxid, result, read.received);
            } else {
                // No leader confirmed the read in time: like a lost write, the client learns
                // it by losing the connection and retries elsewhere.
                self.close_connection(read.connection, "sync timed out without a leader");
            }
            self.write_done(read.connection, read.session_id);
        }
    }

    /// Reads whose index request was lost (leader change) are asked again.
    pub(super) fn retry_reads(&mut self) {
        let unanswered: Vec<u64> = self
            .pending_reads
            .iter()
            .filter(|(_, r)| r.index.is_none())
            .map(|(&request, _)| request)
            .collect();
        for request in unanswered {
            if self
                .raft
                .read_index(Bytes::copy_from_slice(&request.to_le_bytes()))
                .is_err()
            {
                break;
            }
        }
        self.answer_reads();
    }
}

/// Sessions touched since the last report.
pub(super) type Touched = HashSet<SessionId>;
