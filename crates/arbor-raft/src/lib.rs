//! arbor's Raft consensus core: a pure, deterministic library (no I/O, no clock, no threads,
//! no global RNG), in the shape of etcd-io/raft and tikv/raft-rs.
//!
//! The application drives a [`RawNode`]: it calls [`RawNode::tick`] from its clock,
//! [`RawNode::step`] with messages from peers, [`RawNode::propose`] and
//! [`RawNode::read_index`] for clients, then collects a [`Ready`] and hands it back to
//! [`RawNode::advance`] once done with it.
//!
//! # The persistence contract (thesis §3.8)
//!
//! * Term, vote and log entries must be **durable before** any vote or append
//!   acknowledgement leaves the node. The [`Ready`] enforces this by splitting its output:
//!   `messages` may be sent at once (the leader's appends and heartbeats — a leader may
//!   replicate before its own fsync completes), `persisted_messages` only after `hard_state`,
//!   `entries` and `snapshot` of the same Ready are durable.
//! * A leader counts **itself** toward the commit quorum only for entries the application has
//!   made durable, and a candidate counts its own vote only once its term and vote are
//!   durable: [`RawNode::advance`] is that explicit acknowledgement.
//! * `committed_entries` are committed and durable on this node; apply them in order. Commit
//!   is part of the hard state, so it is persisted no later than anything applied after it.
//! * One Ready at a time: `ready()` again only after `advance()` of the previous one.
//!   [`RawNode::step`] and [`RawNode::tick`] may be called in between (e.g. while an fsync
//!   runs).
//!
//! A crash loses exactly what was not yet durable; restarting a [`RawNode`] on the storage
//! then is always safe.
//!
//! # Main loop
//!
//! ```
//! use arbor_raft::{Config, ConfState, MemStorage, NodeId, RawNode, Ready, Storage};
//! use bytes::Bytes;
//!
//! // A single-voter cluster (the standalone server): a proposal commits as soon as it is
//! // durable locally.
//! let id = NodeId(1);
//! let storage = MemStorage::new_with_conf_state(ConfState::with_voters([id]));
//! let mut node = RawNode::new(&Config::new(id), storage).expect("valid config");
//! node.campaign();
//!
//! let mut applied = Vec::new();
//! let mut proposed = false;
//! for _ in 0..10 {
//!     // 1. inputs: node.tick() on each clock tick, node.step(msg) per message received...
//!     if !proposed && node.status().leader == Some(id) {
//!         node.propose(vec![Bytes::from_static(b"create /a")]).expect("leader");
//!         proposed = true;
//!     }
//!     if !node.has_ready() {
//!         continue;
//!     }
//!     let ready: Ready = node.ready();
//!     // 2. send ready.messages now (none here: no peers).
//!     // 3. make hard state, snapshot and entries durable (your WAL + fsync), then record:
//!     if let Some(snapshot) = &ready.snapshot {
//!         node.store_mut().apply_snapshot(snapshot.clone()).expect("newer snapshot");
//!     }
//!     node.store_mut().append(&ready.entries);
//!     if let Some(hard_state) = ready.hard_state {
//!         node.store_mut().set_hard_state(hard_state);
//!     }
//!     // 4. now send ready.persisted_messages (votes, append acks).
//!     // 5. apply committed entries, answer ready.read_states once applied.
//!     for entry in &ready.committed_entries {
//!         if entry.kind == arbor_raft::EntryKind::Normal {
//!             applied.push((entry.zxid().expect("small term"), entry.data.clone()));
//!         }
//!     }
//!     // 6. acknowledge.
//!     node.advance(ready);
//! }
//! assert_eq!(applied.len(), 1);
//! assert_eq!(applied[0].0.term().0, 1);
//! assert_eq!(applied[0].0.position(), 1, "the no-op is position 0");
//! assert_eq!(node.store().last_index().0, 2);
//! ```
//!
//! # What is built
//!
//! * **Elections** with randomized timeouts drawn from a seeded RNG ([`Config::random_seed`]),
//!   **pre-vote** (a rejoining node cannot disrupt the cluster) and **check-quorum** (a leader
//!   that has not heard from a quorum within an election timeout steps down; followers that
//!   heard from their leader ignore vote requests). A leader frozen by a long pause is
//!   replaced; when it wakes it learns the higher term, becomes follower, and its
//!   uncommitted entries are truncated by the new leader's appends.
//! * **Replication** with batching (`append_bytes_max`), pipelining and flow control (an
//!   inflight window bounded in messages and bytes; probe state for followers whose position
//!   is unknown), fast back-off by term on conflicts, commitment only through an entry of
//!   the leader's current term (§5.4.2, figure 8), a no-op at the start of each term.
//! * **Reads**: ReadIndex (§6.4), waiting for the leader's no-op to commit, answered on
//!   followers too (forwarded to the leader); lease reads (§6.4.1) with a configurable drift
//!   bound, voided by leadership transfer.
//! * **Snapshots**: the application compacts its storage at an applied index; a follower
//!   behind the compacted prefix is sent the snapshot in chunks of
//!   `snapshot_chunk_bytes_max`.
//! * **Membership**: learners (ZooKeeper observers), and changes by **joint consensus** —
//!   chosen over single-server changes because ZooKeeper's `reconfig` changes many servers at
//!   once, which joint consensus handles in one step, and because it avoids the
//!   single-server-change safety pitfalls (a new leader's no-op must commit first; removing a
//!   leader of two). Every change of the voter set enters C_old,new; the leader proposes the
//!   leave entry itself once the first is committed. As in the thesis (§4.1), a membership
//!   takes effect on each server as soon as its entry is in the log, committed or not (and is
//!   undone if the entry is truncated): an earlier version switched at apply time, as etcd
//!   does, and the simulator found a cluster that could never elect a leader again (a node
//!   that had not learned that the leave entry committed kept waiting for the vote of a
//!   removed node whose longer log made it refuse). A leader that is not a voter of the
//!   committed configuration hands over with TimeoutNow and steps down (pitfall 7).
//!   Because a removed member leaves the leader's configuration when the change is appended,
//!   the leader keeps replicating to it (counting it toward nothing) until it has answered a
//!   heartbeat that told it the change committed, or for at most two election timeouts
//!   ([`Status::departing`]); a new leader does the same for the members the latest change in
//!   its log removed. Otherwise the removed member could not apply what it forwarded before
//!   the change, and would keep campaigning in the old configuration.
//!   A leader also replicates, on the application's request, to *guests*: learners in no
//!   configuration (a server ZooKeeper-style joining as an observer before a `reconfig` names
//!   it), until they are silent for two election timeouts ([`RawNode::attach_guest`],
//!   [`Status::guests`]). Like departing members they count toward nothing.
//!   Leadership transfer by TimeoutNow.
//! * **zxid** ([`Zxid`]): `(term << 32) | position within the term`, where the term's no-op
//!   is position 0. It orders exactly as the log.
//! * **Limits**: uncommitted entries and bytes (proposals beyond them are rejected with
//!   [`ProposeError::Overloaded`]), entry size, append and snapshot chunk size, inflight
//!   messages and bytes, pending reads, committed bytes per Ready.
//!
//! Membership and snapshots: the application keeps the membership as of its applied index
//! (updating it with [`ConfChange::apply_to`] as it applies membership entries) and stores
//! it with each snapshot ([`MemStorage::create_snapshot`]); on restart the core starts from
//! the snapshot's membership and re-reads the membership entries in the log after it.
//!
//! # How it is checked
//!
//! * `tests/sim.rs`: a deterministic simulator (1, 3, 5 and 7 voters plus spare nodes; one
//!   `u64` seed drives the shape, the fault mix and every event: loss, duplication,
//!   reordering, delay, symmetric and one-way partitions, crashes that lose what was not yet
//!   durable, long pauses with the missed ticks delivered on resume, clock drift within the
//!   lease bound, membership changes, leadership transfers, snapshots). After every step it
//!   checks election safety, log matching, leader completeness, state-machine safety against
//!   one canonical history, read linearizability and lease validity; after healing, liveness.
//!   `ARBOR_SIM_SEEDS=N`, `ARBOR_SIM_SEED=S` (replay, `ARBOR_SIM_TRACE=1` for a trace),
//!   `ARBOR_SIM_SOAK=1` (unbounded).
//! * The `deliberate-bugs` cargo feature (enabled only for this crate's own tests) compiles
//!   in switches that re-introduce known bugs; tests assert the simulator catches each.
//! * `tests/interaction.rs`: golden files in `testdata/` (etcd's data-driven style;
//!   `REWRITE=1` regenerates them).
#![deny(missing_docs)]

