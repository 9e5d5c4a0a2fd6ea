//! Snapshots: the whole tree as a stream, written from a (cheap) clone while apply goes on.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! magic "ARBORTRE" | format version u32 (2; version 1 is still read)
//! frames: length u32 | postcard record
//!   header   { last_applied_zxid, extended_types_enabled, acl_next_id, counts }
//!   acl      × acl_count       { id, list }
//!   session  × session_count   { id, timeout, password, owner }   (version 1: no owner)
//!   quota    × quota_count     { path }   (paths under quota, ZooKeeper's quota trie)
//!   node     × node_count      { parent, name, data, stat fields, acl id }, in key order
//! crc32c u32 of every byte before it
//! ```
//!
//! The checksum is ours: the reader verifies it, so a snapshot is checked whatever file or
//! stream carries it. Derived state (child counts, the session, container and TTL indexes,
//! ACL reference counts, counters) is rebuilt on load, not stored, and the reader checks
//! the structure (parents before children, known ACLs and sessions) as it goes.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::sync::Arc;

use arbor_proto::{Acl, SessionId, Zxid};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use thiserror::Error;

use crate::acl::{AclId, AclTable};
use crate::config::TreeConfig;
use crate::ephemeral::EphemeralType;
use crate::node::{KeyRef, NodeKey, Znode, stored_data};
use crate::path::java_length;
use crate::session::{ServerId, Session};
use crate::state::State;
use crate::tree::DataTree;

const MAGIC: [u8; 8] = *b"ARBORTRE";
/// The snapshot format this build writes. It also reads version 1, whose session records
/// have no owner (its sessions load with none recorded).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;
/// The oldest snapshot format this build reads.
const SNAPSHOT_FORMAT_VERSION_MIN: u32 = 1;
/// Largest record a reader accepts: a node's data plus its path, with room for data well
/// above ZooKeeper's default 1 MiB `jute.maxbuffer`.
pub const SNAPSHOT_RECORD_BYTES_MAX: u32 = 256 << 20;
const IO_BUFFER_BYTES: usize = 1 << 16;

/// Why a snapshot could not be read.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Reading failed, or the stream ended early.
    #[error("snapshot read failed: {0}")]
    Io(#[from] io::Error),
    /// The stream does not start with the snapshot magic.
    #[error("not an arbor tree snapshot (magic {found:?})")]
    BadMagic {
        /// The first eight bytes.
        found: [u8; 8],
    },
    /// Written by a format this build does not read.
    #[error("snapshot format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The stream's version.
        found: u32,
        /// [`SNAPSHOT_FORMAT_VERSION`].
        supported: u32,
    },
    /// A record's length prefix is over [`SNAPSHOT_RECORD_BYTES_MAX`].
    #[error("snapshot record {record} claims {bytes} bytes, over the limit")]
    RecordTooLarge {
        /// Index of the record (0 is the header).
        record: u64,
        /// Its claimed length.
        bytes: u32,
    },
    /// A record is not valid postcard for its type.
    #[error("snapshot record {record} does not decode: {source}")]
    Decode {
        /// Index of the record.
        record: u64,
        /// The decoder's complaint.
        source: postcard::Error,
    },
    /// The trailing checksum does not match the bytes read.
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// The checksum in the stream.
        stored: u32,
        /// The checksum of what was read.
        computed: u32,
    },
    /// The snapshot reads ephemeral owners differently from this config.
    #[error("snapshot has extended types {snapshot}, the config has {config}")]
    ConfigMismatch {
        /// The writer's `extended_types_enabled`.
        snapshot: bool,
        /// The reader's.
        config: bool,
    },
    /// The records decode but do not form a valid tree.
    #[error("snapshot record {record} is inconsistent: {reason}")]
    Corrupt {
        /// Index of the offending record.
        record: u64,
        /// What is wrong.
        reason: CorruptReason,
    },
}

