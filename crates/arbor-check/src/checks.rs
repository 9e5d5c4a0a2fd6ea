//! Checkers for what is not a linearizable object: reads that ZooKeeper only promises to be
//! sequentially consistent, lock holdings, session lifetimes and watch notifications. Each is a
//! pure function of what the clients recorded and returns the violations found, as text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::history::{At, Op, Process};
use crate::models::{ZnodeInput, ZnodeOutput};

/// Checks the reads of one znode that were not preceded by a `sync` against ZooKeeper's
/// sequential consistency (the programmer's guide: a client sees updates in order, never an
/// older view than it saw before, and its own writes):
///
/// - the value read was written by some operation invoked before the read returned (or is the
///   initial value), with the version that write produced when that is known;
/// - per session, the node never goes back: no answer older than one the session had before,
///   read or written (read your writes). "Older" compares the answers' `mzxid` where
///   `zxids[i]` gives it for `ops[i]` (a node deleted and created again starts over at
///   version 0, so versions alone only order answers of one incarnation); where it is unknown
///   (`zxids` shorter, or negative) the versions are compared.
///
/// `initial` is the node's data and version before the run's operations.
pub fn sequential_reads(
    key: &str,
    ops: &[Op<ZnodeInput, ZnodeOutput>],
    zxids: &[i64],
    initial: Option<(u64, i32)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    // Who wrote each value, and when it was invoked.
    let mut writes: BTreeMap<u64, &Op<ZnodeInput, ZnodeOutput>> = BTreeMap::new();
    for op in ops {
        if let ZnodeInput::Create { value } | ZnodeInput::Set { value, .. } = op.input {
            writes.insert(value, op);
        }
    }
    for op in ops {
        let (ZnodeInput::Read { synced: false }, Some(ZnodeOutput::Value { value, version })) =
            (&op.input, &op.output)
        else {
            continue;
        };
        if initial == Some((*value, *version)) {
            continue;
        }
        let ret = op.ret.unwrap_or(At(u64::MAX));
        match writes.get(value) {
            None => problems.push(format!("{key}: read of a value nobody wrote:\n    {op}")),
            Some(write) if write.call > ret => problems.push(format!(
                "{key}: read of a value before its write was invoked:\n    {op}\n    {write}"
            )),
            Some(write) => {
                let written_version = match &write.output {
                    Some(ZnodeOutput::Written { version }) => Some(*version),
                    Some(ZnodeOutput::Created) => Some(0),
                    _ => None,
                };
                if written_version.is_some_and(|written| written != *version)
                    || matches!(
                        write.output,
                        Some(
                            ZnodeOutput::BadVersion | ZnodeOutput::NoNode | ZnodeOutput::NodeExists
                        )
                    )
                {
                    problems.push(format!(
                        "{key}: read saw a value with another version than its write produced (or of a failed write):\n    {write}\n    {op}"
                    ));
                }
            }
        }
    }
    // Per session, in completion order: versions observed never go back.
    type Answered<'a> = (&'a Op<ZnodeInput, ZnodeOutput>, i64);
    let mut by_session: BTreeMap<i64, Vec<Answered<'_>>> = BTreeMap::new();
    for (index, op) in ops.iter().enumerate().filter(|(_, op)| op.ret.is_some()) {
        let zxid = zxids.get(index).copied().unwrap_or(-1);
        by_session
            .entry(op.process.session_id)
            .or_default()
            .push((op, zxid));
    }
    for (_, session_ops) in by_session.iter_mut() {
        session_ops.sort_by_key(|(op, _)| op.ret);
        let mut seen: Option<(&Op<ZnodeInput, ZnodeOutput>, i64, i32)> = None;
        for &(op, zxid) in session_ops.iter() {
            let version = match &op.output {
                Some(ZnodeOutput::Value { version, .. } | ZnodeOutput::Written { version }) => {
                    *version
                }
                _ => continue,
            };
            let Some((before, before_zxid, before_version)) = seen else {
                seen = Some((op, zxid, version));
                continue;
            };
            let (older, newer) = if zxid >= 0 && before_zxid >= 0 {
                (zxid < before_zxid, zxid > before_zxid)
            } else {
                (version < before_version, version > before_version)
            };
            if older && before.ret < Some(op.call) {
                problems.push(format!(
                    "{key}: a session saw the node go back in time (version {before_version} mzxid {before_zxid:#x}, then version {version} mzxid {zxid:#x}):\n    {before}\n    {op}"
                ));
            }
            if newer {
                seen = Some((op, zxid, version));
            }
        }
    }
    problems
}

