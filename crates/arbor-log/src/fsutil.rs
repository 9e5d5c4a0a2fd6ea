//! The file-system side: names in the data directory, directory fsync, the lock, segment
//! preallocation.
//!
//! # What we rely on from the kernel
//! - `fdatasync(2)` on a file, once it returns success, has made durable the bytes written to
//!   that file before the call and whatever metadata is needed to read them back (the file
//!   size and block allocation), though not timestamps. Nothing is assumed about the order in
//!   which unsynced bytes reach the disk, nor that a sector is written atomically: recovery
//!   treats any mix of new and old bytes in the unsynced tail as a torn write.
//! - A created, renamed or unlinked directory entry is durable only after `fsync(2)` of the
//!   directory, so every rename and unlink that matters is followed by one.
//! - Space reserved with `fallocate(2)` reads back as zeros until written.
//! - After `fdatasync` fails, the kernel may have dropped the dirty pages and cleared the error
//!   ("fsyncgate", PostgreSQL 2018): a retry can succeed without the data being on disk. So a
//!   failed fdatasync is fatal for the WAL; it never retries.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::LogError;

const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".wal";
const SNAPSHOT_PREFIX: &str = "snap-";
const SNAPSHOT_SUFFIX: &str = ".snap";
const TEMPORARY_SUFFIX: &str = ".tmp";
const LOCK_FILE: &str = "LOCK";
const ZERO_CHUNK_BYTES: usize = 1024 * 1024;

/// The path of segment `seq`.
pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{seq:020}{SEGMENT_SUFFIX}"))
}

/// The path of the snapshot at `index`.
pub fn snapshot_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{SNAPSHOT_PREFIX}{index:020}{SNAPSHOT_SUFFIX}"))
}

/// The temporary name a file is written under before it is renamed to `path`.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMPORARY_SUFFIX);
    PathBuf::from(name)
}

fn parse_number(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The files of a data directory, each kind sorted by its number.
#[derive(Debug, Default)]
pub struct DirListing {
    /// `(seq, path)` of every segment.
    pub segments: Vec<(u64, PathBuf)>,
    /// `(index, path)` of every snapshot.
    pub snapshots: Vec<(u64, PathBuf)>,
    /// Leftover temporary files of interrupted writes.
    pub temporaries: Vec<PathBuf>,
}

/// Lists the WAL's files in `dir`; other files are ignored.
///
/// # Errors
/// [`LogError::Io`] when the directory cannot be read.
pub fn list_dir(dir: &Path) -> Result<DirListing, LogError> {
    let mut listing = DirListing::default();
    let entries = fs::read_dir(dir).map_err(|error| LogError::io("read directory", dir, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| LogError::io("read directory", dir, error))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        if name.ends_with(TEMPORARY_SUFFIX)
            && (name.starts_with(SEGMENT_PREFIX) || name.starts_with(SNAPSHOT_PREFIX))
        {
            listing.temporaries.push(path);
        } else if let Some(seq) = parse_number(&name, SEGMENT_PREFIX, SEGMENT_SUFFIX) {
            listing.segments.push((seq, path));
        } else if let Some(index) = parse_number(&name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
            listing.snapshots.push((index, path));
        }
    }
    listing.segments.sort();
    listing.snapshots.sort();
    listing.temporaries.sort();
    Ok(listing)
}

/// How much of a doomed file one truncation frees (see [`remove_gradually`]).
const REMOVE_STEP_BYTES: u64 = 8 * 1024 * 1024;

/// Removes a log file or snapshot without stalling the WAL: renames it to a temporary name
/// (durably: from then on it is not part of the log, and a crash leaves a temporary that the
/// next open removes), then frees its blocks a step at a time before unlinking it.
///
/// Why: unlinking a 150 MiB snapshot or a 64 MiB segment at once took 140-170 ms on ext4
/// (measured with strace under `arbor bench`), inside one journal transaction; the WAL's
/// fdatasync commits the journal, so it waited for the unlink and every write acknowledged
/// meanwhile stalled. Each truncation step is a short transaction of its own.
///
/// # Errors
/// [`LogError::Io`] when the rename or the directory sync fails; the file then stays where
/// it was. Failures after the rename leave a temporary for the next open to remove.
pub fn remove_gradually(dir: &Path, path: &Path) -> Result<(), LogError> {
    let doomed = temporary_path(path);
    fs::rename(path, &doomed).map_err(|error| LogError::io("rename doomed file", path, error))?;
    sync_dir(dir)?;
    let freed = OpenOptions::new()
        .write(true)
        .open(&doomed)
        .and_then(|file| {
            let mut len = file.metadata()?.len();
            while len > REMOVE_STEP_BYTES {
                len -= REMOVE_STEP_BYTES;
                file.set_len(len)?;
            }
            Ok(())
        });
    if let Err(error) = freed {
        tracing::debug!(%error, path = %doomed.display(), "could not shrink a doomed file");
    }
    fs::remove_file(&doomed).map_err(|error| LogError::io("remove doomed file", &doomed, error))
}

/// Makes the directory's entries (creations, renames, unlinks) durable.
///
/// # Errors
/// [`LogError::Io`].
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| LogError::io("fsync directory", dir, error))
}

