//! Membership changes by joint consensus (Raft §6, thesis §4.3).
//!
//! Every change of the voter set goes through a joint configuration C_old,new in which
//! elections and commitment need a majority of *both* halves; the leader then proposes the
//! empty "leave joint" change on its own once the first one is applied. This takes any number
//! of servers at once (ZooKeeper's `reconfig` adds and removes many), and it avoids the
//! single-server-change pitfalls (pitfall 6) by construction. Changes that leave the voter set
//! as it is (adding or removing learners only) are applied directly.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::types::{ConfState, NodeId};

/// One change to the membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConfChangeSingle {
    /// Make `0` a voter (a learner is promoted).
    AddVoter(NodeId),
    /// Make `0` a learner (a voter is demoted once the joint phase ends).
    AddLearner(NodeId),
    /// Remove `0` from the cluster.
    Remove(NodeId),
}

/// A membership change: a list of single changes applied together, or (when empty) the
/// instruction to leave the current joint configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfChange {
    /// The changes; empty means "leave joint".
    pub changes: Vec<ConfChangeSingle>,
}

/// Why a membership change cannot be decoded or applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ConfChangeError {
    /// The encoded bytes are malformed.
    #[error("malformed conf change encoding")]
    Malformed,
    /// The change cannot be applied to the current configuration.
    #[error("invalid conf change: {0}")]
    Invalid(&'static str),
}

const VERSION: u8 = 1;
const KIND_ADD_VOTER: u8 = 1;
const KIND_ADD_LEARNER: u8 = 2;
const KIND_REMOVE: u8 = 3;
/// Upper bound on changes in one entry: a cluster is small; this only caps decoding.
pub const CONF_CHANGES_MAX: usize = 1024;

impl ConfChange {
    /// The "leave joint configuration" change.
    pub fn leave_joint() -> ConfChange {
        ConfChange::default()
    }

    /// Whether this is the "leave joint" change.
    pub fn is_leave_joint(&self) -> bool {
        self.changes.is_empty()
    }

