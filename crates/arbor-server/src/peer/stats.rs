//! Per-peer counters, updated by the connection tasks and read by `stats()`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::handshake::ConnectError;

/// What one peer link has done, as seen from this node: a snapshot for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStats {
    /// The peer's node id.
    pub node_id: u64,
    /// Whether the peer is in the current membership. A non-member appears while it still
    /// holds an inbound connection to us.
    pub member: bool,
    /// The address dialed for it (members only).
    pub address: Option<SocketAddr>,
    /// Our outbound connection to it is established (handshake done).
    pub connected: bool,
    /// It has an established connection to us.
    pub inbound_connected: bool,
    /// Messages written to our connection to it.
    pub messages_sent: u64,
    /// Payload bytes written to our connection to it.
    pub bytes_sent: u64,
    /// Messages from it handed to the inbound channel.
    pub messages_received: u64,
    /// Payload bytes from it handed to the inbound channel.
    pub bytes_received: u64,
    /// Messages for it that were dropped: refused by `send` because the queue was full, or
    /// lost with a connection that broke while they were being written.
    pub messages_dropped: u64,
    /// Payload bytes of the dropped messages.
    pub bytes_dropped: u64,
    /// Messages waiting in its queue now.
    pub messages_queued: usize,
    /// Payload bytes waiting in its queue now.
    pub bytes_queued: usize,
    /// Times our connection to it was established again after being lost.
    pub reconnects: u64,
    /// Dials that failed (connect, handshake or refusal).
    pub connect_failures: u64,
    /// Why the latest failed dial failed; cleared when a dial succeeds.
    pub last_connect_error: Option<ConnectError>,
}

/// The live counters behind a [`PeerStats`].
#[derive(Default)]
pub(crate) struct PeerCounters {
    pub(crate) connected: AtomicBool,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) bytes_dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    last_connect_error: Mutex<Option<ConnectError>>,
}

impl PeerCounters {
    /// Adds to a counter.
    pub(crate) fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    /// Counts messages as dropped.
    pub(crate) fn dropped(&self, messages: u64, bytes: u64) {
        Self::add(&self.messages_dropped, messages);
        Self::add(&self.bytes_dropped, bytes);
    }

    /// Records the outcome of a dial.
    pub(crate) fn set_last_connect_error(&self, error: Option<ConnectError>) {
        *self
            .last_connect_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }

    /// A snapshot; the fields that live outside the counters are passed in.
    pub(crate) fn snapshot(
        &self,
        node_id: u64,
        address: Option<SocketAddr>,
        inbound_connected: bool,
        queued: (usize, usize),
    ) -> PeerStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        PeerStats {
            node_id,
            member: address.is_some(),
            address,
            connected: self.connected.load(Ordering::Relaxed),
            inbound_connected,
            messages_sent: load(&self.messages_sent),
            bytes_sent: load(&self.bytes_sent),
            messages_received: load(&self.messages_received),
            bytes_received: load(&self.bytes_received),
            messages_dropped: load(&self.messages_dropped),
            bytes_dropped: load(&self.bytes_dropped),
            messages_queued: queued.0,
            bytes_queued: queued.1,
            reconnects: load(&self.reconnects),
            connect_failures: load(&self.connect_failures),
            last_connect_error: self
                .last_connect_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}
