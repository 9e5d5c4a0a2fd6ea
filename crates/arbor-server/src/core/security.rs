//! The core's part of "Secure arbor", kept out of the request pipeline's way: SASL outcomes
//! from connection tasks, the per-connection watch limit, the child-listing limit, the memory
//! budget that refuses growing writes, soft-quota log lines and the audit log.

use std::time::{Duration, Instant};

use arbor_proto::{ErrorCode, Id, MultiOp, Request, Response, SetSaslResponse};
use arbor_tree::{Command, Txn};
use tracing::{info, warn};

use super::*;
use crate::audit::AuditLog;
use crate::limits::{BudgetLevel, MemoryUse, budget_level};
use crate::outbound::Outbound;
use crate::watches::{ConnectionId, WatchKind};

/// Soft-quota lines at most this often (ZooKeeper rate-limits them too).
const SOFT_QUOTA_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What a connection task's SASL step produced.
#[derive(Debug)]
pub(crate) enum SaslOutcome {
    /// Send this challenge; the exchange goes on.
    Continue(bytes::Bytes),
    /// Send this final token; the connection gains the identities.
    Authenticated {
        token: bytes::Bytes,
        identities: Vec<Id>,
    },
    /// Answer AuthFailed and close, as ZooKeeper does.
    Failed,
}

/// Security bookkeeping of the core.
pub(crate) struct SecurityState {
    audit: Option<AuditLog>,
    memory_level: BudgetLevel,
    soft_quota_logged: Option<Instant>,
    /// Writes refused by the memory budget, watches refused by the per-connection limit and
    /// listings refused by the size limit since start (`mntr`).
    pub(crate) refused_by_memory_budget: u64,
    pub(crate) refused_watches: u64,
    pub(crate) refused_listings: u64,
}

impl SecurityState {
    pub(crate) fn new(config: &ServerConfig) -> SecurityState {
        let audit = config.audit_enabled.then(|| {
            AuditLog::open(config.audit_log_file.as_deref()).unwrap_or_else(|error| {
                warn!(%error, "audit log file cannot be opened; auditing to the log only");
                // Opening without a file cannot fail.
                AuditLog::open(None).unwrap_or_else(|_| unreachable!())
            })
        });
        SecurityState {
            audit,
            memory_level: BudgetLevel::Normal,
            soft_quota_logged: None,
            refused_by_memory_budget: 0,
            refused_watches: 0,
            refused_listings: 0,
        }
    }

    /// Audit lines dropped because the file writer fell behind.
    pub(crate) fn audit_dropped(&self) -> u64 {
        self.audit.as_ref().map_or(0, AuditLog::dropped)
    }
}

impl Core {
    /// A SASL step's outcome, answered in the connection's reply stream.
    pub(super) fn on_sasl(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        received: Instant,
        outcome: SaslOutcome,
    ) {
        let zxid = self.tree.last_applied_zxid().0;
        match outcome {
            SaslOutcome::Continue(token) => {
                let response = Response::Sasl(SetSaslResponse { token });
                self.reply(connection, xid, zxid, Ok(response), received);
            }
            SaslOutcome::Authenticated { token, identities } => {
                self.add_identities(connection, identities);
                let response = Response::Sasl(SetSaslResponse { token });
                self.reply(connection, xid, zxid, Ok(response), received);
            }
            SaslOutcome::Failed => {
                self.reply(connection, xid, zxid, Err(ErrorCode::AuthFailed), received);
                self.send(connection, Outbound::Close);
            }
        }
    }

    /// Whether `connection` may set one more watch of `kind` on `path` (one it holds already
    /// is free). Logs and counts a refusal.
    pub(crate) fn watch_allowed(
        &mut self,
        connection: ConnectionId,
        path: &str,
        kind: WatchKind,
    ) -> bool {
        self.watches_allowed(connection, 1) || self.watches.contains(connection, path, kind)
    }

    /// Whether `connection` may set `count` more watches.
    pub(crate) fn watches_allowed(&mut self, connection: ConnectionId, count: usize) -> bool {
        let limit = self.config.watches_per_connection_max as usize;
        let held = self.watches.connection_watch_count(connection);
        if limit == 0 || held.saturating_add(count) <= limit {
            return true;
        }
        self.security.refused_watches += 1;
        let peer = self.connections.get(&connection).map(|c| c.peer);
        warn!(
            ?peer,
            held, limit, "watch refused: connection at watches_per_connection_max (ThrottledOp)"
        );
        false
    }

