//! What the core sends to a connection's writer task. Replies are encoded there, not in the
//! core, so encoding work spreads over the runtime's threads.

use arbor_proto::{ErrorCode, Response, WatcherEvent};

/// One message for a connection, in the order the client must see them.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// The reply to a request.
    Reply {
        /// The request's xid.
        xid: i32,
        /// The zxid to put in the header.
        zxid: i64,
        /// The body, or the error code for the header.
        result: Result<Response, ErrorCode>,
    },
    /// A watch notification.
    Event {
        /// The zxid of the change that fired it.
        zxid: i64,
        /// The event.
        event: WatcherEvent,
    },
    /// Flush what came before, then close the connection.
    Close,
}
