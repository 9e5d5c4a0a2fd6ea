//! arbor's replicated state machine: ZooKeeper's data tree, the session table, ACLs and
//! `multi`, with ZooKeeper 3.9's semantics.
//!
//! [`DataTree::apply`] is a pure function of (state, [`Txn`]): it validates everything —
//! session, path, versions, existence, ACLs, sequence numbers — and either changes the state
//! or returns the error every replica computes identically. It reads no clock (time comes
//! in the txn) and iterates no randomly ordered map. Reads are methods on the tree.
//!
//! ```
//! use arbor_proto::{Acl, CreateRequest, Id, Response, SessionId, Zxid};
//! use arbor_tree::{Command, DataTree, TreeConfig, Txn, WriteRequest};
//!
//! let mut tree = DataTree::new(TreeConfig::default());
//! let session_id = SessionId(0x0100_0000_0000_0001);
//! let mut zxid = 0;
//! let mut apply = |tree: &mut DataTree, command: Command| {
//!     zxid += 1;
//!     // The server decodes the committed entry's payload and applies it on every replica.
//!     let txn = Txn::decode(&Txn { time_ms: 1_000, command }.encode()).expect("decodes");
//!     tree.apply(Zxid::from_parts(1, zxid), &txn)
//! };
//! apply(&mut tree, Command::CreateSession { session_id, timeout_ms: 30_000, password: vec![0; 16] });
//!
//! let create = WriteRequest::Create(CreateRequest {
//!     path: "/lock-".into(),
//!     data: Some("me".into()),
//!     acl: Acl::open_unsafe(),
//!     flags: 3, // ephemeral sequential
//! });
//! let identities = vec![Id::new("ip", "127.0.0.1")];
//! let applied = apply(&mut tree, Command::Request { session_id, identities: identities.clone(), request: create });
//! let Ok(Response::Create(created)) = applied.result else { panic!("{:?}", applied.result) };
//! // The suffix is the parent's count of creates so far (the root's /zookeeper is built in).
//! assert_eq!(created.path, "/lock-0000000000");
//! assert_eq!(applied.triggers.len(), 2); // NodeCreated on the node, NodeChildrenChanged on "/"
//!
//! let (data, stat) = tree.get_data("/lock-0000000000", &identities).expect("readable");
//! assert_eq!((data.as_deref(), stat.ephemeral_owner), (Some(&b"me"[..]), session_id.0));
//!
//! // Closing the session deletes its ephemerals, with their watch triggers.
//! let closed = apply(&mut tree, Command::CloseSession { session_id });
//! assert_eq!(closed.triggers.len(), 2);
//! assert!(tree.exists("/lock-0000000000").is_err());
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod acl;
mod auth;
mod cluster_config;
mod command;
mod config;
mod ephemeral;
mod invariants;
mod multi;
mod node;
mod ops;
mod path;
mod quota;
mod read;
mod session;
mod snapshot;
mod state;
mod tree;

pub use acl::readable_by;
pub use auth::{authenticate, digest};
pub use cluster_config::{
    CONFIG_PATH, ClusterConfig, ClusterMember, ClusterRole, ConfigParseError,
};
pub use command::{Applied, Command, Txn, TxnError, WatchTrigger, WriteRequest};
pub use config::TreeConfig;
pub use quota::{QuotaExcess, QuotaKind};
pub use session::{ServerId, Session};
pub use snapshot::{
    CorruptReason, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_RECORD_BYTES_MAX, SnapshotError,
};
pub use tree::{DataTree, TreeStats};