/// One holding of a lock, as its holder saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    /// Who held it.
    pub process: Process,
    /// When the acquire returned.
    pub acquired: At,
    /// When the holder stopped acting as holder: it invoked the release, or was told the
    /// holding was suspended or lost (whichever came first).
    pub released: At,
    /// How it ended.
    pub end: HoldingEnd,
}

/// How a holding ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldingEnd {
    /// Released by the holder.
    Released,
    /// The connection was lost (the recipe tells its holder to stop at once).
    Suspended,
    /// The run ended while held.
    RunEnded,
}

/// Mutual exclusion: no two holdings overlap. A holder stops acting as holder as soon as its
/// connection is lost, before the server can expire its session and grant the lock to
/// someone else (the recipe's timing assumption, ZooKeeper's and Curator's too: a client
/// declares its connection lost after a fraction of the session timeout, the server expires
/// the session only after the whole of it).
pub fn mutual_exclusion(lock: &str, holdings: &[Holding]) -> Vec<String> {
    let mut sorted: Vec<&Holding> = holdings.iter().collect();
    sorted.sort_by_key(|holding| holding.acquired);
    let mut problems = Vec::new();
    let mut latest: Option<&Holding> = None;
    for holding in sorted {
        if let Some(before) = latest
            && holding.acquired < before.released
        {
            problems.push(format!(
                "{lock}: two holders at once:\n    [{}] held {}..{} ({:?})\n    [{}] held {}..{} ({:?})",
                before.process,
                before.acquired,
                before.released,
                before.end,
                holding.process,
                holding.acquired,
                holding.released,
                holding.end
            ));
        }
        if latest.is_none_or(|before| holding.released > before.released) {
            latest = Some(holding);
        }
    }
    problems
}

/// What happened to one session that owned an ephemeral node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionLife {
    /// The owner.
    pub process: Process,
    /// Its ephemeral node.
    pub path: String,
    /// When the create of the ephemeral returned.
    pub created: At,
    /// Its owner's checks of its own node: (invoked, returned, whether it existed). Each is a
    /// `sync` then `exists` on the owner's session, which succeeded (so the session was alive
    /// when it was answered).
    pub own_checks: Vec<(At, At, bool)>,
    /// How the session ended, when it did.
    pub ended: Option<(At, SessionEnd)>,
    /// Checks by another session after the end (invoked, returned, whether it existed),
    /// each after a `sync`.
    pub later_checks: Vec<(At, At, bool)>,
}

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// `close` returned.
    Closed,
    /// The client was told the session expired.
    Expired,
}

/// How long after a client learned that its session ended its ephemeral may still be seen.
/// ZooKeeper tells a client "expired" once the leader has marked the session closing, and the
/// close (one log entry) commits right after: a window of milliseconds, not seconds.
pub const SESSION_END_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Session semantics: the ephemeral of a live session never disappears (every successful
/// check by its owner finds it), and the ephemeral of an ended session is gone for every
/// check that began [`SESSION_END_GRACE`] after the end was known.
pub fn session_semantics(lives: &[SessionLife]) -> Vec<String> {
    let mut problems = Vec::new();
    for life in lives {
        for &(call, ret, exists) in &life.own_checks {
            if !exists {
                problems.push(format!(
                    "[{}] the ephemeral {} of a live session was gone at a check by its owner ({call}..{ret}); created {}",
                    life.process, life.path, life.created
                ));
            }
        }
        if let Some((ended, how)) = life.ended {
            for &(call, ret, exists) in &life.later_checks {
                if exists && call.as_duration() > ended.as_duration() + SESSION_END_GRACE {
                    problems.push(format!(
                        "[{}] the ephemeral {} outlived its session ({how:?} at {ended}): found by a check {call}..{ret}",
                        life.process, life.path
                    ));
                }
            }
        }
    }
    problems
}

/// What a watcher saw on one node, in the order it saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchSeen {
    /// A read of the node returned this version (at this moment, after its reply).
    Read {
        /// When the reply arrived.
        at: At,
        /// The version read.
        version: i32,
    },
    /// A data-changed notification, with the zxid the server put in its header (-1 when the
    /// server sends none, as ZooKeeper before 3.9).
    Changed {
        /// When it was taken from the watcher.
        at: At,
        /// The header's zxid.
        zxid: i64,
    },
    /// Any other notification on the node (created, deleted): none is expected.
    Other {
        /// When.
        at: At,
        /// What.
        what: String,
    },
    /// The session was disconnected (notifications may have been lost, ZOOKEEPER-4698).
    Disconnected {
        /// When it was told.
        at: At,
    },
}

