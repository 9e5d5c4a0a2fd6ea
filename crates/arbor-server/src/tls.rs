//! TLS on the secure client port (ZooKeeper's `secureClientPort`): the server's key store,
//! the trust store client certificates are checked against, the client-auth mode, and reload
//! of the stores without a restart.
//!
//! Reload: each accepted connection reads the store files again (a few kilobytes) and, when
//! their bytes changed, builds a new rustls configuration; connections already open keep the
//! one they started with. A store that no longer loads is logged and the previous
//! configuration stays in use, so a half-written certificate never takes the port down.
//! Reading per accept rather than on a timer keeps reload deterministic: the first
//! connection after the files change sees the new certificate.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use thiserror::Error;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::keystore::{self, KeyStoreError, StoreLocation};
use crate::x509::{ClientVerifier, ServerVerifier};

/// Whether clients must present a certificate (ZooKeeper's `ssl.clientAuth`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Certificates are not asked for.
    None,
    /// Asked for, verified when presented, not required.
    Want,
    /// Required (ZooKeeper's default).
    #[default]
    Need,
}

impl ClientAuth {
    /// ZooKeeper's names, case-insensitive: none, want, need.
    pub fn parse(name: &str) -> Option<ClientAuth> {
        match name.to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "want" => Some(ClientAuth::Want),
            "need" => Some(ClientAuth::Need),
            _ => None,
        }
    }
}

/// TLS settings of one listener (`[tls]` in the TOML file; `ssl.*` in zoo.cfg).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain and key (`ssl.keyStore.*`).
    pub key_store: Option<StoreLocation>,
    /// Certificates client (or peer) certificates must chain to (`ssl.trustStore.*`).
    pub trust_store: Option<StoreLocation>,
    /// Whether a client certificate is required (`ssl.clientAuth`).
    pub client_auth: ClientAuth,
}

/// Why TLS could not be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A store could not be read.
    #[error(transparent)]
    Store(#[from] KeyStoreError),
    /// The settings are incomplete.
    #[error("TLS settings: {0}")]
    Settings(String),
    /// rustls refused the key, certificates or verifier.
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// The store files' bytes a configuration was built from.
#[derive(PartialEq, Eq)]
pub(crate) struct StoreBytes {
    key: Vec<u8>,
    trust: Option<Vec<u8>>,
}

/// A TLS configuration built from store files, rebuilt when their bytes change.
///
/// Used for the secure client port ([`ReloadingAcceptor`]) and for peer connections
/// ([`crate::peer::PeerTls`]): both read the files again at each new connection (a few
/// kilobytes; peer connections are rare and client connects are cheap next to a handshake).
pub(crate) struct Reloading<T> {
    settings: TlsConfig,
    build: fn(&TlsConfig, &StoreBytes) -> Result<T, TlsError>,
    /// What the configuration is for, in log lines.
    what: &'static str,
    loaded: Mutex<(StoreBytes, T)>,
}

impl<T: Clone> Reloading<T> {
    /// Loads the stores once and builds the first configuration.
    ///
    /// # Errors
    /// [`TlsError`] when the settings are incomplete or a store does not load.
    fn new(
        settings: TlsConfig,
        build: fn(&TlsConfig, &StoreBytes) -> Result<T, TlsError>,
        what: &'static str,
    ) -> Result<Reloading<T>, TlsError> {
        let bytes = read_stores(&settings)?;
        let built = build(&settings, &bytes)?;
        Ok(Reloading {
            settings,
            build,
            what,
            loaded: Mutex::new((bytes, built)),
        })
    }

    /// The configuration for a new connection, rebuilt first if the store files changed.
    pub(crate) fn current(&self) -> T {
        let fresh = read_stores(&self.settings);
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let what = self.what;
        match fresh {
            Ok(bytes) if bytes != loaded.0 => match (self.build)(&self.settings, &bytes) {
                Ok(built) => {
                    info!(what, "TLS key or trust store changed: reloaded");
                    *loaded = (bytes, built);
                }
                Err(error) => {
                    warn!(what, %error, "TLS stores changed but do not load; keeping the previous ones");
                }
            },
            Ok(_) => {}
            Err(error) => warn!(what, %error, "TLS stores unreadable; keeping the previous ones"),
        }
        loaded.1.clone()
    }
}

/// A TLS acceptor for the secure client port that follows changes of its store files.
pub(crate) type ReloadingAcceptor = Reloading<TlsAcceptor>;

impl ReloadingAcceptor {
    /// Loads the stores once.
    ///
    /// # Errors
    /// [`TlsError`] when the settings are incomplete or a store does not load.
    pub(crate) fn for_clients(settings: TlsConfig) -> Result<ReloadingAcceptor, TlsError> {
        Reloading::new(settings, build_acceptor, "client port")
    }
}

fn read_stores(settings: &TlsConfig) -> Result<StoreBytes, TlsError> {
    let key_store = settings.key_store.as_ref().ok_or_else(|| {
        TlsError::Settings("a secure port needs ssl.keyStore.location (key_store)".into())
    })?;
    let key = keystore::read_store_file(&key_store.location)?;
    let trust = match &settings.trust_store {
        Some(store) => Some(keystore::read_store_file(&store.location)?),
        None => None,
    };
    Ok(StoreBytes { key, trust })
}

/// The crypto provider arbor's TLS uses.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn trusted(
    settings: &TlsConfig,
    bytes: &StoreBytes,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    match (&settings.trust_store, &bytes.trust) {
        (Some(store), Some(trust)) => Ok(keystore::trusted_certificates(store, trust)?),
        _ => Ok(Vec::new()),
    }
}

