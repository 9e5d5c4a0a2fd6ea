//! Node-level building blocks every recipe shares: paths, retries on connection loss,
//! parents created as containers, Curator's "protected" creation, and sorting of sequential
//! children by their sequence suffix.

use std::future::Future;

use zookeeper_client as zk;

use crate::error::{RecipeError, Result};

/// Curator's protected-name prefix: a node created in protected mode is named
/// `_c_<uuid>-<name>` (Curator `ProtectedUtils.PROTECTED_PREFIX`).
pub const PROTECTED_PREFIX: &str = "_c_";

/// Length of `_c_` + a canonical UUID (36 characters) + `-`.
const PROTECTED_PREFIX_WITH_UUID_LEN: usize = 3 + 36 + 1;

/// Times an operation is re-sent after [`zk::Error::ConnectionLoss`] before the recipe gives
/// up. Requests made while disconnected wait in the client for the next connection, so each
/// retry costs at most one reconnection; the session's own timeout ends the loop much sooner
/// in practice (the client turns a session it cannot resume into `SessionExpired`).
pub const CONNECTION_LOSS_RETRIES_MAX: u32 = 1_000;

/// Times a create is retried after its parent vanished (a container parent can be removed
/// by the server between our `mkdir` and our `create`).
pub const PARENT_CREATE_ATTEMPTS_MAX: u32 = 16;

/// `world:anyone` with every permission, what Curator uses by default.
pub(crate) fn open_acls() -> zk::Acls<'static> {
    zk::Acls::anyone_all()
}

/// `parent/name`, without doubling the slash under the root.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// The last component of a path (`/a/b` -> `b`).
pub fn node_name(path: &str) -> &str {
    match path.rfind('/') {
        Some(index) => &path[index + 1..],
        None => path,
    }
}

/// The parent of a path (`/a/b` -> `/a`, `/a` -> `/`).
pub fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(index) => &path[..index],
    }
}

/// Checks that `path` is an absolute ZooKeeper path that is not the root and has no empty,
/// `.` or `..` component and no trailing slash.
///
/// # Errors
/// [`RecipeError::InvalidArgument`] naming the problem.
pub fn validate_path(path: &str) -> Result<()> {
    if !path.starts_with('/') {
        return Err(RecipeError::InvalidArgument("path must start with '/'"));
    }
    if path == "/" {
        return Err(RecipeError::InvalidArgument(
            "a recipe cannot use the root as its path",
        ));
    }
    if path.ends_with('/') {
        return Err(RecipeError::InvalidArgument("path must not end with '/'"));
    }
    for component in path[1..].split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err(RecipeError::InvalidArgument(
                "path has an empty, '.' or '..' component",
            ));
        }
    }
    Ok(())
}

/// Runs `operation` again while it fails with [`zk::Error::ConnectionLoss`]. Only for
/// operations that are idempotent (reads, deletes, unconditional creates whose `NodeExists`
/// the caller accepts).
pub(crate) async fn retry<T, F, Fut>(mut operation: F) -> std::result::Result<T, zk::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, zk::Error>>,
{
    let mut attempts = 0;
    loop {
        match operation().await {
            Err(zk::Error::ConnectionLoss) if attempts < CONNECTION_LOSS_RETRIES_MAX => {
                attempts += 1;
            }
            result => return result,
        }
    }
}

/// Creates every missing ancestor of `path` (not `path` itself) as a container node, like
/// Curator's `creatingParentContainersIfNeeded`: the server removes them again once empty.
pub(crate) async fn ensure_parents(client: &zk::Client, path: &str) -> Result<()> {
    let parent = parent_of(path);
    if parent == "/" {
        return Ok(());
    }
    ensure_path(client, parent, zk::CreateMode::Container).await
}

