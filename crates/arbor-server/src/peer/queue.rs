//! The bounded queue of messages waiting for one peer's connection.
//!
//! Bounded twice, by messages and by payload bytes. When full, the *newest* message is
//! refused (`push` fails and the caller drops it): Raft tolerates loss, and whatever the
//! leader still needs it sends again. Messages queued while the peer is unreachable stay
//! queued and go out, oldest first, once the connection is back.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;

/// The queue is at one of its limits.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct QueueFull;

#[derive(Default)]
struct QueueState {
    messages: VecDeque<Bytes>,
    /// Invariant: the sum of the lengths of `messages`, at most `bytes_max`.
    bytes: usize,
}

/// Many senders (never blocking), one consumer (the peer's connection task).
pub(crate) struct SendQueue {
    state: Mutex<QueueState>,
    /// Wakes the consumer; `notify_one` keeps a permit when it is not waiting, so a push
    /// between its empty check and its wait is not lost.
    ready: Notify,
    messages_max: usize,
    bytes_max: usize,
}

impl SendQueue {
    /// An empty queue with these limits.
    pub(crate) fn new(messages_max: usize, bytes_max: usize) -> SendQueue {
        assert!(messages_max > 0 && bytes_max > 0, "a queue needs room");
        SendQueue {
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
            messages_max,
            bytes_max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // The critical sections cannot leave the state half-changed, so a panic elsewhere
        // while holding the lock does not make it unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message unless that would pass a limit. Never blocks on I/O.
    pub(crate) fn push(&self, payload: Bytes) -> Result<(), QueueFull> {
        {
            let mut state = self.lock();
            if state.messages.len() >= self.messages_max
                || payload.len() > self.bytes_max - state.bytes
            {
                return Err(QueueFull);
            }
            state.bytes += payload.len();
            state.messages.push_back(payload);
            debug_assert!(state.bytes <= self.bytes_max);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// Moves the oldest messages into `batch`: at least one if any is queued, then more
    /// while their total stays within `batch_bytes_max`.
    pub(crate) fn pop_batch(&self, batch: &mut Vec<Bytes>, batch_bytes_max: usize) {
        let mut state = self.lock();
        let mut taken = 0usize;
        while let Some(front) = state.messages.front() {
            if !batch.is_empty() && taken + front.len() > batch_bytes_max {
                break;
            }
            let Some(payload) = state.messages.pop_front() else {
                break;
            };
            taken += payload.len();
            state.bytes -= payload.len();
            batch.push(payload);
        }
    }

    /// Waits until a push may have happened since the last call.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Messages and bytes queued now.
    pub(crate) fn len(&self) -> (usize, usize) {
        let state = self.lock();
        (state.messages.len(), state.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(length: usize) -> Bytes {
        Bytes::from(vec![1u8; length])
    }

    #[test]
    fn message_limit_refuses_the_newest() {
        let queue = SendQueue::new(2, 1000);
        assert_eq!(queue.push(Bytes::from_static(b"a")), Ok(()));
        assert_eq!(queue.push(Bytes::from_static(b"b")), Ok(()));
        assert_eq!(queue.push(Bytes::from_static(b"c")), Err(QueueFull));
        let mut batch = Vec::new();
        queue.pop_batch(&mut batch, 1000);
        assert_eq!(
            batch,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
    }

    #[test]
    fn byte_limit_counts_payloads() {
        let queue = SendQueue::new(100, 10);
        assert_eq!(queue.push(payload(6)), Ok(()));
        assert_eq!(queue.push(payload(5)), Err(QueueFull));
        assert_eq!(queue.push(payload(4)), Ok(()));
        assert_eq!(queue.len(), (2, 10));
        assert_eq!(queue.push(payload(1)), Err(QueueFull));
        let mut batch = Vec::new();
        queue.pop_batch(&mut batch, 100);
        assert_eq!(queue.len(), (0, 0));
        assert_eq!(queue.push(payload(10)), Ok(()));
        assert_eq!(queue.push(payload(11)), Err(QueueFull));
    }

    #[test]
    fn batches_respect_the_byte_budget_but_always_take_one() {
        let queue = SendQueue::new(100, 1000);
        for length in [300, 300, 300] {
            assert_eq!(queue.push(payload(length)), Ok(()));
        }
        let mut batch = Vec::new();
        queue.pop_batch(&mut batch, 100);
        assert_eq!(
            batch.len(),
            1,
            "one message larger than the budget still goes"
        );
        batch.clear();
        queue.pop_batch(&mut batch, 600);
        assert_eq!(batch.len(), 2);
        batch.clear();
        queue.pop_batch(&mut batch, 600);
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn a_push_before_the_wait_is_not_lost() {
        let queue = SendQueue::new(10, 100);
        assert_eq!(queue.push(payload(1)), Ok(()));
        // The consumer had not started waiting yet: the stored permit wakes it at once.
        tokio::time::timeout(std::time::Duration::from_secs(5), queue.ready())
            .await
            .expect("the push's permit wakes the consumer");
    }
}
