//! TLS between servers (ZooKeeper's `sslQuorum`): both sides present a certificate and check
//! the other's against the trust store (mutual TLS), then the ordinary peer handshake runs
//! inside the encrypted stream. The rustls configurations are built by the server from its
//! quorum key and trust stores (and rebuilt when those files change, see
//! [`crate::tls`]); this type carries them to the dialers and the acceptor.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::handshake::ConnectError;
use crate::tls::{PeerConfigs, Reloading};

/// The TLS configurations of a node's peer connections.
#[derive(Clone)]
pub struct PeerTls {
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// Configurations given by the caller, used as they are.
    Fixed(PeerConfigs),
    /// Built from store files, rebuilt when they change.
    Files(Arc<Reloading<PeerConfigs>>),
}

impl PeerTls {
    /// `server` for accepted connections (it must require client certificates for mutual
    /// authentication), `client` for dialed ones (it must present this node's certificate).
    pub fn new(server: Arc<rustls::ServerConfig>, client: Arc<rustls::ClientConfig>) -> PeerTls {
        PeerTls {
            source: Source::Fixed((server, client)),
        }
    }

    pub(crate) fn reloading(files: Arc<Reloading<PeerConfigs>>) -> PeerTls {
        PeerTls {
            source: Source::Files(files),
        }
    }

    /// The configurations for a new connection.
    fn configs(&self) -> PeerConfigs {
        match &self.source {
            Source::Fixed(configs) => configs.clone(),
            Source::Files(files) => files.current(),
        }
    }

    /// Built from a key store and a trust store as the server does for `sslQuorum`: each
    /// side presents the key store's certificate and checks the other's against the trust
    /// store (X.509 v1 certificates accepted, peer names not checked). The files are read
    /// again for every new connection and a changed certificate or trust store is used from
    /// then on.
    ///
    /// # Errors
    /// [`crate::TlsError`] when a store is missing or does not load.
    pub fn from_config(settings: &crate::TlsConfig) -> Result<PeerTls, crate::TlsError> {
        crate::tls::peer_tls(settings)
    }

    /// Wraps an accepted connection.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        TlsAcceptor::from(self.configs().0).accept(stream).await
    }

    /// Wraps a dialed connection to `address`.
    pub(crate) async fn connect(
        &self,
        address: SocketAddr,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let name = ServerName::IpAddress(address.ip().into());
        TlsConnector::from(self.configs().1)
            .connect(name, stream)
            .await
            .map_err(|error| ConnectError::Tls {
                reason: error.to_string(),
            })
    }
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerTls { .. }")
    }
}

/// Two values are equal when they share the same configurations (or the same files).
impl PartialEq for PeerTls {
    fn eq(&self, other: &PeerTls) -> bool {
        match (&self.source, &other.source) {
            (Source::Fixed(a), Source::Fixed(b)) => {
                Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.1, &b.1)
            }
            (Source::Files(a), Source::Files(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for PeerTls {}