/// What makes a decoded snapshot inconsistent.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CorruptReason {
    /// The first node is not the root.
    #[error("the first node is not the root")]
    MissingRoot,
    /// A node key is not after the previous one.
    #[error("node {path} is out of key order")]
    OutOfOrder {
        /// The node.
        path: String,
    },
    /// A node name is empty or holds a `/`.
    #[error("node name {name:?} under {parent:?} is invalid")]
    InvalidName {
        /// The parent path.
        parent: String,
        /// The name.
        name: String,
    },
    /// A node's parent is not in the snapshot before it.
    #[error("node {path} has no parent")]
    MissingParent {
        /// The node.
        path: String,
    },
    /// A node names an ACL id the snapshot does not have.
    #[error("unknown acl id {id}")]
    UnknownAcl {
        /// The id.
        id: u32,
    },
    /// Two ACL records share an id or a list.
    #[error("duplicate acl id {id} or list")]
    DuplicateAcl {
        /// The id.
        id: u32,
    },
    /// An ACL list no node uses.
    #[error("acl id {id} is unused")]
    UnusedAcl {
        /// The id.
        id: u32,
    },
    /// Two session records share an id.
    #[error("duplicate session {session_id}")]
    DuplicateSession {
        /// The session.
        session_id: SessionId,
    },
    /// An ephemeral node's session is not in the snapshot.
    #[error("ephemeral {path} belongs to missing session {session_id}")]
    MissingSession {
        /// The node.
        path: String,
        /// Its owner.
        session_id: SessionId,
    },
    /// An ephemeral node has children.
    #[error("ephemeral {path} has children")]
    EphemeralWithChildren {
        /// The node.
        path: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Header {
    last_applied_zxid: i64,
    extended_types_enabled: bool,
    acl_next_id: u32,
    acl_count: u64,
    session_count: u64,
    quota_count: u64,
    node_count: u64,
}

#[derive(Serialize)]
struct AclRecordOut<'a> {
    id: u32,
    acl: &'a [Acl],
}

#[derive(Deserialize)]
struct AclRecordIn {
    id: u32,
    acl: Vec<Acl>,
}

#[derive(Serialize, Deserialize)]
struct SessionRecord<'a> {
    session_id: i64,
    timeout_ms: i32,
    #[serde(borrow)]
    password: RawBytes<'a>,
    owner: Option<u64>,
}

/// A session record of format version 1, before sessions had owners.
#[derive(Deserialize)]
struct SessionRecordV1<'a> {
    session_id: i64,
    timeout_ms: i32,
    #[serde(borrow)]
    password: RawBytes<'a>,
}

impl<'a> From<SessionRecordV1<'a>> for SessionRecord<'a> {
    fn from(record: SessionRecordV1<'a>) -> SessionRecord<'a> {
        SessionRecord {
            session_id: record.session_id,
            timeout_ms: record.timeout_ms,
            password: record.password,
            owner: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct QuotaRecord<'a> {
    #[serde(borrow)]
    path: &'a str,
}

#[derive(Serialize, Deserialize)]
struct NodeRecord<'a> {
    #[serde(borrow)]
    parent: &'a str,
    #[serde(borrow)]
    name: &'a str,
    #[serde(borrow)]
    data: RawBytes<'a>,
    data_null: bool,
    czxid: i64,
    mzxid: i64,
    pzxid: i64,
    ctime: i64,
    mtime: i64,
    ephemeral_owner: i64,
    version: i32,
    cversion: i32,
    aversion: i32,
    acl: u32,
}

/// A byte string encoded as postcard bytes (length + raw), borrowed when decoded.
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawBytes<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = RawBytes<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("borrowed bytes")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(RawBytes(v))
            }
        }
        deserializer.deserialize_bytes(Visitor(std::marker::PhantomData))
    }
}

struct ChecksumWriter<W: Write> {
    inner: W,
    crc: u32,
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.crc = crc32c::crc32c_append(self.crc, &bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct ChecksumReader<R: Read> {
    inner: R,
    crc: u32,
}

impl<R: Read> Read for ChecksumReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.crc = crc32c::crc32c_append(self.crc, &buffer[..read]);
        Ok(read)
    }
}

