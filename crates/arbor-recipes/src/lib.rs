//! ZooKeeper coordination recipes for Rust, with node layouts compatible with Apache
//! Curator's, so Java and Rust processes can share one lock, one election or one queue.
//!
//! Built on the `zookeeper-client` crate: the recipes work against arbor and against any
//! ZooKeeper 3.6+ (persistent watches are needed by the caches).
//!
//! | recipe | Curator counterpart | layout under the recipe's path |
//! |---|---|---|
//! | [`Mutex`] | `InterProcessMutex` | `_c_<uuid>-lock-<seq>` |
//! | [`ReadWriteLock`] | `InterProcessReadWriteLock` | `_c_<uuid>-__READ__<seq>`, `_c_<uuid>-__WRIT__<seq>` |
//! | [`Semaphore`] | `InterProcessSemaphoreV2` | `locks/…`, `leases/_c_<uuid>-lease-<seq>` |
//! | [`LeaderLatch`] | `LeaderLatch` | `_c_<uuid>-latch-<seq>` holding the id |
//! | [`LeaderSelector`] | `LeaderSelector` | `_c_<uuid>-lock-<seq>` holding the id |
//! | [`Barrier`], [`DoubleBarrier`] | `DistributedBarrier`, `DistributedDoubleBarrier` | the node; `<uuid>` children and `ready` |
//! | [`DistributedQueue`], [`PriorityQueue`] | `DistributedQueue`, `DistributedPriorityQueue` | `queue-<seq>`, `queue-<priority><seq>` |
//! | [`SharedCounter`] | `SharedCount` | 4-byte big-endian value |
//! | [`NodeCache`], [`TreeCache`] | `NodeCache`, `CuratorCache` | (reads any node) |
//! | [`ServiceDiscovery`] | x-discovery `ServiceDiscovery` | `<name>/<id>` with `ServiceInstance` JSON |
//!
//! # Losing what you hold
//! Everything held (a lock, a lease, leadership) is an ephemeral node of the session. Each
//! holder gets a [`HoldWatch`] that turns [`Hold::Suspended`] the instant the client loses
//! its connection and [`Hold::Lost`] when the session ends or the node is deleted. The client
//! gives up a silent connection after 2/5 of the session timeout while the server expires a
//! session only after all of it, so a holder that stops acting on `Suspended` has stopped
//! before anyone else can be granted what it held. When the session ends the client is
//! finished (`zookeeper-client` does not start a new session by itself): make a new client.
//!
//! This protects against lost connections, not against the holder's own process being paused
//! (a long GC-like stall, SIGSTOP): a paused process learns nothing until it runs again, and
//! may then act once before it notices. Guard writes that must never come from a stale holder
//! with a fence the server checks, e.g. a `multi` that checks the holder's lock node
//! (`zookeeper_client::Client::new_check_writer` on [`Mutex::lock_path`]).
//!
//! # Connection loss
//! Idempotent requests (reads, deletes, creates of fixed paths) are retried. Creates of
//! sequential nodes use Curator's protected names (`_c_<uuid>-`), so a create whose reply was
//! lost is found again, never made twice. Writes that cannot be made idempotent (a queue put,
//! a compare-and-set) report [`RecipeError::Indeterminate`] rather than risk applying twice.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use arbor_recipes::{Hold, Mutex};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = zookeeper_client::Client::connect("127.0.0.1:2181").await?;
//! let mut lock = Mutex::new(&client, "/app/locks/report")?;
//! if lock.try_acquire(Duration::from_secs(5)).await? {
//!     let mut hold = lock.hold_watch().ok_or("held without a watch")?;
//!     tokio::select! {
//!         _ = tokio::time::sleep(Duration::from_millis(100)) => { /* the guarded work */ }
//!         state = hold.not_held() => assert_ne!(state, Hold::Held), // stop at once
//!     }
//!     lock.release().await?;
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod barrier;
mod cache;
mod contend;
mod counter;
mod discovery;
mod error;
mod hold;
mod latch;
mod lock;
mod nodes;
mod queue;
mod rwlock;
mod selector;
mod semaphore;

pub use barrier::{Barrier, DoubleBarrier, READY_NODE};
pub use cache::{
    CACHE_EVENTS_BUFFERED_MAX, CacheEvent, ChildData, NodeCache, TREE_CACHE_NODES_MAX, TreeCache,
};
pub use contend::ContentionStats;
pub use counter::{ADD_ATTEMPTS_MAX, SharedCounter, Versioned};
pub use discovery::{ServiceCache, ServiceDiscovery, ServiceInstance, ServiceType};
pub use error::{RecipeError, Result};
pub use hold::{Hold, HoldWatch};
pub use latch::{CLOSE_WAIT_MAX, LATCH_NAME, LatchState, LeaderLatch};
pub use lock::{LOCK_NAME, Mutex};
pub use nodes::{
    CONNECTION_LOSS_RETRIES_MAX, PARENT_CREATE_ATTEMPTS_MAX, PROTECTED_PREFIX, is_protected_name,
    join, node_name, parent_of, sequence_key, sort_by_sequence, strip_protected_prefix,
    validate_path,
};
pub use queue::{
    DistributedQueue, ITEMS_PER_NODE_MAX, PriorityQueue, QUEUE_ITEM_NAME, decode_items,
    encode_items, priority_to_string,
};
pub use rwlock::{READ_LOCK_NAME, ReadWriteLock, WRITE_LOCK_NAME};
pub use selector::{LeaderSelector, Leadership, Outcome, SELECTOR_LOCK_NAME};
pub use semaphore::{LEASE_NAME, LEASE_PARENT, LOCK_PARENT, Lease, Semaphore};
pub use zookeeper_client;
