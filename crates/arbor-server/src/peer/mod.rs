//! The peer transport of replicated arbor: how a node sends opaque payloads (Raft messages,
//! forwarded client requests) to the other members of its cluster.
//!
//! # Connections
//!
//! Every node dials every peer for its **own outbound traffic** and accepts the peers'
//! connections for **receiving**: between two nodes there are two TCP connections, one per
//! direction (as etcd's rafthttp streams). Each side then has one job per socket (the dialer
//! writes its queue, the acceptor delivers frames to the core), no tie-break is needed when
//! both dial at once, and each direction reconnects on its own.
//!
//! A connection opens with a versioned handshake (magic, protocol version, cluster id, sender
//! id, intended receiver id). The acceptor checks it and answers accept, or refuse with a
//! reason code; the dialer checks the answer in turn. Both sides log a refusal with both
//! clusters' ids, so a node of another cluster or a wrong address book is one clear log line.
//! After the handshake, frames are `[u32 big-endian length][payload]`; length 0 is a keepalive.
//!
//! # Failures
//!
//! - A failed dial is retried with exponential backoff and jitter
//!   ([`PeerConfig::backoff_min`] to [`PeerConfig::backoff_max`]).
//! - A dead connection is noticed by a read error or by silence: each side writes a keepalive
//!   after [`PeerConfig::keepalive_interval`] with nothing else to write, and a side that
//!   reads nothing for [`PeerConfig::idle_timeout`] closes the connection. The dialer then
//!   reconnects.
//! - A peer that opens a new connection replaces its older one (a restarted peer does not
//!   wait for the stale connection to time out).
//! - A frame longer than [`PeerConfig::frame_bytes_max`] closes the connection.
//!
//! # Limits
//!
//! Messages for a peer wait in a queue bounded by [`PeerConfig::queue_messages_max`] and
//! [`PeerConfig::queue_bytes_max`], connected or not. When it is full, [`PeerNetwork::send`]
//! refuses the **newest** message with [`SendError::Full`] at once and the caller drops it:
//! Raft tolerates loss, and what the leader still needs it sends again. Messages already
//! queued survive a reconnect and go out oldest first; those being written when a connection
//! breaks are lost and counted as dropped. On the receiving side a slow core is never buffered
//! for: the reader awaits the bounded `inbound` channel and stops reading meanwhile.
//!
//! # Streams
//!
//! Everything after the TCP connect or accept is generic over the stream
//! (`AsyncRead + AsyncWrite`), so a TLS stream slots in between the socket and the handshake.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use bytes::Bytes;
//! use arbor_server::peer::{PeerConfig, PeerNetwork};
//! use tokio::sync::mpsc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let loopback = "127.0.0.1:0".parse().expect("an address");
//! let (to_core_2, mut core_2) = mpsc::channel(1024);
//! let node_2 = PeerNetwork::start(PeerConfig::new(7, 2, loopback, BTreeMap::new()), to_core_2).await?;
//!
//! let (to_core_1, _core_1) = mpsc::channel(1024);
//! let peers = BTreeMap::from([(2, node_2.local_address())]);
//! let node_1 = PeerNetwork::start(PeerConfig::new(7, 1, loopback, peers), to_core_1).await?;
//!
//! node_1.send(2, Bytes::from_static(b"append entries")).expect("queued");
//! let (from, payload) = core_2.recv().await.expect("delivered");
//! assert_eq!((from, &payload[..]), (1, &b"append entries"[..]));
//!
//! node_1.shutdown().await;
//! node_2.shutdown().await;
//! # Ok(()) }
//! ```

mod backoff;
mod config;
mod frame;
mod handshake;
mod identity;
mod inbound;
mod outbound;
mod queue;
mod stats;
mod tls;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span};

pub use config::{
    BACKOFF_MAX_DEFAULT, BACKOFF_MIN_DEFAULT, CONNECT_TIMEOUT_DEFAULT, FRAME_BYTES_MAX_DEFAULT,
    IDLE_TIMEOUT_DEFAULT, INBOUND_CONNECTIONS_MAX_DEFAULT, KEEPALIVE_INTERVAL_DEFAULT, PeerConfig,
    PeerConfigError, QUEUE_BYTES_MAX_DEFAULT, QUEUE_MESSAGES_MAX_DEFAULT,
};
pub use handshake::{ConnectError, RefuseReason};
pub use stats::PeerStats;
pub use tls::PeerTls;

use outbound::Outbound;
use queue::{QueueFull, SendQueue};
use stats::PeerCounters;

/// A byte stream a peer connection runs over: TCP, or TLS over TCP.
pub(crate) trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> PeerStream for T {}

