//! Messages exchanged between Raft peers.
//!
//! The application moves them over its transport; how they are encoded on the wire is its
//! business (every field is a fixed-size integer or bytes).

use bytes::Bytes;

use crate::types::{Entry, LogIndex, NodeId, SnapshotMetadata, Term};

/// A message from one peer to another, stamped with the sender's term.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The sender's term (for a pre-vote request: the term it would campaign in).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// Where a follower's log diverges, so the leader can skip a whole term at a time (thesis
/// §5.4's optimisation, as etcd's `findConflictByTerm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RejectHint {
    /// The largest index at which the follower's term is at most the probed term.
    pub index: LogIndex,
    /// The follower's term at `index`.
    pub term: Term,
}

/// Why a follower will not take a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SnapshotRefusal {
    /// The announced size exceeds the follower's `snapshot_bytes_max`.
    TooLarge {
        /// The snapshot's size.
        size_bytes: u64,
        /// The follower's limit.
        limit_bytes: u64,
    },
}

impl std::fmt::Display for SnapshotRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotRefusal::TooLarge {
                size_bytes,
                limit_bytes,
            } => write!(f, "TooLarge({size_bytes}>{limit_bytes})"),
        }
    }
}

/// The payload of a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MessageBody {
    /// AppendEntries (Raft §5.3): entries following `(prev_index, prev_term)`.
    Append {
        /// Index of the entry preceding `entries`.
        prev_index: LogIndex,
        /// Term of the entry at `prev_index`.
        prev_term: Term,
        /// The entries to append (possibly none: a probe).
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// Answer to `Append` (and to a completed snapshot).
    AppendResponse {
        /// On success, the highest index known to match the leader's log; on rejection, the
        /// `prev_index` that did not match.
        index: LogIndex,
        /// `Some` when the append was rejected.
        reject: Option<RejectHint>,
    },
    /// Leader heartbeat: asserts leadership and carries the commit index (bounded by what the
    /// follower is known to have).
    Heartbeat {
        /// `min(leader commit, follower match)`: never past what the follower verified.
        commit: LogIndex,
        /// The leader's tick counter when sent, echoed back to time the leader lease.
        sent_tick: u64,
        /// ReadIndex round this heartbeat confirms, if any.
        read_round: u64,
    },
    /// Answer to `Heartbeat`.
    HeartbeatResponse {
        /// Echo of `Heartbeat::sent_tick`.
        sent_tick: u64,
        /// Echo of `Heartbeat::read_round`.
        read_round: u64,
    },
    /// RequestVote (Raft §5.2), or a pre-vote (thesis §9.6) that changes no state.
    RequestVote {
        /// Whether this is a pre-vote.
        pre_vote: bool,
        /// The candidate's last log index.
        last_index: LogIndex,
        /// The candidate's last log term.
        last_term: Term,
        /// Set when campaigning on a leadership transfer: voters disregard their leader lease.
        transfer: bool,
    },
    /// Answer to `RequestVote`.
    RequestVoteResponse {
        /// Whether this answers a pre-vote.
        pre_vote: bool,
        /// Whether the vote is granted.
        granted: bool,
    },
    /// One chunk of a snapshot (InstallSnapshot, Raft §7). The leader keeps a bounded
    /// window of chunks unacknowledged and resends a chunk whose acknowledgement does not
    /// come; chunks may arrive in any order, more than once.
    Snapshot {
        /// What the snapshot covers.
        metadata: SnapshotMetadata,
        /// The size of the whole snapshot's data, announced with every chunk so the follower
        /// can refuse a snapshot too large for it before buffering any of it.
        total_bytes: u64,
        /// Offset of `data` within the snapshot's bytes. Invariant (checked by the follower):
        /// `offset + data.len() <= total_bytes`.
        offset: u64,
        /// The chunk.
        data: Bytes,
        /// The leader's number for this transmission: every send of a chunk, first or
        /// repeated, gets a larger one. The follower echoes it, so the leader can tell its
        /// newest answer from a late one.
        seq: u64,
    },
    /// A follower's answer to a snapshot chunk it is still assembling (once it has them all it
    /// installs the snapshot and answers with `AppendResponse` instead, after persisting).
    SnapshotAck {
        /// The index of the snapshot being acknowledged.
        snapshot_index: LogIndex,
        /// The term of the snapshot being acknowledged.
        snapshot_term: Term,
        /// The largest `seq` among the chunks the follower's buffer took (for a refusal: the
        /// refused chunk's). While a buffer lives this and `received_bytes` only grow, so
        /// the leader believes only an answer newer than any before.
        seq: u64,
        /// How many bytes from offset 0 the follower holds without a gap (cumulative). It
        /// can go down: a follower that restarted lost its buffer, and the leader then goes
        /// back to what it holds.
        received_bytes: u64,
        /// `Some` when the follower will not take this snapshot at all.
        refused: Option<SnapshotRefusal>,
    },
    /// Leadership transfer: campaign now, disregarding the election timer (thesis §3.10).
    TimeoutNow,
    /// A follower asks its leader for a read index on behalf of a local read.
    ReadIndex {
        /// The application's request context, echoed back.
        context: Bytes,
    },
    /// The leader's answer to `ReadIndex`.
    ReadIndexResponse {
        /// The application's request context.
        context: Bytes,
        /// The index the read must wait for; `None` when the leader could not serve it.
        index: Option<LogIndex>,
    },
}

