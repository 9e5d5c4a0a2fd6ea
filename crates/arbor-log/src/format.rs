//! The on-disk format of a WAL segment, as pure functions over byte slices.
//!
//! A segment is a sequence of *frames*, each aligned to [`FRAME_ALIGN_BYTES`], followed by
//! zeros (the preallocated, never written tail):
//!
//! ```text
//! frame   := len:u32le  crc:u32le  payload[len]  zero padding to a multiple of 8
//! crc     := CRC32C over the 4 length bytes, then the payload
//! payload := record+
//! record  := 1 SegmentHeader  magic[8]="ARBORWAL" version:u32le seq:u64le prev_index:u64le hard_state
//!          | 2 HardState      hard_state
//!          | 3 Truncate       after:u64le
//!          | 4 Entry          index:u64le term:u64le data_len:u32le data[data_len]
//! hard_state := term:u64le  has_vote:u8 (0|1)  vote:u64le (0 when absent)  commit:u64le
//! ```
//!
//! All integers are little-endian with explicit sizes. A length of zero marks the end of the
//! written part: a frame always carries at least one record. One frame is what the writer
//! thread writes and fdatasyncs at once (one group commit), so a crash can tear only the last
//! frame, and a damaged frame followed by a valid one cannot be a torn write. The first frame
//! of every segment starts with a `SegmentHeader`, which repeats the hard state and the last
//! index at the time the segment was started, so older segments can be deleted without losing
//! either.

use std::ops::Range;

use bytes::Bytes;

use crate::error::CorruptReason;
use crate::types::{Entry, HardState};

/// Bytes of a frame header: length and CRC.
pub const FRAME_HEADER_BYTES: usize = 8;
/// Frames start at multiples of this many bytes.
pub const FRAME_ALIGN_BYTES: usize = 8;
/// The magic number at the start of every segment header record.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ARBORWAL";
/// The segment format version this code writes and reads.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;

const TAG_SEGMENT_HEADER: u8 = 1;
const TAG_HARD_STATE: u8 = 2;
const TAG_TRUNCATE: u8 = 3;
const TAG_ENTRY: u8 = 4;

const HARD_STATE_BODY_BYTES: usize = 8 + 1 + 8 + 8;
/// Encoded size of a hard state record.
pub const HARD_STATE_RECORD_BYTES: usize = 1 + HARD_STATE_BODY_BYTES;
/// Encoded size of a truncation record.
pub const TRUNCATE_RECORD_BYTES: usize = 1 + 8;
/// Encoded size of an entry record without its data.
pub const ENTRY_RECORD_OVERHEAD_BYTES: usize = 1 + 8 + 8 + 4;
/// Encoded size of a segment header record.
pub const SEGMENT_HEADER_RECORD_BYTES: usize = 1 + 8 + 4 + 8 + 8 + HARD_STATE_BODY_BYTES;

/// The first record of every segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment's sequence number (also in its file name).
    pub seq: u64,
    /// The log's last index when the segment was started.
    pub prev_index: u64,
    /// The hard state when the segment was started.
    pub hard_state: HardState,
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Starts a segment.
    SegmentHeader(SegmentHeader),
    /// A new hard state.
    HardState(HardState),
    /// Discard entries after `after` (or reset the log to start after it).
    Truncate {
        /// The index to keep up to.
        after: u64,
    },
    /// A log entry.
    Entry(Entry),
}

/// Rounds `len` up to the frame alignment.
pub fn align_up(len: u64) -> u64 {
    let align = FRAME_ALIGN_BYTES as u64;
    len.div_ceil(align) * align
}

/// The on-disk size of a frame with a payload of `payload_len` bytes.
pub fn frame_bytes(payload_len: usize) -> u64 {
    align_up((FRAME_HEADER_BYTES + payload_len) as u64)
}

/// The encoded size of an entry record.
pub fn entry_record_bytes(entry: &Entry) -> u64 {
    (ENTRY_RECORD_OVERHEAD_BYTES + entry.data.len()) as u64
}

/// Builds frames into a reusable buffer.
#[derive(Debug, Default)]
pub struct FrameBuilder {
    buf: Vec<u8>,
}

impl FrameBuilder {
    /// Starts a new frame, discarding whatever the buffer held.
    pub fn start(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    }

