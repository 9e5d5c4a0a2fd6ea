//! Start-up: open the WAL, load the newest snapshot into the tree, and give Raft the durable
//! log and hard state. Raft then re-delivers the committed entries after the snapshot, which
//! the core applies before it accepts its first client.

use arbor_log::{LogConfig, Wal};
use arbor_raft::{
    ConfState, Config as RaftConfig, HardState, LogIndex, MemStorage, NodeId, RawNode, Snapshot,
    SnapshotMetadata, Term,
};
use arbor_tree::{DataTree, TreeConfig};
use bytes::Bytes;
use tracing::info;

use crate::ServerError;
use crate::config::ServerConfig;
use crate::core::Recovery;

/// Recovers the state in `config.data_dir` (blocking I/O: run it off the async threads).
pub(crate) fn recover(config: &ServerConfig) -> Result<Recovery, ServerError> {
    let dir = config.data_dir.clone();
    let fail = |reason: String| ServerError::Recovery {
        dir: dir.clone(),
        reason,
    };
    if dir.join("version-2").exists() {
        return Err(fail(
            "the directory holds Apache ZooKeeper data (version-2/), which arbor cannot read; \
             point dataDir at an empty directory"
                .into(),
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let tree_config = TreeConfig {
        super_digest: config.super_digest.clone(),
        extended_types_enabled: config.ttl_nodes_enabled,
        reconfig_enabled: config.reconfig_enabled && config.is_clustered(),
        // SASL users and certificate subjects are ACL ids on every server alike (the tree
        // config must not differ between replicas), whether or not this one authenticates so.
        additional_auth_schemes: vec![
            crate::sasl::SASL_SCHEME.to_owned(),
            crate::x509::X509_SCHEME.to_owned(),
        ],
        quota_enforced: config.quota_enforced,
    };
    let (wal, recovered) =
        Wal::open(LogConfig::new(dir.clone())).map_err(|e| fail(e.to_string()))?;
    let initial_conf = initial_conf_state(config);
    let mut storage = MemStorage::new_with_conf_state(initial_conf.clone());
    let (tree, conf_state, applied_index) = match recovered.snapshot {
        Some((meta, data)) => {
            let app = crate::envelope::decode_snapshot_app_meta(&meta.app_meta)
                .map_err(|e| fail(format!("snapshot at index {}: {e}", meta.index)))?;
            let tree = DataTree::read_snapshot(&mut data.as_slice(), tree_config.clone())
                .map_err(|e| fail(format!("snapshot at index {}: {e}", meta.index)))?;
            let snapshot = Snapshot {
                metadata: SnapshotMetadata {
                    index: LogIndex(meta.index),
                    term: Term(meta.term),
                    position: app.position,
                    conf_state: app.conf_state.clone(),
                },
                // The data stays on disk (see ArborStorage).
                data: Bytes::new(),
            };
            storage
                .apply_snapshot(snapshot)
                .map_err(|e| fail(format!("snapshot at index {}: {e}", meta.index)))?;
            (tree, app.conf_state, meta.index)
        }
        None => (DataTree::new(tree_config.clone()), initial_conf, 0),
    };
    let mut entries = Vec::with_capacity(recovered.entries.len());
    for entry in &recovered.entries {
        let decoded = crate::envelope::decode_wal_entry(entry.index, entry.term, &entry.data)
            .map_err(|e| fail(format!("log entry {}: {e}", entry.index)))?;
        entries.push(decoded);
    }
    storage.append(&entries);
    let hard = recovered.hard_state;
    storage.set_hard_state(HardState {
        term: Term(hard.term),
        vote: hard.vote.map(NodeId),
        commit: LogIndex(hard.commit.max(applied_index)),
    });
    let fresh = applied_index == 0 && entries.is_empty() && hard.term == 0;
    let (cluster_id, cluster_id_adoption) = cluster_identity(config, fresh).map_err(fail)?;
    let raft_config = raft_config(config);
    let storage = crate::storage::ArborStorage::new(storage, wal.snapshots());
    let raft = RawNode::new(&raft_config, storage).map_err(|e| fail(format!("raft: {e}")))?;
    info!(
        term = hard.term,
        commit = hard.commit,
        snapshot_index = applied_index,
        entries = entries.len(),
        nodes = tree.stats().node_count,
        sessions = tree.sessions().count(),
        "recovered"
    );
    Ok(Recovery {
        tree,
        tree_config,
        wal,
        raft,
        conf_state,
        applied_index,
        commit_index: hard.commit.max(applied_index),
        cluster_id,
        cluster_id_adoption,
    })
}

/// The file in the data directory that records the cluster id a clustered server uses.
pub(crate) const CLUSTER_ID_FILE: &str = "cluster-id";

/// The cluster id this server's peer transport uses, and where to record an adopted one
/// (`Some` only for a fresh observer, see `peer/identity.rs`). A configured id wins; else
/// the recorded one; else the one derived from the configuration, recorded at once so that
/// editing the file later (after a `reconfig`, as ZooKeeper users do) does not change it.
fn cluster_identity(
    config: &ServerConfig,
    fresh: bool,
) -> Result<(u64, Option<std::path::PathBuf>), String> {
    if let Some(id) = config.cluster_id {
        return Ok((id, None));
    }
    let derived = config.effective_cluster_id();
    if !config.is_clustered() {
        return Ok((derived, None));
    }
    let file = config.data_dir.join(CLUSTER_ID_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            return text.trim().parse().map(|id| (id, None)).map_err(|_| {
                format!(
                    "{}: {text:?} is not a cluster id (a decimal number)",
                    file.display()
                )
            });
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("{}: {error}", file.display())),
    }
    let joining_observer = fresh
        && config
            .me()
            .is_some_and(|me| me.role == crate::config::MemberRole::Observer);
    if joining_observer {
        // Recorded once it is known whether the cluster shares it or has another.
        return Ok((derived, Some(file)));
    }
    std::fs::write(&file, format!("{derived}\n"))
        .map_err(|error| format!("{}: {error}", file.display()))?;
    Ok((derived, None))
}

/// The membership a brand-new server starts from: the configured members, or, standalone, a
/// cluster of one voter (itself). A server with data takes it from its snapshot and log.
pub(crate) fn initial_conf_state(config: &ServerConfig) -> ConfState {
    if config.members.is_empty() {
        return ConfState::with_voters([NodeId(u64::from(config.server_id))]);
    }
    let mut conf = ConfState::default();
    for member in &config.members {
        let id = NodeId(u64::from(member.id));
        match member.role {
            crate::config::MemberRole::Participant => conf.voters.insert(id),
            crate::config::MemberRole::Observer => conf.learners.insert(id),
        };
    }
    conf
}

/// The Raft settings of this server.
fn raft_config(config: &ServerConfig) -> RaftConfig {
    let mut raft = RaftConfig::new(NodeId(u64::from(config.server_id)));
    raft.election_timeout_ticks = config.election_timeout_ticks;
    raft.heartbeat_interval_ticks = 1;
    raft.random_seed = rand::random();
    // An entry holds one client request (at most one frame) plus its envelope and stamps.
    raft.entry_bytes_max = u64::from(config.frame_size_bytes_max) + 64 * 1024;
    raft.append_bytes_max = raft.entry_bytes_max.max(raft.append_bytes_max);
    raft
}
