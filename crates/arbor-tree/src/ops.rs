//! The write operations, each validated in ZooKeeper's order (PrepRequestProcessor.java,
//! 3.9) and then applied as DataTree.java applies its txn. Every function validates
//! completely before it mutates, so an error leaves the state untouched.

use arbor_proto::{CreateMode, ErrorCode, EventType, Id, SessionId, Stat, perms};

use crate::acl::{check_acl, fixup_acl};
use crate::command::WatchTrigger;
use crate::config::TreeConfig;
use crate::ephemeral::{CONTAINER_EPHEMERAL_OWNER, EphemeralType, ttl_owner, validate_ttl};
use crate::node::Znode;
use crate::path::{sequential_suffix, split_last_slash, validate_path};
use crate::state::State;

/// What a write is applied with: the txn's stamp and the caller.
pub(crate) struct Env<'a> {
    pub(crate) config: &'a TreeConfig,
    pub(crate) zxid: i64,
    pub(crate) time_ms: i64,
    pub(crate) session_id: SessionId,
    pub(crate) identities: &'a [Id],
}

/// Which create opcode asked: it decides the reply shape and, as in `DataTree.processTxn`,
/// the owner a container or TTL node gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CreateKind {
    Create,
    Create2,
    Container,
    Ttl,
}

/// The arguments of a create, whatever its opcode.
pub(crate) struct CreateArgs<'a> {
    pub(crate) kind: CreateKind,
    pub(crate) path: &'a str,
    /// `None`: the client sent null data.
    pub(crate) data: Option<&'a [u8]>,
    pub(crate) acl: &'a [arbor_proto::Acl],
    pub(crate) flags: i32,
    /// The TTL of createTTL; −1 for the other opcodes, as `pRequest2TxnCreate` passes.
    pub(crate) ttl_ms: i64,
}

/// What a successful write produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Created { path: String, stat: Stat },
    Deleted,
    DataSet { stat: Stat },
    AclSet { stat: Stat },
    Checked,
    Reconfigured { data: Vec<u8>, stat: Stat },
}

pub(crate) type OpResult = Result<(Outcome, Vec<WatchTrigger>), ErrorCode>;

