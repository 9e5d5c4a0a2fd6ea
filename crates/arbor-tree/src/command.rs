//! What the log carries (a [`Txn`]: the leader's stamp and a [`Command`]) and what applying
//! it yields (an [`Applied`]: the reply and the watch triggers).

use arbor_proto::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, ErrorCode, EventType, Id,
    MultiOp, Response, SessionId, SetAclRequest, SetDataRequest,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A log entry's payload: what the leader stamped, plus the command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// The leader's wall clock when it proposed the entry, in ms since the epoch: the ctime
    /// and mtime of what the command writes, and the clock TTL expiry is judged by.
    pub time_ms: i64,
    /// What to do.
    pub command: Command,
}

/// Why bytes are not a [`Txn`].
#[derive(Debug, Error)]
pub enum TxnError {
    /// The payload is not a postcard-encoded `Txn`.
    #[error("txn payload does not decode: {0}")]
    Decode(#[from] postcard::Error),
    /// A `Txn` decoded but bytes were left after it.
    #[error("txn payload has {trailing_bytes} bytes after the txn")]
    TrailingBytes {
        /// How many.
        trailing_bytes: usize,
    },
}

impl Txn {
    /// The postcard encoding the log stores.
    ///
    /// # Panics
    /// Never in practice: every field serializes into a `Vec`.
    pub fn encode(&self) -> Vec<u8> {
        match postcard::to_allocvec(self) {
            Ok(bytes) => bytes,
            // Every field of a Txn is serializable into a Vec; failure is a bug.
            Err(error) => panic!("txn encoding failed: {error}"),
        }
    }

    /// Decodes [`Txn::encode`]'s output.
    ///
    /// # Errors
    /// [`TxnError`] when the bytes are not exactly one `Txn`.
    pub fn decode(bytes: &[u8]) -> Result<Txn, TxnError> {
        let (txn, rest) = postcard::take_from_bytes::<Txn>(bytes)?;
        if !rest.is_empty() {
            return Err(TxnError::TrailingBytes {
                trailing_bytes: rest.len(),
            });
        }
        Ok(txn)
    }
}

/// A state-machine command. Apply validates everything in it.
///
/// Logged as postcard, which encodes a variant by its index: add new variants at the end,
/// never reorder (the same holds for [`WriteRequest`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Opens a session. The id and the 16-byte password are minted by the server and logged;
    /// the entry's origin becomes the session's owner.
    CreateSession {
        /// The new session's id (server id in the top byte).
        session_id: SessionId,
        /// The negotiated timeout.
        timeout_ms: i32,
        /// The password a reconnecting client must present.
        password: Vec<u8>,
    },
    /// Ends a session (client close or leader-decided expiry): deletes its ephemerals.
    /// Closing an unknown session is a no-op success (idempotent).
    CloseSession {
        /// The session.
        session_id: SessionId,
    },
    /// A client write.
    Request {
        /// The requesting session; apply answers SessionExpired if it does not exist, and
        /// SessionMoved if another server than the entry's origin owns it.
        session_id: SessionId,
        /// The connection's authenticated ids, stamped by the server (auth is per
        /// connection, not replicated), e.g. `[ip:127.0.0.1, digest:bob:hash]`.
        /// `world:anyone` is implied; an id with scheme `super` grants everything.
        identities: Vec<Id>,
        /// The write.
        request: WriteRequest,
    },
    /// Leader-proposed: delete this TTL node if, at the txn's `time_ms`, it is still expired
    /// (childless and unmodified for longer than its TTL).
    DeleteExpiredTtl {
        /// The node.
        path: String,
    },
    /// Leader-proposed: delete this container if it is still an empty container that had
    /// children.
    DeleteEmptyContainer {
        /// The node.
        path: String,
    },
    /// Marks a term's start; changes nothing.
    Noop,
    /// Leader-proposed when a cluster starts with an empty `/zookeeper/config`: records the
    /// configured membership (`server.N=` lines); its version becomes this txn's zxid.
    SetClusterConfig {
        /// The `server.N=` lines.
        members: String,
    },
    /// The session's client reconnected to the server this entry comes from (its origin, see
    /// [`DataTree::apply_from`](crate::DataTree::apply_from)), which becomes the session's
    /// owner: from here on in log order, writes that another server sends for the session
    /// are refused with SessionMoved. ZooKeeper's leader does the same when a follower
    /// revalidates a session (`Learner.revalidate`, `SessionTracker.setOwner`); logging it
    /// orders the move with the writes, so which writes are refused is the same everywhere.
    /// SessionExpired if the session is gone.
    MoveSession {
        /// The session.
        session_id: SessionId,
    },
}

