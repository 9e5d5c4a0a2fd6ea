//! `setquota`, `listquota` and `delquota`, as zkCli 3.9 does them: a quota on `P` is the node
//! `/zookeeper/quota<P>/zookeeper_limits` holding ZooKeeper's `StatsTrack` text
//! (`count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3`), next to
//! `/zookeeper/quota<P>/zookeeper_stats`, which the server keeps up to date. Soft limits
//! (`-n`, `-b`) are only logged by the server; hard limits (`-N`, `-B`) make a create or
//! setData that would pass them fail with QuotaExceeded.

use std::io::Write;

use zookeeper_client::{Acls, Client, CreateMode, Error};

use super::format::keeper_error_message;
use super::session::CommandFailure;

/// Where quotas live (`Quotas.quotaZookeeper`).
pub(crate) const QUOTA_ROOT: &str = "/zookeeper/quota";
/// `Quotas.limitNode`.
const LIMIT_NODE: &str = "zookeeper_limits";
/// `Quotas.statNode`.
const STAT_NODE: &str = "zookeeper_stats";

/// One of the four limits of a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotaLimit {
    /// `-n`: soft limit on the number of nodes (logged).
    CountSoft,
    /// `-b`: soft limit on the bytes of data (logged).
    BytesSoft,
    /// `-N`: hard limit on the number of nodes (enforced).
    CountHard,
    /// `-B`: hard limit on the bytes of data (enforced).
    BytesHard,
}

impl QuotaLimit {
    /// Every limit with its option letter.
    pub(crate) const ALL: [(char, QuotaLimit); 4] = [
        ('n', QuotaLimit::CountSoft),
        ('b', QuotaLimit::BytesSoft),
        ('N', QuotaLimit::CountHard),
        ('B', QuotaLimit::BytesHard),
    ];

    /// Its key in the `StatsTrack` text.
    fn key(self) -> &'static str {
        match self {
            QuotaLimit::CountSoft => "count",
            QuotaLimit::BytesSoft => "bytes",
            QuotaLimit::CountHard => "countHardLimit",
            QuotaLimit::BytesHard => "byteHardLimit",
        }
    }
}

/// ZooKeeper's `StatsTrack`: `key=value` pairs, in the order first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatsTrack {
    values: Vec<(String, i64)>,
}

impl StatsTrack {
    /// A new quota: every limit unset (-1), as zkCli 3.9 starts one.
    pub(crate) fn unlimited() -> StatsTrack {
        let mut stats = StatsTrack { values: Vec::new() };
        for (_, limit) in QuotaLimit::ALL {
            stats.set(limit, -1);
        }
        stats
    }

    /// Reads the text of a limits or stats node: pairs separated by `,` or `;`, a pair being
    /// `key=value` (an empty value reads as -1, as ZooKeeper's does). `None` for text that is
    /// not such pairs.
    pub(crate) fn parse(text: &str) -> Option<StatsTrack> {
        let mut stats = StatsTrack { values: Vec::new() };
        for pair in text.split([',', ';']).filter(|pair| !pair.is_empty()) {
            let mut parts = pair.split('=');
            let key = parts.next()?;
            let value = parts.next()?;
            let value = if value.is_empty() {
                -1
            } else {
                value.parse().ok()?
            };
            stats.set_key(key, value);
        }
        Some(stats)
    }

    /// Sets one limit.
    pub(crate) fn set(&mut self, limit: QuotaLimit, value: i64) {
        self.set_key(limit.key(), value);
    }

    fn set_key(&mut self, key: &str, value: i64) {
        match self.values.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.values.push((key.to_owned(), value)),
        }
    }

    fn get(&self, key: &str) -> i64 {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map_or(-1, |(_, v)| *v)
    }

    /// `StatsTrack.toString()`: `count=..,bytes=..`, then `=` and `;key=value` for the other
    /// keys in sorted order.
    pub(crate) fn to_text(&self) -> String {
        let mut text = format!("count={},bytes={}", self.get("count"), self.get("bytes"));
        let mut others: Vec<&(String, i64)> = self
            .values
            .iter()
            .filter(|(key, _)| key != "count" && key != "bytes")
            .collect();
        if !others.is_empty() {
            others.sort_by(|a, b| a.0.cmp(&b.0));
            text.push('=');
            for (key, value) in others {
                text.push_str(&format!(";{key}={value}"));
            }
        }
        text
    }
}

