//! The [`DataTree`]: the replicated state and `apply`, the pure function of (state, command).

use std::sync::Arc;

use arbor_proto::{
    Acl, Create2Response, CreateResponse, ErrorCode, Response, SessionId, SetAclResponse,
    SetDataResponse, Zxid,
};

use crate::command::{Applied, Command, Txn, WriteRequest};
use crate::config::TreeConfig;
use crate::multi::{apply_multi, create_args, ttl_create_args};
use crate::ops::{self, CreateKind, Env, Outcome};
use crate::session::{ServerId, Session};
use crate::state::State;

/// ZooKeeper's config node, readable by anyone and writable by no one but super
/// (`DataTree.addConfigNode`, ZOOKEEPER-2014).
pub(crate) const CONFIG_NODE: &str = "/zookeeper/config";

/// The replicated state machine: znodes, ACLs and the session table.
///
/// Cloning is cheap (the maps are persistent and shared until written), so a snapshot is a
/// clone serialized on another thread while apply goes on with the original.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTree {
    pub(crate) config: Arc<TreeConfig>,
    pub(crate) state: State,
    /// Invariant: increases with every applied txn.
    pub(crate) last_applied_zxid: Zxid,
}

/// Counters an operator asks for (`mntr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Number of znodes, the root included. ZooKeeper's `zk_znode_count` is one more: its
    /// node map holds the root twice (under `""` and `"/"`).
    pub node_count: usize,
    /// Number of ephemeral znodes (`zk_ephemerals_count`).
    pub ephemeral_count: u64,
    /// Sum of path lengths (UTF-16 units) and data lengths (`zk_approximate_data_size`).
    pub approximate_data_size_bytes: i64,
    /// Number of open sessions.
    pub session_count: usize,
    /// Number of distinct ACL lists stored.
    pub acl_count: usize,
}

impl DataTree {
    /// A fresh tree as a ZooKeeper 3.9 server starts with: `/`, `/zookeeper`,
    /// `/zookeeper/quota` (world:anyone, all permissions, all-zero stats) and
    /// `/zookeeper/config` (world:anyone read-only, aversion −1 from its `setACL(.., -1)`).
    pub fn new(config: TreeConfig) -> DataTree {
        let mut state = State::empty(config.extended_types_enabled);
        state.insert_system_node("/", &Acl::open_unsafe());
        state.insert_system_node("/zookeeper", &Acl::open_unsafe());
        state.insert_system_node("/zookeeper/quota", &Acl::open_unsafe());
        state.insert_system_node(CONFIG_NODE, &Acl::read_unsafe());
        let key = state
            .get_entry(CONFIG_NODE)
            .map(|(key, _)| key.clone())
            .unwrap_or_else(|| panic!("{CONFIG_NODE} was just inserted"));
        state.set_acl(&key, &Acl::read_unsafe(), -1);
        DataTree {
            config: Arc::new(config),
            state,
            last_applied_zxid: Zxid(0),
        }
    }

    /// The configuration the tree applies with.
    pub fn config(&self) -> &TreeConfig {
        &self.config
    }

    /// Applies one committed txn at `zxid` and returns the reply and the watch triggers.
    /// Deterministic: the same state and txn give the same result on every replica.
    ///
    /// # Panics
    /// If `zxid` is not greater than [`DataTree::last_applied_zxid`]: every txn has its own
    /// zxid, applied in log order.
    ///
    /// The txn's origin is not known here: sessions it creates get no owner, and no write is
    /// refused as SessionMoved (see [`DataTree::apply_from`]). For tools and tests, and for
    /// entries no client asked for.
    pub fn apply(&mut self, zxid: Zxid, txn: &Txn) -> Applied {
        self.apply_at(zxid, None, txn)
    }

    /// Applies one committed txn at `zxid` that server `origin` proposed for its client (the
    /// server that holds the client's connection): as [`DataTree::apply`], and the session
    /// a `CreateSession` or `MoveSession` names is owned by `origin` from here on, while a
    /// client write for a session another server owns is refused with SessionMoved. The
    /// origin is part of the log entry, so every replica refuses the same writes.
    ///
    /// # Panics
    /// As [`DataTree::apply`].
    pub fn apply_from(&mut self, zxid: Zxid, origin: ServerId, txn: &Txn) -> Applied {
        self.apply_at(zxid, Some(origin), txn)
    }

    fn apply_at(&mut self, zxid: Zxid, origin: Option<ServerId>, txn: &Txn) -> Applied {
        assert!(
            zxid > self.last_applied_zxid,
            "apply of zxid {zxid} after {}: zxids must increase",
            self.last_applied_zxid
        );
        let applied = self.apply_command(zxid.0, origin, txn);
        self.last_applied_zxid = zxid;
        applied
    }

