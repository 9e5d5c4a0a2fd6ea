//! Coverage-guided fuzzing of WAL recovery: `cargo +nightly fuzz run recovery`.
//!
//! The first input byte picks a mode. Raw mode splits the input into segment images. Mutation
//! mode starts from a real multi-segment log (written once through the WAL) and applies the
//! input as `(offset:u16le, xor:u8)` edits, which reaches the deep paths (valid frames, index
//! checks, segment boundaries) that random bytes rarely pass a CRC to reach. Either way,
//! recovery must not panic, and whatever it recovers must be a well-formed log.
#![no_main]

use std::sync::OnceLock;

use arbor_log::inspect::{self, ReplaySummary};
use arbor_log::{Entry, HardState, LogConfig, Wal, WriteBatch};
use libfuzzer_sys::fuzz_target;

fn valid_log() -> &'static Vec<(u64, Vec<u8>)> {
    static LOG: OnceLock<Vec<(u64, Vec<u8>)>> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = LogConfig {
            segment_size_bytes: 2048,
            batch_bytes_max: 1024,
            record_size_bytes_max: 400,
            ..LogConfig::new(dir.path())
        };
        let (wal, _) = Wal::open(config).expect("open a fresh WAL");
        let (done, wait) = std::sync::mpsc::channel();
        for index in 1..=12u64 {
            let term = 1 + index / 5;
            let batch = WriteBatch {
                hard_state: Some(HardState {
                    term,
                    vote: Some(1),
                    commit: index - 1,
                }),
                truncate_after: (index == 9).then_some(8),
                entries: vec![Entry {
                    index,
                    term,
                    data: vec![index as u8; 120].into(),
                }],
            };
            let done = done.clone();
            wal.submit(batch, Box::new(move |result| drop(done.send(result))))
                .expect("submit");
        }
        for _ in 1..=12 {
            wait.recv().expect("callback").expect("durable");
        }
        wal.close().expect("close");
        inspect::list_segments(dir.path())
            .expect("list")
            .into_iter()
            .map(|summary| (summary.seq, std::fs::read(&summary.path).expect("read")))
            .collect()
    })
}

fn check(summary: &ReplaySummary, snapshot_index: u64) {
    let mut expected = snapshot_index + 1;
    for (index, _) in &summary.entries {
        assert_eq!(*index, expected, "recovered entries are not contiguous");
        expected += 1;
    }
    assert!(summary.hard_state.commit <= (expected - 1).max(snapshot_index));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let images: Vec<(u64, Vec<u8>)> = if mode % 2 == 0 {
        let count = 1 + usize::from(mode / 2 % 3);
        let size = rest.len().div_ceil(count).max(1);
        rest.chunks(size)
            .enumerate()
            .map(|(seq, chunk)| (seq as u64, chunk.to_vec()))
            .collect()
    } else {
        let mut images = valid_log().clone();
        let victim = usize::from(mode / 2) % images.len();
        let bytes = &mut images[victim].1;
        for edit in rest.chunks_exact(3) {
            let offset = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % bytes.len();
            bytes[offset] ^= edit[2];
        }
        images
    };
    let snapshot = (mode >= 128).then_some((u64::from(mode % 16), u64::from(mode % 4)));
    let borrowed: Vec<(u64, &[u8])> = images
        .iter()
        .map(|(seq, bytes)| (*seq, bytes.as_slice()))
        .collect();
    if let Ok(summary) = inspect::replay_images(&borrowed, snapshot) {
        check(&summary, snapshot.map_or(0, |(index, _)| index));
    }
});
