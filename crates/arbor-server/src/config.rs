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

/// Whether a member votes.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// A voter (ZooKeeper's participant).
    #[default]
    Participant,
    /// A non-voting learner that serves reads and forwards writes (ZooKeeper's observer).
    Observer,
}

/// One server of a cluster.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The server id (ZooKeeper's `myid`), 1..=254: it is also the top byte of the session
    /// ids the server mints.
    pub id: u8,
    /// Where the other servers reach it.
    pub peer_address: SocketAddr,
    /// Where its clients connect, if known (shown in `/zookeeper/config`).
    #[serde(default)]
    pub client_address: Option<SocketAddr>,
    /// ZooKeeper's election port from a `server.N=` line (arbor elects over the peer port;
    /// kept so `/zookeeper/config` shows the line as written).
    #[serde(default)]
    pub election_port: Option<u16>,
    /// Voter or observer.
    #[serde(default)]
    pub role: MemberRole,
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
    /// The cluster's servers, this one included; empty for a standalone server.
    pub members: Vec<Member>,
    /// Whether a configuration naming only this server runs it standalone (ZooKeeper's
    /// `standaloneEnabled`, on by default). Off, such a server is a cluster of one: it leads
    /// a one-voter quorum, listens for peers, and can grow by `reconfig` (ZooKeeper's way of
    /// starting an ensemble one server at a time).
    pub standalone_enabled: bool,
    /// Names the cluster: peers of another cluster are refused, so two clusters never mix.
    /// Derived from the member list when not set.
    pub cluster_id: Option<u64>,
    /// Whether `reconfig` may change the membership (ZooKeeper's `reconfigEnabled`, off by
    /// default).
    pub reconfig_enabled: bool,
    /// Serve clients that accept a read-only server while cut off from the quorum
    /// (ZooKeeper's `readonlymode.enabled`; on by default in arbor, as it only affects
    /// clients that ask for it).
    pub read_only_mode_enabled: bool,
    /// Serve every data read linearizably (a ReadIndex round first) instead of from the local
    /// state after the session's own writes (ZooKeeper's sequential consistency).
    pub linearizable_reads: bool,
    /// Settings read from `-Dkey=value` or a zoo.cfg that arbor stores but does not act on,
    /// kept so `conf` and `envi` can show them.
    pub properties: BTreeMap<String, String>,
    /// Where TLS clients connect (ZooKeeper's `secureClientPort`); none: no TLS port.
    pub secure_client_address: Option<SocketAddr>,
    /// TLS of the secure client port (`[tls]`; zoo.cfg `ssl.*`).
    pub tls: crate::tls::TlsConfig,
    /// Whether peer connections use TLS (ZooKeeper's `sslQuorum`), with `quorum_tls`.
    pub ssl_quorum: bool,
    /// TLS between servers (`[quorum_tls]`; zoo.cfg `ssl.quorum.*`): this server's key store
    /// and the trust store peers' certificates must chain to (mutual TLS, always).
    pub quorum_tls: crate::tls::TlsConfig,
    /// JAAS file whose `Server` section lists SASL DIGEST-MD5 users
    /// (`-Djava.security.auth.login.config`); none: SASL answers AuthFailed.
    pub sasl_jaas_file: Option<PathBuf>,
    /// The SASL user that also gets the `super` identity (`zookeeper.superUser`).
    pub sasl_super_user: Option<String>,
    /// The certificate subject that also gets the `super` identity
    /// (`zookeeper.X509AuthenticationProvider.superUser`).
    pub x509_super_user: Option<String>,
    /// Authentication schemes a session must have proven before any request but auth or SASL
    /// is served (ZooKeeper's `enforce.auth.enabled` with `enforce.auth.schemes`, and the
    /// older `sessionRequireClientSASLAuth`); empty: not enforced.
    pub enforced_auth_schemes: Vec<String>,
    /// Watches one connection may hold; a request that would set one more is answered
    /// ThrottledOp (0 = no limit).
    pub watches_per_connection_max: u32,
    /// Largest child listing (encoded names) a getChildren answers; a larger one is answered
    /// ThrottledOp rather than sent to a client that could not read it (0 = no limit).
    pub children_listing_bytes_max: u32,
    /// Bytes of replies and events queued for a connection before it counts as a slow reader
    /// and is closed (0 = only `outbound_queue_max` bounds it).
    pub outbound_bytes_max: u64,
    /// Memory budget of the data tree and the session/watch tables (estimated): past 80 % a
    /// warning and a metric, past 100 % writes that grow the state are answered ThrottledOp
    /// (0 = no budget).
    pub memory_budget_bytes: u64,
    /// Whether hard quotas (`setquota -N/-B`) refuse writes with QuotaExceeded
    /// (`zookeeper.enforceQuota`; on in arbor). Soft quotas are only logged.
    pub quota_enforced: bool,
    /// Whether every client write is audited (ZooKeeper's `audit.enable`).
    pub audit_enabled: bool,
    /// File the audit lines are appended to besides the `audit` log target.
    pub audit_log_file: Option<PathBuf>,
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
            members: Vec::new(),
            standalone_enabled: true,
            cluster_id: None,
            linearizable_reads: false,
            reconfig_enabled: false,
            read_only_mode_enabled: true,
            properties: BTreeMap::new(),
            secure_client_address: None,
            tls: crate::tls::TlsConfig::default(),
            ssl_quorum: false,
            quorum_tls: crate::tls::TlsConfig::default(),
            sasl_jaas_file: None,
            sasl_super_user: None,
            x509_super_user: None,
            enforced_auth_schemes: Vec::new(),
            watches_per_connection_max: WATCHES_PER_CONNECTION_MAX_DEFAULT,
            children_listing_bytes_max: arbor_proto::FRAME_SIZE_BYTES_MAX_DEFAULT,
            outbound_bytes_max: OUTBOUND_BYTES_MAX_DEFAULT,
            memory_budget_bytes: MEMORY_BUDGET_BYTES_DEFAULT,
            quota_enforced: true,
            audit_enabled: false,
            audit_log_file: None,
        }
    }
}