fn write_record<W: Write, T: Serialize>(
    out: &mut W,
    scratch: &mut Vec<u8>,
    record: &T,
) -> io::Result<()> {
    scratch.clear();
    let encoded = postcard::to_extend(record, std::mem::take(scratch))
        .map_err(|error| io::Error::other(format!("snapshot record encoding: {error}")))?;
    *scratch = encoded;
    let length = u32::try_from(scratch.len())
        .ok()
        .filter(|length| *length <= SNAPSHOT_RECORD_BYTES_MAX)
        .ok_or_else(|| io::Error::other("snapshot record over SNAPSHOT_RECORD_BYTES_MAX"))?;
    out.write_all(&length.to_le_bytes())?;
    out.write_all(scratch)
}

fn read_u32<R: Read>(input: &mut R) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_record<'b, R: Read, T: Deserialize<'b>>(
    input: &mut R,
    buffer: &'b mut Vec<u8>,
    record: u64,
) -> Result<T, SnapshotError> {
    let length = read_u32(input)?;
    if length > SNAPSHOT_RECORD_BYTES_MAX {
        return Err(SnapshotError::RecordTooLarge {
            record,
            bytes: length,
        });
    }
    buffer.resize(length as usize, 0);
    input.read_exact(buffer)?;
    postcard::from_bytes(buffer).map_err(|source| SnapshotError::Decode { record, source })
}

