//! The WAL through its public API: round trips, group commit, limits, segment rolls,
//! truncation, snapshots and compaction.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use arbor_log::{BatchError, LogError, SnapshotMeta, SubmitError, Wal, WriteBatch, inspect};
use common::*;

#[test]
fn round_trip_of_entries_and_hard_state() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, recovered) = Wal::open(small_config(dir.path())).unwrap();
    assert_eq!(recovered, Default::default());
    write(&wal, append(1, 3, 1)).unwrap();
    write(
        &wal,
        WriteBatch {
            hard_state: Some(hard_state(1, Some(2), 2)),
            ..append(4, 2, 1)
        },
    )
    .unwrap();
    wal.close().unwrap();

    let (wal, recovered) = Wal::open(small_config(dir.path())).unwrap();
    assert_eq!(recovered.hard_state, hard_state(1, Some(2), 2));
    assert_eq!(
        recovered.entries,
        (1..=5).map(|index| entry(index, 1)).collect::<Vec<_>>()
    );
    assert_eq!(recovered.torn_tail, None);
    assert_eq!(recovered.last_index(), 5);
    // And it continues where it stopped.
    write(&wal, append(6, 1, 1)).unwrap();
    wal.close().unwrap();
    let (_wal, recovered) = Wal::open(small_config(dir.path())).unwrap();
    assert_eq!(recovered.last_index(), 6);
}

#[test]
fn group_commit_merges_submissions_that_arrive_during_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    // Hold the writer inside the first batch's callback, after its fdatasync.
    let (entered, writer_busy) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    wal.submit(
        append(1, 1, 1),
        Box::new(move |result| {
            result.unwrap();
            entered.send(()).unwrap();
            released.recv().unwrap();
        }),
    )
    .unwrap();
    writer_busy.recv_timeout(STUCK).unwrap();
    assert_eq!(wal.stats().fsyncs, 1);

    let order = Arc::new(Mutex::new(Vec::new()));
    let (done, all_done) = mpsc::channel();
    for index in 2..=11 {
        let order = order.clone();
        let done = done.clone();
        wal.submit(
            append(index, 1, 1),
            Box::new(move |result| {
                result.unwrap();
                order.lock().unwrap().push(index);
                done.send(()).unwrap();
            }),
        )
        .unwrap();
    }
    release.send(()).unwrap();
    for _ in 2..=11 {
        all_done.recv_timeout(STUCK).unwrap();
    }
    let stats = wal.stats();
    assert_eq!(
        stats.fsyncs, 2,
        "ten waiting batches take one write: {stats:?}"
    );
    assert_eq!(stats.writes, 2);
    assert_eq!(stats.batches, 11);
    assert_eq!(stats.entries, 11);
    assert_eq!(*order.lock().unwrap(), (2..=11).collect::<Vec<_>>());
    wal.close().unwrap();
}

