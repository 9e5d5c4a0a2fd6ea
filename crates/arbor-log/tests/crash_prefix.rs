//! Property: whatever a crash leaves on disk, recovery returns a prefix of what was submitted
//! (at batch granularity), and every batch whose callback reported durable is in it.
//!
//! The crash is simulated from the files themselves: inside each durability callback the
//! writer thread is parked, so the segment files hold exactly what has been fsynced so far.
//! A copy taken there is "the disk after a crash right now". Between two such copies lies one
//! unsynced write; a crash during it leaves any mix of its new bytes and the old ones
//! (any subset of sectors, the new segment's rename durable or not). Recovery of each such
//! state must give exactly the model before the write, or after it when all of it landed.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use arbor_log::inspect;
use arbor_log::{Entry, HardState, LogConfig, Wal, WriteBatch};
use bytes::Bytes;
use common::STUCK;
use proptest::prelude::*;

type Files = BTreeMap<u64, Vec<u8>>;

#[derive(Clone, Debug)]
enum Op {
    Append { count: u64, data_len: usize },
    NewLeader { back: u64, count: u64 },
    Commit { advance: u64, vote: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1..4u64, 0..300usize).prop_map(|(count, data_len)| Op::Append { count, data_len }),
        1 => (0..6u64, 0..3u64).prop_map(|(back, count)| Op::NewLeader { back, count }),
        2 => (0..6u64, any::<bool>()).prop_map(|(advance, vote)| Op::Commit { advance, vote }),
    ]
}

/// The log after some number of batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    entries: Vec<Entry>,
    hard_state: HardState,
}

impl Model {
    fn last_index(&self) -> u64 {
        self.entries.last().map_or(0, |entry| entry.index)
    }

    fn summary(&self) -> (Vec<(u64, u64)>, HardState) {
        (
            self.entries.iter().map(|e| (e.index, e.term)).collect(),
            self.hard_state,
        )
    }

    fn apply(&mut self, batch: &WriteBatch) {
        if let Some(after) = batch.truncate_after {
            self.entries.truncate(after as usize);
        }
        self.entries.extend(batch.entries.iter().cloned());
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = hard_state;
        }
    }
}

/// Turns ops into valid batches, and the model after each (`models[j]` is after `j` batches).
fn batches_of(ops: &[Op]) -> (Vec<WriteBatch>, Vec<Model>) {
    let mut model = Model::default();
    let mut models = vec![model.clone()];
    let mut batches = Vec::new();
    let mut term = 1;
    let data = |index: u64, len: usize| Bytes::from(vec![(index * 7 % 256) as u8; len]);
    for op in ops {
        let last = model.last_index();
        let batch = match *op {
            Op::Append { count, data_len } => WriteBatch {
                entries: (last + 1..=last + count)
                    .map(|index| Entry {
                        index,
                        term,
                        data: data(index, data_len),
                    })
                    .collect(),
                ..WriteBatch::default()
            },
            Op::NewLeader { back, count } => {
                term += 1;
                let after = last.saturating_sub(back).max(model.hard_state.commit);
                WriteBatch {
                    hard_state: Some(HardState {
                        term,
                        vote: None,
                        commit: model.hard_state.commit,
                    }),
                    truncate_after: Some(after),
                    entries: (after + 1..=after + count)
                        .map(|index| Entry {
                            index,
                            term,
                            data: data(index, 5),
                        })
                        .collect(),
                }
            }
            Op::Commit { advance, vote } => {
                let previous = model.hard_state;
                // A vote, once cast in a term, stands for the rest of it.
                let kept_vote = if previous.term == term {
                    previous.vote
                } else {
                    None
                };
                WriteBatch {
                    hard_state: Some(HardState {
                        term,
                        vote: kept_vote.or(vote.then_some(7)),
                        commit: (previous.commit + advance).min(last),
                    }),
                    ..WriteBatch::default()
                }
            }
        };
        model.apply(&batch);
        models.push(model.clone());
        batches.push(batch);
    }
    (batches, models)
}

fn config(dir: &Path) -> LogConfig {
    LogConfig {
        segment_size_bytes: 2048,
        submit_queue_max: 256,
        batch_bytes_max: 1024,
        record_size_bytes_max: 400,
        snapshots_retained: 2,
        ..LogConfig::new(dir)
    }
}

fn read_segments(dir: &Path) -> Files {
    inspect::list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|summary| (summary.seq, fs::read(&summary.path).unwrap()))
        .collect()
}

/// What the disk held at each durability point: `(last batch durable, files)`, where the
/// batches durable are those with callbacks run so far, plus any in the same frame.
#[derive(Debug)]
struct Point {
    batches_durable: usize,
    files: Files,
}

/// Runs the WAL over `batches`, all submitted at once so the writer merges what queued up,
/// and records the files at every durability point.
fn run(dir: &Path, batches: &[WriteBatch]) -> Vec<Point> {
    let (wal, _) = Wal::open(config(dir)).unwrap();
    let points = Arc::new(Mutex::new(vec![Point {
        batches_durable: 0,
        files: read_segments(dir),
    }]));
    let (done, all_done) = mpsc::channel();
    for (position, batch) in batches.iter().enumerate() {
        let (points, done, dir) = (points.clone(), done.clone(), dir.to_path_buf());
        wal.submit(
            batch.clone(),
            Box::new(move |result| {
                result.unwrap();
                let files = read_segments(&dir);
                let mut points = points.lock().unwrap();
                let durable = position + 1;
                match points.last_mut() {
                    Some(last) if last.files == files => last.batches_durable = durable,
                    _ => points.push(Point {
                        batches_durable: durable,
                        files,
                    }),
                }
                done.send(()).unwrap();
            }),
        )
        .unwrap();
    }
    for _ in batches {
        all_done.recv_timeout(STUCK).unwrap();
    }
    wal.close().unwrap();
    Arc::into_inner(points).unwrap().into_inner().unwrap()
}