mod bugs;
mod conf_change;
mod config;
mod departing;
mod error;
mod follower;
mod guests;
mod leader;
mod message;
mod progress;
mod quorum;
mod raft;
mod raft_log;
mod raw_node;
mod read;
mod rng;
mod snapshot_receive;
mod snapshot_send;
mod storage;
mod types;
mod zxid;

#[cfg(feature = "deliberate-bugs")]
pub use bugs::Bugs;
pub use conf_change::{CONF_CHANGES_MAX, ConfChange, ConfChangeError, ConfChangeSingle};
pub use config::{Config, ReadOnlyOption};
pub use error::{ConfigError, ProposeError, RaftError, ReadError, StepError, StorageError};
pub use leader::Proposed;
pub use message::{Message, MessageBody, RejectHint, SnapshotRefusal};
pub use progress::ProgressState;
pub use raft::ReadState;
pub use raw_node::{FollowerProgress, RawNode, Ready, Status};
pub use snapshot_send::SnapshotTransferStatus;
pub use storage::{MemStorage, RaftState, Storage};
pub use types::{
    ConfState, ENTRY_HEADER_BYTES, Entry, EntryKind, HardState, LogIndex, NodeId, Role, Snapshot,
    SnapshotMetadata, SoftState, Term,
};
pub use zxid::{Zxid, ZxidError};