/// A client write, as decoded from the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteRequest {
    /// `create` (opcode 1): replies with the path.
    Create(CreateRequest),
    /// `create2` (15): replies with path and stat.
    Create2(CreateRequest),
    /// `createContainer` (19).
    CreateContainer(CreateRequest),
    /// `createTTL` (21).
    CreateTtl(CreateTtlRequest),
    /// `delete` (2).
    Delete(DeleteRequest),
    /// `setData` (5).
    SetData(SetDataRequest),
    /// `setACL` (7).
    SetAcl(SetAclRequest),
    /// `check` (13) outside a multi.
    Check(CheckVersionRequest),
    /// `multi` (14).
    Multi(Vec<MultiOp>),
    /// `reconfig` (16): changes the membership in `/zookeeper/config`.
    Reconfig(arbor_proto::ReconfigRequest),
}

/// A change a watch may be waiting for. The server maps triggers to its watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchTrigger {
    /// The node the event is about.
    pub path: String,
    /// NodeCreated, NodeDeleted, NodeDataChanged or NodeChildrenChanged.
    pub event: EventType,
    /// The node's ACL when the event happened (before a deletion): the server delivers the
    /// event only to watchers allowed to READ it, so a watch cannot reveal what the watcher may
    /// not read (ZooKeeper 3.9.2, ZOOKEEPER-4799 / CVE-2024-23944).
    pub acl: std::sync::Arc<[arbor_proto::Acl]>,
}

impl WatchTrigger {
    pub(crate) fn new(
        path: impl Into<String>,
        event: EventType,
        acl: std::sync::Arc<[arbor_proto::Acl]>,
    ) -> WatchTrigger {
        WatchTrigger {
            path: path.into(),
            event,
            acl,
        }
    }
}

/// The outcome of applying one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The reply to send: `Ok(Response)` — [`Response::Create`] for create,
    /// [`Response::Create2`] for create2/createTTL/createContainer, [`Response::Empty`] for
    /// delete, check and the non-client commands, [`Response::SetData`],
    /// [`Response::SetAcl`], [`Response::Multi`] — or `Err(code)`. A failed multi is
    /// `Ok(Response::Multi(..))` with every result an error, as ZooKeeper sends it (header
    /// err 0; results 0 before the failing op, its code, then RuntimeInconsistency).
    pub result: Result<Response, ErrorCode>,
    /// Watch triggers in the order ZooKeeper fires them; empty unless the state changed.
    pub triggers: Vec<WatchTrigger>,
}

impl Applied {
    pub(crate) fn ok(response: Response, triggers: Vec<WatchTrigger>) -> Applied {
        Applied {
            result: Ok(response),
            triggers,
        }
    }

    pub(crate) fn error(code: ErrorCode) -> Applied {
        Applied {
            result: Err(code),
            triggers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// Logs written by earlier builds must still decode: postcard tags a variant with its
    /// index, so existing variants keep theirs and new ones come last.
    #[test]
    fn command_variants_keep_their_log_tags() {
        let session_id = SessionId(1);
        let tags = [
            (Command::CloseSession { session_id }, 1),
            (Command::Noop, 5),
            (Command::MoveSession { session_id }, 7),
        ];
        for (command, tag) in tags {
            let bytes = postcard::to_allocvec(&command).unwrap();
            assert_eq!(bytes[0], tag, "{command:?}");
        }
    }

    #[test]
    fn txn_round_trips_and_rejects_garbage() {
        let txn = Txn {
            time_ms: 1_700_000_000_000,
            command: Command::Request {
                session_id: SessionId(0x0100_0000_0000_0042),
                identities: vec![Id::new("ip", "127.0.0.1")],
                request: WriteRequest::Create2(CreateRequest {
                    path: "/a".into(),
                    data: Some(Bytes::from_static(b"hello")),
                    acl: arbor_proto::Acl::open_unsafe(),
                    flags: 3,
                }),
            },
        };
        let bytes = txn.encode();
        assert_eq!(Txn::decode(&bytes).unwrap(), txn);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Txn::decode(&longer),
            Err(TxnError::TrailingBytes { trailing_bytes: 1 })
        ));
        assert!(matches!(
            Txn::decode(&bytes[..bytes.len() - 1]),
            Err(TxnError::Decode(_))
        ));
        assert!(Txn::decode(&[]).is_err());
    }
}