impl MessageBody {
    /// A short name for logs and golden files.
    pub fn name(&self) -> &'static str {
        match self {
            MessageBody::Append { .. } => "App",
            MessageBody::AppendResponse { .. } => "AppResp",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResp",
            MessageBody::RequestVote { pre_vote: true, .. } => "PreVote",
            MessageBody::RequestVote { .. } => "Vote",
            MessageBody::RequestVoteResponse { pre_vote: true, .. } => "PreVoteResp",
            MessageBody::RequestVoteResponse { .. } => "VoteResp",
            MessageBody::Snapshot { .. } => "Snap",
            MessageBody::SnapshotAck { .. } => "SnapAck",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndex { .. } => "ReadIndex",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResp",
        }
    }

    /// Bytes the message is charged for against size limits (payload only, approximate).
    pub fn size_bytes(&self) -> u64 {
        match self {
            MessageBody::Append { entries, .. } => entries.iter().map(Entry::size_bytes).sum(),
            MessageBody::Snapshot { data, .. } => data.len() as u64,
            MessageBody::ReadIndex { context } => context.len() as u64,
            MessageBody::ReadIndexResponse { context, .. } => context.len() as u64,
            _ => 0,
        }
    }

    /// Whether this message may leave only after the Ready it came in is durable: it states
    /// something about this node's log or vote (thesis §3.8).
    pub(crate) fn needs_persistence(&self) -> bool {
        matches!(
            self,
            MessageBody::AppendResponse { .. } | MessageBody::RequestVoteResponse { .. }
        )
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}->{} {} Term:{}",
            self.from,
            self.to,
            self.body.name(),
            self.term
        )?;
        match &self.body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                write!(f, " Log:{prev_term}/{prev_index} Commit:{commit}")?;
                if !entries.is_empty() {
                    write!(f, " Entries:[")?;
                    for (i, e) in entries.iter().enumerate() {
                        if i > 0 {
                            write!(f, " ")?;
                        }
                        write!(f, "{}/{}", e.term, e.index)?;
                        match e.kind {
                            crate::types::EntryKind::NoOp => write!(f, " noop")?,
                            crate::types::EntryKind::ConfChange => write!(f, " conf")?,
                            crate::types::EntryKind::Normal => {
                                write!(f, " {:?}", String::from_utf8_lossy(&e.data))?
                            }
                        }
                    }
                    write!(f, "]")?;
                }
                Ok(())
            }
            MessageBody::AppendResponse { index, reject } => match reject {
                None => write!(f, " Index:{index}"),
                Some(h) => write!(f, " Rejected:{index} Hint:{}/{}", h.term, h.index),
            },
            MessageBody::Heartbeat {
                commit, read_round, ..
            } => write!(f, " Commit:{commit} Round:{read_round}"),
            MessageBody::HeartbeatResponse { read_round, .. } => write!(f, " Round:{read_round}"),
            MessageBody::RequestVote {
                last_index,
                last_term,
                ..
            } => write!(f, " Log:{last_term}/{last_index}"),
            MessageBody::RequestVoteResponse { granted, .. } => {
                write!(f, "{}", if *granted { "" } else { " Rejected" })
            }
            MessageBody::Snapshot {
                metadata,
                total_bytes,
                offset,
                data,
                seq,
            } => write!(
                f,
                " Snapshot:{}/{} Offset:{offset} Len:{} Total:{total_bytes} Seq:{seq}",
                metadata.term,
                metadata.index,
                data.len()
            ),
            MessageBody::SnapshotAck {
                snapshot_index,
                snapshot_term,
                seq,
                received_bytes,
                refused,
            } => {
                write!(f, " Snapshot:{snapshot_term}/{snapshot_index} Seq:{seq}")?;
                match refused {
                    None => write!(f, " Received:{received_bytes}"),
                    Some(refusal) => write!(f, " Refused:{refusal}"),
                }
            }
            MessageBody::TimeoutNow => Ok(()),
            MessageBody::ReadIndex { context } => {
                write!(f, " Ctx:{:?}", String::from_utf8_lossy(context))
            }
            MessageBody::ReadIndexResponse { context, index } => {
                write!(f, " Ctx:{:?}", String::from_utf8_lossy(context))?;
                match index {
                    Some(index) => write!(f, " Index:{index}"),
                    None => write!(f, " Refused"),
                }
            }
        }
    }
}
