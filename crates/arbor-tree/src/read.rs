//! Reads, ACL-checked where ZooKeeper 3.9's `FinalRequestProcessor` checks them. Reads look
//! nodes up by path as ZooKeeper's node map does: no path validation, `""` is the root.

use arbor_proto::{
    Acl, ErrorCode, Id, MultiOp, MultiResponse, OpResult, Response, SessionId, Stat, perms,
};
use bytes::Bytes;

use crate::acl::{check_acl, redact_digests};
use crate::node::Znode;
use crate::path::java_trim;
use crate::tree::DataTree;

impl DataTree {
    fn node(&self, path: &str) -> Result<&Znode, ErrorCode> {
        self.state.get(path).ok_or(ErrorCode::NoNode)
    }

    fn check(&self, node: &Znode, perm: i32, identities: &[Id]) -> Result<(), ErrorCode> {
        check_acl(self.state.acl_of(node), perm, identities, &self.config)
    }

    fn stat_of(&self, node: &Znode) -> Stat {
        node.stat(self.config.extended_types_enabled)
    }

    /// A node's stat, without an ACL check (for the server's own use, e.g. watch
    /// bookkeeping). Clients' `exists` goes through [`DataTree::exists_checked`].
    ///
    /// # Errors
    /// BadArguments for a path containing NUL (as `exists` answers), NoNode.
    pub fn exists(&self, path: &str) -> Result<Stat, ErrorCode> {
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        Ok(self.stat_of(self.node(path)?))
    }

    /// A client's `exists`: ZooKeeper 3.9 checks READ when the node exists.
    ///
    /// # Errors
    /// BadArguments for a path containing NUL, NoNode, NoAuth.
    pub fn exists_checked(&self, path: &str, identities: &[Id]) -> Result<Stat, ErrorCode> {
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let node = self.node(path)?;
        self.check(node, perms::READ, identities)?;
        Ok(self.stat_of(node))
    }

    /// `getData`: needs READ.
    ///
    /// # Errors
    /// NoNode, NoAuth.
    pub fn get_data(
        &self,
        path: &str,
        identities: &[Id],
    ) -> Result<(Option<Bytes>, Stat), ErrorCode> {
        let node = self.node(path)?;
        self.check(node, perms::READ, identities)?;
        Ok((node.client_data(), self.stat_of(node)))
    }

    /// `getChildren` / `getChildren2`: the children's names in byte order, and the node's
    /// stat. Needs READ.
    ///
    /// # Errors
    /// NoNode, NoAuth.
    pub fn get_children(
        &self,
        path: &str,
        identities: &[Id],
    ) -> Result<(Vec<String>, Stat), ErrorCode> {
        let (key, node) = self.state.get_entry(path).ok_or(ErrorCode::NoNode)?;
        self.check(node, perms::READ, identities)?;
        let path = key.path();
        let children = self
            .state
            .children(&path)
            .map(|(child, _)| child.name.to_string())
            .collect();
        Ok((children, self.stat_of(node)))
    }

    /// `getACL`: needs READ or ADMIN; without ADMIN, digest ids come back as `user:x`
    /// (FinalRequestProcessor, 3.9).
    ///
    /// # Errors
    /// NoNode, NoAuth.
    pub fn get_acl(&self, path: &str, identities: &[Id]) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let node = self.node(path)?;
        self.check(node, perms::READ | perms::ADMIN, identities)?;
        let acl = self.state.acl_of(node);
        let acl = if self.check(node, perms::ADMIN, identities).is_ok() {
            acl.to_vec()
        } else {
            redact_digests(acl)
        };
        Ok((acl, self.stat_of(node)))
    }

    /// `getAllChildrenNumber`: the number of descendants. Needs READ.
    ///
    /// # Errors
    /// NoNode, NoAuth.
    pub fn get_all_children_number(&self, path: &str, identities: &[Id]) -> Result<i32, ErrorCode> {
        let (key, node) = self.state.get_entry(path).ok_or(ErrorCode::NoNode)?;
        self.check(node, perms::READ, identities)?;
        let path = key.path();
        let count = if path == "/" {
            self.state.nodes.len() - 1
        } else {
            // Descendants are the keys whose parent is `path` or starts with `path/`: one
            // range for the children, one for the deeper levels ("path/" .. "path0").
            let deeper_start = format!("{path}/");
            let deeper = self
                .state
                .nodes
                .range(crate::node::KeyRef::first_child_of(&deeper_start)..)
                .take_while(|(key, _)| key.parent.starts_with(&deeper_start))
                .count();
            self.state.children(&path).count() + deeper
        };
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    /// `getEphemerals`: the session's ephemeral paths starting with `prefix` (all of them
    /// for an empty or `/` prefix, after Java's trim), sorted.
    pub fn get_ephemerals(&self, session_id: SessionId, prefix: &str) -> Vec<String> {
        let Some(session) = self.state.sessions.get(&session_id) else {
            return Vec::new();
        };
        let all = matches!(java_trim(prefix), "" | "/");
        let mut paths: Vec<String> = session
            .ephemerals
            .iter()
            .map(|key| key.path())
            .filter(|path| all || path.starts_with(prefix))
            .collect();
        paths.sort();
        paths
    }

    /// `multiRead`: each operation's own result or error, nothing all-or-nothing.
    ///
    /// # Errors
    /// MarshallingError if an operation is a write, as ZooKeeper fails the whole request
    /// when it cannot read the record ("Mixing different kind of ops").
    pub fn multi_read(&self, ops: &[MultiOp], identities: &[Id]) -> Result<Response, ErrorCode> {
        if ops.iter().any(|op| !op.is_read()) {
            return Err(ErrorCode::MarshallingError);
        }
        let results = ops
            .iter()
            .map(|op| match op {
                MultiOp::GetChildren(r) => match self.get_children(&r.path, identities) {
                    Ok((children, _)) => OpResult::GetChildren { children },
                    Err(code) => OpResult::error(code),
                },
                MultiOp::GetData(r) => match self.get_data(&r.path, identities) {
                    Ok((data, stat)) => OpResult::GetData { data, stat },
                    Err(code) => OpResult::error(code),
                },
                _ => OpResult::error(ErrorCode::MarshallingError),
            })
            .collect();
        Ok(Response::Multi(MultiResponse { results }))
    }
}