/// Default of [`ServerConfig::watches_per_connection_max`].
pub const WATCHES_PER_CONNECTION_MAX_DEFAULT: u32 = 100_000;
/// Default of [`ServerConfig::outbound_bytes_max`]: 32 MiB per connection.
pub const OUTBOUND_BYTES_MAX_DEFAULT: u64 = 32 * 1024 * 1024;
/// Default of [`ServerConfig::memory_budget_bytes`]: 2 GiB.
pub const MEMORY_BUDGET_BYTES_DEFAULT: u64 = 2 * 1024 * 1024 * 1024;

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

    /// This server's own entry in the member list.
    pub fn me(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.id == self.server_id)
    }

    /// The `server.N=` lines of the configured members, as `/zookeeper/config` records them.
    pub fn members_text(&self) -> String {
        let mut text = String::new();
        for member in &self.members {
            let role = match member.role {
                MemberRole::Participant => "participant",
                MemberRole::Observer => "observer",
            };
            text.push_str(&format!(
                "server.{}={}:{}:{}:{}",
                member.id,
                member.peer_address.ip(),
                member.peer_address.port(),
                member.election_port.unwrap_or(0),
                role
            ));
            if let Some(client) = member.client_address {
                text.push_str(&format!(";{client}"));
            }
            text.push('\n');
        }
        text
    }

    /// Whether this server runs as a member of a cluster (Raft over the peer transport): more
    /// than one member, or one with `standalone_enabled` off.
    pub fn is_clustered(&self) -> bool {
        self.members.len() > 1 || (self.members.len() == 1 && !self.standalone_enabled)
    }

    /// The cluster id: the configured one, or an FNV-1a hash of the sorted participants of
    /// the initial member list, so every member of one configuration computes the same id.
    /// Observers are left out because ZooKeeper adds them without telling the others: a
    /// server joining as an observer lists the participants and itself, which the
    /// participants' own files do not.
    pub fn effective_cluster_id(&self) -> u64 {
        if let Some(id) = self.cluster_id {
            return id;
        }
        let mut members: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Participant)
            .map(|m| format!("{}={}", m.id, m.peer_address))
            .collect();
        members.sort();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in members.join(",").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    /// Checks the member list.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for duplicate or out-of-range ids, or a list that does not
    /// name this server.
    pub fn validate_members(&self) -> Result<(), ConfigError> {
        if self.members.is_empty() {
            return Ok(());
        }
        let mut seen = std::collections::BTreeSet::new();
        for member in &self.members {
            if member.id == 0 || member.id == 255 || !seen.insert(member.id) {
                return Err(ConfigError::Invalid {
                    key: "members".into(),
                    value: member.id.to_string(),
                    reason: "member ids must be unique and within 1..=254",
                });
            }
        }
        if self.me().is_none() {
            return Err(ConfigError::Invalid {
                key: "server_id".into(),
                value: self.server_id.to_string(),
                reason: "this server's id is not in the member list",
            });
        }
        if !self
            .members
            .iter()
            .any(|m| m.role == MemberRole::Participant)
        {
            return Err(ConfigError::Invalid {
                key: "members".into(),
                value: String::new(),
                reason: "at least one member must be a participant",
            });
        }
        Ok(())
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
                key if crate::security_config::apply(&mut config, key, value)? => {}
                key if key.starts_with("server.") => {
                    let id: u64 = parse(key, &key["server.".len()..])?;
                    servers.insert(id, value.to_owned());
                }
                // Settings with no meaning for a standalone arbor, accepted silently because
                // every real zoo.cfg has them.
                "reconfigEnabled" => config.reconfig_enabled = parse(key, value)?,
                "standaloneEnabled" => config.standalone_enabled = parse(key, value)?,
                "initLimit"
                | "syncLimit"
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
        if !servers.is_empty() {
            let myid_path = config.data_dir.join("myid");
            let myid: Option<u8> = match std::fs::read_to_string(&myid_path) {
                Ok(text) => Some(parse("myid", text.trim())?),
                Err(_) => None,
            };
            match (myid, servers.len()) {
                (Some(id), _) => config.server_id = id,
                // A one-server ensemble needs no myid, standalone or not.
                (None, 1) => {
                    if let Some(&id) = servers.keys().next() {
                        config.server_id = u8::try_from(id).map_err(|_| ConfigError::Invalid {
                            key: format!("server.{id}"),
                            value: id.to_string(),
                            reason: "server ids must be within 1..=254",
                        })?;
                    }
                }
                (None, _) => {
                    return Err(ConfigError::Invalid {
                        key: "myid".into(),
                        value: myid_path.display().to_string(),
                        reason: "a zoo.cfg with several servers needs dataDir/myid",
                    });
                }
            }
            for (id, value) in &servers {
                config.members.push(parse_server_line(*id, value)?);
            }
            // ZooKeeper 3.5+: without clientPort, the client address is the one this
            // server's own `server.N=...;[host:]port` line names.
            if client_port.is_none()
                && let Some(own) = config
                    .members
                    .iter()
                    .find(|member| member.id == config.server_id)
                    .and_then(|member| member.client_address)
            {
                client_port = Some(own.port());
                client_host = client_host.or(Some(own.ip()));
            }
            if config.members.len() == 1 && config.standalone_enabled {
                // Standalone: the member list only named this server.
                config.members.clear();
            }
            config.validate_members()?;
        }
        let port = client_port.ok_or_else(|| ConfigError::Invalid {
            key: "clientPort".into(),
            value: String::new(),
            reason: "zoo.cfg must set clientPort (or this server's server.N line must end \
                     with ;[host:]clientPort)",
        })?;
        let host = client_host.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        config.client_address = SocketAddr::new(host, port);
        if let Some(secure) = config.secure_client_address.as_mut()
            && secure.ip().is_unspecified()
        {
            // ZooKeeper's secureClientPortAddress defaults to clientPortAddress.
            secure.set_ip(host);
        }
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
            "readonlymode.enabled" => self.read_only_mode_enabled = parse(key, value)?,
            key if crate::security_config::apply(self, key, value)? => {}
            _ => {
                self.properties.insert(key.to_owned(), value.to_owned());
                return Ok(Some(format!("-D{key}={value}: unknown to arbor, ignored")));
            }
        }
        self.properties.insert(key.to_owned(), value.to_owned());
        Ok(None)
    }
}

