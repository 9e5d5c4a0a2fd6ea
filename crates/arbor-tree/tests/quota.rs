//! Quota accounting under `/zookeeper/quota`, replaying what `zkCli.sh setquota -n 10 /app`
//! does and comparing with what ZooKeeper 3.8.0 showed for the same session:
//! `count=2,bytes=5`, then `count=3,bytes=9`, `count=3,bytes=17`, `count=2,bytes=13`, with
//! the stats node's version staying 0.

mod common;

use arbor_tree::{DataTree, TreeConfig};
use common::Harness;

const LIMITS: &str = "/zookeeper/quota/app/zookeeper_limits";
const STATS: &str = "/zookeeper/quota/app/zookeeper_stats";

fn stats_of(tree: &DataTree, path: &str) -> String {
    let (data, _) = tree.get_data(path, &[]).unwrap();
    String::from_utf8(data.unwrap_or_default().to_vec()).unwrap()
}

fn set_quota(h: &mut Harness, path: &str) {
    let quota = format!("/zookeeper/quota{path}");
    h.create(&quota, b"").unwrap();
    h.create(
        &format!("{quota}/zookeeper_limits"),
        b"count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
    )
    .unwrap();
    h.create(&format!("{quota}/zookeeper_stats"), b"count=0,bytes=0")
        .unwrap();
}

#[test]
fn stats_follow_writes_below_the_quota_path() {
    let mut h = Harness::new();
    h.create("/app", b"abc").unwrap();
    h.create("/app/a", b"de").unwrap();
    set_quota(&mut h, "/app");
    assert_eq!(stats_of(&h.tree, STATS), "count=2,bytes=5");
    assert_eq!(
        stats_of(&h.tree, LIMITS),
        "count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"
    );
    let before = h.stat(STATS);

    let created = h.request(arbor_tree::WriteRequest::Create(common::create_request(
        "/app/b", b"1234", 0,
    )));
    // The stats node changes silently: no event for it.
    assert!(created.triggers.iter().all(|t| t.path != STATS));
    assert_eq!(stats_of(&h.tree, STATS), "count=3,bytes=9");
    h.set_data("/app/a", b"0123456789", -1).unwrap();
    assert_eq!(stats_of(&h.tree, STATS), "count=3,bytes=17");
    h.delete("/app/b", -1).unwrap();
    assert_eq!(stats_of(&h.tree, STATS), "count=2,bytes=13");
    let after = h.stat(STATS);
    assert_eq!((after.version, after.mzxid), (before.version, before.mzxid));
    assert_eq!(after.data_length, 16);
    // Writes outside the quota'd subtree do not count.
    h.create("/apple", b"xx").unwrap();
    assert_eq!(stats_of(&h.tree, STATS), "count=2,bytes=13");
    h.tree.assert_invariants();
}

#[test]
fn the_deepest_quota_counts_and_removing_a_limit_drops_the_ones_below() {
    let mut h = Harness::new();
    h.create("/app", b"").unwrap();
    h.create("/app/sub", b"").unwrap();
    set_quota(&mut h, "/app");
    set_quota(&mut h, "/app/sub");
    let sub_stats = "/zookeeper/quota/app/sub/zookeeper_stats";
    assert_eq!(stats_of(&h.tree, sub_stats), "count=1,bytes=0");
    h.create("/app/sub/x", b"1").unwrap();
    assert_eq!(stats_of(&h.tree, sub_stats), "count=2,bytes=1");
    assert_eq!(stats_of(&h.tree, STATS), "count=2,bytes=0");
    h.create("/app/y", b"22").unwrap();
    assert_eq!(stats_of(&h.tree, STATS), "count=3,bytes=2");

    // A snapshot keeps the quota paths.
    let mut bytes = Vec::new();
    h.tree.write_snapshot(&mut bytes).unwrap();
    let restored = DataTree::read_snapshot(&mut &bytes[..], TreeConfig::default()).unwrap();
    assert_eq!(restored, h.tree);

    // Deleting /app's limits removes /app/sub's quota too (PathTrie.deletePath drops the
    // subtree), so neither stats node moves any more.
    h.delete(LIMITS, -1).unwrap();
    h.create("/app/sub/z", b"333").unwrap();
    h.create("/app/w", b"4444").unwrap();
    assert_eq!(stats_of(&h.tree, sub_stats), "count=2,bytes=1");
    assert_eq!(stats_of(&h.tree, STATS), "count=3,bytes=2");
}

#[test]
fn unparsable_stats_are_left_alone() {
    let mut h = Harness::new();
    h.create("/app", b"").unwrap();
    set_quota(&mut h, "/app");
    h.set_data(STATS, b"garbage", -1).unwrap();
    h.create("/app/x", b"1").unwrap();
    assert_eq!(stats_of(&h.tree, STATS), "garbage");
    h.set_data(STATS, b"count=5,bytes=5;extra=1", -1).unwrap();
    h.create("/app/y", b"1").unwrap();
    assert_eq!(stats_of(&h.tree, STATS), "count=6,bytes=6=;extra=1");
}
