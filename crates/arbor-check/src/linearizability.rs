//! A linearizability checker: Wing & Gong's search with Lowe's just-in-time linearization and
//! a cache of (linearized set, state) pairs, as porcupine does it.
//!
//! The history of one object (one key: checkers partition by key first, which is sound because
//! linearizability is local, Herlihy & Wing §3.3) is turned into a list of call and return
//! events in time order. The search walks the list: at a call it tries to linearize the
//! operation now (the model must accept it); at a return whose operation was not linearized it
//! backtracks. An indeterminate operation never returns (its return is after every event), so
//! it may be linearized anywhere after its call, or at the very end, which is the same as never
//! for everything the history observed.
//!
//! When a history is not linearizable, [`check`] also finds
//! - the *earliest failure*: the smallest time `T` such that the operations invoked before `T`
//!   are not linearizable (those still running at `T` count as indeterminate, which makes the
//!   property monotone in `T`), found by bisection;
//! - a *minimal witness*: a sub-history, closed under "observed the effect of", that the
//!   model's relaxed form still cannot linearize, shrunk by delta debugging
//!   ([`Model::relaxed`] explains why relaxing makes the witness sound).

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash};
use std::time::{Duration, Instant};

use crate::history::{At, Op};

/// A sequential specification.
pub trait Model: Clone {
    /// The object's state. Compared and hashed for the search cache.
    type State: Clone + Eq + Hash + fmt::Debug;
    /// What an operation asks.
    type Input: Clone + fmt::Debug + fmt::Display;
    /// What an operation answers.
    type Output: Clone + fmt::Debug + fmt::Display;

    /// The model's name, for reports.
    fn name(&self) -> &'static str;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` took effect in `state` answering `output`, or `None` if that
    /// answer is impossible in `state`. `output` is `None` for an indeterminate operation:
    /// it takes effect as it would succeed, if it can (not taking effect is covered by
    /// linearizing it last).
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// A weaker model for witnesses and for fallbacks: it must accept every history this
    /// model accepts *and every sub-history of one, closed under [`Model::dependencies`]*.
    /// Typically: negative answers (a failed compare-and-set, "no node") always allowed, and
    /// gaps allowed in counters. A history it rejects is therefore wrong however the
    /// operations left out behaved.
    fn relaxed(&self) -> Self;

    /// For each operation of `ops`, the indexes of the operations whose effect it observed
    /// (a read of a value depends on the write of that value). Removing an operation from a
    /// witness removes what depends on it.
    fn dependencies(&self, ops: &[Op<Self::Input, Self::Output>]) -> Vec<Vec<usize>>;

    /// Indeterminate operations whose effect nothing could observe in this model, which the
    /// relaxed check may drop (each could be linearized last). Default: none.
    fn prunable(&self, ops: &[Op<Self::Input, Self::Output>]) -> Vec<bool> {
        vec![false; ops.len()]
    }
}

/// Limits of one check.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Search steps allowed for the whole history of one key.
    pub steps_max: u64,
    /// Time allowed to shrink a failing history to a witness.
    pub shrink_time_max: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            steps_max: 20_000_000,
            shrink_time_max: Duration::from_secs(20),
        }
    }
}

/// Outcome of one search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// A linearization exists.
    Linearizable,
    /// None exists.
    Illegal,
    /// The step budget ran out first.
    Unknown,
}

/// Why a history is not linearizable.
#[derive(Clone, Debug)]
pub struct Violation<I, O> {
    /// Operations of the key.
    pub ops_total: usize,
    /// The earliest moment by which the history had gone wrong: the operations invoked before
    /// it cannot be linearized.
    pub failed_by: At,
    /// A sub-history that cannot be linearized, in invocation order.
    pub witness: Vec<Op<I, O>>,
    /// Whether [`Violation::witness`] was shrunk to a minimum (no single removal keeps it
    /// failing); `false` when the shrink budget ran out or the relaxed model accepted it, in
    /// which case the witness is the window of operations around the failure.
    pub minimal: bool,
}

