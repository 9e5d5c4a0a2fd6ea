//! The cluster membership as ZooKeeper publishes it in `/zookeeper/config`: one
//! `server.N=host:peerPort:electionPort:role[;[clientHost:]clientPort]` line per member, then
//! `version=<hex zxid of the change>`. It is replicated state (a `reconfig` changes it through
//! the log) and the server derives its Raft membership and peer addresses from it.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

/// The path of the membership node.
pub const CONFIG_PATH: &str = "/zookeeper/config";

/// Why a membership text or a server line was refused (answered BadArguments).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid server specification {text:?}: {reason}")]
pub struct ConfigParseError {
    /// The offending text.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Whether a member votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClusterRole {
    /// A voter.
    Participant,
    /// A non-voting learner.
    Observer,
}

/// One member, as its `server.N=` line gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMember {
    /// The server id.
    pub id: u64,
    /// Host of the peer and election ports, as written.
    pub host: String,
    /// Port for server-to-server traffic (arbor's Raft transport).
    pub peer_port: u16,
    /// ZooKeeper's election port (kept for the text; arbor elects over the peer port).
    pub election_port: u16,
    /// Voter or observer.
    pub role: ClusterRole,
    /// The client address after `;`, as written (`host:port` or a bare port).
    pub client: Option<String>,
}

impl ClusterMember {
    /// Parses the value of a `server.<id>=` line.
    ///
    /// # Errors
    /// [`ConfigParseError`] for anything ZooKeeper's `QuorumServer` would refuse.
    pub fn parse(id: u64, value: &str) -> Result<ClusterMember, ConfigParseError> {
        let invalid = |reason| ConfigParseError {
            text: value.to_owned(),
            reason,
        };
        // Any positive id parses (ZooKeeper's ids are longs); a server refuses at start-up an
        // id of its own that cannot mint session ids (top byte 1..=254).
        if id == 0 {
            return Err(invalid("server ids must be positive"));
        }
        let (server, client) = match value.split_once(';') {
            Some((server, client)) => (server.trim(), Some(client.trim().to_owned())),
            None => (value.trim(), None),
        };
        let parts: Vec<&str> = server.split(':').collect();
        if parts.len() < 3 || parts.len() > 4 {
            return Err(invalid("expected host:peerPort:electionPort[:role]"));
        }
        if parts[0].is_empty() || parts[0].contains(char::is_whitespace) {
            return Err(invalid("bad host"));
        }
        let peer_port = parts[1].parse().map_err(|_| invalid("bad peer port"))?;
        let election_port = parts[2].parse().map_err(|_| invalid("bad election port"))?;
        let role = match parts.get(3).copied() {
            None | Some("participant") => ClusterRole::Participant,
            Some("observer") => ClusterRole::Observer,
            Some(_) => return Err(invalid("role must be participant or observer")),
        };
        if let Some(client) = &client {
            let port = client.rsplit(':').next().unwrap_or(client);
            if client.is_empty() || port.parse::<u16>().is_err() {
                return Err(invalid("bad client address"));
            }
        }
        Ok(ClusterMember {
            id,
            host: parts[0].to_owned(),
            peer_port,
            election_port,
            role,
            client: client.filter(|c| !c.is_empty()),
        })
    }

    /// Parses a whole `server.<id>=<value>` line.
    ///
    /// # Errors
    /// [`ConfigParseError`] when it is not such a line or the value is invalid.
    pub fn parse_line(line: &str) -> Result<ClusterMember, ConfigParseError> {
        let invalid = |reason| ConfigParseError {
            text: line.to_owned(),
            reason,
        };
        let (key, value) = line
            .trim()
            .split_once('=')
            .ok_or_else(|| invalid("expected server.N=..."))?;
        let id = key
            .strip_prefix("server.")
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| invalid("expected server.N=..."))?;
        ClusterMember::parse(id, value)
    }
}

impl fmt::Display for ClusterMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            ClusterRole::Participant => "participant",
            ClusterRole::Observer => "observer",
        };
        write!(
            f,
            "server.{}={}:{}:{}:{}",
            self.id, self.host, self.peer_port, self.election_port, role
        )?;
        if let Some(client) = &self.client {
            write!(f, ";{client}")?;
        }
        Ok(())
    }
}

/// The whole membership with its version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Members by id.
    pub members: BTreeMap<u64, ClusterMember>,
    /// The zxid of the change that made this membership (0 before any).
    pub version: i64,
}

