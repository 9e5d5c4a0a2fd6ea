//! The vocabulary of the protocol: identities, log entries, hard state, snapshots.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;

use crate::zxid::{Zxid, ZxidError};

/// A Raft term (Raft §5.1). Terms only ever grow on a node.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Term(pub u64);

/// The position of an entry in the replicated log. Index 0 is the empty prefix; the first real
/// entry has index 1.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct LogIndex(pub u64);

/// The identity of a server in the cluster. Never 0 (absence is `Option<NodeId>`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId(pub u64);

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl LogIndex {
    /// The index right after this one.
    ///
    /// # Panics
    /// On overflow of u64, which 2^64 log entries make impossible.
    pub fn next(self) -> LogIndex {
        LogIndex(self.0.checked_add(1).expect("log index overflow"))
    }

    /// The index right before this one, saturating at 0.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EntryKind {
    /// Application data (a batch of commands, as the application encodes it).
    Normal,
    /// The empty entry every new leader appends at the start of its term (Raft §5.4.2, §8): it
    /// lets the leader commit entries of earlier terms and serve ReadIndex. Its data is empty.
    NoOp,
    /// A membership change; `data` is an encoded [`crate::ConfChange`].
    ConfChange,
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The position of the entry in the log.
    pub index: LogIndex,
    /// The position of the entry within its term: the term's no-op is position 0, the first
    /// proposal of the term position 1, and so on. Together with `term` it forms the zxid.
    pub position: u32,
    /// What the entry carries.
    pub kind: EntryKind,
    /// The payload (empty for a no-op).
    pub data: Bytes,
}

impl Entry {
    /// The entry's zxid: `(term << 32) | position`.
    ///
    /// # Errors
    /// [`ZxidError::TermTooLarge`] when the term does not fit in 32 bits.
    pub fn zxid(&self) -> Result<Zxid, ZxidError> {
        Zxid::new(self.term, self.position)
    }

    /// Bytes this entry is charged for in size limits (payload plus a fixed header).
    pub fn size_bytes(&self) -> u64 {
        self.data.len() as u64 + ENTRY_HEADER_BYTES
    }
}

/// Fixed per-entry overhead charged in byte limits (term, index, position, kind).
pub const ENTRY_HEADER_BYTES: u64 = 24;

/// The state that must be durable before certain messages leave the node (thesis §3.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Whom this node voted for in `term`.
    pub vote: Option<NodeId>,
    /// The highest index known committed. Persisting it lets a restarted node re-apply without
    /// waiting for the leader; it may lag the truth, never lead it.
    pub commit: LogIndex,
}

/// The cluster membership: voters (possibly joint) and learners.
///
/// Invariant: a node is never both a voter (incoming or outgoing) and a learner, except that
/// a voter being demoted may appear in `voters_outgoing` and `learners_next`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfState {
    /// Voters of the (incoming) configuration.
    pub voters: BTreeSet<NodeId>,
    /// Voters of the outgoing configuration; non-empty only while in a joint configuration.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Learners (ZooKeeper observers): they receive the log but do not vote.
    pub learners: BTreeSet<NodeId>,
    /// Voters of the outgoing configuration that become learners when the joint phase ends.
    pub learners_next: BTreeSet<NodeId>,
}

impl ConfState {
    /// A configuration of the given voters and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> ConfState {
        ConfState {
            voters: voters.into_iter().collect(),
            ..ConfState::default()
        }
    }

    /// Whether this is a joint configuration (C_old,new).
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Whether `id` votes in either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// Every node the leader replicates to: voters of both halves and learners.
    pub fn all_nodes(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(self.voters_outgoing.iter().copied());
        all.extend(self.learners.iter().copied());
        all.extend(self.learners_next.iter().copied());
        all
    }
}

/// Describes the state captured in a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotMetadata {
    /// The last log index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The position within its term of the entry at `index` (for the zxid).
    pub position: u32,
    /// The membership in force at `index`.
    pub conf_state: ConfState,
}

/// A snapshot of the application state at an index, with the membership at that index.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub metadata: SnapshotMetadata,
    /// The application's serialized state machine.
    pub data: Bytes,
}

/// The role a node plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs a pre-vote round (thesis §9.6) without bumping its term.
    PreCandidate,
    /// Runs an election in a new term.
    Candidate,
    /// Leads the cluster in its term.
    Leader,
}

/// Volatile state the application may want to observe (not persisted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// The leader this node knows of in its current term.
    pub leader: Option<NodeId>,
    /// This node's role.
    pub role: Role,
}
