//! Majorities over a configuration that may be joint (C_old,new): an index is committed, a
//! vote is won, a lease is held only when *both* halves agree (Raft §6).

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{ConfState, NodeId};

/// The outcome of a vote count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// The largest value that a majority of `voters` has reached, given each voter's value
/// (absent voters count as `None`, below everything). An empty set imposes no constraint.
fn majority_value(voters: &BTreeSet<NodeId>, value: &dyn Fn(NodeId) -> Option<u64>) -> u64 {
    if voters.is_empty() {
        return u64::MAX;
    }
    let mut values: Vec<u64> = voters
        .iter()
        .map(|&id| value(id).map_or(0, |v| v.saturating_add(1)))
        .collect();
    values.sort_unstable_by(|a, b| b.cmp(a));
    // The (n/2 + 1)-th largest value is held by a majority.
    values[voters.len() / 2].saturating_sub(1)
}

/// The value a joint quorum agrees on: the minimum over both halves.
pub(crate) fn committed_value(conf: &ConfState, value: &dyn Fn(NodeId) -> Option<u64>) -> u64 {
    let incoming = majority_value(&conf.voters, value);
    let outgoing = majority_value(&conf.voters_outgoing, value);
    incoming.min(outgoing)
}

fn majority_vote(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut granted, mut missing) = (0, 0);
    for id in voters {
        match votes.get(id) {
            Some(true) => granted += 1,
            Some(false) => {}
            None => missing += 1,
        }
    }
    let quorum = voters.len() / 2 + 1;
    if granted >= quorum {
        VoteResult::Won
    } else if granted + missing >= quorum {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

/// Counts votes over a possibly joint configuration.
pub(crate) fn vote_result(conf: &ConfState, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let incoming = majority_vote(&conf.voters, votes);
    let outgoing = majority_vote(&conf.voters_outgoing, votes);
    match (incoming, outgoing) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

/// Whether the set of nodes `active` forms a quorum.
pub(crate) fn is_quorum(conf: &ConfState, active: &dyn Fn(NodeId) -> bool) -> bool {
    let votes: BTreeMap<NodeId, bool> = conf
        .voters
        .iter()
        .chain(conf.voters_outgoing.iter())
        .map(|&id| (id, active(id)))
        .collect();
    vote_result(conf, &votes) == VoteResult::Won
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> BTreeSet<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn majority_of_three_needs_two() {
        let conf = ConfState::with_voters(ids(&[1, 2, 3]));
        let matched = |id: NodeId| match id.0 {
            1 => Some(5),
            2 => Some(3),
            _ => None,
        };
        assert_eq!(committed_value(&conf, &matched), 3);
    }

    #[test]
    fn joint_commit_is_the_minimum_of_both_halves() {
        let conf = ConfState {
            voters: ids(&[1, 2, 3]),
            voters_outgoing: ids(&[3, 4, 5]),
            ..ConfState::default()
        };
        let matched = |id: NodeId| Some([0, 9, 9, 4, 2, 1][id.0 as usize]);
        assert_eq!(committed_value(&conf, &matched), 2);
    }

    #[test]
    fn joint_vote_needs_both_majorities() {
        let conf = ConfState {
            voters: ids(&[1, 2, 3]),
            voters_outgoing: ids(&[1, 4, 5]),
            ..ConfState::default()
        };
        let mut votes = BTreeMap::new();
        votes.insert(NodeId(1), true);
        votes.insert(NodeId(2), true);
        assert_eq!(vote_result(&conf, &votes), VoteResult::Pending);
        votes.insert(NodeId(4), false);
        votes.insert(NodeId(5), false);
        assert_eq!(vote_result(&conf, &votes), VoteResult::Lost);
    }
}