    fn apply_command(&mut self, zxid: i64, origin: Option<ServerId>, txn: &Txn) -> Applied {
        let config = &*self.config;
        let state = &mut self.state;
        match &txn.command {
            Command::CreateSession {
                session_id,
                timeout_ms,
                password,
            } => {
                let session = Session::new(*timeout_ms, password, origin);
                match ops::create_session(state, config, *session_id, session) {
                    Ok(()) => Applied::ok(Response::Empty, Vec::new()),
                    Err(code) => Applied::error(code),
                }
            }
            Command::CloseSession { session_id } => {
                // Not checked against the owner, as in ZooKeeper: the leader closes expired
                // sessions it does not own, and a close is the session's last request.
                let triggers = ops::close_session(state, zxid, *session_id);
                Applied::ok(Response::Empty, triggers)
            }
            Command::MoveSession { session_id } => match state.sessions.get_mut(session_id) {
                Some(session) => {
                    session.set_owner(origin);
                    Applied::ok(Response::Empty, Vec::new())
                }
                None => Applied::error(ErrorCode::SessionExpired),
            },
            Command::Request {
                session_id,
                identities,
                request,
            } => {
                let Some(session) = state.sessions.get(session_id) else {
                    return Applied::error(ErrorCode::SessionExpired);
                };
                // ZooKeeper's PrepRequestProcessor checks the owner before anything else of
                // the request (SessionTracker.checkSession).
                if !session.accepts_writes_from(origin) {
                    return Applied::error(ErrorCode::SessionMoved);
                }
                let env = Env {
                    config,
                    zxid,
                    time_ms: txn.time_ms,
                    session_id: *session_id,
                    identities,
                };
                apply_request(state, &env, request)
            }
            Command::DeleteExpiredTtl { path } => {
                into_applied(ops::delete_expired_ttl(state, zxid, txn.time_ms, path))
            }
            Command::DeleteEmptyContainer { path } => {
                into_applied(ops::delete_empty_container(state, zxid, path))
            }
            Command::Noop => Applied::ok(Response::Empty, Vec::new()),
            Command::SetClusterConfig { members } => {
                into_applied(ops::set_cluster_config(state, zxid, txn.time_ms, members))
            }
        }
    }

    /// The zxid of the last applied txn (0 for a fresh tree).
    pub fn last_applied_zxid(&self) -> Zxid {
        self.last_applied_zxid
    }

    /// An open session.
    pub fn session(&self, session_id: SessionId) -> Option<&Session> {
        self.state.sessions.get(&session_id)
    }

    /// Every open session, in id order.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, &Session)> {
        self.state
            .sessions
            .iter()
            .map(|(id, session)| (*id, session))
    }

    /// The soft quota the subtree governing `path` is past, if any: the server logs it
    /// after a write (soft quotas never fail one; see [`TreeConfig::quota_enforced`]).
    pub fn quota_soft_excess(&self, path: &str) -> Option<crate::QuotaExcess> {
        self.state.quota_soft_excess(path)
    }

    /// The `mntr` counters.
    pub fn stats(&self) -> TreeStats {
        TreeStats {
            node_count: self.state.nodes.len(),
            ephemeral_count: self.state.ephemeral_count,
            approximate_data_size_bytes: self.state.data_size,
            session_count: self.state.sessions.len(),
            acl_count: self.state.acls.len(),
        }
    }

    /// TTL nodes that are expired at `now_ms` (childless, unmodified for longer than their
    /// TTL), at most `max`, for the leader to propose [`Command::DeleteExpiredTtl`].
    /// Scans the TTL nodes in key order (O(TTL nodes)), as ZooKeeper's ContainerManager does
    /// every `znode.container.checkIntervalMs`.
    pub fn expired_ttl_nodes(&self, now_ms: i64, max: usize) -> Vec<String> {
        let extended = self.config.extended_types_enabled;
        self.state
            .ttls
            .iter()
            .filter(|key| {
                self.state.nodes.get(&key.as_ref()).is_some_and(|node| {
                    node.num_children == 0
                        && matches!(node.kind(extended), crate::ephemeral::EphemeralType::Ttl(ttl)
                            if ops::is_ttl_expired(node, ttl, now_ms))
                })
            })
            .take(max)
            .map(|key| key.path())
            .collect()
    }

    /// Containers that had children and have none now, at most `max`, for the leader to
    /// propose [`Command::DeleteEmptyContainer`]. O(containers).
    pub fn empty_containers(&self, max: usize) -> Vec<String> {
        self.state
            .containers
            .iter()
            .filter(|key| {
                self.state
                    .nodes
                    .get(&key.as_ref())
                    .is_some_and(|node| ops::is_empty_used_container(node))
            })
            .take(max)
            .map(|key| key.path())
            .collect()
    }
}

fn into_applied(result: Result<Vec<crate::command::WatchTrigger>, ErrorCode>) -> Applied {
    match result {
        Ok(triggers) => Applied::ok(Response::Empty, triggers),
        Err(code) => Applied::error(code),
    }
}

