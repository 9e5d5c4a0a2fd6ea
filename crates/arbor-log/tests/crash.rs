//! Crash and corruption scenarios, on real files: torn tails are dropped, everything else is
//! refused with the file and byte offset.

mod common;

use std::fs::{self, OpenOptions};
use std::path::Path;

use arbor_log::inspect::{self, SegmentCondition};
use arbor_log::{CorruptReason, LogError, Wal, WriteBatch};
use common::*;

/// Writes a log whose last segment ends with one small frame, and returns the expected
/// entries before that frame, the frame's offset, and its end (unpadded).
fn log_with_a_last_frame(dir: &Path) -> (Vec<(u64, u64)>, u64, u64) {
    let (wal, _) = Wal::open(small_config(dir)).unwrap();
    for index in 1..=5 {
        write(
            &wal,
            WriteBatch {
                hard_state: Some(hard_state(1, Some(1), index - 1)),
                ..append(index, 1, 1)
            },
        )
        .unwrap();
    }
    write(
        &wal,
        WriteBatch {
            hard_state: Some(hard_state(2, None, 5)),
            ..append(6, 1, 2)
        },
    )
    .unwrap();
    wal.close().unwrap();
    let segment = segments(dir).pop().unwrap();
    let listed = inspect::segment_records(&segment).unwrap();
    let last = listed.records.last().unwrap();
    let SegmentCondition::Clean { offset: padded_end } = listed.condition else {
        panic!("unexpected {:?}", listed.condition);
    };
    let end = last.frame_offset + 8 + u64::from(last.frame_len);
    assert!(end <= padded_end && padded_end - end < 8);
    (
        (1..=5).map(|index| (index, 1)).collect(),
        last.frame_offset,
        end,
    )
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn torn_tail_at_every_byte_of_the_last_frame_is_dropped_and_the_rest_kept() {
    let original = tempfile::tempdir().unwrap();
    let (kept, last_frame, end) = log_with_a_last_frame(original.path());
    let segment_name = segments(original.path())[0].file_name().unwrap().to_owned();
    let full_size = fs::metadata(original.path().join(&segment_name))
        .unwrap()
        .len();
    let original_bytes = fs::read(original.path().join(&segment_name)).unwrap();
    // Every cut inside the frame tears it; a cut in its padding (or none) leaves it whole.
    for cut in last_frame..=end + 7 {
        // Two shapes of the same crash: the file cut short, and the preallocated tail of zeros.
        for zero_filled in [false, true] {
            // Zeroing bytes that were zeros anyway (the high bytes of the last integer) leaves
            // the frame whole.
            let torn = if zero_filled {
                original_bytes[(cut.min(end)) as usize..end as usize]
                    .iter()
                    .any(|&byte| byte != 0)
            } else {
                cut < end
            };
            let dir = tempfile::tempdir().unwrap();
            copy_wal_files(original.path(), dir.path());
            let segment = dir.path().join(&segment_name);
            set_len(&segment, cut);
            if zero_filled {
                set_len(&segment, full_size);
            }
            let (wal, recovered) = Wal::open(small_config(dir.path()))
                .unwrap_or_else(|error| panic!("cut at {cut} (zeros {zero_filled}): {error}"));
            if !torn {
                let mut all = kept.clone();
                all.push((6, 2));
                assert_eq!(index_terms(&recovered.entries), all, "cut at {cut}");
                assert_eq!(recovered.hard_state, hard_state(2, None, 5), "cut at {cut}");
                assert_eq!(recovered.torn_tail, None, "cut at {cut}");
                continue;
            }
            assert_eq!(index_terms(&recovered.entries), kept, "cut at {cut}");
            assert_eq!(
                recovered.hard_state,
                hard_state(1, Some(1), 4),
                "cut at {cut}"
            );
            match &recovered.torn_tail {
                None => assert_eq!(cut, last_frame, "only an empty cut leaves no torn bytes"),
                Some(torn) => {
                    assert_eq!(torn.offset, last_frame, "cut at {cut}");
                    assert_eq!(torn.path, segment);
                }
            }
            // The repaired log takes new writes and recovers them (checked at every 8th cut
            // to keep the test quick).
            if cut % 8 == 0 {
                write(&wal, append(6, 1, 3)).unwrap();
                wal.close().unwrap();
                let (_wal, recovered) = Wal::open(small_config(dir.path())).unwrap();
                assert_eq!(recovered.last_index(), 6, "cut at {cut}");
                assert_eq!(recovered.entries[5].term, 3);
            }
        }
    }
}

#[test]
fn garbage_in_the_torn_region_is_dropped_and_zeroed() {
    let original = tempfile::tempdir().unwrap();
    let (kept, last_frame, end) = log_with_a_last_frame(original.path());
    let segment = segments(original.path())[0].clone();
    assert!(end > last_frame + 3);
    let mut bytes = fs::read(&segment).unwrap();
    // Sectors of the last frame that did not make it, written as garbage (not zeros).
    for (offset, byte) in bytes[last_frame as usize + 3..end as usize]
        .iter_mut()
        .enumerate()
    {
        *byte = (offset as u8).wrapping_mul(31) | 1;
    }
    fs::write(&segment, &bytes).unwrap();
    let (wal, recovered) = Wal::open(small_config(original.path())).unwrap();
    assert_eq!(index_terms(&recovered.entries), kept);
    let torn = recovered.torn_tail.clone().unwrap();
    assert_eq!(torn.offset, last_frame);
    wal.close().unwrap();
    let repaired = fs::read(&segment).unwrap();
    assert!(
        repaired[last_frame as usize..]
            .iter()
            .all(|&byte| byte == 0),
        "the torn bytes were not zeroed"
    );
}

#[test]
fn zero_filled_tail_is_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    write(&wal, append(1, 3, 1)).unwrap();
    wal.close().unwrap();
    let segment = segments(dir.path())[0].clone();
    assert_eq!(
        fs::metadata(&segment).unwrap().len(),
        16 * 1024,
        "segment is preallocated"
    );
    let (_wal, recovered) = Wal::open(small_config(dir.path())).unwrap();
    assert_eq!(recovered.last_index(), 3);
    assert_eq!(recovered.torn_tail, None);
}

