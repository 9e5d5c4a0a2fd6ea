//! Telling a holder, at once, that what it holds may be or is lost.
//!
//! A lock, a lease or a leadership is an ephemeral node of our session. It is lost when the
//! session ends or when somebody deletes the node. Between the moment our client loses its
//! connection and the moment the server expires the session, we cannot know: ZooKeeper's
//! answer (and Curator's `SUSPENDED`) is to stop acting as holder at once. The server only
//! expires a session after its full timeout, while the client declares its connection dead
//! after a fraction of it, so a holder that stops on [`Hold::Suspended`] has stopped before
//! anyone else can be granted what it held.

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client as zk;

/// What a holder may assume about what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Connected, and the node is ours: held.
    Held,
    /// The connection is lost: the session may be expiring. Act as if not holding until
    /// [`Hold::Held`] comes back (the node and session survived) or [`Hold::Lost`].
    Suspended,
    /// Gone for good: the session ended, the node was deleted, or it was released.
    Lost,
}

/// A live view of a [`Hold`], updated by a background task until [`Hold::Lost`].
#[derive(Clone, Debug)]
pub struct HoldWatch {
    receiver: watch::Receiver<Hold>,
}

impl HoldWatch {
    /// The state now.
    pub fn current(&self) -> Hold {
        *self.receiver.borrow()
    }

    /// Whether it is held right now (connected and the node exists).
    pub fn is_held(&self) -> bool {
        self.current() == Hold::Held
    }

    /// Waits until the state is no longer [`Hold::Held`] (suspended or lost) and returns it.
    /// Resolves at once if it is already so.
    pub async fn not_held(&mut self) -> Hold {
        match self.receiver.wait_for(|hold| *hold != Hold::Held).await {
            Ok(hold) => *hold,
            Err(_) => Hold::Lost,
        }
    }

    /// Waits until it is lost for good.
    pub async fn lost(&mut self) {
        let _ = self.receiver.wait_for(|hold| *hold == Hold::Lost).await;
    }

    /// Waits for the next change and returns the new state ([`Hold::Lost`] once the monitor
    /// has ended).
    pub async fn changed(&mut self) -> Hold {
        match self.receiver.changed().await {
            Ok(()) => *self.receiver.borrow_and_update(),
            Err(_) => Hold::Lost,
        }
    }
}

/// The background task behind a [`HoldWatch`]; dropping it stops the task and reports
/// [`Hold::Lost`] to every watcher (what a release means).
#[derive(Debug)]
pub(crate) struct HoldMonitor {
    sender: watch::Sender<Hold>,
    task: JoinHandle<()>,
}

impl HoldMonitor {
    /// Starts watching `path` (a node of this client's session) and the session's state.
    pub(crate) fn start(client: &zk::Client, path: String) -> HoldMonitor {
        let initial = if client.state() == zk::SessionState::SyncConnected {
            Hold::Held
        } else {
            Hold::Suspended
        };
        let (sender, _) = watch::channel(initial);
        let task = tokio::spawn(monitor(client.clone(), path, sender.clone()));
        HoldMonitor { sender, task }
    }

    /// A new view of the state.
    pub(crate) fn watch(&self) -> HoldWatch {
        HoldWatch {
            receiver: self.sender.subscribe(),
        }
    }

    /// The state now.
    pub(crate) fn current(&self) -> Hold {
        *self.sender.borrow()
    }
}

impl Drop for HoldMonitor {
    fn drop(&mut self) {
        self.task.abort();
        self.sender.send_replace(Hold::Lost);
    }
}

async fn monitor(client: zk::Client, path: String, sender: watch::Sender<Hold>) {
    let mut states = client.state_watcher();
    loop {
        // Wait to be connected before looking at the node (a request made while
        // disconnected would only queue).
        let mut state = states.peek_state();
        while !matches!(state, zk::SessionState::SyncConnected) {
            if state.is_terminated() {
                sender.send_replace(Hold::Lost);
                return;
            }
            sender.send_replace(Hold::Suspended);
            state = states.changed().await;
        }
        let watcher = match client.check_and_watch_stat(&path).await {
            Ok((Some(_), watcher)) => watcher,
            Ok((None, _)) => {
                sender.send_replace(Hold::Lost);
                return;
            }
            Err(zk::Error::ConnectionLoss) => continue,
            Err(_) => {
                sender.send_replace(Hold::Lost);
                return;
            }
        };
        // The node exists and we are connected.
        sender.send_replace(Hold::Held);
        tokio::select! {
            event = watcher.changed() => {
                match event.event_type {
                    zk::EventType::NodeDeleted => {
                        sender.send_replace(Hold::Lost);
                        return;
                    }
                    zk::EventType::Session if event.session_state.is_terminated() => {
                        sender.send_replace(Hold::Lost);
                        return;
                    }
                    // Data changed or created: look again.
                    _ => {}
                }
            }
            state = states.changed() => {
                if state.is_terminated() {
                    sender.send_replace(Hold::Lost);
                    return;
                }
                if state == zk::SessionState::Disconnected {
                    sender.send_replace(Hold::Suspended);
                }
            }
        }
    }
}