    /// Appends a segment header record.
    pub fn segment_header(&mut self, header: &SegmentHeader) {
        self.buf.push(TAG_SEGMENT_HEADER);
        self.buf.extend_from_slice(&SEGMENT_MAGIC);
        self.buf
            .extend_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
        self.buf.extend_from_slice(&header.seq.to_le_bytes());
        self.buf.extend_from_slice(&header.prev_index.to_le_bytes());
        put_hard_state(&mut self.buf, &header.hard_state);
    }

    /// Appends a hard state record.
    pub fn hard_state(&mut self, hard_state: &HardState) {
        self.buf.push(TAG_HARD_STATE);
        put_hard_state(&mut self.buf, hard_state);
    }

    /// Appends a truncation record.
    pub fn truncate(&mut self, after: u64) {
        self.buf.push(TAG_TRUNCATE);
        self.buf.extend_from_slice(&after.to_le_bytes());
    }

    /// Appends an entry record.
    ///
    /// # Panics
    /// If the data is longer than `u32::MAX` bytes; submit rejects such entries long before.
    pub fn entry(&mut self, entry: &Entry) {
        let data_len = u32::try_from(entry.data.len())
            .unwrap_or_else(|_| panic!("entry {} data exceeds u32::MAX bytes", entry.index));
        self.buf.push(TAG_ENTRY);
        self.buf.extend_from_slice(&entry.index.to_le_bytes());
        self.buf.extend_from_slice(&entry.term.to_le_bytes());
        self.buf.extend_from_slice(&data_len.to_le_bytes());
        self.buf.extend_from_slice(&entry.data);
    }

    /// Payload bytes appended since [`FrameBuilder::start`].
    pub fn payload_len(&self) -> usize {
        self.buf.len().saturating_sub(FRAME_HEADER_BYTES)
    }

    /// Fills in the frame header, pads, and returns the whole frame.
    ///
    /// # Panics
    /// If the frame is empty (a zero length would read back as the end of the log) or its
    /// payload exceeds `u32::MAX` bytes; both are bugs of the writer.
    pub fn finish(&mut self) -> &[u8] {
        let payload_len = self.payload_len();
        assert!(
            payload_len > 0,
            "a WAL frame must carry at least one record"
        );
        let len = u32::try_from(payload_len)
            .unwrap_or_else(|_| panic!("WAL frame payload of {payload_len} bytes exceeds u32"));
        let len_bytes = len.to_le_bytes();
        let crc = frame_crc(len_bytes, &self.buf[FRAME_HEADER_BYTES..]);
        self.buf[0..4].copy_from_slice(&len_bytes);
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let padded = align_up(self.buf.len() as u64) as usize;
        self.buf.resize(padded, 0);
        &self.buf
    }
}

fn put_hard_state(buf: &mut Vec<u8>, hard_state: &HardState) {
    buf.extend_from_slice(&hard_state.term.to_le_bytes());
    match hard_state.vote {
        Some(vote) => {
            buf.push(1);
            buf.extend_from_slice(&vote.to_le_bytes());
        }
        None => {
            buf.push(0);
            buf.extend_from_slice(&0u64.to_le_bytes());
        }
    }
    buf.extend_from_slice(&hard_state.commit.to_le_bytes());
}

fn frame_crc(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload)
}

/// A frame whose checksum verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedFrame {
    /// Byte offset of the frame header in the segment.
    pub offset: u64,
    /// Where the payload lies in the segment's bytes.
    pub payload: Range<usize>,
}

/// How the written part of a segment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// At `offset` the zero tail starts (or the file ends).
    Clean {
        /// Where the next frame goes.
        offset: u64,
    },
    /// At `offset` starts a damaged frame with no valid frame after it: a torn write.
    Torn {
        /// Where the torn frame starts (and the next frame goes).
        offset: u64,
        /// One past the last non-zero byte of the file.
        damaged_end: u64,
        /// What is wrong with the torn frame.
        reason: CorruptReason,
    },
}

impl SegmentEnd {
    /// Where the next frame goes.
    pub fn offset(&self) -> u64 {
        match *self {
            SegmentEnd::Clean { offset } | SegmentEnd::Torn { offset, .. } => offset,
        }
    }
}

/// Damage that cannot be a torn tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Where the damaged frame starts.
    pub offset: u64,
    /// What is wrong there.
    pub reason: CorruptReason,
    /// A valid frame found after the damage, if any.
    pub valid_frame_after: Option<u64>,
}