/// Why [`PeerNetwork::send`] did not queue a message. In every case the message is dropped.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SendError {
    /// The id is not in the membership (this node's own id never is).
    #[error("node {node_id} is not a peer")]
    UnknownPeer {
        /// The id.
        node_id: u64,
    },
    /// The peer's queue is at its message or byte limit.
    #[error("the queue for peer {node_id} is full")]
    Full {
        /// The peer.
        node_id: u64,
    },
    /// The payload is longer than a frame may be.
    #[error("a payload of {bytes} bytes for peer {node_id} is over the frame limit of {max} bytes")]
    TooLarge {
        /// The peer.
        node_id: u64,
        /// The payload's length.
        bytes: usize,
        /// [`PeerConfig::frame_bytes_max`].
        max: u32,
    },
    /// The payload is empty (an empty frame is a keepalive on the wire).
    #[error("empty payload")]
    Empty,
}

/// One member's outbound side.
struct Link {
    address: watch::Sender<SocketAddr>,
    queue: Arc<SendQueue>,
    counters: Arc<PeerCounters>,
    /// A child of the network's stop token: cancelled on removal or shutdown.
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The established inbound connection of one peer.
struct InboundEntry {
    generation: u64,
    superseded: CancellationToken,
}

/// What an inbound connection holds while it is established.
pub(crate) struct InboundRegistration {
    generation: u64,
    /// Cancelled when the same peer opens a newer connection.
    superseded: CancellationToken,
    counters: Arc<PeerCounters>,
}

#[derive(Default)]
struct State {
    /// The members, this node excluded.
    links: BTreeMap<u64, Link>,
    /// Invariant: an id is here iff it is in `links` or in `inbound`.
    counters: BTreeMap<u64, Arc<PeerCounters>>,
    inbound: BTreeMap<u64, InboundEntry>,
    next_generation: u64,
    /// Tasks of removed members, awaited at shutdown.
    retired: Vec<JoinHandle<()>>,
}

/// What the network's tasks share.
pub(crate) struct Shared {
    config: Arc<PeerConfig>,
    identity: Arc<identity::Identity>,
    stop: CancellationToken,
    /// Where `set_peers` spawns dialers, so it works from outside the runtime too.
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state whole, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `peer_id`'s new inbound connection as its current one, superseding an older one.
    pub(crate) fn register_inbound(&self, peer_id: u64) -> InboundRegistration {
        let mut state = self.lock();
        let counters = state.counters.entry(peer_id).or_default().clone();
        state.next_generation += 1;
        let generation = state.next_generation;
        let superseded = CancellationToken::new();
        let previous = state.inbound.insert(
            peer_id,
            InboundEntry {
                generation,
                superseded: superseded.clone(),
            },
        );
        if let Some(previous) = previous {
            info!(
                peer_id,
                "peer opened a new connection; closing its older one"
            );
            previous.superseded.cancel();
        }
        InboundRegistration {
            generation,
            superseded,
            counters,
        }
    }

    /// Forgets an inbound connection that ended, unless a newer one replaced it already.
    pub(crate) fn unregister_inbound(&self, peer_id: u64, generation: u64) {
        let mut state = self.lock();
        if state
            .inbound
            .get(&peer_id)
            .is_some_and(|entry| entry.generation == generation)
        {
            state.inbound.remove(&peer_id);
            if !state.links.contains_key(&peer_id) {
                state.counters.remove(&peer_id);
            }
        }
    }

    /// Starts the dialer of a new member.
    fn spawn_link(&self, peer_id: u64, address: SocketAddr, counters: Arc<PeerCounters>) -> Link {
        let (address_sender, address_receiver) = watch::channel(address);
        let queue = Arc::new(SendQueue::new(
            self.config.queue_messages_max,
            self.config.queue_bytes_max,
        ));
        let stop = self.stop.child_token();
        let dialer = Outbound {
            config: self.config.clone(),
            identity: self.identity.clone(),
            peer_id,
            address: address_receiver,
            queue: queue.clone(),
            counters: counters.clone(),
            stop: stop.clone(),
        };
        let span = info_span!("peer_out", node_id = self.config.node_id, peer_id);
        let task = self.runtime.spawn(dialer.run().instrument(span));
        Link {
            address: address_sender,
            queue,
            counters,
            stop,
            task,
        }
    }
}

/// A node's connections to its peers. See the [module documentation](self) for the design.
///
/// Dropping it stops its tasks without waiting; [`PeerNetwork::shutdown`] waits for them.
pub struct PeerNetwork {
    shared: Arc<Shared>,
    local_address: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl PeerNetwork {
    /// Binds `config.listen`, starts dialing `config.peers`, and delivers every payload
    /// received from a peer to `inbound` as `(sender id, payload)`, in the order that peer
    /// sent them. Must be called within a tokio runtime.
    ///
    /// # Errors
    /// `InvalidInput` (carrying a [`PeerConfigError`]) when the configuration is inconsistent;
    /// the bind error when the listen address cannot be bound.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start(
        config: PeerConfig,
        inbound: mpsc::Sender<(u64, Bytes)>,
    ) -> io::Result<PeerNetwork> {
        config
            .validate()
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_address = listener.local_addr()?;
        let peers = config.peers.clone();
        let identity = Arc::new(identity::Identity::new(
            config.node_id,
            config.cluster_id,
            config.cluster_id_adoption.clone(),
        ));
        let local = identity.local();
        let shared = Arc::new(Shared {
            config: Arc::new(config),
            identity,
            stop: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(State::default()),
        });
        let span = info_span!("peer_accept", node_id = local.node_id);
        let acceptor =
            tokio::spawn(inbound::accept_loop(listener, shared.clone(), inbound).instrument(span));
        let network = PeerNetwork {
            shared,
            local_address,
            acceptor: Some(acceptor),
        };
        network.set_peers(peers);
        info!(
            node_id = local.node_id,
            cluster_id = local.cluster_id,
            address = %local_address,
            "peer network listening"
        );
        Ok(network)
    }

