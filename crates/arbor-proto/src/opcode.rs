//! Request types (`ZooDefs.OpCode`) and the special xids.

macro_rules! opcodes {
    ($( $(#[$meta:meta])* $name:ident = $value:literal ),* $(,)?) => {
        /// A request type, as carried in `RequestHeader.type` and `MultiHeader.type`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[repr(i32)]
        pub enum OpCode {
            $( $(#[$meta])* $name = $value ),*
        }

        impl OpCode {
            /// Every opcode, in declaration order.
            pub const ALL: &'static [OpCode] = &[$(OpCode::$name),*];

            /// The opcode for a wire value, if ZooKeeper defines it.
            pub fn from_i32(value: i32) -> Option<OpCode> {
                match value {
                    $( $value => Some(OpCode::$name), )*
                    _ => None,
                }
            }

            /// The name ZooKeeper's logs and `cons` output use.
            pub fn name(self) -> &'static str {
                match self {
                    $( OpCode::$name => stringify!($name), )*
                }
            }
        }
    };
}

opcodes! {
    /// A watch notification (server to client only).
    Notification = 0,
    /// Create a node, reply with its path.
    Create = 1,
    /// Delete a node.
    Delete = 2,
    /// Stat a node, optionally leaving a watch.
    Exists = 3,
    /// Read a node's data.
    GetData = 4,
    /// Write a node's data.
    SetData = 5,
    /// Read a node's ACL.
    GetAcl = 6,
    /// Write a node's ACL.
    SetAcl = 7,
    /// List a node's children.
    GetChildren = 8,
    /// Flush the channel between this server and the leader.
    Sync = 9,
    /// Keep the session alive.
    Ping = 11,
    /// List children and stat.
    GetChildren2 = 12,
    /// Check a node's version (in multi, or standalone).
    Check = 13,
    /// Atomic batch of writes.
    Multi = 14,
    /// Create a node, reply with path and stat.
    Create2 = 15,
    /// Change the ensemble membership.
    Reconfig = 16,
    /// Ask whether a watch exists.
    CheckWatches = 17,
    /// Remove watches.
    RemoveWatches = 18,
    /// Create a container node.
    CreateContainer = 19,
    /// Server-internal deletion of an empty container.
    DeleteContainer = 20,
    /// Create a node with a time-to-live.
    CreateTtl = 21,
    /// Batch of reads.
    MultiRead = 22,
    /// Add authentication to the connection.
    Auth = 100,
    /// Re-register watches after a reconnect.
    SetWatches = 101,
    /// A SASL token exchange.
    Sasl = 102,
    /// List the session's ephemeral nodes.
    GetEphemerals = 103,
    /// Count every descendant of a node.
    GetAllChildrenNumber = 104,
    /// Re-register watches (persistent ones included) after a reconnect.
    SetWatches2 = 105,
    /// Add a persistent or persistent-recursive watch.
    AddWatch = 106,
    /// Ask the server who the connection is authenticated as.
    WhoAmI = 107,
    /// Create a session (never in a request header; named for logs).
    CreateSession = -10,
    /// Close the session.
    CloseSession = -11,
    /// A failed operation inside a multi result.
    Error = -1,
}

impl OpCode {
    /// The wire value.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The xid of a watch notification.
pub const XID_NOTIFICATION: i32 = -1;
/// The xid clients use for pings.
pub const XID_PING: i32 = -2;
/// The xid clients use for authentication packets.
pub const XID_AUTH: i32 = -4;
/// The xid clients use for `setWatches` after a reconnect.
pub const XID_SET_WATCHES: i32 = -8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opcode_round_trips_through_its_wire_value() {
        for &op in OpCode::ALL {
            assert_eq!(OpCode::from_i32(op.code()), Some(op));
        }
        assert_eq!(OpCode::from_i32(10), None, "10 is unused by ZooKeeper");
    }
}