    /// Encodes as `[version u8][count u32 BE]([kind u8][node u64 BE])*`.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(5 + 9 * self.changes.len());
        buf.put_u8(VERSION);
        buf.put_u32(self.changes.len() as u32);
        for change in &self.changes {
            let (kind, node) = match change {
                ConfChangeSingle::AddVoter(n) => (KIND_ADD_VOTER, n),
                ConfChangeSingle::AddLearner(n) => (KIND_ADD_LEARNER, n),
                ConfChangeSingle::Remove(n) => (KIND_REMOVE, n),
            };
            buf.put_u8(kind);
            buf.put_u64(node.0);
        }
        buf.freeze()
    }

    /// Decodes what [`ConfChange::encode`] produced.
    ///
    /// # Errors
    /// [`ConfChangeError::Malformed`] on any inconsistency.
    pub fn decode(bytes: &[u8]) -> Result<ConfChange, ConfChangeError> {
        let (&version, rest) = bytes.split_first().ok_or(ConfChangeError::Malformed)?;
        if version != VERSION || rest.len() < 4 {
            return Err(ConfChangeError::Malformed);
        }
        let count = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = &rest[4..];
        if count > CONF_CHANGES_MAX || body.len() != count * 9 {
            return Err(ConfChangeError::Malformed);
        }
        let mut changes = Vec::with_capacity(count);
        for chunk in body.chunks_exact(9) {
            let mut id = [0u8; 8];
            id.copy_from_slice(&chunk[1..9]);
            let node = NodeId(u64::from_be_bytes(id));
            if node.0 == 0 {
                return Err(ConfChangeError::Malformed);
            }
            changes.push(match chunk[0] {
                KIND_ADD_VOTER => ConfChangeSingle::AddVoter(node),
                KIND_ADD_LEARNER => ConfChangeSingle::AddLearner(node),
                KIND_REMOVE => ConfChangeSingle::Remove(node),
                _ => return Err(ConfChangeError::Malformed),
            });
        }
        Ok(ConfChange { changes })
    }

    /// The configuration that results from applying this change to `conf`.
    ///
    /// # Errors
    /// [`ConfChangeError::Invalid`] when leaving a non-joint configuration, changing a joint
    /// one, or leaving no voter.
    pub fn apply_to(&self, conf: &ConfState) -> Result<ConfState, ConfChangeError> {
        if self.is_leave_joint() {
            if !conf.is_joint() {
                return Err(ConfChangeError::Invalid("not in a joint configuration"));
            }
            let mut next = conf.clone();
            next.voters_outgoing.clear();
            let demoted = std::mem::take(&mut next.learners_next);
            next.learners.extend(demoted);
            return Ok(next);
        }
        if conf.is_joint() {
            return Err(ConfChangeError::Invalid(
                "a joint configuration must be left first",
            ));
        }
        let mut next = conf.clone();
        for change in &self.changes {
            match *change {
                ConfChangeSingle::AddVoter(id) => {
                    next.learners.remove(&id);
                    next.learners_next.remove(&id);
                    next.voters.insert(id);
                }
                ConfChangeSingle::AddLearner(id) => {
                    next.voters.remove(&id);
                    next.learners.insert(id);
                }
                ConfChangeSingle::Remove(id) => {
                    next.voters.remove(&id);
                    next.learners.remove(&id);
                    next.learners_next.remove(&id);
                }
            }
        }
        if next.voters.is_empty() {
            return Err(ConfChangeError::Invalid("no voter would remain"));
        }
        if next.voters != conf.voters {
            // Enter C_old,new. A demoted voter keeps voting in the outgoing half and becomes
            // a learner only when the joint phase ends.
            next.voters_outgoing = conf.voters.clone();
            let demoted: Vec<NodeId> = next
                .learners
                .iter()
                .copied()
                .filter(|id| next.voters_outgoing.contains(id))
                .collect();
            for id in demoted {
                next.learners.remove(&id);
                next.learners_next.insert(id);
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> std::collections::BTreeSet<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let cc = ConfChange {
            changes: vec![
                ConfChangeSingle::AddVoter(NodeId(4)),
                ConfChangeSingle::Remove(NodeId(1)),
            ],
        };
        assert_eq!(ConfChange::decode(&cc.encode()), Ok(cc));
        assert_eq!(
            ConfChange::decode(&[1, 0, 0, 0, 9]),
            Err(ConfChangeError::Malformed)
        );
        assert_eq!(ConfChange::decode(&[]), Err(ConfChangeError::Malformed));
    }

    #[test]
    fn replacing_voters_goes_through_joint() {
        let conf = ConfState::with_voters(ids(&[1, 2, 3]));
        let cc = ConfChange {
            changes: vec![
                ConfChangeSingle::AddVoter(NodeId(4)),
                ConfChangeSingle::AddLearner(NodeId(3)),
            ],
        };
        let joint = cc.apply_to(&conf).unwrap();
        assert_eq!(joint.voters, ids(&[1, 2, 4]));
        assert_eq!(joint.voters_outgoing, ids(&[1, 2, 3]));
        assert_eq!(joint.learners_next, ids(&[3]));
        let done = ConfChange::leave_joint().apply_to(&joint).unwrap();
        assert!(!done.is_joint());
        assert_eq!(done.learners, ids(&[3]));
    }

    #[test]
    fn learner_only_changes_are_direct() {
        let conf = ConfState::with_voters(ids(&[1]));
        let cc = ConfChange {
            changes: vec![ConfChangeSingle::AddLearner(NodeId(2))],
        };
        let next = cc.apply_to(&conf).unwrap();
        assert!(!next.is_joint());
        assert_eq!(next.learners, ids(&[2]));
    }

    #[test]
    fn removing_every_voter_is_refused() {
        let conf = ConfState::with_voters(ids(&[1]));
        let cc = ConfChange {
            changes: vec![ConfChangeSingle::Remove(NodeId(1))],
        };
        assert!(cc.apply_to(&conf).is_err());
    }
}