/// `server.N=host:peerPort:electionPort[:participant|observer][;[clientHost:]clientPort]`.
/// arbor's Raft uses the peer port; the election port has no use (Raft elects over the same
/// link) and is ignored.
fn parse_server_line(id: u64, value: &str) -> Result<Member, ConfigError> {
    let key = format!("server.{id}");
    let invalid = |reason: &'static str| ConfigError::Invalid {
        key: key.clone(),
        value: value.to_owned(),
        reason,
    };
    let id = u8::try_from(id)
        .ok()
        .filter(|id| (1..=254).contains(id))
        .ok_or_else(|| invalid("server ids must be within 1..=254"))?;
    let (server, client) = match value.split_once(';') {
        Some((server, client)) => (server.trim(), Some(client.trim())),
        None => (value.trim(), None),
    };
    let parts: Vec<&str> = server.split(':').collect();
    if parts.len() < 2 {
        return Err(invalid("expected host:peerPort:electionPort[:role]"));
    }
    let host = resolve_host(&key, parts[0])?;
    let peer_port: u16 = parts[1].parse().map_err(|_| invalid("bad peer port"))?;
    let role = match parts.get(3).copied() {
        None | Some("participant") => MemberRole::Participant,
        Some("observer") => MemberRole::Observer,
        Some(_) => return Err(invalid("role must be participant or observer")),
    };
    let client_address = match client {
        None | Some("") => None,
        Some(client) => Some(match client.rsplit_once(':') {
            Some((client_host, port)) => SocketAddr::new(
                resolve_host(&key, client_host)?,
                port.parse().map_err(|_| invalid("bad client port"))?,
            ),
            None => SocketAddr::new(
                host,
                client.parse().map_err(|_| invalid("bad client port"))?,
            ),
        }),
    };
    Ok(Member {
        id,
        peer_address: SocketAddr::new(host, peer_port),
        client_address,
        election_port: parts.get(2).and_then(|port| port.parse().ok()),
        role,
    })
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
    fn zoo_cfg_with_one_server_line_is_standalone() {
        let dir = tempfile::tempdir().unwrap();
        let one = write(
            dir.path(),
            "one.cfg",
            "clientPort=1\nserver.1=127.0.0.1:2888:3888\n",
        );
        let (config, _) = ServerConfig::from_zoo_cfg(&one).unwrap();
        assert!(!config.is_clustered());
        assert_eq!(config.server_id, 1);
    }

    #[test]
    fn standalone_disabled_makes_one_server_a_cluster_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let one = write(
            dir.path(),
            "one.cfg",
            "standaloneEnabled=false
reconfigEnabled=true
             server.1=localhost:2001:3001:participant;localhost:4001
",
        );
        let (config, warnings) = ServerConfig::from_zoo_cfg(&one).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(config.is_clustered());
        assert!(config.reconfig_enabled);
        assert_eq!(config.members.len(), 1);
        assert_eq!(config.me().unwrap().peer_address.port(), 2001);
        assert_eq!(config.client_address.port(), 4001);
        let bad = write(
            dir.path(),
            "bad.cfg",
            "clientPort=1
standaloneEnabled=maybe
",
        );
        assert!(ServerConfig::from_zoo_cfg(&bad).is_err());
    }

    #[test]
    fn observers_do_not_change_the_cluster_id() {
        let dir = tempfile::tempdir().unwrap();
        // Each server's zoo.cfg, with its own data directory (and myid there).
        let load = |id: u8, servers: &str| {
            let data = dir.path().join(format!("data{id}"));
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join("myid"), format!("{id}\n")).unwrap();
            let text = format!(
                "standaloneEnabled=false\ndataDir={}\n{servers}",
                data.display()
            );
            let path = write(dir.path(), &format!("zoo{id}.cfg"), &text);
            ServerConfig::from_zoo_cfg(&path).unwrap().0
        };
        let participant = "server.1=localhost:2001:3001:participant;localhost:4001\n";
        let leader = load(1, participant);
        let joiner = load(
            2,
            &format!("{participant}server.2=localhost:2002:3002:observer;localhost:4002\n"),
        );
        assert_eq!(joiner.server_id, 2);
        assert_eq!(leader.effective_cluster_id(), joiner.effective_cluster_id());
        let elsewhere = load(
            3,
            "server.3=localhost:2009:3009:participant;localhost:4009\n",
        );
        assert_ne!(
            leader.effective_cluster_id(),
            elsewhere.effective_cluster_id()
        );
    }

    #[test]
    fn zoo_cfg_servers_and_myid_make_a_cluster() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        let cfg = format!(
            "clientPort=2181\ndataDir={}\nserver.1=localhost:2888:3888:participant\n\
             server.2=127.0.0.1:2889:3889\nserver.3=127.0.0.1:2890:3890:observer;127.0.0.1:2183\n",
            dir.path().display()
        );
        let path = write(dir.path(), "zoo.cfg", &cfg);
        let (config, _) = ServerConfig::from_zoo_cfg(&path).unwrap();
        assert_eq!(config.server_id, 2);
        assert_eq!(config.members.len(), 3);
        assert_eq!(config.members[0].peer_address.to_string(), "127.0.0.1:2888");
        assert_eq!(config.members[2].role, MemberRole::Observer);
        assert_eq!(config.members[2].client_address.unwrap().port(), 2183);
        assert_eq!(config.me().unwrap().peer_address.port(), 2889);
        let other = ServerConfig {
            server_id: 1,
            ..config.clone()
        };
        assert_eq!(config.effective_cluster_id(), other.effective_cluster_id());
    }

    #[test]
    fn without_client_port_the_own_server_line_names_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        let cfg = format!(
            "dataDir={}\nserver.1=127.0.0.1:2001:3001:participant;127.0.0.1:4001\n\
             server.2=127.0.0.1:2002:3002:participant;4002\n",
            dir.path().display()
        );
        let path = write(dir.path(), "zoo.cfg", &cfg);
        let (config, _) = ServerConfig::from_zoo_cfg(&path).unwrap();
        assert_eq!(config.client_address.to_string(), "127.0.0.1:4002");
        // Neither clientPort nor a client port on the line: a clear error.
        let cfg = format!(
            "dataDir={}\nserver.1=127.0.0.1:2001:3001\nserver.2=127.0.0.1:2002:3002\n",
            dir.path().display()
        );
        let path = write(dir.path(), "none.cfg", &cfg);
        let error = ServerConfig::from_zoo_cfg(&path).unwrap_err().to_string();
        assert!(error.contains("clientPort"), "{error}");
    }

    #[test]
    fn cluster_without_myid_or_with_bad_lines_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "clientPort=1\ndataDir={}\nserver.1=a:1:2\nserver.2=b:1:2\n",
            dir.path().display()
        );
        let path = write(dir.path(), "nomyid.cfg", &cfg);
        assert!(ServerConfig::from_zoo_cfg(&path).is_err());
        std::fs::write(dir.path().join("myid"), "1").unwrap();
        let bad = format!(
            "clientPort=1\ndataDir={}\nserver.1=127.0.0.1:x:2\nserver.2=127.0.0.1:1:2\n",
            dir.path().display()
        );
        let path = write(dir.path(), "bad.cfg", &bad);
        assert!(ServerConfig::from_zoo_cfg(&path).is_err());
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
