//! A session as the replicated session table holds it.

use std::sync::Arc;

use imbl::OrdSet;

use crate::node::NodeKey;

/// One open session: what `CreateSession` logged, and the ephemerals it owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    timeout_ms: i32,
    password: Arc<[u8]>,
    /// Invariant: exactly the nodes whose `ephemeral_owner` is this session's id.
    pub(crate) ephemerals: OrdSet<NodeKey>,
}

impl Session {
    pub(crate) fn new(timeout_ms: i32, password: &[u8]) -> Session {
        Session {
            timeout_ms,
            password: Arc::from(password),
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

    /// How many ephemeral nodes the session owns.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.len()
    }
}