#[test]
fn concurrent_submitters_share_fsyncs_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.submit_queue_max = 4096;
    let (wal, _) = Wal::open(config.clone()).unwrap();
    let wal = Arc::new(wal);
    // Indexes must be contiguous in submission order, so submitters take the next index under
    // a lock; the writer may still merge whatever queued up while it was syncing.
    let next_index = Arc::new(Mutex::new(1u64));
    let durable = Arc::new(AtomicUsize::new(0));
    let (done, all_done) = mpsc::channel();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (wal, next_index, durable, done) = (
                wal.clone(),
                next_index.clone(),
                durable.clone(),
                done.clone(),
            );
            thread::spawn(move || {
                for _ in 0..100 {
                    let mut next = next_index.lock().unwrap();
                    let durable = durable.clone();
                    let done = done.clone();
                    wal.submit(
                        append(*next, 1, 1),
                        Box::new(move |result| {
                            result.unwrap();
                            durable.fetch_add(1, Ordering::SeqCst);
                            done.send(()).unwrap();
                        }),
                    )
                    .unwrap();
                    *next += 1;
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for _ in 0..400 {
        all_done.recv_timeout(STUCK).unwrap();
    }
    let stats = wal.stats();
    assert_eq!(durable.load(Ordering::SeqCst), 400);
    assert_eq!(stats.batches, 400);
    assert!(stats.fsyncs <= 400, "{stats:?}");
    let wal = Arc::into_inner(wal).unwrap();
    wal.close().unwrap();
    let (_wal, recovered) = Wal::open(config).unwrap();
    assert_eq!(recovered.last_index(), 400);
}

#[test]
fn empty_batch_is_a_barrier_without_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    write(&wal, WriteBatch::default()).unwrap();
    assert_eq!(wal.stats().fsyncs, 0);
    assert_eq!(wal.stats().batches, 1);
    wal.close().unwrap();
}

#[test]
fn full_queue_is_refused_not_grown() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let capacity = config.submit_queue_max;
    let (wal, _) = Wal::open(config).unwrap();
    let (entered, writer_busy) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    wal.submit(
        append(1, 1, 1),
        Box::new(move |_| {
            entered.send(()).unwrap();
            released.recv().unwrap();
        }),
    )
    .unwrap();
    writer_busy.recv_timeout(STUCK).unwrap();
    let (done, all_done) = mpsc::channel();
    for index in 2..2 + capacity as u64 {
        let done = done.clone();
        wal.submit(
            append(index, 1, 1),
            Box::new(move |result| done.send(result).unwrap()),
        )
        .unwrap();
    }
    let refused = wal.submit(append(2 + capacity as u64, 1, 1), Box::new(|_| {}));
    assert!(matches!(refused, Err(SubmitError::Full { capacity: c }) if c == capacity));
    assert_eq!(wal.stats().queue_full, 1);
    release.send(()).unwrap();
    for _ in 0..capacity {
        all_done.recv_timeout(STUCK).unwrap().unwrap();
    }
    // The refused batch was not accepted, so the same index is next.
    write(&wal, append(2 + capacity as u64, 1, 1)).unwrap();
    wal.close().unwrap();
}

#[test]
fn oversized_entries_and_broken_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (wal, _) = Wal::open(config.clone()).unwrap();
    let too_big = WriteBatch {
        entries: vec![entry_sized(1, 1, config.record_size_bytes_max as usize)],
        ..WriteBatch::default()
    };
    assert!(matches!(
        wal.submit(too_big, Box::new(|_| {})),
        Err(SubmitError::Invalid(BatchError::EntryTooLarge {
            index: 1,
            ..
        }))
    ));
    assert!(matches!(
        wal.submit(append(2, 1, 1), Box::new(|_| {})),
        Err(SubmitError::Invalid(BatchError::IndexNotContiguous {
            expected: 1,
            found: 2
        }))
    ));
    write(
        &wal,
        WriteBatch {
            hard_state: Some(hard_state(1, None, 2)),
            ..append(1, 3, 1)
        },
    )
    .unwrap();
    assert!(matches!(
        wal.submit(
            WriteBatch {
                truncate_after: Some(1),
                ..WriteBatch::default()
            },
            Box::new(|_| {})
        ),
        Err(SubmitError::Invalid(BatchError::TruncatesCommitted { .. }))
    ));
    assert!(matches!(
        wal.compact(2),
        Err(SubmitError::Invalid(BatchError::CompactNotCovered {
            index: 2,
            snapshot_index: 0
        }))
    ));
    wal.close().unwrap();
}

#[test]
fn a_directory_is_opened_by_one_wal_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    assert!(matches!(
        Wal::open(small_config(dir.path())),
        Err(LogError::Locked { .. })
    ));
    // A snapshot handle that outlives the WAL keeps the directory locked.
    let store = wal.snapshots();
    wal.close().unwrap();
    assert!(matches!(
        Wal::open(small_config(dir.path())),
        Err(LogError::Locked { .. })
    ));
    drop(store);
    assert!(Wal::open(small_config(dir.path())).is_ok());
}

