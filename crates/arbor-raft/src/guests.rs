//! Guests: learners outside the membership that the leader replicates to on the application's
//! request.
//!
//! ZooKeeper grows an ensemble this way: a new server starts with a configuration naming the
//! current members and itself (usually as an observer), connects to the leader and is synced
//! like any learner *before* a `reconfig` makes it a member. Until then it is in no
//! configuration, so a Raft leader would never send it anything. The application asks the
//! leader to replicate to such a node ([`crate::RawNode::attach_guest`]); the leader keeps a
//! progress for it beside the members' and sends it appends, heartbeats and snapshots.
//!
//! A guest never counts: every quorum is taken over the configuration's voters, never over
//! the progress map (as for departing members, see `departing.rs`). A guest the leader has
//! not heard from for two election timeouts is dropped, so a dead one is not replicated to
//! forever; any message from it, or the application attaching it again, renews it. A guest a
//! membership change adds becomes a member with the progress it has. Only a leader has guests:
//! a new leader starts without any, and the application attaches them again.

use crate::progress::Progress;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{NodeId, Role};

impl<S: Storage> Raft<S> {
    /// Leader: replicate to `id`, which is in no configuration, until it is silent for two
    /// election timeouts. Returns whether `id` is (now) a guest: not on a follower, and not
    /// for this node, a member or a departing member (they are replicated to anyway).
    pub(crate) fn attach_guest(&mut self, id: NodeId) -> bool {
        if self.role != Role::Leader
            || id == self.id
            || self.conf.all_nodes().contains(&id)
            || self.departing.contains_key(&id)
        {
            return false;
        }
        let deadline = self.guest_deadline();
        if self.guests.insert(id, deadline).is_none() {
            tracing::info!(
                node_id = self.id.0,
                term = self.term.0,
                guest = id.0,
                "replicating to a learner outside the membership"
            );
            let next = self.log.last_index().next();
            let (msgs_max, bytes_max) = (self.cfg.inflight_msgs_max, self.cfg.inflight_bytes_max);
            self.progress
                .entry(id)
                .or_insert_with(|| Progress::new(next, msgs_max, bytes_max));
            // Start probing at once rather than at the next heartbeat.
            self.maybe_send_append(id, true);
        }
        true
    }

    /// Leader: a message from `from`; a guest that speaks is alive.
    pub(crate) fn renew_guest(&mut self, from: NodeId) {
        let deadline = self.guest_deadline();
        if let Some(current) = self.guests.get_mut(&from) {
            *current = deadline;
        }
    }

    /// Leader, every tick: drop the guests silent past their deadline.
    pub(crate) fn expire_guests(&mut self) {
        let now = self.tick_count;
        let expired: Vec<NodeId> = self
            .guests
            .extract_if(.., |_, deadline| *deadline <= now)
            .map(|(id, _)| id)
            .collect();
        for id in expired {
            tracing::info!(
                node_id = self.id.0,
                term = self.term.0,
                guest = id.0,
                "learner outside the membership went silent; no longer replicated to"
            );
            if !self.conf.all_nodes().contains(&id) && !self.departing.contains_key(&id) {
                self.progress.remove(&id);
            }
        }
    }

    fn guest_deadline(&self) -> u64 {
        self.tick_count + 2 * self.cfg.election_timeout_ticks
    }
}