/// Creates `dir` if absent and makes its creation durable.
///
/// # Errors
/// [`LogError::Io`].
pub fn create_dir(dir: &Path) -> Result<(), LogError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|error| LogError::io("create directory", dir, error))?;
    if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    sync_dir(dir)
}

/// Takes an exclusive lock on the data directory, held while the returned file is open.
///
/// # Errors
/// [`LogError::Locked`] when another open WAL holds it; [`LogError::Io`].
pub fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| LogError::io("open lock file", &path, error))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(LogError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(errno) => Err(LogError::io("flock", &path, errno.into())),
    }
}

/// Reserves `size_bytes` for `file`, reading back as zeros: `fallocate(2)` where the file
/// system supports it, otherwise by writing zeros.
///
/// # Errors
/// [`LogError::Io`].
pub fn preallocate(file: &mut File, path: &Path, size_bytes: u64) -> Result<(), LogError> {
    match rustix::fs::fallocate(&*file, rustix::fs::FallocateFlags::empty(), 0, size_bytes) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {}
        Err(errno) => return Err(LogError::io("fallocate", path, errno.into())),
    }
    let zeros = vec![0u8; ZERO_CHUNK_BYTES];
    let mut left = size_bytes;
    while left > 0 {
        let chunk = left.min(ZERO_CHUNK_BYTES as u64) as usize;
        file.write_all(&zeros[..chunk])
            .map_err(|error| LogError::io("write zeros", path, error))?;
        left -= chunk as u64;
    }
    Ok(())
}

/// A segment file created and preallocated under its temporary name, ready to be renamed
/// into place when the writer rolls to it.
#[derive(Debug)]
pub struct PreparedSegment {
    /// Its sequence number.
    pub seq: u64,
    /// Its temporary path.
    pub temporary: PathBuf,
    /// The open file.
    pub file: File,
}

/// Creates segment `seq` under its temporary name, preallocated and synced (data and size).
///
/// # Errors
/// [`LogError::Io`].
pub fn prepare_segment(dir: &Path, seq: u64, size_bytes: u64) -> Result<PreparedSegment, LogError> {
    let temporary = temporary_path(&segment_path(dir, seq));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&temporary)
        .map_err(|error| LogError::io("create segment", &temporary, error))?;
    preallocate(&mut file, &temporary, size_bytes)?;
    file.sync_all()
        .map_err(|error| LogError::io("fsync segment", &temporary, error))?;
    Ok(PreparedSegment {
        seq,
        temporary,
        file,
    })
}

/// Renames a prepared segment to its final name and makes that durable.
///
/// # Errors
/// [`LogError::Io`].
pub fn install_segment(dir: &Path, prepared: PreparedSegment) -> Result<(PathBuf, File), LogError> {
    let path = segment_path(dir, prepared.seq);
    fs::rename(&prepared.temporary, &path)
        .map_err(|error| LogError::io("rename segment", &path, error))?;
    sync_dir(dir)?;
    Ok((path, prepared.file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gradually_removed_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = snapshot_path(dir.path(), 9);
        let file = File::create(&snapshot).unwrap();
        file.set_len(3 * REMOVE_STEP_BYTES + 5).unwrap();
        drop(file);
        remove_gradually(dir.path(), &snapshot).unwrap();
        let listing = list_dir(dir.path()).unwrap();
        assert!(listing.snapshots.is_empty());
        assert!(listing.temporaries.is_empty());
        assert!(!snapshot.exists());
        // A file that is not there is an error, and nothing is created.
        assert!(remove_gradually(dir.path(), &snapshot).is_err());
        assert!(list_dir(dir.path()).unwrap().temporaries.is_empty());
    }

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_path(dir.path(), 42);
        let snapshot = snapshot_path(dir.path(), 7);
        for path in [
            &segment,
            &snapshot,
            &temporary_path(&segment_path(dir.path(), 43)),
            &dir.path().join("notes.txt"),
            &dir.path().join("seg-12.wal"),
        ] {
            fs::write(path, b"x").unwrap();
        }
        let listing = list_dir(dir.path()).unwrap();
        assert_eq!(listing.segments, vec![(42, segment)]);
        assert_eq!(listing.snapshots, vec![(7, snapshot)]);
        assert_eq!(listing.temporaries.len(), 1);
    }

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path()).unwrap();
        assert!(matches!(lock_dir(dir.path()), Err(LogError::Locked { .. })));
        drop(held);
        assert!(lock_dir(dir.path()).is_ok());
    }

    #[test]
    fn prepared_segment_is_zero_filled_to_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let prepared = prepare_segment(dir.path(), 3, 10_000).unwrap();
        let (path, _file) = install_segment(dir.path(), prepared).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 10_000);
        assert!(bytes.iter().all(|&byte| byte == 0));
        assert_eq!(list_dir(dir.path()).unwrap().segments, vec![(3, path)]);
    }
}
