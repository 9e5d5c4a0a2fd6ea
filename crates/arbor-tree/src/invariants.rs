//! A full consistency check of the state, for tests and debugging (O(n)).

use std::collections::BTreeMap;

use arbor_proto::SessionId;

use crate::acl::AclId;
use crate::ephemeral::EphemeralType;
use crate::node::KeyRef;
use crate::path::java_length;
use crate::tree::DataTree;

impl DataTree {
    /// Recomputes everything derived (child counts, the container, TTL and per-session
    /// ephemeral indexes, ACL reference counts, counters) and compares it with what the tree
    /// maintains incrementally. O(n); meant for tests and debugging.
    ///
    /// # Panics
    /// On the first violated invariant, naming it.
    pub fn assert_invariants(&self) {
        let state = &self.state;
        let extended = state.extended_types_enabled;
        let root = KeyRef {
            parent: "",
            name: "",
        };
        assert!(state.nodes.contains_key(&root), "the root is missing");
        let mut children: BTreeMap<String, i32> = BTreeMap::new();
        let mut acl_references: BTreeMap<AclId, u64> = BTreeMap::new();
        let mut ephemerals: BTreeMap<SessionId, usize> = BTreeMap::new();
        let (mut containers, mut ttls, mut data_size) = (0, 0, 0i64);
        for (key, node) in &state.nodes {
            let path = key.path();
            data_size += java_length(&path) as i64 + node.data().len() as i64;
            *acl_references.entry(node.acl).or_default() += 1;
            if key.as_ref() != root {
                *children.entry(key.parent.to_string()).or_default() += 1;
                let parent = KeyRef::of_path(&key.parent).and_then(|p| state.nodes.get(&p));
                assert!(parent.is_some(), "{path} has no parent");
            }
            match node.kind(extended) {
                EphemeralType::Persistent => {}
                EphemeralType::Container => {
                    containers += 1;
                    assert!(
                        state.containers.contains(key),
                        "container {path} not indexed"
                    );
                }
                EphemeralType::Ttl(_) => {
                    ttls += 1;
                    assert!(state.ttls.contains(key), "ttl node {path} not indexed");
                }
                EphemeralType::Session(session_id) => {
                    *ephemerals.entry(session_id).or_default() += 1;
                    let session = state.sessions.get(&session_id);
                    assert!(
                        session.is_some_and(|s| s.ephemerals.contains(key)),
                        "ephemeral {path} not indexed under its session {session_id}"
                    );
                    assert_eq!(node.num_children, 0, "ephemeral {path} has children");
                }
            }
        }
        for (key, node) in &state.nodes {
            let path = key.path();
            let expected = children.get(&path).copied().unwrap_or(0);
            assert_eq!(node.num_children, expected, "child count of {path}");
        }
        assert_eq!(state.containers.len(), containers, "container index size");
        assert_eq!(state.ttls.len(), ttls, "ttl index size");
        for (session_id, session) in &state.sessions {
            let expected = ephemerals.get(session_id).copied().unwrap_or(0);
            assert_eq!(
                session.ephemerals.len(),
                expected,
                "ephemerals of {session_id}"
            );
        }
        let total: usize = ephemerals.values().sum();
        assert_eq!(state.ephemeral_count, total as u64, "ephemeral count");
        assert_eq!(state.data_size, data_size, "approximate data size");
        let table: BTreeMap<AclId, u64> = state
            .acls
            .entries()
            .map(|(id, _, references)| (id, references))
            .collect();
        assert_eq!(table, acl_references, "acl reference counts");
    }
}
