//! Configuration publish/subscribe: a cache of one node ([`NodeCache`], like Curator's
//! `NodeCache`) and of a whole subtree ([`TreeCache`], like Curator's `CuratorCache`).
//!
//! Both are kept current by a persistent watch (recursive for the subtree) registered before
//! the first read, so no change between the read and the watch is missed. Events lost while
//! disconnected are not replayed by ZooKeeper for persistent watches (ZOOKEEPER-4698), so on
//! every reconnection the cache reads everything again and reports the differences.
//!
//! # Guarantees
//! - Every change is eventually reflected; the cache converges to the server's state after
//!   the last change, including changes made while we were disconnected.
//! - Intermediate states may be skipped (two quick writes can be seen as one change).
//! - When the session ends the cache stops; [`TreeCache::is_running`] turns false.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::error::{RecipeError, Result};
use crate::nodes::{self, retry};

/// Events a [`TreeCache`] subscriber may fall behind by before it is told it lagged (and
/// should read [`TreeCache::snapshot`] again).
pub const CACHE_EVENTS_BUFFERED_MAX: usize = 4096;

/// Nodes a [`TreeCache`] holds at most; a larger subtree makes `start` fail and a running
/// cache stop, rather than grow without bound.
pub const TREE_CACHE_NODES_MAX: usize = 1_000_000;

/// One cached node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildData {
    /// Its full path.
    pub path: String,
    /// Its data.
    pub data: Vec<u8>,
    /// Its stat when read.
    pub stat: zk::Stat,
}

/// A change the cache applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheEvent {
    /// A node appeared.
    Created(ChildData),
    /// A node's data (or stat) changed.
    Changed {
        /// Before.
        old: ChildData,
        /// After.
        new: ChildData,
    },
    /// A node disappeared.
    Deleted(ChildData),
    /// A full re-read finished (initial load, or after a reconnection); the events it implied
    /// came before this one.
    Resynced,
}

type Tree = BTreeMap<String, ChildData>;

