//! The arbor node: it accepts ZooKeeper clients, keeps their sessions and watches, and runs
//! every write through the log before applying it to the data tree.
//!
//! ```no_run
//! # async fn example() -> Result<(), arbor_server::ServerError> {
//! let config = arbor_server::ServerConfig::default(); // 127.0.0.1:2181, ./arbor-data
//! let server = arbor_server::Server::start(config).await?;
//! println!("serving on {}", server.local_address());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod admin;
mod config;
mod connection;
mod core;
mod envelope;
mod outbound;
pub mod peer;
mod reads;
mod recovery;
mod stats;
mod storage;
mod watches;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use admin::ZOOKEEPER_COMPATIBLE_VERSION;
pub use config::{ConfigError, ServerConfig};
pub use watches::{ConnectionId, Notification, WatchKind, WatchManager};

use crate::core::{Core, CoreMessage};

/// Messages waiting for the core before connection tasks wait their turn.
const CORE_INBOX_MAX: usize = 8192;

/// Why a server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The client address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data directory could not be opened or recovered.
    #[error("cannot recover the data in {dir}: {reason}")]
    Recovery {
        /// The data directory.
        dir: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Storage failed while running; the server stopped rather than acknowledge
    /// writes it could not make durable.
    #[error("storage failure: {0}")]
    Storage(String),
}

/// A running server.
pub struct Server {
    local_address: SocketAddr,
    /// Keeps the core's peer inbox open (nothing sends on it without a cluster transport).
    _peer_inbox: mpsc::Sender<(u64, bytes::Bytes)>,
    /// The transport to the other members; none for a standalone server.
    network: Option<Arc<peer::PeerNetwork>>,
    stop: CancellationToken,
    core: JoinHandle<Result<(), String>>,
    acceptor: JoinHandle<()>,
}

impl Server {
    /// Recovers the data directory, binds the client port and starts serving.
    ///
    /// # Errors
    /// [`ServerError::Recovery`] when the data directory is unusable or corrupt,
    /// [`ServerError::Bind`] when the address is taken.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let config = Arc::new(config);
        let recovery_config = config.clone();
        let recovery = tokio::task::spawn_blocking(move || recovery::recover(&recovery_config))
            .await
            .map_err(|error| ServerError::Recovery {
                dir: config.data_dir.clone(),
                reason: error.to_string(),
            })??;
        let (inbox_tx, inbox_rx) = mpsc::channel(CORE_INBOX_MAX);
        let (durability_tx, durability_rx) = mpsc::unbounded_channel();
        let (caught_up_tx, caught_up_rx) = tokio::sync::oneshot::channel();
        let (peer_tx, peer_rx) = mpsc::channel(PEER_INBOX_MAX);
        let network = start_peers(&config, peer_tx.clone()).await?;
        let core = Core::new(
            config.clone(),
            recovery,
            durability_tx,
            caught_up_tx,
            network.clone(),
        );
        let core = tokio::spawn(core.run(inbox_rx, durability_rx, peer_rx));
        // Clients are let in only once the writes committed before a restart are applied
        // again, so a resuming session finds itself and a reader sees every acknowledged write.
        if caught_up_rx.await.is_err() {
            let reason = match core.await {
                Ok(Err(reason)) => reason,
                Ok(Ok(())) => "the core stopped during recovery".to_owned(),
                Err(error) => error.to_string(),
            };
            return Err(ServerError::Recovery {
                dir: config.data_dir.clone(),
                reason,
            });
        }
        let listener = match TcpListener::bind(config.client_address).await {
            Ok(listener) => listener,
            Err(source) => {
                core.abort();
                return Err(ServerError::Bind {
                    address: config.client_address,
                    source,
                });
            }
        };
        let local_address = listener.local_addr().map_err(|source| ServerError::Bind {
            address: config.client_address,
            source,
        })?;
        let stop = CancellationToken::new();
        let acceptor = tokio::spawn(accept_loop(
            listener,
            inbox_tx,
            config.clone(),
            stop.clone(),
        ));
        info!(address = %local_address, data_dir = %config.data_dir.display(), "serving");
        Ok(Server {
            _peer_inbox: peer_tx,
            network,
            local_address,
            stop,
            core,
            acceptor,
        })
    }

    /// The address clients connect to (useful when the configured port was 0).
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// Stops accepting, closes every connection, flushes the log and returns. Sessions
    /// survive: clients reconnect to the next server (or this one after a restart).
    ///
    /// # Errors
    /// [`ServerError::Storage`] if the log could not be flushed.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.stop.cancel();
        let _ = self.acceptor.await;
        let result = match self.core.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(ServerError::Storage(reason)),
            Err(error) => Err(ServerError::Storage(error.to_string())),
        };
        // The core (and its handle on the transport) is gone: the transport can stop.
        if let Some(network) = self.network.and_then(Arc::into_inner) {
            network.shutdown().await;
        }
        result
    }

    /// Waits until the server stops on its own (a fatal storage error) or `stop` fires.
    ///
    /// # Errors
    /// [`ServerError::Storage`] when storage failed.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let mut core = self.core;
        tokio::select! {
            result = &mut core => {
                self.stop.cancel();
                let _ = self.acceptor.await;
                return match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(reason)) => Err(ServerError::Storage(reason)),
                    Err(error) => Err(ServerError::Storage(error.to_string())),
                };
            }
            () = stop => {}
        }
        info!("shutting down");
        Server {
            _peer_inbox: self._peer_inbox,
            network: self.network,
            local_address: self.local_address,
            stop: self.stop,
            core,
            acceptor: self.acceptor,
        }
        .shutdown()
        .await
    }
}

