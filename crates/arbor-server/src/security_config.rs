//! The security and limit settings of `zoo.cfg` and of `-D` system properties: the secure
//! client port, `ssl.*` (also as `zookeeper.ssl.*`), SASL's JAAS file and super user, the x509
//! super user, `maxCnxns`, quota enforcement and the audit log. Kept apart from `config.rs` so
//! that file stays about the server's shape.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::config::{ConfigError, ServerConfig};
use crate::keystore::{StoreLocation, StoreType};
use crate::tls::{ClientAuth, TlsConfig};

fn invalid(key: &str, value: &str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

fn store(slot: &mut Option<StoreLocation>) -> &mut StoreLocation {
    slot.get_or_insert_with(|| StoreLocation::new(PathBuf::new()))
}

/// Applies one key of `zoo.cfg` or one system property (without `-D`). `Ok(true)` when the
/// key is a security or limit setting arbor acts on.
///
/// # Errors
/// [`ConfigError::Invalid`] for a known key with a bad value.
pub(crate) fn apply(
    config: &mut ServerConfig,
    key: &str,
    value: &str,
) -> Result<bool, ConfigError> {
    // ZooKeeper reads every ssl.* key from zoo.cfg or as a zookeeper.ssl.* property.
    let ssl_key = key.strip_prefix("zookeeper.").unwrap_or(key);
    if let Some(setting) = ssl_key.strip_prefix("ssl.quorum.") {
        return apply_tls(&mut config.quorum_tls, setting, key, value);
    }
    if let Some(setting) = ssl_key.strip_prefix("ssl.") {
        return apply_tls(&mut config.tls, setting, key, value);
    }
    apply_other(config, key, value)
}

/// One `ssl.<setting>` or `ssl.quorum.<setting>` key. `Ok(false)` for settings arbor does
/// not act on (kept as properties).
fn apply_tls(
    tls: &mut TlsConfig,
    setting: &str,
    key: &str,
    value: &str,
) -> Result<bool, ConfigError> {
    match setting {
        "keyStore.location" => store(&mut tls.key_store).location = PathBuf::from(value),
        "keyStore.password" => store(&mut tls.key_store).password = Some(value.to_owned()),
        "keyStore.type" => {
            store(&mut tls.key_store).store_type = Some(
                StoreType::parse(value)
                    .ok_or_else(|| invalid(key, value, "expected PEM, JKS or PKCS12"))?,
            );
        }
        "trustStore.location" => store(&mut tls.trust_store).location = PathBuf::from(value),
        "trustStore.password" => store(&mut tls.trust_store).password = Some(value.to_owned()),
        "trustStore.type" => {
            store(&mut tls.trust_store).store_type = Some(
                StoreType::parse(value)
                    .ok_or_else(|| invalid(key, value, "expected PEM, JKS or PKCS12"))?,
            );
        }
        "clientAuth" => {
            tls.client_auth = ClientAuth::parse(value)
                .ok_or_else(|| invalid(key, value, "expected none, want or need"))?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn apply_other(config: &mut ServerConfig, key: &str, value: &str) -> Result<bool, ConfigError> {
    match key {
        "secureClientPort" => {
            let port: u16 = value
                .parse()
                .map_err(|_| invalid(key, value, "expected a port number"))?;
            let ip = config
                .secure_client_address
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
            config.secure_client_address = Some(SocketAddr::new(ip, port));
        }
        "secureClientPortAddress" => {
            let ip: IpAddr = if value == "localhost" {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                value
                    .parse()
                    .map_err(|_| invalid(key, value, "expected an IP address or localhost"))?
            };
            let port = config.secure_client_address.map_or(0, |a| a.port());
            config.secure_client_address = Some(SocketAddr::new(ip, port));
        }
        "sslQuorum" => {
            config.ssl_quorum = value
                .parse()
                .map_err(|_| invalid(key, value, "expected true or false"))?;
        }
        "maxCnxns" => {
            config.connections_max = value
                .parse()
                .map_err(|_| invalid(key, value, "expected a count (0 = unlimited)"))?;
        }
        "java.security.auth.login.config" => config.sasl_jaas_file = Some(PathBuf::from(value)),
        "zookeeper.superUser" => config.sasl_super_user = Some(value.to_owned()),
        "zookeeper.X509AuthenticationProvider.superUser" => {
            config.x509_super_user = Some(value.to_owned());
        }
        "zookeeper.enforceQuota" | "enforceQuota" => {
            config.quota_enforced = value
                .parse()
                .map_err(|_| invalid(key, value, "expected true or false"))?;
        }
        // ZooKeeper keeps the two enforce.auth keys apart; arbor folds them into one list
        // when the configuration is complete (see `finish_enforced_auth`).
        "enforce.auth.enabled" | "zookeeper.enforce.auth.enabled" => {
            let enabled: bool = value
                .parse()
                .map_err(|_| invalid(key, value, "expected true or false"))?;
            config
                .properties
                .insert("enforce.auth.enabled".into(), enabled.to_string());
        }
        "enforce.auth.schemes" | "zookeeper.enforce.auth.schemes" => {
            config
                .properties
                .insert("enforce.auth.schemes".into(), value.to_owned());
        }
        "sessionRequireClientSASLAuth" | "zookeeper.sessionRequireClientSASLAuth" => {
            let required: bool = value
                .parse()
                .map_err(|_| invalid(key, value, "expected true or false"))?;
            if required && !config.enforced_auth_schemes.iter().any(|s| s == "sasl") {
                config.enforced_auth_schemes.push("sasl".into());
            }
        }
        "audit.enable" | "zookeeper.audit.enable" => {
            config.audit_enabled = value
                .parse()
                .map_err(|_| invalid(key, value, "expected true or false"))?;
        }
        // Settings whose effect arbor has built in: Netty is how arbor serves anyway, and the
        // SASL and x509 providers are on whenever their settings are present.
        "serverCnxnFactory" => {}
        key if key.starts_with("authProvider.") || key.starts_with("zookeeper.authProvider.") => {}
        _ => return Ok(false),
    }
    Ok(true)
}

/// Turns `enforce.auth.enabled` and `enforce.auth.schemes` (either may come first, from
/// zoo.cfg or `-D`) into [`ServerConfig::enforced_auth_schemes`].
///
/// # Errors
/// [`ConfigError::Invalid`] when enforcement is enabled without a scheme, as ZooKeeper
/// refuses to start then.
pub(crate) fn finish_enforced_auth(config: &mut ServerConfig) -> Result<(), ConfigError> {
    if config
        .properties
        .get("enforce.auth.enabled")
        .map(String::as_str)
        != Some("true")
    {
        return Ok(());
    }
    let schemes = config
        .properties
        .get("enforce.auth.schemes")
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    for scheme in schemes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        any = true;
        if !config.enforced_auth_schemes.iter().any(|s| s == scheme) {
            config.enforced_auth_schemes.push(scheme.to_owned());
        }
    }
    if !any {
        return Err(invalid(
            "enforce.auth.schemes",
            &schemes,
            "enforce.auth.enabled=true needs at least one scheme (e.g. sasl or digest)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kazoo_zoo_cfg_security_keys() {
        let mut config = ServerConfig::default();
        for (key, value) in [
            ("secureClientPort", "22004"),
            ("ssl.keyStore.location", "/w/keystore.jks"),
            ("ssl.keyStore.password", "apassword"),
            ("zookeeper.ssl.trustStore.location", "/w/truststore.jks"),
            ("ssl.trustStore.password", "apassword"),
            ("maxCnxns", "0"),
            ("java.security.auth.login.config", "/w/jaas.conf"),
            (
                "authProvider.1",
                "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
            ),
            (
                "serverCnxnFactory",
                "org.apache.zookeeper.server.NettyServerCnxnFactory",
            ),
        ] {
            assert!(apply(&mut config, key, value).unwrap(), "{key}");
        }
        assert_eq!(config.secure_client_address.unwrap().port(), 22004);
        let key_store = config.tls.key_store.as_ref().unwrap();
        assert_eq!(key_store.location, PathBuf::from("/w/keystore.jks"));
        assert_eq!(key_store.password.as_deref(), Some("apassword"));
        assert_eq!(config.connections_max, 0);
        assert_eq!(config.sasl_jaas_file, Some(PathBuf::from("/w/jaas.conf")));
        assert!(!apply(&mut config, "tickTime", "2000").unwrap());
        for (key, value) in [
            ("sslQuorum", "true"),
            ("ssl.quorum.keyStore.location", "/w/quorum.p12"),
            (
                "zookeeper.ssl.quorum.trustStore.location",
                "/w/quorum-trust.pem",
            ),
        ] {
            assert!(apply(&mut config, key, value).unwrap(), "{key}");
        }
        assert!(config.ssl_quorum);
        let quorum_key = config.quorum_tls.key_store.as_ref().unwrap();
        assert_eq!(quorum_key.location, PathBuf::from("/w/quorum.p12"));
        assert_eq!(
            config.tls.key_store.as_ref().unwrap().location,
            PathBuf::from("/w/keystore.jks"),
            "quorum keys leave the client port's alone"
        );
        assert!(apply(&mut config, "ssl.clientAuth", "sometimes").is_err());
        assert!(apply(&mut config, "ssl.keyStore.type", "BCFKS").is_err());
    }
}
