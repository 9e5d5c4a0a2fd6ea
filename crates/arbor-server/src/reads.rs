//! Requests answered from the applied state without going through the log: reads, watch
//! management, authentication. They run on the core task, so a read and the watch it leaves
//! are atomic with respect to apply.

use arbor_proto::{
    AddWatchMode, ClientInfo, ErrorCode, ErrorResponse, EventType, ExistsResponse, GetAclResponse,
    GetAllChildrenNumberResponse, GetChildren2Response, GetChildrenResponse, GetDataResponse,
    GetEphemeralsResponse, Request, Response, SessionId, SetWatches2, SyncResponse, WatcherType,
    WhoAmIResponse,
};

use crate::core::Core;
use crate::watches::{ConnectionId, WatchKind};

impl Core {
    /// Answers a request that does not change replicated state.
    pub(crate) fn serve_read(
        &mut self,
        connection: ConnectionId,
        session_id: SessionId,
        request: Request,
    ) -> Result<Response, ErrorCode> {
        // Limits (core/security.rs): a request that would set a watch past the connection's
        // limit is not executed at all.
        let watch = match &request {
            Request::Exists(r) if r.watch => Some((r.path.as_str(), WatchKind::Data)),
            Request::GetData(r) if r.watch => Some((r.path.as_str(), WatchKind::Data)),
            Request::GetChildren(r) if r.watch => Some((r.path.as_str(), WatchKind::Child)),
            Request::GetChildren2(r) if r.watch => Some((r.path.as_str(), WatchKind::Child)),
            Request::AddWatch(r) => Some((r.path.as_str(), WatchKind::Persistent)),
            _ => None,
        };
        if let Some((path, kind)) = watch
            && !self.watch_allowed(connection, path, kind)
        {
            return Err(ErrorCode::ThrottledOp);
        }
        let new_watches = match &request {
            Request::SetWatches(s) => {
                s.data_watches.len() + s.exist_watches.len() + s.child_watches.len()
            }
            Request::SetWatches2(s) => {
                s.data_watches.len()
                    + s.exist_watches.len()
                    + s.child_watches.len()
                    + s.persistent_watches.len()
                    + s.persistent_recursive_watches.len()
            }
            _ => 0,
        };
        if new_watches > 0 && !self.watches_allowed(connection, new_watches) {
            return Err(ErrorCode::ThrottledOp);
        }
        match request {
            Request::Exists(r) => {
                let result = self
                    .tree()
                    .exists_checked(&r.path, self.connection_identities(connection));
                if r.watch && matches!(result, Ok(_) | Err(ErrorCode::NoNode)) {
                    // On a missing node this is an exist watch: it fires on creation.
                    self.watches_mut().add(connection, &r.path, WatchKind::Data);
                }
                result.map(|stat| Response::Exists(ExistsResponse { stat }))
            }
            Request::GetData(r) => {
                let (data, stat) = self
                    .tree()
                    .get_data(&r.path, self.connection_identities(connection))?;
                if r.watch {
                    self.watches_mut().add(connection, &r.path, WatchKind::Data);
                }
                Ok(Response::GetData(GetDataResponse { data, stat }))
            }
            Request::GetChildren(r) => {
                let (children, _) = self
                    .tree()
                    .get_children(&r.path, self.connection_identities(connection))?;
                if !self.listing_allowed(&r.path, &children) {
                    return Err(ErrorCode::ThrottledOp);
                }
                if r.watch {
                    self.watches_mut()
                        .add(connection, &r.path, WatchKind::Child);
                }
                Ok(Response::GetChildren(GetChildrenResponse { children }))
            }
            Request::GetChildren2(r) => {
                let (children, stat) = self
                    .tree()
                    .get_children(&r.path, self.connection_identities(connection))?;
                if !self.listing_allowed(&r.path, &children) {
                    return Err(ErrorCode::ThrottledOp);
                }
                if r.watch {
                    self.watches_mut()
                        .add(connection, &r.path, WatchKind::Child);
                }
                Ok(Response::GetChildren2(GetChildren2Response {
                    children,
                    stat,
                }))
            }
            Request::GetAcl(r) => {
                let (acl, stat) = self
                    .tree()
                    .get_acl(&r.path, self.connection_identities(connection))?;
                Ok(Response::GetAcl(GetAclResponse { acl, stat }))
            }
            Request::GetAllChildrenNumber(r) => {
                let total_number = self
                    .tree()
                    .get_all_children_number(&r.path, self.connection_identities(connection))?;
                Ok(Response::GetAllChildrenNumber(
                    GetAllChildrenNumberResponse { total_number },
                ))
            }
            Request::GetEphemerals(r) => {
                let prefix = if r.prefix_path.is_empty() {
                    "/"
                } else {
                    r.prefix_path.as_str()
                };
                let ephemerals = self.tree().get_ephemerals(session_id, prefix);
                Ok(Response::GetEphemerals(GetEphemeralsResponse {
                    ephemerals,
                }))
            }
            Request::MultiRead(r) => self
                .tree()
                .multi_read(&r.ops, self.connection_identities(connection)),
            // Standalone: every acknowledged write is applied, so a sync is already satisfied
            // once the session's own earlier requests are (FIFO guarantees that).
            Request::Sync(r) => Ok(Response::Sync(SyncResponse { path: r.path })),
            Request::Ping => Ok(Response::Empty),
            Request::WhoAmI => {
                let client_info = self
                    .connection_identities(connection)
                    .iter()
                    .map(|id| {
                        // ZooKeeper reports the user name only (AuthUtil.getUser): a digest id
                        // "user:hash" shows as "user".
                        let user = match id.scheme.as_str() {
                            "digest" => id.id.split(':').next().unwrap_or_default(),
                            _ => id.id.as_str(),
                        };
                        ClientInfo {
                            auth_scheme: id.scheme.clone(),
                            user: user.to_owned(),
                        }
                    })
                    .collect();
                Ok(Response::WhoAmI(WhoAmIResponse { client_info }))
            }
            Request::Auth(packet) => {
                let identities =
                    arbor_tree::authenticate(&packet.scheme, &packet.auth, self.tree_config())?;
                self.add_identities(connection, identities);
                Ok(Response::Empty)
            }
            // With SASL users configured the connection task runs the exchange; here SASL is
            // not set up, and ZooKeeper then answers that authentication failed.
            Request::Sasl(_) => Err(ErrorCode::AuthFailed),
            Request::AddWatch(r) => {
                let kind = match AddWatchMode::from_i32(r.mode) {
                    Some(AddWatchMode::Persistent) => WatchKind::Persistent,
                    Some(AddWatchMode::PersistentRecursive) => WatchKind::PersistentRecursive,
                    None => return Err(ErrorCode::BadArguments),
                };
                self.watches_mut().add(connection, &r.path, kind);
                // ZooKeeper's reply body is an ErrorResponse carrying 0; Java clients read it.
                Ok(Response::AddWatch(ErrorResponse { err: 0 }))
            }
            Request::CheckWatches(r) => {
                let watcher_type =
                    WatcherType::from_i32(r.watcher_type).ok_or(ErrorCode::BadArguments)?;
                if self.watches().check(connection, &r.path, watcher_type) {
                    Ok(Response::Empty)
                } else {
                    Err(ErrorCode::NoWatcher)
                }
            }
            Request::RemoveWatches(r) => {
                let watcher_type =
                    WatcherType::from_i32(r.watcher_type).ok_or(ErrorCode::BadArguments)?;
                if self.watches_mut().remove(connection, &r.path, watcher_type) {
                    Ok(Response::Empty)
                } else {
                    Err(ErrorCode::NoWatcher)
                }
            }
            Request::SetWatches(s) => {
                self.set_watches(
                    connection,
                    SetWatches2 {
                        relative_zxid: s.relative_zxid,
                        data_watches: s.data_watches,
                        exist_watches: s.exist_watches,
                        child_watches: s.child_watches,
                        persistent_watches: Vec::new(),
                        persistent_recursive_watches: Vec::new(),
                    },
                );
                Ok(Response::Empty)
            }
            Request::SetWatches2(s) => {
                self.set_watches(connection, s);
                Ok(Response::Empty)
            }
            // Writes never reach here (the core routes them to the log).
            Request::Create(_)
            | Request::Create2(_)
            | Request::CreateContainer(_)
            | Request::CreateTtl(_)
            | Request::Delete(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Check(_)
            | Request::Multi(_)
            | Request::Reconfig(_)
            | Request::CloseSession => Err(ErrorCode::SystemError),
        }
    }

    /// Re-registers a reconnecting client's watches, firing at once those whose node changed
    /// after the last zxid the client saw (ZooKeeper's `DataTree.setWatches`).
    fn set_watches(&mut self, connection: ConnectionId, watches: SetWatches2) {
        let relative = watches.relative_zxid;
        for path in watches.data_watches {
            match self.tree().exists(&path) {
                Err(_) => self.send_event_now(connection, EventType::NodeDeleted, &path),
                Ok(stat) if stat.mzxid > relative => {
                    self.send_event_now(connection, EventType::NodeDataChanged, &path);
                }
                Ok(_) => self.watches_mut().add(connection, &path, WatchKind::Data),
            }
        }
        for path in watches.exist_watches {
            match self.tree().exists(&path) {
                Ok(_) => self.send_event_now(connection, EventType::NodeCreated, &path),
                Err(_) => self.watches_mut().add(connection, &path, WatchKind::Data),
            }
        }
        for path in watches.child_watches {
            match self.tree().exists(&path) {
                Err(_) => self.send_event_now(connection, EventType::NodeDeleted, &path),
                Ok(stat) if stat.pzxid > relative => {
                    self.send_event_now(connection, EventType::NodeChildrenChanged, &path);
                }
                Ok(_) => self.watches_mut().add(connection, &path, WatchKind::Child),
            }
        }
        for path in watches.persistent_watches {
            self.watches_mut()
                .add(connection, &path, WatchKind::Persistent);
        }
        for path in watches.persistent_recursive_watches {
            self.watches_mut()
                .add(connection, &path, WatchKind::PersistentRecursive);
        }
    }
}
