//! The `org.apache.zookeeper.proto` records: headers, and each operation's request and
//! response bodies, field for field as `zookeeper.jute` declares them.

use bytes::Bytes;

use crate::data::{Acl, ClientInfo, Stat};
use crate::jute::record;

record! {
    /// Precedes every request body.
    pub struct RequestHeader {
        /// Client-chosen id echoed in the reply; negative values are special (pings, auth...).
        pub xid: i32,
        /// The opcode (kept raw so an unknown one can be reported).
        pub op_code: i32,
    }
}

record! {
    /// Precedes every reply and notification.
    pub struct ReplyHeader {
        /// The request's xid, or a special xid.
        pub xid: i32,
        /// The zxid the server had applied when it replied.
        pub zxid: i64,
        /// An [`ErrorCode`](crate::ErrorCode) value; 0 when the body follows.
        pub err: i32,
    }
}

record! {
    /// Precedes each operation (and ends the list) inside multi requests and responses.
    pub struct MultiHeader {
        /// The operation's opcode, or −1.
        pub op_code: i32,
        /// True on the terminating header.
        pub done: bool,
        /// In responses, the operation's error code.
        pub err: i32,
    }
}

record! {
    /// `addauth`: credentials for a scheme.
    pub struct AuthPacket {
        /// Unused by ZooKeeper (always 0).
        pub auth_type: i32,
        /// The scheme, e.g. `digest`.
        pub scheme: String,
        /// Scheme-specific credentials, e.g. `user:password`.
        pub auth: Bytes,
    }
}

record! {
    /// `getData`.
    pub struct GetDataRequest {
        /// The node.
        pub path: String,
        /// Whether to leave a data watch.
        pub watch: bool,
    }
}

record! {
    /// Reply to `getData`.
    pub struct GetDataResponse {
        /// The node's data (`None`: null, as created).
        pub data: Option<Bytes>,
        /// The node's stat.
        pub stat: Stat,
    }
}

record! {
    /// `setData`.
    pub struct SetDataRequest {
        /// The node.
        pub path: String,
        /// The new data.
        pub data: Option<Bytes>,
        /// Expected version, or −1 for any.
        pub version: i32,
    }
}

record! {
    /// Reply to `setData`.
    pub struct SetDataResponse {
        /// The node's stat after the write.
        pub stat: Stat,
    }
}

record! {
    /// `reconfig`.
    pub struct ReconfigRequest {
        /// Servers to add, comma separated.
        pub joining_servers: String,
        /// Server ids to remove, comma separated.
        pub leaving_servers: String,
        /// A whole new membership (non-incremental reconfig).
        pub new_members: String,
        /// Expected current config version, or −1.
        pub cur_config_id: i64,
    }
}

record! {
    /// A SASL token from the client.
    pub struct GetSaslRequest {
        /// The token.
        pub token: Bytes,
    }
}

record! {
    /// A SASL token from the server.
    pub struct SetSaslResponse {
        /// The token.
        pub token: Bytes,
    }
}

record! {
    /// `create`, `create2` and `createContainer`.
    pub struct CreateRequest {
        /// The node (before any sequential suffix).
        pub path: String,
        /// Initial data.
        pub data: Option<Bytes>,
        /// Initial ACL.
        pub acl: Vec<Acl>,
        /// A [`CreateMode`](crate::CreateMode) flag value.
        pub flags: i32,
    }
}

record! {
    /// `createTTL`.
    pub struct CreateTtlRequest {
        /// The node (before any sequential suffix).
        pub path: String,
        /// Initial data.
        pub data: Option<Bytes>,
        /// Initial ACL.
        pub acl: Vec<Acl>,
        /// A [`CreateMode`](crate::CreateMode) flag value (a TTL mode).
        pub flags: i32,
        /// Time to live in milliseconds.
        pub ttl: i64,
    }
}

record! {
    /// Reply to `create`.
    pub struct CreateResponse {
        /// The created node's path (with its sequential suffix).
        pub path: String,
    }
}

record! {
    /// Reply to `create2`, `createTTL` and `createContainer`.
    pub struct Create2Response {
        /// The created node's path (with its sequential suffix).
        pub path: String,
        /// The created node's stat.
        pub stat: Stat,
    }
}

record! {
    /// `delete`.
    pub struct DeleteRequest {
        /// The node.
        pub path: String,
        /// Expected version, or −1 for any.
        pub version: i32,
    }
}

record! {
    /// `getChildren` and `getChildren2`.
    pub struct GetChildrenRequest {
        /// The node.
        pub path: String,
        /// Whether to leave a child watch.
        pub watch: bool,
    }
}

record! {
    /// Reply to `getChildren`.
    pub struct GetChildrenResponse {
        /// The children's names (not paths).
        pub children: Vec<String>,
    }
}

