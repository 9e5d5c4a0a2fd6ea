//! Server configuration: defaults that need no file, arbor's TOML file, and ZooKeeper's
//! `zoo.cfg` read unchanged so users migrate by pointing arbor at the file they already have.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML file is malformed or has an unknown key.
    #[error("invalid TOML in {path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A value is malformed or out of range.
    #[error("invalid value for {key}: {value:?} ({reason})")]
    Invalid {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The configuration asks for something this build does not do yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Everything a server needs to run. `ServerConfig::default()` is the newcomer's server:
/// one node on 127.0.0.1:2181 with its data in `./arbor-data`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where clients connect.
    pub client_address: SocketAddr,
    /// Where the WAL and snapshots live.
    pub data_dir: PathBuf,
    /// This server's id (top byte of the session ids it mints). 1 for a standalone server,
    /// as ZooKeeper's standalone mode uses.
    pub server_id: u8,
    /// The basic time unit (ZooKeeper's `tickTime`): session timeouts are clamped to
    /// [2, 20] ticks unless the bounds below are set.
    pub tick_ms: u32,
    /// Raft's clock: how often elections, heartbeats and leases advance (milliseconds).
    pub raft_tick_ms: u32,
    /// Raft ticks without a leader before a follower campaigns (randomised up to twice this).
    pub election_timeout_ticks: u64,
    /// Lower bound of negotiated session timeouts (default 2 ticks).
    pub session_timeout_min_ms: Option<u32>,
    /// Upper bound of negotiated session timeouts (default 20 ticks).
    pub session_timeout_max_ms: Option<u32>,
    /// Connections accepted from one IP address (ZooKeeper's `maxClientCnxns`; 0 = no limit).
    pub connections_per_ip_max: u32,
    /// Connections accepted in total (0 = no limit).
    pub connections_max: u32,
    /// Largest frame accepted from a client (ZooKeeper's `jute.maxbuffer`).
    pub frame_size_bytes_max: u32,
    /// Requests a connection may have waiting for their reply before the server stops reading
    /// from it (back-pressure, ZooKeeper's outstanding-request limit).
    pub requests_inflight_per_connection_max: u32,
    /// Replies and events queued for a connection before it counts as a slow reader and is
    /// closed.
    pub outbound_queue_max: u32,
    /// Four-letter words answered on the client port; `*` means all.
    pub four_letter_words: Vec<String>,
    /// `user:base64(sha1(user:password))` of the super user, or none.
    pub super_digest: Option<String>,
    /// Log entries between snapshots (ZooKeeper's `snapCount`).
    pub snapshot_every_entries: u64,
    /// How often the server looks for empty containers and expired TTL nodes
    /// (ZooKeeper's `znode.container.checkIntervalMs`).
    pub container_check_interval_ms: u64,
    /// Whether TTL nodes may be created (ZooKeeper's `zookeeper.extendedTypesEnabled`;
    /// arbor enables them by default).
    pub ttl_nodes_enabled: bool,
    /// Settings read from `-Dkey=value` or a zoo.cfg that arbor stores but does not act on,
    /// kept so `conf` and `envi` can show them.
    pub properties: BTreeMap<String, String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            client_address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2181),
            data_dir: PathBuf::from("arbor-data"),
            server_id: 1,
            tick_ms: 2000,
            raft_tick_ms: 50,
            election_timeout_ticks: 10,
            session_timeout_min_ms: None,
            session_timeout_max_ms: None,
            connections_per_ip_max: 60,
            connections_max: 10_000,
            frame_size_bytes_max: arbor_proto::FRAME_SIZE_BYTES_MAX_DEFAULT,
            requests_inflight_per_connection_max: 1000,
            outbound_queue_max: 100_000,
            four_letter_words: vec!["*".to_owned()],
            super_digest: None,
            snapshot_every_entries: 100_000,
            container_check_interval_ms: 60_000,
            ttl_nodes_enabled: true,
            properties: BTreeMap::new(),
        }
    }
}

impl ServerConfig {
    /// The negotiated-timeout bounds in milliseconds.
    pub fn session_timeout_bounds_ms(&self) -> (u32, u32) {
        let min = self
            .session_timeout_min_ms
            .unwrap_or(self.tick_ms.saturating_mul(2));
        let max = self
            .session_timeout_max_ms
            .unwrap_or(self.tick_ms.saturating_mul(20));
        (min, max.max(min))
    }

    /// Whether a four-letter word may be answered.
    pub fn four_letter_word_allowed(&self, word: &str) -> bool {
        self.four_letter_words
            .iter()
            .any(|allowed| allowed == "*" || allowed == word)
    }