#[test]
fn segments_roll_over_and_recover_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (wal, _) = Wal::open(config.clone()).unwrap();
    for index in 1..=100 {
        write(
            &wal,
            WriteBatch {
                entries: vec![entry_sized(index, 1 + index / 50, 700)],
                hard_state: Some(hard_state(1 + index / 50, None, index - 1)),
                ..WriteBatch::default()
            },
        )
        .unwrap();
    }
    let stats = wal.stats();
    assert!(stats.segments_rolled >= 4, "{stats:?}");
    wal.close().unwrap();

    let summaries = inspect::list_segments(dir.path()).unwrap();
    assert_eq!(summaries.len() as u64, stats.segments_rolled + 1);
    let mut expected_first = 1;
    for summary in &summaries {
        assert_eq!(summary.first_index, Some(expected_first), "{summary:?}");
        assert_eq!(summary.prev_index, Some(expected_first - 1));
        expected_first = summary.last_index.unwrap() + 1;
        assert!(summary.size_bytes <= config.segment_size_bytes);
    }
    assert_eq!(expected_first, 101);

    let (_wal, recovered) = Wal::open(config).unwrap();
    assert_eq!(recovered.entries.len(), 100);
    assert_eq!(recovered.entries[99], entry_sized(100, 3, 700));
    assert_eq!(recovered.hard_state, hard_state(3, None, 99));
}

#[test]
fn truncate_after_then_append_survives_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (wal, _) = Wal::open(config.clone()).unwrap();
    write(
        &wal,
        WriteBatch {
            hard_state: Some(hard_state(1, Some(1), 3)),
            ..append(1, 10, 1)
        },
    )
    .unwrap();
    // A new leader of term 2 overwrites the uncommitted entries 6..=10.
    write(
        &wal,
        WriteBatch {
            hard_state: Some(hard_state(2, None, 3)),
            truncate_after: Some(5),
            entries: (6..=8).map(|index| entry(index, 2)).collect(),
        },
    )
    .unwrap();
    // A bare truncation without entries.
    write(
        &wal,
        WriteBatch {
            truncate_after: Some(7),
            ..WriteBatch::default()
        },
    )
    .unwrap();
    wal.close().unwrap();

    let (wal, recovered) = Wal::open(config.clone()).unwrap();
    let mut expected: Vec<(u64, u64)> = (1..=5).map(|index| (index, 1)).collect();
    expected.extend([(6, 2), (7, 2)]);
    assert_eq!(index_terms(&recovered.entries), expected);
    assert_eq!(recovered.hard_state, hard_state(2, None, 3));
    write(&wal, append(8, 1, 2)).unwrap();
    wal.close().unwrap();
    let (_wal, recovered) = Wal::open(config).unwrap();
    assert_eq!(recovered.last_index(), 8);
}

#[test]
fn truncation_reaching_into_an_earlier_segment_survives_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (wal, _) = Wal::open(config.clone()).unwrap();
    for index in 1..=40 {
        write(
            &wal,
            WriteBatch {
                entries: vec![entry_sized(index, 1, 600)],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    }
    assert!(wal.stats().segments_rolled >= 1);
    write(
        &wal,
        WriteBatch {
            truncate_after: Some(3),
            entries: vec![entry(4, 2)],
            ..WriteBatch::default()
        },
    )
    .unwrap();
    wal.close().unwrap();
    let (_wal, recovered) = Wal::open(config).unwrap();
    assert_eq!(
        index_terms(&recovered.entries),
        vec![(1, 1), (2, 1), (3, 1), (4, 2)]
    );
}

fn save_snapshot(wal: &Wal, index: u64, term: u64, data: &[u8]) {
    let meta = SnapshotMeta {
        index,
        term,
        app_meta: format!("config at {index}").into_bytes(),
    };
    wal.snapshots()
        .save(&meta, &mut |out: &mut dyn Write| out.write_all(data))
        .unwrap();
}

#[test]
fn snapshot_compaction_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (wal, _) = Wal::open(config.clone()).unwrap();
    for index in 1..=80 {
        write(
            &wal,
            WriteBatch {
                entries: vec![entry_sized(index, 1, 700)],
                hard_state: Some(hard_state(1, Some(1), index)),
                ..WriteBatch::default()
            },
        )
        .unwrap();
    }
    let before = segments(dir.path()).len();
    assert!(before >= 4);
    save_snapshot(&wal, 60, 1, b"state at 60");
    wal.compact(60).unwrap();
    write(
        &wal,
        WriteBatch {
            entries: vec![entry(81, 1)],
            ..WriteBatch::default()
        },
    )
    .unwrap();
    wal.close().unwrap();

    let after = segments(dir.path()).len();
    assert!(
        after < before,
        "compaction removed nothing: {before} -> {after}"
    );
    let summaries = inspect::list_segments(dir.path()).unwrap();
    let first = &summaries[0];
    assert!(first.prev_index.unwrap() <= 60, "{first:?}");
    assert!(
        summaries[1].prev_index.unwrap() > 60,
        "kept a removable segment"
    );

    let (_wal, recovered) = Wal::open(config).unwrap();
    let (meta, data) = recovered.snapshot.clone().unwrap();
    assert_eq!((meta.index, meta.term), (60, 1));
    assert_eq!(meta.app_meta, b"config at 60");
    assert_eq!(data, b"state at 60");
    assert_eq!(recovered.entries.first().map(|entry| entry.index), Some(61));
    assert_eq!(recovered.last_index(), 81);
    // The hard state lived in deleted segments too; the segment headers carried it over.
    assert_eq!(recovered.hard_state, hard_state(1, Some(1), 80));
}

