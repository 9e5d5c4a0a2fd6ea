//! Sequential specifications of ZooKeeper objects, for the [linearizability](crate::linearizability)
//! checker:
//!
//! - [`Znode`]: one znode as a compare-and-set register with existence: `create`, `delete`,
//!   `setData` (blind or with an expected version), `getData`/`exists`. Every value written is
//!   unique in a run, so a read names the write it observed.
//! - [`Sequence`]: sequential creates under one parent (no other child changes there): the
//!   n-th create is numbered n-1, so two creates never share a number and a create that
//!   completed before another began has the smaller one.
//! - [`Queue`]: a FIFO queue built on sequential nodes (enqueue = create sequential, dequeue =
//!   delete the lowest child, a final read of every item).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::history::Op;
use crate::linearizability::Model;

/// A znode's data and version as the model holds them.
pub type ZnodeState = Option<(u64, i32)>;

/// What a znode operation asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZnodeInput {
    /// `create` with this data.
    Create {
        /// The data written (unique in the run).
        value: u64,
    },
    /// `delete`, unconditional (`None`) or with an expected version.
    Delete {
        /// The expected version.
        expected: Option<i32>,
    },
    /// `setData`, blind (`None`) or a compare-and-set on the version.
    Set {
        /// The data written (unique in the run).
        value: u64,
        /// The expected version.
        expected: Option<i32>,
    },
    /// `getData` (or `exists` when only the version matters).
    Read {
        /// Whether a `sync` preceded it on the same session (recorded for reports; the
        /// operation's interval starts at the sync).
        synced: bool,
    },
}

impl fmt::Display for ZnodeInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZnodeInput::Create { value } => write!(f, "create(data={value})"),
            ZnodeInput::Delete { expected: None } => write!(f, "delete"),
            ZnodeInput::Delete {
                expected: Some(version),
            } => write!(f, "delete(version={version})"),
            ZnodeInput::Set {
                value,
                expected: None,
            } => write!(f, "setData(data={value})"),
            ZnodeInput::Set {
                value,
                expected: Some(version),
            } => write!(f, "setData(data={value}, version={version})"),
            ZnodeInput::Read { synced: true } => write!(f, "sync+getData"),
            ZnodeInput::Read { synced: false } => write!(f, "getData"),
        }
    }
}

/// What a znode operation answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZnodeOutput {
    /// The create succeeded.
    Created,
    /// The create found the node.
    NodeExists,
    /// The delete succeeded.
    Deleted,
    /// No such node.
    NoNode,
    /// The expected version did not match.
    BadVersion,
    /// `setData` succeeded; the node's new version.
    Written {
        /// The version after the write.
        version: i32,
    },
    /// A read's data and version.
    Value {
        /// The data read.
        value: u64,
        /// The version read.
        version: i32,
    },
}

impl fmt::Display for ZnodeOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZnodeOutput::Created => write!(f, "ok"),
            ZnodeOutput::NodeExists => write!(f, "NodeExists"),
            ZnodeOutput::Deleted => write!(f, "ok"),
            ZnodeOutput::NoNode => write!(f, "NoNode"),
            ZnodeOutput::BadVersion => write!(f, "BadVersion"),
            ZnodeOutput::Written { version } => write!(f, "ok version={version}"),
            ZnodeOutput::Value { value, version } => {
                write!(f, "data={value} version={version}")
            }
        }
    }
}

/// One znode. Exact: versions go up by one per write. Relaxed ([`Model::relaxed`]): versions
/// may jump, a successful `setData` is always allowed (what made it succeed may be left out),
/// and the negative answers (`BadVersion`, `NodeExists`, `NoNode`, a delete) are
/// always allowed — whichever operation caused them may be outside a witness.
#[derive(Clone, Debug)]
pub struct Znode {
    initial: ZnodeState,
    relaxed: bool,
}

impl Znode {
    /// A znode that starts as `initial` (data and version, or absent).
    pub fn new(initial: ZnodeState) -> Znode {
        Znode {
            initial,
            relaxed: false,
        }
    }
}

fn expected_matches(expected: Option<i32>, version: i32) -> bool {
    expected.is_none_or(|expected| expected == version)
}

impl Model for Znode {
    type State = ZnodeState;
    type Input = ZnodeInput;
    type Output = ZnodeOutput;