fn replay(files: &Files) -> Result<(Vec<(u64, u64)>, HardState), arbor_log::LogError> {
    let images: Vec<(u64, &[u8])> = files
        .iter()
        .map(|(seq, bytes)| (*seq, bytes.as_slice()))
        .collect();
    inspect::replay_images(&images, None).map(|summary| (summary.entries, summary.hard_state))
}

/// A crash during the write from `before` to `after`: each chunk of changed bytes landed or
/// not, and a segment new in `after` may be missing altogether.
fn torn_between(before: &Files, after: &Files, seed: u64) -> Files {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let chunk = [1usize, 16, 512][(next() % 3) as usize];
    let mut torn = Files::new();
    for (seq, new) in after {
        let old = before.get(seq);
        if old.is_none() && next() % 4 == 0 {
            continue; // the rename of the new segment never became durable
        }
        let mut bytes = old.cloned().unwrap_or_else(|| vec![0; new.len()]);
        bytes.resize(new.len(), 0);
        for start in (0..new.len()).step_by(chunk) {
            let end = (start + chunk).min(new.len());
            if bytes[start..end] != new[start..end] && next() % 2 == 0 {
                bytes[start..end].copy_from_slice(&new[start..end]);
            }
        }
        torn.insert(*seq, bytes);
    }
    torn
}

proptest! {
    #![proptest_config(common::proptest_config(24))]

    #[test]
    fn crash_at_any_point_recovers_exactly_the_durable_prefix(
        ops in proptest::collection::vec(op(), 1..30),
        seeds in proptest::collection::vec(any::<u64>(), 4),
    ) {
        let (batches, models) = batches_of(&ops);
        let dir = tempfile::tempdir().unwrap();
        let points = run(dir.path(), &batches);
        prop_assert_eq!(points.last().unwrap().batches_durable, batches.len());

        for pair in points.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            // A crash right at a durability point loses nothing that was reported durable.
            prop_assert_eq!(replay(&before.files).unwrap(), models[before.batches_durable].summary());
            for seed in &seeds {
                let torn = torn_between(&before.files, &after.files, *seed);
                let recovered = replay(&torn);
                let expected = if torn == after.files {
                    models[after.batches_durable].summary()
                } else {
                    models[before.batches_durable].summary()
                };
                prop_assert_eq!(recovered.as_ref().ok(), Some(&expected), "seed {}: {:?}", seed, recovered);
            }
        }
        let last = points.last().unwrap();
        prop_assert_eq!(replay(&last.files).unwrap(), models[batches.len()].summary());

        // The whole path (files, repair, reopen) on one torn state, with entry data compared.
        let middle = &points[points.len() / 2..];
        if middle.len() >= 2 {
            let torn = torn_between(&middle[0].files, &middle[1].files, seeds[0]);
            let crashed = tempfile::tempdir().unwrap();
            for (seq, bytes) in &torn {
                fs::write(crashed.path().join(format!("seg-{seq:020}.wal")), bytes).unwrap();
            }
            let durable = if torn == middle[1].files { middle[1].batches_durable } else { middle[0].batches_durable };
            let (wal, recovered) = Wal::open(config(crashed.path())).unwrap();
            prop_assert_eq!(&recovered.entries, &models[durable].entries);
            prop_assert_eq!(recovered.hard_state, models[durable].hard_state);
            wal.close().unwrap();
        }
    }

    #[test]
    fn any_prefix_truncation_of_the_files_recovers_a_prefix_of_what_was_submitted(
        ops in proptest::collection::vec(op(), 1..30),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 8),
    ) {
        let (batches, models) = batches_of(&ops);
        let dir = tempfile::tempdir().unwrap();
        let points = run(dir.path(), &batches);
        let files = &points.last().unwrap().files;
        let total: usize = files.values().map(Vec::len).sum();
        let summaries: Vec<_> = models.iter().map(Model::summary).collect();
        for (cut, zero_fill) in &cuts {
            // Cut the concatenation of all segments at one byte: segments after the cut are
            // gone, the one it falls in is cut short (or its tail zeroed).
            let mut left = cut.index(total + 1);
            let mut truncated = Files::new();
            for (seq, bytes) in files {
                let keep = left.min(bytes.len());
                let mut kept = bytes[..keep].to_vec();
                if *zero_fill {
                    kept.resize(bytes.len(), 0);
                }
                truncated.insert(*seq, kept);
                left -= keep;
                if left == 0 {
                    break;
                }
            }
            let recovered = replay(&truncated);
            prop_assert!(
                recovered.as_ref().is_ok_and(|state| summaries.contains(state)),
                "cut at {}: {:?} is not a prefix of what was submitted", cut.index(total + 1), recovered
            );
        }
    }
}