#[test]
fn snapshot_beyond_the_log_then_reset_recovers() {
    // A follower installs a leader's snapshot at 100 while its own log ends at 3.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (wal, _) = Wal::open(config.clone()).unwrap();
    write(&wal, append(1, 3, 1)).unwrap();
    let reset = WriteBatch {
        truncate_after: Some(100),
        hard_state: Some(hard_state(4, None, 100)),
        entries: vec![entry(101, 4)],
    };
    assert!(matches!(
        wal.submit(reset.clone(), Box::new(|_| {})),
        Err(SubmitError::Invalid(BatchError::ResetNotCovered { .. }))
    ));
    save_snapshot(&wal, 100, 4, b"leader state");
    write(&wal, reset).unwrap();
    wal.close().unwrap();
    let (_wal, recovered) = Wal::open(config).unwrap();
    assert_eq!(recovered.snapshot.as_ref().unwrap().0.index, 100);
    assert_eq!(index_terms(&recovered.entries), vec![(101, 4)]);
    assert_eq!(recovered.hard_state.commit, 100);
}

#[test]
fn installing_a_leader_snapshot_over_a_stale_entry_keeps_what_follows() {
    // This follower holds 1..=5 of term 1; the leader's snapshot at 4 has term 2, so the
    // follower's entry 4 is stale. It saves the snapshot, truncates after 4 and appends.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (wal, _) = Wal::open(config.clone()).unwrap();
    write(
        &wal,
        WriteBatch {
            hard_state: Some(hard_state(1, None, 2)),
            ..append(1, 5, 1)
        },
    )
    .unwrap();
    save_snapshot(&wal, 4, 2, b"leader state at 4");
    write(
        &wal,
        WriteBatch {
            hard_state: Some(hard_state(2, None, 4)),
            truncate_after: Some(4),
            entries: vec![entry(5, 2), entry(6, 2)],
        },
    )
    .unwrap();
    wal.close().unwrap();
    let (_wal, recovered) = Wal::open(config).unwrap();
    assert_eq!(recovered.snapshot.as_ref().unwrap().0.term, 2);
    assert_eq!(index_terms(&recovered.entries), vec![(5, 2), (6, 2)]);
}

#[test]
fn snapshot_saved_but_reset_lost_is_reconciled_on_open() {
    // A crash between saving a leader's snapshot and recording the reset: the log still ends
    // at 3, behind the snapshot. Recovery returns no entries and records the reset itself.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (wal, _) = Wal::open(config.clone()).unwrap();
    write(&wal, append(1, 3, 1)).unwrap();
    save_snapshot(&wal, 50, 2, b"leader state");
    wal.close().unwrap();
    let (wal, recovered) = Wal::open(config.clone()).unwrap();
    assert!(recovered.entries.is_empty());
    assert_eq!(recovered.last_index(), 50);
    write(&wal, append(51, 1, 2)).unwrap();
    wal.close().unwrap();
    let (_wal, recovered) = Wal::open(config).unwrap();
    assert_eq!(index_terms(&recovered.entries), vec![(51, 2)]);
}

