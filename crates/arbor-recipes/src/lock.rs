//! An exclusive lock with Curator's `InterProcessMutex` layout, so Java and Rust processes
//! can share one lock.
//!
//! Layout: under the lock's path, each contender creates an ephemeral sequential node
//! `_c_<uuid>-lock-<seq>` ("protected": the UUID lets a create whose reply was lost be found
//! again). The node with the lowest sequence holds the lock; every other contender watches
//! only the node just before its own.
//!
//! # Guarantees
//! - Mutual exclusion among all contenders whose sessions are alive, across languages.
//! - Waiters are served in the order their nodes were created (FIFO).
//! - A release wakes exactly one waiter.
//! - The holder is told through [`Mutex::hold_watch`]: [`Hold::Suspended`] as soon as the
//!   client loses its connection (before the server can expire the session and grant the
//!   lock to someone else), [`Hold::Lost`] when the session ends or the node is deleted.
//! - Reentrant per handle: `acquire` on a handle that holds the lock only counts; the node is
//!   deleted by the matching last `release`.
//! - Dropping a handle (or an `acquire` future) that created a node deletes the node in the
//!   background.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use zookeeper_client as zk;

use crate::contend::{self, ContentionStats, Turn};
use crate::error::{RecipeError, Result};
use crate::hold::{Hold, HoldMonitor, HoldWatch};
use crate::nodes;

/// Curator's lock node name for `InterProcessMutex` and `LeaderSelector`.
pub const LOCK_NAME: &str = "lock-";

/// Times the whole create-and-wait is started again when our node vanished while waiting
/// (Curator retries the same way, under its retry policy).
const NODE_LOST_ATTEMPTS_MAX: u32 = 3;

/// Deletes a node in the background unless disarmed: what makes an abandoned `acquire` future
/// (a `select!` that took another branch) leave nothing behind.
pub(crate) struct NodeGuard {
    client: zk::Client,
    path: Option<String>,
}

impl NodeGuard {
    pub(crate) fn new(client: &zk::Client, path: String) -> NodeGuard {
        NodeGuard {
            client: client.clone(),
            path: Some(path),
        }
    }

    /// Keeps the node: the caller owns it now.
    pub(crate) fn disarm(mut self) -> String {
        self.path.take().unwrap_or_default()
    }

    /// Deletes the node now (in the foreground).
    pub(crate) async fn delete(mut self) -> Result<()> {
        match self.path.take() {
            Some(path) => nodes::delete_quietly(&self.client, &path).await,
            None => Ok(()),
        }
    }
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            nodes::delete_in_background(&self.client, path);
        }
    }
}

/// How a contender's node is named and judged.
#[derive(Clone, Copy)]
pub(crate) struct Contention<'a> {
    /// The lock's path (parent of the contenders' nodes).
    pub base_path: &'a str,
    /// This contender's node name before the sequence (`lock-`, `__READ__`, `latch-`, ...).
    pub lock_name: &'a str,
    /// Every lock name whose sequence suffix orders the children.
    pub sort_names: &'a [&'a str],
    /// Data stored in our node.
    pub data: &'a [u8],
    /// `Some(suffix)`: create a plain ephemeral `<lock_name><suffix>` instead of a sequential
    /// node (a read lock taken by the write-lock holder sorts with the write node).
    pub fixed_suffix: Option<&'a str>,
}

/// Creates our node and waits for our turn. `Ok(Some((path, lost_reply)))` when granted
/// (`lost_reply`: the create saw a connection loss, sweep for a duplicate at release),
/// `Ok(None)` when the deadline passed (our node is then deleted).
pub(crate) async fn contend(
    client: &zk::Client,
    contention: Contention<'_>,
    deadline: Option<Instant>,
    stats: &Arc<ContentionStats>,
    predicate: impl Fn(&[String], &str) -> Turn,
) -> Result<Option<(String, bool)>> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (name, mode) = match contention.fixed_suffix {
            Some(suffix) => (
                format!("{}{suffix}", contention.lock_name),
                zk::CreateMode::Ephemeral,
            ),
            None => (
                contention.lock_name.to_owned(),
                zk::CreateMode::EphemeralSequential,
            ),
        };
        let created =
            nodes::create_protected(client, contention.base_path, &name, contention.data, mode)
                .await?;
        let guard = NodeGuard::new(client, created.path.clone());
        let ours = nodes::node_name(&created.path);
        let waited = contend::wait_for_turn(
            client,
            contention.base_path,
            ours,
            contention.sort_names,
            deadline,
            stats,
            &predicate,
        )
        .await;
        match waited {
            Ok(true) => return Ok(Some((guard.disarm(), created.lost_reply))),
            Ok(false) => {
                guard.delete().await?;
                if created.lost_reply {
                    contend::sweep_duplicates(client, contention.base_path, ours).await?;
                }
                return Ok(None);
            }
            Err(RecipeError::NodeLost { .. }) if attempts < NODE_LOST_ATTEMPTS_MAX => {
                drop(guard);
            }
            Err(error) => {
                // Best effort: after a session end there is nothing to delete.
                let _ = guard.delete().await;
                return Err(error);
            }
        }
    }
}

/// What a handle holds while it holds the lock.
#[derive(Debug)]
pub(crate) struct Held {
    pub path: String,
    pub count: u32,
    pub monitor: HoldMonitor,
    /// The create saw a connection loss: look for a late duplicate when releasing.
    pub lost_reply: bool,
}

