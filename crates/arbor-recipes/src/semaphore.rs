//! A counting semaphore compatible with Curator's `InterProcessSemaphoreV2`.
//!
//! Layout under the semaphore's path: `locks/` is an [`crate::Mutex`] that serialises
//! acquirers, and `leases/` holds one protected ephemeral sequential node
//! `_c_<uuid>-lease-<seq>` per lease granted. An acquirer takes the mutex, creates its lease
//! node, and waits (watching the children of `leases/`) until there are at most `leases_max`
//! lease nodes; then it releases the mutex. Because acquirers are serialised, waiting is FIFO
//! and a freed lease is taken by the one acquirer at the head.
//!
//! # Guarantees
//! - At most `leases_max` leases exist at once among live sessions, provided every
//!   participant uses the same `leases_max` (as with Curator).
//! - A lease is an ephemeral node: it is returned by [`Lease::release`], by dropping the
//!   [`Lease`] (in the background), or by the end of the session.
//! - Each lease can be watched with [`Lease::hold_watch`] like a lock.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use zookeeper_client as zk;

use crate::contend::{self, ContentionStats};
use crate::error::{RecipeError, Result};
use crate::hold::{HoldMonitor, HoldWatch};
use crate::lock::{Mutex, NodeGuard};
use crate::nodes::{self, retry};

/// Curator's child holding the semaphore's mutex.
pub const LOCK_PARENT: &str = "locks";
/// Curator's child holding the leases.
pub const LEASE_PARENT: &str = "leases";
/// Curator's lease node name.
pub const LEASE_NAME: &str = "lease-";

/// A counting semaphore handle.
#[derive(Debug)]
pub struct Semaphore {
    client: zk::Client,
    leases_path: String,
    leases_max: usize,
    mutex: Mutex,
    node_data: Vec<u8>,
    stats: Arc<ContentionStats>,
}

impl Semaphore {
    /// A handle on the semaphore at `path` with `leases_max` leases.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path or zero leases.
    pub fn new(client: &zk::Client, path: &str, leases_max: usize) -> Result<Semaphore> {
        nodes::validate_path(path)?;
        if leases_max == 0 {
            return Err(RecipeError::InvalidArgument(
                "a semaphore needs at least one lease",
            ));
        }
        Ok(Semaphore {
            client: client.clone(),
            leases_path: nodes::join(path, LEASE_PARENT),
            leases_max,
            mutex: Mutex::new(client, &nodes::join(path, LOCK_PARENT))?,
            node_data: Vec::new(),
            stats: Arc::default(),
        })
    }

    /// Stores `data` in each lease node this handle creates.
    pub fn with_node_data(mut self, data: impl Into<Vec<u8>>) -> Semaphore {
        self.node_data = data.into();
        self
    }

    /// Waits as long as it takes for one lease.
    ///
    /// # Errors
    /// [`RecipeError::SessionEnded`] and other ZooKeeper errors.
    pub async fn acquire(&mut self) -> Result<Lease> {
        let mut leases = self.acquire_many(1, None).await?.unwrap_or_default();
        leases.pop().ok_or(RecipeError::InvalidState(
            "no lease after an acquire without deadline",
        ))
    }

    /// Waits at most `timeout` for `quantity` leases, all or none: `Ok(None)` when the time
    /// ran out (any lease taken so far is returned).
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a zero quantity; ZooKeeper errors.
    pub async fn try_acquire(
        &mut self,
        quantity: usize,
        timeout: Duration,
    ) -> Result<Option<Vec<Lease>>> {
        self.acquire_many(quantity, Some(Instant::now() + timeout))
            .await
    }

