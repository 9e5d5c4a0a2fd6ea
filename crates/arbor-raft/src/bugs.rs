//! Deliberate bugs, for proving that the simulator catches them.
//!
//! Only with the `deliberate-bugs` cargo feature is [`Bugs`] exported and
//! `RawNode::set_deliberate_bugs` compiled. Every read of a switch goes through
//! [`Bugs::on`], which is the constant `false` without the feature, so the compiler removes
//! the buggy paths from ordinary builds.

/// Switches that re-introduce known Raft bugs (see `shared/reference/raft-pitfalls.md`).
/// All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Pitfall 1 (figure 8): commit by counting replicas of an entry of an earlier term.
    pub commit_prior_term: bool,
    /// Pitfall 2: the vote is never part of the durable hard state.
    pub forget_vote: bool,
    /// Pitfall 8 (inverse): on a conflict, overwrite in place and keep the old tail.
    pub skip_truncation: bool,
    /// Pitfall 8: a stale append whose entries all match cuts the longer suffix.
    pub truncate_matching_suffix: bool,
    /// Pitfall 3: a fresh leader serves ReadIndex before an entry of its term commits.
    pub read_index_before_noop: bool,
    /// Pitfall 5: becoming pre-candidate keeps the known leader, so the node keeps refusing
    /// others' (pre-)votes as if its leader were alive.
    pub pre_vote_keeps_leader: bool,
    /// Pitfall 4: a leadership transfer does not drop the leader lease.
    pub lease_survives_transfer: bool,
    /// Pitfall 2: append acknowledgements leave before the entries are durable.
    pub ack_before_persist: bool,
    /// Snapshot flow control: the leader sends every chunk at once, ignoring the window
    /// (what this crate once did; a large snapshot then overflows the transport's queue).
    pub snapshot_unbounded_window: bool,
    /// Snapshot flow control: the leader ignores a follower reporting less than it
    /// acknowledged before, so a follower that restarted mid-transfer never gets the start.
    pub snapshot_ignores_follower_restart: bool,
}

impl Bugs {
    /// Reads one switch; always `false` unless the `deliberate-bugs` feature is compiled in.
    #[inline]
    pub(crate) fn on(switch: bool) -> bool {
        cfg!(feature = "deliberate-bugs") && switch
    }
}
