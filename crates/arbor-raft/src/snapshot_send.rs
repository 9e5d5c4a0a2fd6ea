//! The leader's side of a snapshot transfer: the snapshot is fetched from storage once per
//! transfer and kept (its bytes are shared, not copied, between followers receiving the same
//! one); chunks go out in a window bounded in chunks and bytes, the follower's cumulative
//! acknowledgements open the window, a chunk whose acknowledgement does not come within
//! `snapshot_chunk_timeout_ticks` is sent again, the window goes back when the follower lost
//! what it had (it restarted), and the transfer starts over when a newer snapshot superseded
//! this one.
//!
//! Every transmission carries a sequence number from a counter of the leader; the follower
//! answers with the largest one its buffer has taken and the bytes it holds from the start.
//! While one buffer lives both only grow, so answers are ordered by `(seq, received)` even
//! when the network reorders them, and the leader believes only one newer than any before.
//! It believes it even when it reports holding less: then the follower lost its buffer
//! (it restarted) and the leader goes back to what it holds. Trusting the largest
//! acknowledgement instead would let a late answer from before the restart make the leader
//! skip what the new incarnation lacks, and the transfer would stall for good.
//!
//! Why a window: a snapshot of a large tree is hundreds of MiB, while the transport's queue
//! per peer is bounded and drops what does not fit. Sending every chunk at once, as this
//! crate once did, meant a large snapshot could never arrive.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;

use crate::bugs::Bugs;
use crate::config::Config;
use crate::message::{MessageBody, SnapshotRefusal};
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{LogIndex, NodeId, Snapshot, SnapshotMetadata, Term};

/// The limits of one transfer, from [`Config`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendLimits {
    pub(crate) chunk_bytes_max: u64,
    pub(crate) inflight_chunks_max: usize,
    /// Invariant: `inflight_bytes_max >= chunk_bytes_max` (checked by `Config::validate`).
    pub(crate) inflight_bytes_max: u64,
    pub(crate) chunk_timeout_ticks: u64,
}

impl SendLimits {
    pub(crate) fn from_config(cfg: &Config) -> SendLimits {
        SendLimits {
            chunk_bytes_max: cfg.snapshot_chunk_bytes_max,
            inflight_chunks_max: cfg.snapshot_inflight_chunks_max,
            inflight_bytes_max: cfg.snapshot_inflight_bytes_max,
            chunk_timeout_ticks: cfg.snapshot_chunk_timeout_ticks,
        }
    }
}

/// A chunk sent and not yet acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InflightChunk {
    offset: u64,
    len: u64,
    /// The leader tick at which it was last sent.
    sent_tick: u64,
}

impl InflightChunk {
    fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// A chunk to put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub(crate) offset: u64,
    pub(crate) data: Bytes,
    pub(crate) seq: u64,
}

/// What an acknowledgement did to the transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// Older or no better than what is known (acknowledgements may be reordered): nothing.
    Stale,
    /// The window moved; send these chunks.
    Progressed(Vec<Chunk>),
    /// The follower's newest answer reports less than it acknowledged before: it lost its
    /// buffer (restarted). Going back to what it holds; send these chunks.
    WentBack(Vec<Chunk>),
}

/// One snapshot being sent to one follower.
///
/// Invariants: `acked_bytes <= next_offset <= total_bytes`; `inflight` holds, in offset
/// order, the chunks of `[acked_bytes, next_offset)` not yet acknowledged, at most
/// `inflight_chunks_max` of them and at most `inflight_bytes_max` bytes.
#[derive(Clone)]
pub(crate) struct OutgoingSnapshot {
    snapshot: Snapshot,
    limits: SendLimits,
    /// The follower's cumulative acknowledgement: it holds `[0, acked_bytes)`.
    acked_bytes: u64,
    /// Where the next chunk never sent in this round starts.
    next_offset: u64,
    /// Whether the chunk ending at `total_bytes` was sent (for an empty snapshot, the one
    /// empty chunk).
    last_sent: bool,
    inflight: VecDeque<InflightChunk>,
    inflight_bytes: u64,
    /// The `seq` of the newest answer believed: an answer is believed only if its
    /// `(seq, received_bytes)` is above `(answered_seq, acked_bytes)`.
    answered_seq: u64,
    /// The leader's counter when the transfer began: every chunk of it has a larger `seq`,
    /// so an answer at or below this one is about an earlier transfer and is ignored.
    seq_floor: u64,
    /// How many times the window went back because the follower reported less than before.
    restarts: u64,
}

