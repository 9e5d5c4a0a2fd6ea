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
mod audit;
mod config;
mod connection;
mod core;
mod envelope;
mod keystore;
mod limits;
mod outbound;
pub mod peer;
mod reads;
mod recovery;
mod sasl;
mod security_config;
mod stats;
mod storage;
mod tls;
mod watches;
mod x509;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use admin::ZOOKEEPER_COMPATIBLE_VERSION;
pub use config::{
    ConfigError, MEMORY_BUDGET_BYTES_DEFAULT, OUTBOUND_BYTES_MAX_DEFAULT, ServerConfig,
    WATCHES_PER_CONNECTION_MAX_DEFAULT,
};
pub use keystore::{KeyStoreError, StoreLocation, StoreType};
pub use limits::resident_set_bytes;
pub use sasl::{JaasError, SaslUsers};
pub use tls::{ClientAuth, TlsConfig, TlsError};
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
    /// The secure client port's TLS settings or stores are unusable.
    #[error("secure client port: {0}")]
    Tls(#[from] TlsError),
    /// The TLS settings or stores between servers (`sslQuorum`) are unusable.
    #[error("TLS between servers: {0}")]
    QuorumTls(TlsError),
    /// The JAAS file with the SASL users is unusable.
    #[error("SASL: {0}")]
    Jaas(#[from] JaasError),
    /// A setting is inconsistent with another (found when the server starts).
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
}

/// A running server.
pub struct Server {
    local_address: SocketAddr,
    /// The secure (TLS) client port, when configured.
    secure: Option<(SocketAddr, JoinHandle<()>)>,
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
    pub async fn start(mut config: ServerConfig) -> Result<Server, ServerError> {
        security_config::finish_enforced_auth(&mut config)?;
        let config = Arc::new(config);
        // Security settings are checked before anything else starts, so a bad keystore or
        // JAAS file is one clear error at start-up.
        let tls = match config.secure_client_address {
            Some(_) => Some(Arc::new(tls::ReloadingAcceptor::for_clients(
                config.tls.clone(),
            )?)),
            None => None,
        };
        let sasl_users = match &config.sasl_jaas_file {
            Some(path) => Some(Arc::new(
                SaslUsers::from_jaas_file(path)?.with_super_user(config.sasl_super_user.clone()),
            )),
            None => None,
        };
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
        let identity = (recovery.cluster_id, recovery.cluster_id_adoption.clone());
        let network = start_peers(&config, identity, peer_tx.clone()).await?;
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
        let counts = Arc::new(Mutex::new(ConnectionCounts::default()));
        let next_id = Arc::new(AtomicU64::new(1));
        let secure = match (config.secure_client_address, tls) {
            (Some(address), Some(tls)) => {
                let listener = match TcpListener::bind(address).await {
                    Ok(listener) => listener,
                    Err(source) => {
                        core.abort();
                        return Err(ServerError::Bind { address, source });
                    }
                };
                let bound = listener
                    .local_addr()
                    .map_err(|source| ServerError::Bind { address, source })?;
                let context = AcceptContext {
                    core: inbox_tx.clone(),
                    config: config.clone(),
                    stop: stop.clone(),
                    counts: counts.clone(),
                    next_id: next_id.clone(),
                    tls: Some(tls),
                    sasl_users: sasl_users.clone(),
                };
                info!(address = %bound, "serving TLS clients");
                Some((bound, tokio::spawn(accept_loop(listener, context))))
            }
            _ => None,
        };
        let context = AcceptContext {
            core: inbox_tx,
            config: config.clone(),
            stop: stop.clone(),
            counts,
            next_id,
            tls: None,
            sasl_users,
        };
        let acceptor = tokio::spawn(accept_loop(listener, context));
        info!(address = %local_address, data_dir = %config.data_dir.display(), "serving");
        Ok(Server {
            secure,
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

    /// The address TLS clients connect to, when a secure client port is configured.
    pub fn secure_address(&self) -> Option<SocketAddr> {
        self.secure.as_ref().map(|(address, _)| *address)
    }

    /// Stops accepting, closes every connection, flushes the log and returns. Sessions
    /// survive: clients reconnect to the next server (or this one after a restart).
    ///
    /// # Errors
    /// [`ServerError::Storage`] if the log could not be flushed.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.stop.cancel();
        if let Some((_, secure)) = self.secure {
            let _ = secure.await;
        }
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
                if let Some((_, secure)) = self.secure {
                    let _ = secure.await;
                }
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
            secure: self.secure,
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
    (cluster_id, cluster_id_adoption): (u64, Option<std::path::PathBuf>),
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
    let mut peer_config =
        peer::PeerConfig::new(cluster_id, u64::from(me.id), me.peer_address, peers);
    peer_config.cluster_id_adoption = cluster_id_adoption;
    if config.ssl_quorum {
        peer_config.tls = Some(tls::peer_tls(&config.quorum_tls).map_err(ServerError::QuorumTls)?);
        info!("peer connections use TLS (sslQuorum)");
    }
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
    info!(address = %network.local_address(), cluster_id, "peer transport listening");
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

/// What an accept loop shares with its connections (one loop per client port).
struct AcceptContext {
    core: mpsc::Sender<CoreMessage>,
    config: Arc<ServerConfig>,
    stop: CancellationToken,
    /// Shared by both ports: the limits count every client connection.
    counts: Arc<Mutex<ConnectionCounts>>,
    next_id: Arc<AtomicU64>,
    /// Set on the secure port.
    tls: Option<Arc<tls::ReloadingAcceptor>>,
    sasl_users: Option<Arc<SaslUsers>>,
}

/// How long a TLS client may take to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn accept_loop(listener: TcpListener, context: AcceptContext) {
    let AcceptContext {
        core,
        config,
        stop,
        counts,
        next_id,
        tls,
        sasl_users,
    } = context;
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
        let mut admission = connection::Admission {
            identities: Vec::new(),
            sasl_users: sasl_users.clone(),
        };
        let Some(tls) = tls.clone() else {
            tokio::spawn(async move {
                connection::serve(stream, peer, id, core, config, admission).await;
                drop(slot);
            });
            continue;
        };
        tokio::spawn(async move {
            let acceptor = tls.current();
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    info!(%peer, %error, "TLS handshake failed; closing");
                    return;
                }
                Err(_) => {
                    info!(%peer, "TLS handshake timed out; closing");
                    return;
                }
            };
            let leaf = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first());
            if let Some(identity) = leaf.and_then(x509::identity_of) {
                if config.x509_super_user.as_deref() == Some(identity.id.as_str()) {
                    admission.identities.push(arbor_proto::Id::new("super", ""));
                }
                debug!(%peer, subject = %identity.id, "TLS client certificate");
                admission.identities.push(identity);
            }
            connection::serve(stream, peer, id, core, config, admission).await;
            drop(slot);
        });
    }
    // Only the plain port's loop stops the core (the secure one ends with it).
    if tls.is_none() {
        let _ = core.send(CoreMessage::Shutdown).await;
    }
}
