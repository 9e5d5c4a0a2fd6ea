//! What a peer network needs to run: who we are, whom we talk to, and every limit by name.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use thiserror::Error;

/// Default largest payload of one frame: room for a Raft snapshot chunk of a few MiB.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 8 * 1024 * 1024;
/// Default number of messages waiting for one peer's connection.
pub const QUEUE_MESSAGES_MAX_DEFAULT: usize = 4096;
/// Default bytes of payload waiting for one peer's connection.
pub const QUEUE_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;
/// Default wait before the first redial.
pub const BACKOFF_MIN_DEFAULT: Duration = Duration::from_millis(50);
/// Default longest wait between dials.
pub const BACKOFF_MAX_DEFAULT: Duration = Duration::from_secs(2);
/// Default time for a TCP connect plus the handshake (ZooKeeper's `cnxTimeout` is 5 s).
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Default silence after which each side sends an empty keepalive frame.
pub const KEEPALIVE_INTERVAL_DEFAULT: Duration = Duration::from_millis(500);
/// Default silence after which a connection counts as dead and is closed.
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Default number of inbound peer connections (handshaking or established) at once.
pub const INBOUND_CONNECTIONS_MAX_DEFAULT: usize = 64;

/// The configuration of a [`PeerNetwork`](super::PeerNetwork).
///
/// Build it with [`PeerConfig::new`] and override what a test or an operator needs; every
/// limit has a named default. [`PeerNetwork::start`](super::PeerNetwork::start) checks the
/// values and refuses nonsense (see [`PeerConfigError`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The cluster this node belongs to. A connection between nodes with different cluster
    /// ids is refused by the handshake, so two clusters can never mix.
    pub cluster_id: u64,
    /// This node's id; it must not be 0 (absence is never a magic 0 in arbor).
    pub node_id: u64,
    /// Where peers connect to this node; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// The other members and the address to dial for each. This node's own id may appear
    /// (a full membership list is fine) and is skipped. Changed at runtime with
    /// [`PeerNetwork::set_peers`](super::PeerNetwork::set_peers).
    pub peers: BTreeMap<u64, SocketAddr>,
    /// Messages queued for one peer at most; beyond it `send` answers `Full`.
    pub queue_messages_max: usize,
    /// Payload bytes queued for one peer at most; beyond it `send` answers `Full`.
    pub queue_bytes_max: usize,
    /// Largest payload of one frame, sent or received. A peer that announces a longer frame
    /// has its connection closed. Must be the same on every member.
    pub frame_bytes_max: u32,
    /// Wait before the first redial after a failure; it doubles per failure.
    pub backoff_min: Duration,
    /// Longest wait between two dials.
    pub backoff_max: Duration,
    /// Time allowed for the TCP connect plus the handshake, on both sides.
    pub connect_timeout: Duration,
    /// Silence after which a side sends an empty keepalive frame, so the other side can tell
    /// an idle connection from a dead one.
    pub keepalive_interval: Duration,
    /// Silence (not a single byte read) after which a connection is declared dead and closed;
    /// the dialer then reconnects. Must exceed `keepalive_interval`.
    pub idle_timeout: Duration,
    /// Inbound connections (handshaking or established) accepted at once; more are refused
    /// with the reason `Busy`.
    pub inbound_connections_max: usize,
    /// TLS on every peer connection, both directions (ZooKeeper's `sslQuorum`); none: plain
    /// TCP. Must be set alike on every member.
    pub tls: Option<super::PeerTls>,
    /// A fresh node joining as an observer: the first peer it dials that refuses it for a
    /// cluster id mismatch gives it that peer's cluster id, recorded in this file (see
    /// `identity.rs`). None: the cluster id never changes.
    pub cluster_id_adoption: Option<std::path::PathBuf>,
}

impl PeerConfig {
    /// A configuration with every limit at its default.
    pub fn new(
        cluster_id: u64,
        node_id: u64,
        listen: SocketAddr,
        peers: BTreeMap<u64, SocketAddr>,
    ) -> PeerConfig {
        PeerConfig {
            cluster_id,
            node_id,
            listen,
            peers,
            queue_messages_max: QUEUE_MESSAGES_MAX_DEFAULT,
            queue_bytes_max: QUEUE_BYTES_MAX_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            backoff_min: BACKOFF_MIN_DEFAULT,
            backoff_max: BACKOFF_MAX_DEFAULT,
            connect_timeout: CONNECT_TIMEOUT_DEFAULT,
            keepalive_interval: KEEPALIVE_INTERVAL_DEFAULT,
            idle_timeout: IDLE_TIMEOUT_DEFAULT,
            inbound_connections_max: INBOUND_CONNECTIONS_MAX_DEFAULT,
            tls: None,
            cluster_id_adoption: None,
        }
    }

    /// Checks the values against each other.
    ///
    /// # Errors
    /// The first [`PeerConfigError`] found.
    pub fn validate(&self) -> Result<(), PeerConfigError> {
        let invalid = |field: &'static str, reason: &'static str| {
            Err(PeerConfigError::Invalid { field, reason })
        };
        if self.node_id == 0 {
            return invalid("node_id", "must not be 0");
        }
        if self.queue_messages_max == 0 {
            return invalid("queue_messages_max", "must be at least 1");
        }
        if self.queue_bytes_max == 0 {
            return invalid("queue_bytes_max", "must be at least 1");
        }
        if self.frame_bytes_max == 0 {
            return invalid("frame_bytes_max", "must be at least 1");
        }
        if self.backoff_min.is_zero() {
            return invalid("backoff_min", "must be positive");
        }
        if self.backoff_max < self.backoff_min {
            return invalid("backoff_max", "must be at least backoff_min");
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout", "must be positive");
        }
        if self.keepalive_interval.is_zero() {
            return invalid("keepalive_interval", "must be positive");
        }
        if self.idle_timeout <= self.keepalive_interval {
            return invalid("idle_timeout", "must exceed keepalive_interval");
        }
        if self.inbound_connections_max == 0 {
            return invalid("inbound_connections_max", "must be at least 1");
        }
        Ok(())
    }
}

impl Default for PeerConfig {
    /// Node 1 of cluster 0 on `127.0.0.1:0` with no peers: a starting point for tests.
    fn default() -> PeerConfig {
        PeerConfig::new(
            0,
            1,
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            BTreeMap::new(),
        )
    }
}

/// Why a [`PeerConfig`] was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PeerConfigError {
    /// A value is out of range or inconsistent with another.
    #[error("invalid peer configuration: {field} {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(PeerConfig::default().validate(), Ok(()));
    }

    #[test]
    fn node_id_zero_is_refused() {
        let config = PeerConfig {
            node_id: 0,
            ..PeerConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(PeerConfigError::Invalid {
                field: "node_id",
                reason: "must not be 0"
            })
        );
    }

    #[test]
    fn idle_timeout_must_exceed_keepalive() {
        let config = PeerConfig {
            keepalive_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            ..PeerConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(PeerConfigError::Invalid {
                field: "idle_timeout",
                ..
            })
        ));
    }

    #[test]
    fn backoff_bounds_must_be_ordered() {
        let config = PeerConfig {
            backoff_min: Duration::from_secs(2),
            backoff_max: Duration::from_secs(1),
            ..PeerConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(PeerConfigError::Invalid {
                field: "backoff_max",
                ..
            })
        ));
    }
}
