//! Membership: `/zookeeper/config` (replicated, changed by `reconfig`) says who the members
//! are; the leader makes Raft's membership follow it (joint consensus, any number of servers
//! at once), and every server points its peer transport at the addresses it lists. A leader
//! that finds the node empty (a cluster's first start) records the configured members.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use arbor_proto::ErrorCode;
use arbor_raft::{ConfChange, ConfChangeSingle, NodeId, ProgressState};
use arbor_tree::{CONFIG_PATH, ClusterConfig, Command};
use tracing::{debug, info, warn};

use super::cluster::PeerMessage;
use super::*;

impl Core {
    /// The membership recorded in `/zookeeper/config`, if any.
    fn recorded_membership(&self) -> Option<ClusterConfig> {
        let (data, _) = self.tree.get_data(CONFIG_PATH, &[]).ok()?;
        let data = data?;
        let text = std::str::from_utf8(&data).ok()?;
        let config = ClusterConfig::parse(text).ok()?;
        (!config.members.is_empty()).then_some(config)
    }

    /// `/zookeeper/config` changed: re-point the transport, and (leader) move Raft's
    /// membership towards it.
    pub(super) fn on_membership_changed(&mut self) {
        let Some(config) = self.recorded_membership() else {
            return;
        };
        info!(members = config.members.len(), version = %format!("{:x}", config.version), "membership recorded");
        self.maintain_membership();
    }

    /// Points the peer transport at the members `/zookeeper/config` lists (before it lists
    /// any, at the configured ones), and keeps the links to every node Raft still replicates
    /// to: the members of its own configuration (which follows the recorded one only after
    /// the change commits) and, on a leader, removed members still learning that their
    /// removal committed and guests (servers outside the membership syncing as learners).
    /// Dropping such a link as soon as a `reconfig` is applied would drop what is queued on
    /// it (the very commit index a removed server waits for to answer the `reconfig` it
    /// forwarded) and cut it off for good.
    fn point_peer_links(&mut self, recorded: Option<&ClusterConfig>) {
        let Some(network) = self.network.clone() else {
            return;
        };
        let mut peers = BTreeMap::new();
        match recorded {
            Some(config) => {
                for member in config.members.values() {
                    match resolve(&member.host) {
                        Some(ip) => {
                            peers.insert(member.id, SocketAddr::new(ip, member.peer_port));
                        }
                        None => {
                            warn!(member = member.id, host = %member.host, "cannot resolve member host; not dialling it")
                        }
                    }
                }
            }
            None => {
                for member in &self.config.members {
                    peers.insert(u64::from(member.id), member.peer_address);
                }
            }
        }
        let status = self.raft.status();
        // A guest Raft gave up on (or a leader that lost its guests with its term) is no
        // longer dialled.
        self.guest_addresses
            .retain(|id, _| status.guests.contains_key(&NodeId(*id)));
        for (&id, &address) in &self.guest_addresses {
            peers.entry(id).or_insert(address);
        }
        let replicated = status
            .conf_state
            .all_nodes()
            .into_iter()
            .chain(status.departing);
        for NodeId(id) in replicated {
            if peers.contains_key(&id) {
                continue;
            }
            // Only a link that exists is kept: its address is the one it was dialled at.
            if let Some(address) = network.peer_stats(id).and_then(|stats| stats.address) {
                peers.insert(id, address);
            }
        }
        network.set_peers(peers);
    }

    /// A server outside the membership asks to be replicated to (see
    /// [`Core::ask_to_be_replicated`]). The leader makes it a Raft guest and dials it at the
    /// peer address it gave; anyone else ignores it (the asker tries the leader it learns of).
    pub(super) fn on_join(&mut self, from: u64, peer_address: SocketAddr) {
        if !self.is_leader() || !self.raft.attach_guest(NodeId(from)) {
            return;
        }
        if self.guest_addresses.insert(from, peer_address) != Some(peer_address) {
            info!(guest = from, %peer_address, "a server outside the membership syncs as a learner");
            let recorded = self.recorded_membership();
            self.point_peer_links(recorded.as_ref());
        }
    }