impl DataTree {
    /// Serializes the tree. Take a [`Clone`] first (O(1)) and write it from another thread:
    /// the original keeps applying meanwhile. Output is buffered internally and streamed:
    /// no copy of the whole tree is built in memory.
    ///
    /// # Errors
    /// Any error of `out`.
    pub fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut out = ChecksumWriter {
            inner: BufWriter::with_capacity(IO_BUFFER_BYTES, out),
            crc: 0,
        };
        out.write_all(&MAGIC)?;
        out.write_all(&SNAPSHOT_FORMAT_VERSION.to_le_bytes())?;
        let state = &self.state;
        let mut scratch = Vec::new();
        let header = Header {
            last_applied_zxid: self.last_applied_zxid.0,
            extended_types_enabled: state.extended_types_enabled,
            acl_next_id: state.acls.next_id(),
            acl_count: state.acls.len() as u64,
            session_count: state.sessions.len() as u64,
            quota_count: state.quotas.len() as u64,
            node_count: state.nodes.len() as u64,
        };
        write_record(&mut out, &mut scratch, &header)?;
        for (id, acl, _) in state.acls.entries() {
            write_record(&mut out, &mut scratch, &AclRecordOut { id: id.0, acl })?;
        }
        for (session_id, session) in &state.sessions {
            let record = SessionRecord {
                session_id: session_id.0,
                timeout_ms: session.timeout_ms(),
                password: RawBytes(session.password()),
                owner: session.owner().map(|owner| owner.0),
            };
            write_record(&mut out, &mut scratch, &record)?;
        }
        for path in &state.quotas {
            write_record(&mut out, &mut scratch, &QuotaRecord { path })?;
        }
        for (key, node) in &state.nodes {
            let record = NodeRecord {
                parent: &key.parent,
                name: &key.name,
                data: RawBytes(node.data()),
                data_null: node.data_null,
                czxid: node.czxid,
                mzxid: node.mzxid,
                pzxid: node.pzxid,
                ctime: node.ctime,
                mtime: node.mtime,
                ephemeral_owner: node.ephemeral_owner,
                version: node.version,
                cversion: node.cversion,
                aversion: node.aversion,
                acl: node.acl.0,
            };
            write_record(&mut out, &mut scratch, &record)?;
        }
        let crc = out.crc;
        let mut inner = out.inner;
        inner.write_all(&crc.to_le_bytes())?;
        inner.flush()
    }

    /// Reads a snapshot written by [`DataTree::write_snapshot`], streaming, and verifies its
    /// checksum and structure. Reads exactly the snapshot's bytes (it may be embedded in a
    /// longer stream), though buffering may consume more from `input`.
    ///
    /// # Errors
    /// [`SnapshotError`] for I/O failures, a foreign or newer format, a bad checksum, or
    /// records that do not form a valid tree.
    pub fn read_snapshot(
        input: &mut dyn Read,
        config: TreeConfig,
    ) -> Result<DataTree, SnapshotError> {
        let mut input = ChecksumReader {
            inner: BufReader::with_capacity(IO_BUFFER_BYTES, input),
            crc: 0,
        };
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if magic != MAGIC {
            return Err(SnapshotError::BadMagic { found: magic });
        }
        let version = read_u32(&mut input)?;
        if !(SNAPSHOT_FORMAT_VERSION_MIN..=SNAPSHOT_FORMAT_VERSION).contains(&version) {
            return Err(SnapshotError::UnsupportedVersion {
                found: version,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        let mut buffer = Vec::new();
        let header: Header = read_record(&mut input, &mut buffer, 0)?;
        if header.extended_types_enabled != config.extended_types_enabled {
            return Err(SnapshotError::ConfigMismatch {
                snapshot: header.extended_types_enabled,
                config: config.extended_types_enabled,
            });
        }
        let mut loader = Loader {
            state: State::empty(config.extended_types_enabled),
            record: 0,
            last_key: None,
            run_parent: Arc::from(""),
            run_children: 0,
        };
        loader.state.acls = AclTable::restore(header.acl_next_id);
        for _ in 0..header.acl_count {
            loader.record += 1;
            let acl: AclRecordIn = read_record(&mut input, &mut buffer, loader.record)?;
            if !loader.state.acls.restore_entry(AclId(acl.id), acl.acl) {
                return Err(loader.corrupt(CorruptReason::DuplicateAcl { id: acl.id }));
            }
        }
        for _ in 0..header.session_count {
            loader.record += 1;
            let session: SessionRecord<'_> = if version == 1 {
                read_record::<_, SessionRecordV1<'_>>(&mut input, &mut buffer, loader.record)?
                    .into()
            } else {
                read_record(&mut input, &mut buffer, loader.record)?
            };
            loader.add_session(&session)?;
        }
        for _ in 0..header.quota_count {
            loader.record += 1;
            let quota: QuotaRecord<'_> = read_record(&mut input, &mut buffer, loader.record)?;
            loader.state.quotas.insert(Arc::from(quota.path));
        }
        for _ in 0..header.node_count {
            loader.record += 1;
            let node: NodeRecord<'_> = read_record(&mut input, &mut buffer, loader.record)?;
            loader.add_node(&node)?;
        }
        loader.finish()?;
        let computed = input.crc;
        let stored = read_u32(&mut input.inner)?;
        if stored != computed {
            return Err(SnapshotError::ChecksumMismatch { stored, computed });
        }
        Ok(DataTree {
            config: Arc::new(config),
            state: loader.state,
            last_applied_zxid: Zxid(header.last_applied_zxid),
        })
    }
}

/// Rebuilds the state record by record, checking structure as it goes.
struct Loader {
    state: State,
    record: u64,
    /// The previous node's key: keys must strictly increase.
    last_key: Option<NodeKey>,
    /// Children of one parent come in a run: its path (shared by the run's keys) and how
    /// many so far, added to the parent's count when the run ends.
    run_parent: Arc<str>,
    run_children: i32,
}

impl Loader {
    fn corrupt(&self, reason: CorruptReason) -> SnapshotError {
        SnapshotError::Corrupt {
            record: self.record,
            reason,
        }
    }

    fn add_session(&mut self, record: &SessionRecord<'_>) -> Result<(), SnapshotError> {
        let session_id = SessionId(record.session_id);
        if self.state.sessions.contains_key(&session_id) {
            return Err(self.corrupt(CorruptReason::DuplicateSession { session_id }));
        }
        let owner = record.owner.map(ServerId);
        let session = Session::new(record.timeout_ms, record.password.0, owner);
        self.state.sessions.insert(session_id, session);
        Ok(())
    }

    fn add_node(&mut self, record: &NodeRecord<'_>) -> Result<(), SnapshotError> {
        let key = KeyRef {
            parent: record.parent,
            name: record.name,
        };
        let is_root = key.parent.is_empty() && key.name.is_empty();
        if self.state.nodes.is_empty() != is_root {
            return Err(self.corrupt(CorruptReason::MissingRoot));
        }
        if !is_root && (key.parent.is_empty() || key.name.is_empty() || key.name.contains('/')) {
            return Err(self.corrupt(CorruptReason::InvalidName {
                parent: key.parent.to_owned(),
                name: key.name.to_owned(),
            }));
        }
        let path = key.path();
        if self
            .last_key
            .as_ref()
            .is_some_and(|last| last.as_ref() >= key)
        {
            return Err(self.corrupt(CorruptReason::OutOfOrder { path }));
        }
        if !is_root && *self.run_parent != *key.parent {
            // A new run of siblings: its parent must already be loaded, and not ephemeral.
            self.end_run();
            let extended = self.state.extended_types_enabled;
            let parent = KeyRef::of_path(key.parent).and_then(|p| self.state.nodes.get(&p));
            let Some(parent) = parent else {
                return Err(self.corrupt(CorruptReason::MissingParent { path }));
            };
            if matches!(parent.kind(extended), EphemeralType::Session(_)) {
                let path = key.parent.to_owned();
                return Err(self.corrupt(CorruptReason::EphemeralWithChildren { path }));
            }
            self.run_parent = Arc::from(key.parent);
        }
        if !is_root {
            self.run_children += 1;
        }
        if !self.state.acls.add_reference(AclId(record.acl)) {
            return Err(self.corrupt(CorruptReason::UnknownAcl { id: record.acl }));
        }
        if let EphemeralType::Session(session_id) =
            EphemeralType::of(record.ephemeral_owner, self.state.extended_types_enabled)
            && !self.state.sessions.contains_key(&session_id)
        {
            return Err(self.corrupt(CorruptReason::MissingSession { path, session_id }));
        }
        let key = NodeKey {
            parent: if is_root {
                Arc::from("")
            } else {
                self.run_parent.clone()
            },
            name: SmolStr::new(key.name),
        };
        let node = Znode {
            data: stored_data(record.data.0),
            data_null: record.data_null,
            czxid: record.czxid,
            mzxid: record.mzxid,
            pzxid: record.pzxid,
            ctime: record.ctime,
            mtime: record.mtime,
            ephemeral_owner: record.ephemeral_owner,
            version: record.version,
            cversion: record.cversion,
            aversion: record.aversion,
            acl: AclId(record.acl),
            num_children: 0,
        };
        self.state.data_size += java_length(&path) as i64 + node.data().len() as i64;
        self.state.register(&key, node.ephemeral_owner);
        self.state.nodes.insert(key.clone(), Arc::new(node));
        self.last_key = Some(key);
        Ok(())
    }

    /// Adds the finished run's children to its parent's count.
    fn end_run(&mut self) {
        if self.run_children == 0 {
            return;
        }
        let parent = KeyRef::of_path(&self.run_parent).and_then(|p| self.state.nodes.get_mut(&p));
        let parent = parent.map(Arc::make_mut);
        let parent = parent.unwrap_or_else(|| panic!("run parent {} vanished", self.run_parent));
        parent.num_children += self.run_children;
        self.run_children = 0;
    }

    fn finish(&mut self) -> Result<(), SnapshotError> {
        self.end_run();
        if self.state.nodes.is_empty() {
            return Err(self.corrupt(CorruptReason::MissingRoot));
        }
        let unused = self
            .state
            .acls
            .entries()
            .find(|(_, _, references)| *references == 0);
        if let Some((id, _, _)) = unused {
            return Err(self.corrupt(CorruptReason::UnusedAcl { id: id.0 }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arbor_proto::{CreateRequest, Id};

    use super::*;
    use crate::command::{Command, Txn, WriteRequest};

    const SESSION: SessionId = SessionId(0x0100_0000_0000_0001);

    /// A tree with /a, /a/b and the ephemeral /e of SESSION.
    fn tree() -> DataTree {
        let mut tree = DataTree::new(TreeConfig::default());
        let mut apply = |counter, command| {
            let applied = tree.apply(
                Zxid::from_parts(1, counter),
                &Txn {
                    time_ms: 5,
                    command,
                },
            );
            assert!(applied.result.is_ok(), "{applied:?}");
        };
        let create = |path: &str, flags| Command::Request {
            session_id: SESSION,
            identities: vec![Id::new("ip", "127.0.0.1")],
            request: WriteRequest::Create(CreateRequest {
                path: path.into(),
                data: Default::default(),
                acl: Acl::open_unsafe(),
                flags,
            }),
        };
        apply(
            1,
            Command::CreateSession {
                session_id: SESSION,
                timeout_ms: 1,
                password: vec![],
            },
        );
        apply(2, create("/a", 0));
        apply(3, create("/a/b", 0));
        apply(4, create("/e", 1));
        tree
    }

    /// Writes a tree whose state was tampered with (the writer trusts its input; the checksum
    /// is then valid) and reads it back.
    fn reread(tree: &DataTree) -> Result<DataTree, SnapshotError> {
        let mut bytes = Vec::new();
        tree.write_snapshot(&mut bytes).unwrap();
        DataTree::read_snapshot(&mut &bytes[..], TreeConfig::default())
    }

    fn reason(result: Result<DataTree, SnapshotError>) -> CorruptReason {
        match result {
            Err(SnapshotError::Corrupt { reason, .. }) => reason,
            other => panic!("expected a structural error, got {other:?}"),
        }
    }

    #[test]
    fn structure_is_checked_even_with_a_valid_checksum() {
        assert_eq!(reread(&tree()).unwrap(), tree());

        let mut orphan = tree();
        orphan.state.nodes.remove(&KeyRef::of_path("/a").unwrap());
        assert_eq!(
            reason(reread(&orphan)),
            CorruptReason::MissingParent {
                path: "/a/b".into()
            }
        );

        let mut sessionless = tree();
        sessionless.state.sessions.remove(&SESSION);
        assert_eq!(
            reason(reread(&sessionless)),
            CorruptReason::MissingSession {
                path: "/e".into(),
                session_id: SESSION
            }
        );

        let mut rootless = tree();
        rootless.state.nodes.remove(&KeyRef::of_path("/").unwrap());
        assert_eq!(reason(reread(&rootless)), CorruptReason::MissingRoot);

        let mut unused_acl = tree();
        unused_acl.state.acls.acquire(&[Acl {
            perms: 1,
            id: Id::new("ip", "1.2.3.4"),
        }]);
        assert!(matches!(
            reason(reread(&unused_acl)),
            CorruptReason::UnusedAcl { .. }
        ));

        let mut unknown_acl = tree();
        let node = unknown_acl
            .state
            .nodes
            .get_mut(&KeyRef::of_path("/a").unwrap())
            .unwrap();
        Arc::make_mut(node).acl = AclId(999);
        assert_eq!(
            reason(reread(&unknown_acl)),
            CorruptReason::UnknownAcl { id: 999 }
        );

        let mut parent_of_ephemeral = tree();
        let e = parent_of_ephemeral.state.get_entry("/e").unwrap().0.clone();
        let b = parent_of_ephemeral
            .state
            .get_entry("/a/b")
            .unwrap()
            .0
            .clone();
        let child = parent_of_ephemeral.state.nodes.remove(&b.as_ref()).unwrap();
        let under_e = NodeKey {
            parent: Arc::from(e.path().as_str()),
            name: b.name.clone(),
        };
        parent_of_ephemeral.state.nodes.insert(under_e, child);
        assert_eq!(
            reason(reread(&parent_of_ephemeral)),
            CorruptReason::EphemeralWithChildren { path: "/e".into() }
        );
    }
}
