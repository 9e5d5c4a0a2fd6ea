//! Snapshot files: streamed to a temporary file, fsynced, renamed, directory fsynced; verified
//! on load.
//!
//! ```text
//! header  := magic[8]="ARBORSNP" version:u32le index:u64le term:u64le
//!            app_meta_len:u32le app_meta[app_meta_len] meta_crc:u32le
//! data    := the application's bytes, streamed
//! trailer := data_len:u64le data_crc:u32le end_magic[8]="ARBOREND"
//! ```
//!
//! `meta_crc` is the CRC32C of every header byte before it; `data_crc` of the data. A file is
//! trusted only if both checksums, both magics and the data length agree.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{LogError, SnapshotCorruption};
use crate::fsutil;
use crate::types::SnapshotMeta;

const MAGIC: [u8; 8] = *b"ARBORSNP";
const END_MAGIC: [u8; 8] = *b"ARBOREND";
const FORMAT_VERSION: u32 = 1;
const HEADER_FIXED_BYTES: usize = 8 + 4 + 8 + 8 + 4;
const META_CRC_BYTES: usize = 4;
const TRAILER_BYTES: usize = 8 + 4 + 8;
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// The largest `SnapshotMeta::app_meta` accepted.
pub const SNAPSHOT_APP_META_BYTES_MAX: usize = 64 * 1024 * 1024;

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    retained: usize,
    /// The newest snapshot on disk. Invariant: only grows.
    newest: Mutex<Option<SnapshotMeta>>,
    /// Serializes saves, so two snapshots never race on renames and pruning.
    save_lock: Mutex<()>,
    /// The data directory's exclusive lock, held while the WAL or any store handle lives, so
    /// a snapshot still being written keeps other WALs out of the directory.
    _dir_lock: File,
}

/// Writes and reads snapshots. Cheap to clone and usable from any thread: saving a snapshot
/// runs on the caller's thread and never blocks the WAL writer.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    shared: Arc<Shared>,
}

impl SnapshotStore {
    pub(crate) fn new(
        dir: PathBuf,
        retained: usize,
        newest: Option<SnapshotMeta>,
        dir_lock: File,
    ) -> SnapshotStore {
        SnapshotStore {
            shared: Arc::new(Shared {
                dir,
                retained,
                newest: Mutex::new(newest),
                save_lock: Mutex::new(()),
                _dir_lock: dir_lock,
            }),
        }
    }

    /// The metadata of the newest saved snapshot.
    pub fn newest(&self) -> Option<SnapshotMeta> {
        self.shared
            .newest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The index of the newest saved snapshot, or 0 without one.
    pub fn newest_index(&self) -> u64 {
        self.shared
            .newest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |meta| meta.index)
    }

