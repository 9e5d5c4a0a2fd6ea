//! The replicated state as persistent structures (cheap to clone: a snapshot or a multi's
//! scratch copy shares everything it does not change), and the primitive mutations that keep
//! its indexes consistent. Validation is not done here: callers validate, then mutate.

use std::sync::Arc;

use arbor_proto::{Acl, SessionId, Stat};
use imbl::{OrdMap, OrdSet};
use smol_str::SmolStr;

use crate::acl::{AclId, AclTable};
use crate::ephemeral::EphemeralType;
use crate::node::{KeyRef, NodeKey, Znode, stored_data};
use crate::path::java_length;
use crate::session::Session;

/// Everything apply changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    /// Every node, the root included, by (parent path, name).
    /// Nodes are behind an `Arc` so map leaves stay small (cheaper copy-on-write after a
    /// snapshot clone, and fewer bytes per node); a write copies a shared node first.
    pub(crate) nodes: OrdMap<NodeKey, Arc<Znode>>,
    pub(crate) acls: AclTable,
    pub(crate) sessions: OrdMap<SessionId, Session>,
    /// Invariant: exactly the container nodes.
    pub(crate) containers: OrdSet<NodeKey>,
    /// Invariant: exactly the TTL nodes.
    pub(crate) ttls: OrdSet<NodeKey>,
    /// Paths under quota (ZooKeeper's quota `PathTrie`): history-dependent, so kept and
    /// snapshotted as is, not recomputed.
    pub(crate) quotas: OrdSet<Arc<str>>,
    /// Invariant: the sum of the sessions' ephemeral counts.
    pub(crate) ephemeral_count: u64,
    /// ZooKeeper's approximate data size: UTF-16 length of every path plus its data length.
    pub(crate) data_size: i64,
    /// Copied from the config: how ephemeral owners are read.
    pub(crate) extended_types_enabled: bool,
}

impl State {
    /// An empty state: no nodes at all (not even the root).
    pub(crate) fn empty(extended_types_enabled: bool) -> State {
        State {
            nodes: OrdMap::new(),
            acls: AclTable::default(),
            sessions: OrdMap::new(),
            containers: OrdSet::new(),
            ttls: OrdSet::new(),
            quotas: OrdSet::new(),
            ephemeral_count: 0,
            data_size: 0,
            extended_types_enabled,
        }
    }

    /// The node at `path`, if any.
    pub(crate) fn get(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(&KeyRef::of_path(path)?).map(|node| &**node)
    }

    /// A node to change, unshared from any snapshot first.
    fn node_mut(&mut self, key: &KeyRef<'_>) -> Option<&mut Znode> {
        self.nodes.get_mut(key).map(Arc::make_mut)
    }

    /// The node at `path` with its key.
    pub(crate) fn get_entry(&self, path: &str) -> Option<(&NodeKey, &Znode)> {
        let (key, node) = self.nodes.get_key_value(&KeyRef::of_path(path)?)?;
        Some((key, &**node))
    }

