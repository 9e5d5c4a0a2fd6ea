//! The `org.apache.zookeeper.data` records and the small enums of the client API.

use serde::{Deserialize, Serialize};

use crate::jute::{DecodeError, Reader, record};

/// A transaction id: `(epoch << 32) | counter`, where arbor's epoch is the Raft term and the
/// counter is the position of the entry within its term. Orders exactly as the log does.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Zxid(pub i64);

impl Zxid {
    /// Builds a zxid from its epoch and counter halves.
    pub fn from_parts(epoch: u32, counter: u32) -> Zxid {
        Zxid(((u64::from(epoch) << 32) | u64::from(counter)) as i64)
    }

    /// The epoch (Raft term) half.
    pub fn epoch(self) -> u32 {
        ((self.0 as u64) >> 32) as u32
    }

    /// The counter half.
    pub fn counter(self) -> u32 {
        self.0 as u64 as u32
    }
}

impl std::fmt::Display for Zxid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// A session id as ZooKeeper mints it: server id in the top byte, a time-seeded counter below.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct SessionId(pub i64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// ACL permission bits (`ZooDefs.Perms`).
pub mod perms {
    /// Read data and list children.
    pub const READ: i32 = 1;
    /// Set data.
    pub const WRITE: i32 = 1 << 1;
    /// Create children.
    pub const CREATE: i32 = 1 << 2;
    /// Delete children.
    pub const DELETE: i32 = 1 << 3;
    /// Set the ACL.
    pub const ADMIN: i32 = 1 << 4;
    /// Every permission.
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

record! {
    /// An identity under an authentication scheme, e.g. `world:anyone` or `digest:user:hash`.
    #[derive(Hash, PartialOrd, Ord)]
    pub struct Id {
        /// The scheme: `world`, `auth`, `digest`, `ip`, `x509`, `sasl`, `super`.
        pub scheme: String,
        /// The identity within the scheme.
        pub id: String,
    }
}

impl Id {
    /// Builds an id from its parts.
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Id {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    /// `world:anyone`, the identity of every client.
    pub fn anyone() -> Id {
        Id::new("world", "anyone")
    }
}

record! {
    /// One access-control entry: permissions granted to an identity.
    #[derive(Hash, PartialOrd, Ord)]
    pub struct Acl {
        /// Bitwise or of [`perms`] values.
        pub perms: i32,
        /// Who is granted them.
        pub id: Id,
    }
}

impl Acl {
    /// `world:anyone` with every permission (`ZooDefs.Ids.OPEN_ACL_UNSAFE`).
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id::anyone(),
        }]
    }

    /// `world:anyone` with read only (`ZooDefs.Ids.READ_ACL_UNSAFE`).
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::READ,
            id: Id::anyone(),
        }]
    }
}

record! {
    /// A node's metadata, all eleven fields of ZooKeeper's `Stat`.
    #[derive(Copy, Hash)]
    pub struct Stat {
        /// Zxid of the change that created the node.
        pub czxid: i64,
        /// Zxid of the change that last modified the node's data.
        pub mzxid: i64,
        /// Creation time, milliseconds since the epoch (the leader's clock).
        pub ctime: i64,
        /// Last data modification time, milliseconds since the epoch.
        pub mtime: i64,
        /// Number of changes to the data.
        pub version: i32,
        /// Number of changes to the children.
        pub cversion: i32,
        /// Number of changes to the ACL.
        pub aversion: i32,
        /// Owning session of an ephemeral node, or a container/TTL marker, or 0.
        pub ephemeral_owner: i64,
        /// Length of the data in bytes.
        pub data_length: i32,
        /// Number of children.
        pub num_children: i32,
        /// Zxid of the change that last modified the children.
        pub pzxid: i64,
    }
}

record! {
    /// An authenticated identity of a connection, as `whoAmI` reports it.
    pub struct ClientInfo {
        /// The scheme the identity was authenticated with.
        pub auth_scheme: String,
        /// The identity.
        pub user: String,
    }
}

/// How a node is created (`CreateMode`), from the `flags` field of a create request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CreateMode {
    /// Stays until deleted.
    Persistent,
    /// Deleted when its session ends.
    Ephemeral,
    /// Persistent, with a sequence suffix.
    PersistentSequential,
    /// Ephemeral, with a sequence suffix.
    EphemeralSequential,
    /// Deleted by the server once its last child is gone.
    Container,
    /// Deleted by the server once unmodified and childless for its TTL.
    PersistentWithTtl,
    /// Sequential and TTL.
    PersistentSequentialWithTtl,
}

