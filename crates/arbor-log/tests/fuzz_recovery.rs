//! Fuzzing of recovery on the stable toolchain: arbitrary bytes as segment and snapshot files
//! never make recovery panic; it returns Ok or a clear error. Mutations of a valid log either
//! fail with an error or recover a state the log was in after one of its batches (a damaged
//! last frame is a torn tail; damage anywhere else must not change what is recovered).
//! The coverage-guided twin of these tests is `fuzz/fuzz_targets/recovery.rs` (cargo fuzz).

mod common;

use std::fs;
use std::sync::OnceLock;

use arbor_log::inspect;
use arbor_log::{LogError, Wal, WriteBatch};
use common::*;
use proptest::prelude::*;

type Images = Vec<(u64, Vec<u8>)>;
type History = Vec<Vec<(u64, u64)>>;

/// Segment images of a small valid log, with the `(index, term)` list after each of its
/// batches (the last one is what it recovers to).
fn valid_log() -> &'static (Images, History) {
    static LOG: OnceLock<(Images, History)> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(dir.path());
        config.segment_size_bytes = 2048;
        config.batch_bytes_max = 1024;
        config.record_size_bytes_max = 400;
        let (wal, _) = Wal::open(config.clone()).unwrap();
        for index in 1..=12 {
            write(
                &wal,
                WriteBatch {
                    hard_state: Some(hard_state(1 + index / 5, None, index - 1)),
                    ..WriteBatch {
                        entries: vec![entry_sized(index, 1 + index / 5, 150)],
                        ..WriteBatch::default()
                    }
                },
            )
            .unwrap();
        }
        write(
            &wal,
            WriteBatch {
                truncate_after: Some(11),
                entries: vec![entry(12, 4)],
                ..WriteBatch::default()
            },
        )
        .unwrap();
        wal.close().unwrap();
        let images: Vec<(u64, Vec<u8>)> = inspect::list_segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|summary| (summary.seq, fs::read(&summary.path).unwrap()))
            .collect();
        let appended: Vec<(u64, u64)> = (1..=12).map(|index| (index, 1 + index / 5)).collect();
        let mut history: History = (0..=12).map(|count| appended[..count].to_vec()).collect();
        let mut last = appended.clone();
        last[11] = (12, 4);
        history.push(last);
        let (_wal, recovered) = Wal::open(config).unwrap();
        assert_eq!(&index_terms(&recovered.entries), history.last().unwrap());
        assert!(images.len() >= 2, "the fuzz corpus should span segments");
        (images, history)
    })
}

fn replay(
    images: &[(u64, Vec<u8>)],
    snapshot: Option<(u64, u64)>,
) -> Result<inspect::ReplaySummary, LogError> {
    let borrowed: Vec<(u64, &[u8])> = images
        .iter()
        .map(|(seq, bytes)| (*seq, bytes.as_slice()))
        .collect();
    inspect::replay_images(&borrowed, snapshot)
}

/// Checks what any successful recovery must satisfy.
fn check_recovered(
    summary: &inspect::ReplaySummary,
    snapshot_index: u64,
) -> Result<(), TestCaseError> {
    let mut expected = snapshot_index + 1;
    for (index, _) in &summary.entries {
        prop_assert_eq!(
            *index,
            expected,
            "recovered entries are not contiguous after the snapshot"
        );
        expected += 1;
    }
    prop_assert!(summary.hard_state.commit <= (expected - 1).max(snapshot_index));
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: prop::sample::Index, bit: u8 },
    Set { at: prop::sample::Index, byte: u8 },
    Truncate { at: prop::sample::Index },
    ZeroRange { at: prop::sample::Index, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(at, byte)| Mutation::Set { at, byte }),
        any::<prop::sample::Index>().prop_map(|at| Mutation::Truncate { at }),
        (any::<prop::sample::Index>(), 1..600usize)
            .prop_map(|(at, len)| Mutation::ZeroRange { at, len }),
    ]
}

proptest! {
    #![proptest_config(common::proptest_config(2000))]

    #[test]
    fn random_bytes_as_segments_never_panic(
        segments in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..4),
        first_seq in 0..3u64,
        snapshot in proptest::option::of((0..20u64, 0..5u64)),
    ) {
        let images: Vec<(u64, Vec<u8>)> = segments
            .into_iter()
            .enumerate()
            .map(|(offset, bytes)| (first_seq + offset as u64, bytes))
            .collect();
        if let Ok(summary) = replay(&images, snapshot) {
            check_recovered(&summary, snapshot.map_or(0, |(index, _)| index))?;
        }
    }

    #[test]
    fn mutated_valid_log_recovers_a_prefix_or_fails_cleanly(
        segment in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let (images, history) = valid_log();
        let original = history.last().unwrap();
        let mut images = images.clone();
        let victim = segment.index(images.len());
        for mutation in &mutations {
            let bytes = &mut images[victim].1;
            let len = bytes.len();
            if len == 0 {
                break;
            }
            match mutation {
                Mutation::Flip { at, bit } => bytes[at.index(len)] ^= 1 << bit,
                Mutation::Set { at, byte } => bytes[at.index(len)] = *byte,
                Mutation::Truncate { at } => bytes.truncate(at.index(len)),
                Mutation::ZeroRange { at, len } => {
                    let start = at.index(bytes.len());
                    let end = (start + *len).min(bytes.len());
                    bytes[start..end].fill(0);
                }
            }
        }
        match replay(&images, None) {
            Ok(summary) => {
                check_recovered(&summary, 0)?;
                prop_assert!(
                    history.contains(&summary.entries),
                    "recovered {:?}, a state the log never was in", summary.entries
                );
                // Only damage to the very end of the log may shorten it.
                if victim + 1 < images.len() {
                    prop_assert_eq!(&summary.entries, original);
                }
            }
            Err(error) => {
                // A clear error names the damaged segment.
                let message = error.to_string();
                prop_assert!(!message.is_empty());
                // ... and points inside it.
                if let LogError::CorruptSegment { path, offset, .. } = &error {
                    let named = images.iter().find(|(seq, _)| {
                        path.to_string_lossy().contains(&format!("seg-{seq:020}.wal"))
                    });
                    prop_assert!(named.is_some_and(|(_, bytes)| *offset <= bytes.len() as u64), "{}", message);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(common::proptest_config(48))]

    /// The whole path through real files: `Wal::open` on random segment and snapshot files.
    #[test]
    fn open_on_random_files_never_panics(
        segment in proptest::collection::vec(any::<u8>(), 0..400),
        snapshot in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        seq in 0..2u64,
    ) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(format!("seg-{seq:020}.wal")), &segment).unwrap();
        if let Some(snapshot) = &snapshot {
            fs::write(dir.path().join("snap-00000000000000000003.snap"), snapshot).unwrap();
        }
        match Wal::open(small_config(dir.path())) {
            Ok((wal, recovered)) => {
                prop_assert!(snapshot.is_none(), "a random snapshot file verified");
                let summary = inspect::ReplaySummary {
                    hard_state: recovered.hard_state,
                    entries: index_terms(&recovered.entries),
                    torn_tail_offset: None,
                };
                check_recovered(&summary, 0)?;
                wal.close().unwrap();
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }
}
