//! Framing: every message is a 4-byte big-endian length followed by that many bytes. The first
//! four bytes of a connection may instead be a four-letter admin word (`ruok`, `stat`...), which
//! read as a length is far beyond any frame limit, so the two never collide.

use bytes::BufMut;

use crate::jute::{DecodeError, Jute};
use crate::records::{ReplyHeader, WatcherEvent};

/// ZooKeeper's default `jute.maxbuffer`: the largest frame either side accepts.
pub const FRAME_SIZE_BYTES_MAX_DEFAULT: u32 = 0xfffff;

/// The four-letter admin words ZooKeeper answers on its client port.
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srvr", "srst", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// The four-letter word these first four bytes spell, if any.
pub fn four_letter_word(first: [u8; 4]) -> Option<&'static str> {
    FOUR_LETTER_WORDS
        .iter()
        .copied()
        .find(|word| word.as_bytes() == first)
}

/// Splits one frame off the front of `input`.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some((payload, consumed)))` for a whole
/// frame.
///
/// # Errors
/// [`DecodeError::FrameTooLarge`] when the length prefix is negative or over `frame_size_max`.
pub fn split_frame(
    input: &[u8],
    frame_size_max: u32,
) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let Some(prefix) = input.get(..4) else {
        return Ok(None);
    };
    let length = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if length < 0 || length as u32 > frame_size_max {
        return Err(DecodeError::FrameTooLarge {
            length: i64::from(length),
            max: frame_size_max,
        });
    }
    let end = 4 + length as usize;
    Ok(input.get(4..end).map(|payload| (payload, end)))
}

/// Appends one length-prefixed frame whose payload `write` produces.
pub fn write_frame(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.put_i32(0);
    write(out);
    let length = i32::try_from(out.len() - start - 4).unwrap_or(i32::MAX);
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
}

/// Appends a framed reply: header, then `body` (which is skipped when `header.err != 0`).
pub fn write_reply(out: &mut Vec<u8>, header: &ReplyHeader, body: impl FnOnce(&mut Vec<u8>)) {
    write_frame(out, |payload| {
        header.encode(payload);
        if header.err == 0 {
            body(payload);
        }
    });
}

/// Appends a framed watch notification.
pub fn write_notification(out: &mut Vec<u8>, zxid: i64, event: &WatcherEvent) {
    let header = ReplyHeader {
        xid: crate::opcode::XID_NOTIFICATION,
        zxid,
        err: 0,
    };
    write_reply(out, &header, |payload| event.encode(payload));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_letter_words_are_recognised_and_frames_are_not() {
        assert_eq!(four_letter_word(*b"ruok"), Some("ruok"));
        assert_eq!(four_letter_word([0, 0, 0, 45]), None);
        for word in FOUR_LETTER_WORDS {
            let as_length = i32::from_be_bytes(word.as_bytes().try_into().unwrap());
            assert!(
                as_length as u32 > FRAME_SIZE_BYTES_MAX_DEFAULT,
                "{word} collides"
            );
        }
    }

    #[test]
    fn split_frame_waits_for_whole_frames() {
        let mut buffer = Vec::new();
        write_frame(&mut buffer, |p| p.extend_from_slice(b"abc"));
        assert_eq!(split_frame(&buffer[..2], 100).unwrap(), None);
        assert_eq!(split_frame(&buffer[..6], 100).unwrap(), None);
        assert_eq!(split_frame(&buffer, 100).unwrap(), Some((&b"abc"[..], 7)));
    }

    #[test]
    fn oversized_and_negative_frames_are_rejected() {
        let big = 101i32.to_be_bytes();
        assert!(matches!(
            split_frame(&big, 100),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        let negative = (-5i32).to_be_bytes();
        assert!(matches!(
            split_frame(&negative, 100),
            Err(DecodeError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn error_replies_carry_no_body() {
        let mut out = Vec::new();
        let header = ReplyHeader {
            xid: 3,
            zxid: 9,
            err: -101,
        };
        write_reply(&mut out, &header, |p| p.extend_from_slice(b"ignored"));
        assert_eq!(out.len(), 4 + 16);
    }
}