#[test]
fn bit_flip_in_the_middle_of_the_log_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    for index in 1..=6 {
        write(&wal, append(index, 1, 1)).unwrap();
    }
    wal.close().unwrap();
    let segment = segments(dir.path())[0].clone();
    let listed = inspect::segment_records(&segment).unwrap();
    let frames: Vec<u64> = {
        let mut offsets: Vec<u64> = listed.records.iter().map(|r| r.frame_offset).collect();
        offsets.dedup();
        offsets
    };
    assert_eq!(frames.len(), 6);
    let victim = frames[2];
    let mut bytes = fs::read(&segment).unwrap();
    bytes[victim as usize + 20] ^= 0x04;
    fs::write(&segment, &bytes).unwrap();
    match Wal::open(small_config(dir.path())) {
        Err(
            ref error @ LogError::CorruptSegment {
                ref path,
                offset,
                reason: CorruptReason::ChecksumMismatch { .. },
                valid_frame_after,
            },
        ) => {
            assert_eq!(path, &segment);
            assert_eq!(offset, victim);
            assert_eq!(valid_frame_after, Some(frames[3]));
            let message = error.to_string();
            assert!(
                message.contains(&segment.display().to_string()),
                "{message}"
            );
            assert!(message.contains(&format!("offset {victim}")), "{message}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Nothing was repaired or truncated: the damage is still there for an operator.
    assert_eq!(fs::read(&segment).unwrap(), bytes);
}

#[test]
fn flipped_length_field_in_the_middle_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    for index in 1..=6 {
        write(&wal, append(index, 1, 1)).unwrap();
    }
    wal.close().unwrap();
    let segment = segments(dir.path())[0].clone();
    let listed = inspect::segment_records(&segment).unwrap();
    let victim = listed.records[4].frame_offset as usize;
    for damage in [[0u8, 0, 0, 0], [0xff, 0xff, 0, 0]] {
        let mut bytes = fs::read(&segment).unwrap();
        let original = bytes.clone();
        bytes[victim..victim + 4].copy_from_slice(&damage);
        fs::write(&segment, &bytes).unwrap();
        assert!(
            matches!(
                Wal::open(small_config(dir.path())),
                Err(LogError::CorruptSegment { offset, .. }) if offset == victim as u64
            ),
            "length {damage:?}"
        );
        fs::write(&segment, &original).unwrap();
    }
}

#[test]
fn damage_at_the_end_of_a_segment_that_is_not_the_last_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    for index in 1..=40 {
        write(
            &wal,
            WriteBatch {
                entries: vec![entry_sized(index, 1, 700)],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    }
    wal.close().unwrap();
    let all = segments(dir.path());
    assert!(all.len() >= 2);
    let first = &all[0];
    let listed = inspect::segment_records(first).unwrap();
    let last_frame = listed.records.last().unwrap().frame_offset;
    let mut bytes = fs::read(first).unwrap();
    bytes[last_frame as usize + 9] ^= 0x80;
    fs::write(first, &bytes).unwrap();
    match Wal::open(small_config(dir.path())) {
        Err(LogError::CorruptSegment {
            path,
            offset,
            valid_frame_after: None,
            ..
        }) => {
            assert_eq!(&path, first);
            assert_eq!(offset, last_frame);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn missing_segment_in_the_middle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    for index in 1..=60 {
        write(
            &wal,
            WriteBatch {
                entries: vec![entry_sized(index, 1, 700)],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    }
    wal.close().unwrap();
    let all = segments(dir.path());
    assert!(all.len() >= 3);
    fs::remove_file(&all[1]).unwrap();
    assert!(matches!(
        Wal::open(small_config(dir.path())),
        Err(LogError::CorruptSegment {
            ref path,
            reason: CorruptReason::SequenceGap { expected: 1 },
            ..
        }) if path == &all[2]
    ));
}

#[test]
fn missing_first_segments_without_a_snapshot_are_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    for index in 1..=40 {
        write(
            &wal,
            WriteBatch {
                entries: vec![entry_sized(index, 1, 700)],
                ..WriteBatch::default()
            },
        )
        .unwrap();
    }
    wal.close().unwrap();
    let all = segments(dir.path());
    fs::remove_file(&all[0]).unwrap();
    assert!(matches!(
        Wal::open(small_config(dir.path())),
        Err(LogError::LogGap {
            snapshot_index: 0,
            ..
        })
    ));
}

#[test]
fn snapshot_without_any_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    write(&wal, append(1, 3, 1)).unwrap();
    wal.snapshots()
        .save(
            &arbor_log::SnapshotMeta {
                index: 3,
                term: 1,
                app_meta: Vec::new(),
            },
            &mut |out| out.write_all(b"x"),
        )
        .unwrap();
    wal.close().unwrap();
    for segment in segments(dir.path()) {
        fs::remove_file(segment).unwrap();
    }
    assert!(matches!(
        Wal::open(small_config(dir.path())),
        Err(LogError::MissingSegments { .. })
    ));
}

#[test]
fn leftover_temporary_files_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(small_config(dir.path())).unwrap();
    write(&wal, append(1, 1, 1)).unwrap();
    wal.close().unwrap();
    let stray_segment = dir.path().join("seg-00000000000000000009.wal.tmp");
    let stray_snapshot = dir.path().join("snap-00000000000000000001.snap.tmp");
    fs::write(&stray_segment, b"half").unwrap();
    fs::write(&stray_snapshot, b"half").unwrap();
    let (_wal, recovered) = Wal::open(small_config(dir.path())).unwrap();
    assert_eq!(recovered.last_index(), 1);
    assert!(!stray_segment.exists() && !stray_snapshot.exists());
}