impl Held {
    /// Deletes our node (and, after a lost create reply, any late duplicate of it).
    pub(crate) async fn delete(self, client: &zk::Client, base_path: &str) -> Result<()> {
        drop(self.monitor);
        NodeGuard::new(client, self.path.clone()).delete().await?;
        if self.lost_reply {
            contend::sweep_duplicates(client, base_path, nodes::node_name(&self.path)).await?;
        }
        Ok(())
    }
}

/// An exclusive, reentrant lock compatible with Curator's `InterProcessMutex`.
///
/// One handle is one holder: share a lock between tasks by giving each its own handle
/// (`Mutex::new` is cheap), as Curator's reentrancy is per thread.
#[derive(Debug)]
pub struct Mutex {
    client: zk::Client,
    base_path: String,
    node_data: Vec<u8>,
    held: Option<Held>,
    stats: Arc<ContentionStats>,
}

impl Mutex {
    /// A handle on the lock at `path` (created on first use, as a container).
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path.
    pub fn new(client: &zk::Client, path: &str) -> Result<Mutex> {
        nodes::validate_path(path)?;
        Ok(Mutex {
            client: client.clone(),
            base_path: path.to_owned(),
            node_data: Vec::new(),
            held: None,
            stats: Arc::default(),
        })
    }

    /// Stores `data` in this handle's lock node (Curator's `LeaderSelector` stores its
    /// participant id there).
    pub fn with_node_data(mut self, data: impl Into<Vec<u8>>) -> Mutex {
        self.node_data = data.into();
        self
    }

    /// Waits as long as it takes to acquire the lock.
    ///
    /// # Errors
    /// [`RecipeError::SessionEnded`] if the session ends first; other ZooKeeper errors.
    pub async fn acquire(&mut self) -> Result<()> {
        let acquired = self.acquire_until(None).await?;
        assert!(
            acquired,
            "an acquire without deadline returned without the lock"
        );
        Ok(())
    }

    /// Waits at most `timeout` to acquire the lock; `Ok(false)` if it did not (nothing is
    /// left behind then).
    ///
    /// # Errors
    /// As [`Mutex::acquire`].
    pub async fn try_acquire(&mut self, timeout: Duration) -> Result<bool> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    async fn acquire_until(&mut self, deadline: Option<Instant>) -> Result<bool> {
        if let Some(held) = &mut self.held {
            if held.monitor.current() != Hold::Lost {
                held.count += 1;
                return Ok(true);
            }
            // The lock was lost under us: forget it and contend again.
            self.held = None;
        }
        let contention = Contention {
            base_path: &self.base_path,
            lock_name: LOCK_NAME,
            sort_names: &[LOCK_NAME],
            data: &self.node_data,
            fixed_suffix: None,
        };
        let granted = contend(
            &self.client,
            contention,
            deadline,
            &self.stats,
            |sorted, ours| contend::standard_turn(sorted, ours, 1),
        )
        .await?;
        Ok(match granted {
            Some((path, lost_reply)) => {
                let monitor = HoldMonitor::start(&self.client, path.clone());
                self.held = Some(Held {
                    path,
                    count: 1,
                    monitor,
                    lost_reply,
                });
                true
            }
            None => false,
        })
    }

    /// Releases one level of ownership; the last one deletes the lock node.
    ///
    /// # Errors
    /// [`RecipeError::InvalidState`] if this handle does not hold the lock; ZooKeeper errors
    /// from the delete (the node is then deleted in the background).
    pub async fn release(&mut self) -> Result<()> {
        let Some(held) = &mut self.held else {
            return Err(RecipeError::InvalidState(
                "release of a lock this handle does not hold",
            ));
        };
        assert!(held.count > 0, "a held lock with a zero count");
        held.count -= 1;
        if held.count > 0 {
            return Ok(());
        }
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        held.delete(&self.client, &self.base_path).await
    }

    /// Whether this handle holds the lock and the holding is not suspended or lost.
    pub fn is_held(&self) -> bool {
        self.held
            .as_ref()
            .is_some_and(|held| held.monitor.current() == Hold::Held)
    }

    /// A live view of the holding, while held: watch it to stop acting as holder at once
    /// when the connection or the session is lost.
    pub fn hold_watch(&self) -> Option<HoldWatch> {
        self.held.as_ref().map(|held| held.monitor.watch())
    }

    /// Our lock node's path while held.
    pub fn lock_path(&self) -> Option<&str> {
        self.held.as_ref().map(|held| held.path.as_str())
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        &self.base_path
    }

    /// Contention counters of this handle (wake-ups while waiting).
    pub fn stats(&self) -> Arc<ContentionStats> {
        self.stats.clone()
    }

    /// Paths of every contender's node, holder first (Curator `getParticipantNodes`).
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn participants(&self) -> Result<Vec<String>> {
        participants(&self.client, &self.base_path, &[LOCK_NAME]).await
    }
}

impl Drop for Mutex {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            drop(NodeGuard::new(&self.client, held.path));
        }
    }
}

/// Sorted children of `base_path` as paths (none when the path does not exist).
pub(crate) async fn participants(
    client: &zk::Client,
    base_path: &str,
    sort_names: &[&str],
) -> Result<Vec<String>> {
    let mut children = match nodes::retry(|| client.list_children(base_path)).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    children.retain(|child| sort_names.iter().any(|name| child.contains(name)));
    nodes::sort_by_sequence(&mut children, sort_names);
    Ok(children
        .iter()
        .map(|child| nodes::join(base_path, child))
        .collect())
}