impl ClusterConfig {
    /// Parses the text of `/zookeeper/config`.
    ///
    /// # Errors
    /// [`ConfigParseError`] for a malformed line.
    pub fn parse(text: &str) -> Result<ClusterConfig, ConfigParseError> {
        let mut config = ClusterConfig::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(version) = line.strip_prefix("version=") {
                config.version =
                    i64::from_str_radix(version, 16).map_err(|_| ConfigParseError {
                        text: line.to_owned(),
                        reason: "bad version",
                    })?;
                continue;
            }
            let member = ClusterMember::parse_line(line)?;
            config.members.insert(member.id, member);
        }
        Ok(config)
    }

    /// The text of `/zookeeper/config`.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for member in self.members.values() {
            text.push_str(&member.to_string());
            text.push('\n');
        }
        text.push_str(&format!("version={:x}", self.version));
        text
    }

    /// Ids of the voters.
    pub fn participants(&self) -> impl Iterator<Item = u64> + '_ {
        self.members
            .values()
            .filter(|m| m.role == ClusterRole::Participant)
            .map(|m| m.id)
    }

    /// Ids of the observers.
    pub fn observers(&self) -> impl Iterator<Item = u64> + '_ {
        self.members
            .values()
            .filter(|m| m.role == ClusterRole::Observer)
            .map(|m| m.id)
    }

    /// Applies an incremental reconfig (`joining` lines and `leaving` ids, comma separated)
    /// or replaces the membership (`new_members`, non-incremental).
    ///
    /// # Errors
    /// [`ConfigParseError`] for a malformed line, an unknown leaving id, or a result without
    /// any participant.
    pub fn reconfigured(
        &self,
        joining: &str,
        leaving: &str,
        new_members: &str,
    ) -> Result<ClusterConfig, ConfigParseError> {
        let split = |text: &str| -> Vec<String> {
            text.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let mut next = if new_members.trim().is_empty() {
            let mut next = self.clone();
            // Leaving ids that are not members are ignored, as ZooKeeper does.
            for id in split(leaving) {
                let parsed: u64 = id.parse().map_err(|_| ConfigParseError {
                    text: id.clone(),
                    reason: "leaving server id is not a number",
                })?;
                next.members.remove(&parsed);
            }
            for line in split(joining) {
                let member = ClusterMember::parse_line(&line)?;
                // A joiner needs its client address (ZooKeeper: "each server should have at
                // least 3 ports specified").
                if member.client.is_none() {
                    return Err(ConfigParseError {
                        text: line,
                        reason: "a joining server needs its client address after ';'",
                    });
                }
                next.members.insert(member.id, member);
            }
            next
        } else {
            let mut next = ClusterConfig::default();
            for line in split(new_members) {
                let member = ClusterMember::parse_line(&line)?;
                next.members.insert(member.id, member);
            }
            next
        };
        // ZooKeeper (standaloneEnabled, its default) wants at least two voters after a reconfig.
        if next.participants().count() < 2 {
            return Err(ConfigParseError {
                text: next.to_text(),
                reason: "the new membership must have at least two participants",
            });
        }
        next.version = self.version;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_as_written() {
        let line = "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456";
        let member = ClusterMember::parse_line(line).unwrap();
        assert_eq!(member.role, ClusterRole::Observer);
        assert_eq!(member.to_string(), line);
        let bare = ClusterMember::parse_line("server.1=localhost:2888:3888").unwrap();
        assert_eq!(bare.to_string(), "server.1=localhost:2888:3888:participant");
    }

    #[test]
    fn bad_lines_are_refused() {
        for line in [
            "some thing",
            "server.1=a:b:c",
            "server.0=a:1:2",
            "server.1=a:1:2:king",
            "server.1=a:1:2;x",
        ] {
            assert!(ClusterMember::parse_line(line).is_err(), "{line}");
        }
    }

    #[test]
    fn incremental_reconfig_adds_and_removes() {
        let config =
            ClusterConfig::parse("server.1=a:1:2\nserver.2=b:1:2\nversion=100000003").unwrap();
        assert_eq!(config.version, 0x1_0000_0003);
        let added = config
            .reconfigured("server.3=c:1:2:observer;2181", "", "")
            .unwrap();
        assert_eq!(added.observers().collect::<Vec<_>>(), vec![3]);
        let removed = added.reconfigured("", "3", "").unwrap();
        assert_eq!(removed.members.len(), 2);
        assert_eq!(
            added.reconfigured("", "9", "").unwrap(),
            added,
            "unknown leaver ignored"
        );
        assert!(
            config.reconfigured("server.3=c:1:2", "", "").is_err(),
            "joiner without client port"
        );
        assert!(
            config.reconfigured("", "1", "").is_err(),
            "fewer than two participants left"
        );
        let text = removed.to_text();
        assert!(text.ends_with("version=100000003"), "{text}");
    }
}
