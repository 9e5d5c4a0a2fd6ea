//! Shared harness of the integration tests that drive a real `arbor server` process: the
//! process itself ([`server`]), a raw protocol client for what `zookeeper-client` cannot say
//! ([`raw`]), and a loopback TCP proxy that can cut a client off while the server stays up
//! ([`proxy`]). For replicated arbor: a cluster of server processes with a fault-injecting
//! proxy on every peer link ([`cluster`]) and writers that load it and remember what was
//! acknowledged ([`load`]).
//!
//! Nothing here sleeps hoping for timing to work out: every wait is for a line, a reply, an
//! event or a state, bounded by [`WAIT_MAX`] so that a hang becomes a failure with a message.

// Each test binary uses part of the harness; the rest would be reported as dead code.
#![allow(dead_code)]

pub mod cli;
pub mod cluster;
pub mod load;
pub mod proxy;
pub mod raw;
pub mod server;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha1::{Digest, Sha1};
use zookeeper_client as zk;

#[allow(unused_imports)]
pub use server::{Server, ServerOptions};

/// The longest any test waits for something that should happen; only a bug (or a machine so
/// loaded that the test is meaningless) reaches it.
pub const WAIT_MAX: Duration = Duration::from_secs(20);

/// Session timeout the tests ask for unless they test timeouts: long enough that a loaded
/// machine does not expire a healthy session.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test with `what` if it takes longer than [`WAIT_MAX`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT_MAX, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT_MAX:?} waiting for {what}"),
    }
}

/// Awaits a fallible operation (bounded), failing the test with `what` and the error.
pub async fn ok<T, E: std::fmt::Debug>(
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> T {
    match within(what, future).await {
        Ok(value) => value,
        Err(error) => panic!("{what}: {error:?}"),
    }
}

/// Awaits an operation that must fail (bounded) and returns its error.
pub async fn fails<T: std::fmt::Debug, E>(
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> E {
    match within(what, future).await {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(error) => error,
    }
}

/// Polls `condition` until it holds, failing with `what` after [`WAIT_MAX`]. For state that
/// has no event to wait on (a log line, a closed slot), checked every few milliseconds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A `zookeeper-client` connector with the tests' session timeout.
pub fn connector() -> zk::Connector {
    zk::Client::connector().with_session_timeout(SESSION_TIMEOUT)
}

/// Connects a `zookeeper-client` session to `address` (`host:port`).
pub async fn connect(address: &str) -> zk::Client {
    connect_with(connector(), address).await
}

/// Connects with a prepared connector, bounded by [`WAIT_MAX`].
pub async fn connect_with(connector: zk::Connector, address: &str) -> zk::Client {
    match within("a zookeeper-client session", connector.connect(address)).await {
        Ok(client) => client,
        Err(error) => panic!("cannot connect to {address}: {error}"),
    }
}

/// Persistent node options with `world:anyone` ALL.
pub fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Options for `mode` with `world:anyone` ALL.
pub fn mode(mode: zk::CreateMode) -> zk::CreateOptions<'static> {
    mode.with_acls(zk::Acls::anyone_all())
}

/// The stat of a node just created at `zxid` at `time` (`DataTree.createStat`; containers and
/// TTL nodes show owner 0, `DataNode.getClientEphemeralOwner`).
pub fn created(zxid: i64, time: i64, data_length: i32, owner: i64) -> zk::Stat {
    zk::Stat {
        czxid: zxid,
        mzxid: zxid,
        pzxid: zxid,
        ctime: time,
        mtime: time,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: owner,
        data_length,
        num_children: 0,
    }
}

/// Milliseconds since the epoch on this machine's clock (the server's clock too).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// ZooKeeper's digest identity for `user:password`: `user:base64(sha1("user:password"))`
/// (`DigestAuthenticationProvider.generateDigest`).
pub fn digest_id(user: &str, password: &str) -> String {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Waits until a client's session reaches `state`, whatever it passes through on the way.
pub async fn wait_for_state(watcher: &mut zk::StateWatcher, state: zk::SessionState) {
    within(&format!("session state {state}"), async {
        loop {
            if watcher.peek_state() == state {
                return;
            }
            let reached = watcher.changed().await;
            if reached == state {
                return;
            }
        }
    })
    .await;
}
