//! Leader election as a latch, compatible with Curator's `LeaderLatch`.
//!
//! Layout: each participant creates a protected ephemeral sequential node
//! `_c_<uuid>-latch-<seq>` under the latch's path, holding its id (UTF-8). The participant
//! whose node sorts first is the leader; each other one watches the node just before its own.
//!
//! # Guarantees
//! - At most one participant with a live, connected session believes it leads: leadership is
//!   dropped (observers told) as soon as the client loses its connection, as Curator does on
//!   `SUSPENDED` with its default error policy, which is before the server can expire the
//!   session and let the next participant lead.
//! - After a reconnection within the session, leadership comes back if our node is still first.
//! - If our node is deleted by someone else, a new one is created at the back of the queue.
//! - When the session ends the latch ends: [`LeaderLatch::await_leadership`] returns
//!   [`RecipeError::SessionEnded`]. Start a new latch on a new client.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::error::{RecipeError, Result};
use crate::nodes::{self, retry};

/// Curator's latch node name.
pub const LATCH_NAME: &str = "latch-";

/// How long [`LeaderLatch::close`] waits for the background task to delete our node before
/// abandoning it to the session (a disconnected client cannot delete anything).
pub const CLOSE_WAIT_MAX: Duration = Duration::from_secs(10);

/// Where a latch stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LatchState {
    /// Taking part, not the leader (or suspended).
    Follower,
    /// The leader.
    Leader,
    /// Ended: closed, or the session ended (the error says why).
    Ended(Option<RecipeError>),
}

/// A participant in a leader election (Curator `LeaderLatch`). Dropping it closes it in the
/// background.
#[derive(Debug)]
pub struct LeaderLatch {
    client: zk::Client,
    latch_path: String,
    state: watch::Receiver<LatchState>,
    closing: watch::Sender<bool>,
    our_path: Arc<StdMutex<Option<String>>>,
    task: Option<JoinHandle<()>>,
}

impl LeaderLatch {
    /// Joins the election at `path` with participant `id` (stored in our node) and starts
    /// contending in the background.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path.
    pub fn start(client: &zk::Client, path: &str, id: &str) -> Result<LeaderLatch> {
        nodes::validate_path(path)?;
        let (state_sender, state) = watch::channel(LatchState::Follower);
        let (closing, closing_receiver) = watch::channel(false);
        let our_path = Arc::new(StdMutex::new(None));
        let task = tokio::spawn(run(
            client.clone(),
            path.to_owned(),
            id.as_bytes().to_vec(),
            state_sender,
            closing_receiver,
            our_path.clone(),
        ));
        Ok(LeaderLatch {
            client: client.clone(),
            latch_path: path.to_owned(),
            state,
            closing,
            our_path,
            task: Some(task),
        })
    }

    /// Whether we lead right now.
    pub fn has_leadership(&self) -> bool {
        *self.state.borrow() == LatchState::Leader
    }

    /// The state now.
    pub fn state(&self) -> LatchState {
        self.state.borrow().clone()
    }

    /// A live view of the state, to be told at once of every change.
    pub fn subscribe(&self) -> watch::Receiver<LatchState> {
        self.state.clone()
    }

    /// Waits at most `timeout` for leadership: `Ok(true)` once leader, `Ok(false)` on
    /// timeout.
    ///
    /// # Errors
    /// [`RecipeError::SessionEnded`] or [`RecipeError::Closed`] if the latch ended.
    pub async fn await_leadership(&self, timeout: Duration) -> Result<bool> {
        let mut state = self.state.clone();
        let waited = tokio::time::timeout(
            timeout,
            state.wait_for(|state| !matches!(state, LatchState::Follower)),
        )
        .await;
        match waited {
            Err(_) => Ok(false),
            Ok(Err(_)) => Err(RecipeError::Closed),
            Ok(Ok(state)) => match &*state {
                LatchState::Leader => Ok(true),
                LatchState::Ended(Some(error)) => Err(error.clone()),
                _ => Err(RecipeError::Closed),
            },
        }
    }

    /// Our node's path, once created.
    pub fn our_path(&self) -> Option<String> {
        self.our_path.lock().ok().and_then(|path| path.clone())
    }