    /// The children of the node whose canonical path is `path`, in name order.
    pub(crate) fn children<'a>(
        &'a self,
        path: &'a str,
    ) -> impl Iterator<Item = (&'a NodeKey, &'a Znode)> + 'a {
        self.nodes
            .range(KeyRef::first_child_of(path)..)
            .take_while(move |(key, _)| &*key.parent == path)
            .map(|(key, node)| (key, &**node))
    }

    /// The ACL list of a node.
    pub(crate) fn acl_of(&self, node: &Znode) -> &[Acl] {
        self.acls.get(node.acl)
    }

    /// The shared ACL of the node at `path` (empty if there is none), for watch triggers.
    pub(crate) fn shared_acl_at(&self, path: &str) -> std::sync::Arc<[Acl]> {
        match self.get(path) {
            Some(node) => self.acls.get_shared(node.acl),
            None => std::sync::Arc::from(Vec::new()),
        }
    }

    /// The shared `Arc` of a parent path: a sibling's, or a new one.
    fn parent_arc(&self, parent_path: &str) -> Arc<str> {
        match self.children(parent_path).next() {
            Some((key, _)) => key.parent.clone(),
            None => Arc::from(parent_path),
        }
    }

    /// Inserts the root or a system node during construction (no parent bookkeeping beyond
    /// the child count).
    pub(crate) fn insert_system_node(&mut self, path: &str, acl: &[Acl]) {
        let acl = self.acls.acquire(acl);
        if path == "/" {
            self.nodes
                .insert(NodeKey::root(), Arc::new(Znode::system(acl)));
            self.data_size += 1;
            return;
        }
        let key = self.key_for_new(path);
        let parent = self.node_mut(&KeyRef::of_path(&key.parent).unwrap_or(ROOT_KEY));
        let parent = parent.unwrap_or_else(|| panic!("system node {path} has no parent"));
        parent.num_children += 1;
        self.data_size += java_length(path) as i64;
        self.nodes.insert(key, Arc::new(Znode::system(acl)));
    }

    fn key_for_new(&self, path: &str) -> NodeKey {
        let key = KeyRef::of_path(path)
            .unwrap_or_else(|| panic!("new node path {path:?} is not canonical"));
        NodeKey {
            parent: self.parent_arc(key.parent),
            name: SmolStr::new(key.name),
        }
    }

    /// Adds a child under an existing parent: the parent's cversion goes up by one
    /// (wrapping, as Java's int), its pzxid becomes `zxid` (`DataTree.createNode`).
    ///
    /// # Panics
    /// If the parent is missing or the node exists: the caller validated both.
    pub(crate) fn insert_child(&mut self, path: &str, node: Znode, zxid: i64) -> NodeKey {
        let key = self.key_for_new(path);
        assert!(
            !self.nodes.contains_key(&key.as_ref()),
            "create of existing node {path}"
        );
        let parent = self.node_mut(&parent_key(&key));
        let parent = parent.unwrap_or_else(|| panic!("create of {path} under a missing parent"));
        parent.cversion = parent.cversion.wrapping_add(1);
        parent.pzxid = zxid;
        parent.num_children += 1;
        self.data_size += java_length(path) as i64 + node.data().len() as i64;
        self.register(&key, node.ephemeral_owner);
        let data_len = node.data().len();
        self.nodes.insert(key.clone(), Arc::new(node));
        self.quota_after_create(&key.parent, &key.name, path, data_len);
        key
    }

    /// Removes a childless node: the parent's pzxid moves up to `zxid` (never back, as
    /// `DataTree.deleteNode`), its cversion is unchanged (clients see it rise through the
    /// child count), the node's ACL reference and index entries go.
    ///
    /// # Panics
    /// If the node is missing or has children: the caller validated both.
    pub(crate) fn remove_node(&mut self, key: &NodeKey, zxid: i64) -> Arc<Znode> {
        let node = self.nodes.remove(&key.as_ref());
        let node = node.unwrap_or_else(|| panic!("delete of missing node {}", key.path()));
        assert_eq!(
            node.num_children,
            0,
            "delete of {} with children",
            key.path()
        );
        let parent = self.node_mut(&parent_key(key));
        let parent = parent.unwrap_or_else(|| panic!("node {} had no parent", key.path()));
        parent.num_children -= 1;
        if zxid > parent.pzxid {
            parent.pzxid = zxid;
        }
        self.data_size -= java_length(&key.path()) as i64 + node.data().len() as i64;
        self.unregister(key, node.ephemeral_owner);
        self.acls.release(node.acl);
        self.quota_after_delete(&key.parent, &key.name, &key.path(), node.data().len());
        node
    }

    /// Replaces a node's data and stamps the write (`DataTree.setData`); returns its stat.
    pub(crate) fn set_data(
        &mut self,
        key: &NodeKey,
        data: Option<&[u8]>,
        version: i32,
        zxid: i64,
        time_ms: i64,
    ) -> Stat {
        let node = self.nodes.get_mut(&key.as_ref()).map(Arc::make_mut);
        let node = node.unwrap_or_else(|| panic!("setData of missing node {}", key.path()));
        let old_len = node.data().len();
        let data_null = data.is_none();
        let data = data.unwrap_or_default();
        self.data_size += data.len() as i64 - old_len as i64;
        node.data = stored_data(data);
        node.data_null = data_null;
        node.mtime = time_ms;
        node.mzxid = zxid;
        node.version = version;
        // The reply's stat is taken before the quota bookkeeping, as DataTree.setData does.
        let stat = node.stat(self.extended_types_enabled);
        self.quota_after_set_data(&key.path(), old_len, data.len());
        stat
    }

    /// Replaces a node's ACL (`DataTree.setACL`).
    pub(crate) fn set_acl(&mut self, key: &NodeKey, acl: &[Acl], aversion: i32) -> &Znode {
        let new_acl = self.acls.acquire(acl);
        let node = self.node_mut(&key.as_ref());
        let node = node.unwrap_or_else(|| panic!("setACL of missing node {}", key.path()));
        let old_acl = std::mem::replace(&mut node.acl, new_acl);
        node.aversion = aversion;
        self.acls.release(old_acl);
        self.nodes
            .get(&key.as_ref())
            .map(|node| &**node)
            .unwrap_or_else(|| panic!("setACL lost node {}", key.path()))
    }

    /// Takes an ACL reference for a node about to be inserted.
    pub(crate) fn acquire_acl(&mut self, acl: &[Acl]) -> AclId {
        self.acls.acquire(acl)
    }

    /// Adds a node to the container, TTL or session index its owner puts it in.
    pub(crate) fn register(&mut self, key: &NodeKey, ephemeral_owner: i64) {
        match EphemeralType::of(ephemeral_owner, self.extended_types_enabled) {
            EphemeralType::Persistent => {}
            EphemeralType::Container => {
                self.containers.insert(key.clone());
            }
            EphemeralType::Ttl(_) => {
                self.ttls.insert(key.clone());
            }
            EphemeralType::Session(session_id) => {
                let session = self.sessions.get_mut(&session_id);
                let session = session.unwrap_or_else(|| {
                    panic!("ephemeral {} for missing session {session_id}", key.path())
                });
                session.ephemerals.insert(key.clone());
                self.ephemeral_count += 1;
            }
        }
    }

    fn unregister(&mut self, key: &NodeKey, ephemeral_owner: i64) {
        match EphemeralType::of(ephemeral_owner, self.extended_types_enabled) {
            EphemeralType::Persistent => {}
            EphemeralType::Container => {
                self.containers.remove(key);
            }
            EphemeralType::Ttl(_) => {
                self.ttls.remove(key);
            }
            EphemeralType::Session(session_id) => {
                if let Some(session) = self.sessions.get_mut(&session_id)
                    && session.ephemerals.remove(key).is_some()
                {
                    self.ephemeral_count -= 1;
                }
            }
        }
    }
}

const ROOT_KEY: KeyRef<'static> = KeyRef {
    parent: "",
    name: "",
};

/// The key of a node's parent.
fn parent_key(key: &NodeKey) -> KeyRef<'_> {
    KeyRef::of_path(&key.parent).unwrap_or(ROOT_KEY)
}
