//! The safety checker: one canonical history that every replica must agree with.
//!
//! It is fed events as they happen (an entry made durable, a commit index made durable, an
//! entry applied, a leader observed, a read answered) and returns a `Violation` the moment an
//! invariant breaks: election safety, log matching, leader completeness, state-machine
//! safety (no committed entry is ever lost or changed), read linearizability.

use std::collections::BTreeMap;

use arbor_raft::{Entry, EntryKind, LogIndex, NodeId, Term};

/// A broken invariant, with what the checker saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

/// A 64-bit FNV-1a hash, fixed so that runs are reproducible.
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The content identity of an entry (not its index or term).
pub fn entry_digest(e: &Entry) -> u64 {
    let kind = match e.kind {
        EntryKind::Normal => 1,
        EntryKind::NoOp => 2,
        EntryKind::ConfChange => 3,
    };
    hash_bytes(kind ^ (u64::from(e.position) << 8), &e.data)
}

/// The state machine's running digest after applying `e` to a state of digest `prev`.
pub fn apply_digest(prev: u64, e: &Entry) -> u64 {
    let mut buf = Vec::with_capacity(32);
    buf.extend_from_slice(&prev.to_be_bytes());
    buf.extend_from_slice(&e.index.0.to_be_bytes());
    buf.extend_from_slice(&e.term.0.to_be_bytes());
    buf.extend_from_slice(&entry_digest(e).to_be_bytes());
    hash_bytes(0, &buf)
}

#[derive(Default)]
pub struct Checker {
    /// Election safety: at most one leader per term (Raft §5.2).
    leaders: BTreeMap<Term, NodeId>,
    /// Log matching (§5.3): (index, term) determines the entry and the term before it.
    entries: BTreeMap<(LogIndex, Term), (u64, Option<Term>)>,
    /// Entries some node made its commit index durable over: index -> (entry term, the
    /// lowest term of a node known to have committed it).
    committed: BTreeMap<LogIndex, (Term, Term)>,
    /// State-machine safety: the digest of the applied prefix at each index, and its term.
    applied: BTreeMap<LogIndex, (Term, u64)>,
    /// The highest index ever known committed anywhere.
    pub max_commit: LogIndex,
    /// Reads in flight: context -> the commit index they must at least observe.
    reads: BTreeMap<Vec<u8>, LogIndex>,
    pub reads_checked: u64,
}

impl Checker {
    pub fn observe_leader(&mut self, term: Term, id: NodeId) -> Result<(), Violation> {
        match self.leaders.get(&term) {
            Some(&other) if other != id => Err(Violation(format!(
                "election safety: nodes {other} and {id} both lead term {term}"
            ))),
            _ => {
                self.leaders.insert(term, id);
                Ok(())
            }
        }
    }

    /// A node made `entry` durable; `prev_term` is its log's term at `entry.index - 1`.
    pub fn observe_durable_entry(
        &mut self,
        id: NodeId,
        entry: &Entry,
        prev_term: Option<Term>,
    ) -> Result<(), Violation> {
        let key = (entry.index, entry.term);
        let value = (entry_digest(entry), prev_term);
        match self.entries.get(&key) {
            Some(&(digest, prev)) => {
                if digest != value.0 {
                    return Err(Violation(format!(
                        "log matching: node {id} holds a different entry at {}/{}",
                        entry.term, entry.index
                    )));
                }
                if let (Some(a), Some(b)) = (prev, prev_term)
                    && a != b
                {
                    return Err(Violation(format!(
                        "log matching: node {id} has term {b} before {}/{}, others {a}",
                        entry.term, entry.index
                    )));
                }
                if prev.is_none() && prev_term.is_some() {
                    self.entries.insert(key, value);
                }
            }
            None => {
                self.entries.insert(key, value);
            }
        }
        // A durable entry that conflicts with a committed one is not yet a violation: a
        // deposed leader may still be writing its own uncommitted tail. Committing or
        // applying it would be, and `observe_commit` / `observe_apply` catch that.
        Ok(())
    }