    /// Every participant's node path, leader first.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn participants(&self) -> Result<Vec<String>> {
        crate::lock::participants(&self.client, &self.latch_path, &[LATCH_NAME]).await
    }

    /// The leader's id (the data of the first node), if any participant exists.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn leader_id(&self) -> Result<Option<String>> {
        for path in self.participants().await? {
            match retry(|| self.client.get_data(&path)).await {
                Ok((data, _)) => return Ok(Some(String::from_utf8_lossy(&data).into_owned())),
                Err(zk::Error::NoNode) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Ok(None)
    }

    /// Leaves the election: leadership is given up at once and our node deleted.
    ///
    /// # Errors
    /// None today; kept fallible for the delete's future reporting.
    pub async fn close(mut self) -> Result<()> {
        self.closing.send_replace(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(CLOSE_WAIT_MAX, task).await.is_err() {
                abort.abort();
            }
        }
        Ok(())
    }
}

impl Drop for LeaderLatch {
    fn drop(&mut self) {
        // The task sees the signal, gives up leadership and deletes our node.
        self.closing.send_replace(true);
    }
}

async fn run(
    client: zk::Client,
    latch_path: String,
    id: Vec<u8>,
    state: watch::Sender<LatchState>,
    mut closing: watch::Receiver<bool>,
    our_path: Arc<StdMutex<Option<String>>>,
) {
    let ending = contend(&client, &latch_path, &id, &state, &mut closing, &our_path).await;
    // Leadership ends before the node goes: observers are told first.
    state.send_replace(LatchState::Ended(ending.err()));
    let path = our_path.lock().ok().and_then(|mut path| path.take());
    if let Some(path) = path {
        let _ = nodes::delete_quietly(&client, &path).await;
    }
}

fn set_path(our_path: &StdMutex<Option<String>>, path: Option<String>) {
    if let Ok(mut slot) = our_path.lock() {
        *slot = path;
    }
}

/// Contends until closed (`Ok`) or the session ends (`Err`).
async fn contend(
    client: &zk::Client,
    latch_path: &str,
    id: &[u8],
    state: &watch::Sender<LatchState>,
    closing: &mut watch::Receiver<bool>,
    our_path: &StdMutex<Option<String>>,
) -> Result<()> {
    let mut states = client.state_watcher();
    let mut ours: Option<String> = None;
    loop {
        if *closing.borrow() {
            return Ok(());
        }
        // Not connected: not leader, and nothing to do but wait.
        let session = states.peek_state();
        if session.is_terminated() {
            return Err(RecipeError::from(match session {
                zk::SessionState::Closed => zk::Error::ClientClosed,
                _ => zk::Error::SessionExpired,
            }));
        }
        if session != zk::SessionState::SyncConnected {
            state.send_replace(LatchState::Follower);
            tokio::select! {
                _ = states.changed() => {}
                _ = closing.changed() => {}
            }
            continue;
        }
        let name = match &ours {
            Some(name) => name.clone(),
            None => {
                let created = nodes::create_protected(
                    client,
                    latch_path,
                    LATCH_NAME,
                    id,
                    zk::CreateMode::EphemeralSequential,
                )
                .await?;
                set_path(our_path, Some(created.path.clone()));
                let name = nodes::node_name(&created.path).to_owned();
                ours = Some(name.clone());
                name
            }
        };
        let mut children = match retry(|| client.list_children(latch_path)).await {
            Ok(children) => children,
            Err(zk::Error::NoNode) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        crate::contend::remove_duplicates(client, latch_path, &name, &mut children).await?;
        nodes::sort_by_sequence(&mut children, &[LATCH_NAME]);
        let Some(index) = children.iter().position(|child| *child == name) else {
            // Our node is gone (deleted by someone): start again at the back.
            state.send_replace(LatchState::Follower);
            set_path(our_path, None);
            ours = None;
            continue;
        };
        // Leader: watch our own node; follower: watch the one before ours.
        let watched = nodes::join(latch_path, &children[index.saturating_sub(1)]);
        let watcher = match client.get_and_watch_data(&watched).await {
            Ok((_, _, watcher)) => watcher,
            Err(zk::Error::NoNode | zk::Error::ConnectionLoss) => continue,
            Err(error) => return Err(error.into()),
        };
        state.send_replace(if index == 0 {
            LatchState::Leader
        } else {
            LatchState::Follower
        });
        tokio::select! {
            _ = watcher.changed() => {}
            changed = states.changed() => {
                if changed != zk::SessionState::SyncConnected {
                    // Suspended or ended: not leader from this instant.
                    state.send_replace(LatchState::Follower);
                }
            }
            _ = closing.changed() => {}
        }
    }
}
