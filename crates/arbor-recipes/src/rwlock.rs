//! A shared read / exclusive write lock with Curator's `InterProcessReadWriteLock` layout.
//!
//! Layout: readers create `_c_<uuid>-__READ__<seq>`, writers `_c_<uuid>-__WRIT__<seq>`, all
//! ephemeral sequential under the lock's path; the two names have the same length and the
//! children are ordered by the sequence after either name.
//!
//! - A writer holds the lock when its node is first; otherwise it watches the node just
//!   before its own.
//! - A reader holds the lock when no writer node is before its own; otherwise it watches the
//!   nearest writer before it (ZooKeeper's recipe: the reader that must wait for a writer
//!   wakes once, when the last writer ahead of it is gone). Curator watches the first writer
//!   instead; both predicates grant the same thing, so Java and Rust processes share one lock.
//! - Downgrade: the write-lock holder may take the read lock at once. Its read node is a
//!   plain ephemeral `_c_<uuid>-__READ__<writer's seq>`, so it sorts at the writer's place
//!   (as Curator 5.5+ does, CURATOR-621): releasing the write lock then leaves a reader at the
//!   head of the queue, and no writer queued meanwhile can slip in.
//! - Upgrade (read to write) is refused: it would deadlock against the other readers.
//!
//! Reentrancy, hold watches and background cleanup are as for [`crate::Mutex`].

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use zookeeper_client as zk;

use crate::contend::{self, ContentionStats, Turn};
use crate::error::{RecipeError, Result};
use crate::hold::{Hold, HoldMonitor, HoldWatch};
use crate::lock::{Contention, Held, NodeGuard, contend, participants};
use crate::nodes;

/// Curator's read node name.
pub const READ_LOCK_NAME: &str = "__READ__";
/// Curator's write node name (same length as the read name: the sorting depends on it).
pub const WRITE_LOCK_NAME: &str = "__WRIT__";

const SORT_NAMES: &[&str] = &[READ_LOCK_NAME, WRITE_LOCK_NAME];

/// The reader's predicate: ours when no writer is before us, else watch the nearest writer
/// before us.
pub(crate) fn read_turn(sorted: &[String], ours: &str) -> Turn {
    let Some(index) = sorted.iter().position(|child| child == ours) else {
        return Turn::Missing;
    };
    match sorted[..index]
        .iter()
        .rev()
        .find(|child| child.contains(WRITE_LOCK_NAME))
    {
        None => Turn::Ours,
        Some(writer) => Turn::WatchFor(writer.clone()),
    }
}

/// Which side of the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Read,
    Write,
}

/// A handle on a read/write lock; one handle is one holder (see [`crate::Mutex`]).
#[derive(Debug)]
pub struct ReadWriteLock {
    client: zk::Client,
    base_path: String,
    node_data: Vec<u8>,
    read: Option<Held>,
    write: Option<Held>,
    stats: Arc<ContentionStats>,
}

impl ReadWriteLock {
    /// A handle on the lock at `path`.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path.
    pub fn new(client: &zk::Client, path: &str) -> Result<ReadWriteLock> {
        nodes::validate_path(path)?;
        Ok(ReadWriteLock {
            client: client.clone(),
            base_path: path.to_owned(),
            node_data: Vec::new(),
            read: None,
            write: None,
            stats: Arc::default(),
        })
    }

    /// Stores `data` in this handle's lock nodes.
    pub fn with_node_data(mut self, data: impl Into<Vec<u8>>) -> ReadWriteLock {
        self.node_data = data.into();
        self
    }

    /// Waits as long as it takes for the read lock.
    ///
    /// # Errors
    /// [`RecipeError::SessionEnded`] and other ZooKeeper errors.
    pub async fn acquire_read(&mut self) -> Result<()> {
        let acquired = self.acquire(Side::Read, None).await?;
        assert!(
            acquired,
            "an acquire without deadline returned without the lock"
        );
        Ok(())
    }

    /// Waits at most `timeout` for the read lock.
    ///
    /// # Errors
    /// As [`ReadWriteLock::acquire_read`].
    pub async fn try_acquire_read(&mut self, timeout: Duration) -> Result<bool> {
        self.acquire(Side::Read, Some(Instant::now() + timeout))
            .await
    }

    /// Waits as long as it takes for the write lock.
    ///
    /// # Errors
    /// [`RecipeError::InvalidState`] when this handle holds only the read lock (upgrade);
    /// [`RecipeError::SessionEnded`] and other ZooKeeper errors.
    pub async fn acquire_write(&mut self) -> Result<()> {
        let acquired = self.acquire(Side::Write, None).await?;
        assert!(
            acquired,
            "an acquire without deadline returned without the lock"
        );
        Ok(())
    }

    /// Waits at most `timeout` for the write lock.
    ///
    /// # Errors
    /// As [`ReadWriteLock::acquire_write`].
    pub async fn try_acquire_write(&mut self, timeout: Duration) -> Result<bool> {
        self.acquire(Side::Write, Some(Instant::now() + timeout))
            .await
    }

    /// Turns the write lock into a read lock without letting any writer in between: takes
    /// the read lock (granted at once to the writer) and releases one level of the write lock.
    ///
    /// # Errors
    /// [`RecipeError::InvalidState`] unless this handle holds the write lock.
    pub async fn downgrade(&mut self) -> Result<()> {
        if !self.holds(Side::Write) {
            return Err(RecipeError::InvalidState("downgrade needs the write lock"));
        }
        self.acquire_read().await?;
        self.release_write().await
    }

