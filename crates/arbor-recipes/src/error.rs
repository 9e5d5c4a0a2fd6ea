//! The one error type of the recipes, split by what a caller branches on.

use thiserror::Error;
use zookeeper_client as zk;

/// Why a recipe operation failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RecipeError {
    /// The session ended (expired, or was closed): everything it held is gone and the client
    /// cannot be used again. Make a new client and start over.
    #[error("the ZooKeeper session ended ({0})")]
    SessionEnded(zk::Error),
    /// A node this recipe created and relies on (lock node, lease, latch node) disappeared
    /// while the session lived: somebody deleted it. Whatever it stood for is lost.
    #[error("our node {path} was deleted by someone else")]
    NodeLost {
        /// The node that vanished.
        path: String,
    },
    /// The connection was lost while a non-idempotent write was in flight: it may or may not
    /// have been applied. The recipe does not retry it blindly; read the state and decide.
    #[error("connection lost during a write to {path}: it may or may not have been applied")]
    Indeterminate {
        /// The node the write was aimed at.
        path: String,
    },
    /// The operation needs something this handle does not hold (releasing a lock that is not
    /// held, a write lock asked for while holding only a read lock, ...).
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
    /// An argument was refused before anything was sent (a bad path, zero leases, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A node holds data this recipe cannot decode (another program wrote it).
    #[error("cannot decode {path}: {reason}")]
    BadData {
        /// The node.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The recipe was closed (by `close`, or its background task ended).
    #[error("the recipe was closed")]
    Closed,
    /// Any other error from the ZooKeeper client, unchanged.
    #[error("ZooKeeper: {0}")]
    ZooKeeper(zk::Error),
}

impl From<zk::Error> for RecipeError {
    fn from(error: zk::Error) -> Self {
        match error {
            zk::Error::SessionExpired
            | zk::Error::ClientClosed
            | zk::Error::AuthFailed
            | zk::Error::NoHosts => RecipeError::SessionEnded(error),
            other => RecipeError::ZooKeeper(other),
        }
    }
}

impl RecipeError {
    /// Whether the session is over (nothing more can be done with this client).
    pub fn is_session_ended(&self) -> bool {
        matches!(self, RecipeError::SessionEnded(_))
    }
}

/// Result of a recipe operation.
pub type Result<T, E = RecipeError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_client_errors_become_session_ended() {
        for error in [zk::Error::SessionExpired, zk::Error::ClientClosed] {
            assert!(RecipeError::from(error).is_session_ended());
        }
        assert_eq!(
            RecipeError::from(zk::Error::NoNode),
            RecipeError::ZooKeeper(zk::Error::NoNode)
        );
    }
}
