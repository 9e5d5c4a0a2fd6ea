//! Quota accounting, as ZooKeeper 3.9's `DataTree` keeps it (`Quotas.java`,
//! `StatsTrack.java`, `PathTrie.java`): a node `/zookeeper/quota<P>/zookeeper_limits` puts a
//! quota on `P`; the node `/zookeeper/quota<P>/zookeeper_stats` then holds
//! `count=<nodes>,bytes=<data bytes>` of the subtree at `P`, updated by every create, delete
//! and setData below `P` (of the deepest quota'd prefix). The stats node's data changes
//! without a version bump or a watch event, as in ZooKeeper.
//!
//! Enforcement (`ZooKeeperServer.checkQuota`, 3.9), with [`TreeConfig::quota_enforced`]: a
//! create or setData below `P` that would take `P`'s count or bytes past its hard limit
//! (`countHardLimit`, `byteHardLimit`) fails with QuotaExceeded, checked in apply so every
//! replica decides alike. A soft limit (`count`, `bytes`) is only compared when no hard limit
//! of that kind is set, and never fails: the server logs it ([`DataTree::quota_soft_excess`]).
//!
//! [`TreeConfig::quota_enforced`]: crate::TreeConfig::quota_enforced
//! [`DataTree::quota_soft_excess`]: crate::DataTree::quota_soft_excess

use std::sync::Arc;

use crate::node::{KeyRef, stored_data};
use crate::state::State;

/// `Quotas.quotaZookeeper`.
pub(crate) const QUOTA_ROOT: &str = "/zookeeper/quota";
/// `Quotas.limitNode`.
pub(crate) const LIMIT_NODE: &str = "zookeeper_limits";
/// `Quotas.statNode`.
pub(crate) const STAT_NODE: &str = "zookeeper_stats";

/// The quota'd path a node under `/zookeeper/quota` speaks for: `/a/b` for a parent
/// `/zookeeper/quota/a/b` (`Quotas.trimQuotaPath`). ZooKeeper trims any parent that merely
/// starts with the quota root's text (and fails on some); we only take real descendants.
fn quota_path_of(parent: &str) -> Option<&str> {
    parent
        .strip_prefix(QUOTA_ROOT)
        .filter(|rest| rest.starts_with('/'))
}

impl State {
    /// The deepest quota'd path that is `path` or an ancestor of it, never the root
    /// (`DataTree.getMaxPrefixWithQuota` over `PathTrie.findMaxPrefix`).
    fn quota_prefix(&self, path: &str) -> Option<Arc<str>> {
        if self.quotas.is_empty() {
            return None;
        }
        let mut candidate = path;
        loop {
            if candidate.len() > 1
                && let Some(found) = self.quotas.get(candidate)
            {
                return Some(found.clone());
            }
            let (parent, _) = crate::path::split_last_slash(candidate)?;
            if parent.is_empty() {
                return None;
            }
            candidate = parent;
        }
    }

    /// The limits and current stats of the quota governing `path`, if any.
    fn quota_of(&self, path: &str) -> Option<(Arc<str>, StatsTrack, StatsTrack)> {
        let prefix = self.quota_prefix(path)?;
        let limits = self.get(&format!("{QUOTA_ROOT}{prefix}/{LIMIT_NODE}"))?;
        let limits = StatsTrack::parse(limits.data())?;
        let stats = self.get(&format!("{QUOTA_ROOT}{prefix}/{STAT_NODE}"))?;
        let stats = StatsTrack::parse(stats.data())?;
        Some((prefix, limits, stats))
    }

    /// `ZooKeeperServer.checkQuota`'s hard-limit half: QuotaExceeded when adding
    /// `count_diff` nodes and `bytes_diff` bytes below the quota governing `path` passes a hard
    /// limit. A quota whose nodes are missing or unparsable limits nothing, as in ZooKeeper.
    pub(crate) fn check_hard_quota(
        &self,
        path: &str,
        bytes_diff: i64,
        count_diff: i64,
    ) -> Result<(), arbor_proto::ErrorCode> {
        let Some((_, limits, stats)) = self.quota_of(path) else {
            return Ok(());
        };
        let count_hard = limits.get(COUNT_HARD_LIMIT);
        if count_diff != 0
            && count_hard > -1
            && stats.get("count").saturating_add(count_diff) > count_hard
        {
            return Err(arbor_proto::ErrorCode::QuotaExceeded);
        }
        let bytes_hard = limits.get(BYTE_HARD_LIMIT);
        if bytes_diff != 0
            && bytes_hard > -1
            && stats.get("bytes").saturating_add(bytes_diff) > bytes_hard
        {
            return Err(arbor_proto::ErrorCode::QuotaExceeded);
        }
        Ok(())
    }