    /// Reads arbor's TOML configuration file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Toml`] (unknown keys are errors in our own
    /// format, to catch typos).
    pub fn from_toml_file(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Toml {
            path: path.to_owned(),
            message: error.to_string(),
        })
    }

    /// Reads a ZooKeeper `zoo.cfg` (and the `myid` file of its data dir when it lists servers).
    /// Keys arbor does not know are returned as warnings, never fatal, since a real zoo.cfg
    /// carries many settings that have no meaning for arbor.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read, a known key has a bad value, or the file
    /// describes a multi-server ensemble (not supported by this build yet).
    pub fn from_zoo_cfg(path: &Path) -> Result<(ServerConfig, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = ServerConfig::default();
        let mut warnings = Vec::new();
        let mut client_port: Option<u16> = None;
        let mut client_host: Option<IpAddr> = None;
        let mut servers: BTreeMap<u64, String> = BTreeMap::new();
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                warnings.push(format!("line {}: ignored, no '=': {line}", number + 1));
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "clientPort" => client_port = Some(parse(key, value)?),
                "clientPortAddress" => {
                    client_host = Some(resolve_host(key, value)?);
                }
                "dataDir" => config.data_dir = PathBuf::from(value),
                "dataLogDir" => warnings.push(format!(
                    "dataLogDir={value}: arbor keeps its log with its snapshots in dataDir"
                )),
                "tickTime" => config.tick_ms = parse_positive(key, value)?,
                "minSessionTimeout" => config.session_timeout_min_ms = Some(parse(key, value)?),
                "maxSessionTimeout" => config.session_timeout_max_ms = Some(parse(key, value)?),
                "maxClientCnxns" => config.connections_per_ip_max = parse(key, value)?,
                "4lw.commands.whitelist" => {
                    config.four_letter_words = parse_word_list(value);
                }
                "jute.maxbuffer" => config.frame_size_bytes_max = parse_positive(key, value)?,
                "snapCount" => config.snapshot_every_entries = parse_positive(key, value)?,
                key if key.starts_with("server.") => {
                    let id: u64 = parse(key, &key["server.".len()..])?;
                    servers.insert(id, value.to_owned());
                }
                // Settings with no meaning for a standalone arbor, accepted silently because
                // every real zoo.cfg has them.
                "initLimit"
                | "syncLimit"
                | "standaloneEnabled"
                | "reconfigEnabled"
                | "admin.enableServer"
                | "admin.serverPort"
                | "autopurge.snapRetainCount"
                | "autopurge.purgeInterval"
                | "preAllocSize"
                | "forceSync"
                | "localSessionsEnabled"
                | "localSessionsUpgradingEnabled" => {
                    config.properties.insert(key.to_owned(), value.to_owned());
                }
                _ => {
                    warnings.push(format!("{key}={value}: unknown to arbor, ignored"));
                    config.properties.insert(key.to_owned(), value.to_owned());
                }
            }
        }
        if servers.len() > 1 {
            return Err(ConfigError::Unsupported(format!(
                "{} lists {} servers; this arbor build runs standalone only (replication is \
                 a later release)",
                path.display(),
                servers.len()
            )));
        }
        if let Some((&id, _)) = servers.iter().next() {
            // A one-server ensemble is standalone, as ZooKeeper's standaloneEnabled makes it.
            let myid_path = config.data_dir.join("myid");
            if let Ok(text) = std::fs::read_to_string(&myid_path) {
                let myid: u64 = parse("myid", text.trim())?;
                if myid != id {
                    warnings.push(format!("myid {myid} does not match server.{id}"));
                }
            }
        }
        let port = client_port.ok_or_else(|| ConfigError::Invalid {
            key: "clientPort".into(),
            value: String::new(),
            reason: "zoo.cfg must set clientPort",
        })?;
        let host = client_host.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        config.client_address = SocketAddr::new(host, port);
        Ok((config, warnings))
    }

    /// Applies one Java-style system property (`-Dkey=value`), as ZooKeeper reads them.
    /// Returns a warning for keys arbor does not act on.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a known key with a bad value.
    pub fn apply_property(
        &mut self,
        key: &str,
        value: &str,
    ) -> Result<Option<String>, ConfigError> {
        match key {
            "zookeeper.DigestAuthenticationProvider.superDigest" => {
                self.super_digest = Some(value.to_owned());
            }
            "jute.maxbuffer" => self.frame_size_bytes_max = parse_positive(key, value)?,
            "zookeeper.4lw.commands.whitelist" => {
                self.four_letter_words = parse_word_list(value);
            }
            "znode.container.checkIntervalMs" => {
                self.container_check_interval_ms = parse_positive(key, value)?;
            }
            "zookeeper.extendedTypesEnabled" => {
                self.ttl_nodes_enabled = parse(key, value)?;
            }
            "zookeeper.snapCount" => self.snapshot_every_entries = parse_positive(key, value)?,
            _ => {
                self.properties.insert(key.to_owned(), value.to_owned());
                return Ok(Some(format!("-D{key}={value}: unknown to arbor, ignored")));
            }
        }
        self.properties.insert(key.to_owned(), value.to_owned());
        Ok(None)
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: "not a valid value of the expected type",
    })
}