/// Watch delivery with a persistent watch on a node whose data only changes (each change adds
/// one to its version): between two reads on the watcher's session that returned versions
/// `a` then `b`, exactly `b - a` change notifications arrive — every change is notified once,
/// before the reply of any later read — unless the session was disconnected in between, when
/// notifications may be missing but never extra. Zxids in the headers increase strictly.
pub fn watch_delivery(key: &str, process: Process, seen: &[WatchSeen]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut last_read: Option<(At, i32)> = None;
    let mut changes = 0i64;
    let mut disconnected = false;
    let mut last_zxid = i64::MIN;
    for item in seen {
        match item {
            WatchSeen::Read { at, version } => {
                if let Some((previous_at, previous)) = last_read {
                    let expected = i64::from(*version) - i64::from(previous);
                    let bad = if disconnected {
                        changes > expected
                    } else {
                        changes != expected
                    };
                    if bad || expected < 0 {
                        let mut text = format!(
                            "{key} [{process}]: {changes} change notifications between reads of version {previous} ({previous_at}) and version {version} ({at})"
                        );
                        let _ = write!(
                            text,
                            ", expected {}{expected}",
                            if disconnected { "at most " } else { "" }
                        );
                        problems.push(text);
                    }
                }
                last_read = Some((*at, *version));
                changes = 0;
                disconnected = false;
            }
            WatchSeen::Changed { at, zxid } => {
                changes += 1;
                if *zxid >= 0 {
                    if *zxid <= last_zxid {
                        problems.push(format!(
                            "{key} [{process}]: notification zxids out of order at {at}: {last_zxid:#x} then {zxid:#x}"
                        ));
                    }
                    last_zxid = *zxid;
                }
            }
            WatchSeen::Other { at, what } => problems.push(format!(
                "{key} [{process}]: unexpected notification at {at}: {what}"
            )),
            WatchSeen::Disconnected { .. } => disconnected = true,
        }
    }
    problems
}

