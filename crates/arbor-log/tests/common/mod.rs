//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use arbor_log::{Entry, HardState, LogConfig, LogError, Wal, WriteBatch};
use bytes::Bytes;

/// How long a test waits for a callback before declaring the WAL stuck. It is a deadlock
/// guard, not a timing assumption: every wait returns as soon as the callback runs.
pub const STUCK: Duration = Duration::from_secs(60);

/// Small limits, so that a few entries fill a segment.
pub fn small_config(dir: &Path) -> LogConfig {
    LogConfig {
        segment_size_bytes: 16 * 1024,
        submit_queue_max: 64,
        batch_bytes_max: 4 * 1024,
        record_size_bytes_max: 1024,
        snapshots_retained: 2,
        ..LogConfig::new(dir)
    }
}

pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::from(format!("entry {index} of term {term}")),
    }
}

pub fn entry_sized(index: u64, term: u64, len: usize) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::from(vec![(index % 251) as u8; len]),
    }
}

pub fn append(first: u64, count: u64, term: u64) -> WriteBatch {
    WriteBatch {
        entries: (first..first + count)
            .map(|index| entry(index, term))
            .collect(),
        ..WriteBatch::default()
    }
}

pub fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

/// Submits and waits until the batch is durable.
pub fn write(wal: &Wal, batch: WriteBatch) -> Result<(), LogError> {
    let (sender, receiver) = mpsc::channel();
    wal.submit(
        batch,
        Box::new(move |result| {
            let _ = sender.send(result);
        }),
    )
    .unwrap_or_else(|error| panic!("submit refused: {error}"));
    receiver
        .recv_timeout(STUCK)
        .unwrap_or_else(|_| panic!("no durability callback within {STUCK:?}"))
}

pub fn index_terms(entries: &[Entry]) -> Vec<(u64, u64)> {
    entries
        .iter()
        .map(|entry| (entry.index, entry.term))
        .collect()
}

/// The WAL's segment files, in sequence order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("seg-") && name.ends_with(".wal")
        })
        .collect();
    paths.sort();
    paths
}

/// Copies the WAL's durable files (segments and snapshots, not temporaries or the lock).
pub fn copy_wal_files(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if (name.ends_with(".wal") || name.ends_with(".snap")) && !name.ends_with(".tmp") {
            fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// Proptest settings for `cases` cases with a fixed seed, so every run (and CI) explores the
/// same inputs; set `PROPTEST_RNG_SEED=<u64>` to explore others, `PROPTEST_CASES` for more.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, RngSeed};
    let base = Config::default();
    let rng_seed = match base.rng_seed {
        RngSeed::Random => RngSeed::Fixed(0x00a4_b04c_0de5_eed5),
        fixed => fixed,
    };
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        base.cases
    } else {
        cases
    };
    Config {
        cases,
        rng_seed,
        ..base
    }
}
