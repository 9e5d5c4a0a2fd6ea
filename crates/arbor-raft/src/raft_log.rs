//! The node's view of the log: durable entries in [`Storage`] followed by entries not yet
//! durable ("unstable"), with the commit and apply cursors.

use crate::bugs::Bugs;
use crate::error::StorageError;
use crate::storage::Storage;
use crate::types::{Entry, LogIndex, Snapshot, Term};

/// Entries and a snapshot this node has accepted but the application has not yet made
/// durable.
#[derive(Debug)]
struct Unstable {
    /// A snapshot received from the leader, waiting to be persisted.
    snapshot: Option<Snapshot>,
    /// Whether `snapshot` was already handed out in a Ready.
    snapshot_handed_out: bool,
    /// Entries after the durable log. Invariant: `entries[i].index == offset + i`.
    entries: Vec<Entry>,
    /// The index of `entries[0]` (or where it would go).
    offset: LogIndex,
}

/// The log, as the consensus algorithm sees it.
#[derive(Debug)]
pub(crate) struct RaftLog<S: Storage> {
    pub(crate) storage: S,
    unstable: Unstable,
    /// Invariant: applied <= committed <= last_index (Raft §5.3); committed never decreases.
    pub(crate) committed: LogIndex,
    /// The highest index the application has applied.
    pub(crate) applied: LogIndex,
    /// The highest index known durable on this node that is still part of this log.
    pub(crate) persisted: LogIndex,
    /// The last unstable index handed to the application in a Ready (being persisted).
    handed_out: LogIndex,
}

impl<S: Storage> RaftLog<S> {
    pub(crate) fn new(storage: S, committed: LogIndex) -> RaftLog<S> {
        let first = storage.first_index();
        let last = storage.last_index();
        assert!(
            committed <= last,
            "persisted commit {committed} is past the last durable index {last}"
        );
        let applied = LogIndex(first.0 - 1);
        RaftLog {
            storage,
            unstable: Unstable {
                snapshot: None,
                snapshot_handed_out: false,
                entries: Vec::new(),
                offset: last.next(),
            },
            committed: committed.max(applied),
            applied,
            persisted: last,
            handed_out: last,
        }
    }

    /// The index of the first entry still available (snapshot index + 1).
    pub(crate) fn first_index(&self) -> LogIndex {
        match &self.unstable.snapshot {
            Some(s) => s.metadata.index.next(),
            None => self.storage.first_index(),
        }
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        if let Some(e) = self.unstable.entries.last() {
            return e.index;
        }
        match &self.unstable.snapshot {
            Some(s) => s.metadata.index,
            None => self.storage.last_index(),
        }
    }