fn build_acceptor(settings: &TlsConfig, bytes: &StoreBytes) -> Result<TlsAcceptor, TlsError> {
    let key_store = settings
        .key_store
        .as_ref()
        .ok_or_else(|| TlsError::Settings("no key store".into()))?;
    let material = keystore::key_material(key_store, &bytes.key)?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Rustls(error.to_string()))?;
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        mode => {
            let roots = trusted(settings, bytes)?;
            if roots.is_empty() {
                return Err(TlsError::Settings(
                    "ssl.clientAuth=want|need needs ssl.trustStore.location (trust_store); \
                     set ssl.clientAuth=none to accept clients without certificates"
                        .into(),
                ));
            }
            let verifier = ClientVerifier::new(
                roots,
                mode == ClientAuth::Need,
                provider.signature_verification_algorithms,
            )
            .map_err(TlsError::Settings)?;
            builder.with_client_cert_verifier(Arc::new(verifier))
        }
    };
    let certified = certified_key(&provider, material.chain, material.key)?;
    let config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The rustls configurations of peer connections: one for accepted connections, one for
/// dialed ones.
pub(crate) type PeerConfigs = (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>);

/// The TLS configurations of the peer transport (ZooKeeper's `sslQuorum` with the
/// `ssl.quorum.*` stores): mutual TLS, each side presenting the key store's certificate and
/// checking the other's against the trust store. Reloaded like the client port's: each new
/// peer connection (accepted or dialed) reads the stores again, so a rotated certificate is
/// used from the next reconnect on while established connections keep theirs (as
/// ZooKeeper's `sslQuorumReloadCertFiles` does).
///
/// # Errors
/// [`TlsError`] when a store is missing or does not load.
pub(crate) fn peer_tls(settings: &TlsConfig) -> Result<crate::peer::PeerTls, TlsError> {
    let reloading = Reloading::new(settings.clone(), build_peer_configs, "peer connections")?;
    Ok(crate::peer::PeerTls::reloading(Arc::new(reloading)))
}

fn build_peer_configs(settings: &TlsConfig, bytes: &StoreBytes) -> Result<PeerConfigs, TlsError> {
    let key_store = settings
        .key_store
        .as_ref()
        .ok_or_else(|| TlsError::Settings("sslQuorum needs ssl.quorum.keyStore.location".into()))?;
    let roots = trusted(settings, bytes)?;
    if roots.is_empty() {
        return Err(TlsError::Settings(
            "sslQuorum needs ssl.quorum.trustStore.location: servers check each other's \
             certificates"
                .into(),
        ));
    }
    let material = keystore::key_material(key_store, &bytes.key)?;
    let provider = provider();
    let certified = Arc::new(certified_key(&provider, material.chain, material.key)?);
    let verifier = ClientVerifier::new(
        roots.clone(),
        true,
        provider.signature_verification_algorithms,
    )
    .map_err(TlsError::Settings)?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Rustls(error.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified.clone())));
    let server_verifier = ServerVerifier::new(roots, provider.signature_verification_algorithms);
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Rustls(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(server_verifier))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    Ok((Arc::new(server), Arc::new(client)))
}

/// The server's chain and signing key. Built here rather than by rustls'
/// `with_single_cert`, whose key check parses the leaf with webpki and so refuses X.509 v1
/// certificates (what kazoo's harness and `openssl x509 -req` without extensions issue, and
/// what Java accepts); the same check is made with x509-parser instead.
fn certified_key(
    provider: &rustls::crypto::CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsError> {
    let leaf = chain
        .first()
        .ok_or_else(|| TlsError::Settings("the key store holds no certificate".into()))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsError::Rustls(error.to_string()))?;
    let (_, parsed) = X509Certificate::from_der(leaf).map_err(|error| {
        TlsError::Rustls(format!("the server certificate does not parse: {error}"))
    })?;
    if let Some(key_spki) = signing_key.public_key()
        && key_spki.as_ref() != parsed.public_key().raw
    {
        return Err(TlsError::Settings(
            "the key store's private key does not match its certificate".into(),
        ));
    }
    Ok(CertifiedKey::new(chain, signing_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_names() {
        assert_eq!(ClientAuth::parse("NEED"), Some(ClientAuth::Need));
        assert_eq!(ClientAuth::parse("want"), Some(ClientAuth::Want));
        assert_eq!(ClientAuth::parse("none"), Some(ClientAuth::None));
        assert_eq!(ClientAuth::parse("maybe"), None);
    }

    #[test]
    fn missing_key_store_is_a_clear_error() {
        let error = ReloadingAcceptor::for_clients(TlsConfig::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("ssl.keyStore.location"), "{error}");
    }
}