    /// A node made commit index `index` durable, with `term` at that index in its log.
    pub fn observe_commit(
        &mut self,
        id: NodeId,
        index: LogIndex,
        term: Term,
        node_term: Term,
    ) -> Result<(), Violation> {
        let mut commit_term = node_term;
        if let Some(&(known, known_commit_term)) = self.committed.get(&index) {
            if known != term {
                return Err(Violation(format!(
                    "state machine safety: node {id} committed {term}/{index}, \
                     but {known}/{index} was committed before"
                )));
            }
            commit_term = commit_term.min(known_commit_term);
        }
        self.committed.insert(index, (term, commit_term));
        if index > self.max_commit {
            self.max_commit = index;
        }
        Ok(())
    }

    /// Committed entries: (index, entry term, lowest term in which it was known committed).
    pub fn committed_entries(&self) -> impl DoubleEndedIterator<Item = (LogIndex, Term, Term)> {
        self.committed.iter().map(|(&i, &(t, c))| (i, t, c))
    }

    /// A node applied `entry`, reaching state digest `digest`.
    pub fn observe_apply(
        &mut self,
        id: NodeId,
        entry: &Entry,
        digest: u64,
    ) -> Result<(), Violation> {
        match self.applied.get(&entry.index) {
            Some(&(term, known)) if term != entry.term || known != digest => {
                Err(Violation(format!(
                    "state machine safety: node {id} applied {}/{} reaching a state that \
                     differs from the canonical history ({term}/{})",
                    entry.term, entry.index, entry.index
                )))
            }
            Some(_) => Ok(()),
            None => {
                self.applied.insert(entry.index, (entry.term, digest));
                if entry.index > self.max_commit {
                    self.max_commit = entry.index;
                }
                Ok(())
            }
        }
    }

    /// A node restored a snapshot at `index` whose state has `digest`.
    pub fn observe_snapshot(
        &mut self,
        id: NodeId,
        index: LogIndex,
        digest: u64,
    ) -> Result<(), Violation> {
        if index == LogIndex(0) {
            return Ok(());
        }
        match self.applied.get(&index) {
            Some(&(_, known)) if known != digest => Err(Violation(format!(
                "state machine safety: node {id} restored a snapshot at {index} that differs \
                 from the canonical history"
            ))),
            Some(_) => Ok(()),
            None => Err(Violation(format!(
                "node {id} restored a snapshot at {index} that nobody applied"
            ))),
        }
    }

    pub fn digest_at(&self, index: LogIndex) -> Option<u64> {
        self.applied.get(&index).map(|&(_, d)| d)
    }

    /// A linearizable read was requested now.
    pub fn read_requested(&mut self, context: Vec<u8>) {
        let required = self.max_commit;
        self.reads.insert(context, required);
    }

    /// A read index was answered; it must cover every commit known when the read started.
    pub fn read_answered(
        &mut self,
        id: NodeId,
        context: &[u8],
        index: LogIndex,
    ) -> Result<(), Violation> {
        let Some(required) = self.reads.remove(context) else {
            return Ok(());
        };
        self.reads_checked += 1;
        if index < required {
            return Err(Violation(format!(
                "stale read: node {id} answered read {:?} at index {index}, but {required} \
                 was committed before the read began",
                String::from_utf8_lossy(context)
            )));
        }
        Ok(())
    }

    /// A leader claims a valid lease; its commit index must cover everything committed.
    pub fn lease_held(&self, id: NodeId, commit: LogIndex) -> Result<(), Violation> {
        if commit < self.max_commit {
            return Err(Violation(format!(
                "stale lease: node {id} holds a lease at commit {commit}, but {} is committed",
                self.max_commit
            )));
        }
        Ok(())
    }
}