fn operation(error: &Error, path: &str) -> CommandFailure {
    CommandFailure::Operation(keeper_error_message(error, Some(path)))
}

fn quota_node(path: &str) -> String {
    if path == "/" {
        QUOTA_ROOT.to_owned()
    } else {
        format!("{QUOTA_ROOT}{path}")
    }
}

/// Creates a persistent empty node, fine if it exists.
async fn ensure_node(client: &Client, path: &str) -> Result<(), CommandFailure> {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    match client.create(path, b"", &options).await {
        Ok(_) | Err(Error::NodeExists) => Ok(()),
        Err(error) => Err(operation(&error, path)),
    }
}

/// `setquota -n|-b|-N|-B val path`.
pub(crate) async fn set_quota(
    client: &Client,
    path: &str,
    limit: QuotaLimit,
    value: i64,
) -> Result<(), CommandFailure> {
    if path == "/" || path == QUOTA_ROOT || path.starts_with(&format!("{QUOTA_ROOT}/")) {
        return Err(CommandFailure::Operation(format!(
            "cannot set a quota on {path}"
        )));
    }
    match client.check_stat(path).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(CommandFailure::Operation(format!("{path} does not exist.")));
        }
        Err(error) => return Err(operation(&error, path)),
    }
    let own = quota_node(path);
    // A quota below this path, or above it, would overlap (zkCli refuses both).
    match client.list_children(&own).await {
        Ok(children) => {
            if let Some(child) = children.iter().find(|c| !c.starts_with("zookeeper_")) {
                return Err(CommandFailure::Operation(format!(
                    "{path} has child {child} which has a quota"
                )));
            }
        }
        Err(Error::NoNode) => {}
        Err(error) => return Err(operation(&error, &own)),
    }
    let mut ancestor = QUOTA_ROOT.to_owned();
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for component in &components[..components.len().saturating_sub(1)] {
        ancestor.push('/');
        ancestor.push_str(component);
        match client.check_stat(&format!("{ancestor}/{LIMIT_NODE}")).await {
            Ok(Some(_)) => {
                return Err(CommandFailure::Operation(format!(
                    "{path} has a parent {ancestor} which has a quota"
                )));
            }
            Ok(None) => {}
            Err(error) => return Err(operation(&error, &ancestor)),
        }
    }
    let mut node = QUOTA_ROOT.to_owned();
    for component in &components {
        node.push('/');
        node.push_str(component);
        ensure_node(client, &node).await?;
    }
    let limits_path = format!("{own}/{LIMIT_NODE}");
    let mut limits = StatsTrack::unlimited();
    limits.set(limit, value);
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    match client
        .create(&limits_path, limits.to_text().as_bytes(), &options)
        .await
    {
        Ok(_) => {}
        Err(Error::NodeExists) => {
            // A quota already: change this one limit and keep the others.
            let (data, stat) = client
                .get_data(&limits_path)
                .await
                .map_err(|error| operation(&error, &limits_path))?;
            let mut existing = StatsTrack::parse(&String::from_utf8_lossy(&data))
                .unwrap_or_else(StatsTrack::unlimited);
            existing.set(limit, value);
            client
                .set_data(
                    &limits_path,
                    existing.to_text().as_bytes(),
                    Some(stat.version),
                )
                .await
                .map_err(|error| operation(&error, &limits_path))?;
        }
        Err(error) => return Err(operation(&error, &limits_path)),
    }
    // The server counts the subtree when the stats node is created.
    let stats_path = format!("{own}/{STAT_NODE}");
    match client
        .create(&stats_path, b"count=0,bytes=0", &options)
        .await
    {
        Ok(_) | Err(Error::NodeExists) => Ok(()),
        Err(error) => Err(operation(&error, &stats_path)),
    }
}