/// The paths `delete` refuses (`DataTree.isSpecialPath`).
fn is_special_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    // PrepRequestProcessor.checkAndIncVersion; the increment wraps like Java's int.
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// `create`, `create2`, `createContainer`, `createTTL`.
pub(crate) fn create(state: &mut State, env: &Env<'_>, args: &CreateArgs<'_>) -> OpResult {
    let extended = env.config.extended_types_enabled;
    let mode = CreateMode::from_flags(args.flags).ok_or(ErrorCode::BadArguments)?;
    // validateCreateRequest
    if mode.is_ttl() && !extended {
        return Err(ErrorCode::Unimplemented);
    }
    validate_ttl(mode, args.ttl_ms)?;
    // validatePathForCreate
    let (parent_path, _) = split_last_slash(args.path).ok_or(ErrorCode::BadArguments)?;
    if args.path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    let acl = fixup_acl(args.acl, env.identities, env.config)?;
    let parent = state.get(parent_path).ok_or(ErrorCode::NoNode)?;
    check_acl(
        state.acl_of(parent),
        perms::CREATE,
        env.identities,
        env.config,
    )?;
    let path = if mode.is_sequential() {
        format!("{}{}", args.path, sequential_suffix(parent.cversion))
    } else {
        args.path.to_owned()
    };
    validate_path(&path)?;
    if state.get(&path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if matches!(parent.kind(extended), EphemeralType::Session(_)) {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    if env.config.quota_enforced {
        let data_len = args.data.map_or(0, <[u8]>::len) as i64;
        state.check_hard_quota(&path, data_len, 1)?;
    }
    let ephemeral_owner = match args.kind {
        CreateKind::Container => CONTAINER_EPHEMERAL_OWNER,
        // A non-TTL mode with a negative TTL passed validateTTL; ZooKeeper's DataTree then
        // throws in toEphemeralOwner. We answer BadArguments instead.
        CreateKind::Ttl => ttl_owner(args.ttl_ms)?,
        CreateKind::Create | CreateKind::Create2 if mode.is_ephemeral() => env.session_id.0,
        CreateKind::Create | CreateKind::Create2 => 0,
    };

    let acl = state.acquire_acl(&acl);
    let node = Znode::new(args.data, acl, ephemeral_owner, env.zxid, env.time_ms);
    let stat = node.stat(extended);
    let key = state.insert_child(&path, node, env.zxid);
    let triggers = vec![
        WatchTrigger::new(
            path.clone(),
            EventType::NodeCreated,
            state.shared_acl_at(&path),
        ),
        WatchTrigger::new(
            &*key.parent,
            EventType::NodeChildrenChanged,
            state.shared_acl_at(&key.parent),
        ),
    ];
    Ok((Outcome::Created { path, stat }, triggers))
}

/// `delete`.
pub(crate) fn delete(state: &mut State, env: &Env<'_>, path: &str, version: i32) -> OpResult {
    // getParentPathAndValidate
    let (parent_path, _) = split_last_slash(path).ok_or(ErrorCode::BadArguments)?;
    if path.contains('\0') || is_special_path(path) {
        return Err(ErrorCode::BadArguments);
    }
    let parent = state.get(parent_path).ok_or(ErrorCode::NoNode)?;
    check_acl(
        state.acl_of(parent),
        perms::DELETE,
        env.identities,
        env.config,
    )?;
    let (key, node) = state.get_entry(path).ok_or(ErrorCode::NoNode)?;
    check_version(node.version, version)?;
    if node.num_children > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    let key = key.clone();
    let triggers = deletion_triggers(state, path, &key.parent);
    state.remove_node(&key, env.zxid);
    Ok((Outcome::Deleted, triggers))
}

/// The triggers of a deletion, taken before the node goes (its ACL is needed to filter them).
fn deletion_triggers(state: &State, path: &str, parent: &str) -> Vec<WatchTrigger> {
    vec![
        WatchTrigger::new(path, EventType::NodeDeleted, state.shared_acl_at(path)),
        WatchTrigger::new(
            parent,
            EventType::NodeChildrenChanged,
            state.shared_acl_at(parent),
        ),
    ]
}

/// `setData`.
pub(crate) fn set_data(
    state: &mut State,
    env: &Env<'_>,
    path: &str,
    data: Option<&[u8]>,
    version: i32,
) -> OpResult {
    validate_path(path)?;
    let (key, node) = state.get_entry(path).ok_or(ErrorCode::NoNode)?;
    check_acl(state.acl_of(node), perms::WRITE, env.identities, env.config)?;
    if env.config.quota_enforced {
        let bytes_diff = data.map_or(0, <[u8]>::len) as i64 - node.data().len() as i64;
        state.check_hard_quota(path, bytes_diff, 0)?;
    }
    let version = check_version(node.version, version)?;
    let key = key.clone();
    let stat = state.set_data(&key, data, version, env.zxid, env.time_ms);
    let triggers = vec![WatchTrigger::new(
        path,
        EventType::NodeDataChanged,
        state.shared_acl_at(path),
    )];
    Ok((Outcome::DataSet { stat }, triggers))
}

/// `setACL`: the ACL is validated before the node is looked up, as ZooKeeper does.
pub(crate) fn set_acl(
    state: &mut State,
    env: &Env<'_>,
    path: &str,
    acl: &[arbor_proto::Acl],
    aversion: i32,
) -> OpResult {
    validate_path(path)?;
    let acl = fixup_acl(acl, env.identities, env.config)?;
    let (key, node) = state.get_entry(path).ok_or(ErrorCode::NoNode)?;
    check_acl(state.acl_of(node), perms::ADMIN, env.identities, env.config)?;
    let aversion = check_version(node.aversion, aversion)?;
    let key = key.clone();
    let node = state.set_acl(&key, &acl, aversion);
    let stat = node.stat(env.config.extended_types_enabled);
    Ok((Outcome::AclSet { stat }, Vec::new()))
}

/// `check`: READ is required in 3.9.
pub(crate) fn check(state: &State, env: &Env<'_>, path: &str, version: i32) -> OpResult {
    validate_path(path)?;
    let node = state.get(path).ok_or(ErrorCode::NoNode)?;
    check_acl(state.acl_of(node), perms::READ, env.identities, env.config)?;
    check_version(node.version, version)?;
    Ok((Outcome::Checked, Vec::new()))
}

/// `CreateSession`.
pub(crate) fn create_session(
    state: &mut State,
    config: &TreeConfig,
    session_id: SessionId,
    session: crate::session::Session,
) -> Result<(), ErrorCode> {
    if !crate::ephemeral::is_valid_session_owner(session_id, config.extended_types_enabled) {
        return Err(ErrorCode::BadArguments);
    }
    if state.sessions.contains_key(&session_id) {
        // The server minted a duplicate: refuse rather than merge two sessions.
        return Err(ErrorCode::RuntimeInconsistency);
    }
    state.sessions.insert(session_id, session);
    Ok(())
}

/// `CloseSession`: deletes the session's ephemerals in key order (`DataTree.killSession`),
/// each with its triggers, then forgets the session. Unknown sessions are a no-op.
pub(crate) fn close_session(
    state: &mut State,
    zxid: i64,
    session_id: SessionId,
) -> Vec<WatchTrigger> {
    let Some(session) = state.sessions.get(&session_id) else {
        return Vec::new();
    };
    let ephemerals = session.ephemerals.clone();
    let mut triggers = Vec::with_capacity(2 * ephemerals.len());
    for key in &ephemerals {
        triggers.extend(deletion_triggers(state, &key.path(), &key.parent));
        state.remove_node(key, zxid);
    }
    let session = state.sessions.remove(&session_id);
    assert!(
        session.is_some_and(|session| session.ephemerals.is_empty()),
        "session {session_id} kept ephemerals after close"
    );
    triggers
}

/// `DeleteExpiredTtl`: the node must still be a childless TTL node whose TTL has passed
/// since its last modification at `time_ms` (`ContainerManager.getCandidates`).
///
/// # Errors
/// NoNode if it is gone, NotEmpty if it has children, BadVersion if it is not a TTL node or
/// has not expired (it was modified since the leader looked).
pub(crate) fn delete_expired_ttl(
    state: &mut State,
    zxid: i64,
    time_ms: i64,
    path: &str,
) -> Result<Vec<WatchTrigger>, ErrorCode> {
    let (key, node) = state.get_entry(path).ok_or(ErrorCode::NoNode)?;
    let EphemeralType::Ttl(ttl_ms) = node.kind(state.extended_types_enabled) else {
        return Err(ErrorCode::BadVersion);
    };
    if node.num_children > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    if !is_ttl_expired(node, ttl_ms, time_ms) {
        return Err(ErrorCode::BadVersion);
    }
    let key = key.clone();
    let triggers = deletion_triggers(state, &key.path(), &key.parent);
    state.remove_node(&key, zxid);
    Ok(triggers)
}

/// `ttl != 0 && now - mtime > ttl`, the ContainerManager's test.
pub(crate) fn is_ttl_expired(node: &Znode, ttl_ms: i64, now_ms: i64) -> bool {
    ttl_ms != 0 && now_ms.saturating_sub(node.mtime) > ttl_ms
}

/// Whether a container is a deletion candidate: childless, and it had a child
/// (`cversion > 0`, ContainerManager.getCandidates).
pub(crate) fn is_empty_used_container(node: &Znode) -> bool {
    node.num_children == 0 && node.cversion > 0
}

/// `DeleteEmptyContainer`.
///
/// # Errors
/// NoNode if it is gone, NotEmpty if it has children, BadVersion if it is not a container
/// or never had a child.
pub(crate) fn delete_empty_container(
    state: &mut State,
    zxid: i64,
    path: &str,
) -> Result<Vec<WatchTrigger>, ErrorCode> {
    let (key, node) = state.get_entry(path).ok_or(ErrorCode::NoNode)?;
    if node.kind(state.extended_types_enabled) != EphemeralType::Container {
        return Err(ErrorCode::BadVersion);
    }
    if node.num_children > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    if !is_empty_used_container(node) {
        return Err(ErrorCode::BadVersion);
    }
    let key = key.clone();
    let triggers = deletion_triggers(state, &key.path(), &key.parent);
    state.remove_node(&key, zxid);
    Ok(triggers)
}

/// `reconfig` (PrepRequestProcessor, OpCode.reconfig): WRITE on `/zookeeper/config` (so by
/// default only the super user), the expected config version, then the new membership.
pub(crate) fn reconfig(
    state: &mut State,
    env: &Env<'_>,
    request: &arbor_proto::ReconfigRequest,
) -> OpResult {
    use crate::cluster_config::{CONFIG_PATH, ClusterConfig};
    // The order of ZooKeeper's checks, which clients observe: enabled, standalone, version,
    // input, then the ACL last.
    if !env.config.reconfig_enabled {
        return Err(ErrorCode::ReconfigDisabled);
    }
    let (key, node) = state.get_entry(CONFIG_PATH).ok_or(ErrorCode::NoNode)?;
    let text = std::str::from_utf8(node.data()).map_err(|_| ErrorCode::RuntimeInconsistency)?;
    let current = ClusterConfig::parse(text).map_err(|_| ErrorCode::RuntimeInconsistency)?;
    if current.members.is_empty() {
        // A standalone server has no membership to change.
        return Err(ErrorCode::Unimplemented);
    }
    if request.cur_config_id != -1 && request.cur_config_id != current.version {
        return Err(ErrorCode::BadVersion);
    }
    let mut next = current
        .reconfigured(
            &request.joining_servers,
            &request.leaving_servers,
            &request.new_members,
        )
        .map_err(|_| ErrorCode::BadArguments)?;
    check_acl(state.acl_of(node), perms::WRITE, env.identities, env.config)?;
    next.version = env.zxid;
    let key = key.clone();
    let data = next.to_text().into_bytes();
    // ZooKeeper writes the config node with version -1 on a reconfig.
    let stat = state.set_data(&key, Some(&data), -1, env.zxid, env.time_ms);
    let triggers = vec![WatchTrigger::new(
        CONFIG_PATH,
        EventType::NodeDataChanged,
        state.shared_acl_at(CONFIG_PATH),
    )];
    Ok((Outcome::Reconfigured { data, stat }, triggers))
}

/// `SetClusterConfig`: the configured membership of a starting cluster.
///
/// # Errors
/// BadArguments when the lines do not parse.
pub(crate) fn set_cluster_config(
    state: &mut State,
    zxid: i64,
    time_ms: i64,
    members: &str,
) -> Result<Vec<WatchTrigger>, ErrorCode> {
    use crate::cluster_config::{CONFIG_PATH, ClusterConfig};
    let mut config = ClusterConfig::parse(members).map_err(|_| ErrorCode::BadArguments)?;
    config.version = zxid;
    let (key, node) = state.get_entry(CONFIG_PATH).ok_or(ErrorCode::NoNode)?;
    let key = key.clone();
    let version = node.version.wrapping_add(1);
    let data = config.to_text().into_bytes();
    state.set_data(&key, Some(&data), version, zxid, time_ms);
    Ok(vec![WatchTrigger::new(
        CONFIG_PATH,
        EventType::NodeDataChanged,
        state.shared_acl_at(CONFIG_PATH),
    )])
}
