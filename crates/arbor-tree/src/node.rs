//! A znode and its key in the ordered map.
//!
//! Nodes live in one persistent ordered map keyed by (parent path, child name), so a node's
//! children are one contiguous range and no node keeps a child set. Every child of a parent
//! shares one `Arc<str>` of the parent's path, and short names are stored inline.

use std::cmp::Ordering;
use std::sync::Arc;

use arbor_proto::Stat;
use equivalent::{Comparable, Equivalent};
use smol_str::SmolStr;

use crate::acl::AclId;
use crate::ephemeral::EphemeralType;

/// Where a node sits: its parent's full path (`"/"` for children of the root) and its name.
/// The root itself is `("", "")`, which sorts before everything.
///
/// Invariant: `parent` is the canonical path of an existing node (or `""` for the root), and
/// `name` is non-empty except for the root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct NodeKey {
    pub(crate) parent: Arc<str>,
    pub(crate) name: SmolStr,
}

impl NodeKey {
    /// The root's key.
    pub(crate) fn root() -> NodeKey {
        NodeKey {
            parent: Arc::from(""),
            name: SmolStr::default(),
        }
    }

    /// The full path.
    pub(crate) fn path(&self) -> String {
        self.as_ref().path()
    }

    /// A borrowed view, for comparisons with lookup keys.
    pub(crate) fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            parent: &self.parent,
            name: &self.name,
        }
    }
}

impl Ord for NodeKey {
    fn cmp(&self, other: &NodeKey) -> Ordering {
        self.as_ref().cmp(&other.as_ref())
    }
}

impl PartialOrd for NodeKey {
    fn partial_cmp(&self, other: &NodeKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A borrowed [`NodeKey`], for lookups without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyRef<'a> {
    pub(crate) parent: &'a str,
    pub(crate) name: &'a str,
}

impl<'a> KeyRef<'a> {
    /// The key of the node at `path`, if `path` is canonical enough to name one: `"/"` and
    /// ZooKeeper's alias `""` are the root; a path with an empty name, a doubled slash
    /// before the name, or no slash at all names nothing.
    pub(crate) fn of_path(path: &'a str) -> Option<KeyRef<'a>> {
        if path.is_empty() || path == "/" {
            return Some(KeyRef {
                parent: "",
                name: "",
            });
        }
        let (parent, name) = crate::path::split_last_slash(path)?;
        if name.is_empty() {
            return None;
        }
        let parent = if parent.is_empty() {
            "/"
        } else if parent.ends_with('/') {
            return None;
        } else {
            parent
        };
        Some(KeyRef { parent, name })
    }

    /// The full path.
    pub(crate) fn path(&self) -> String {
        match self.parent {
            "" => "/".to_owned(),
            "/" => format!("/{}", self.name),
            parent => format!("{parent}/{}", self.name),
        }
    }

    /// The first possible key of the children of the node at `path` (its children's
    /// `parent` is `path` itself).
    pub(crate) fn first_child_of(path: &'a str) -> KeyRef<'a> {
        KeyRef {
            parent: path,
            name: "",
        }
    }
}

impl Equivalent<NodeKey> for KeyRef<'_> {
    fn equivalent(&self, key: &NodeKey) -> bool {
        *self == key.as_ref()
    }
}

impl Comparable<NodeKey> for KeyRef<'_> {
    fn compare(&self, key: &NodeKey) -> Ordering {
        self.cmp(&key.as_ref())
    }
}

/// One znode: data, ACL reference and the persisted part of its `Stat` (ZooKeeper's
/// `DataNode` + `StatPersisted`), laid out to keep map entries small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Znode {
    /// The data; `None` when empty.
    pub(crate) data: Option<Arc<[u8]>>,
    /// Whether the client wrote null data rather than bytes: ZooKeeper reads such a node
    /// back as null (`DataNode.data == null`), which clients show as `None`/`null`.
    pub(crate) data_null: bool,
    pub(crate) czxid: i64,
    pub(crate) mzxid: i64,
    pub(crate) pzxid: i64,
    pub(crate) ctime: i64,
    pub(crate) mtime: i64,
    /// Session, container or TTL marker, as `EphemeralType` encodes it.
    pub(crate) ephemeral_owner: i64,
    pub(crate) version: i32,
    /// Number of children ever created here (ZooKeeper's stored cversion): the next
    /// sequential suffix. Clients see `2 × cversion − numChildren` (creates plus deletes).
    pub(crate) cversion: i32,
    pub(crate) aversion: i32,
    pub(crate) acl: AclId,
    /// Invariant: equals the number of keys whose `parent` is this node's path.
    pub(crate) num_children: i32,
}

