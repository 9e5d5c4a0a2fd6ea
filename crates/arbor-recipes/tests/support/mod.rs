//! Shared harness of the recipe tests: a real server ([`server`]), a fault-making proxy
//! ([`proxy`]), bounded waits, and a log of critical-section entries and exits that checks
//! mutual exclusion.
//!
//! Nothing here sleeps hoping for timing to work out: waits are on events (watches, state
//! changes, channels), each bounded by [`WAIT_MAX`] so a hang fails with a message.

#![allow(dead_code)]

pub mod proxy;
pub mod server;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zookeeper_client as zk;

#[allow(unused_imports)]
pub use proxy::Proxy;
#[allow(unused_imports)]
pub use server::Ensemble;

/// The longest any single wait may take; only a bug (or a hopelessly loaded machine) gets there.
pub const WAIT_MAX: Duration = Duration::from_secs(60);

/// Session timeout of healthy clients: long, so a loaded machine never expires one.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(20);

/// Server settings for tests that expire sessions: 100 ms ticks, so a victim's session may be
/// short, while healthy clients still get [`SESSION_TIMEOUT`].
pub const FAST_EXPIRY_TOML: &str = "tick_ms = 100\nsession_timeout_max_ms = 30000\n";

/// Session timeout of a client a fault test makes lose its session.
pub const VICTIM_SESSION_TIMEOUT: Duration = Duration::from_millis(2000);

/// Awaits `future`, failing with `what` after [`WAIT_MAX`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT_MAX, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT_MAX:?} waiting for {what}"),
    }
}

/// Awaits a fallible operation (bounded), failing with `what` and the error.
pub async fn ok<T, E: std::fmt::Debug>(
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> T {
    match within(what, future).await {
        Ok(value) => value,
        Err(error) => panic!("{what}: {error:?}"),
    }
}

/// A client with the healthy session timeout.
pub async fn connect(connect_string: &str) -> zk::Client {
    connect_with_timeout(connect_string, SESSION_TIMEOUT).await
}

/// A client with `timeout` as its session timeout.
pub async fn connect_with_timeout(connect_string: &str, timeout: Duration) -> zk::Client {
    let connector = zk::Client::connector().with_session_timeout(timeout);
    ok("connect", connector.connect(connect_string)).await
}

/// A unique path for one test (so tests may share an external ensemble).
pub fn unique_path(name: &str) -> String {
    format!("/arbor-recipes-test/{name}-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits until `path` has exactly `count` children, on child watches.
pub async fn wait_for_children(client: &zk::Client, path: &str, count: usize) {
    within(&format!("{count} children under {path}"), async {
        loop {
            match client.list_and_watch_children(path).await {
                Ok((children, watcher)) => {
                    if children.len() == count {
                        return;
                    }
                    watcher.changed().await;
                }
                Err(zk::Error::NoNode) => {
                    let (_, watcher) = client
                        .check_and_watch_stat(path)
                        .await
                        .expect("exists watch");
                    watcher.changed().await;
                }
                Err(error) => panic!("list {path}: {error}"),
            }
        }
    })
    .await;
}

/// One entry or exit of a critical section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Entered (after acquire returned).
    Enter(usize),
    /// About to leave (before release is called).
    Exit(usize),
}

/// A shared log of critical-section steps, checked for mutual exclusion.
#[derive(Clone, Debug, Default)]
pub struct SectionLog {
    steps: Arc<Mutex<Vec<Step>>>,
}

impl SectionLog {
    /// Records a step.
    pub fn record(&self, step: Step) {
        self.steps.lock().expect("log lock").push(step);
    }

    /// The steps so far.
    pub fn steps(&self) -> Vec<Step> {
        self.steps.lock().expect("log lock").clone()
    }

    /// Asserts that sections never overlap: the log alternates Enter(i), Exit(i).
    pub fn assert_exclusive(&self) {
        let steps = self.steps();
        let mut inside: Option<usize> = None;
        for (index, step) in steps.iter().enumerate() {
            match (*step, inside) {
                (Step::Enter(who), None) => inside = Some(who),
                (Step::Exit(who), Some(holder)) if who == holder => inside = None,
                _ => panic!(
                    "mutual exclusion broken at step {index}: {step:?} while {inside:?} inside; log {steps:?}"
                ),
            }
        }
        assert!(inside.is_none(), "log ends inside a section: {steps:?}");
    }
}
