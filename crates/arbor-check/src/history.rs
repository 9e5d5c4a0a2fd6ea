//! Histories: what concurrent clients asked for and what they were answered, with the time of
//! each invocation and completion.
//!
//! An operation whose outcome the client could not learn (a timeout, a lost connection under a
//! write) is *indeterminate*: it may have taken effect at any moment after its invocation, or
//! never. It is recorded with no completion time and no output ([`Op::output`] is `None`), and
//! every checker treats it so (Jepsen's `:info`, porcupine's infinite return time).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// A moment of a run: nanoseconds since the run's clock started. Monotonic (it never goes
/// back), and comparable across every client of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct At(pub u64);

impl At {
    /// The moment `since` after the start.
    pub fn from_duration(since: Duration) -> At {
        At(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Time since the start.
    pub fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0 / 1_000_000;
        write!(f, "{}.{:03}s", millis / 1000, millis % 1000)
    }
}

/// The run's clock: every [`At`] of one run comes from one `Clock`.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Now.
    pub fn now(&self) -> At {
        At::from_duration(self.start.elapsed())
    }

    /// The [`At`] of an [`Instant`] taken on this machine.
    pub fn at(&self, instant: Instant) -> At {
        At::from_duration(instant.saturating_duration_since(self.start))
    }
}

/// Who issued an operation: a logical client (worker) and the ZooKeeper session it used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Process {
    /// The worker, numbered from 0 within its workload.
    pub worker: u32,
    /// The session id the operation went out on (0 if none was established).
    pub session_id: i64,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{} s{:#x}", self.worker, self.session_id)
    }
}

/// One operation: invocation, and completion if it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op<I, O> {
    /// Unique within its history.
    pub id: u32,
    /// Who issued it.
    pub process: Process,
    /// When it was invoked.
    pub call: At,
    /// When its answer arrived; `None` for an indeterminate operation.
    pub ret: Option<At>,
    /// What was asked.
    pub input: I,
    /// What was answered; `None` for an indeterminate operation.
    pub output: Option<O>,
}

impl<I, O> Op<I, O> {
    /// Whether the outcome is unknown.
    pub fn is_indeterminate(&self) -> bool {
        self.output.is_none()
    }
}

impl<I: fmt::Display, O: fmt::Display> fmt::Display for Op<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = match self.ret {
            Some(ret) => ret.to_string(),
            None => "?".to_owned(),
        };
        write!(
            f,
            "#{:<6} [{}] {}..{}  {}",
            self.id, self.process, self.call, ret, self.input
        )?;
        match &self.output {
            Some(output) => write!(f, " -> {output}"),
            None => write!(f, " -> ? (indeterminate)"),
        }
    }
}

/// Operations in flight and done, shared by the workers of one workload.
///
/// Cloning a recorder gives another handle on the same history.
pub struct Recorder<I, O> {
    clock: Clock,
    ops: Arc<Mutex<Vec<Op<I, O>>>>,
}

impl<I, O> Clone for Recorder<I, O> {
    fn clone(&self) -> Self {
        Recorder {
            clock: self.clock,
            ops: self.ops.clone(),
        }
    }
}

/// An invocation not completed yet: hand it back to [`Recorder::complete`] or
/// [`Recorder::indeterminate`]. Dropping it leaves the operation indeterminate.
#[derive(Debug)]
#[must_use = "an invocation is completed with its outcome"]
pub struct Pending {
    index: usize,
    call: At,
}

impl Pending {
    /// When the operation was invoked.
    pub fn call(&self) -> At {
        self.call
    }
}

impl<I, O> Recorder<I, O> {
    /// An empty history on `clock`.
    pub fn new(clock: Clock) -> Self {
        Recorder {
            clock,
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The run's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Op<I, O>>> {
        // A worker that panicked while holding the lock left a whole history behind.
        self.ops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an invocation now.
    pub fn invoke(&self, process: Process, input: I) -> Pending {
        let call = self.clock.now();
        let mut ops = self.lock();
        let index = ops.len();
        let id = u32::try_from(index).unwrap_or(u32::MAX);
        ops.push(Op {
            id,
            process,
            call,
            ret: None,
            input,
            output: None,
        });
        Pending { index, call }
    }

    /// Records the answer of an invocation, now. Also fixes the session id, which a worker
    /// may learn only once its session is established.
    pub fn complete(&self, pending: Pending, session_id: i64, output: O) {
        let ret = self.clock.now();
        let mut ops = self.lock();
        if let Some(op) = ops.get_mut(pending.index) {
            op.ret = Some(ret);
            op.output = Some(output);
            op.process.session_id = session_id;
        }
    }

    /// Leaves an invocation indeterminate (what dropping the [`Pending`] also does).
    pub fn indeterminate(&self, pending: Pending) {
        let _ = pending;
    }

    /// Forgets an invocation that certainly had no effect (a read that failed).
    pub fn forget(&self, pending: Pending) {
        let mut ops = self.lock();
        if let Some(op) = ops.get_mut(pending.index) {
            // Marked for removal by `take`.
            op.id = u32::MAX;
        }
    }

    /// The history so far, operations in invocation order, renumbered from 0.
    pub fn snapshot(&self) -> Vec<Op<I, O>>
    where
        I: Clone,
        O: Clone,
    {
        let ops = self.lock();
        let mut kept: Vec<Op<I, O>> = ops.iter().filter(|op| op.id != u32::MAX).cloned().collect();
        for (index, op) in kept.iter_mut().enumerate() {
            op.id = u32::try_from(index).unwrap_or(u32::MAX);
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_keeps_invocation_order_and_drops_forgotten_ops() {
        let recorder: Recorder<&str, u32> = Recorder::new(Clock::start());
        let process = Process {
            worker: 1,
            session_id: 0,
        };
        let a = recorder.invoke(process, "a");
        let b = recorder.invoke(process, "b");
        let c = recorder.invoke(process, "c");
        recorder.complete(b, 7, 2);
        recorder.forget(a);
        recorder.indeterminate(c);
        let ops = recorder.snapshot();
        assert_eq!(ops.len(), 2);
        assert_eq!((ops[0].id, ops[0].input, ops[0].output), (0, "b", Some(2)));
        assert_eq!(ops[0].process.session_id, 7);
        assert!(ops[1].is_indeterminate() && ops[1].ret.is_none());
    }

    #[test]
    fn moments_print_as_seconds() {
        assert_eq!(At(12_345_678_901).to_string(), "12.345s");
    }
}
