//! TLS between servers (ZooKeeper's `sslQuorum`): both sides present a certificate and check
//! the other's against the trust store (mutual TLS), then the ordinary peer handshake runs
//! inside the encrypted stream. The rustls configurations are built by the server from its
//! quorum key and trust stores; this type only carries them to the dialers and the acceptor.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::handshake::ConnectError;

/// The TLS configurations of a node's peer connections.
#[derive(Clone)]
pub struct PeerTls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl PeerTls {
    /// `server` for accepted connections (it must require client certificates for mutual
    /// authentication), `client` for dialed ones (it must present this node's certificate).
    pub fn new(server: Arc<rustls::ServerConfig>, client: Arc<rustls::ClientConfig>) -> PeerTls {
        PeerTls { server, client }
    }

    /// Built from a key store and a trust store as the server does for `sslQuorum`: each
    /// side presents the key store's certificate and checks the other's against the trust
    /// store (X.509 v1 certificates accepted, peer names not checked).
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
        TlsAcceptor::from(self.server.clone()).accept(stream).await
    }

    /// Wraps a dialed connection to `address`.
    pub(crate) async fn connect(
        &self,
        address: SocketAddr,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let name = ServerName::IpAddress(address.ip().into());
        TlsConnector::from(self.client.clone())
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

/// Two values are equal when they share the same configurations.
impl PartialEq for PeerTls {
    fn eq(&self, other: &PeerTls) -> bool {
        Arc::ptr_eq(&self.server, &other.server) && Arc::ptr_eq(&self.client, &other.client)
    }
}

impl Eq for PeerTls {}