    /// The soft limit the subtree of `path`'s quota is past, if any (soft limits apply only
    /// where no hard limit of the same kind is set).
    pub(crate) fn quota_soft_excess(&self, path: &str) -> Option<QuotaExcess> {
        let (prefix, limits, stats) = self.quota_of(path)?;
        let over = |soft: &str, hard: &str, current: &str| {
            let limit = limits.get(soft);
            let value = stats.get(current);
            (limit > -1 && limits.get(hard) <= -1 && value > limit).then_some((value, limit))
        };
        if let Some((current, limit)) = over("count", COUNT_HARD_LIMIT, "count") {
            return Some(QuotaExcess {
                quota_path: prefix.to_string(),
                kind: QuotaKind::Count,
                current,
                limit,
            });
        }
        over("bytes", BYTE_HARD_LIMIT, "bytes").map(|(current, limit)| QuotaExcess {
            quota_path: prefix.to_string(),
            kind: QuotaKind::Bytes,
            current,
            limit,
        })
    }

    /// After a node is created (`DataTree.createNode`'s tail).
    pub(crate) fn quota_after_create(
        &mut self,
        parent: &str,
        name: &str,
        path: &str,
        data_len: usize,
    ) {
        if let Some(quota_path) = quota_path_of(parent) {
            if name == LIMIT_NODE {
                self.quotas.insert(Arc::from(quota_path));
            }
            if name == STAT_NODE {
                let (count, bytes) = self.subtree_counts(quota_path);
                let stats = StatsTrack::counts(count, bytes);
                self.replace_stats_data(quota_path, stats.to_text().as_bytes());
            }
        }
        if let Some(prefix) = self.quota_prefix(path) {
            self.update_quota_stat(&prefix, data_len as i64, 1);
        }
    }

    /// After a node is deleted (`DataTree.deleteNode`'s tail).
    pub(crate) fn quota_after_delete(
        &mut self,
        parent: &str,
        name: &str,
        path: &str,
        data_len: usize,
    ) {
        if name == LIMIT_NODE
            && let Some(quota_path) = quota_path_of(parent)
        {
            // PathTrie.deletePath drops the trie node with everything below it.
            let below = format!("{quota_path}/");
            let doomed: Vec<Arc<str>> = self
                .quotas
                .iter()
                .filter(|q| &***q == quota_path || q.starts_with(&below))
                .cloned()
                .collect();
            for quota in doomed {
                self.quotas.remove(&quota);
            }
        }
        if let Some(prefix) = self.quota_prefix(path) {
            self.update_quota_stat(&prefix, -(data_len as i64), -1);
        }
    }

    /// After a node's data changed (`DataTree.setData`).
    pub(crate) fn quota_after_set_data(&mut self, path: &str, old_len: usize, new_len: usize) {
        if let Some(prefix) = self.quota_prefix(path) {
            self.update_quota_stat(&prefix, new_len as i64 - old_len as i64, 0);
        }
    }

    /// `DataTree.updateQuotaStat`. Stats data ZooKeeper could not parse would throw there;
    /// we leave it as it is.
    fn update_quota_stat(&mut self, quota_path: &str, bytes_diff: i64, count_diff: i64) {
        let stat_path = format!("{QUOTA_ROOT}{quota_path}/{STAT_NODE}");
        let Some(node) = self.get(&stat_path) else {
            return;
        };
        let Some(mut stats) = StatsTrack::parse(node.data()) else {
            return;
        };
        stats.add("count", count_diff);
        stats.add("bytes", bytes_diff);
        self.replace_stats_data(quota_path, stats.to_text().as_bytes());
    }

    fn replace_stats_data(&mut self, quota_path: &str, data: &[u8]) {
        let stat_path = format!("{QUOTA_ROOT}{quota_path}/{STAT_NODE}");
        let Some(key) = KeyRef::of_path(&stat_path) else {
            return;
        };
        let Some(node) = self.nodes.get_mut(&key).map(Arc::make_mut) else {
            return;
        };
        self.data_size += data.len() as i64 - node.data().len() as i64;
        node.data = stored_data(data);
        node.data_null = false;
    }

    /// Nodes and data bytes of the subtree at `path`, itself included (`DataTree.getCounts`).
    fn subtree_counts(&self, path: &str) -> (i64, i64) {
        let Some(node) = self.get(path) else {
            return (0, 0);
        };
        let mut count = 1;
        let mut bytes = node.data().len() as i64;
        let mut tally = |node: &crate::node::Znode| {
            count += 1;
            bytes += node.data().len() as i64;
        };
        for (_, child) in self.children(path) {
            tally(child);
        }
        let below = format!("{path}/");
        for (_, node) in self
            .nodes
            .range(KeyRef::first_child_of(&below)..)
            .take_while(|(key, _)| key.parent.starts_with(&below))
        {
            tally(node);
        }
        (count, bytes)
    }
}