    /// The term at `index`; index `first_index() - 1` answers with the snapshot's term.
    pub(crate) fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let dummy = LogIndex(self.first_index().0 - 1);
        if index < dummy {
            return Err(StorageError::Compacted { index });
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable { index });
        }
        if let Some(s) = &self.unstable.snapshot
            && index == s.metadata.index
        {
            return Ok(s.metadata.term);
        }
        if index >= self.unstable.offset {
            let i = (index.0 - self.unstable.offset.0) as usize;
            return Ok(self.unstable.entries[i].term);
        }
        self.storage.term(index)
    }

    pub(crate) fn last_term(&self) -> Term {
        // The last index always has a term (it is the snapshot index or an entry).
        self.term(self.last_index()).unwrap_or_default()
    }

    pub(crate) fn match_term(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Ok(term)
    }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours.
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        let our_term = self.last_term();
        last_term > our_term || (last_term == our_term && last_index >= self.last_index())
    }

    /// The largest index `<= index` whose term is `<= term` (with that term): where the
    /// leader should probe next after a rejection.
    pub(crate) fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Ok(t) if t > term => i = i.prev(),
                Ok(t) => return (i, t),
                Err(_) => return (i, Term(0)),
            }
        }
    }

    /// Entries in `[low, high)` up to `max_bytes` (at least one).
    pub(crate) fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low < self.first_index() {
            return Err(StorageError::Compacted { index: low });
        }
        let high = high.min(self.last_index().next());
        if low >= high {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut size = 0u64;
        if low < self.unstable.offset {
            let stable_high = high.min(self.unstable.offset);
            out = self.storage.entries(low, stable_high, max_bytes)?;
            size = out.iter().map(Entry::size_bytes).sum();
            if (out.len() as u64) < stable_high.0 - low.0 || high <= self.unstable.offset {
                return Ok(out);
            }
        }
        let start = low.max(self.unstable.offset);
        for index in start.0..high.0 {
            let e = &self.unstable.entries[(index - self.unstable.offset.0) as usize];
            size += e.size_bytes();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    /// Follower side of AppendEntries (Raft §5.3). Returns the last index verified to match
    /// the leader and the index from which entries were written (if any were), or `None` if
    /// `(prev_index, prev_term)` does not match.
    ///
    /// Only a real conflict truncates (pitfall 8): a stale or duplicated append whose entries
    /// all match leaves any longer suffix alone, and commit never moves past what this very
    /// message verified.
    pub(crate) fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        commit: LogIndex,
        entries: &[Entry],
        bugs: &Bugs,
    ) -> Option<(LogIndex, Option<LogIndex>)> {
        if !self.match_term(prev_index, prev_term) {
            return None;
        }
        let last_new = LogIndex(prev_index.0 + entries.len() as u64);
        let conflict = entries
            .iter()
            .position(|e| !self.match_term(e.index, e.term));
        let mut written = None;
        match conflict {
            Some(at) => {
                let first_conflict = entries[at].index;
                assert!(
                    first_conflict > self.committed,
                    "entry {first_conflict} conflicts with committed entry (commit {})",
                    self.committed
                );
                if Bugs::on(bugs.skip_truncation) && last_new < self.last_index() {
                    // Deliberate bug: overwrite in place and keep the old tail.
                    let mut new = entries[at..].to_vec();
                    if let Ok(tail) =
                        self.entries(last_new.next(), self.last_index().next(), u64::MAX)
                    {
                        new.extend(tail);
                    }
                    self.append(&new);
                } else {
                    self.append(&entries[at..]);
                }
                written = Some(first_conflict);
            }
            None => {
                if Bugs::on(bugs.truncate_matching_suffix)
                    && last_new < self.last_index()
                    && last_new >= self.committed
                    && !entries.is_empty()
                {
                    // Deliberate bug: treat every append as authoritative for the tail.
                    self.append(entries);
                    written = Some(entries[0].index);
                }
            }
        }
        self.commit_to(commit.min(last_new));
        Some((last_new, written))
    }

    /// Appends entries (truncating any suffix from the first one's index) and returns the new
    /// last index.
    ///
    /// # Panics
    /// If that would truncate a committed entry, or leave a gap.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> LogIndex {
        let Some(first) = entries.first() else {
            return self.last_index();
        };
        let after = first.index;
        assert!(
            after > self.committed,
            "append at {after} would truncate committed entries (commit {})",
            self.committed
        );
        assert!(
            after <= self.last_index().next(),
            "append at {after} leaves a gap after {}",
            self.last_index()
        );
        let u = &mut self.unstable;
        if after.0 == u.offset.0 + u.entries.len() as u64 {
            u.entries.extend_from_slice(entries);
        } else if after <= u.offset {
            u.offset = after;
            u.entries = entries.to_vec();
        } else {
            u.entries.truncate((after.0 - u.offset.0) as usize);
            u.entries.extend_from_slice(entries);
        }
        let kept = after.prev();
        self.handed_out = self.handed_out.min(kept);
        self.persisted = self.persisted.min(kept);
        self.last_index()
    }

    pub(crate) fn commit_to(&mut self, index: LogIndex) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} is out of range (last index {})",
                self.last_index()
            );
            self.committed = index;
        }
    }

    pub(crate) fn applied_to(&mut self, index: LogIndex) {
        if index == LogIndex(0) || index <= self.applied {
            return;
        }
        assert!(
            index <= self.committed,
            "applied {index} is past commit {}",
            self.committed
        );
        self.applied = index;
    }

    /// Entries not yet handed to the application for persistence.
    pub(crate) fn entries_to_persist(&self) -> &[Entry] {
        let start = self.handed_out.next().max(self.unstable.offset);
        let skip = (start.0 - self.unstable.offset.0) as usize;
        self.unstable.entries.get(skip..).unwrap_or(&[])
    }

    pub(crate) fn snapshot_to_persist(&self) -> Option<&Snapshot> {
        match &self.unstable.snapshot {
            Some(s) if !self.unstable.snapshot_handed_out => Some(s),
            _ => None,
        }
    }

    /// Marks everything currently unstable as handed out in a Ready.
    pub(crate) fn mark_handed_out(&mut self) {
        self.handed_out = self.last_index();
        if self.unstable.snapshot.is_some() {
            self.unstable.snapshot_handed_out = true;
        }
    }

    /// Committed entries that are durable here and not yet applied (or handed out to apply).
    pub(crate) fn entries_to_apply(&self, from: LogIndex, max_bytes: u64) -> Vec<Entry> {
        if self.unstable.snapshot.is_some() {
            return Vec::new();
        }
        let high = self.committed.min(self.persisted);
        if from > high {
            return Vec::new();
        }
        self.entries(from, high.next(), max_bytes)
            .unwrap_or_default()
    }

    /// The application made entries up to `(index, term)` durable.
    pub(crate) fn stable_to(&mut self, index: LogIndex, term: Term) {
        if index < self.unstable.offset || !self.match_term(index, term) {
            // Replaced by a newer append while being persisted: those are not ours any more.
            return;
        }
        let n = (index.0 - self.unstable.offset.0 + 1) as usize;
        self.unstable.entries.drain(..n);
        self.unstable.offset = index.next();
        self.persisted = self.persisted.max(index);
    }

    /// The application made the unstable snapshot at `index` durable (and restored it).
    pub(crate) fn stable_snapshot_to(&mut self, index: LogIndex) {
        if let Some(s) = &self.unstable.snapshot
            && s.metadata.index == index
        {
            self.unstable.snapshot = None;
            self.unstable.snapshot_handed_out = false;
            self.persisted = self.persisted.max(index);
            self.applied = self.applied.max(index);
        }
    }

    /// Replaces the log by a snapshot from the leader.
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.metadata.index;
        assert!(
            index > self.committed,
            "snapshot {index} is not past commit {}",
            self.committed
        );
        self.committed = index;
        self.unstable = Unstable {
            snapshot: Some(snapshot),
            snapshot_handed_out: false,
            entries: Vec::new(),
            offset: index.next(),
        };
        self.handed_out = index;
        self.persisted = self.persisted.min(index.prev().min(self.applied));
    }

    /// The snapshot to send a follower that needs compacted entries.
    pub(crate) fn snapshot(&self) -> Result<Snapshot, StorageError> {
        match &self.unstable.snapshot {
            Some(s) => Ok(s.clone()),
            None => self.storage.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use crate::types::EntryKind;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            position: 0,
            kind: EntryKind::Normal,
            data: bytes::Bytes::new(),
        }
    }

    fn log_with(terms: &[u64]) -> RaftLog<MemStorage> {
        let mut storage = MemStorage::default();
        let entries: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| entry(t, i as u64 + 1))
            .collect();
        storage.append(&entries);
        RaftLog::new(storage, LogIndex(0))
    }

    #[test]
    fn stale_append_keeps_a_matching_longer_suffix() {
        let mut log = log_with(&[1, 1, 1, 1]);
        let result = log.maybe_append(
            LogIndex(1),
            Term(1),
            LogIndex(4),
            &[entry(1, 2)],
            &Bugs::default(),
        );
        assert_eq!(result, Some((LogIndex(2), None)));
        assert_eq!(log.last_index(), LogIndex(4), "suffix kept");
        assert_eq!(
            log.committed,
            LogIndex(2),
            "commit only up to what was verified"
        );
    }

    #[test]
    fn conflicting_append_truncates_from_the_conflict() {
        let mut log = log_with(&[1, 1, 1, 1]);
        let result = log.maybe_append(
            LogIndex(1),
            Term(1),
            LogIndex(0),
            &[entry(1, 2), entry(2, 3)],
            &Bugs::default(),
        );
        assert_eq!(result, Some((LogIndex(3), Some(LogIndex(3)))));
        assert_eq!(log.last_index(), LogIndex(3));
        assert_eq!(log.term(LogIndex(3)), Ok(Term(2)));
        assert_eq!(log.entries_to_persist().len(), 1);
    }

    #[test]
    fn mismatched_previous_entry_is_rejected() {
        let mut log = log_with(&[1, 1]);
        let result = log.maybe_append(
            LogIndex(2),
            Term(3),
            LogIndex(0),
            &[entry(3, 3)],
            &Bugs::default(),
        );
        assert_eq!(result, None);
        assert_eq!(
            log.find_conflict_by_term(LogIndex(2), Term(3)),
            (LogIndex(2), Term(1))
        );
    }

    #[test]
    #[should_panic(expected = "conflicts with committed entry")]
    fn truncating_a_committed_entry_panics() {
        let mut log = log_with(&[1, 1, 1]);
        log.commit_to(LogIndex(3));
        log.maybe_append(
            LogIndex(1),
            Term(1),
            LogIndex(0),
            &[entry(2, 2)],
            &Bugs::default(),
        );
    }
}