impl Znode {
    /// A new node as `DataTree.createStat` stamps it.
    pub(crate) fn new(
        data: Option<&[u8]>,
        acl: AclId,
        ephemeral_owner: i64,
        zxid: i64,
        time_ms: i64,
    ) -> Znode {
        Znode {
            data: stored_data(data.unwrap_or_default()),
            data_null: data.is_none(),
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            ephemeral_owner,
            version: 0,
            cversion: 0,
            aversion: 0,
            acl,
            num_children: 0,
        }
    }

    /// One of the nodes ZooKeeper's `DataTree` constructor makes: an all-zero stat.
    pub(crate) fn system(acl: AclId) -> Znode {
        Znode::new(Some(&[]), acl, 0, 0, 0)
    }

    /// The data, empty when none.
    pub(crate) fn data(&self) -> &[u8] {
        self.data.as_deref().unwrap_or_default()
    }

    /// The data as a reply carries it: `None` for null data.
    pub(crate) fn client_data(&self) -> Option<bytes::Bytes> {
        if self.data_null {
            return None;
        }
        Some(match &self.data {
            Some(data) => bytes::Bytes::from_owner(data.clone()),
            None => bytes::Bytes::new(),
        })
    }

    /// The client's view (`DataNode.copyStat`).
    pub(crate) fn stat(&self, extended_types_enabled: bool) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            // "when we do the Cversion we need to translate from the count of the creates to
            // the count of the changes" (DataNode.copyStat), in Java's wrapping int arithmetic.
            cversion: self
                .cversion
                .wrapping_mul(2)
                .wrapping_sub(self.num_children),
            aversion: self.aversion,
            ephemeral_owner: EphemeralType::client_owner(
                self.ephemeral_owner,
                extended_types_enabled,
            ),
            data_length: self.data().len() as i32,
            num_children: self.num_children,
            pzxid: self.pzxid,
        }
    }

    /// What the stored owner means.
    pub(crate) fn kind(&self, extended_types_enabled: bool) -> EphemeralType {
        EphemeralType::of(self.ephemeral_owner, extended_types_enabled)
    }
}

/// Data as stored: empty data takes no allocation.
pub(crate) fn stored_data(data: &[u8]) -> Option<Arc<[u8]>> {
    if data.is_empty() {
        None
    } else {
        Some(Arc::from(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_paths() {
        assert_eq!(
            KeyRef::of_path("/"),
            Some(KeyRef {
                parent: "",
                name: ""
            })
        );
        assert_eq!(
            KeyRef::of_path(""),
            Some(KeyRef {
                parent: "",
                name: ""
            })
        );
        assert_eq!(
            KeyRef::of_path("/a"),
            Some(KeyRef {
                parent: "/",
                name: "a"
            })
        );
        assert_eq!(
            KeyRef::of_path("/a/b"),
            Some(KeyRef {
                parent: "/a",
                name: "b"
            })
        );
        assert_eq!(KeyRef::of_path("//a"), None);
        assert_eq!(KeyRef::of_path("/a//b"), None);
        assert_eq!(KeyRef::of_path("/a/"), None);
        assert_eq!(KeyRef::of_path("a"), None);
        for path in ["/", "/a", "/a/b", "/a/b/c"] {
            assert_eq!(KeyRef::of_path(path).unwrap().path(), path);
        }
    }

    #[test]
    fn parents_sort_before_their_children() {
        let mut keys: Vec<NodeKey> = ["/", "/a", "/a/b", "/a-b", "/a/b/c", "/b", "/a!"]
            .iter()
            .map(|path| {
                let key = KeyRef::of_path(path).unwrap();
                NodeKey {
                    parent: Arc::from(key.parent),
                    name: SmolStr::new(key.name),
                }
            })
            .collect();
        keys.sort();
        let position = |path: &str| keys.iter().position(|k| k.path() == path).unwrap();
        assert!(position("/") < position("/a"));
        assert!(position("/a") < position("/a/b"));
        assert!(position("/a/b") < position("/a/b/c"));
    }

    #[test]
    fn client_cversion_counts_creates_and_deletes() {
        let mut node = Znode::system(AclId(0));
        node.cversion = 5; // five creates
        node.num_children = 2; // three deleted
        assert_eq!(node.stat(true).cversion, 8);
        node.cversion = i32::MAX;
        node.num_children = 0;
        assert_eq!(node.stat(true).cversion, -2);
    }

    #[test]
    fn entries_stay_small() {
        assert!(
            std::mem::size_of::<Znode>() <= 88,
            "{}",
            std::mem::size_of::<Znode>()
        );
        assert!(
            std::mem::size_of::<NodeKey>() <= 40,
            "{}",
            std::mem::size_of::<NodeKey>()
        );
    }
}
