//! The watch table of one server. Watches are local to the server that holds the connection
//! and are never replicated: the applied state hands us triggers and we fan them out.
//!
//! ZooKeeper keeps two tables, data watches (set by `getData` and `exists`) and child watches
//! (set by `getChildren`); persistent watches sit in both and survive firing; recursive ones
//! also fire for every descendant, except for `NodeChildrenChanged`
//! (`WatchManager.triggerWatch` in ZooKeeper).

use std::collections::{BTreeSet, HashMap};

use arbor_proto::{EventType, WatcherType};

/// Identifies a client connection on this server.
pub type ConnectionId = u64;

/// The kinds of watch a connection can hold on a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    /// One-shot data watch (from getData, or exists on any path).
    Data,
    /// One-shot child watch (from getChildren).
    Child,
    /// Persistent watch on the node itself (addWatch mode 0).
    Persistent,
    /// Persistent watch on the node and all its descendants (addWatch mode 1).
    PersistentRecursive,
}

/// One notification to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Who gets it.
    pub connection: ConnectionId,
    /// What happened.
    pub event: EventType,
    /// To which node.
    pub path: String,
}

/// All watches on this server, indexed both ways so a disconnect is cheap.
#[derive(Debug, Default)]
pub struct WatchManager {
    by_path: HashMap<String, BTreeSet<(ConnectionId, WatchKind)>>,
    by_connection: HashMap<ConnectionId, BTreeSet<(String, WatchKind)>>,
    recursive_count: usize,
    watch_count: usize,
}