    async fn acquire_many(
        &mut self,
        quantity: usize,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<Lease>>> {
        if quantity == 0 {
            return Err(RecipeError::InvalidArgument("quantity cannot be 0"));
        }
        let mut leases = Vec::with_capacity(quantity);
        for _ in 0..quantity {
            match self.acquire_one(deadline).await {
                Ok(Some(lease)) => leases.push(lease),
                // Dropping the leases taken so far returns them.
                Ok(None) => return Ok(None),
                Err(error) => return Err(error),
            }
        }
        Ok(Some(leases))
    }

    async fn acquire_one(&mut self, deadline: Option<Instant>) -> Result<Option<Lease>> {
        let locked = match deadline {
            None => {
                self.mutex.acquire().await?;
                true
            }
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.mutex.try_acquire(left).await?
            }
        };
        if !locked {
            return Ok(None);
        }
        let result = self.wait_for_lease(deadline).await;
        let released = self.mutex.release().await;
        let lease = result?;
        released?;
        Ok(lease)
    }

    /// Under the mutex: create our lease node and wait until it is among the first
    /// `leases_max`.
    async fn wait_for_lease(&self, deadline: Option<Instant>) -> Result<Option<Lease>> {
        let created = nodes::create_protected(
            &self.client,
            &self.leases_path,
            LEASE_NAME,
            &self.node_data,
            zk::CreateMode::EphemeralSequential,
        )
        .await?;
        let guard = NodeGuard::new(&self.client, created.path.clone());
        let ours = nodes::node_name(&created.path).to_owned();
        loop {
            let (mut children, watcher) =
                match retry(|| self.client.list_and_watch_children(&self.leases_path)).await {
                    Ok(found) => found,
                    Err(error) => return Err(error.into()),
                };
            contend::remove_duplicates(&self.client, &self.leases_path, &ours, &mut children)
                .await?;
            if !children.contains(&ours) {
                return Err(RecipeError::NodeLost { path: created.path });
            }
            if children.len() <= self.leases_max {
                let path = guard.disarm();
                let monitor = HoldMonitor::start(&self.client, path.clone());
                return Ok(Some(Lease {
                    client: self.client.clone(),
                    path: Some(path),
                    monitor,
                    lost_reply: created.lost_reply,
                }));
            }
            let event = match deadline {
                None => watcher.changed().await,
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, watcher.changed()).await {
                        Ok(event) => event,
                        Err(_) => {
                            guard.delete().await?;
                            return Ok(None);
                        }
                    }
                }
            };
            self.stats.record_wakeup();
            if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
                return Err(RecipeError::SessionEnded(zk::Error::SessionExpired));
            }
        }
    }

    /// Paths of the current lease nodes.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn participants(&self) -> Result<Vec<String>> {
        match retry(|| self.client.list_children(&self.leases_path)).await {
            Ok(children) => Ok(children
                .iter()
                .map(|child| nodes::join(&self.leases_path, child))
                .collect()),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(error) => Err(error.into()),
        }
    }

    /// Contention counters (wake-ups while waiting for a free lease).
    pub fn stats(&self) -> Arc<ContentionStats> {
        self.stats.clone()
    }
}

/// One lease of a [`Semaphore`]; dropping it returns it in the background.
#[derive(Debug)]
pub struct Lease {
    client: zk::Client,
    path: Option<String>,
    monitor: HoldMonitor,
    /// The create saw a connection loss: look for a late duplicate when returning it.
    lost_reply: bool,
}

impl Lease {
    /// The lease node's path.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or_default()
    }

    /// A live view of this lease (suspended on connection loss, lost with the session).
    pub fn hold_watch(&self) -> HoldWatch {
        self.monitor.watch()
    }

    /// Returns the lease now.
    ///
    /// # Errors
    /// ZooKeeper errors of the delete.
    pub async fn release(mut self) -> Result<()> {
        let Some(path) = self.path.take() else {
            return Ok(());
        };
        nodes::delete_quietly(&self.client, &path).await?;
        if self.lost_reply {
            let parent = nodes::parent_of(&path);
            contend::sweep_duplicates(&self.client, parent, nodes::node_name(&path)).await?;
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            nodes::delete_in_background(&self.client, path);
        }
    }
}