    /// The address peers dial (useful when the configured port was 0).
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// Queues `payload` for peer `to`'s connection and returns at once: it never blocks on
    /// I/O nor awaits. Payloads to one peer are delivered in the order queued, unless one is
    /// lost with a broken connection. A payload longer than
    /// [`PeerConfig::queue_bytes_max`] never fits and is always refused as `Full`.
    ///
    /// # Errors
    /// [`SendError::UnknownPeer`] for an id outside the membership (including this node's),
    /// [`SendError::Full`] when the peer's queue is at a limit, [`SendError::TooLarge`] over
    /// the frame limit, [`SendError::Empty`] for an empty payload. The message is dropped in
    /// every case; the last three are counted in the peer's
    /// [`messages_dropped`](PeerStats::messages_dropped).
    pub fn send(&self, to: u64, payload: Bytes) -> Result<(), SendError> {
        if payload.is_empty() {
            return Err(SendError::Empty);
        }
        let state = self.shared.lock();
        let Some(link) = state.links.get(&to) else {
            return Err(SendError::UnknownPeer { node_id: to });
        };
        let bytes = payload.len();
        let max = self.shared.config.frame_bytes_max;
        if u32::try_from(bytes).map_or(true, |length| length > max) {
            link.counters.dropped(1, bytes as u64);
            return Err(SendError::TooLarge {
                node_id: to,
                bytes,
                max,
            });
        }
        link.queue.push(payload).map_err(|QueueFull| {
            link.counters.dropped(1, bytes as u64);
            SendError::Full { node_id: to }
        })
    }

    /// Replaces the membership: dials new members, stops dialing removed ones (dropping their
    /// queues), and redials a member whose address changed (keeping its queue). This node's own
    /// id is skipped. Inbound connections are not tied to the membership: a removed node may
    /// still deliver until its connection ends.
    pub fn set_peers(&self, peers: BTreeMap<u64, SocketAddr>) {
        let local_id = self.shared.config.node_id;
        let mut state = self.shared.lock();
        state.retired.retain(|task| !task.is_finished());
        let removed: Vec<u64> = state
            .links
            .keys()
            .filter(|id| !peers.contains_key(id))
            .copied()
            .collect();
        for peer_id in removed {
            if let Some(link) = state.links.remove(&peer_id) {
                link.stop.cancel();
                state.retired.push(link.task);
                info!(peer_id, "peer removed");
            }
            if !state.inbound.contains_key(&peer_id) {
                state.counters.remove(&peer_id);
            }
        }
        for (&peer_id, &address) in &peers {
            if peer_id == local_id {
                continue;
            }
            if let Some(link) = state.links.get(&peer_id) {
                if *link.address.borrow() != address {
                    info!(peer_id, %address, "peer address changed");
                    link.address.send_replace(address);
                }
                continue;
            }
            let counters = state.counters.entry(peer_id).or_default().clone();
            let link = self.shared.spawn_link(peer_id, address, counters);
            state.links.insert(peer_id, link);
            info!(peer_id, %address, "peer added");
        }
        debug!(members = state.links.len(), "membership set");
    }

    /// One entry per member, and per non-member that holds an inbound connection, by id.
    pub fn stats(&self) -> Vec<PeerStats> {
        let state = self.shared.lock();
        state
            .counters
            .iter()
            .map(|(&peer_id, counters)| {
                let link = state.links.get(&peer_id);
                counters.snapshot(
                    peer_id,
                    link.map(|link| *link.address.borrow()),
                    state.inbound.contains_key(&peer_id),
                    link.map_or((0, 0), |link| link.queue.len()),
                )
            })
            .collect()
    }

    /// The stats of one peer, if it is a member or connected to us.
    pub fn peer_stats(&self, peer_id: u64) -> Option<PeerStats> {
        self.stats()
            .into_iter()
            .find(|stats| stats.node_id == peer_id)
    }

    /// Stops accepting and dialing, closes every connection and waits for every task.
    /// Queued messages are dropped.
    pub async fn shutdown(mut self) {
        self.shared.stop.cancel();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.await;
        }
        let tasks: Vec<JoinHandle<()>> = {
            let mut state = self.shared.lock();
            let mut tasks: Vec<JoinHandle<()>> = std::mem::take(&mut state.links)
                .into_values()
                .map(|link| link.task)
                .collect();
            tasks.append(&mut state.retired);
            tasks
        };
        for task in tasks {
            let _ = task.await;
        }
        info!(node_id = self.shared.config.node_id, "peer network stopped");
    }
}

impl Drop for PeerNetwork {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}