impl WatchManager {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total watches held (ZooKeeper's `zk_watch_count`).
    pub fn watch_count(&self) -> usize {
        self.watch_count
    }

    /// Number of watched paths.
    pub fn path_count(&self) -> usize {
        self.by_path.len()
    }

    /// Number of connections holding at least one watch.
    pub fn connection_count(&self) -> usize {
        self.by_connection.len()
    }

    /// Watches held by one connection.
    pub fn connection_watch_count(&self, connection: ConnectionId) -> usize {
        self.by_connection.get(&connection).map_or(0, BTreeSet::len)
    }

    /// Adds a watch. Adding one that exists already changes nothing.
    pub fn add(&mut self, connection: ConnectionId, path: &str, kind: WatchKind) {
        let inserted = self
            .by_path
            .entry(path.to_owned())
            .or_default()
            .insert((connection, kind));
        if inserted {
            self.by_connection
                .entry(connection)
                .or_default()
                .insert((path.to_owned(), kind));
            self.watch_count += 1;
            if kind == WatchKind::PersistentRecursive {
                self.recursive_count += 1;
            }
        }
    }

    /// Whether the connection holds a watch of `kind` on `path`.
    pub fn contains(&self, connection: ConnectionId, path: &str, kind: WatchKind) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|set| set.contains(&(connection, kind)))
    }

    fn remove_one(&mut self, connection: ConnectionId, path: &str, kind: WatchKind) -> bool {
        let Some(set) = self.by_path.get_mut(path) else {
            return false;
        };
        if !set.remove(&(connection, kind)) {
            return false;
        }
        if set.is_empty() {
            self.by_path.remove(path);
        }
        if let Some(paths) = self.by_connection.get_mut(&connection) {
            paths.remove(&(path.to_owned(), kind));
            if paths.is_empty() {
                self.by_connection.remove(&connection);
            }
        }
        self.watch_count -= 1;
        if kind == WatchKind::PersistentRecursive {
            self.recursive_count -= 1;
        }
        true
    }

    fn kinds_for(watcher_type: WatcherType) -> &'static [WatchKind] {
        match watcher_type {
            WatcherType::Children => &[WatchKind::Child],
            WatcherType::Data => &[WatchKind::Data],
            WatcherType::Persistent => &[WatchKind::Persistent],
            WatcherType::PersistentRecursive => &[WatchKind::PersistentRecursive],
            WatcherType::Any => &[
                WatchKind::Data,
                WatchKind::Child,
                WatchKind::Persistent,
                WatchKind::PersistentRecursive,
            ],
        }
    }

    /// `checkWatches`: whether the connection holds a watch of this type on the path.
    pub fn check(&self, connection: ConnectionId, path: &str, watcher_type: WatcherType) -> bool {
        Self::kinds_for(watcher_type)
            .iter()
            .any(|&kind| self.contains(connection, path, kind))
    }

    /// `removeWatches`: removes the connection's watches of this type on the path; false if
    /// there were none (the caller answers NoWatcher).
    pub fn remove(
        &mut self,
        connection: ConnectionId,
        path: &str,
        watcher_type: WatcherType,
    ) -> bool {
        let mut removed = false;
        for &kind in Self::kinds_for(watcher_type) {
            removed |= self.remove_one(connection, path, kind);
        }
        removed
    }

    /// Drops every watch of a connection (it closed, or its session ended).
    pub fn remove_connection(&mut self, connection: ConnectionId) {
        let Some(paths) = self.by_connection.remove(&connection) else {
            return;
        };
        for (path, kind) in paths {
            if let Some(set) = self.by_path.get_mut(&path) {
                set.remove(&(connection, kind));
                if set.is_empty() {
                    self.by_path.remove(&path);
                }
            }
            self.watch_count -= 1;
            if kind == WatchKind::PersistentRecursive {
                self.recursive_count -= 1;
            }
        }
    }

    /// Fires the watches a change triggers, appending one notification per connection at most
    /// (a connection watching a node both ways hears of its deletion once, as in ZooKeeper).
    pub fn trigger(&mut self, path: &str, event: EventType, out: &mut Vec<Notification>) {
        let first = out.len();
        let notify = |connection: ConnectionId, out: &mut Vec<Notification>| {
            if !out[first..].iter().any(|n| n.connection == connection) {
                out.push(Notification {
                    connection,
                    event,
                    path: path.to_owned(),
                });
            }
        };
        let one_shot: &[WatchKind] = match event {
            EventType::NodeCreated | EventType::NodeDataChanged => &[WatchKind::Data],
            EventType::NodeDeleted => &[WatchKind::Data, WatchKind::Child],
            EventType::NodeChildrenChanged => &[WatchKind::Child],
            _ => &[],
        };
        let mut fired_one_shot = Vec::new();
        if let Some(set) = self.by_path.get(path) {
            for &(connection, kind) in set {
                let fires = one_shot.contains(&kind)
                    || kind == WatchKind::Persistent
                    || (kind == WatchKind::PersistentRecursive
                        && event != EventType::NodeChildrenChanged);
                if fires {
                    notify(connection, out);
                    if one_shot.contains(&kind) {
                        fired_one_shot.push((connection, kind));
                    }
                }
            }
        }
        for (connection, kind) in fired_one_shot {
            self.remove_one(connection, path, kind);
        }
        if self.recursive_count > 0 && event != EventType::NodeChildrenChanged {
            let mut ancestor = path;
            while let Some(index) = ancestor.rfind('/') {
                ancestor = if index == 0 { "/" } else { &ancestor[..index] };
                if ancestor == path {
                    break;
                }
                if let Some(set) = self.by_path.get(ancestor) {
                    for &(connection, kind) in set {
                        if kind == WatchKind::PersistentRecursive {
                            notify(connection, out);
                        }
                    }
                }
                if ancestor == "/" {
                    break;
                }
            }
        }
    }

    /// Every watched path of a connection with its kinds, for `wchc`.
    pub fn paths_of(&self, connection: ConnectionId) -> Vec<(String, WatchKind)> {
        self.by_connection
            .get(&connection)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every watched path with the connections watching it, sorted, for `wchp`.
    pub fn watchers_by_path(&self) -> Vec<(String, Vec<ConnectionId>)> {
        let mut rows: Vec<(String, Vec<ConnectionId>)> = self
            .by_path
            .iter()
            .map(|(path, set)| {
                let mut connections: Vec<ConnectionId> = set.iter().map(|&(c, _)| c).collect();
                connections.dedup();
                (path.clone(), connections)
            })
            .collect();
        rows.sort();
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(
        manager: &mut WatchManager,
        path: &str,
        event: EventType,
    ) -> Vec<(ConnectionId, String)> {
        let mut out = Vec::new();
        manager.trigger(path, event, &mut out);
        out.into_iter().map(|n| (n.connection, n.path)).collect()
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut manager = WatchManager::new();
        manager.add(1, "/a", WatchKind::Data);
        assert_eq!(
            fire(&mut manager, "/a", EventType::NodeDataChanged),
            vec![(1, "/a".into())]
        );
        assert!(fire(&mut manager, "/a", EventType::NodeDataChanged).is_empty());
        assert_eq!(manager.watch_count(), 0);
    }

    #[test]
    fn deletion_fires_data_and_child_watches_once_per_connection() {
        let mut manager = WatchManager::new();
        manager.add(1, "/a", WatchKind::Data);
        manager.add(1, "/a", WatchKind::Child);
        manager.add(2, "/a", WatchKind::Child);
        let fired = fire(&mut manager, "/a", EventType::NodeDeleted);
        assert_eq!(fired, vec![(1, "/a".into()), (2, "/a".into())]);
        assert_eq!(manager.watch_count(), 0);
    }

    #[test]
    fn child_watches_ignore_data_changes() {
        let mut manager = WatchManager::new();
        manager.add(1, "/a", WatchKind::Child);
        assert!(fire(&mut manager, "/a", EventType::NodeDataChanged).is_empty());
        assert_eq!(
            fire(&mut manager, "/a", EventType::NodeChildrenChanged).len(),
            1
        );
    }

    #[test]
    fn persistent_watches_stay_and_see_children_changes() {
        let mut manager = WatchManager::new();
        manager.add(1, "/a", WatchKind::Persistent);
        for event in [
            EventType::NodeDataChanged,
            EventType::NodeChildrenChanged,
            EventType::NodeDeleted,
        ] {
            assert_eq!(fire(&mut manager, "/a", event).len(), 1);
        }
        assert_eq!(manager.watch_count(), 1);
        assert!(fire(&mut manager, "/a/b", EventType::NodeCreated).is_empty());
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_children_changed() {
        let mut manager = WatchManager::new();
        manager.add(1, "/", WatchKind::PersistentRecursive);
        manager.add(2, "/a", WatchKind::PersistentRecursive);
        assert_eq!(
            fire(&mut manager, "/a/b/c", EventType::NodeCreated).len(),
            2
        );
        assert_eq!(
            fire(&mut manager, "/a", EventType::NodeDataChanged).len(),
            2
        );
        assert!(fire(&mut manager, "/a", EventType::NodeChildrenChanged).is_empty());
        assert_eq!(
            fire(&mut manager, "/b", EventType::NodeDeleted),
            vec![(1, "/b".into())]
        );
    }

    #[test]
    fn recursive_and_one_shot_on_same_connection_notify_once() {
        let mut manager = WatchManager::new();
        manager.add(1, "/a", WatchKind::PersistentRecursive);
        manager.add(1, "/a/b", WatchKind::Data);
        assert_eq!(
            fire(&mut manager, "/a/b", EventType::NodeDataChanged).len(),
            1
        );
        assert!(!manager.contains(1, "/a/b", WatchKind::Data));
    }

    #[test]
    fn remove_and_check_by_type() {
        let mut manager = WatchManager::new();
        manager.add(1, "/a", WatchKind::Data);
        manager.add(1, "/a", WatchKind::Child);
        assert!(manager.check(1, "/a", WatcherType::Data));
        assert!(!manager.check(1, "/a", WatcherType::Persistent));
        assert!(manager.remove(1, "/a", WatcherType::Children));
        assert!(!manager.remove(1, "/a", WatcherType::Children));
        assert!(manager.check(1, "/a", WatcherType::Any));
        assert!(manager.remove(1, "/a", WatcherType::Any));
        assert_eq!(manager.watch_count(), 0);
        assert_eq!(manager.path_count(), 0);
    }

    #[test]
    fn disconnect_drops_everything_of_that_connection() {
        let mut manager = WatchManager::new();
        manager.add(1, "/a", WatchKind::Data);
        manager.add(1, "/b", WatchKind::PersistentRecursive);
        manager.add(2, "/a", WatchKind::Data);
        manager.remove_connection(1);
        assert_eq!(manager.watch_count(), 1);
        assert_eq!(fire(&mut manager, "/b/c", EventType::NodeCreated), vec![]);
        assert_eq!(
            fire(&mut manager, "/a", EventType::NodeDeleted),
            vec![(2, "/a".into())]
        );
    }
}
