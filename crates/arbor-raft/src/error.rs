//! Errors, split by what the caller branches on.

use thiserror::Error;

use crate::types::{LogIndex, NodeId};
use crate::zxid::ZxidError;

/// An invalid [`crate::Config`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Node ids start at 1.
    #[error("node id must not be 0")]
    ZeroNodeId,
    /// A setting is out of range.
    #[error("invalid raft config: {0}")]
    Invalid(&'static str),
}

/// What the [`crate::Storage`] could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum StorageError {
    /// The requested index was compacted into a snapshot.
    #[error("index {index} is compacted")]
    Compacted {
        /// The requested index.
        index: LogIndex,
    },
    /// The requested index is past the end of the log.
    #[error("index {index} is not available")]
    Unavailable {
        /// The requested index.
        index: LogIndex,
    },
    /// A snapshot at or after the requested index is not ready yet; try later.
    #[error("snapshot temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// The snapshot being applied is older than the storage's.
    #[error("snapshot at {index} is out of date")]
    SnapshotOutOfDate {
        /// The snapshot's index.
        index: LogIndex,
    },
}

/// Why a proposal was refused. Each maps onto a ZooKeeper error for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// This node is not the leader; forward to `leader` if known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<NodeId>,
    },
    /// The proposal holds no entry.
    #[error("empty proposal")]
    Empty,
    /// The uncommitted entries or bytes are at their limit: back off.
    #[error("too many uncommitted proposals")]
    Overloaded,
    /// One entry exceeds `entry_bytes_max`.
    #[error("entry of {size_bytes} bytes exceeds the limit of {limit_bytes}")]
    EntryTooLarge {
        /// The entry's size.
        size_bytes: u64,
        /// The limit.
        limit_bytes: u64,
    },
    /// A leadership transfer is in progress; retry on the new leader.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// A membership change is already in flight.
    #[error("a membership change is already pending")]
    ConfChangePending,
    /// The membership change is invalid (e.g. leaves no voter).
    #[error("invalid membership change: {0}")]
    InvalidConfChange(&'static str),
    /// The term cannot hold another zxid.
    #[error(transparent)]
    Zxid(#[from] ZxidError),
}

/// Why a read request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ReadError {
    /// No leader is known to serve the read; retry later.
    #[error("no leader known")]
    NoLeader,
    /// Too many reads are pending.
    #[error("too many pending reads")]
    Overloaded,
}

/// Why a node could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RaftError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The storage could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a message was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum StepError {
    /// The message is addressed to another node.
    #[error("message for node {to} delivered to node {id}")]
    WrongRecipient {
        /// The addressee.
        to: NodeId,
        /// This node.
        id: NodeId,
    },
}