/// Sequential names: no two creates were given the same name, and every acknowledged create
/// is among the children listed at the end (no acknowledged write lost).
pub fn unique_names(
    parent: &str,
    acknowledged: &[(Process, String)],
    final_children: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut owners: BTreeMap<&str, Process> = BTreeMap::new();
    for (process, name) in acknowledged {
        if let Some(other) = owners.insert(name.as_str(), *process) {
            problems.push(format!(
                "{parent}: two creates got the name {name}: [{other}] and [{process}]"
            ));
        }
        if !final_children.contains(name) {
            problems.push(format!(
                "{parent}: acknowledged create {name} [{process}] is missing at the end"
            ));
        }
    }
    // Sequence numbers (the last ten characters) are unique across all children.
    let mut numbers: BTreeMap<&str, &str> = BTreeMap::new();
    for name in final_children {
        let number = &name[name.len().saturating_sub(10)..];
        if let Some(other) = numbers.insert(number, name) {
            problems.push(format!(
                "{parent}: two children share the sequence number {number}: {other} and {name}"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(worker: u32, session_id: i64) -> Process {
        Process { worker, session_id }
    }

    fn op(
        id: u32,
        session: i64,
        call: u64,
        ret: u64,
        input: ZnodeInput,
        output: ZnodeOutput,
    ) -> Op<ZnodeInput, ZnodeOutput> {
        Op {
            id,
            process: process(id, session),
            call: At(call),
            ret: Some(At(ret)),
            input,
            output: Some(output),
        }
    }

    const PLAIN: ZnodeInput = ZnodeInput::Read { synced: false };

    #[test]
    fn stale_but_monotonic_reads_are_sequentially_consistent() {
        let ops = vec![
            op(
                0,
                1,
                0,
                10,
                ZnodeInput::Set {
                    value: 5,
                    expected: None,
                },
                ZnodeOutput::Written { version: 1 },
            ),
            // Another session reads the old value after the write completed: allowed.
            op(
                1,
                2,
                20,
                30,
                PLAIN,
                ZnodeOutput::Value {
                    value: 0,
                    version: 0,
                },
            ),
            op(
                2,
                2,
                40,
                50,
                PLAIN,
                ZnodeOutput::Value {
                    value: 5,
                    version: 1,
                },
            ),
        ];
        assert!(sequential_reads("/r", &ops, &[], Some((0, 0))).is_empty());
    }

    #[test]
    fn going_back_in_time_or_missing_own_write_is_flagged() {
        let back = vec![
            op(
                0,
                1,
                0,
                10,
                ZnodeInput::Set {
                    value: 5,
                    expected: None,
                },
                ZnodeOutput::Written { version: 1 },
            ),
            op(
                1,
                2,
                20,
                30,
                PLAIN,
                ZnodeOutput::Value {
                    value: 5,
                    version: 1,
                },
            ),
            op(
                2,
                2,
                40,
                50,
                PLAIN,
                ZnodeOutput::Value {
                    value: 0,
                    version: 0,
                },
            ),
        ];
        assert_eq!(sequential_reads("/r", &back, &[], Some((0, 0))).len(), 1);
        let own = vec![
            op(
                0,
                1,
                0,
                10,
                ZnodeInput::Set {
                    value: 5,
                    expected: None,
                },
                ZnodeOutput::Written { version: 1 },
            ),
            op(
                1,
                1,
                20,
                30,
                PLAIN,
                ZnodeOutput::Value {
                    value: 0,
                    version: 0,
                },
            ),
        ];
        assert_eq!(sequential_reads("/r", &own, &[], Some((0, 0))).len(), 1);
        let invented = vec![op(
            0,
            1,
            0,
            10,
            PLAIN,
            ZnodeOutput::Value {
                value: 9,
                version: 3,
            },
        )];
        assert_eq!(
            sequential_reads("/r", &invented, &[], Some((0, 0))).len(),
            1
        );
    }

    #[test]
    fn overlapping_holdings_are_flagged() {
        let holding = |worker, acquired, released| Holding {
            process: process(worker, 0),
            acquired: At(acquired),
            released: At(released),
            end: HoldingEnd::Released,
        };
        assert!(mutual_exclusion("/lock", &[holding(0, 0, 10), holding(1, 11, 20)]).is_empty());
        assert_eq!(
            mutual_exclusion(
                "/lock",
                &[holding(0, 0, 10), holding(1, 30, 40), holding(2, 5, 12)]
            )
            .len(),
            1
        );
    }

    #[test]
    fn vanished_or_surviving_ephemerals_are_flagged() {
        let life = SessionLife {
            process: process(0, 7),
            path: "/e/7".into(),
            created: At(0),
            own_checks: vec![(At(10), At(20), true)],
            ended: Some((At(100), SessionEnd::Expired)),
            later_checks: vec![(At(90), At(95), true), (At(110), At(120), false)],
        };
        assert!(session_semantics(std::slice::from_ref(&life)).is_empty());
        let mut vanished = life.clone();
        vanished.own_checks.push((At(30), At(40), false));
        assert_eq!(session_semantics(&[vanished]).len(), 1);
        let mut survived = life;
        // Seen after the grace: flagged (one seen within it is not).
        survived.later_checks.push((At(200), At(300), true));
        assert!(session_semantics(std::slice::from_ref(&survived)).is_empty());
        survived
            .later_checks
            .push((At(2_000_000_000), At(2_100_000_000), true));
        assert_eq!(session_semantics(&[survived]).len(), 1);
    }

    #[test]
    fn missing_or_extra_notifications_are_flagged() {
        let read = |at, version| WatchSeen::Read {
            at: At(at),
            version,
        };
        let changed = |at, zxid| WatchSeen::Changed { at: At(at), zxid };
        let good = [read(0, 1), changed(5, 10), changed(6, 11), read(10, 3)];
        assert!(watch_delivery("/w", process(0, 1), &good).is_empty());
        let missing = [read(0, 1), changed(5, 10), read(10, 3)];
        assert_eq!(watch_delivery("/w", process(0, 1), &missing).len(), 1);
        let excused = [
            read(0, 1),
            WatchSeen::Disconnected { at: At(3) },
            changed(5, 10),
            read(10, 3),
        ];
        assert!(watch_delivery("/w", process(0, 1), &excused).is_empty());
        let extra = [read(0, 1), changed(5, 10), changed(6, 11), read(10, 2)];
        assert_eq!(watch_delivery("/w", process(0, 1), &extra).len(), 1);
        let reordered = [read(0, 1), changed(5, 11), changed(6, 10), read(10, 3)];
        assert_eq!(watch_delivery("/w", process(0, 1), &reordered).len(), 1);
    }

    #[test]
    fn duplicate_or_lost_names_are_flagged() {
        let children: BTreeSet<String> = ["a-0000000000", "b-0000000001"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let acknowledged = vec![(process(0, 1), "a-0000000000".to_string())];
        assert!(unique_names("/seq", &acknowledged, &children).is_empty());
        let lost = vec![(process(0, 1), "c-0000000002".to_string())];
        assert_eq!(unique_names("/seq", &lost, &children).len(), 1);
        let shared: BTreeSet<String> = ["a-0000000000", "b-0000000000"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(unique_names("/seq", &[], &shared).len(), 1);
    }
}