    /// Saves a snapshot: `write` streams the application's bytes into it. When this returns
    /// `Ok`, the snapshot is durable and is the newest; older ones beyond
    /// `LogConfig::snapshots_retained` are removed.
    ///
    /// # Errors
    /// [`LogError::StaleSnapshot`] when a newer snapshot is already saved (one at the same
    /// index replaces it); [`LogError::SnapshotMetaTooLarge`]; [`LogError::Io`] when writing
    /// fails, including an error `write` returns. Nothing is left behind on error.
    pub fn save(
        &self,
        meta: &SnapshotMeta,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), LogError> {
        let _serialized = self
            .shared
            .save_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let newest_index = self.newest_index();
        if meta.index < newest_index {
            return Err(LogError::StaleSnapshot {
                index: meta.index,
                newest_index,
            });
        }
        if meta.app_meta.len() > SNAPSHOT_APP_META_BYTES_MAX {
            return Err(LogError::SnapshotMetaTooLarge {
                size_bytes: meta.app_meta.len(),
                max_bytes: SNAPSHOT_APP_META_BYTES_MAX,
            });
        }
        let dir = &self.shared.dir;
        let path = fsutil::snapshot_path(dir, meta.index);
        let temporary = fsutil::temporary_path(&path);
        let written = write_file(&temporary, meta, write);
        if let Err(error) = written {
            // Best effort: a leftover temporary file is deleted at the next open anyway.
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
        fs::rename(&temporary, &path)
            .map_err(|error| LogError::io("rename snapshot", &path, error))?;
        fsutil::sync_dir(dir)?;
        *self
            .shared
            .newest
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(meta.clone());
        tracing::info!(index = meta.index, term = meta.term, "snapshot saved");
        if let Err(error) = self.prune() {
            tracing::warn!(%error, "could not remove old snapshots");
        }
        Ok(())
    }

    /// Loads and verifies the newest snapshot (for example to send it to a follower).
    ///
    /// # Errors
    /// [`LogError::CorruptSnapshot`], [`LogError::Io`].
    pub fn load_newest(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, LogError> {
        let Some(meta) = self.newest() else {
            return Ok(None);
        };
        load(
            &fsutil::snapshot_path(&self.shared.dir, meta.index),
            meta.index,
        )
        .map(Some)
    }

    fn prune(&self) -> Result<(), LogError> {
        let listing = fsutil::list_dir(&self.shared.dir)?;
        let excess = listing.snapshots.len().saturating_sub(self.shared.retained);
        if excess == 0 {
            return Ok(());
        }
        for (_, path) in &listing.snapshots[..excess] {
            fsutil::remove_gradually(&self.shared.dir, path)?;
        }
        Ok(())
    }
}

/// Counts and checksums what passes through.
struct ChecksumWriter<W> {
    inner: W,
    crc: u32,
    len: u64,
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn encode_header(meta: &SnapshotMeta) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER_FIXED_BYTES + meta.app_meta.len() + META_CRC_BYTES);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&meta.index.to_le_bytes());
    header.extend_from_slice(&meta.term.to_le_bytes());
    // SNAPSHOT_APP_META_BYTES_MAX fits in u32; save checked it.
    header.extend_from_slice(&(meta.app_meta.len() as u32).to_le_bytes());
    header.extend_from_slice(&meta.app_meta);
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

/// Dirty snapshot bytes the writer lets accumulate before it flushes them to disk.
///
/// Why: the WAL's fdatasync on the same file system (ext4, data=ordered) commits the journal,
/// and that commit waits for the dirty data of every file with pending metadata, the snapshot
/// included. Left to the end, a snapshot of a large tree (150 MiB for 1M znodes) is flushed in
/// one burst and every write acknowledged meanwhile waits for it: a stall of hundreds of ms
/// (measured with `arbor bench` setData under snapshots). Flushing as it goes bounds what a WAL
/// sync can find dirty, as RocksDB's `bytes_per_sync` does.
const SNAPSHOT_SYNC_EVERY_BYTES: u64 = 4 * 1024 * 1024;

/// The snapshot file, flushed to disk every [`SNAPSHOT_SYNC_EVERY_BYTES`].
struct SyncingWriter {
    file: File,
    unsynced: u64,
}

impl Write for SyncingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.unsynced += written as u64;
        if self.unsynced >= SNAPSHOT_SYNC_EVERY_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn write_file(
    temporary: &Path,
    meta: &SnapshotMeta,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<(), LogError> {
    let file = File::create(temporary)
        .map_err(|error| LogError::io("create snapshot", temporary, error))?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, SyncingWriter { file, unsynced: 0 });
    out.write_all(&encode_header(meta))
        .map_err(|error| LogError::io("write snapshot", temporary, error))?;
    let mut data = ChecksumWriter {
        inner: &mut out,
        crc: 0,
        len: 0,
    };
    write(&mut data).map_err(|error| LogError::io("write snapshot data", temporary, error))?;
    let (data_crc, data_len) = (data.crc, data.len);
    let mut trailer = Vec::with_capacity(TRAILER_BYTES);
    trailer.extend_from_slice(&data_len.to_le_bytes());
    trailer.extend_from_slice(&data_crc.to_le_bytes());
    trailer.extend_from_slice(&END_MAGIC);
    out.write_all(&trailer)
        .map_err(|error| LogError::io("write snapshot", temporary, error))?;
    let file = out
        .into_inner()
        .map_err(|error| LogError::io("write snapshot", temporary, error.into_error()))?
        .file;
    file.sync_all()
        .map_err(|error| LogError::io("fsync snapshot", temporary, error))
}

/// Loads and verifies the snapshot file at `path`, whose name says `name_index`.
///
/// # Errors
/// [`LogError::CorruptSnapshot`], [`LogError::Io`].
pub(crate) fn load(path: &Path, name_index: u64) -> Result<(SnapshotMeta, Vec<u8>), LogError> {
    let bytes = fs::read(path).map_err(|error| LogError::io("read snapshot", path, error))?;
    let corrupt = |reason| LogError::CorruptSnapshot {
        path: path.to_path_buf(),
        reason,
    };
    let (meta, data) = decode(bytes).map_err(corrupt)?;
    if meta.index != name_index {
        return Err(corrupt(SnapshotCorruption::NameMismatch {
            name_index,
            meta_index: meta.index,
        }));
    }
    Ok((meta, data))
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Verifies and splits a snapshot file's bytes into metadata and data.
///
/// # Errors
/// A [`SnapshotCorruption`] naming the first check that failed.
pub(crate) fn decode(mut bytes: Vec<u8>) -> Result<(SnapshotMeta, Vec<u8>), SnapshotCorruption> {
    let len = bytes.len();
    let too_short = SnapshotCorruption::TooShort { len: len as u64 };
    if len < HEADER_FIXED_BYTES + META_CRC_BYTES + TRAILER_BYTES {
        return Err(too_short);
    }
    if bytes[..8] != MAGIC || bytes[len - 8..] != END_MAGIC {
        return Err(SnapshotCorruption::BadMagic);
    }
    let version = le_u32(&bytes, 8);
    if version != FORMAT_VERSION {
        return Err(SnapshotCorruption::UnsupportedVersion(version));
    }
    let index = le_u64(&bytes, 12);
    let term = le_u64(&bytes, 20);
    let app_meta_len = le_u32(&bytes, 28) as usize;
    let meta_end = HEADER_FIXED_BYTES
        .checked_add(app_meta_len)
        .filter(|&end| end + META_CRC_BYTES + TRAILER_BYTES <= len)
        .ok_or(too_short)?;
    if crc32c::crc32c(&bytes[..meta_end]) != le_u32(&bytes, meta_end) {
        return Err(SnapshotCorruption::MetaChecksum);
    }
    let app_meta = bytes[HEADER_FIXED_BYTES..meta_end].to_vec();
    let data_start = meta_end + META_CRC_BYTES;
    let trailer_start = len - TRAILER_BYTES;
    let recorded = le_u64(&bytes, trailer_start);
    let actual = (trailer_start - data_start) as u64;
    if recorded != actual {
        return Err(SnapshotCorruption::LengthMismatch { recorded, actual });
    }
    if crc32c::crc32c(&bytes[data_start..trailer_start]) != le_u32(&bytes, trailer_start + 8) {
        return Err(SnapshotCorruption::DataChecksum);
    }
    bytes.truncate(trailer_start);
    bytes.drain(..data_start);
    Ok((
        SnapshotMeta {
            index,
            term,
            app_meta,
        },
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term: 3,
            app_meta: b"voters=1,2,3".to_vec(),
        }
    }

    fn store_in(dir: &Path) -> SnapshotStore {
        SnapshotStore::new(dir.to_path_buf(), 2, None, fsutil::lock_dir(dir).unwrap())
    }

    fn save(store: &SnapshotStore, index: u64, data: &[u8]) -> Result<(), LogError> {
        store.save(&meta(index), &mut |out: &mut dyn Write| out.write_all(data))
    }

    #[test]
    fn saved_snapshot_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        save(&store, 10, b"the tree").unwrap();
        assert_eq!(store.newest_index(), 10);
        let (loaded_meta, data) = store.load_newest().unwrap().unwrap();
        assert_eq!(loaded_meta, meta(10));
        assert_eq!(data, b"the tree");
        assert!(fsutil::list_dir(dir.path()).unwrap().temporaries.is_empty());
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        save(&store, 4, b"payload bytes").unwrap();
        let path = fsutil::snapshot_path(dir.path(), 4);
        let bytes = fs::read(&path).unwrap();
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(decode(flipped).is_err(), "flip at byte {at} went unnoticed");
        }
        for cut in 0..bytes.len() {
            assert!(
                decode(bytes[..cut].to_vec()).is_err(),
                "cut at {cut} went unnoticed"
            );
        }
    }