/// The verdict on one key.
#[derive(Clone, Debug)]
pub enum Verdict<I, O> {
    /// A linearization exists.
    Linearizable,
    /// The exact search ran out of budget; the relaxed model (with prunable indeterminate
    /// operations dropped) found a linearization. Weaker than [`Verdict::Linearizable`].
    RelaxedOnly {
        /// Search steps spent on the exact model.
        steps: u64,
    },
    /// No linearization exists.
    Violation(Violation<I, O>),
    /// Neither search finished within the budget.
    Unknown {
        /// Search steps spent.
        steps: u64,
    },
}

impl<I, O> Verdict<I, O> {
    /// Whether the key passed (exactly or relaxed).
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Linearizable | Verdict::RelaxedOnly { .. })
    }
}

/// Checks the history of one key: the exact model first, the relaxed one if that runs out of
/// budget, and on failure the earliest failure and a minimal witness.
pub fn check<M: Model>(
    model: &M,
    ops: &[Op<M::Input, M::Output>],
    budget: Budget,
) -> Verdict<M::Input, M::Output> {
    let (exact, steps) = search(model, ops, budget.steps_max);
    match exact {
        Search::Linearizable => Verdict::Linearizable,
        Search::Illegal => Verdict::Violation(explain(model, ops, budget)),
        Search::Unknown => {
            let relaxed = model.relaxed();
            let prunable = relaxed.prunable(ops);
            let kept: Vec<Op<M::Input, M::Output>> = ops
                .iter()
                .zip(&prunable)
                .filter(|(_, prune)| !**prune)
                .map(|(op, _)| op.clone())
                .collect();
            match search(&relaxed, &kept, budget.steps_max).0 {
                Search::Linearizable => Verdict::RelaxedOnly { steps },
                Search::Illegal => Verdict::Violation(explain(&relaxed, &kept, budget)),
                Search::Unknown => Verdict::Unknown { steps },
            }
        }
    }
}

/// The search alone: whether `ops` are linearizable under `model`, within `steps_max` steps.
/// Returns the outcome and the steps spent.
pub fn search<M: Model>(
    model: &M,
    ops: &[Op<M::Input, M::Output>],
    steps_max: u64,
) -> (Search, u64) {
    let mut events = Events::new(ops);
    let mut linearized = BitSet::new(ops.len());
    let mut cache: HashSet<(BitSet, M::State), BuildHasherDefault<DefaultHasher>> =
        HashSet::default();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut steps: u64 = 0;
    let mut node = events.first();
    while let Some(current) = node {
        steps += 1;
        if steps > steps_max {
            return (Search::Unknown, steps);
        }
        match events.kind(current) {
            Kind::Call(op) => {
                let entry = &ops[op];
                let mut advanced = false;
                if let Some(next) = model.step(&state, &entry.input, entry.output.as_ref()) {
                    linearized.set(op);
                    if cache.insert((linearized.clone(), next.clone())) {
                        let previous = std::mem::replace(&mut state, next);
                        stack.push((current, previous));
                        events.lift(current);
                        node = events.first();
                        advanced = true;
                    } else {
                        linearized.clear(op);
                    }
                }
                if !advanced {
                    node = events.next(current);
                }
            }
            Kind::Return(_) => {
                // An operation returned before we could linearize it: undo the latest choice.
                let Some((call, previous)) = stack.pop() else {
                    return (Search::Illegal, steps);
                };
                state = previous;
                if let Kind::Call(op) = events.kind(call) {
                    linearized.clear(op);
                }
                events.unlift(call);
                node = events.next(call);
            }
        }
    }
    (Search::Linearizable, steps)
}

/// The history as the operations invoked before `cut`, those not returned by then made
/// indeterminate.
fn prefix<I: Clone, O: Clone>(ops: &[Op<I, O>], cut: At) -> Vec<Op<I, O>> {
    ops.iter()
        .filter(|op| op.call < cut)
        .map(|op| {
            let mut op = op.clone();
            if op.ret.is_none_or(|ret| ret >= cut) {
                op.ret = None;
                op.output = None;
            }
            op
        })
        .collect()
}