impl fmt::Debug for OutgoingSnapshot {
    // The data may be hundreds of MiB: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingSnapshot")
            .field("index", &self.snapshot.metadata.index)
            .field("term", &self.snapshot.metadata.term)
            .field("total_bytes", &self.total_bytes())
            .field("acked_bytes", &self.acked_bytes)
            .field("next_offset", &self.next_offset)
            .field("inflight", &self.inflight)
            .field("restarts", &self.restarts)
            .finish()
    }
}

/// What the leader reports about a snapshot transfer in [`crate::FollowerProgress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotTransferStatus {
    /// The index of the snapshot being sent.
    pub index: LogIndex,
    /// The snapshot's size.
    pub total_bytes: u64,
    /// Bytes the follower acknowledged holding from the start.
    pub acked_bytes: u64,
    /// Chunks sent and not yet acknowledged.
    pub inflight_chunks: u64,
    /// Bytes sent and not yet acknowledged.
    pub inflight_bytes: u64,
    /// How many times the window went back because the follower reported holding less than
    /// before (it restarted and lost its buffer).
    pub restarts: u64,
}

impl OutgoingSnapshot {
    /// A transfer whose chunks will get sequence numbers above `seq_now`.
    pub(crate) fn new(snapshot: Snapshot, limits: SendLimits, seq_now: u64) -> OutgoingSnapshot {
        OutgoingSnapshot {
            snapshot,
            limits,
            acked_bytes: 0,
            next_offset: 0,
            last_sent: false,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            answered_seq: seq_now,
            seq_floor: seq_now,
            restarts: 0,
        }
    }

    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub(crate) fn metadata(&self) -> &SnapshotMetadata {
        &self.snapshot.metadata
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.snapshot.data.len() as u64
    }

    pub(crate) fn status(&self) -> SnapshotTransferStatus {
        SnapshotTransferStatus {
            index: self.snapshot.metadata.index,
            total_bytes: self.total_bytes(),
            acked_bytes: self.acked_bytes,
            inflight_chunks: self.inflight.len() as u64,
            inflight_bytes: self.inflight_bytes,
            restarts: self.restarts,
        }
    }

    fn window_allows(&self, len: u64, bugs: &Bugs) -> bool {
        if Bugs::on(bugs.snapshot_unbounded_window) {
            return true;
        }
        self.inflight.len() < self.limits.inflight_chunks_max
            && self.inflight_bytes + len <= self.limits.inflight_bytes_max
    }

    /// The chunk to transmit, stamped with the next sequence number.
    fn chunk(&self, c: &InflightChunk, seq: &mut u64) -> Chunk {
        *seq += 1;
        // In range by the invariant on `inflight` (offsets are within the data).
        let start = c.offset as usize;
        let end = c.end() as usize;
        Chunk {
            offset: c.offset,
            data: self.snapshot.data.slice(start..end),
            seq: *seq,
        }
    }

    /// Sends new chunks while the window has room; `seq` is the leader's counter.
    pub(crate) fn fill(&mut self, now: u64, seq: &mut u64, bugs: &Bugs) -> Vec<Chunk> {
        let total = self.total_bytes();
        let mut out = Vec::new();
        while !self.last_sent {
            let len = (total - self.next_offset).min(self.limits.chunk_bytes_max);
            if !self.window_allows(len, bugs) {
                break;
            }
            let c = InflightChunk {
                offset: self.next_offset,
                len,
                sent_tick: now,
            };
            self.inflight.push_back(c);
            self.inflight_bytes += len;
            self.next_offset += len;
            self.last_sent = self.next_offset == total;
            out.push(self.chunk(&c, seq));
        }
        self.assert_invariants();
        out
    }