/// Messages from peers waiting for the core before the transport stops reading.
const PEER_INBOX_MAX: usize = 4096;

/// Starts the peer transport of a clustered server.
async fn start_peers(
    config: &ServerConfig,
    inbound: mpsc::Sender<(u64, bytes::Bytes)>,
) -> Result<Option<Arc<peer::PeerNetwork>>, ServerError> {
    let Some(me) = config.me().filter(|_| config.is_clustered()) else {
        return Ok(None);
    };
    let peers = config
        .members
        .iter()
        .filter(|member| member.id != me.id)
        .map(|member| (u64::from(member.id), member.peer_address))
        .collect();
    let mut peer_config = peer::PeerConfig::new(
        config.effective_cluster_id(),
        u64::from(me.id),
        me.peer_address,
        peers,
    );
    // A Raft append carries up to about one client frame per entry, in batches of a few.
    peer_config.frame_bytes_max = peer_config
        .frame_bytes_max
        .max(config.frame_size_bytes_max.saturating_mul(4));
    let network = peer::PeerNetwork::start(peer_config, inbound)
        .await
        .map_err(|source| ServerError::Bind {
            address: me.peer_address,
            source,
        })?;
    info!(address = %network.local_address(), cluster_id = config.effective_cluster_id(), "peer transport listening");
    Ok(Some(Arc::new(network)))
}

/// Counts connections per IP and in total, so limits are checked at accept time.
#[derive(Default)]
struct ConnectionCounts {
    per_ip: HashMap<IpAddr, u32>,
    total: u32,
}

/// Releases a connection's slot in the counts when its task ends.
struct ConnectionSlot {
    counts: Arc<Mutex<ConnectionCounts>>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.total = counts.total.saturating_sub(1);
            if let Some(count) = counts.per_ip.get_mut(&self.ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.per_ip.remove(&self.ip);
                }
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    core: mpsc::Sender<CoreMessage>,
    config: Arc<ServerConfig>,
    stop: CancellationToken,
) {
    let counts = Arc::new(Mutex::new(ConnectionCounts::default()));
    let next_id = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: keep serving the connections we have.
                warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = {
            let Ok(mut guard) = counts.lock() else { break };
            let per_ip = guard.per_ip.get(&peer.ip()).copied().unwrap_or(0);
            if config.connections_per_ip_max > 0 && per_ip >= config.connections_per_ip_max {
                warn!(%peer, limit = config.connections_per_ip_max, "too many connections from this address; closing");
                continue;
            }
            if config.connections_max > 0 && guard.total >= config.connections_max {
                warn!(%peer, limit = config.connections_max, "too many connections; closing");
                continue;
            }
            *guard.per_ip.entry(peer.ip()).or_insert(0) += 1;
            guard.total += 1;
            ConnectionSlot {
                counts: counts.clone(),
                ip: peer.ip(),
            }
        };
        let _ = stream.set_nodelay(true);
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let core = core.clone();
        let config = config.clone();
        tokio::spawn(async move {
            connection::serve(stream, peer, id, core, config).await;
            drop(slot);
        });
    }
    let _ = core.send(CoreMessage::Shutdown).await;
}
