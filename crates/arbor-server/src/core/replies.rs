//! Replies and watch events towards connections, with the slow-reader bound.

use std::time::Instant;

use arbor_proto::{ErrorCode, KeeperState, Response, WatcherEvent, Zxid};
use tokio::sync::mpsc;

use super::*;
use crate::outbound::Outbound;
use crate::watches::{ConnectionId, Notification};

impl Core {
    // ----- replies and events -----------------------------------------------------------------

    pub(super) fn reply(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        zxid: i64,
        result: Result<Response, ErrorCode>,
        received: Instant,
    ) {
        self.stats.record_latency(received.elapsed());
        self.stats.packets_sent += 1;
        if let Some(state) = self.connections.get_mut(&connection) {
            state.sent += 1;
            state.permits.add_permits(1);
        }
        self.send(connection, Outbound::Reply { xid, zxid, result });
    }

    pub(super) fn deliver(&mut self, zxid: Zxid, notifications: Vec<Notification>) {
        for Notification {
            connection,
            event,
            path,
        } in notifications
        {
            let event = WatcherEvent {
                event_type: event.code(),
                state: KeeperState::SyncConnected.code(),
                path,
            };
            self.stats.packets_sent += 1;
            self.send(
                connection,
                Outbound::Event {
                    zxid: zxid.0,
                    event,
                },
            );
        }
    }

    pub(super) fn send(&mut self, connection: ConnectionId, message: Outbound) {
        let Some(state) = self.connections.get(&connection) else {
            return;
        };
        match state.outbound.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // A client that does not read its socket must not grow our memory: its queue
                // is bounded, and past the bound it loses the connection (not the session).
                self.close_connection(connection, "slow reader: outbound queue full");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.drop_connection(connection),
        }
    }
}