fn explain<M: Model>(
    model: &M,
    ops: &[Op<M::Input, M::Output>],
    budget: Budget,
) -> Violation<M::Input, M::Output> {
    // Bisection over the moments at which something returned: the earliest return after which
    // the prefix is illegal.
    let mut moments: Vec<At> = ops.iter().filter_map(|op| op.ret).collect();
    moments.sort();
    moments.dedup();
    let illegal_at = |cut: At| {
        let cut = At(cut.0.saturating_add(1));
        search(model, &prefix(ops, cut), budget.steps_max).0 == Search::Illegal
    };
    let (mut low, mut high) = (0usize, moments.len());
    // Invariant: prefixes cut at moments[..low] are not known illegal; moments[high] (or the
    // whole history) is illegal.
    while low < high {
        let middle = (low + high) / 2;
        if illegal_at(moments[middle]) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let failed_by = moments
        .get(high)
        .copied()
        .or(moments.last().copied())
        .unwrap_or_default();
    let window = if high < moments.len() {
        prefix(ops, At(failed_by.0.saturating_add(1)))
    } else {
        ops.to_vec()
    };
    let (witness, minimal) = shrink(model, &window, budget);
    Violation {
        ops_total: ops.len(),
        failed_by,
        witness,
        minimal,
    }
}

/// The operations of a history under model `M`.
type Ops<M> = Vec<Op<<M as Model>::Input, <M as Model>::Output>>;

/// Delta debugging over the operations of a failing window, with dependency closure, under
/// the relaxed model. Falls back to the window's last operations when the relaxed model
/// accepts the window.
fn shrink<M: Model>(
    model: &M,
    window: &[Op<M::Input, M::Output>],
    budget: Budget,
) -> (Ops<M>, bool) {
    let relaxed = model.relaxed();
    let started = Instant::now();
    let dependents = {
        let dependencies = relaxed.dependencies(window);
        let mut dependents = vec![Vec::new(); window.len()];
        for (reader, writers) in dependencies.iter().enumerate() {
            for &writer in writers {
                if writer < window.len() {
                    dependents[writer].push(reader);
                }
            }
        }
        dependents
    };
    let fails = |keep: &[bool]| {
        let ops: Vec<Op<M::Input, M::Output>> = window
            .iter()
            .zip(keep)
            .filter(|(_, kept)| **kept)
            .map(|(op, _)| op.clone())
            .collect();
        search(&relaxed, &ops, budget.steps_max).0 == Search::Illegal
    };
    let mut keep = vec![true; window.len()];
    if !fails(&keep) {
        return (tail_window(window), false);
    }
    let remove_closure = |keep: &mut Vec<bool>, start: usize| {
        let mut todo = vec![start];
        while let Some(index) = todo.pop() {
            if keep[index] {
                keep[index] = false;
                todo.extend(dependents[index].iter().copied());
            }
        }
    };
    let mut chunk = window.len().div_ceil(2).max(1);
    loop {
        let mut changed = false;
        let kept: Vec<usize> = (0..window.len()).filter(|&i| keep[i]).collect();
        for group in kept.chunks(chunk) {
            if started.elapsed() > budget.shrink_time_max {
                return (collect(window, &keep), false);
            }
            if !group.iter().any(|&i| keep[i]) {
                continue;
            }
            let mut candidate = keep.clone();
            for &index in group {
                remove_closure(&mut candidate, index);
            }
            if candidate.iter().any(|&k| k) && fails(&candidate) {
                keep = candidate;
                changed = true;
            }
        }
        if chunk == 1 {
            if !changed {
                // No single removal keeps it failing: 1-minimal.
                return (collect(window, &keep), true);
            }
        } else {
            chunk = chunk.div_ceil(2);
        }
    }
}

fn collect<I: Clone, O: Clone>(window: &[Op<I, O>], keep: &[bool]) -> Vec<Op<I, O>> {
    window
        .iter()
        .zip(keep)
        .filter(|(_, kept)| **kept)
        .map(|(op, _)| op.clone())
        .collect()
}

/// Operations shown when no witness could be shrunk: the last ones of the window.
const TAIL_WINDOW_OPS: usize = 40;

fn tail_window<I: Clone, O: Clone>(window: &[Op<I, O>]) -> Vec<Op<I, O>> {
    let mut ops: Vec<Op<I, O>> = window.to_vec();
    ops.sort_by_key(|op| op.ret.unwrap_or(At(u64::MAX)));
    let start = ops.len().saturating_sub(TAIL_WINDOW_OPS);
    let mut tail = ops.split_off(start);
    tail.sort_by_key(|op| op.call);
    tail
}

/// Prints a violation: the model, the earliest failure, the witness one operation a line.
pub fn render<I: fmt::Display, O: fmt::Display>(
    key: &str,
    model_name: &str,
    violation: &Violation<I, O>,
) -> String {
    let mut text = format!(
        "NOT LINEARIZABLE: {key} (model {model_name}, {} operations): no linearization of the operations invoked before {}\n",
        violation.ops_total, violation.failed_by
    );
    let what = if violation.minimal {
        "minimal non-linearizable sub-history (every operation left out may have happened at any time after its invocation, or never)"
    } else {
        "operations around the failure (not shrunk)"
    };
    text.push_str(&format!("  {what}, {} ops:\n", violation.witness.len()));
    for op in &violation.witness {
        text.push_str(&format!("    {op}\n"));
    }
    text
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Call(usize),
    Return(usize),
}

/// The events in time order as a doubly linked list that the search lifts operations out of
/// and puts back (Lowe's "just in time" list).
struct Events {
    kinds: Vec<Kind>,
    /// Node indexes; node 0 is the head sentinel, event `e` is node `e + 1`.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For a call node, its return node.
    matching: Vec<usize>,
}

const NONE: usize = usize::MAX;

impl Events {
    fn new<I, O>(ops: &[Op<I, O>]) -> Events {
        let mut timeline: Vec<(At, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            timeline.push((op.call, 0, index));
            // Equal times: the call first, so touching operations count as concurrent.
            timeline.push((op.ret.unwrap_or(At(u64::MAX)), 1, index));
        }
        timeline.sort();
        let count = timeline.len();
        let mut kinds = vec![Kind::Call(0); count + 1];
        let mut call_node = vec![NONE; ops.len()];
        let mut matching = vec![NONE; count + 1];
        for (position, &(_, is_return, op)) in timeline.iter().enumerate() {
            let node = position + 1;
            if is_return == 0 {
                kinds[node] = Kind::Call(op);
                call_node[op] = node;
            } else {
                kinds[node] = Kind::Return(op);
                matching[call_node[op]] = node;
            }
        }
        let next = (0..=count)
            .map(|node| if node < count { node + 1 } else { NONE })
            .collect();
        let prev = (0..=count)
            .map(|node| if node == 0 { NONE } else { node - 1 })
            .collect();
        Events {
            kinds,
            next,
            prev,
            matching,
        }
    }

    fn first(&self) -> Option<usize> {
        Some(self.next[0]).filter(|&n| n != NONE)
    }

    fn next(&self, node: usize) -> Option<usize> {
        Some(self.next[node]).filter(|&n| n != NONE)
    }

    fn kind(&self, node: usize) -> Kind {
        self.kinds[node]
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NONE {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NONE {
            self.prev[next] = node;
        }
    }

    /// Removes a call and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.matching[call]);
    }

    /// Undoes [`Events::lift`] (in reverse order, so the neighbours are right again).
    fn unlift(&mut self, call: usize) {
        self.relink(self.matching[call]);
        self.relink(call);
    }
}

/// A fixed-size set of operation indexes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    fn new(bits: usize) -> BitSet {
        BitSet {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    fn set(&mut self, bit: usize) {
        self.words[bit / 64] |= 1 << (bit % 64);
    }

    fn clear(&mut self, bit: usize) {
        self.words[bit / 64] &= !(1 << (bit % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;

    /// A register of small integers: write(v) / read -> v.
    #[derive(Clone)]
    struct Register;

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum In {
        Write(u32),
        Read,
    }

    impl fmt::Display for In {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Out {
        Ok,
        Value(u32),
    }

    impl fmt::Display for Out {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    impl Model for Register {
        type State = u32;
        type Input = In;
        type Output = Out;
        fn name(&self) -> &'static str {
            "register"
        }
        fn init(&self) -> u32 {
            0
        }
        fn step(&self, state: &u32, input: &In, output: Option<&Out>) -> Option<u32> {
            match (input, output) {
                (In::Write(v), Some(Out::Ok) | None) => Some(*v),
                (In::Read, Some(Out::Value(v))) => (v == state).then_some(*state),
                (In::Read, None) => Some(*state),
                _ => None,
            }
        }
        fn relaxed(&self) -> Self {
            Register
        }
        fn dependencies(&self, ops: &[Op<In, Out>]) -> Vec<Vec<usize>> {
            ops.iter()
                .map(|op| match &op.output {
                    Some(Out::Value(v)) => ops
                        .iter()
                        .enumerate()
                        .filter(|(_, w)| w.input == In::Write(*v))
                        .map(|(i, _)| i)
                        .collect(),
                    _ => Vec::new(),
                })
                .collect()
        }
    }

    fn op(id: u32, call: u64, ret: Option<u64>, input: In, output: Option<Out>) -> Op<In, Out> {
        Op {
            id,
            process: Process::default(),
            call: At(call),
            ret: ret.map(At),
            input,
            output,
        }
    }

    #[test]
    fn concurrent_write_and_read_may_see_either_value() {
        let history = vec![
            op(0, 0, Some(10), In::Write(1), Some(Out::Ok)),
            op(1, 5, Some(15), In::Read, Some(Out::Value(0))),
            op(2, 6, Some(16), In::Read, Some(Out::Value(1))),
        ];
        assert!(check(&Register, &history, Budget::default()).passed());
    }

    #[test]
    fn stale_read_after_a_completed_write_is_flagged_with_a_minimal_witness() {
        let history = vec![
            op(0, 0, Some(10), In::Write(1), Some(Out::Ok)),
            op(1, 11, Some(12), In::Read, Some(Out::Value(1))),
            op(2, 20, Some(30), In::Write(2), Some(Out::Ok)),
            op(3, 31, Some(40), In::Read, Some(Out::Value(1))),
            op(4, 41, Some(50), In::Read, Some(Out::Value(2))),
        ];
        let Verdict::Violation(violation) = check(&Register, &history, Budget::default()) else {
            panic!("a stale read must be flagged");
        };
        assert_eq!(violation.failed_by, At(40));
        assert!(violation.minimal);
        let ids: Vec<u32> = violation.witness.iter().map(|op| op.id).collect();
        // The write of 2 completed before the read that returned 1 began (the write of 1 is
        // kept because the read observed it).
        assert_eq!(ids, vec![0, 2, 3], "{violation:?}");
        let text = render("/r", "register", &violation);
        assert!(text.contains("NOT LINEARIZABLE"), "{text}");
    }

    #[test]
    fn indeterminate_write_may_take_effect_late_or_never() {
        let late = vec![
            op(0, 0, None, In::Write(7), None),
            op(1, 100, Some(110), In::Read, Some(Out::Value(0))),
            op(2, 200, Some(210), In::Read, Some(Out::Value(7))),
        ];
        assert!(check(&Register, &late, Budget::default()).passed());
        let never = vec![
            op(0, 0, None, In::Write(7), None),
            op(1, 100, Some(110), In::Read, Some(Out::Value(0))),
        ];
        assert!(check(&Register, &never, Budget::default()).passed());
        let flicker = vec![
            op(0, 0, None, In::Write(7), None),
            op(1, 100, Some(110), In::Read, Some(Out::Value(7))),
            op(2, 200, Some(210), In::Read, Some(Out::Value(0))),
        ];
        assert!(!check(&Register, &flicker, Budget::default()).passed());
    }

    #[test]
    fn a_read_from_the_future_is_flagged() {
        let history = vec![
            op(0, 0, Some(10), In::Read, Some(Out::Value(3))),
            op(1, 20, Some(30), In::Write(3), Some(Out::Ok)),
        ];
        assert!(!check(&Register, &history, Budget::default()).passed());
    }

    #[test]
    fn an_exhausted_budget_is_unknown_not_a_pass() {
        let history: Vec<Op<In, Out>> = (0..40)
            .map(|i| op(i, u64::from(i), None, In::Write(i + 1), None))
            .chain([op(40, 1000, Some(1001), In::Read, Some(Out::Value(99)))])
            .collect();
        let (outcome, _) = search(&Register, &history, 1000);
        assert_eq!(outcome, Search::Unknown);
    }
}
