//! Configuration of one Raft node: timing in ticks and every limit, by name.

use crate::error::ConfigError;
use crate::types::NodeId;

/// How linearizable reads are confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOnlyOption {
    /// ReadIndex (thesis §6.4): a heartbeat round confirms leadership for every read. Safe
    /// under any clock behaviour.
    Safe,
    /// Lease reads (thesis §6.4.1): while the leader holds a valid lease it answers at once.
    /// Relies on check-quorum and on clocks drifting at most `lease_drift_ticks`; falls back
    /// to a heartbeat round when the lease is not valid.
    LeaseBased,
}

/// Configuration of a [`crate::RawNode`].
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id.
    pub id: NodeId,
    /// Ticks without hearing a leader before a follower campaigns; the actual timeout is drawn
    /// uniformly from `[election_timeout_ticks, 2 * election_timeout_ticks)`.
    pub election_timeout_ticks: u64,
    /// Ticks between leader heartbeats. Must be less than `election_timeout_ticks`.
    pub heartbeat_interval_ticks: u64,
    /// Seed of the node's private RNG (election timeout jitter). Give each node its own.
    pub random_seed: u64,
    /// Run a pre-vote round before every election (thesis §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps down; a
    /// follower that heard from its leader within the timeout ignores vote requests.
    pub check_quorum: bool,
    /// How reads are confirmed; `LeaseBased` requires `check_quorum`.
    pub read_only_option: ReadOnlyOption,
    /// The maximum clock drift, in ticks, between any two nodes over one election timeout;
    /// the lease is shortened by this much. Must be less than `election_timeout_ticks`.
    pub lease_drift_ticks: u64,
    /// Maximum bytes of entries in one append message (at least one entry is always sent).
    pub append_bytes_max: u64,
    /// Maximum append messages in flight to one follower in replicate state.
    pub inflight_msgs_max: usize,
    /// Maximum entry bytes in flight to one follower in replicate state.
    pub inflight_bytes_max: u64,
    /// Maximum bytes of a single proposed entry.
    pub entry_bytes_max: u64,
    /// Maximum bytes of entries appended by the leader but not yet committed; proposals
    /// beyond it are rejected.
    pub uncommitted_bytes_max: u64,
    /// Maximum entries appended by the leader but not yet committed (the proposal queue);
    /// proposals beyond it are rejected.
    pub uncommitted_entries_max: u64,
    /// Maximum bytes of committed entries handed out in one Ready.
    pub committed_bytes_per_ready_max: u64,
    /// Maximum bytes of snapshot data in one snapshot message (chunk).
    pub snapshot_chunk_bytes_max: u64,
    /// Leader: maximum snapshot chunks sent to one follower and not yet acknowledged.
    pub snapshot_inflight_chunks_max: usize,
    /// Leader: maximum snapshot bytes sent to one follower and not yet acknowledged. Must be
    /// at least `snapshot_chunk_bytes_max`; keep it well below what the transport queues per
    /// peer, or chunks are dropped by the transport and only the retry timer recovers them.
    pub snapshot_inflight_bytes_max: u64,
    /// Leader: ticks after which the oldest unacknowledged snapshot chunk is sent again.
    pub snapshot_chunk_timeout_ticks: u64,
    /// Leader: ticks to wait before offering a snapshot again after a follower refused it
    /// (too large for it). A snapshot storage could not produce is retried after
    /// `election_timeout_ticks`.
    pub snapshot_refused_retry_ticks: u64,
    /// Follower: the largest snapshot it accepts. The size is announced with every chunk; a
    /// larger snapshot is refused (and logged) before any of it is buffered, so this also caps
    /// the reassembly buffer.
    pub snapshot_bytes_max: u64,
    /// Maximum pending read requests (ReadIndex) at the leader or waiting on a follower.
    pub pending_reads_max: usize,
}

impl Config {
    /// A configuration with sane defaults for node `id` (etcd's ratios: heartbeat every tick,
    /// election after 10).
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            random_seed: id.0,
            pre_vote: true,
            check_quorum: true,
            read_only_option: ReadOnlyOption::Safe,
            lease_drift_ticks: 2,
            append_bytes_max: 1024 * 1024,
            inflight_msgs_max: 256,
            inflight_bytes_max: 32 * 1024 * 1024,
            entry_bytes_max: 1024 * 1024,
            uncommitted_bytes_max: 64 * 1024 * 1024,
            uncommitted_entries_max: 100_000,
            committed_bytes_per_ready_max: 16 * 1024 * 1024,
            snapshot_chunk_bytes_max: 1024 * 1024,
            snapshot_inflight_chunks_max: 8,
            snapshot_inflight_bytes_max: 8 * 1024 * 1024,
            snapshot_chunk_timeout_ticks: 10,
            snapshot_refused_retry_ticks: 1200,
            snapshot_bytes_max: 4 * 1024 * 1024 * 1024,
            pending_reads_max: 10_000,
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.0 == 0 {
            return Err(ConfigError::ZeroNodeId);
        }
        if self.heartbeat_interval_ticks == 0 {
            return Err(ConfigError::Invalid("heartbeat_interval_ticks must be > 0"));
        }
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks {
            return Err(ConfigError::Invalid(
                "election_timeout_ticks must exceed heartbeat_interval_ticks",
            ));
        }
        if self.lease_drift_ticks >= self.election_timeout_ticks {
            return Err(ConfigError::Invalid(
                "lease_drift_ticks must be below election_timeout_ticks",
            ));
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return Err(ConfigError::Invalid("lease reads require check_quorum"));
        }
        if self.inflight_msgs_max == 0 || self.inflight_bytes_max == 0 {
            return Err(ConfigError::Invalid("inflight limits must be > 0"));
        }
        if self.append_bytes_max == 0
            || self.snapshot_chunk_bytes_max == 0
            || self.entry_bytes_max == 0
            || self.committed_bytes_per_ready_max == 0
        {
            return Err(ConfigError::Invalid("size limits must be > 0"));
        }
        if self.uncommitted_entries_max == 0 || self.uncommitted_bytes_max == 0 {
            return Err(ConfigError::Invalid("uncommitted limits must be > 0"));
        }
        if self.snapshot_inflight_chunks_max == 0 {
            return Err(ConfigError::Invalid(
                "snapshot_inflight_chunks_max must be > 0",
            ));
        }
        if self.snapshot_inflight_bytes_max < self.snapshot_chunk_bytes_max {
            return Err(ConfigError::Invalid(
                "snapshot_inflight_bytes_max must be at least snapshot_chunk_bytes_max",
            ));
        }
        if self.snapshot_chunk_timeout_ticks == 0 || self.snapshot_refused_retry_ticks == 0 {
            return Err(ConfigError::Invalid("snapshot timeouts must be > 0"));
        }
        if self.snapshot_bytes_max == 0 {
            return Err(ConfigError::Invalid("snapshot_bytes_max must be > 0"));
        }
        if self.pending_reads_max == 0 {
            return Err(ConfigError::Invalid("pending_reads_max must be > 0"));
        }
        Ok(())
    }
}