/// Splits a segment's bytes into verified frames.
///
/// Damage is a torn tail (returned as [`SegmentEnd::Torn`]) only when `is_last` and no valid
/// frame starts at any aligned offset after it; otherwise it is [`Damage`].
///
/// # Errors
/// [`Damage`] as described.
pub fn scan_frames(bytes: &[u8], is_last: bool) -> Result<(Vec<ScannedFrame>, SegmentEnd), Damage> {
    let mut frames = Vec::new();
    let mut pos = 0usize;
    loop {
        match check_frame(bytes, pos) {
            FrameCheck::End => {
                return Ok((frames, SegmentEnd::Clean { offset: pos as u64 }));
            }
            FrameCheck::Valid { payload } => {
                let next = align_up(payload.end as u64) as usize;
                frames.push(ScannedFrame {
                    offset: pos as u64,
                    payload,
                });
                // May pass the end of a file cut inside the padding; the next check then
                // sees the end, and the next frame still goes to an aligned offset.
                pos = next;
            }
            FrameCheck::Damaged(reason) => {
                let damaged_end = bytes
                    .iter()
                    .rposition(|&byte| byte != 0)
                    .map_or(pos, |last| (last + 1).max(pos));
                let valid_frame_after = find_valid_frame_after(bytes, pos, damaged_end);
                if valid_frame_after.is_some() || !is_last {
                    return Err(Damage {
                        offset: pos as u64,
                        reason,
                        valid_frame_after: valid_frame_after.map(|at| at as u64),
                    });
                }
                return Ok((
                    frames,
                    SegmentEnd::Torn {
                        offset: pos as u64,
                        damaged_end: damaged_end as u64,
                        reason,
                    },
                ));
            }
        }
    }
}

enum FrameCheck {
    End,
    Valid { payload: Range<usize> },
    Damaged(CorruptReason),
}

fn check_frame(bytes: &[u8], pos: usize) -> FrameCheck {
    let rest = &bytes[pos.min(bytes.len())..];
    if rest.len() < FRAME_HEADER_BYTES {
        return if rest.iter().all(|&byte| byte == 0) {
            FrameCheck::End
        } else {
            FrameCheck::Damaged(CorruptReason::TruncatedFrameHeader)
        };
    }
    let len = read_u32(rest, 0);
    let stored = read_u32(rest, 4);
    if len == 0 {
        return if rest.iter().all(|&byte| byte == 0) {
            FrameCheck::End
        } else {
            FrameCheck::Damaged(CorruptReason::GarbageAfterEnd)
        };
    }
    let payload_len = len as usize;
    if rest.len() - FRAME_HEADER_BYTES < payload_len {
        return FrameCheck::Damaged(CorruptReason::FrameOverrunsFile { len });
    }
    let payload = &rest[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload_len];
    let computed = frame_crc(len.to_le_bytes(), payload);
    if computed != stored {
        return FrameCheck::Damaged(CorruptReason::ChecksumMismatch { stored, computed });
    }
    let start = pos + FRAME_HEADER_BYTES;
    FrameCheck::Valid {
        payload: start..start + payload_len,
    }
}

/// The first aligned offset after `pos` (and before `nonzero_end`, one past the last non-zero
/// byte: a frame header has a non-zero length) where a frame with a valid checksum starts.
///
/// A candidate whose length field is zero or runs past the file is rejected after reading 8
/// bytes; a plausible one costs a CRC over at most the rest of the file.
fn find_valid_frame_after(bytes: &[u8], pos: usize, nonzero_end: usize) -> Option<usize> {
    let start = pos + FRAME_ALIGN_BYTES;
    (start..nonzero_end.min(bytes.len()))
        .step_by(FRAME_ALIGN_BYTES)
        .find(|&at| valid_frame_at(bytes, at))
}

/// Whether a non-empty frame with a valid checksum starts at `pos`.
fn valid_frame_at(bytes: &[u8], pos: usize) -> bool {
    let Some(header) = bytes.get(pos..pos + FRAME_HEADER_BYTES) else {
        return false;
    };
    let len = read_u32(header, 0);
    if len == 0 {
        return false;
    }
    let start = pos + FRAME_HEADER_BYTES;
    match bytes.get(start..start + len as usize) {
        Some(payload) => frame_crc(len.to_le_bytes(), payload) == read_u32(header, 4),
        None => false,
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Reads records out of a verified payload.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, len: usize, what: &'static str) -> Result<&[u8], CorruptReason> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(CorruptReason::MalformedRecord(what))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CorruptReason> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CorruptReason> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(word))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CorruptReason> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(word))
    }

    fn hard_state(&mut self) -> Result<HardState, CorruptReason> {
        let term = self.u64("hard state term")?;
        let has_vote = self.u8("hard state vote flag")?;
        let vote = self.u64("hard state vote")?;
        let commit = self.u64("hard state commit")?;
        let vote = match has_vote {
            0 => None,
            1 => Some(vote),
            _ => {
                return Err(CorruptReason::MalformedRecord(
                    "hard state vote flag is not 0 or 1",
                ));
            }
        };
        Ok(HardState { term, vote, commit })
    }
}