/// `StatsTrack`'s key of the hard node-count limit.
const COUNT_HARD_LIMIT: &str = "countHardLimit";
/// `StatsTrack`'s key of the hard byte limit.
const BYTE_HARD_LIMIT: &str = "byteHardLimit";

/// Which quota a subtree is past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaKind {
    /// The number of nodes (`-n`).
    Count,
    /// The bytes of data (`-b`).
    Bytes,
}

/// A subtree past its soft quota (for the server's log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaExcess {
    /// The quota'd path.
    pub quota_path: String,
    /// Count or bytes.
    pub kind: QuotaKind,
    /// The subtree's current count or bytes.
    pub current: i64,
    /// The soft limit.
    pub limit: i64,
}

/// ZooKeeper's `StatsTrack`: `key=value` pairs separated by `,` or `;`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StatsTrack {
    /// In insertion order; a later duplicate key replaces the earlier value.
    values: Vec<(String, i64)>,
}

impl StatsTrack {
    fn counts(count: i64, bytes: i64) -> StatsTrack {
        StatsTrack {
            values: vec![("bytes".into(), bytes), ("count".into(), count)],
        }
    }

    /// `new StatsTrack(String)`; `None` where Java would throw.
    pub(crate) fn parse(data: &[u8]) -> Option<StatsTrack> {
        let text = String::from_utf8_lossy(data);
        let mut stats = StatsTrack { values: Vec::new() };
        if text.is_empty() {
            return Some(stats);
        }
        // Pattern.split("[,;]+"): runs of separators split once; trailing empties dropped
        // (all of them: "," splits into nothing). The text is not empty here.
        let mut pairs: Vec<&str> = text.split([',', ';']).collect();
        while pairs.last() == Some(&"") {
            pairs.pop();
        }
        let mut index = 0;
        while index < pairs.len() {
            let pair = pairs[index];
            index += 1;
            if pair.is_empty() && index > 1 {
                continue; // inside a run of separators
            }
            let parts = crate::auth::java_split(pair, '=');
            let value = parts.get(1)?;
            let value = if value.is_empty() { "-1" } else { value };
            stats.set(parts[0], java_parse_long(value)?);
        }
        Some(stats)
    }

    fn get(&self, key: &str) -> i64 {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map_or(-1, |(_, v)| *v)
    }

    fn set(&mut self, key: &str, value: i64) {
        match self.values.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.values.push((key.to_owned(), value)),
        }
    }

    fn add(&mut self, key: &str, diff: i64) {
        let value = self.get(key).wrapping_add(diff);
        self.set(key, value);
    }

    /// `StatsTrack.toString()`: `count=..,bytes=..`, then `=` and `;key=value` for the other
    /// keys in sorted order.
    pub(crate) fn to_text(&self) -> String {
        let mut text = format!("count={},bytes={}", self.get("count"), self.get("bytes"));
        let mut others: Vec<&(String, i64)> = self
            .values
            .iter()
            .filter(|(k, _)| k != "count" && k != "bytes")
            .collect();
        if !others.is_empty() {
            others.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            text.push('=');
            for (key, value) in others {
                text.push_str(&format!(";{key}={value}"));
            }
        }
        text
    }
}

/// Java's `Long.parseLong`.
fn java_parse_long(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(rest) = text.strip_prefix('+') {
        return rest.parse().ok();
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_text_round_trips_like_java() {
        let stats = StatsTrack::parse(b"count=3,bytes=10").unwrap();
        assert_eq!((stats.get("count"), stats.get("bytes")), (3, 10));
        assert_eq!(stats.to_text(), "count=3,bytes=10");
        let limits =
            StatsTrack::parse(b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5").unwrap();
        assert_eq!(limits.get("countHardLimit"), 5);
        assert_eq!(
            limits.to_text(),
            "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5"
        );
        assert_eq!(
            StatsTrack::parse(b"").unwrap().to_text(),
            "count=-1,bytes=-1"
        );
        assert_eq!(
            StatsTrack::parse(b"count==5,bytes=+2").unwrap().to_text(),
            "count=-1,bytes=2"
        );
        assert_eq!(
            StatsTrack::parse(b"count=1,,;bytes=2,").unwrap().to_text(),
            "count=1,bytes=2"
        );
        assert_eq!(
            StatsTrack::parse(b",;").unwrap().to_text(),
            "count=-1,bytes=-1"
        );
        for bad in [
            &b"count"[..],
            b"count=x",
            b",count=1",
            b"count=1,bytes",
            b"=",
        ] {
            assert_eq!(
                StatsTrack::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn quota_paths_are_real_descendants_of_the_quota_root() {
        assert_eq!(quota_path_of("/zookeeper/quota/a/b"), Some("/a/b"));
        assert_eq!(quota_path_of("/zookeeper/quota"), None);
        assert_eq!(quota_path_of("/zookeeper/quotas/a"), None);
        assert_eq!(quota_path_of("/a"), None);
    }
}
