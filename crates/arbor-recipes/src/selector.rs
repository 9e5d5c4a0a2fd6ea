//! Leader election that runs a leadership closure, compatible with Curator's
//! `LeaderSelector` (an `InterProcessMutex` at the election's path whose nodes hold the
//! participant id).
//!
//! # Guarantees
//! - The closure runs only while this participant holds the election's lock.
//! - It is cancelled (its future dropped) the instant the hold is suspended (connection lost)
//!   or lost (session ended, node deleted): Curator's `CancelLeadershipException` behaviour.
//!   Because the server expires a session only after its full timeout while the client gives
//!   up a connection after a fraction of it, the old leader has stopped before a new one can
//!   start: two leaders never act at the same time.
//! - The closure can also watch [`Leadership`] to stop cooperatively, e.g. to hand the signal
//!   to work it spawned.
//! - When the closure ends (or is cancelled) the lock is released, so calling
//!   [`LeaderSelector::run_once`] in a loop requeues (Curator's `autoRequeue`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use zookeeper_client as zk;

use crate::contend::ContentionStats;
use crate::error::Result;
use crate::hold::{Hold, HoldWatch};
use crate::lock::{LOCK_NAME, Mutex};

/// What the leadership closure is given: a live view of its leadership.
#[derive(Clone, Debug)]
pub struct Leadership {
    hold: HoldWatch,
}

impl Leadership {
    /// Whether we still lead (connected, node in place).
    pub fn is_leader(&self) -> bool {
        self.hold.is_held()
    }

    /// Resolves as soon as leadership is suspended or lost.
    pub async fn lost(&mut self) -> Hold {
        self.hold.not_held().await
    }
}

/// How a turn of leadership ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The closure finished while leading; its value.
    Completed(T),
    /// Leadership was suspended or lost first; the closure was cancelled.
    Cancelled(Hold),
}

/// A participant in a leader election that runs a closure while leading.
#[derive(Debug)]
pub struct LeaderSelector {
    mutex: Mutex,
}

impl LeaderSelector {
    /// A participant with `id` in the election at `path`.
    ///
    /// # Errors
    /// [`crate::RecipeError::InvalidArgument`] for a malformed path.
    pub fn new(client: &zk::Client, path: &str, id: &str) -> Result<LeaderSelector> {
        Ok(LeaderSelector {
            mutex: Mutex::new(client, path)?.with_node_data(id.as_bytes().to_vec()),
        })
    }

    /// Waits for leadership, runs `leader` while leading, then gives leadership up.
    ///
    /// # Errors
    /// [`crate::RecipeError::SessionEnded`] and other ZooKeeper errors while waiting.
    pub async fn run_once<T, F, Fut>(&mut self, leader: F) -> Result<Outcome<T>>
    where
        F: FnOnce(Leadership) -> Fut,
        Fut: Future<Output = T>,
    {
        self.mutex.acquire().await?;
        self.lead(leader).await
    }

    /// Like [`LeaderSelector::run_once`] but waits at most `timeout` for leadership;
    /// `Ok(None)` if it did not come.
    ///
    /// # Errors
    /// As [`LeaderSelector::run_once`].
    pub async fn try_run_once<T, F, Fut>(
        &mut self,
        timeout: Duration,
        leader: F,
    ) -> Result<Option<Outcome<T>>>
    where
        F: FnOnce(Leadership) -> Fut,
        Fut: Future<Output = T>,
    {
        if !self.mutex.try_acquire(timeout).await? {
            return Ok(None);
        }
        self.lead(leader).await.map(Some)
    }

    async fn lead<T, F, Fut>(&mut self, leader: F) -> Result<Outcome<T>>
    where
        F: FnOnce(Leadership) -> Fut,
        Fut: Future<Output = T>,
    {
        let Some(mut hold) = self.mutex.hold_watch() else {
            return Ok(Outcome::Cancelled(Hold::Lost));
        };
        let leadership = Leadership { hold: hold.clone() };
        let outcome = tokio::select! {
            biased;
            lost = hold.not_held() => Outcome::Cancelled(lost),
            value = leader(leadership) => Outcome::Completed(value),
        };
        // Give the lock back; after a session end there is nothing to give back.
        let released = self.mutex.release().await;
        match released {
            Ok(()) => Ok(outcome),
            Err(error) if error.is_session_ended() => Ok(outcome),
            Err(error) => Err(error),
        }
    }

    /// Contention counters (wake-ups while waiting for leadership).
    pub fn stats(&self) -> Arc<ContentionStats> {
        self.mutex.stats()
    }

    /// Every participant's node path, leader first.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn participants(&self) -> Result<Vec<String>> {
        self.mutex.participants().await
    }
}

/// The node name Curator's `LeaderSelector` uses (its mutex's).
pub const SELECTOR_LOCK_NAME: &str = LOCK_NAME;