    #[test]
    fn old_snapshots_are_pruned_and_stale_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        for index in [1, 5, 9] {
            save(&store, index, b"x").unwrap();
        }
        let kept: Vec<u64> = fsutil::list_dir(dir.path())
            .unwrap()
            .snapshots
            .iter()
            .map(|(index, _)| *index)
            .collect();
        assert_eq!(kept, vec![5, 9]);
        assert!(matches!(
            save(&store, 8, b"x"),
            Err(LogError::StaleSnapshot {
                index: 8,
                newest_index: 9
            })
        ));
        save(&store, 9, b"again").unwrap();
        assert_eq!(store.load_newest().unwrap().unwrap().1, b"again");
    }

    #[test]
    fn failing_writer_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let result = store.save(&meta(3), &mut |out: &mut dyn Write| {
            out.write_all(b"partial")?;
            Err(io::Error::other("serializer failed"))
        });
        assert!(matches!(result, Err(LogError::Io { .. })));
        let listing = fsutil::list_dir(dir.path()).unwrap();
        assert!(listing.snapshots.is_empty() && listing.temporaries.is_empty());
        assert_eq!(store.newest(), None);
    }

    #[test]
    fn file_renamed_to_another_index_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        save(&store, 4, b"x").unwrap();
        let moved = fsutil::snapshot_path(dir.path(), 6);
        fs::rename(fsutil::snapshot_path(dir.path(), 4), &moved).unwrap();
        assert!(matches!(
            load(&moved, 6),
            Err(LogError::CorruptSnapshot {
                reason: SnapshotCorruption::NameMismatch { .. },
                ..
            })
        ));
    }
}
