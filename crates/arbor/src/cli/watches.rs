//! Watches left by `-w`: one task per watch waits for its event and hands it to the shell,
//! which prints it between commands.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use zookeeper_client::{EventType, OneshotWatcher, WatchedEvent};

/// Fired events waiting to be printed. A watch task waits when the shell falls this far behind.
const EVENTS_PENDING_MAX: usize = 1024;

/// Recently printed events remembered to print each server notification once.
const EVENTS_RECENT_MAX: usize = 64;

/// What a watch waits for. Java's client keeps one watcher object per path and fires it once
/// per event however many of `getData`/`exists` registered it; the Rust client fires each
/// registration. A data watch and an exists watch on a node that exists fire on the same
/// events, so they share a class and only the first is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum WatchClass {
    /// `get -w`, `stat -w`, the root of `ls -R -w`.
    Data,
    /// `ls -w`.
    Child,
}

/// The watches of one session.
#[derive(Debug, Clone)]
pub(crate) struct Watches {
    /// Invariant: holds exactly the (class, path) pairs whose task is still waiting.
    waiting: Arc<Mutex<BTreeSet<(WatchClass, String)>>>,
    events: mpsc::Sender<WatchedEvent>,
}

impl Watches {
    /// A new set of watches and the receiving end of their events.
    pub(crate) fn new() -> (Watches, mpsc::Receiver<WatchedEvent>) {
        let (events, receiver) = mpsc::channel(EVENTS_PENDING_MAX);
        (
            Watches {
                waiting: Arc::default(),
                events,
            },
            receiver,
        )
    }

    /// Keeps `watcher` until it fires, then sends its event. A watcher of a class already
    /// waiting on `path` is dropped instead: the waiting one reports the same event. Events of
    /// the session itself (expired, closed) are not forwarded: the shell reports the session's
    /// state on its own.
    pub(crate) fn adopt(&self, class: WatchClass, path: &str, watcher: OneshotWatcher) {
        let key = (class, path.to_owned());
        if !lock(&self.waiting).insert(key.clone()) {
            return;
        }
        let waiting = Arc::clone(&self.waiting);
        let events = self.events.clone();
        tokio::spawn(async move {
            let event = watcher.changed().await;
            lock(&waiting).remove(&key);
            if event.event_type != EventType::Session {
                // The shell only stops listening when it exits; nothing is left to tell then.
                let _ = events.send(event).await;
            }
        });
    }
}

/// The set stays consistent even if a task panicked while holding it: every change is a single
/// insert or remove.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Recognises the copies of one server notification that several watches of different classes
/// deliver (a node's deletion fires both its data and its child watch). Only events that carry a
/// zxid (servers from 3.9 on) can be matched; events without one are all printed.
#[derive(Debug, Default)]
pub(crate) struct RecentEvents {
    recent: VecDeque<(String, i64, String)>,
}

impl RecentEvents {
    /// True the first time an event is seen.
    pub(crate) fn first_sight(&mut self, event: &WatchedEvent) -> bool {
        if event.zxid == WatchedEvent::NO_ZXID {
            return true;
        }
        let key = (
            format!("{:?}", event.event_type),
            event.zxid,
            event.path.clone(),
        );
        if self.recent.contains(&key) {
            return false;
        }
        if self.recent.len() == EVENTS_RECENT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_notification_prints_once() {
        let mut recent = RecentEvents::default();
        let deleted = WatchedEvent::new(EventType::NodeDeleted, "/a").with_zxid(7);
        assert!(recent.first_sight(&deleted));
        assert!(!recent.first_sight(&deleted.clone()));
        let other_path = WatchedEvent::new(EventType::NodeDeleted, "/b").with_zxid(7);
        assert!(recent.first_sight(&other_path));
        let other_type = WatchedEvent::new(EventType::NodeChildrenChanged, "/a").with_zxid(7);
        assert!(recent.first_sight(&other_type));
    }

    #[test]
    fn events_without_zxid_always_print() {
        let mut recent = RecentEvents::default();
        let event = WatchedEvent::new(EventType::NodeDataChanged, "/a");
        assert!(recent.first_sight(&event));
        assert!(recent.first_sight(&event));
    }

    #[test]
    fn memory_is_bounded() {
        let mut recent = RecentEvents::default();
        for zxid in 0..(EVENTS_RECENT_MAX as i64 * 2) {
            recent
                .first_sight(&WatchedEvent::new(EventType::NodeDataChanged, "/a").with_zxid(zxid));
        }
        assert_eq!(recent.recent.len(), EVENTS_RECENT_MAX);
        let oldest = WatchedEvent::new(EventType::NodeDataChanged, "/a").with_zxid(0);
        assert!(recent.first_sight(&oldest));
    }
}