    fn name(&self) -> &'static str {
        if self.relaxed {
            "znode (relaxed)"
        } else {
            "znode"
        }
    }

    fn init(&self) -> ZnodeState {
        self.initial
    }

    fn step(
        &self,
        state: &ZnodeState,
        input: &ZnodeInput,
        output: Option<&ZnodeOutput>,
    ) -> Option<ZnodeState> {
        use ZnodeOutput as Out;
        let relaxed = self.relaxed;
        match (input, output) {
            (ZnodeInput::Create { value }, Some(Out::Created)) => {
                (state.is_none() || relaxed).then_some(Some((*value, 0)))
            }
            (ZnodeInput::Create { .. }, Some(Out::NodeExists)) => {
                (state.is_some() || relaxed).then_some(*state)
            }
            (ZnodeInput::Create { value }, None) => Some(state.or(Some((*value, 0)))),
            (ZnodeInput::Delete { expected }, Some(Out::Deleted)) => match state {
                Some((_, version)) if expected_matches(*expected, *version) => Some(None),
                _ => relaxed.then_some(None),
            },
            (ZnodeInput::Delete { .. }, Some(Out::NoNode)) => {
                (state.is_none() || relaxed).then_some(*state)
            }
            (ZnodeInput::Delete { expected }, Some(Out::BadVersion)) => match state {
                Some((_, version)) if !expected_matches(*expected, *version) => Some(*state),
                _ => relaxed.then_some(*state),
            },
            (ZnodeInput::Delete { expected }, None) => match state {
                Some((_, version)) if expected_matches(*expected, *version) => Some(None),
                _ => Some(*state),
            },
            // Relaxed: the create of the node, or writes that took it to the expected version,
            // may be among the operations left out of a witness.
            (ZnodeInput::Set { value, .. }, Some(Out::Written { version: new })) if relaxed => {
                Some(Some((*value, *new)))
            }
            (ZnodeInput::Set { value, expected }, Some(Out::Written { version: new })) => {
                match state {
                    Some((_, version)) if expected_matches(*expected, *version) => {
                        let fits = if relaxed {
                            *new > *version
                        } else {
                            *new == version.wrapping_add(1)
                        };
                        fits.then_some(Some((*value, *new)))
                    }
                    _ => None,
                }
            }
            (ZnodeInput::Set { expected, .. }, Some(Out::BadVersion)) => match state {
                Some((_, version)) if !expected_matches(*expected, *version) => Some(*state),
                _ => relaxed.then_some(*state),
            },
            (ZnodeInput::Set { .. }, Some(Out::NoNode)) => {
                (state.is_none() || relaxed).then_some(*state)
            }
            (ZnodeInput::Set { value, expected }, None) => match state {
                Some((_, version)) if expected_matches(*expected, *version) => {
                    Some(Some((*value, version.wrapping_add(1))))
                }
                _ => Some(*state),
            },
            (ZnodeInput::Read { .. }, Some(Out::Value { value, version })) => {
                (*state == Some((*value, *version))).then_some(*state)
            }
            (ZnodeInput::Read { .. }, Some(Out::NoNode)) => {
                (state.is_none() || relaxed).then_some(*state)
            }
            (ZnodeInput::Read { .. }, None) => Some(*state),
            _ => None,
        }
    }

    fn relaxed(&self) -> Self {
        Znode {
            initial: self.initial,
            relaxed: true,
        }
    }

    fn dependencies(&self, ops: &[Op<ZnodeInput, ZnodeOutput>]) -> Vec<Vec<usize>> {
        // The write of each value, and the value each version was seen with.
        let mut writer_of: BTreeMap<u64, usize> = BTreeMap::new();
        let mut value_at_version: BTreeMap<i32, u64> = BTreeMap::new();
        for (index, op) in ops.iter().enumerate() {
            match (&op.input, &op.output) {
                (ZnodeInput::Create { value }, Some(ZnodeOutput::Created)) => {
                    writer_of.insert(*value, index);
                }
                (ZnodeInput::Create { value } | ZnodeInput::Set { value, .. }, None) => {
                    writer_of.insert(*value, index);
                }
                (ZnodeInput::Set { value, .. }, Some(ZnodeOutput::Written { version })) => {
                    writer_of.insert(*value, index);
                    value_at_version.insert(*version, *value);
                }
                (ZnodeInput::Read { .. }, Some(ZnodeOutput::Value { value, version })) => {
                    value_at_version.insert(*version, *value);
                }
                _ => {}
            }
        }
        ops.iter()
            .map(|op| match (&op.input, &op.output) {
                (ZnodeInput::Read { .. }, Some(ZnodeOutput::Value { value, .. })) => {
                    writer_of.get(value).copied().into_iter().collect()
                }
                (
                    ZnodeInput::Set {
                        expected: Some(version),
                        ..
                    }
                    | ZnodeInput::Delete {
                        expected: Some(version),
                    },
                    Some(ZnodeOutput::Written { .. } | ZnodeOutput::Deleted),
                ) => value_at_version
                    .get(version)
                    .and_then(|value| writer_of.get(value))
                    .copied()
                    .into_iter()
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn prunable(&self, ops: &[Op<ZnodeInput, ZnodeOutput>]) -> Vec<bool> {
        if !self.relaxed {
            return vec![false; ops.len()];
        }
        // In the relaxed model an indeterminate setData is observable only through a read of
        // its value (versions may jump and BadVersion is always allowed); one nobody read can
        // go last. Creates are observable through deletes, so they stay.
        let observed: std::collections::BTreeSet<u64> = ops
            .iter()
            .filter_map(|op| match &op.output {
                Some(ZnodeOutput::Value { value, .. }) => Some(*value),
                _ => None,
            })
            .collect();
        ops.iter()
            .map(|op| match (&op.input, &op.output) {
                (ZnodeInput::Set { value, .. }, None) => !observed.contains(value),
                (ZnodeInput::Read { .. }, None) => true,
                _ => false,
            })
            .collect()
    }
}

/// A sequential create's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceOutput(pub i32);

impl fmt::Display for SequenceOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010}", self.0)
    }
}