/// Reads `root` and everything below it.
async fn read_tree(client: &zk::Client, root: &str) -> Result<Tree> {
    let mut tree = Tree::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let (data, stat) = match retry(|| client.get_data(&path)).await {
            Ok(found) => found,
            Err(zk::Error::NoNode) => continue,
            Err(error) => return Err(error.into()),
        };
        if stat.num_children > 0 {
            match retry(|| client.list_children(&path)).await {
                Ok(children) => {
                    pending.extend(children.iter().map(|child| nodes::join(&path, child)));
                }
                Err(zk::Error::NoNode) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        tree.insert(path.clone(), ChildData { path, data, stat });
        if tree.len() > TREE_CACHE_NODES_MAX {
            return Err(RecipeError::InvalidState(
                "the subtree has more nodes than a tree cache holds",
            ));
        }
    }
    Ok(tree)
}

/// The events that turn `old` into `new`.
fn diff(old: &Tree, new: &Tree) -> Vec<CacheEvent> {
    let mut events = Vec::new();
    for (path, node) in old {
        if !new.contains_key(path) {
            events.push(CacheEvent::Deleted(node.clone()));
        }
    }
    for (path, node) in new {
        match old.get(path) {
            None => events.push(CacheEvent::Created(node.clone())),
            Some(before)
                if before.stat.mzxid != node.stat.mzxid || before.stat.czxid != node.stat.czxid =>
            {
                events.push(CacheEvent::Changed {
                    old: before.clone(),
                    new: node.clone(),
                });
            }
            Some(_) => {}
        }
    }
    events
}

/// Paths in `tree` at or below `path`, in order.
fn subtree_keys(tree: &Tree, path: &str) -> Vec<String> {
    if path == "/" {
        return tree.keys().cloned().collect();
    }
    // Not a plain range from `path`: "/a-x" sorts between "/a" and "/a/b".
    let prefix = format!("{path}/");
    let mut keys = Vec::new();
    if tree.contains_key(path) {
        keys.push(path.to_owned());
    }
    keys.extend(
        tree.range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .map(|(key, _)| key.clone()),
    );
    keys
}

struct TreeShared {
    tree: RwLock<Tree>,
    events: broadcast::Sender<CacheEvent>,
    /// Increments after every applied change: a cheap way to wait for "something changed".
    generation: watch::Sender<u64>,
}

impl TreeShared {
    fn publish(&self, events: Vec<CacheEvent>) {
        if events.is_empty() {
            return;
        }
        for event in events {
            // No subscriber is fine.
            let _ = self.events.send(event);
        }
        self.generation.send_modify(|generation| *generation += 1);
    }

    fn replace(&self, new: Tree) {
        let events = match self.tree.write() {
            Ok(mut tree) => {
                let events = diff(&tree, &new);
                *tree = new;
                events
            }
            Err(_) => Vec::new(),
        };
        self.publish(events);
        let _ = self.events.send(CacheEvent::Resynced);
        self.generation.send_modify(|generation| *generation += 1);
    }

    fn upsert(&self, node: ChildData) {
        let event = match self.tree.write() {
            Ok(mut tree) => match tree.insert(node.path.clone(), node.clone()) {
                None => Some(CacheEvent::Created(node)),
                Some(old) if old != node => Some(CacheEvent::Changed { old, new: node }),
                Some(_) => None,
            },
            Err(_) => None,
        };
        self.publish(event.into_iter().collect());
    }

    fn remove_subtree(&self, path: &str) {
        let events = match self.tree.write() {
            Ok(mut tree) => subtree_keys(&tree, path)
                .into_iter()
                .rev()
                .filter_map(|key| tree.remove(&key))
                .map(CacheEvent::Deleted)
                .collect(),
            Err(_) => Vec::new(),
        };
        self.publish(events);
    }
}

/// A live copy of a subtree (Curator `CuratorCache`).
pub struct TreeCache {
    root: String,
    shared: Arc<TreeShared>,
    task: JoinHandle<Result<()>>,
}

impl std::fmt::Debug for TreeCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TreeCache")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl TreeCache {
    /// Watches `root` recursively, loads the subtree and keeps it current in the background.
    /// Returns once the first load is done. The root need not exist.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path; ZooKeeper errors of the load.
    pub async fn start(client: &zk::Client, root: &str) -> Result<TreeCache> {
        nodes::validate_path(root)?;
        let watcher = retry(|| client.watch(root, zk::AddWatchMode::PersistentRecursive)).await?;
        let tree = read_tree(client, root).await?;
        let (events, _) = broadcast::channel(CACHE_EVENTS_BUFFERED_MAX);
        let (generation, _) = watch::channel(0);
        let shared = Arc::new(TreeShared {
            tree: RwLock::new(Tree::new()),
            events,
            generation,
        });
        shared.replace(tree);
        let task = tokio::spawn(follow_tree(
            client.clone(),
            root.to_owned(),
            watcher,
            shared.clone(),
        ));
        Ok(TreeCache {
            root: root.to_owned(),
            shared,
            task,
        })
    }

    /// The cached node at `path`.
    pub fn get(&self, path: &str) -> Option<ChildData> {
        self.shared
            .tree
            .read()
            .ok()
            .and_then(|tree| tree.get(path).cloned())
    }

    /// A copy of the whole cached subtree, by path.
    pub fn snapshot(&self) -> BTreeMap<String, ChildData> {
        self.shared
            .tree
            .read()
            .map(|tree| tree.clone())
            .unwrap_or_default()
    }

    /// The cached children names of `path`.
    pub fn children(&self, path: &str) -> Vec<String> {
        let Ok(tree) = self.shared.tree.read() else {
            return Vec::new();
        };
        subtree_keys(&tree, path)
            .into_iter()
            .filter(|key| key != path && nodes::parent_of(key) == path)
            .map(|key| nodes::node_name(&key).to_owned())
            .collect()
    }

    /// Events from now on (bounded: a subscriber that falls more than
    /// [`CACHE_EVENTS_BUFFERED_MAX`] behind is told it lagged).
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.shared.events.subscribe()
    }

    /// A counter bumped after every applied change; `changed()` on it wakes on any change.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.shared.generation.subscribe()
    }

    /// Whether the background task still follows the server (false once the session ended).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for TreeCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn refresh(client: &zk::Client, shared: &TreeShared, path: &str) -> Result<()> {
    match retry(|| client.get_data(path)).await {
        Ok((data, stat)) => {
            shared.upsert(ChildData {
                path: path.to_owned(),
                data,
                stat,
            });
            Ok(())
        }
        Err(zk::Error::NoNode) => {
            shared.remove_subtree(path);
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

async fn follow_tree(
    client: zk::Client,
    root: String,
    mut watcher: zk::PersistentWatcher,
    shared: Arc<TreeShared>,
) -> Result<()> {
    let mut resync_needed = false;
    loop {
        let event = watcher.changed().await;
        match event.event_type {
            zk::EventType::Session => match event.session_state {
                zk::SessionState::Disconnected => resync_needed = true,
                zk::SessionState::SyncConnected if resync_needed => {
                    resync_needed = false;
                    let tree = read_tree(&client, &root).await?;
                    shared.replace(tree);
                }
                state if state.is_terminated() => {
                    return Err(RecipeError::SessionEnded(zk::Error::SessionExpired));
                }
                _ => {}
            },
            zk::EventType::NodeDeleted => shared.remove_subtree(&event.path),
            zk::EventType::NodeCreated | zk::EventType::NodeDataChanged => {
                refresh(&client, &shared, &event.path).await?;
            }
            zk::EventType::NodeChildrenChanged => {}
        }
    }
}

/// A live copy of one node (Curator `NodeCache`): its data, or `None` while it does not exist.
pub struct NodeCache {
    path: String,
    current: watch::Receiver<Option<ChildData>>,
    task: JoinHandle<Result<()>>,
}

impl std::fmt::Debug for NodeCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NodeCache")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl NodeCache {
    /// Watches `path` (persistent watch), reads it, and keeps the copy current. The node need
    /// not exist.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path; ZooKeeper errors.
    pub async fn start(client: &zk::Client, path: &str) -> Result<NodeCache> {
        nodes::validate_path(path)?;
        let watcher = retry(|| client.watch(path, zk::AddWatchMode::Persistent)).await?;
        let first = read_node(client, path).await?;
        let (sender, current) = watch::channel(first);
        let task = tokio::spawn(follow_node(
            client.clone(),
            path.to_owned(),
            watcher,
            sender,
        ));
        Ok(NodeCache {
            path: path.to_owned(),
            current,
            task,
        })
    }

    /// The node as last seen.
    pub fn current(&self) -> Option<ChildData> {
        self.current.borrow().clone()
    }

    /// A live view: `changed()` on it wakes on every change of the cached copy.
    pub fn subscribe(&self) -> watch::Receiver<Option<ChildData>> {
        self.current.clone()
    }

    /// Whether the background task still follows the server.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for NodeCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_node(client: &zk::Client, path: &str) -> Result<Option<ChildData>> {
    match retry(|| client.get_data(path)).await {
        Ok((data, stat)) => Ok(Some(ChildData {
            path: path.to_owned(),
            data,
            stat,
        })),
        Err(zk::Error::NoNode) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn follow_node(
    client: zk::Client,
    path: String,
    mut watcher: zk::PersistentWatcher,
    sender: watch::Sender<Option<ChildData>>,
) -> Result<()> {
    let mut resync_needed = false;
    loop {
        let event = watcher.changed().await;
        let reread = match event.event_type {
            zk::EventType::Session => match event.session_state {
                zk::SessionState::Disconnected => {
                    resync_needed = true;
                    false
                }
                zk::SessionState::SyncConnected => std::mem::take(&mut resync_needed),
                state if state.is_terminated() => {
                    return Err(RecipeError::SessionEnded(zk::Error::SessionExpired));
                }
                _ => false,
            },
            zk::EventType::NodeChildrenChanged => false,
            _ => true,
        };
        if reread {
            let node = read_node(&client, &path).await?;
            sender.send_if_modified(|current| {
                if *current == node {
                    false
                } else {
                    *current = node;
                    true
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, mzxid: i64) -> ChildData {
        let stat = zk::Stat {
            czxid: 1,
            mzxid,
            pzxid: 1,
            ctime: 0,
            mtime: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 0,
            num_children: 0,
        };
        ChildData {
            path: path.to_owned(),
            data: Vec::new(),
            stat,
        }
    }

    #[test]
    fn diff_reports_created_changed_and_deleted() {
        let old: Tree = [node("/a", 1), node("/a/b", 1), node("/a/c", 1)]
            .into_iter()
            .map(|node| (node.path.clone(), node))
            .collect();
        let new: Tree = [node("/a", 1), node("/a/b", 2), node("/a/d", 3)]
            .into_iter()
            .map(|node| (node.path.clone(), node))
            .collect();
        let events = diff(&old, &new);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(matches!(&events[0], CacheEvent::Deleted(node) if node.path == "/a/c"));
        assert!(matches!(&events[1], CacheEvent::Changed { new, .. } if new.path == "/a/b"));
        assert!(matches!(&events[2], CacheEvent::Created(node) if node.path == "/a/d"));
    }

    #[test]
    fn subtree_keys_do_not_take_siblings_sharing_a_prefix() {
        let tree: Tree = [
            node("/a", 1),
            node("/a/b", 1),
            node("/ab", 1),
            node("/a-x", 1),
            node("/a/b/c", 1),
        ]
        .into_iter()
        .map(|node| (node.path.clone(), node))
        .collect();
        assert_eq!(subtree_keys(&tree, "/a"), ["/a", "/a/b", "/a/b/c"]);
    }
}