    /// Whether a child listing of these names may be sent (its encoded size within
    /// `children_listing_bytes_max`). Logs and counts a refusal.
    pub(crate) fn listing_allowed(&mut self, path: &str, children: &[String]) -> bool {
        let limit = u64::from(self.config.children_listing_bytes_max);
        if limit == 0 {
            return true;
        }
        let bytes: u64 = children.iter().map(|c| c.len() as u64 + 4).sum::<u64>() + 4;
        if bytes <= limit {
            return true;
        }
        self.security.refused_listings += 1;
        warn!(
            path,
            children = children.len(),
            bytes,
            limit,
            "child listing refused: over children_listing_bytes_max (ThrottledOp)"
        );
        false
    }

    /// The memory the budget is measured on.
    pub(crate) fn memory_use(&self) -> MemoryUse {
        let stats = self.tree.stats();
        MemoryUse {
            nodes: stats.node_count as u64,
            data_bytes: stats.approximate_data_size_bytes.max(0) as u64,
            sessions: stats.session_count as u64,
            watches: self.watches.watch_count() as u64,
            connections: self.connections.len() as u64,
        }
    }

    /// Whether the memory budget refuses this request: past 100 %, writes that would grow
    /// the state (creates, setData with more bytes, multis holding either) are answered
    /// ThrottledOp; reads, deletes and session closes go on. Logs crossings of 80 % and 100 %.
    pub(super) fn memory_budget_refuses(&mut self, request: &Request) -> bool {
        let budget = self.config.memory_budget_bytes;
        if budget == 0 {
            return false;
        }
        let used = self.memory_use().estimate_bytes();
        let level = budget_level(used, budget);
        if level != self.security.memory_level {
            match level {
                BudgetLevel::Exceeded => warn!(
                    used,
                    budget,
                    "memory budget exceeded: writes that grow the state are refused (ThrottledOp)"
                ),
                BudgetLevel::Warning => {
                    warn!(used, budget, "memory use past 80% of memory_budget_bytes")
                }
                BudgetLevel::Normal => info!(
                    used,
                    budget, "memory use back under 80% of memory_budget_bytes"
                ),
            }
            self.security.memory_level = level;
        }
        if level != BudgetLevel::Exceeded || !self.grows_state(request) {
            return false;
        }
        self.security.refused_by_memory_budget += 1;
        true
    }

    /// The budget's current level, for `mntr`.
    pub(crate) fn memory_level(&self) -> BudgetLevel {
        budget_level(
            self.memory_use().estimate_bytes(),
            self.config.memory_budget_bytes,
        )
    }

    fn grows_state(&self, request: &Request) -> bool {
        let grows_data = |path: &str, data: Option<&bytes::Bytes>| {
            let new = data.map_or(0, |d| d.len());
            self.tree
                .exists(path)
                .map_or(true, |stat| new > stat.data_length.max(0) as usize)
        };
        match request {
            Request::Create(_)
            | Request::Create2(_)
            | Request::CreateContainer(_)
            | Request::CreateTtl(_) => true,
            Request::SetData(r) => grows_data(&r.path, r.data.as_ref()),
            Request::Multi(r) => r.ops.iter().any(|op| match op {
                MultiOp::Create(_)
                | MultiOp::Create2(_)
                | MultiOp::CreateContainer(_)
                | MultiOp::CreateTtl(_) => true,
                MultiOp::SetData(r) => grows_data(&r.path, r.data.as_ref()),
                _ => false,
            }),
            _ => false,
        }
    }

    /// After an entry is applied: soft quotas past their limit are logged (rate-limited), and
    /// the writes this server answers are audited.
    pub(super) fn after_apply(
        &mut self,
        txn: &Txn,
        result: &Result<Response, ErrorCode>,
        triggers: &[arbor_tree::WatchTrigger],
        answered_here: bool,
    ) {
        if answered_here && let Some(audit) = &self.security.audit {
            audit.record(&txn.command, result);
        }
        if !matches!(txn.command, Command::Request { .. }) || result.is_err() {
            return;
        }
        let due = self
            .security
            .soft_quota_logged
            .is_none_or(|at| at.elapsed() >= SOFT_QUOTA_LOG_INTERVAL);
        if !due {
            return;
        }
        for trigger in triggers {
            if let Some(excess) = self.tree.quota_soft_excess(&trigger.path) {
                warn!(
                    quota = %excess.quota_path,
                    kind = ?excess.kind,
                    current = excess.current,
                    limit = excess.limit,
                    "Quota exceeded (soft limit; the write went through)"
                );
                self.security.soft_quota_logged = Some(Instant::now());
                break;
            }
        }
    }
}