    /// Leader, before proposing a `reconfig`: ZooKeeper refuses one whose new membership lacks
    /// a quorum of servers connected to the leader and synced (NewConfigNoQuorum), since
    /// such a membership could not commit anything, the change itself included, and the
    /// cluster would stall. Synced here: the leader, and every member or guest it replicates
    /// to that is past probing and was heard from in this check-quorum period or answered a
    /// heartbeat sent within the last election timeout. (The caller gives a membership that
    /// fails this one election timeout to pass it before refusing.) The checks
    /// ZooKeeper makes before this one (enabled, version, arguments) are left to the tree,
    /// which answers them when the entry is applied; a request that fails them passes here.
    pub(super) fn check_reconfig_quorum(
        &self,
        request: &arbor_proto::ReconfigRequest,
    ) -> Result<(), ErrorCode> {
        if !self.tree_config.reconfig_enabled {
            return Ok(());
        }
        let Some(current) = self.recorded_membership() else {
            return Ok(());
        };
        if request.cur_config_id != -1 && request.cur_config_id != current.version {
            return Ok(());
        }
        let Ok(next) = current.reconfigured(
            &request.joining_servers,
            &request.leaving_servers,
            &request.new_members,
        ) else {
            return Ok(());
        };
        let status = self.raft.status();
        let fresh_ticks = self.config.election_timeout_ticks;
        let synced = |id: u64| {
            id == self.server_id
                || status
                    .progress
                    .get(&NodeId(id))
                    .or_else(|| status.guests.get(&NodeId(id)))
                    .is_some_and(|p| {
                        p.state == ProgressState::Replicate
                            && p.ticks_since_acked
                                .is_some_and(|ticks| ticks <= fresh_ticks)
                    })
        };
        let participants: Vec<u64> = next.participants().collect();
        let synced_count = participants.iter().filter(|&&id| synced(id)).count();
        if synced_count * 2 > participants.len() {
            Ok(())
        } else {
            debug!(
                ?participants,
                synced = synced_count,
                "reconfig waits: the new membership has no quorum of synced servers"
            );
            Err(ErrorCode::NewConfigNoQuorum)
        }
    }

    /// ZooKeeper's way to grow an ensemble: a server starts with a configuration naming the
    /// current members and itself, syncs from the leader as a learner, and a `reconfig` then
    /// makes it a member. Until the recorded membership names it, such a server asks the
    /// leader (or, not knowing it, every configured member) to replicate to it, every election
    /// timeout; the leader drops it two election timeouts after it falls silent. A server
    /// the recorded membership has named once never asks again: once removed it stays out.
    fn ask_to_be_replicated(&mut self, recorded: Option<&ClusterConfig>) {
        let me = self.server_id;
        if recorded.is_some_and(|config| config.members.contains_key(&me)) {
            self.was_member = true;
        }
        if self.was_member || self.is_leader() || !self.config.is_clustered() {
            return;
        }
        let Some(peer_address) = self.config.me().map(|member| member.peer_address) else {
            return;
        };
        let targets: BTreeSet<u64> = match self.leader {
            Some(NodeId(leader)) => BTreeSet::from([leader]),
            None => self
                .config
                .members
                .iter()
                .map(|member| u64::from(member.id))
                .chain(
                    recorded
                        .into_iter()
                        .flat_map(|config| config.participants()),
                )
                .filter(|&id| id != me)
                .collect(),
        };
        for to in targets {
            self.send_peer(to, &PeerMessage::Join { peer_address });
        }
    }

    /// Run on election, after a membership change and periodically (every election timeout).
    /// Every server: point the transport at the recorded members and the nodes Raft still
    /// replicates to. Leader: record the configured members if the config node is empty, and
    /// make Raft's membership match it.
    pub(super) fn maintain_membership(&mut self) {
        let recorded = self.recorded_membership();
        self.point_peer_links(recorded.as_ref());
        self.ask_to_be_replicated(recorded.as_ref());
        if !self.is_leader() || !self.config.is_clustered() {
            return;
        }
        let Some(recorded) = recorded else {
            if !self.config_bootstrap_pending {
                self.config_bootstrap_pending = true;
                let members = self.config.members_text();
                self.propose(Command::SetClusterConfig { members }, Waiter::Bootstrap);
            }
            return;
        };
        let status = self.raft.status();
        if status.conf_state.is_joint() {
            // The leader finishes the joint phase on its own; look again later.
            return;
        }
        let want_voters: BTreeSet<NodeId> = recorded.participants().map(NodeId).collect();
        let want_learners: BTreeSet<NodeId> = recorded.observers().map(NodeId).collect();
        let have = &status.conf_state;
        let mut changes = Vec::new();
        for &id in &want_voters {
            if !have.voters.contains(&id) {
                changes.push(ConfChangeSingle::AddVoter(id));
            }
        }
        for &id in &want_learners {
            if !have.learners.contains(&id) {
                changes.push(ConfChangeSingle::AddLearner(id));
            }
        }
        for &id in have.voters.iter().chain(have.learners.iter()) {
            if !want_voters.contains(&id) && !want_learners.contains(&id) {
                changes.push(ConfChangeSingle::Remove(id));
            }
        }
        if changes.is_empty() {
            return;
        }
        let change = ConfChange { changes };
        match self.raft.propose_conf_change(&change) {
            Ok(_) => info!(?change, "membership change proposed"),
            Err(error) => warn!(%error, ?change, "membership change not proposed yet; retried"),
        }
    }
}

/// The address a config line's host names: an IP, or `localhost`.
fn resolve(host: &str) -> Option<IpAddr> {
    if host == "localhost" {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.parse().ok()
}