impl CreateMode {
    /// The mode for a wire flag value.
    pub fn from_flags(flags: i32) -> Option<CreateMode> {
        Some(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return None,
        })
    }

    /// The wire flag value.
    pub fn flags(self) -> i32 {
        match self {
            CreateMode::Persistent => 0,
            CreateMode::Ephemeral => 1,
            CreateMode::PersistentSequential => 2,
            CreateMode::EphemeralSequential => 3,
            CreateMode::Container => 4,
            CreateMode::PersistentWithTtl => 5,
            CreateMode::PersistentSequentialWithTtl => 6,
        }
    }

    /// Whether the node ends with its session.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// Whether the name gets a `%010d` suffix.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// Whether this is a container.
    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    /// Whether the node has a time-to-live.
    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

macro_rules! wire_enum {
    (
        $(#[$meta:meta])* pub enum $name:ident : $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),*
        }

        impl $name {
            /// The value for a wire integer, if defined.
            pub fn from_i32(value: i32) -> Option<$name> {
                match value {
                    $( $value => Some($name::$variant), )*
                    _ => None,
                }
            }

            /// The wire integer.
            pub fn code(self) -> i32 {
                match self {
                    $( $name::$variant => $value, )*
                }
            }

            /// Decodes the wire integer, rejecting unknown values.
            ///
            /// # Errors
            /// [`DecodeError::InvalidValue`] for an unknown value, or a truncation error.
            pub fn decode(reader: &mut Reader<'_>) -> Result<$name, DecodeError> {
                let value = reader.read_i32()?;
                $name::from_i32(value)
                    .ok_or(DecodeError::InvalidValue { field: $field, value: i64::from(value) })
            }
        }
    };
}

wire_enum! {
    /// The type of a watch event (`Watcher.Event.EventType`).
    pub enum EventType: "event type" {
        /// A change of connection state, not of a node.
        None = -1,
        /// The watched node was created.
        NodeCreated = 1,
        /// The watched node was deleted.
        NodeDeleted = 2,
        /// The watched node's data changed.
        NodeDataChanged = 3,
        /// The watched node's children changed.
        NodeChildrenChanged = 4,
        /// A data watch was removed.
        DataWatchRemoved = 5,
        /// A child watch was removed.
        ChildWatchRemoved = 6,
        /// A persistent watch was removed.
        PersistentWatchRemoved = 7,
    }
}

wire_enum! {
    /// The connection state carried by a watch event (`Watcher.Event.KeeperState`).
    pub enum KeeperState: "keeper state" {
        /// Disconnected from the server.
        Disconnected = 0,
        /// Connected and in sync.
        SyncConnected = 3,
        /// Authentication failed.
        AuthFailed = 4,
        /// Connected to a read-only server.
        ConnectedReadOnly = 5,
        /// SASL authentication succeeded.
        SaslAuthenticated = 6,
        /// The client closed the session.
        Closed = 7,
        /// The session expired.
        Expired = -112,
    }
}

wire_enum! {
    /// Which watches `checkWatches` / `removeWatches` address (`Watcher.WatcherType`).
    pub enum WatcherType: "watcher type" {
        /// Child watches.
        Children = 1,
        /// Data and exist watches.
        Data = 2,
        /// Every kind.
        Any = 3,
        /// Persistent watches.
        Persistent = 4,
        /// Persistent recursive watches.
        PersistentRecursive = 5,
    }
}

wire_enum! {
    /// The kind of watch `addWatch` adds (`AddWatchMode`).
    pub enum AddWatchMode: "add watch mode" {
        /// Fires on every change of the node, and stays.
        Persistent = 0,
        /// Fires on every change of the node and its descendants, and stays.
        PersistentRecursive = 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::Jute;

    #[test]
    fn zxid_halves_round_trip() {
        let zxid = Zxid::from_parts(7, 42);
        assert_eq!(zxid.0, (7 << 32) | 42);
        assert_eq!((zxid.epoch(), zxid.counter()), (7, 42));
        assert!(Zxid::from_parts(7, u32::MAX) < Zxid::from_parts(8, 0));
    }

    #[test]
    fn stat_is_sixty_eight_bytes_on_the_wire() {
        assert_eq!(Stat::default().to_bytes().len(), 68);
    }

    #[test]
    fn create_mode_flags_round_trip() {
        for flags in 0..7 {
            let mode = CreateMode::from_flags(flags).unwrap();
            assert_eq!(mode.flags(), flags);
        }
        assert_eq!(CreateMode::from_flags(7), None);
        assert_eq!(CreateMode::from_flags(-1), None);
    }

    #[test]
    fn unknown_event_type_is_rejected() {
        let bytes = 9i32.to_be_bytes();
        let error = EventType::decode(&mut Reader::new(&bytes)).unwrap_err();
        assert_eq!(
            error,
            DecodeError::InvalidValue {
                field: "event type",
                value: 9
            }
        );
    }
}
