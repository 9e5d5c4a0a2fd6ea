//! A session as the replicated session table holds it.

use std::fmt;
use std::sync::Arc;

use imbl::OrdSet;
use serde::{Deserialize, Serialize};

use crate::node::NodeKey;

/// A server of the cluster, by its configured id (`server.N`): the origin of a log entry
/// (the server whose client asked for it) and the owner of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServerId(pub u64);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One open session: what `CreateSession` logged, its owner, and the ephemerals it owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    timeout_ms: i32,
    password: Arc<[u8]>,
    /// The server that holds the session's connection, as the log last recorded it
    /// (ZooKeeper's session owner, `SessionTrackerImpl.setOwner`): writes that other servers
    /// send for the session are refused with SessionMoved. None: not recorded (a session
    /// from before owners were, or applied without an origin); any server's writes are taken.
    owner: Option<ServerId>,
    /// Invariant: exactly the nodes whose `ephemeral_owner` is this session's id.
    pub(crate) ephemerals: OrdSet<NodeKey>,
}

impl Session {
    pub(crate) fn new(timeout_ms: i32, password: &[u8], owner: Option<ServerId>) -> Session {
        Session {
            timeout_ms,
            password: Arc::from(password),
            owner,
            ephemerals: OrdSet::new(),
        }
    }

    /// The negotiated session timeout.
    pub fn timeout_ms(&self) -> i32 {
        self.timeout_ms
    }

    /// The password a reconnecting client must present.
    pub fn password(&self) -> &[u8] {
        &self.password
    }

    /// The server that holds the session's connection, if the log recorded one: the only
    /// server whose writes for the session apply.
    pub fn owner(&self) -> Option<ServerId> {
        self.owner
    }

    pub(crate) fn set_owner(&mut self, owner: Option<ServerId>) {
        self.owner = owner;
    }

    /// Whether a write that `origin` sent for this session may apply: it may unless the
    /// session has a recorded owner and the origin is known and is another server.
    pub(crate) fn accepts_writes_from(&self, origin: Option<ServerId>) -> bool {
        match (self.owner, origin) {
            (Some(owner), Some(origin)) => owner == origin,
            _ => true,
        }
    }

    /// How many ephemeral nodes the session owns.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.len()
    }
}
