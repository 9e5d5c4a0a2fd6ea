//! Start-up: open the WAL, load the newest snapshot, replay the log after it, and start a new
//! term so every zxid this run assigns is above every zxid of earlier runs.

use arbor_log::{HardState, LogConfig, Wal, WriteBatch};
use arbor_proto::Zxid;
use arbor_tree::{DataTree, TreeConfig, Txn};
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
        ..TreeConfig::default()
    };
    let (wal, recovered) =
        Wal::open(LogConfig::new(dir.clone())).map_err(|e| fail(e.to_string()))?;
    let (mut tree, mut last_index, mut last_term) = match recovered.snapshot {
        Some((meta, data)) => {
            let tree = DataTree::read_snapshot(&mut data.as_slice(), tree_config.clone())
                .map_err(|e| fail(format!("snapshot at index {}: {e}", meta.index)))?;
            (tree, meta.index, meta.term)
        }
        None => (DataTree::new(tree_config.clone()), 0, 0),
    };
    let replayed = recovered.entries.len();
    for entry in recovered.entries {
        let txn = Txn::decode(&entry.data)
            .map_err(|e| fail(format!("log entry {} does not decode: {e}", entry.index)))?;
        let previous = tree.last_applied_zxid();
        let epoch = entry.term as u32;
        let counter = if previous.epoch() == epoch {
            previous.counter().wrapping_add(1)
        } else {
            1
        };
        tree.apply(Zxid::from_parts(epoch, counter), &txn);
        last_index = entry.index;
        last_term = entry.term;
    }
    // A new term for this run, durable before any write of it is acknowledged, as a Raft
    // leader's term would be: zxids of this run sort after every earlier one.
    let term = recovered.hard_state.term.max(last_term) + 1;
    let hard_state = HardState {
        term,
        vote: Some(u64::from(config.server_id)),
        commit: last_index,
    };
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    wal.submit(
        WriteBatch {
            hard_state: Some(hard_state),
            truncate_after: None,
            entries: Vec::new(),
        },
        Box::new(move |result| {
            let _ = done_tx.send(result.map_err(|e| e.to_string()));
        }),
    )
    .map_err(|e| fail(format!("cannot persist the new term: {e}")))?;
    done_rx
        .recv()
        .map_err(|_| fail("the WAL stopped before persisting the new term".into()))?
        .map_err(|e| fail(format!("cannot persist the new term: {e}")))?;
    info!(
        term,
        last_index,
        replayed,
        zxid = %tree.last_applied_zxid(),
        nodes = tree.stats().node_count,
        sessions = tree.sessions().count(),
        "recovered"
    );
    Ok(Recovery {
        tree,
        tree_config,
        wal,
        term,
        last_index,
        last_term,
    })
}
