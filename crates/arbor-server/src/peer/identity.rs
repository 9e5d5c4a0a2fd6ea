//! Who this node is on the peer transport: its node id and its cluster id, which a fresh node
//! joining as an observer may take from the cluster it joins.
//!
//! A cluster id derived from a configuration file names the participants *that file* lists.
//! The files of a grown ensemble disagree (ZooKeeper adds a server by starting it with the
//! membership of the day, while the first servers keep the files they started with), so a
//! server added later derives an id its peers do not share. Such a server, when it is fresh
//! (no data) and configured as an observer, takes the id of the first peer it dials that
//! refuses it for the mismatch, records it (so that it keeps it across restarts), and dials
//! again. Only an observer does: a participant whose file disagrees with the others' on the
//! voters must stay refused, since Raft's safety rests on the voters agreeing on the initial
//! membership; an observer neither votes nor counts.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{error, warn};

use super::handshake::LocalIdentity;

/// This node's identity, shared by its dialers and its acceptor.
#[derive(Debug)]
pub(crate) struct Identity {
    node_id: u64,
    cluster_id: AtomicU64,
    /// Where an adopted id is recorded, while the node may still adopt one (taken on
    /// adoption: at most once per run).
    adoption: Mutex<Option<PathBuf>>,
}

impl Identity {
    pub(crate) fn new(node_id: u64, cluster_id: u64, adoption: Option<PathBuf>) -> Identity {
        Identity {
            node_id,
            cluster_id: AtomicU64::new(cluster_id),
            adoption: Mutex::new(adoption),
        }
    }

    /// The identity as the handshake states it now.
    pub(crate) fn local(&self) -> LocalIdentity {
        LocalIdentity {
            cluster_id: self.cluster_id.load(Ordering::Acquire),
            node_id: self.node_id,
        }
    }

    /// Peer `peer_id`, which we dialed, refused us because it belongs to cluster `theirs`.
    /// Returns whether this node took that id (it may, once, when configured to): the caller
    /// then dials again at once.
    pub(crate) fn adopt(&self, theirs: u64, peer_id: u64) -> bool {
        let mut adoption = self
            .adoption
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(file) = adoption.take() else {
            return false;
        };
        let ours = self.cluster_id.load(Ordering::Acquire);
        // Recorded first: an id used but not recorded would change at the next start.
        if let Err(io_error) = std::fs::write(&file, format!("{theirs}\n")) {
            error!(
                file = %file.display(),
                %io_error,
                "cannot record the cluster id to adopt; keeping ours"
            );
            return false;
        }
        self.cluster_id.store(theirs, Ordering::Release);
        warn!(
            derived = ours,
            adopted = theirs,
            peer_id,
            file = %file.display(),
            "joining as an observer: took the cluster id of the member that refused ours"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observer_adopts_once_and_records_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cluster-id");
        let identity = Identity::new(4, 7, Some(file.clone()));
        assert_eq!(identity.local().cluster_id, 7);
        assert!(identity.adopt(9, 1));
        assert_eq!(identity.local().cluster_id, 9);
        assert_eq!(identity.local().node_id, 4);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "9\n");
        // Once: a second mismatch (another cluster's member) changes nothing.
        assert!(!identity.adopt(11, 2));
        assert_eq!(identity.local().cluster_id, 9);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "9\n");
    }

    #[test]
    fn without_adoption_or_a_writable_file_the_id_stays() {
        let fixed = Identity::new(2, 7, None);
        assert!(!fixed.adopt(9, 1));
        assert_eq!(fixed.local().cluster_id, 7);
        let dir = tempfile::tempdir().unwrap();
        let unwritable = Identity::new(2, 7, Some(dir.path().join("missing/cluster-id")));
        assert!(!unwritable.adopt(9, 1));
        assert_eq!(unwritable.local().cluster_id, 7);
    }
}
