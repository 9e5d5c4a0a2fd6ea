//! The waiting part every lock-like recipe shares (Curator's `LockInternals`): create our
//! ephemeral sequential node, then, until a predicate over the sorted children says it is our
//! turn, watch exactly one other node and sleep until it changes. Because each waiter watches
//! one node chosen by the predicate, a release wakes one waiter, not all (no herd effect).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;
use zookeeper_client as zk;

use crate::error::{RecipeError, Result};
use crate::nodes::{self, retry};

/// What a predicate decided for our node among the sorted children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// It is our turn.
    Ours,
    /// Not yet: watch this child (a name, not a path) and look again when it changes.
    WatchFor(String),
    /// Our node is not among the children.
    Missing,
}

/// Counters a test (or an operator) reads to see how a recipe behaves.
#[derive(Debug, Default)]
pub struct ContentionStats {
    /// Watch notifications received by waiters of this recipe handle (each one is a wake-up).
    wakeups: AtomicU64,
}

impl ContentionStats {
    /// Watch notifications received while waiting so far.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    pub(crate) fn record_wakeup(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
    }
}

/// Deletes, and removes from `children`, every node other than `ours` that carries our
/// protected prefix: it is ours too, the create of a reply lost to a connection drop, applied
/// after we looked for it and created again. Left alone it would hold a place in the queue
/// (possibly before ours) until the session ends.
pub(crate) async fn remove_duplicates(
    client: &zk::Client,
    base_path: &str,
    ours: &str,
    children: &mut Vec<String>,
) -> Result<()> {
    let Some(prefix) = nodes::protected_prefix(ours) else {
        return Ok(());
    };
    let mut duplicates = Vec::new();
    children.retain(|child| {
        let duplicate = child != ours && child.starts_with(prefix);
        if duplicate {
            duplicates.push(nodes::join(base_path, child));
        }
        !duplicate
    });
    for duplicate in duplicates {
        tracing::info!(%duplicate, "deleting the duplicate of a create whose reply was lost");
        nodes::delete_quietly(client, &duplicate).await?;
    }
    Ok(())
}

/// After a release: deletes any node left with our protected prefix (a duplicate that was
/// applied after our last look). Only needed when the create saw a connection loss.
pub(crate) async fn sweep_duplicates(
    client: &zk::Client,
    base_path: &str,
    ours: &str,
) -> Result<()> {
    let mut children = match nodes::retry(|| client.list_children(base_path)).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    remove_duplicates(client, base_path, ours, &mut children).await
}

/// The standard predicate (Curator `StandardLockInternalsDriver.getsTheLock`): our turn when
/// fewer than `leases_max` nodes are before us; otherwise watch the node `leases_max` places
/// before ours.
pub(crate) fn standard_turn(sorted: &[String], ours: &str, leases_max: usize) -> Turn {
    assert!(leases_max > 0, "a lock needs at least one lease");
    match sorted.iter().position(|child| child == ours) {
        None => Turn::Missing,
        Some(index) if index < leases_max => Turn::Ours,
        Some(index) => Turn::WatchFor(sorted[index - leases_max].clone()),
    }
}

/// Waits until `predicate` grants our node `ours` (a child name of `base_path`), or
/// `deadline` passes (`Ok(false)`). Does not delete our node on failure: the caller does.
pub(crate) async fn wait_for_turn(
    client: &zk::Client,
    base_path: &str,
    ours: &str,
    lock_names: &[&str],
    deadline: Option<Instant>,
    stats: &Arc<ContentionStats>,
    predicate: impl Fn(&[String], &str) -> Turn,
) -> Result<bool> {
    loop {
        let mut children = match retry(|| client.list_children(base_path)).await {
            Ok(children) => children,
            Err(zk::Error::NoNode) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        remove_duplicates(client, base_path, ours, &mut children).await?;
        nodes::sort_by_sequence(&mut children, lock_names);
        let watch_path = match predicate(&children, ours) {
            Turn::Ours => return Ok(true),
            Turn::Missing => {
                return Err(RecipeError::NodeLost {
                    path: nodes::join(base_path, ours),
                });
            }
            Turn::WatchFor(name) => nodes::join(base_path, &name),
        };
        // getData rather than exists: a watch on a node that is already gone would stay
        // registered forever (Curator's comment on the same choice).
        let watcher = match client.get_and_watch_data(&watch_path).await {
            Ok((_, _, watcher)) => watcher,
            Err(zk::Error::NoNode | zk::Error::ConnectionLoss) => continue,
            Err(error) => return Err(error.into()),
        };
        let event = match deadline {
            None => watcher.changed().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, watcher.changed()).await {
                Ok(event) => event,
                Err(_) => return Ok(false),
            },
        };
        stats.record_wakeup();
        if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
            return Err(RecipeError::SessionEnded(match event.session_state {
                zk::SessionState::Closed => zk::Error::ClientClosed,
                zk::SessionState::AuthFailed => zk::Error::AuthFailed,
                _ => zk::Error::SessionExpired,
            }));
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
    fn first_node_gets_the_lock_others_watch_their_predecessor() {
        let sorted = names(&["lock-01", "lock-02", "lock-03"]);
        assert_eq!(standard_turn(&sorted, "lock-01", 1), Turn::Ours);
        assert_eq!(
            standard_turn(&sorted, "lock-03", 1),
            Turn::WatchFor("lock-02".to_owned())
        );
        assert_eq!(standard_turn(&sorted, "lock-09", 1), Turn::Missing);
    }

    #[test]
    fn with_two_leases_the_third_watches_the_first() {
        let sorted = names(&["a-01", "a-02", "a-03"]);
        assert_eq!(standard_turn(&sorted, "a-02", 2), Turn::Ours);
        assert_eq!(
            standard_turn(&sorted, "a-03", 2),
            Turn::WatchFor("a-01".to_owned())
        );
    }
}