fn apply_request(state: &mut State, env: &Env<'_>, request: &WriteRequest) -> Applied {
    let result = match request {
        WriteRequest::Create(r) => ops::create(state, env, &create_args(CreateKind::Create, r)),
        WriteRequest::Create2(r) => ops::create(state, env, &create_args(CreateKind::Create2, r)),
        WriteRequest::CreateContainer(r) => {
            ops::create(state, env, &create_args(CreateKind::Container, r))
        }
        WriteRequest::CreateTtl(r) => ops::create(state, env, &ttl_create_args(r)),
        WriteRequest::Delete(r) => ops::delete(state, env, &r.path, r.version),
        WriteRequest::SetData(r) => {
            ops::set_data(state, env, &r.path, r.data.as_deref(), r.version)
        }
        WriteRequest::SetAcl(r) => ops::set_acl(state, env, &r.path, &r.acl, r.version),
        WriteRequest::Check(r) => ops::check(state, env, &r.path, r.version),
        WriteRequest::Multi(ops) => return apply_multi(state, env, ops),
        WriteRequest::Reconfig(r) => ops::reconfig(state, env, r),
    };
    match result {
        Ok((outcome, triggers)) => {
            let plain_create = matches!(request, WriteRequest::Create(_));
            Applied::ok(response(outcome, plain_create), triggers)
        }
        Err(code) => Applied::error(code),
    }
}

fn response(outcome: Outcome, plain_create: bool) -> Response {
    match outcome {
        Outcome::Created { path, .. } if plain_create => Response::Create(CreateResponse { path }),
        Outcome::Created { path, stat } => Response::Create2(Create2Response { path, stat }),
        Outcome::Deleted | Outcome::Checked => Response::Empty,
        Outcome::DataSet { stat } => Response::SetData(SetDataResponse { stat }),
        Outcome::AclSet { stat } => Response::SetAcl(SetAclResponse { stat }),
        Outcome::Reconfigured { data, stat } => Response::GetData(arbor_proto::GetDataResponse {
            data: Some(data.into()),
            stat,
        }),
    }
}

#[cfg(test)]
mod tests {
    use arbor_proto::{CreateRequest, Id};

    use super::*;

    fn create_sequential(tree: &mut DataTree, zxid: &mut u32, path: &str) -> String {
        *zxid += 1;
        let txn = Txn {
            time_ms: 1,
            command: Command::Request {
                session_id: SessionId(0x0100_0000_0000_0001),
                identities: vec![Id::new("ip", "127.0.0.1")],
                request: WriteRequest::Create(CreateRequest {
                    path: path.into(),
                    data: Default::default(),
                    acl: Acl::open_unsafe(),
                    flags: 2,
                }),
            },
        };
        match tree.apply(Zxid::from_parts(1, *zxid), &txn).result {
            Ok(Response::Create(created)) => created.path,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sequence_counter_overflows_like_a_java_int() {
        let mut tree = DataTree::new(TreeConfig::default());
        let mut zxid = 1;
        let session = Command::CreateSession {
            session_id: SessionId(0x0100_0000_0000_0001),
            timeout_ms: 1000,
            password: vec![],
        };
        tree.apply(
            Zxid::from_parts(1, zxid),
            &Txn {
                time_ms: 1,
                command: session,
            },
        );
        let parent_path = create_sequential(&mut tree, &mut zxid, "/s");
        assert_eq!(parent_path, "/s0000000000");
        let key = tree.state.get_entry(&parent_path).unwrap().0.clone();
        let node = tree.state.nodes.get_mut(&key.as_ref()).unwrap();
        Arc::make_mut(node).cversion = i32::MAX - 1;
        let parent = "/s0000000000/n";
        assert_eq!(
            create_sequential(&mut tree, &mut zxid, parent),
            "/s0000000000/n2147483646"
        );
        assert_eq!(
            create_sequential(&mut tree, &mut zxid, parent),
            "/s0000000000/n2147483647"
        );
        // The documented behaviour (programmer's guide): the counter wraps to −2^31. (ZooKeeper
        // 3.9's DataTree.createNode only raises cversion when the new value is larger, a
        // guard for fuzzy-snapshot replay that in practice stops the counter at 2^31 − 1.)
        assert_eq!(
            create_sequential(&mut tree, &mut zxid, parent),
            "/s0000000000/n-2147483648"
        );
        assert_eq!(
            create_sequential(&mut tree, &mut zxid, parent),
            "/s0000000000/n-2147483647"
        );
        let stat = tree.exists(&parent_path).unwrap();
        assert_eq!(stat.num_children, 4);
        assert_eq!(
            stat.cversion,
            (i32::MIN + 2).wrapping_mul(2).wrapping_sub(4)
        );
        tree.assert_invariants();
    }

    #[test]
    fn trees_can_be_snapshotted_from_another_thread() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<DataTree>();
    }

    #[test]
    #[should_panic(expected = "zxids must increase")]
    fn a_replayed_zxid_is_a_bug() {
        let mut tree = DataTree::new(TreeConfig::default());
        let noop = Txn {
            time_ms: 0,
            command: Command::Noop,
        };
        tree.apply(Zxid::from_parts(1, 1), &noop);
        tree.apply(Zxid::from_parts(1, 1), &noop);
    }
}
