//! Barriers, compatible with Curator's `DistributedBarrier` and `DistributedDoubleBarrier`.
//!
//! - [`Barrier`]: the barrier is up while its node exists; waiters block until it is removed.
//! - [`DoubleBarrier`]: `member_count` participants each add an ephemeral child named by a
//!   UUID; `enter` returns once that many are present (the last one creates `ready`), and
//!   `leave` returns once every participant has removed its child. Our child is ephemeral, so
//!   a participant whose session ends counts as having left.
//!
//! Both survive connection loss: every create and delete is idempotent (a fixed path, with
//! `NodeExists` / `NoNode` accepted), and a watch set before a disconnection is reset by the
//! client afterwards, firing if the node changed meanwhile.

use std::time::Duration;

use tokio::time::Instant;
use zookeeper_client as zk;

use crate::error::{RecipeError, Result};
use crate::nodes::{self, retry};

/// Curator's name of the double barrier's "everyone entered" node.
pub const READY_NODE: &str = "ready";

/// Waits for a one-shot watcher until `deadline`; `false` if the deadline passed.
async fn wait_event(watcher: zk::OneshotWatcher, deadline: Option<Instant>) -> Result<bool> {
    let event = match deadline {
        None => watcher.changed().await,
        Some(deadline) => match tokio::time::timeout_at(deadline, watcher.changed()).await {
            Ok(event) => event,
            Err(_) => return Ok(false),
        },
    };
    if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
        return Err(RecipeError::SessionEnded(zk::Error::SessionExpired));
    }
    Ok(true)
}

fn deadline_of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|timeout| Instant::now() + timeout)
}

/// A barrier that is up while its node exists.
#[derive(Clone, Debug)]
pub struct Barrier {
    client: zk::Client,
    path: String,
}

impl Barrier {
    /// A handle on the barrier at `path`.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path.
    pub fn new(client: &zk::Client, path: &str) -> Result<Barrier> {
        nodes::validate_path(path)?;
        Ok(Barrier {
            client: client.clone(),
            path: path.to_owned(),
        })
    }