/// Decodes every record of a verified frame payload. Entry data is copied out, so the
/// segment's buffer can be freed.
///
/// # Errors
/// A [`CorruptReason`] for a record that does not parse.
pub fn decode_records(payload: &[u8]) -> Result<Vec<Record>, CorruptReason> {
    let mut reader = Reader {
        bytes: payload,
        pos: 0,
    };
    let mut records = Vec::new();
    while reader.pos < payload.len() {
        let record = match reader.u8("record type")? {
            TAG_SEGMENT_HEADER => {
                let magic = reader.take(SEGMENT_MAGIC.len(), "segment magic")?;
                if magic != SEGMENT_MAGIC {
                    return Err(CorruptReason::BadMagic);
                }
                let version = reader.u32("segment format version")?;
                if version != SEGMENT_FORMAT_VERSION {
                    return Err(CorruptReason::UnsupportedVersion(version));
                }
                let seq = reader.u64("segment sequence")?;
                let prev_index = reader.u64("segment prev_index")?;
                let hard_state = reader.hard_state()?;
                Record::SegmentHeader(SegmentHeader {
                    seq,
                    prev_index,
                    hard_state,
                })
            }
            TAG_HARD_STATE => Record::HardState(reader.hard_state()?),
            TAG_TRUNCATE => Record::Truncate {
                after: reader.u64("truncate index")?,
            },
            TAG_ENTRY => {
                let index = reader.u64("entry index")?;
                let term = reader.u64("entry term")?;
                let data_len = reader.u32("entry data length")? as usize;
                let data = Bytes::copy_from_slice(reader.take(data_len, "entry data")?);
                Record::Entry(Entry { index, term, data })
            }
            other => return Err(CorruptReason::UnknownRecordType(other)),
        };
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &'static [u8]) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::from_static(data),
        }
    }

    fn segment_of(frames: &[Vec<Record>], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut builder = FrameBuilder::default();
        for records in frames {
            builder.start();
            for record in records {
                match record {
                    Record::SegmentHeader(header) => builder.segment_header(header),
                    Record::HardState(hard_state) => builder.hard_state(hard_state),
                    Record::Truncate { after } => builder.truncate(*after),
                    Record::Entry(entry) => builder.entry(entry),
                }
            }
            out.extend_from_slice(builder.finish());
        }
        out.resize(size.max(out.len()), 0);
        out
    }

    fn sample_frames() -> Vec<Vec<Record>> {
        vec![
            vec![
                Record::SegmentHeader(SegmentHeader {
                    seq: 3,
                    prev_index: 0,
                    hard_state: HardState {
                        term: 1,
                        vote: Some(2),
                        commit: 0,
                    },
                }),
                Record::Entry(entry(1, 1, b"one")),
            ],
            vec![
                Record::HardState(HardState {
                    term: 2,
                    vote: None,
                    commit: 1,
                }),
                Record::Truncate { after: 1 },
                Record::Entry(entry(2, 2, b"")),
                Record::Entry(entry(3, 2, b"three!")),
            ],
        ]
    }

    #[test]
    fn records_round_trip_through_frames() {
        let frames = sample_frames();
        let bytes = segment_of(&frames, 4096);
        let (scanned, end) = scan_frames(&bytes, false).unwrap();
        assert_eq!(scanned.len(), 2);
        let decoded: Vec<Vec<Record>> = scanned
            .iter()
            .map(|frame| decode_records(&bytes[frame.payload.clone()]).unwrap())
            .collect();
        assert_eq!(decoded, frames);
        assert_eq!(end.offset() % FRAME_ALIGN_BYTES as u64, 0);
        assert_eq!(
            end,
            SegmentEnd::Clean {
                offset: end.offset()
            }
        );
    }

    #[test]
    fn record_sizes_match_their_constants() {
        let mut builder = FrameBuilder::default();
        builder.start();
        builder.segment_header(&SegmentHeader {
            seq: 0,
            prev_index: 0,
            hard_state: HardState::default(),
        });
        assert_eq!(builder.payload_len(), SEGMENT_HEADER_RECORD_BYTES);
        builder.start();
        builder.hard_state(&HardState::default());
        assert_eq!(builder.payload_len(), HARD_STATE_RECORD_BYTES);
        builder.start();
        builder.truncate(7);
        assert_eq!(builder.payload_len(), TRUNCATE_RECORD_BYTES);
        builder.start();
        let with_data = entry(1, 1, b"12345");
        builder.entry(&with_data);
        assert_eq!(builder.payload_len() as u64, entry_record_bytes(&with_data));
        assert_eq!(frame_bytes(1), 16);
        assert_eq!(frame_bytes(8), 16);
        assert_eq!(frame_bytes(9), 24);
    }

    #[test]
    fn file_without_zero_tail_ends_cleanly() {
        let bytes = segment_of(&sample_frames(), 0);
        let (scanned, end) = scan_frames(&bytes, false).unwrap();
        assert_eq!(scanned.len(), 2);
        assert_eq!(
            end,
            SegmentEnd::Clean {
                offset: bytes.len() as u64
            }
        );
    }

    #[test]
    fn damaged_last_frame_is_torn_only_in_the_last_segment() {
        let bytes = segment_of(&sample_frames(), 4096);
        let (scanned, _) = scan_frames(&bytes, true).unwrap();
        let last = scanned[1].offset as usize;
        let mut torn = bytes.clone();
        torn[last + 12] ^= 0x40;
        let (kept, end) = scan_frames(&torn, true).unwrap();
        assert_eq!(kept.len(), 1);
        assert!(matches!(end, SegmentEnd::Torn { offset, .. } if offset as usize == last));
        let damage = scan_frames(&torn, false).unwrap_err();
        assert_eq!(damage.offset as usize, last);
        assert!(matches!(
            damage.reason,
            CorruptReason::ChecksumMismatch { .. }
        ));
        assert_eq!(damage.valid_frame_after, None);
    }

    #[test]
    fn damaged_frame_followed_by_a_valid_one_is_corruption() {
        let bytes = segment_of(&sample_frames(), 4096);
        let mut flipped = bytes.clone();
        flipped[FRAME_HEADER_BYTES + 3] ^= 1;
        let damage = scan_frames(&flipped, true).unwrap_err();
        assert_eq!(damage.offset, 0);
        let (scanned, _) = scan_frames(&bytes, true).unwrap();
        assert_eq!(damage.valid_frame_after, Some(scanned[1].offset));
    }

    #[test]
    fn non_zero_bytes_after_the_end_marker_are_damage() {
        let mut bytes = segment_of(&sample_frames(), 4096);
        bytes[4000] = 9;
        let (_, end) = scan_frames(&bytes, true).unwrap();
        assert!(matches!(
            end,
            SegmentEnd::Torn {
                reason: CorruptReason::GarbageAfterEnd,
                damaged_end: 4001,
                ..
            }
        ));
        assert!(scan_frames(&bytes, false).is_err());
    }

    #[test]
    fn torn_frame_before_a_large_zero_tail_is_found_in_linear_time() {
        // 16 MiB of preallocated zeros after a torn frame: the search for a valid frame after
        // the damage must not rescan the tail from every offset (that would take hours).
        let mut bytes = segment_of(&sample_frames(), 16 * 1024 * 1024);
        let (scanned, _) = scan_frames(&bytes, true).unwrap();
        let last = scanned[1].offset as usize;
        bytes[last + 12] ^= 1;
        let started = std::time::Instant::now();
        let (kept, end) = scan_frames(&bytes, true).unwrap();
        assert_eq!(kept.len(), 1);
        assert!(matches!(end, SegmentEnd::Torn { .. }));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "scan took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn bad_vote_flag_and_unknown_tag_are_rejected() {
        let mut builder = FrameBuilder::default();
        builder.start();
        builder.hard_state(&HardState::default());
        let frame = builder.finish().to_vec();
        let mut payload =
            frame[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + HARD_STATE_RECORD_BYTES].to_vec();
        payload[9] = 2;
        assert!(matches!(
            decode_records(&payload),
            Err(CorruptReason::MalformedRecord(_))
        ));
        assert_eq!(
            decode_records(&[77]),
            Err(CorruptReason::UnknownRecordType(77))
        );
        assert!(matches!(
            decode_records(&[TAG_ENTRY, 1, 2]),
            Err(CorruptReason::MalformedRecord(_))
        ));
    }
}