fn parse_positive<T: std::str::FromStr + Default + PartialOrd>(
    key: &str,
    value: &str,
) -> Result<T, ConfigError> {
    let parsed: T = parse(key, value)?;
    if parsed <= T::default() {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: "must be positive",
        });
    }
    Ok(parsed)
}

fn parse_word_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|word| word.trim().to_owned())
        .filter(|word| !word.is_empty())
        .collect()
}

fn resolve_host(key: &str, value: &str) -> Result<IpAddr, ConfigError> {
    if value == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: "expected an IP address or localhost",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_are_the_newcomers_server() {
        let config = ServerConfig::default();
        assert_eq!(config.client_address.to_string(), "127.0.0.1:2181");
        assert_eq!(config.data_dir, PathBuf::from("arbor-data"));
        assert_eq!(config.session_timeout_bounds_ms(), (4000, 40000));
        assert_eq!(config.frame_size_bytes_max, 1_048_575);
    }

    #[test]
    fn zoo_cfg_is_read_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let cfg = format!(
            "# sample\ntickTime=3000\ndataDir={}\nclientPort=2999\nclientPortAddress=127.0.0.1\n\
             maxClientCnxns=7\n4lw.commands.whitelist=ruok, srvr\ninitLimit=10\n\
             jute.maxbuffer=4096\nmetricsProvider.className=x\n",
            data.display()
        );
        let path = write(dir.path(), "zoo.cfg", &cfg);
        let (config, warnings) = ServerConfig::from_zoo_cfg(&path).unwrap();
        assert_eq!(config.client_address.to_string(), "127.0.0.1:2999");
        assert_eq!(config.data_dir, data);
        assert_eq!(config.session_timeout_bounds_ms(), (6000, 60000));
        assert_eq!(config.connections_per_ip_max, 7);
        assert_eq!(config.frame_size_bytes_max, 4096);
        assert!(config.four_letter_word_allowed("ruok"));
        assert!(!config.four_letter_word_allowed("dump"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("metricsProvider.className"));
    }

    #[test]
    fn zoo_cfg_with_one_server_line_is_standalone_and_many_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let one = write(
            dir.path(),
            "one.cfg",
            "clientPort=1\nserver.1=127.0.0.1:2888:3888\n",
        );
        assert!(ServerConfig::from_zoo_cfg(&one).is_ok());
        let three = write(
            dir.path(),
            "three.cfg",
            "clientPort=1\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n",
        );
        let error = ServerConfig::from_zoo_cfg(&three).unwrap_err();
        assert!(matches!(error, ConfigError::Unsupported(_)), "{error}");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "bad.cfg", "clientPort=abc\n");
        let error = ServerConfig::from_zoo_cfg(&path).unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid value for clientPort: \"abc\" (not a valid value of the expected type)"
        );
        let path = write(dir.path(), "zero.cfg", "clientPort=1\ntickTime=0\n");
        assert!(ServerConfig::from_zoo_cfg(&path).is_err());
    }

    #[test]
    fn toml_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(
            dir.path(),
            "a.toml",
            "client_address = \"127.0.0.1:0\"\ntick_ms = 100\n",
        );
        let config = ServerConfig::from_toml_file(&good).unwrap();
        assert_eq!(config.tick_ms, 100);
        let bad = write(dir.path(), "b.toml", "tick = 100\n");
        assert!(matches!(
            ServerConfig::from_toml_file(&bad),
            Err(ConfigError::Toml { .. })
        ));
    }

    #[test]
    fn system_properties_map_to_settings() {
        let mut config = ServerConfig::default();
        let digest = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";
        assert_eq!(
            config
                .apply_property("zookeeper.DigestAuthenticationProvider.superDigest", digest)
                .unwrap(),
            None
        );
        assert_eq!(config.super_digest.as_deref(), Some(digest));
        assert!(
            config
                .apply_property("zookeeper.foo", "1")
                .unwrap()
                .is_some()
        );
        assert!(config.apply_property("jute.maxbuffer", "-1").is_err());
    }
}