    /// Raises the barrier (creates its node; already up is fine).
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn set(&self) -> Result<()> {
        nodes::ensure_parents(&self.client, &self.path).await?;
        let options = zk::CreateMode::Persistent.with_acls(nodes::open_acls());
        match retry(|| self.client.create(&self.path, &[], &options)).await {
            Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
            Err(zk::Error::NoNode) => {
                nodes::ensure_parents(&self.client, &self.path).await?;
                match retry(|| self.client.create(&self.path, &[], &options)).await {
                    Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                    Err(error) => Err(error.into()),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Removes the barrier, releasing every waiter (already down is fine).
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn remove(&self) -> Result<()> {
        match retry(|| self.client.delete(&self.path, None)).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Waits until the barrier is down, at most `timeout` (`None`: as long as it takes).
    /// `Ok(false)` on timeout.
    ///
    /// # Errors
    /// [`RecipeError::SessionEnded`] and other ZooKeeper errors.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = deadline_of(timeout);
        loop {
            let (stat, watcher) = retry(|| self.client.check_and_watch_stat(&self.path)).await?;
            if stat.is_none() {
                return Ok(true);
            }
            if !wait_event(watcher, deadline).await? {
                return Ok(false);
            }
        }
    }
}

/// A double barrier: enter together, leave together.
#[derive(Debug)]
pub struct DoubleBarrier {
    client: zk::Client,
    path: String,
    member_count: usize,
    our_path: String,
    ready_path: String,
}

impl DoubleBarrier {
    /// A participant of the double barrier at `path` for `member_count` members.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path or a zero count.
    pub fn new(client: &zk::Client, path: &str, member_count: usize) -> Result<DoubleBarrier> {
        nodes::validate_path(path)?;
        if member_count == 0 {
            return Err(RecipeError::InvalidArgument("member count cannot be 0"));
        }
        Ok(DoubleBarrier {
            client: client.clone(),
            path: path.to_owned(),
            member_count,
            our_path: nodes::join(path, &uuid::Uuid::new_v4().to_string()),
            ready_path: nodes::join(path, READY_NODE),
        })
    }

    /// Enters, then waits (at most `timeout`) until `member_count` members have entered.
    /// `Ok(false)` on timeout (our member node stays: call [`DoubleBarrier::leave`]).
    ///
    /// # Errors
    /// [`RecipeError::SessionEnded`] and other ZooKeeper errors.
    pub async fn enter(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = deadline_of(timeout);
        let (ready, mut watcher) =
            retry(|| self.client.check_and_watch_stat(&self.ready_path)).await?;
        self.create_member().await?;
        if ready.is_some() {
            return Ok(true);
        }
        loop {
            let children = match retry(|| self.client.list_children(&self.path)).await {
                Ok(children) => children,
                Err(zk::Error::NoNode) => Vec::new(),
                Err(error) => return Err(error.into()),
            };
            if children.len() >= self.member_count {
                let options = zk::CreateMode::Persistent.with_acls(nodes::open_acls());
                return match retry(|| self.client.create(&self.ready_path, &[], &options)).await {
                    Ok(_) | Err(zk::Error::NodeExists) => Ok(true),
                    Err(error) => Err(error.into()),
                };
            }
            if !wait_event(watcher, deadline).await? {
                return Ok(false);
            }
            let (ready, next) =
                retry(|| self.client.check_and_watch_stat(&self.ready_path)).await?;
            if ready.is_some() {
                return Ok(true);
            }
            watcher = next;
        }
    }

    async fn create_member(&self) -> Result<()> {
        nodes::ensure_parents(&self.client, &self.our_path).await?;
        let options = zk::CreateMode::Ephemeral.with_acls(nodes::open_acls());
        for _ in 0..nodes::PARENT_CREATE_ATTEMPTS_MAX {
            match retry(|| self.client.create(&self.our_path, &[], &options)).await {
                // NodeExists: our own create, applied before a lost reply.
                Ok(_) | Err(zk::Error::NodeExists) => return Ok(()),
                Err(zk::Error::NoNode) => {
                    nodes::ensure_path(&self.client, &self.path, zk::CreateMode::Container).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(RecipeError::ZooKeeper(zk::Error::NoNode))
    }

    /// Leaves, then waits (at most `timeout`) until every member has left (Curator's
    /// algorithm: the lowest member waits for the highest; the others delete their node and
    /// wait for the lowest). `Ok(false)` on timeout.
    ///
    /// # Errors
    /// [`RecipeError::SessionEnded`] and other ZooKeeper errors.
    pub async fn leave(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = deadline_of(timeout);
        let ours = nodes::node_name(&self.our_path).to_owned();
        let mut ours_should_exist = true;
        let mut result = true;
        loop {
            let mut children = match retry(|| self.client.list_children(&self.path)).await {
                Ok(children) => children,
                Err(zk::Error::NoNode) => Vec::new(),
                Err(error) => return Err(error.into()),
            };
            children.retain(|child| child != READY_NODE);
            children.sort();
            if children.is_empty() {
                break;
            }
            let index = children.iter().position(|child| *child == ours);
            if index.is_none() && ours_should_exist {
                // Our ephemeral vanished (the session was replaced): nothing more of ours.
                ours_should_exist = false;
            }
            if children.len() == 1 && index == Some(0) {
                self.delete_ours(&mut ours_should_exist).await?;
                break;
            }
            let watched = if index == Some(0) {
                nodes::join(&self.path, &children[children.len() - 1])
            } else {
                self.delete_ours(&mut ours_should_exist).await?;
                nodes::join(&self.path, &children[0])
            };
            let (stat, watcher) = retry(|| self.client.check_and_watch_stat(&watched)).await?;
            if stat.is_some() && !wait_event(watcher, deadline).await? {
                result = false;
                break;
            }
        }
        match retry(|| self.client.delete(&self.ready_path, None)).await {
            Ok(()) | Err(zk::Error::NoNode) => {}
            Err(error) => return Err(error.into()),
        }
        Ok(result)
    }

    async fn delete_ours(&self, ours_should_exist: &mut bool) -> Result<()> {
        if *ours_should_exist {
            nodes::delete_quietly(&self.client, &self.our_path).await?;
            *ours_should_exist = false;
        }
        Ok(())
    }
}
