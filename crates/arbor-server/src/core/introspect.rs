//! Read-only views of the core for the admin words and for request handling.

use arbor_log::Wal;
use arbor_proto::{EventType, Id, SessionId};
use arbor_tree::{DataTree, TreeConfig};

use super::*;
use crate::config::ServerConfig;
use crate::watches::{ConnectionId, Notification, WatchManager};

impl Core {
    // ----- accessors for the admin words -------------------------------------------------------

    pub(crate) fn raft_status(&self) -> arbor_raft::Status {
        self.raft.status()
    }

    /// ZooKeeper's name for this server's role: standalone, leader, follower or observer.
    pub(crate) fn mode(&self) -> &'static str {
        let status = self.raft.status();
        let me = arbor_raft::NodeId(self.server_id);
        if !self.config.is_clustered() {
            "standalone"
        } else if self.serving_read_only() {
            "read-only"
        } else if status.conf_state.learners.contains(&me)
            || !status.conf_state.all_nodes().contains(&me)
        {
            // A learner, or a server outside the membership syncing as one.
            "observer"
        } else if status.leader == Some(me) {
            "leader"
        } else {
            "follower"
        }
    }

    pub(crate) fn tree(&self) -> &DataTree {
        &self.tree
    }

    pub(crate) fn tree_config(&self) -> &TreeConfig {
        &self.tree_config
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub(crate) fn watches(&self) -> &WatchManager {
        &self.watches
    }

    pub(crate) fn outstanding_requests(&self) -> usize {
        self.connections
            .values()
            .map(|c| c.queued.len() + c.writes_in_flight as usize)
            .sum()
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.connections.len()
    }

    pub(crate) fn wal_stats(&self) -> Option<arbor_log::WalStats> {
        self.wal.as_ref().map(Wal::stats)
    }

    /// One line per connection, as `cons` and `stat` print them.
    pub(crate) fn connection_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .connections
            .values()
            .map(|c| {
                let session = c.session_id.map_or(0, |s| s.0);
                format!(
                    " /{}[1](queued={},recved={},sent={},sid=0x{:x},lop=NA,est={},to={})",
                    c.peer,
                    c.queued.len(),
                    c.received,
                    c.sent,
                    session,
                    c.established.elapsed().as_millis(),
                    c.session_id
                        .and_then(|s| self.tree.session(s))
                        .map_or(0, |s| s.timeout_ms()),
                )
            })
            .collect();
        lines.sort();
        lines
    }

    /// Sessions with their ephemerals, for `dump`.
    pub(crate) fn session_ephemerals(&self) -> Vec<(SessionId, Vec<String>)> {
        let mut rows: Vec<(SessionId, Vec<String>)> = self
            .tree
            .sessions()
            .map(|(id, _)| (id, self.tree.get_ephemerals(id, "/")))
            .collect();
        rows.sort();
        rows
    }

    /// Watches grouped by session, for `wchc`.
    pub(crate) fn watches_by_session(&self) -> Vec<(SessionId, Vec<String>)> {
        let mut rows = Vec::new();
        for (&id, connection) in &self.connections {
            let paths: Vec<String> = self
                .watches
                .paths_of(id)
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            if let Some(session) = connection.session_id
                && !paths.is_empty()
            {
                rows.push((session, paths));
            }
        }
        rows.sort();
        rows
    }

    /// Watches grouped by path with session ids, for `wchp`.
    pub(crate) fn watches_by_path(&self) -> Vec<(String, Vec<SessionId>)> {
        self.watches
            .watchers_by_path()
            .into_iter()
            .map(|(path, connections)| {
                let sessions = connections
                    .iter()
                    .filter_map(|c| self.connections.get(c).and_then(|c| c.session_id))
                    .collect();
                (path, sessions)
            })
            .collect()
    }

    // Read handling lives in reads.rs.
    pub(crate) fn connection_identities(&self, connection: ConnectionId) -> &[Id] {
        self.connections
            .get(&connection)
            .map_or(&[], |c| c.identities.as_slice())
    }

    pub(crate) fn add_identities(&mut self, connection: ConnectionId, identities: Vec<Id>) {
        if let Some(state) = self.connections.get_mut(&connection) {
            for id in identities {
                if !state.identities.contains(&id) {
                    state.identities.push(id);
                }
            }
        }
    }

    pub(crate) fn watches_mut(&mut self) -> &mut WatchManager {
        &mut self.watches
    }

    pub(crate) fn send_event_now(
        &mut self,
        connection: ConnectionId,
        event: EventType,
        path: &str,
    ) {
        // ZooKeeper builds these events without a zxid (WatchedEvent.NO_ZXID = -1).
        self.deliver(
            arbor_proto::Zxid(-1),
            vec![Notification {
                connection,
                event,
                path: path.to_owned(),
            }],
        );
    }
}
