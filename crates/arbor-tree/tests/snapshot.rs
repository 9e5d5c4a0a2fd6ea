//! Snapshots: random trees survive write → read unchanged; a clone is a frozen view; any
//! damage to the bytes is refused.

mod common;

use arbor_tree::{DataTree, SnapshotError, TreeConfig};
use common::random::{build, step};
use proptest::prelude::*;

fn bytes_of(tree: &DataTree) -> Vec<u8> {
    let mut bytes = Vec::new();
    tree.write_snapshot(&mut bytes).unwrap();
    bytes
}

fn read(bytes: &[u8]) -> Result<DataTree, SnapshotError> {
    DataTree::read_snapshot(&mut &bytes[..], TreeConfig::default())
}

fn sample_tree() -> DataTree {
    let mut h = common::Harness::new();
    h.create("/app", b"config").unwrap();
    h.create_mode("/app/e-", b"", 3).unwrap();
    h.create_container("/c").unwrap();
    h.create_ttl("/t", 5, 60_000).unwrap();
    h.create_acl("/r", arbor_proto::Acl::read_unsafe()).unwrap();
    h.tree
}

proptest! {
    #![proptest_config(common::random::proptest_config(48))]

    #[test]
    fn random_trees_round_trip(steps in prop::collection::vec(step(), 0..200)) {
        let (tree, _) = build(&steps, TreeConfig::default());
        let bytes = bytes_of(&tree);
        let restored = read(&bytes).unwrap();
        restored.assert_invariants();
        prop_assert_eq!(&restored, &tree);
        prop_assert_eq!(restored.stats(), tree.stats());
        prop_assert_eq!(restored.last_applied_zxid(), tree.last_applied_zxid());
        prop_assert_eq!(bytes_of(&restored), bytes);
    }
}

#[test]
fn a_clone_is_a_frozen_view() {
    let mut tree = sample_tree();
    let frozen = tree.clone();
    let before = bytes_of(&frozen);
    let mut h = common::Harness {
        tree: std::mem::replace(&mut tree, DataTree::new(TreeConfig::default())),
        counter: 100,
        time_ms: 5_000_000,
        identities: vec![],
    };
    h.set_data("/app", b"changed", -1).unwrap();
    h.create("/app/new", b"").unwrap();
    h.close(common::SESSION);
    assert_eq!(bytes_of(&frozen), before);
    assert_eq!(read(&before).unwrap(), frozen);
    assert_ne!(h.tree, frozen);
    assert!(frozen.exists("/app/e-0000000000").is_ok());
}

#[test]
fn every_flipped_byte_is_refused() {
    let bytes = bytes_of(&sample_tree());
    for position in 0..bytes.len() {
        for flip in [0x01u8, 0x80] {
            let mut damaged = bytes.clone();
            damaged[position] ^= flip;
            assert!(
                read(&damaged).is_err(),
                "flip {flip:#x} at {position} went unnoticed"
            );
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    let bytes = bytes_of(&sample_tree());
    for length in 0..bytes.len() {
        assert!(
            read(&bytes[..length]).is_err(),
            "truncated to {length} bytes"
        );
    }
    // Bytes after the snapshot are not ours and are left alone.
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"next record");
    assert_eq!(read(&longer).unwrap(), sample_tree());
}

#[test]
fn foreign_or_mismatched_snapshots_are_named() {
    let bytes = bytes_of(&sample_tree());
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(matches!(read(&magic), Err(SnapshotError::BadMagic { .. })));
    let mut version = bytes.clone();
    version[8] = 9;
    assert!(matches!(
        read(&version),
        Err(SnapshotError::UnsupportedVersion {
            found: 9,
            supported: arbor_tree::SNAPSHOT_FORMAT_VERSION
        })
    ));
    version[8] = 0;
    assert!(matches!(
        read(&version),
        Err(SnapshotError::UnsupportedVersion { found: 0, .. })
    ));
    let mut checksum = bytes.clone();
    let last = checksum.len() - 1;
    checksum[last] ^= 1;
    assert!(matches!(
        read(&checksum),
        Err(SnapshotError::ChecksumMismatch { .. })
    ));
    let no_ttl = TreeConfig {
        extended_types_enabled: false,
        ..TreeConfig::default()
    };
    assert!(matches!(
        DataTree::read_snapshot(&mut &bytes[..], no_ttl),
        Err(SnapshotError::ConfigMismatch {
            snapshot: true,
            config: false
        })
    ));
    assert!(matches!(read(&[]), Err(SnapshotError::Io(_))));
}