#[test]
fn writing_a_snapshot_does_not_block_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    write(&wal, append(1, 1, 1)).unwrap();
    let meta = SnapshotMeta {
        index: 1,
        term: 1,
        app_meta: Vec::new(),
    };
    let snapshots = wal.snapshots();
    // While the snapshot is being streamed, an append must become durable; if saving held
    // anything the writer needs, this would deadlock (and trip the STUCK guard).
    snapshots
        .save(&meta, &mut |out: &mut dyn Write| {
            out.write_all(b"first half")?;
            write(&wal, append(2, 1, 1)).unwrap();
            out.write_all(b"second half")
        })
        .unwrap();
    // And from another thread, concurrently with appends.
    let saver = {
        let snapshots = wal.snapshots();
        thread::spawn(move || {
            let meta = SnapshotMeta {
                index: 2,
                term: 1,
                app_meta: Vec::new(),
            };
            snapshots
                .save(&meta, &mut |out: &mut dyn Write| {
                    out.write_all(&vec![7u8; 1 << 20])
                })
                .unwrap();
        })
    };
    for index in 3..=20 {
        write(&wal, append(index, 1, 1)).unwrap();
    }
    saver.join().unwrap();
    assert_eq!(wal.snapshots().newest_index(), 2);
    wal.close().unwrap();
}

#[test]
fn corrupt_newest_snapshot_is_refused_even_with_an_older_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let (wal, _) = Wal::open(config.clone()).unwrap();
    write(&wal, append(1, 10, 1)).unwrap();
    save_snapshot(&wal, 4, 1, b"older");
    save_snapshot(&wal, 8, 1, b"newer");
    wal.close().unwrap();
    let newest = inspect::list_snapshots(dir.path()).unwrap().pop().unwrap();
    assert_eq!(newest.name_index, 8);
    let mut bytes = std::fs::read(&newest.path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&newest.path, &bytes).unwrap();

    match Wal::open(config) {
        Err(error @ LogError::CorruptSnapshot { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains(&newest.path.display().to_string()),
                "{message}"
            );
        }
        other => panic!("expected a corrupt snapshot error, got {other:?}"),
    }
    let summaries = inspect::list_snapshots(dir.path()).unwrap();
    assert!(summaries[0].verified.is_ok());
    assert!(summaries[1].verified.is_err());
}

#[test]
fn old_snapshots_beyond_the_retained_count_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.snapshots_retained = 3;
    let (wal, _) = Wal::open(config).unwrap();
    write(&wal, append(1, 10, 1)).unwrap();
    for index in 1..=6 {
        save_snapshot(&wal, index, 1, b"s");
    }
    wal.close().unwrap();
    let kept: Vec<u64> = inspect::list_snapshots(dir.path())
        .unwrap()
        .iter()
        .map(|summary| summary.name_index)
        .collect();
    assert_eq!(kept, vec![4, 5, 6]);
}

#[test]
fn close_runs_every_pending_callback() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    let durable = Arc::new(AtomicUsize::new(0));
    for index in 1..=30 {
        let durable = durable.clone();
        wal.submit(
            append(index, 1, 1),
            Box::new(move |result| {
                result.unwrap();
                durable.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
    }
    wal.close().unwrap();
    assert_eq!(durable.load(Ordering::SeqCst), 30);
}

#[test]
fn inspect_lists_records_with_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    write(&wal, append(1, 2, 1)).unwrap();
    write(
        &wal,
        WriteBatch {
            hard_state: Some(hard_state(1, Some(3), 1)),
            truncate_after: Some(1),
            entries: vec![entry(2, 1)],
        },
    )
    .unwrap();
    wal.close().unwrap();
    let segment = &segments(dir.path())[0];
    let listed = inspect::segment_records(segment).unwrap();
    use inspect::RecordKind::*;
    let kinds: Vec<_> = listed
        .records
        .iter()
        .map(|record| record.kind.clone())
        .collect();
    assert!(matches!(
        kinds[0],
        SegmentHeader {
            seq: 0,
            prev_index: 0,
            ..
        }
    ));
    assert_eq!(
        kinds[1],
        Entry {
            index: 1,
            term: 1,
            data_len: entry(1, 1).data.len() as u32
        }
    );
    assert_eq!(kinds[3], Truncate { after: 1 });
    assert_eq!(kinds[5], HardState(hard_state(1, Some(3), 1)));
    assert_eq!(listed.records[0].frame_offset, 0);
    assert!(listed.records[3].frame_offset > 0);
    assert!(matches!(
        listed.condition,
        inspect::SegmentCondition::Clean { .. }
    ));
}
