//! Replicas agree: random command sequences applied to two trees, one of them snapshotted,
//! restored from the bytes and continued, give the same outcome at every step and the same
//! final state (byte-identical snapshots included).

mod common;

use arbor_proto::Zxid;
use arbor_tree::{DataTree, TreeConfig};
use common::random::{Step, prelude, step, txn_for};
use proptest::prelude::*;

fn snapshot_bytes(tree: &DataTree) -> Vec<u8> {
    let mut bytes = Vec::new();
    tree.write_snapshot(&mut bytes).unwrap();
    bytes
}

proptest! {
    #![proptest_config(common::random::proptest_config(96))]

    #[test]
    fn replicas_agree_across_a_snapshot_and_restore(
        steps in prop::collection::vec(step(), 1..160),
        cut in any::<prop::sample::Index>(),
    ) {
        let config = TreeConfig::default();
        let mut leader = DataTree::new(config.clone());
        let mut follower = DataTree::new(config.clone());
        let steps: Vec<(Step, i64)> = prelude()
            .into_iter()
            .map(|command| (Step::Command(command), 0))
            .chain(steps)
            .collect();
        let cut = cut.index(steps.len());
        let mut time_ms = 1_000_000;
        for (index, (step, elapsed)) in steps.iter().enumerate() {
            if index == cut {
                // Snapshot from a clone while the original goes on; restore from the bytes.
                let frozen = follower.clone();
                let bytes = snapshot_bytes(&frozen);
                let restored = DataTree::read_snapshot(&mut &bytes[..], config.clone()).unwrap();
                prop_assert_eq!(&restored, &frozen);
                prop_assert_eq!(restored.stats(), frozen.stats());
                follower = restored;
            }
            time_ms += elapsed;
            let txn = txn_for(step, &leader, time_ms);
            let zxid = Zxid::from_parts(1, index as u32 + 1);
            let from_leader = leader.apply(zxid, &txn);
            let from_follower = follower.apply(zxid, &txn);
            prop_assert_eq!(&from_leader, &from_follower, "step {}: {:?}", index, txn);
            if !from_leader.triggers.is_empty() {
                prop_assert!(from_leader.result.is_ok());
            }
        }
        leader.assert_invariants();
        follower.assert_invariants();
        prop_assert_eq!(&leader, &follower);
        prop_assert_eq!(snapshot_bytes(&leader), snapshot_bytes(&follower));
    }
}

/// The generator must reach the interesting states, or the property above proves little.
#[test]
fn generator_reaches_successful_writes_of_every_kind() {
    use arbor_proto::{OpResult, Response};
    use arbor_tree::Command;
    use common::random::build;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut changes, mut cleanups, mut multis, mut ephemerals, mut nodes) = (0, 0, 0, 0, 0);
    for _ in 0..50 {
        let steps = prop::collection::vec(step(), 150)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let (tree, outcomes) = build(&steps, TreeConfig::default());
        tree.assert_invariants();
        let prelude_len = outcomes.len() - steps.len();
        for ((step, _), applied) in steps.iter().zip(&outcomes[prelude_len..]) {
            changes += usize::from(!applied.triggers.is_empty());
            let cleanup = matches!(
                step,
                Step::LeaderCleanup
                    | Step::Command(
                        Command::DeleteExpiredTtl { .. } | Command::DeleteEmptyContainer { .. }
                    )
            );
            cleanups += usize::from(cleanup && !applied.triggers.is_empty());
            if let Ok(Response::Multi(multi)) = &applied.result {
                let committed = !multi.results.is_empty()
                    && !multi
                        .results
                        .iter()
                        .any(|r| matches!(r, OpResult::Error { .. }));
                multis += usize::from(committed);
            }
        }
        ephemerals += tree.stats().ephemeral_count;
        nodes += tree.stats().node_count;
    }
    assert!(changes > 300, "{changes} state changes");
    assert!(cleanups > 10, "{cleanups} TTL/container deletions");
    assert!(multis > 5, "{multis} committed multis");
    assert!(ephemerals > 20, "{ephemerals} ephemerals left");
    assert!(nodes > 50 * 8, "{nodes} nodes in 50 trees");
}