/// A sequential create (the input carries the name's prefix, for reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceInput(pub String);

impl fmt::Display for SequenceInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "create sequential {}", self.0)
    }
}

/// Sequential creates under one parent whose children change only by them. Exact: numbers
/// 0, 1, 2… in linearization order. Relaxed: strictly increasing.
#[derive(Clone, Debug, Default)]
pub struct Sequence {
    relaxed: bool,
}

impl Model for Sequence {
    /// The next number.
    type State = i64;
    type Input = SequenceInput;
    type Output = SequenceOutput;

    fn name(&self) -> &'static str {
        "sequential names"
    }

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, next: &i64, _: &SequenceInput, output: Option<&SequenceOutput>) -> Option<i64> {
        match output {
            None => Some(next + 1),
            Some(SequenceOutput(number)) => {
                let number = i64::from(*number);
                let fits = if self.relaxed {
                    number >= *next
                } else {
                    number == *next
                };
                fits.then_some(number + 1)
            }
        }
    }

    fn relaxed(&self) -> Self {
        Sequence { relaxed: true }
    }

    fn dependencies(&self, ops: &[Op<SequenceInput, SequenceOutput>]) -> Vec<Vec<usize>> {
        vec![Vec::new(); ops.len()]
    }
}

/// What a queue operation asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueInput {
    /// Add an item (unique in the run).
    Enqueue {
        /// The item.
        value: u64,
    },
    /// Take the oldest item.
    Dequeue,
    /// Read every item, oldest first (the final observation).
    ReadAll,
}

impl fmt::Display for QueueInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueInput::Enqueue { value } => write!(f, "enqueue({value})"),
            QueueInput::Dequeue => write!(f, "dequeue"),
            QueueInput::ReadAll => write!(f, "read all"),
        }
    }
}

/// What a queue operation answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueOutput {
    /// The item was added.
    Enqueued,
    /// The item taken.
    Dequeued {
        /// The item.
        value: u64,
    },
    /// The queue was empty.
    Empty,
    /// Every item, oldest first.
    Items(Vec<u64>),
}

impl fmt::Display for QueueOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueOutput::Enqueued => write!(f, "ok"),
            QueueOutput::Dequeued { value } => write!(f, "{value}"),
            QueueOutput::Empty => write!(f, "empty"),
            QueueOutput::Items(items) => write!(f, "{items:?}"),
        }
    }
}

/// A FIFO queue. Relaxed: "empty" is always allowed.
#[derive(Clone, Debug, Default)]
pub struct Queue {
    relaxed: bool,
}

impl Model for Queue {
    type State = VecDeque<u64>;
    type Input = QueueInput;
    type Output = QueueOutput;