    fn holds(&self, side: Side) -> bool {
        let held = match side {
            Side::Read => &self.read,
            Side::Write => &self.write,
        };
        held.as_ref()
            .is_some_and(|held| held.monitor.current() != Hold::Lost)
    }

    async fn acquire(&mut self, side: Side, deadline: Option<Instant>) -> Result<bool> {
        if self.holds(side) {
            let held = match side {
                Side::Read => self.read.as_mut(),
                Side::Write => self.write.as_mut(),
            };
            if let Some(held) = held {
                held.count += 1;
                return Ok(true);
            }
        }
        if side == Side::Write && self.holds(Side::Read) && !self.holds(Side::Write) {
            return Err(RecipeError::InvalidState(
                "a read lock cannot be upgraded to a write lock",
            ));
        }
        let downgrade_suffix = match (&self.write, side) {
            (Some(write), Side::Read) if self.holds(Side::Write) => {
                Some(nodes::sequence_key(nodes::node_name(&write.path), SORT_NAMES).to_owned())
            }
            _ => None,
        };
        let contention = Contention {
            base_path: &self.base_path,
            lock_name: match side {
                Side::Read => READ_LOCK_NAME,
                Side::Write => WRITE_LOCK_NAME,
            },
            sort_names: SORT_NAMES,
            data: &self.node_data,
            fixed_suffix: downgrade_suffix.as_deref(),
        };
        let holds_write = downgrade_suffix.is_some();
        let granted = contend(
            &self.client,
            contention,
            deadline,
            &self.stats,
            |sorted, ours| match side {
                Side::Write => contend::standard_turn(sorted, ours, 1),
                // The write holder reads at once (Curator: isOwnedByCurrentThread).
                Side::Read if holds_write => {
                    if sorted.iter().any(|child| child == ours) {
                        Turn::Ours
                    } else {
                        Turn::Missing
                    }
                }
                Side::Read => read_turn(sorted, ours),
            },
        )
        .await?;
        let Some((path, lost_reply)) = granted else {
            return Ok(false);
        };
        let monitor = HoldMonitor::start(&self.client, path.clone());
        let held = Some(Held {
            path,
            count: 1,
            monitor,
            lost_reply,
        });
        match side {
            Side::Read => self.read = held,
            Side::Write => self.write = held,
        }
        Ok(true)
    }

    /// Releases one level of the read lock.
    ///
    /// # Errors
    /// [`RecipeError::InvalidState`] if not held; ZooKeeper errors of the delete.
    pub async fn release_read(&mut self) -> Result<()> {
        self.release(Side::Read).await
    }

    /// Releases one level of the write lock.
    ///
    /// # Errors
    /// [`RecipeError::InvalidState`] if not held; ZooKeeper errors of the delete.
    pub async fn release_write(&mut self) -> Result<()> {
        self.release(Side::Write).await
    }

    async fn release(&mut self, side: Side) -> Result<()> {
        let slot = match side {
            Side::Read => &mut self.read,
            Side::Write => &mut self.write,
        };
        let Some(held) = slot else {
            return Err(RecipeError::InvalidState(
                "release of a lock side this handle does not hold",
            ));
        };
        assert!(held.count > 0, "a held lock with a zero count");
        held.count -= 1;
        if held.count > 0 {
            return Ok(());
        }
        let Some(held) = slot.take() else {
            return Ok(());
        };
        held.delete(&self.client, &self.base_path).await
    }

    /// Whether the read lock is held (and not suspended or lost).
    pub fn is_read_held(&self) -> bool {
        self.read
            .as_ref()
            .is_some_and(|held| held.monitor.current() == Hold::Held)
    }

    /// Whether the write lock is held (and not suspended or lost).
    pub fn is_write_held(&self) -> bool {
        self.write
            .as_ref()
            .is_some_and(|held| held.monitor.current() == Hold::Held)
    }

    /// A live view of the read holding, while held.
    pub fn read_hold_watch(&self) -> Option<HoldWatch> {
        self.read.as_ref().map(|held| held.monitor.watch())
    }

    /// A live view of the write holding, while held.
    pub fn write_hold_watch(&self) -> Option<HoldWatch> {
        self.write.as_ref().map(|held| held.monitor.watch())
    }

    /// Contention counters of this handle.
    pub fn stats(&self) -> Arc<ContentionStats> {
        self.stats.clone()
    }

    /// Every contender's node path in lock order.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn participants(&self) -> Result<Vec<String>> {
        participants(&self.client, &self.base_path, SORT_NAMES).await
    }
}

impl Drop for ReadWriteLock {
    fn drop(&mut self) {
        for held in [self.read.take(), self.write.take()].into_iter().flatten() {
            drop(NodeGuard::new(&self.client, held.path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn readers_share_until_a_writer_is_before_them() {
        let sorted = names(&["__READ__01", "__READ__02", "__WRIT__03", "__READ__04"]);
        assert_eq!(read_turn(&sorted, "__READ__02"), Turn::Ours);
        assert_eq!(
            read_turn(&sorted, "__READ__04"),
            Turn::WatchFor("__WRIT__03".to_owned())
        );
    }

    #[test]
    fn a_reader_watches_the_nearest_writer_before_it() {
        let sorted = names(&["__WRIT__01", "__WRIT__02", "__READ__03"]);
        assert_eq!(
            read_turn(&sorted, "__READ__03"),
            Turn::WatchFor("__WRIT__02".to_owned())
        );
        assert_eq!(read_turn(&sorted, "__READ__09"), Turn::Missing);
    }
}
