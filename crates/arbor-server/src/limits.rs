//! Limits against hostile or broken clients that need more than a number in the config:
//!
//! - the outbound queue of a connection, bounded in messages *and bytes* (a client that does
//!   not read its socket while watches fire must not grow the server's memory: past either
//!   bound the core closes the connection — not the session — with a log line);
//! - the memory budget for the data tree and the session/watch tables, estimated from their
//!   counts: past 80 % a metric and a warning, past 100 % writes that would grow the state are
//!   refused (ThrottledOp) while reads, deletes and session closes go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arbor_proto::{OpResult, Response};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::outbound::Outbound;

/// Bytes of bookkeeping a queued message costs besides its payload (the enum, the channel
/// slot, the header the writer adds).
const MESSAGE_OVERHEAD_BYTES: u64 = 96;
/// Estimated bytes a znode costs besides its path and data (node struct, map entry, stat,
/// ACL reference, Arc).
pub(crate) const NODE_OVERHEAD_BYTES: u64 = 256;
/// Estimated bytes one session costs (table entries on both sides, password, liveness).
pub(crate) const SESSION_OVERHEAD_BYTES: u64 = 512;
/// Estimated bytes one watch costs (both indexes, the path copy).
pub(crate) const WATCH_OVERHEAD_BYTES: u64 = 160;
/// Estimated bytes one connection costs (buffers, queues, task).
pub(crate) const CONNECTION_OVERHEAD_BYTES: u64 = 64 * 1024;

/// The core's end of a connection's outbound queue.
#[derive(Debug, Clone)]
pub(crate) struct OutboundSender {
    sender: mpsc::Sender<Outbound>,
    queued_bytes: Arc<AtomicU64>,
    queued_bytes_max: u64,
}

/// The writer task's end.
#[derive(Debug)]
pub(crate) struct OutboundReceiver {
    receiver: mpsc::Receiver<Outbound>,
    queued_bytes: Arc<AtomicU64>,
}

/// A queue of at most `messages_max` messages and about `bytes_max` bytes (0: no byte bound).
pub(crate) fn outbound_queue(
    messages_max: u32,
    bytes_max: u64,
) -> (OutboundSender, OutboundReceiver) {
    let (sender, receiver) = mpsc::channel(messages_max.max(1) as usize);
    let queued_bytes = Arc::new(AtomicU64::new(0));
    (
        OutboundSender {
            sender,
            queued_bytes: queued_bytes.clone(),
            queued_bytes_max: bytes_max,
        },
        OutboundReceiver {
            receiver,
            queued_bytes,
        },
    )
}

impl OutboundSender {
    /// Queues a message without waiting. `Full` when either bound would be passed (a
    /// [`Outbound::Close`] is always let through so a refusal can still be sent).
    // The error hands the message back as tokio's does, so callers match it the same way.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_send(&self, message: Outbound) -> Result<(), TrySendError<Outbound>> {
        let bytes = approximate_bytes(&message);
        let queued = self.queued_bytes.load(Ordering::Acquire);
        let closing = matches!(message, Outbound::Close);
        if !closing
            && self.queued_bytes_max > 0
            && queued.saturating_add(bytes) > self.queued_bytes_max
        {
            return Err(TrySendError::Full(message));
        }
        self.sender.try_send(message)?;
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        Ok(())
    }

    /// Bytes queued and not yet taken by the writer.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> u64 {
        self.queued_bytes.load(Ordering::Acquire)
    }
}

impl OutboundReceiver {
    /// The next message, waiting for one.
    pub(crate) async fn recv(&mut self) -> Option<Outbound> {
        let message = self.receiver.recv().await?;
        self.taken(&message);
        Some(message)
    }

    /// The next message if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Outbound> {
        let message = self.receiver.try_recv().ok()?;
        self.taken(&message);
        Some(message)
    }

    fn taken(&self, message: &Outbound) {
        let bytes = approximate_bytes(message);
        // Never below zero even if estimates disagreed (they cannot: same function).
        let _ = self
            .queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                Some(queued.saturating_sub(bytes))
            });
    }
}

/// About how many bytes a queued message holds (payload sizes plus a fixed overhead).
pub(crate) fn approximate_bytes(message: &Outbound) -> u64 {
    let payload = match message {
        Outbound::Reply { result, .. } => match result {
            Ok(response) => response_bytes(response),
            Err(_) => 0,
        },
        Outbound::Event { event, .. } => event.path.len() as u64,
        Outbound::Close => 0,
    };
    MESSAGE_OVERHEAD_BYTES + payload
}

const STAT_BYTES: u64 = 80;

fn strings_bytes<'a>(strings: impl IntoIterator<Item = &'a String>) -> u64 {
    strings.into_iter().map(|s| s.len() as u64 + 4 + 24).sum()
}