record! {
    /// Reply to `getChildren2`.
    pub struct GetChildren2Response {
        /// The children's names (not paths).
        pub children: Vec<String>,
        /// The parent's stat.
        pub stat: Stat,
    }
}

record! {
    /// `getAllChildrenNumber`.
    pub struct GetAllChildrenNumberRequest {
        /// The node.
        pub path: String,
    }
}

record! {
    /// Reply to `getAllChildrenNumber`.
    pub struct GetAllChildrenNumberResponse {
        /// Number of descendants.
        pub total_number: i32,
    }
}

record! {
    /// `check` (standalone or in a multi).
    pub struct CheckVersionRequest {
        /// The node.
        pub path: String,
        /// Expected version, or −1 for any.
        pub version: i32,
    }
}

record! {
    /// `sync`.
    pub struct SyncRequest {
        /// The path (echoed back; the sync is global).
        pub path: String,
    }
}

record! {
    /// Reply to `sync`.
    pub struct SyncResponse {
        /// The request's path.
        pub path: String,
    }
}

record! {
    /// `getACL`.
    pub struct GetAclRequest {
        /// The node.
        pub path: String,
    }
}

record! {
    /// Reply to `getACL`.
    pub struct GetAclResponse {
        /// The node's ACL.
        pub acl: Vec<Acl>,
        /// The node's stat.
        pub stat: Stat,
    }
}

record! {
    /// `setACL`.
    pub struct SetAclRequest {
        /// The node.
        pub path: String,
        /// The new ACL.
        pub acl: Vec<Acl>,
        /// Expected ACL version (aversion), or −1 for any.
        pub version: i32,
    }
}

record! {
    /// Reply to `setACL`.
    pub struct SetAclResponse {
        /// The node's stat after the write.
        pub stat: Stat,
    }
}

record! {
    /// `exists`.
    pub struct ExistsRequest {
        /// The node.
        pub path: String,
        /// Whether to leave an exist (or data) watch.
        pub watch: bool,
    }
}

record! {
    /// Reply to `exists`.
    pub struct ExistsResponse {
        /// The node's stat.
        pub stat: Stat,
    }
}

record! {
    /// `addWatch`.
    pub struct AddWatchRequest {
        /// The node.
        pub path: String,
        /// An [`AddWatchMode`](crate::AddWatchMode) value.
        pub mode: i32,
    }
}

record! {
    /// `checkWatches`.
    pub struct CheckWatchesRequest {
        /// The node.
        pub path: String,
        /// A [`WatcherType`](crate::WatcherType) value.
        pub watcher_type: i32,
    }
}

record! {
    /// `removeWatches`.
    pub struct RemoveWatchesRequest {
        /// The node.
        pub path: String,
        /// A [`WatcherType`](crate::WatcherType) value.
        pub watcher_type: i32,
    }
}

record! {
    /// `getEphemerals`.
    pub struct GetEphemeralsRequest {
        /// Only ephemerals whose path starts with this prefix.
        pub prefix_path: String,
    }
}

record! {
    /// Reply to `getEphemerals`.
    pub struct GetEphemeralsResponse {
        /// Paths of the session's ephemeral nodes.
        pub ephemerals: Vec<String>,
    }
}

record! {
    /// Reply to `whoAmI`.
    pub struct WhoAmIResponse {
        /// The connection's authenticated identities.
        pub client_info: Vec<ClientInfo>,
    }
}

record! {
    /// `setWatches`: re-register one-shot watches after a reconnect.
    pub struct SetWatches {
        /// The last zxid the client saw; watches fire for changes after it.
        pub relative_zxid: i64,
        /// Data watches.
        pub data_watches: Vec<String>,
        /// Exist watches.
        pub exist_watches: Vec<String>,
        /// Child watches.
        pub child_watches: Vec<String>,
    }
}

record! {
    /// `setWatches2`: like `setWatches`, with persistent watches.
    pub struct SetWatches2 {
        /// The last zxid the client saw; watches fire for changes after it.
        pub relative_zxid: i64,
        /// Data watches.
        pub data_watches: Vec<String>,
        /// Exist watches.
        pub exist_watches: Vec<String>,
        /// Child watches.
        pub child_watches: Vec<String>,
        /// Persistent watches.
        pub persistent_watches: Vec<String>,
        /// Persistent recursive watches.
        pub persistent_recursive_watches: Vec<String>,
    }
}

record! {
    /// A watch notification's body.
    pub struct WatcherEvent {
        /// An [`EventType`](crate::EventType) value.
        pub event_type: i32,
        /// A [`KeeperState`](crate::KeeperState) value.
        pub state: i32,
        /// The node.
        pub path: String,
    }
}

record! {
    /// A failed operation's result inside a multi response.
    pub struct ErrorResponse {
        /// An [`ErrorCode`](crate::ErrorCode) value.
        pub err: i32,
    }
}
