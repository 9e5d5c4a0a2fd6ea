//! Members a membership change removed, as the leader sees them until they know it committed.
//!
//! A membership takes effect when its entry is appended (thesis §4.1), so the removed member
//! leaves the leader's configuration at once. If the leader stopped replicating to it then,
//! the member would never learn that its removal committed: it could not apply the entries
//! before the change (a request it forwarded would go unanswered) and, still counting itself
//! a voter of the previous configuration, it would keep trying to campaign. So the leader
//! keeps a departing member's progress and goes on replicating to it (appends, and heartbeats
//! that carry the commit index) until the member has acknowledged a heartbeat that told it
//! the removal committed, or until a deadline of two election timeouts, so that a dead member
//! is not replicated to forever. etcd keeps a removed member's progress until the change is
//! applied, for the same reason.
//!
//! A departing member never counts: every quorum (commit, check-quorum, lease, ReadIndex,
//! votes, transfer) is taken over the configuration's voters, never over the progress map,
//! which is why departing members can live in that map beside the members.

use crate::progress::Progress;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{LogIndex, NodeId};

/// A removed member the leader still replicates to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Departure {
    /// The membership entry that removed the member: it must learn that this committed.
    pub(crate) conf_index: LogIndex,
    /// The leader tick from which the member is given up (dead, partitioned or wiped).
    pub(crate) deadline_tick: u64,
    /// The leader tick of the first heartbeat that told the member a commit index of at
    /// least `conf_index`. Heartbeats of one tick may carry different commit indexes, so
    /// only the answer to a heartbeat of a *later* tick proves the member got the news.
    pub(crate) commit_sent_tick: Option<u64>,
}

impl<S: Storage> Raft<S> {
    /// Leader: `id` was just removed by the membership entry at `conf_index`; keep
    /// replicating to it until it learns that the entry committed.
    pub(crate) fn begin_departure(&mut self, id: NodeId, conf_index: LogIndex) {
        let next = self.log.last_index().next();
        let (msgs_max, bytes_max) = (self.cfg.inflight_msgs_max, self.cfg.inflight_bytes_max);
        self.progress
            .entry(id)
            .or_insert_with(|| Progress::new(next, msgs_max, bytes_max));
        let deadline_tick = self.tick_count + 2 * self.cfg.election_timeout_ticks;
        tracing::debug!(
            node_id = self.id.0,
            term = self.term.0,
            departing = id.0,
            conf_index = conf_index.0,
            "replicating to a removed member until it learns of its removal"
        );
        self.departing.insert(
            id,
            Departure {
                conf_index,
                deadline_tick,
                commit_sent_tick: None,
            },
        );
    }

    /// A new leader: members removed by the latest membership entry in the log may not know
    /// it committed (the previous leader may have stopped before telling them).
    pub(crate) fn begin_departures_after_election(&mut self) {
        let Some(&(conf_index, _)) = self.conf_history.last() else {
            return;
        };
        let previous = match self.conf_history.len() {
            1 => &self.base_conf,
            n => &self.conf_history[n - 2].1,
        };
        let current = self.conf.all_nodes();
        let removed: Vec<NodeId> = previous
            .all_nodes()
            .into_iter()
            .filter(|id| *id != self.id && !current.contains(id))
            .collect();
        for id in removed {
            self.begin_departure(id, conf_index);
        }
    }

    /// Leader: a heartbeat telling `to` the commit index `commit` leaves at `sent_tick`.
    pub(crate) fn note_commit_sent(&mut self, to: NodeId, commit: LogIndex, sent_tick: u64) {
        if let Some(departure) = self.departing.get_mut(&to)
            && departure.commit_sent_tick.is_none()
            && commit >= departure.conf_index
        {
            departure.commit_sent_tick = Some(sent_tick);
        }
    }

    /// Leader: `from` answered the heartbeat sent at `sent_tick`. A departing member that
    /// answered one sent after it was told of its removal's commit is done.
    pub(crate) fn note_departure_heard(&mut self, from: NodeId, sent_tick: u64) {
        let done = self
            .departing
            .get(&from)
            .and_then(|d| d.commit_sent_tick)
            .is_some_and(|told| sent_tick > told);
        if done {
            tracing::debug!(
                node_id = self.id.0,
                term = self.term.0,
                departed = from.0,
                "removed member knows of its removal"
            );
            self.end_departure(from);
        }
    }

    /// Leader, every tick: give up departing members past their deadline.
    pub(crate) fn expire_departures(&mut self) {
        let now = self.tick_count;
        let expired: Vec<NodeId> = self
            .departing
            .iter()
            .filter(|(_, d)| d.deadline_tick <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            tracing::info!(
                node_id = self.id.0,
                term = self.term.0,
                departed = id.0,
                "removed member did not acknowledge its removal in time; no longer replicated to"
            );
            self.end_departure(id);
        }
    }

    fn end_departure(&mut self, id: NodeId) {
        self.departing.remove(&id);
        if !self.conf.all_nodes().contains(&id) {
            self.progress.remove(&id);
        }
    }
}