fn response_bytes(response: &Response) -> u64 {
    match response {
        Response::Empty | Response::AddWatch(_) | Response::GetAllChildrenNumber(_) => 0,
        Response::Create(r) => r.path.len() as u64,
        Response::Create2(r) => r.path.len() as u64 + STAT_BYTES,
        Response::Exists(_) | Response::SetData(_) | Response::SetAcl(_) => STAT_BYTES,
        Response::GetData(r) => r.data.as_ref().map_or(0, |d| d.len() as u64) + STAT_BYTES,
        Response::GetAcl(r) => {
            STAT_BYTES + r.acl.iter().map(|a| 48 + a.id.id.len() as u64).sum::<u64>()
        }
        Response::GetChildren(r) => strings_bytes(&r.children),
        Response::GetChildren2(r) => strings_bytes(&r.children) + STAT_BYTES,
        Response::Sync(r) => r.path.len() as u64,
        Response::GetEphemerals(r) => strings_bytes(&r.ephemerals),
        Response::WhoAmI(r) => r.client_info.iter().map(|c| 48 + c.user.len() as u64).sum(),
        Response::Sasl(r) => r.token.len() as u64,
        Response::Multi(r) => r
            .results
            .iter()
            .map(|result| {
                16 + match result {
                    OpResult::Create { path, stat } => {
                        path.len() as u64 + stat.map_or(0, |_| STAT_BYTES)
                    }
                    OpResult::SetData { .. } => STAT_BYTES,
                    OpResult::GetChildren { children } => strings_bytes(children),
                    OpResult::GetData { data, .. } => {
                        data.as_ref().map_or(0, |d| d.len() as u64) + STAT_BYTES
                    }
                    _ => 0,
                }
            })
            .sum(),
    }
}

/// What the memory budget is measured on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemoryUse {
    pub(crate) nodes: u64,
    /// Path and data bytes (ZooKeeper's approximate data size).
    pub(crate) data_bytes: u64,
    pub(crate) sessions: u64,
    pub(crate) watches: u64,
    pub(crate) connections: u64,
}

impl MemoryUse {
    /// The estimate in bytes.
    pub(crate) fn estimate_bytes(&self) -> u64 {
        self.nodes
            .saturating_mul(NODE_OVERHEAD_BYTES)
            .saturating_add(self.data_bytes)
            .saturating_add(self.sessions.saturating_mul(SESSION_OVERHEAD_BYTES))
            .saturating_add(self.watches.saturating_mul(WATCH_OVERHEAD_BYTES))
            .saturating_add(self.connections.saturating_mul(CONNECTION_OVERHEAD_BYTES))
    }
}

/// Where the estimate stands against the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BudgetLevel {
    /// Below 80 %.
    Normal,
    /// 80 % or more: warn and report.
    Warning,
    /// Over 100 %: refuse growth.
    Exceeded,
}

/// The level of `used` bytes against `budget` bytes (0: no budget).
pub(crate) fn budget_level(used: u64, budget: u64) -> BudgetLevel {
    if budget == 0 {
        BudgetLevel::Normal
    } else if used > budget {
        BudgetLevel::Exceeded
    } else if used.saturating_mul(5) >= budget.saturating_mul(4) {
        BudgetLevel::Warning
    } else {
        BudgetLevel::Normal
    }
}

/// The resident set size of this process in bytes, from `/proc/self/statm` (Linux); 0 where
/// unknown. For `mntr` and the tests that measure the slow-reader bound.
pub fn resident_set_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_proto::WatcherEvent;

    fn event(path_len: usize) -> Outbound {
        Outbound::Event {
            zxid: 1,
            event: WatcherEvent {
                event_type: 3,
                state: 3,
                path: "x".repeat(path_len),
            },
        }
    }

    #[tokio::test]
    async fn byte_bound_refuses_before_message_bound_and_frees_on_receive() {
        let (sender, mut receiver) = outbound_queue(1000, 1000);
        let one = approximate_bytes(&event(100));
        let fits = 1000 / one;
        for _ in 0..fits {
            sender.try_send(event(100)).unwrap();
        }
        assert!(matches!(
            sender.try_send(event(100)),
            Err(TrySendError::Full(_))
        ));
        // A close always gets through, so the refusal reaches the client.
        sender.try_send(Outbound::Close).unwrap();
        assert!(receiver.recv().await.is_some());
        while receiver.try_recv().is_some() {}
        sender.try_send(event(100)).unwrap();
        while receiver.try_recv().is_some() {}
        assert_eq!(sender.queued_bytes(), 0);
    }

    #[test]
    fn budget_levels() {
        assert_eq!(budget_level(79, 100), BudgetLevel::Normal);
        assert_eq!(budget_level(80, 100), BudgetLevel::Warning);
        assert_eq!(budget_level(100, 100), BudgetLevel::Warning);
        assert_eq!(budget_level(101, 100), BudgetLevel::Exceeded);
        assert_eq!(budget_level(u64::MAX, 0), BudgetLevel::Normal);
    }
}