    /// Takes the follower's answer: its buffer took chunks up to transmission `answered` (a
    /// `seq`) and holds `[0, received_bytes)`.
    pub(crate) fn on_ack(
        &mut self,
        answered: u64,
        received_bytes: u64,
        now: u64,
        seq: &mut u64,
        bugs: &Bugs,
    ) -> AckOutcome {
        let total = self.total_bytes();
        if received_bytes > total || answered > *seq || answered <= self.seq_floor {
            // Not an answer to this transfer: ignore rather than trust it.
            return AckOutcome::Stale;
        }
        let newer = answered > self.answered_seq
            || (answered == self.answered_seq && received_bytes > self.acked_bytes);
        if !newer {
            return AckOutcome::Stale;
        }
        self.answered_seq = answered;
        if received_bytes < self.acked_bytes {
            if Bugs::on(bugs.snapshot_ignores_follower_restart) {
                return AckOutcome::Stale;
            }
            self.go_back(received_bytes);
            return AckOutcome::WentBack(self.fill(now, seq, bugs));
        }
        if received_bytes == self.acked_bytes {
            return AckOutcome::Stale;
        }
        self.acked_bytes = received_bytes;
        while let Some(front) = self.inflight.front() {
            // The final chunk is acknowledged only by the follower confirming the installed
            // snapshot (an AppendResponse), so it stays to be resent until then.
            if front.end() > received_bytes || front.end() == total {
                break;
            }
            self.inflight_bytes -= front.len;
            self.inflight.pop_front();
        }
        if self.next_offset < received_bytes {
            // The follower holds more than this round sent (it kept chunks when the window
            // went back): skip ahead.
            assert!(self.inflight.is_empty(), "inflight chunks below the ack");
            self.next_offset = received_bytes;
        }
        // After a silence every chunk still in flight may have been lost with the first one:
        // resend those overdue at once rather than one per timeout.
        let mut out = Vec::new();
        let timeout = self.limits.chunk_timeout_ticks;
        for i in 0..self.inflight.len() {
            if self.inflight[i].sent_tick + timeout <= now {
                self.inflight[i].sent_tick = now;
                out.push(self.chunk(&self.inflight[i], seq));
            }
        }
        out.extend(self.fill(now, seq, bugs));
        AckOutcome::Progressed(out)
    }

    /// On a tick: the oldest unacknowledged chunk again if its acknowledgement is overdue.
    /// The final chunk stays unacknowledged until the follower confirms the installed
    /// snapshot, so this also repeats the question when that confirmation was lost.
    pub(crate) fn on_tick(&mut self, now: u64, seq: &mut u64) -> Option<Chunk> {
        let timeout = self.limits.chunk_timeout_ticks;
        let front = self.inflight.front_mut()?;
        if front.sent_tick + timeout > now {
            return None;
        }
        front.sent_tick = now;
        let front = *front;
        Some(self.chunk(&front, seq))
    }

    /// The follower holds only `[0, received_bytes)`: send again from there.
    fn go_back(&mut self, received_bytes: u64) {
        self.restarts += 1;
        self.acked_bytes = received_bytes;
        self.next_offset = received_bytes;
        self.last_sent = false;
        self.inflight.clear();
        self.inflight_bytes = 0;
    }

    fn assert_invariants(&self) {
        assert!(
            self.acked_bytes <= self.next_offset && self.next_offset <= self.total_bytes(),
            "snapshot transfer out of range: acked {} next {} total {}",
            self.acked_bytes,
            self.next_offset,
            self.total_bytes()
        );
        debug_assert_eq!(
            self.inflight_bytes,
            self.inflight.iter().map(|c| c.len).sum::<u64>()
        );
    }
}

