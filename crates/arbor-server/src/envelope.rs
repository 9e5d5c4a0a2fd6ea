//! How arbor's payloads sit inside Raft entries, the WAL and snapshots.
//!
//! - A normal entry's data is an envelope: the id of the server that proposed it and that
//!   server's request number (so the server holding the client's connection recognises its own
//!   proposal when it applies it), then the [`Txn`].
//! - The WAL stores each Raft entry with its kind and zxid position ahead of the data, since
//!   arbor-log knows only index, term and bytes.
//! - A snapshot's application metadata holds the zxid position of its last entry and the
//!   membership at that point.
//!
//! All integers are little-endian and explicitly sized.

use arbor_raft::{ConfChange, ConfState, Entry, EntryKind, LogIndex, Term};
use arbor_tree::Txn;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Bytes of the envelope ahead of the transaction.
const ENVELOPE_HEADER_BYTES: usize = 16;
/// Bytes of the WAL header ahead of a Raft entry's data.
const WAL_HEADER_BYTES: usize = 5;

/// Why stored or replicated bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("entry data of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown entry kind {0}")]
    Kind(u8),
    #[error("transaction does not decode: {0}")]
    Txn(String),
    #[error("membership change does not decode")]
    ConfChange,
    #[error("snapshot metadata does not decode: {0}")]
    SnapshotMeta(String),
}

/// The data of a normal entry proposed by `origin` as its request number `request`.
pub(crate) fn encode(origin: u64, request: u64, txn: &Txn) -> Bytes {
    let body = txn.encode();
    let mut out = BytesMut::with_capacity(ENVELOPE_HEADER_BYTES + body.len());
    out.put_u64_le(origin);
    out.put_u64_le(request);
    out.put_slice(&body);
    out.freeze()
}

/// `(origin, request, txn)` of a normal entry.
pub(crate) fn decode(data: &[u8]) -> Result<(u64, u64, Txn), EnvelopeError> {
    if data.len() < ENVELOPE_HEADER_BYTES {
        return Err(EnvelopeError::Short(data.len()));
    }
    let origin = u64::from_le_bytes(array(&data[0..8]));
    let request = u64::from_le_bytes(array(&data[8..16]));
    let txn = Txn::decode(&data[16..]).map_err(|error| EnvelopeError::Txn(error.to_string()))?;
    Ok((origin, request, txn))
}

fn array(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(bytes);
    out
}

/// A membership change entry's data.
pub(crate) fn decode_conf_change(data: &[u8]) -> Result<ConfChange, EnvelopeError> {
    ConfChange::decode(data).map_err(|_| EnvelopeError::ConfChange)
}

fn kind_code(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Normal => 0,
        EntryKind::NoOp => 1,
        EntryKind::ConfChange => 2,
    }
}

/// The WAL data of a Raft entry.
pub(crate) fn encode_wal_data(entry: &Entry) -> Bytes {
    let mut out = BytesMut::with_capacity(WAL_HEADER_BYTES + entry.data.len());
    out.put_u8(kind_code(entry.kind));
    out.put_u32_le(entry.position);
    out.put_slice(&entry.data);
    out.freeze()
}

/// The Raft entry a WAL record holds.
pub(crate) fn decode_wal_entry(
    index: u64,
    term: u64,
    data: &Bytes,
) -> Result<Entry, EnvelopeError> {
    if data.len() < WAL_HEADER_BYTES {
        return Err(EnvelopeError::Short(data.len()));
    }
    let kind = match data[0] {
        0 => EntryKind::Normal,
        1 => EntryKind::NoOp,
        2 => EntryKind::ConfChange,
        other => return Err(EnvelopeError::Kind(other)),
    };
    let position = u32::from_le_bytes([data[1], data[2], data[3], data[4]]);
    Ok(Entry {
        term: Term(term),
        index: LogIndex(index),
        position,
        kind,
        data: data.slice(WAL_HEADER_BYTES..),
    })
}

/// What a snapshot file records besides the tree.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotAppMeta {
    /// Zxid position of the snapshot's last entry.
    pub position: u32,
    /// Membership at the snapshot's index.
    pub conf_state: ConfState,
}

/// Encodes a snapshot's application metadata.
pub(crate) fn snapshot_app_meta(position: u32, conf_state: &ConfState) -> Vec<u8> {
    let meta = SnapshotAppMeta {
        position,
        conf_state: conf_state.clone(),
    };
    // Encoding plain integers and sets into a Vec cannot fail.
    postcard::to_allocvec(&meta).unwrap_or_default()
}

/// Decodes a snapshot's application metadata.
pub(crate) fn decode_snapshot_app_meta(bytes: &[u8]) -> Result<SnapshotAppMeta, EnvelopeError> {
    postcard::from_bytes(bytes).map_err(|error| EnvelopeError::SnapshotMeta(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_proto::SessionId;
    use arbor_tree::Command;

    #[test]
    fn envelope_round_trips() {
        let txn = Txn {
            time_ms: 42,
            command: Command::CloseSession {
                session_id: SessionId(7),
            },
        };
        let data = encode(3, 99, &txn);
        let (origin, request, decoded) = decode(&data).unwrap();
        assert_eq!((origin, request), (3, 99));
        assert_eq!(decoded.time_ms, 42);
        assert!(decode(&data[..10]).is_err());
    }

    #[test]
    fn wal_entries_keep_kind_and_position() {
        let entry = Entry {
            term: Term(4),
            index: LogIndex(10),
            position: 6,
            kind: EntryKind::ConfChange,
            data: Bytes::from_static(b"x"),
        };
        let data = encode_wal_data(&entry);
        assert_eq!(decode_wal_entry(10, 4, &data).unwrap(), entry);
        assert!(decode_wal_entry(10, 4, &Bytes::from_static(&[9, 0, 0, 0, 0])).is_err());
    }

    #[test]
    fn snapshot_meta_round_trips() {
        let conf = ConfState::with_voters([arbor_raft::NodeId(1), arbor_raft::NodeId(2)]);
        let meta = decode_snapshot_app_meta(&snapshot_app_meta(5, &conf)).unwrap();
        assert_eq!((meta.position, meta.conf_state), (5, conf));
    }
}
