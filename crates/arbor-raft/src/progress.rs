//! The leader's view of each follower: how far it matches, what to send next, and the flow
//! control that bounds what is in flight (etcd's `tracker.Progress`).

use std::collections::VecDeque;

use crate::snapshot_send::OutgoingSnapshot;
use crate::types::LogIndex;

/// How the leader currently replicates to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// The follower's position is unknown: send one append at a time and wait for its answer.
    Probe,
    /// The follower is known to match: stream appends, bounded by the inflight window.
    Replicate,
    /// The follower needs a snapshot, which is being sent; nothing else is sent meanwhile.
    Snapshot,
}

/// A bounded window of append messages sent but not acknowledged, counted in messages and
/// in bytes.
#[derive(Clone, Debug)]
pub(crate) struct Inflights {
    /// (last index of the message, bytes of its entries), oldest first.
    window: VecDeque<(LogIndex, u64)>,
    bytes: u64,
    msgs_max: usize,
    bytes_max: u64,
}

impl Inflights {
    pub(crate) fn new(msgs_max: usize, bytes_max: u64) -> Inflights {
        Inflights {
            window: VecDeque::new(),
            bytes: 0,
            msgs_max,
            bytes_max,
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.window.len() >= self.msgs_max || self.bytes >= self.bytes_max
    }

    pub(crate) fn add(&mut self, last: LogIndex, bytes: u64) {
        assert!(!self.full(), "inflight window overflow");
        if let Some(&(prev, _)) = self.window.back() {
            assert!(last > prev, "inflight {last} not after {prev}");
        }
        self.window.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last index is `<= index` (acknowledged).
    pub(crate) fn free_le(&mut self, index: LogIndex) {
        while let Some(&(last, bytes)) = self.window.front() {
            if last > index {
                break;
            }
            self.window.pop_front();
            self.bytes -= bytes;
        }
    }

    /// Frees the oldest message in the window.
    pub(crate) fn free_first_one(&mut self) {
        if let Some((_, bytes)) = self.window.pop_front() {
            self.bytes -= bytes;
        }
    }

    pub(crate) fn reset(&mut self) {
        self.window.clear();
        self.bytes = 0;
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.window.len()
    }
}

/// Replication state of one peer, kept by the leader.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Invariant: matched < next (the follower has everything up to `matched`).
    pub(crate) matched: LogIndex,
    pub(crate) next: LogIndex,
    pub(crate) state: ProgressState,
    /// In probe state: an append was sent and not yet answered (or a heartbeat passed).
    pub(crate) probe_sent: bool,
    /// In snapshot state: the index of the snapshot being sent.
    pub(crate) pending_snapshot: LogIndex,
    /// In snapshot state: ticks since it was entered.
    pub(crate) snapshot_ticks: u64,
    /// In snapshot state: the transfer under way, or `None` while waiting
    /// `snapshot_retry_ticks` to try again (storage had no snapshot, or the follower refused
    /// it). Holds the snapshot's bytes for as long as it is being sent.
    pub(crate) snapshot_transfer: Option<OutgoingSnapshot>,
    /// In snapshot state without a transfer: when to try again.
    pub(crate) snapshot_retry_ticks: u64,
    /// Heard from within the current check-quorum period.
    pub(crate) recent_active: bool,
    /// The leader tick at which the newest heartbeat this peer acknowledged was sent.
    pub(crate) acked_sent_tick: Option<u64>,
    /// The newest ReadIndex round this peer confirmed.
    pub(crate) read_round: u64,
    pub(crate) inflights: Inflights,
}

impl Progress {
    pub(crate) fn new(next: LogIndex, msgs_max: usize, bytes_max: u64) -> Progress {
        Progress {
            matched: LogIndex(0),
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: LogIndex(0),
            snapshot_ticks: 0,
            snapshot_transfer: None,
            snapshot_retry_ticks: 0,
            recent_active: false,
            acked_sent_tick: None,
            read_round: 0,
            inflights: Inflights::new(msgs_max, bytes_max),
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = LogIndex(0);
        self.snapshot_ticks = 0;
        self.snapshot_transfer = None;
        self.snapshot_retry_ticks = 0;
        self.state = state;
        self.inflights.reset();
    }

    pub(crate) fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next = self.matched.next().max(pending.next());
        } else {
            self.reset_state(ProgressState::Probe);
            self.next = self.matched.next();
        }
    }

    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next = self.matched.next();
    }

    /// Starts sending the snapshot at `index` with `transfer`.
    pub(crate) fn become_snapshot(&mut self, index: LogIndex, transfer: OutgoingSnapshot) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = index;
        self.snapshot_transfer = Some(transfer);
    }

    /// The follower needs a snapshot that cannot be sent now: pause for `retry_ticks`.
    pub(crate) fn become_snapshot_waiting(&mut self, retry_ticks: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.snapshot_retry_ticks = retry_ticks;
    }

    /// Gives up the snapshot being sent (or waited for) without having heard that it was
    /// installed, and probes the follower's log from what it is known to match.
    pub(crate) fn abandon_snapshot(&mut self) {
        // Not `become_probe`: that assumes the pending snapshot arrived.
        self.reset_state(ProgressState::Probe);
        self.next = self.matched.next();
    }

    /// Records an acknowledgement up to `index`; returns whether it taught us anything.
    pub(crate) fn maybe_update(&mut self, index: LogIndex) -> bool {
        let mut updated = false;
        if self.matched < index {
            self.matched = index;
            updated = true;
            self.probe_sent = false;
        }
        self.next = self.next.max(index.next());
        updated
    }

    /// Handles a rejection of the append at `rejected`, with the follower's hint that it
    /// matches at most up to `match_hint`. Returns false if the rejection is stale.
    pub(crate) fn maybe_decrease_to(&mut self, rejected: LogIndex, match_hint: LogIndex) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched.next();
            return true;
        }
        if self.next.prev() != rejected {
            return false;
        }
        self.next = rejected.min(match_hint.next()).max(self.matched.next());
        self.probe_sent = false;
        true
    }

    /// Whether the leader must hold back appends to this peer.
    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }

    /// Records that entries up to `last` (of `bytes`) were sent.
    pub(crate) fn sent_entries(&mut self, last: Option<LogIndex>, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if let Some(last) = last {
                    self.next = last.next();
                    self.inflights.add(last, bytes);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_bound_messages_and_bytes() {
        let mut inflights = Inflights::new(2, 100);
        inflights.add(LogIndex(1), 10);
        assert!(!inflights.full());
        inflights.add(LogIndex(2), 10);
        assert!(inflights.full());
        inflights.free_le(LogIndex(1));
        assert!(!inflights.full());
        inflights.add(LogIndex(5), 200);
        assert!(inflights.full(), "byte limit must close the window");
        inflights.free_le(LogIndex(5));
        assert_eq!(inflights.count(), 0);
    }

    #[test]
    fn stale_rejection_in_probe_is_ignored() {
        let mut pr = Progress::new(LogIndex(10), 4, 1000);
        assert!(!pr.maybe_decrease_to(LogIndex(5), LogIndex(3)));
        assert!(pr.maybe_decrease_to(LogIndex(9), LogIndex(3)));
        assert_eq!(pr.next, LogIndex(4));
    }
}