    fn name(&self) -> &'static str {
        "FIFO queue"
    }

    fn init(&self) -> VecDeque<u64> {
        VecDeque::new()
    }

    fn step(
        &self,
        state: &VecDeque<u64>,
        input: &QueueInput,
        output: Option<&QueueOutput>,
    ) -> Option<VecDeque<u64>> {
        match (input, output) {
            (QueueInput::Enqueue { value }, Some(QueueOutput::Enqueued) | None) => {
                let mut next = state.clone();
                next.push_back(*value);
                Some(next)
            }
            (QueueInput::Dequeue, Some(QueueOutput::Dequeued { value })) => {
                (state.front() == Some(value)).then(|| {
                    let mut next = state.clone();
                    next.pop_front();
                    next
                })
            }
            (QueueInput::Dequeue, Some(QueueOutput::Empty)) => {
                (state.is_empty() || self.relaxed).then(|| state.clone())
            }
            (QueueInput::Dequeue, None) => {
                let mut next = state.clone();
                next.pop_front();
                Some(next)
            }
            (QueueInput::ReadAll, Some(QueueOutput::Items(items))) => {
                state.iter().eq(items.iter()).then(|| state.clone())
            }
            (QueueInput::ReadAll, None) => Some(state.clone()),
            _ => None,
        }
    }

    fn relaxed(&self) -> Self {
        Queue { relaxed: true }
    }

    fn dependencies(&self, ops: &[Op<QueueInput, QueueOutput>]) -> Vec<Vec<usize>> {
        // An item's enqueue and its dequeue go together (either alone leaves the queue in a
        // state no history had); a final read goes with every item it lists.
        let mut enqueue_of: BTreeMap<u64, usize> = BTreeMap::new();
        let mut dequeue_of: BTreeMap<u64, usize> = BTreeMap::new();
        for (index, op) in ops.iter().enumerate() {
            match (&op.input, &op.output) {
                (QueueInput::Enqueue { value }, _) => {
                    enqueue_of.insert(*value, index);
                }
                (QueueInput::Dequeue, Some(QueueOutput::Dequeued { value })) => {
                    dequeue_of.insert(*value, index);
                }
                _ => {}
            }
        }
        ops.iter()
            .map(|op| match (&op.input, &op.output) {
                (QueueInput::Enqueue { value }, _) => {
                    dequeue_of.get(value).copied().into_iter().collect()
                }
                (QueueInput::Dequeue, Some(QueueOutput::Dequeued { value })) => {
                    enqueue_of.get(value).copied().into_iter().collect()
                }
                (QueueInput::ReadAll, Some(QueueOutput::Items(items))) => items
                    .iter()
                    .filter_map(|value| enqueue_of.get(value).copied())
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{At, Process};
    use crate::linearizability::{Budget, Verdict, check};

    fn op<I, O>(id: u32, call: u64, ret: Option<u64>, input: I, output: Option<O>) -> Op<I, O> {
        Op {
            id,
            process: Process::default(),
            call: At(call),
            ret: ret.map(At),
            input,
            output,
        }
    }

    fn set(value: u64, expected: Option<i32>) -> ZnodeInput {
        ZnodeInput::Set { value, expected }
    }

    fn value(value: u64, version: i32) -> Option<ZnodeOutput> {
        Some(ZnodeOutput::Value { value, version })
    }

    const READ: ZnodeInput = ZnodeInput::Read { synced: true };

    #[test]
    fn cas_register_accepts_a_correct_history() {
        let model = Znode::new(Some((0, 0)));
        let history = vec![
            op(0, 0, Some(10), READ, value(0, 0)),
            op(
                1,
                11,
                Some(20),
                set(1, Some(0)),
                Some(ZnodeOutput::Written { version: 1 }),
            ),
            op(
                2,
                12,
                Some(21),
                set(2, Some(0)),
                Some(ZnodeOutput::BadVersion),
            ),
            op(3, 22, Some(30), READ, value(1, 1)),
            op(4, 31, None, set(3, None), None),
            op(5, 40, Some(50), READ, value(3, 2)),
        ];
        assert!(check(&model, &history, Budget::default()).passed());
    }

    #[test]
    fn two_successful_cas_from_one_version_are_flagged() {
        let model = Znode::new(Some((0, 0)));
        let history = vec![
            op(
                0,
                0,
                Some(10),
                set(1, Some(0)),
                Some(ZnodeOutput::Written { version: 1 }),
            ),
            op(
                1,
                20,
                Some(30),
                set(2, Some(0)),
                Some(ZnodeOutput::Written { version: 1 }),
            ),
        ];
        let Verdict::Violation(violation) = check(&model, &history, Budget::default()) else {
            panic!("a double compare-and-set must be flagged");
        };
        assert_eq!(violation.witness.len(), 2);
    }

    #[test]
    fn a_lost_acknowledged_write_is_flagged() {
        let model = Znode::new(Some((0, 0)));
        let history = vec![
            op(
                0,
                0,
                Some(10),
                set(1, None),
                Some(ZnodeOutput::Written { version: 1 }),
            ),
            op(1, 20, Some(30), READ, value(0, 0)),
        ];
        assert!(!check(&model, &history, Budget::default()).passed());
    }

    #[test]
    fn a_deleted_node_that_comes_back_is_flagged() {
        let model = Znode::new(None);
        let history = vec![
            op(
                0,
                0,
                Some(10),
                ZnodeInput::Create { value: 5 },
                Some(ZnodeOutput::Created),
            ),
            op(
                1,
                11,
                Some(20),
                ZnodeInput::Delete { expected: None },
                Some(ZnodeOutput::Deleted),
            ),
            op(2, 21, Some(30), READ, value(5, 0)),
        ];
        let Verdict::Violation(violation) = check(&model, &history, Budget::default()) else {
            panic!("a resurrected node must be flagged");
        };
        // Deletes are always allowed in the relaxed model, so the witness keeps the create,
        // the delete and the read.
        assert_eq!(violation.witness.len(), 3, "{violation:?}");
    }

    /// The witness `arbor-check chaos --nodes 3 --duration 30s --nemesis partition --seed 5
    /// --broken-skip-sync` reported for /chaos/reg/k0: a follower served a read (no sync)
    /// that missed a write acknowledged before the read began.
    #[test]
    fn stale_follower_read_from_the_broken_mode_is_flagged_with_its_witness() {
        let ms = |ms: u64| ms * 1_000_000;
        let history = vec![
            op(
                0,
                ms(2790),
                Some(ms(2876)),
                set(12_884_901_960, None),
                Some(ZnodeOutput::Written { version: 1 }),
            ),
            op(
                1,
                ms(4051),
                Some(ms(4107)),
                set(84, None),
                Some(ZnodeOutput::Written { version: 2 }),
            ),
            op(2, ms(4108), Some(ms(4112)), READ, value(12_884_901_960, 1)),
        ];
        // The node existed before (created by an operation left out of the witness).
        let Verdict::Violation(violation) =
            check(&Znode::new(Some((7, 0))), &history, Budget::default())
        else {
            panic!("a stale read after a completed write must be flagged");
        };
        assert!(violation.minimal);
        assert_eq!(violation.witness.len(), 3, "{violation:?}");
    }

    #[test]
    fn duplicate_or_out_of_order_sequence_numbers_are_flagged() {
        let create = || SequenceInput("/seq/n-".into());
        let good = vec![
            op(0, 0, Some(10), create(), Some(SequenceOutput(0))),
            op(1, 1, Some(11), create(), Some(SequenceOutput(2))),
            op(2, 2, Some(12), create(), Some(SequenceOutput(1))),
        ];
        assert!(check(&Sequence::default(), &good, Budget::default()).passed());
        let duplicate = vec![
            op(0, 0, Some(10), create(), Some(SequenceOutput(0))),
            op(1, 1, Some(11), create(), Some(SequenceOutput(0))),
        ];
        assert!(!check(&Sequence::default(), &duplicate, Budget::default()).passed());
        let reordered = vec![
            op(0, 0, Some(10), create(), Some(SequenceOutput(1))),
            op(1, 20, Some(30), create(), Some(SequenceOutput(0))),
        ];
        assert!(!check(&Sequence::default(), &reordered, Budget::default()).passed());
    }

    #[test]
    fn queue_out_of_order_dequeue_is_flagged() {
        let enqueue = |value| QueueInput::Enqueue { value };
        let dequeued = |value| Some(QueueOutput::Dequeued { value });
        let good = vec![
            op(0, 0, Some(10), enqueue(1), Some(QueueOutput::Enqueued)),
            op(1, 5, Some(15), enqueue(2), Some(QueueOutput::Enqueued)),
            op(2, 20, Some(30), QueueInput::Dequeue, dequeued(2)),
            op(3, 31, Some(40), QueueInput::Dequeue, dequeued(1)),
            op(
                4,
                41,
                Some(50),
                QueueInput::ReadAll,
                Some(QueueOutput::Items(vec![])),
            ),
        ];
        assert!(check(&Queue::default(), &good, Budget::default()).passed());
        let bad = vec![
            op(0, 0, Some(10), enqueue(1), Some(QueueOutput::Enqueued)),
            op(1, 11, Some(15), enqueue(2), Some(QueueOutput::Enqueued)),
            op(2, 20, Some(30), QueueInput::Dequeue, dequeued(2)),
        ];
        let Verdict::Violation(violation) = check(&Queue::default(), &bad, Budget::default())
        else {
            panic!("a dequeue out of FIFO order must be flagged");
        };
        assert_eq!(violation.witness.len(), 3);
        let lost = vec![
            op(0, 0, Some(10), enqueue(1), Some(QueueOutput::Enqueued)),
            op(
                1,
                20,
                Some(30),
                QueueInput::ReadAll,
                Some(QueueOutput::Items(vec![])),
            ),
        ];
        assert!(!check(&Queue::default(), &lost, Budget::default()).passed());
    }
}
