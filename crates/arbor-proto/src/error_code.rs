//! ZooKeeper's error codes (`KeeperException.Code`), one enum for the whole project.

use std::fmt;

macro_rules! error_codes {
    ($( $(#[$meta:meta])* $name:ident = $value:literal ),* $(,)?) => {
        /// A ZooKeeper error code as carried in `ReplyHeader.err` and multi results.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[repr(i32)]
        pub enum ErrorCode {
            $( $(#[$meta])* $name = $value ),*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];

            /// The code for a wire value, if ZooKeeper defines it.
            pub fn from_i32(value: i32) -> Option<ErrorCode> {
                match value {
                    $( $value => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }

            /// ZooKeeper's name for the code, as its exceptions print it.
            pub fn name(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => stringify!($name), )*
                }
            }
        }
    };
}

error_codes! {
    /// Everything is OK.
    Ok = 0,
    /// A system or server-side error (only for ranges in ZooKeeper; used as a generic failure).
    SystemError = -1,
    /// A runtime inconsistency was found.
    RuntimeInconsistency = -2,
    /// A data inconsistency was found.
    DataInconsistency = -3,
    /// Connection to the server has been lost.
    ConnectionLoss = -4,
    /// Error while marshalling or unmarshalling data.
    MarshallingError = -5,
    /// Operation is unimplemented.
    Unimplemented = -6,
    /// Operation timeout.
    OperationTimeout = -7,
    /// Invalid arguments.
    BadArguments = -8,
    /// No quorum of new config is connected and up-to-date with the leader.
    NewConfigNoQuorum = -13,
    /// Another reconfiguration is in progress.
    ReconfigInProgress = -14,
    /// Unknown session (internal server use only).
    UnknownSession = -12,
    /// API errors (only for ranges in ZooKeeper).
    ApiError = -100,
    /// Node does not exist.
    NoNode = -101,
    /// Not authenticated.
    NoAuth = -102,
    /// Version conflict.
    BadVersion = -103,
    /// Ephemeral nodes may not have children.
    NoChildrenForEphemerals = -108,
    /// The node already exists.
    NodeExists = -110,
    /// The node has children.
    NotEmpty = -111,
    /// The session has been expired by the server.
    SessionExpired = -112,
    /// Invalid callback specified.
    InvalidCallback = -113,
    /// Invalid ACL specified.
    InvalidAcl = -114,
    /// Client authentication failed.
    AuthFailed = -115,
    /// Session moved to another server, so the operation is ignored.
    SessionMoved = -118,
    /// State-changing request passed to a read-only server.
    NotReadOnly = -119,
    /// Attempt to create an ephemeral node on a local session.
    EphemeralOnLocalSession = -120,
    /// Attempt to remove a watcher that does not exist.
    NoWatcher = -121,
    /// The request did not complete within the server's limit.
    RequestTimeout = -122,
    /// Attempt to reconfigure while reconfiguration is disabled.
    ReconfigDisabled = -123,
    /// The session was closed because it requires SASL authentication.
    SessionClosedRequireSaslAuth = -124,
    /// A quota was exceeded.
    QuotaExceeded = -125,
    /// The operation was throttled and not executed.
    ThrottledOp = -127,
}

impl ErrorCode {
    /// The wire value.
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

impl std::error::Error for ErrorCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_value() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_i32(code.code()), Some(code));
        }
        assert_eq!(ErrorCode::ALL.len(), 32);
    }

    #[test]
    fn unknown_values_are_none() {
        assert_eq!(ErrorCode::from_i32(-9), None);
        assert_eq!(ErrorCode::from_i32(-126), None);
    }

    #[test]
    fn display_names_the_code_like_zookeeper() {
        assert_eq!(ErrorCode::NoNode.to_string(), "NoNode (-101)");
    }
}