impl<S: Storage> Raft<S> {
    /// Starts sending the latest snapshot to `to`, which needs entries that were compacted.
    /// The snapshot is taken from another follower's transfer of the same one if there is
    /// one, else read from storage: once per transfer, never per chunk.
    pub(crate) fn send_snapshot(&mut self, to: NodeId) {
        let current = self.log.first_index().prev();
        let shared = self
            .progress
            .values()
            .filter_map(|pr| pr.snapshot_transfer.as_ref())
            .find(|t| t.metadata().index == current)
            .map(|t| t.snapshot().clone());
        let snapshot = match shared {
            Some(s) => s,
            None => match self.log.snapshot() {
                Ok(s) => s,
                Err(error) => {
                    // E.g. still being written. Wait before asking storage again, so a
                    // failing read is not repeated on every message from the follower.
                    tracing::info!(
                        node_id = self.id.0,
                        term = self.term.0,
                        to = to.0,
                        %error,
                        "snapshot not available to send"
                    );
                    let retry = self.cfg.election_timeout_ticks;
                    if let Some(pr) = self.progress.get_mut(&to) {
                        pr.become_snapshot_waiting(retry);
                    }
                    return;
                }
            },
        };
        tracing::info!(
            node_id = self.id.0,
            term = self.term.0,
            to = to.0,
            index = snapshot.metadata.index.0,
            total_bytes = snapshot.data.len() as u64,
            "sending snapshot"
        );
        let index = snapshot.metadata.index;
        let limits = SendLimits::from_config(&self.cfg);
        let mut transfer = OutgoingSnapshot::new(snapshot, limits, self.snapshot_seq);
        let chunks = transfer.fill(self.tick_count, &mut self.snapshot_seq, &self.bugs);
        let metadata = transfer.metadata().clone();
        let total_bytes = transfer.total_bytes();
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.become_snapshot(index, transfer);
        }
        self.send_chunks(to, &metadata, total_bytes, chunks);
    }

    fn send_chunks(
        &mut self,
        to: NodeId,
        metadata: &SnapshotMetadata,
        total_bytes: u64,
        chunks: Vec<Chunk>,
    ) {
        for chunk in chunks {
            self.send(
                to,
                MessageBody::Snapshot {
                    metadata: metadata.clone(),
                    total_bytes,
                    offset: chunk.offset,
                    data: chunk.data,
                    seq: chunk.seq,
                },
            );
        }
    }

    /// A follower answered a snapshot chunk (or refused the snapshot).
    pub(crate) fn handle_snapshot_ack(
        &mut self,
        from: NodeId,
        snapshot_index: LogIndex,
        snapshot_term: Term,
        answered: u64,
        received_bytes: u64,
        refused: Option<SnapshotRefusal>,
    ) {
        let now = self.tick_count;
        let bugs = self.bugs;
        let refused_retry = self.cfg.snapshot_refused_retry_ticks;
        let (id, term) = (self.id, self.term);
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if pr.state != ProgressState::Snapshot {
            return;
        }
        let Some(transfer) = pr.snapshot_transfer.as_mut() else {
            return;
        };
        let metadata = transfer.metadata();
        if metadata.index != snapshot_index || metadata.term != snapshot_term {
            return;
        }
        if let Some(refusal) = refused {
            tracing::warn!(
                node_id = id.0,
                term = term.0,
                to = from.0,
                index = snapshot_index.0,
                %refusal,
                "follower refused the snapshot; its snapshot_bytes_max must grow before it \
                 can catch up"
            );
            pr.become_snapshot_waiting(refused_retry);
            return;
        }
        let metadata = metadata.clone();
        let total_bytes = transfer.total_bytes();
        let outcome = transfer.on_ack(answered, received_bytes, now, &mut self.snapshot_seq, &bugs);
        let chunks = match outcome {
            AckOutcome::Stale => return,
            AckOutcome::Progressed(chunks) => chunks,
            AckOutcome::WentBack(chunks) => {
                tracing::info!(
                    node_id = id.0,
                    term = term.0,
                    to = from.0,
                    index = snapshot_index.0,
                    received_bytes,
                    "follower holds less of the snapshot than it acknowledged (restarted?); \
                     sending again from there"
                );
                chunks
            }
        };
        self.send_chunks(from, &metadata, total_bytes, chunks);
    }

    /// Per tick: resend overdue chunks, start over with a snapshot that superseded the one
    /// being sent, retry a snapshot that could not be sent.
    pub(crate) fn tick_snapshot_transfers(&mut self) {
        let now = self.tick_count;
        let current = self.log.first_index().prev();
        let mut restart = Vec::new();
        let mut resend = Vec::new();
        for (&id, pr) in self.progress.iter_mut() {
            if pr.state != ProgressState::Snapshot {
                continue;
            }
            pr.snapshot_ticks += 1;
            match pr.snapshot_transfer.as_mut() {
                Some(t) if t.metadata().index < current => restart.push(id),
                Some(t) => {
                    if let Some(chunk) = t.on_tick(now, &mut self.snapshot_seq) {
                        resend.push((id, t.metadata().clone(), t.total_bytes(), chunk));
                    }
                }
                None if pr.snapshot_ticks > pr.snapshot_retry_ticks => restart.push(id),
                None => {}
            }
        }
        for (id, metadata, total_bytes, chunk) in resend {
            self.send_chunks(id, &metadata, total_bytes, vec![chunk]);
        }
        for id in restart {
            // A newer snapshot superseded the one being sent (the entries after the old one
            // are compacted, so the follower would need the newer one next anyway), or the
            // wait after a refusal or an unavailable snapshot is over.
            tracing::debug!(
                node_id = self.id.0,
                to = id.0,
                "restarting snapshot transfer"
            );
            if let Some(pr) = self.progress.get_mut(&id) {
                pr.abandon_snapshot();
            }
            self.maybe_send_append(id, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(len: usize) -> Snapshot {
        Snapshot {
            metadata: SnapshotMetadata {
                index: LogIndex(10),
                term: Term(2),
                ..SnapshotMetadata::default()
            },
            data: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>()),
        }
    }

    /// A transfer with 10-byte chunks and a timeout of 5 ticks, plus the leader's counter.
    struct Harness {
        t: OutgoingSnapshot,
        seq: u64,
        bugs: Bugs,
    }

    impl Harness {
        fn new(len: usize, chunks: usize, bytes: u64) -> Harness {
            let limits = SendLimits {
                chunk_bytes_max: 10,
                inflight_chunks_max: chunks,
                inflight_bytes_max: bytes,
                chunk_timeout_ticks: 5,
            };
            Harness {
                t: OutgoingSnapshot::new(snapshot(len), limits, 100),
                seq: 100,
                bugs: Bugs::default(),
            }
        }

        fn fill(&mut self, now: u64) -> Vec<u64> {
            offsets(&self.t.fill(now, &mut self.seq, &self.bugs))
        }

        /// An answer to the newest transmission.
        fn ack(&mut self, received: u64, now: u64) -> AckOutcome {
            let answered = self.seq;
            self.ack_to(answered, received, now)
        }

        fn ack_to(&mut self, answered: u64, received: u64, now: u64) -> AckOutcome {
            self.t
                .on_ack(answered, received, now, &mut self.seq, &self.bugs)
        }

        fn tick(&mut self, now: u64) -> Option<u64> {
            self.t.on_tick(now, &mut self.seq).map(|c| c.offset)
        }
    }

    fn offsets(chunks: &[Chunk]) -> Vec<u64> {
        chunks.iter().map(|c| c.offset).collect()
    }

    fn progressed(outcome: AckOutcome) -> Vec<u64> {
        match outcome {
            AckOutcome::Progressed(chunks) => offsets(&chunks),
            other => panic!("expected progress, got {other:?}"),
        }
    }

    #[test]
    fn window_bounds_chunks_then_acks_open_it() {
        let mut h = Harness::new(95, 3, 1000);
        assert_eq!(h.fill(0), vec![0, 10, 20]);
        assert_eq!(h.fill(0), Vec::<u64>::new(), "window full");
        assert_eq!(progressed(h.ack(20, 1)), vec![30, 40]);
        assert_eq!(h.t.status().inflight_chunks, 3);
        assert_eq!(progressed(h.ack(50, 2)), vec![50, 60, 70]);
        assert_eq!(progressed(h.ack(80, 3)), vec![80, 90]);
        assert_eq!(h.tick(9), Some(80));
    }

    #[test]
    fn window_bounds_bytes() {
        let mut h = Harness::new(95, 100, 25);
        assert_eq!(h.fill(0), vec![0, 10]);
        assert_eq!(h.t.status().inflight_bytes, 20);
        assert_eq!(progressed(h.ack(10, 1)), vec![20]);
    }

    #[test]
    fn chunks_are_numbered_and_retransmissions_get_new_numbers() {
        let mut h = Harness::new(30, 3, 1000);
        let chunks = h.t.fill(0, &mut h.seq, &h.bugs);
        let seqs: Vec<u64> = chunks.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![101, 102, 103]);
        let again = h.t.on_tick(5, &mut h.seq).expect("overdue");
        assert_eq!((again.offset, again.seq), (0, 104));
    }

    #[test]
    fn a_lost_chunk_is_sent_again_after_the_timeout() {
        let mut h = Harness::new(50, 3, 1000);
        h.fill(0);
        assert_eq!(h.tick(4), None);
        assert_eq!(h.tick(5), Some(0));
        assert_eq!(h.tick(6), None, "timer restarted");
        // The answer shows the rest of the window arrived: only new chunks go out.
        assert_eq!(progressed(h.ack(30, 7)), vec![30, 40]);
    }

    #[test]
    fn overdue_chunks_are_resent_when_acks_resume() {
        let mut h = Harness::new(50, 3, 1000);
        h.fill(0);
        assert_eq!(h.tick(5), Some(0));
        // The resent first chunk is acknowledged: the rest of the window is overdue too.
        assert_eq!(progressed(h.ack(10, 6)), vec![10, 20, 30]);
    }

    #[test]
    fn answers_to_older_transmissions_are_ignored() {
        let mut h = Harness::new(50, 2, 1000);
        h.fill(0); // seq 101, 102
        progressed(h.ack_to(102, 20, 1)); // sends 20, 30 as 103, 104
        assert_eq!(h.ack_to(101, 10, 1), AckOutcome::Stale, "late answer");
        assert_eq!(
            h.ack_to(101, 0, 1),
            AckOutcome::Stale,
            "late answer of nothing"
        );
        assert_eq!(h.ack_to(103, 20, 1), AckOutcome::Stale, "nothing new");
        assert_eq!(
            h.ack_to(102, 30, 1),
            AckOutcome::Stale,
            "older than believed"
        );
        assert_eq!(h.ack_to(104, 51, 1), AckOutcome::Stale, "past the end");
        assert_eq!(h.ack_to(999, 30, 1), AckOutcome::Stale, "never sent");
        assert_eq!(h.t.status().acked_bytes, 20);
        assert_eq!(h.t.status().restarts, 0);
    }

    #[test]
    fn a_gap_filled_by_a_late_chunk_counts() {
        let mut h = Harness::new(50, 3, 1000);
        h.fill(0); // 101, 102, 103
        assert_eq!(
            h.ack_to(103, 0, 1),
            AckOutcome::Stale,
            "only the last arrived"
        );
        // The first arrives late and fills the gap: same seq, more held.
        assert_eq!(progressed(h.ack_to(103, 10, 1)), vec![30]);
        assert_eq!(progressed(h.ack_to(103, 30, 1)), vec![40]);
    }

    #[test]
    fn answers_to_an_earlier_transfer_are_ignored() {
        let mut h = Harness::new(50, 2, 1000);
        h.fill(0);
        assert_eq!(h.ack_to(100, 40, 1), AckOutcome::Stale);
    }

    #[test]
    fn a_follower_that_lost_its_buffer_gets_the_rest_from_what_it_holds() {
        let mut h = Harness::new(50, 2, 1000);
        h.fill(0);
        progressed(h.ack(20, 1));
        match h.ack(0, 2) {
            AckOutcome::WentBack(chunks) => assert_eq!(offsets(&chunks), vec![0, 10]),
            other => panic!("expected to go back, got {other:?}"),
        }
        assert_eq!(h.t.status().restarts, 1);
        assert_eq!(h.t.status().acked_bytes, 0);
        // It had kept chunks after the gap: the window skips ahead to what it holds.
        assert_eq!(progressed(h.ack(40, 3)), vec![40]);
    }

    #[test]
    fn a_late_answer_from_before_a_restart_cannot_stall_the_transfer() {
        let mut h = Harness::new(50, 2, 1000);
        h.fill(0); // 101, 102
        progressed(h.ack_to(102, 20, 1)); // 103, 104
        // The follower restarts; its answer to 104 (it holds nothing) arrives first...
        assert!(matches!(h.ack_to(104, 0, 2), AckOutcome::WentBack(_))); // 105, 106
        // ...then its late answer to 103, from before the restart, claiming 40.
        assert_eq!(h.ack_to(103, 40, 2), AckOutcome::Stale);
        assert_eq!(h.t.status().acked_bytes, 0);
        assert_eq!(progressed(h.ack_to(106, 20, 3)), vec![20, 30]);
    }

    #[test]
    fn the_deliberate_bug_ignores_a_follower_that_went_back() {
        let mut h = Harness::new(50, 2, 1000);
        h.bugs.snapshot_ignores_follower_restart = true;
        h.fill(0);
        progressed(h.ack(20, 1));
        assert_eq!(h.ack(0, 2), AckOutcome::Stale);
    }

    #[test]
    fn the_deliberate_bug_ignores_the_window() {
        let mut h = Harness::new(95, 2, 20);
        h.bugs.snapshot_unbounded_window = true;
        assert_eq!(h.fill(0).len(), 10);
    }

    #[test]
    fn an_empty_snapshot_is_one_empty_chunk() {
        let mut h = Harness::new(0, 2, 1000);
        let chunks = h.t.fill(0, &mut h.seq, &h.bugs);
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].data.is_empty());
        assert_eq!(h.fill(1), Vec::<u64>::new());
        assert_eq!(h.tick(5), Some(0));
    }

    #[test]
    fn the_final_chunk_stays_in_flight_until_the_install_is_confirmed() {
        let mut h = Harness::new(20, 2, 1000);
        h.fill(0);
        progressed(h.ack(10, 1));
        assert_eq!(h.t.status().inflight_chunks, 1);
        assert_eq!(h.tick(6), Some(10));
    }
}