/// Creates `path` and its missing ancestors with `mode` (ancestors as containers when `mode`
/// is a container, otherwise persistent). An existing node is fine.
pub(crate) async fn ensure_path(
    client: &zk::Client,
    path: &str,
    mode: zk::CreateMode,
) -> Result<()> {
    let options = mode.with_acls(open_acls());
    // Walk down from the first component: each create is idempotent (NodeExists accepted).
    let mut end = 0;
    while end < path.len() {
        end = match path[end + 1..].find('/') {
            Some(offset) => end + 1 + offset,
            None => path.len(),
        };
        let prefix = &path[..end];
        match retry(|| client.create(prefix, &[], &options)).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// A node created in Curator's protected mode: where it is and under which prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProtectedNode {
    /// Full path, sequence suffix included.
    pub path: String,
    /// Whether a connection loss hit the create: a duplicate with our prefix may then
    /// appear later (see [`find_protected`]).
    pub lost_reply: bool,
}

/// Whether a child name carries Curator's protected prefix (`_c_` + a UUID + `-`).
pub fn is_protected_name(name: &str) -> bool {
    name.len() > PROTECTED_PREFIX_WITH_UUID_LEN
        && name.starts_with(PROTECTED_PREFIX)
        && name.as_bytes()[PROTECTED_PREFIX_WITH_UUID_LEN - 1] == b'-'
        && uuid::Uuid::parse_str(&name[PROTECTED_PREFIX.len()..PROTECTED_PREFIX_WITH_UUID_LEN - 1])
            .is_ok()
}

/// The protected prefix (`_c_<uuid>-`) of a protected name.
pub fn protected_prefix(name: &str) -> Option<&str> {
    is_protected_name(name).then(|| &name[..PROTECTED_PREFIX_WITH_UUID_LEN])
}

/// A name with its protected prefix removed (Curator `ProtectedUtils.normalize`).
pub fn strip_protected_prefix(name: &str) -> &str {
    if is_protected_name(name) {
        &name[PROTECTED_PREFIX_WITH_UUID_LEN..]
    } else {
        name
    }
}

/// Creates an ephemeral (sequential or not) node `parent/_c_<uuid>-<name>` the way Curator's
/// `create().creatingParentContainersIfNeeded().withProtection()` does: missing parents are
/// created as containers, and when the connection drops before the reply arrives the node is
/// looked for among the children by its unique prefix (and checked to be owned by our session)
/// instead of being created twice, so a lost reply never leaks a node that would block a lock
/// until the session ends.
pub(crate) async fn create_protected(
    client: &zk::Client,
    parent: &str,
    name: &str,
    data: &[u8],
    mode: zk::CreateMode,
) -> Result<ProtectedNode> {
    let prefix = format!("{PROTECTED_PREFIX}{}-", uuid::Uuid::new_v4());
    let path = join(parent, &format!("{prefix}{name}"));
    let sequential =
        mode == zk::CreateMode::EphemeralSequential || mode == zk::CreateMode::PersistentSequential;
    let options = mode.with_acls(open_acls());
    let mut parent_attempts = 0;
    let mut loss_attempts = 0;
    let mut lost_reply = false;
    loop {
        match client.create(&path, data, &options).await {
            Ok((_stat, sequence)) => {
                let path = if sequential {
                    format!("{path}{sequence}")
                } else {
                    path
                };
                return Ok(ProtectedNode { path, lost_reply });
            }
            Err(zk::Error::NoNode) if parent_attempts < PARENT_CREATE_ATTEMPTS_MAX => {
                parent_attempts += 1;
                ensure_path(client, parent, zk::CreateMode::Container).await?;
            }
            Err(zk::Error::NodeExists) if !sequential => {
                // Our own create, applied before a connection loss we did not see as such.
                return Ok(ProtectedNode { path, lost_reply });
            }
            Err(zk::Error::ConnectionLoss) if loss_attempts < CONNECTION_LOSS_RETRIES_MAX => {
                loss_attempts += 1;
                lost_reply = true;
                if let Some(found) = find_protected(client, parent, &prefix).await? {
                    return Ok(ProtectedNode {
                        path: found,
                        lost_reply,
                    });
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Looks for our protected node after a connection loss: a child of `parent` whose name
/// starts with `prefix` and whose ephemeral owner is our session.
///
/// Not finding it does not prove the create failed: a server that answers a read on the new
/// connection before applying the session's write still in flight from the old one would
/// show the node only later (ZooKeeper orders them; arbor did not when this was written).
/// The create is then made again, and the waiting loop deletes any second node carrying our
/// prefix ([`crate::contend`]), so a duplicate can never block us.
async fn find_protected(client: &zk::Client, parent: &str, prefix: &str) -> Result<Option<String>> {
    let children = match retry(|| client.list_children(parent)).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let Some(name) = children.into_iter().find(|child| child.starts_with(prefix)) else {
        return Ok(None);
    };
    let path = join(parent, &name);
    match retry(|| client.check_stat(&path)).await? {
        Some(stat)
            if stat.ephemeral_owner == client.session_id().0 || stat.ephemeral_owner == 0 =>
        {
            Ok(Some(path))
        }
        _ => Ok(None),
    }
}

/// Deletes `path`, retrying on connection loss; a missing node counts as deleted (Curator's
/// `delete().guaranteed()` in the foreground). After the session ended there is nothing to
/// delete: the server removes ephemerals itself.
pub(crate) async fn delete_quietly(client: &zk::Client, path: &str) -> Result<()> {
    match retry(|| client.delete(path, None)).await {
        Ok(()) | Err(zk::Error::NoNode) => Ok(()),
        Err(error) => match RecipeError::from(error) {
            RecipeError::SessionEnded(_) => Ok(()),
            other => Err(other),
        },
    }
}

/// Deletes `path` in the background (for `Drop` of a handle that still holds a node). Does
/// nothing outside a tokio runtime: the node then lives until the session ends.
pub(crate) fn delete_in_background(client: &zk::Client, path: String) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let client = client.clone();
        runtime.spawn(async move {
            if let Err(error) = delete_quietly(&client, &path).await {
                tracing::warn!(%path, %error, "background delete of a recipe node failed");
            }
        });
    }
}

/// The sort key of a lock-style child: what follows the last occurrence of any of
/// `lock_names` (Curator `StandardLockInternalsDriver.standardFixForSorting`, applied for each
/// name in turn as the read/write lock's driver does). A name with none of them sorts by itself.
pub fn sequence_key<'a>(name: &'a str, lock_names: &[&str]) -> &'a str {
    let mut key = name;
    for lock_name in lock_names {
        if let Some(index) = key.rfind(lock_name) {
            key = &key[index + lock_name.len()..];
        }
    }
    key
}

/// Sorts children by [`sequence_key`], ties broken by the whole name so that every process
/// sees one order.
pub fn sort_by_sequence(children: &mut [String], lock_names: &[&str]) {
    children.sort_by(|left, right| {
        sequence_key(left, lock_names)
            .cmp(sequence_key(right, lock_names))
            .then_with(|| left.cmp(right))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_split_and_validate() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(node_name("/a/b"), "b");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert!(validate_path("/a/b").is_ok());
        for bad in ["", "a", "/", "/a/", "/a//b", "/a/./b", "/a/.."] {
            assert!(validate_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn protected_names_are_recognised_and_stripped() {
        let name = "_c_0f8fad5b-d9cb-469f-a165-70867728950e-lock-0000000003";
        assert!(is_protected_name(name));
        assert_eq!(strip_protected_prefix(name), "lock-0000000003");
        assert!(!is_protected_name("_c_not-a-uuid-lock-0000000003"));
        assert_eq!(strip_protected_prefix("lock-0000000001"), "lock-0000000001");
    }

    #[test]
    fn children_sort_by_sequence_not_by_uuid() {
        let mut children = vec![
            "_c_ffffffff-d9cb-469f-a165-70867728950e-lock-0000000002".to_owned(),
            "_c_00000000-d9cb-469f-a165-70867728950e-lock-0000000003".to_owned(),
            "_c_88888888-d9cb-469f-a165-70867728950e-lock-0000000001".to_owned(),
        ];
        sort_by_sequence(&mut children, &["lock-"]);
        let keys: Vec<_> = children
            .iter()
            .map(|child| sequence_key(child, &["lock-"]))
            .collect();
        assert_eq!(keys, ["0000000001", "0000000002", "0000000003"]);
    }

    #[test]
    fn read_write_names_share_one_sequence() {
        let names = ["__READ__", "__WRIT__"];
        let mut children = vec![
            "_c_a-__WRIT__0000000002".to_owned(),
            "_c_b-__READ__0000000001".to_owned(),
            "_c_c-__READ__0000000003".to_owned(),
        ];
        sort_by_sequence(&mut children, &names);
        assert_eq!(children[0], "_c_b-__READ__0000000001");
        assert_eq!(children[2], "_c_c-__READ__0000000003");
    }
}