/// `listquota path`.
pub(crate) async fn list_quota(
    client: &Client,
    path: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CommandFailure> {
    let own = quota_node(path);
    let limits_path = format!("{own}/{LIMIT_NODE}");
    writeln!(err, "absolute path is {limits_path}")?;
    let limits = match client.get_data(&limits_path).await {
        Ok((data, _)) => data,
        Err(Error::NoNode) => {
            writeln!(err, "quota for {path} does not exist.")?;
            return Ok(());
        }
        Err(error) => return Err(operation(&error, &limits_path)),
    };
    writeln!(out, "Output quota for {path} {}", normalized(&limits))?;
    let stats_path = format!("{own}/{STAT_NODE}");
    match client.get_data(&stats_path).await {
        Ok((stats, _)) => writeln!(out, "Output stat for {path} {}", normalized(&stats))?,
        Err(Error::NoNode) => writeln!(err, "quota for {path} does not exist.")?,
        Err(error) => return Err(operation(&error, &stats_path)),
    }
    Ok(())
}

/// The text as `StatsTrack` prints it, or as stored when it does not parse.
fn normalized(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    StatsTrack::parse(&text).map_or_else(|| text.to_string(), |stats| stats.to_text())
}

/// `delquota [-n|-b|-N|-B] path`: one limit back to unset, or the whole quota removed with
/// the quota nodes it leaves empty.
pub(crate) async fn del_quota(
    client: &Client,
    path: &str,
    limit: Option<QuotaLimit>,
    out: &mut dyn Write,
) -> Result<(), CommandFailure> {
    let own = quota_node(path);
    let limits_path = format!("{own}/{LIMIT_NODE}");
    let (data, stat) = match client.get_data(&limits_path).await {
        Ok(found) => found,
        Err(Error::NoNode) => {
            writeln!(out, "Quota does not exist for {path}")?;
            return Ok(());
        }
        Err(error) => return Err(operation(&error, &limits_path)),
    };
    if let Some(limit) = limit {
        let mut limits = StatsTrack::parse(&String::from_utf8_lossy(&data))
            .unwrap_or_else(StatsTrack::unlimited);
        limits.set(limit, -1);
        return client
            .set_data(
                &limits_path,
                limits.to_text().as_bytes(),
                Some(stat.version),
            )
            .await
            .map(|_| ())
            .map_err(|error| operation(&error, &limits_path));
    }
    for node in [LIMIT_NODE, STAT_NODE] {
        let node = format!("{own}/{node}");
        match client.delete(&node, None).await {
            Ok(()) | Err(Error::NoNode) => {}
            Err(error) => return Err(operation(&error, &node)),
        }
    }
    // Remove the quota parents nothing else needs, up to the quota root.
    let mut node = own;
    while node != QUOTA_ROOT && node.starts_with(QUOTA_ROOT) {
        match client.list_children(&node).await {
            Ok(children) if children.is_empty() => match client.delete(&node, None).await {
                Ok(()) | Err(Error::NoNode) | Err(Error::NotEmpty) => {}
                Err(error) => return Err(operation(&error, &node)),
            },
            Ok(_) | Err(Error::NoNode) => break,
            Err(error) => return Err(operation(&error, &node)),
        }
        match node.rfind('/') {
            Some(slash) => node.truncate(slash),
            None => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_quota_prints_as_zookeeper_3_9_writes_it() {
        let mut limits = StatsTrack::unlimited();
        limits.set(QuotaLimit::CountHard, 3);
        assert_eq!(
            limits.to_text(),
            "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3"
        );
        limits.set(QuotaLimit::CountSoft, 10);
        assert_eq!(
            limits.to_text(),
            "count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=3"
        );
    }

    #[test]
    fn stats_text_round_trips() {
        for text in [
            "count=1,bytes=0",
            "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3",
        ] {
            let parsed = StatsTrack::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(parsed.to_text(), text);
        }
        // A 3.4-style limits node has only the soft limits.
        let old = StatsTrack::parse("count=5,bytes=-1").unwrap_or_else(|| panic!("parse"));
        assert_eq!(old.to_text(), "count=5,bytes=-1");
        assert_eq!(StatsTrack::parse("count"), None);
        assert_eq!(StatsTrack::parse("count=x"), None);
    }
}
