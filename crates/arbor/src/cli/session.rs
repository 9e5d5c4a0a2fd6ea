//! Running one parsed command against the ZooKeeper session.

use std::io::{self, Write};
use std::time::Duration;

use jiff::tz::TimeZone;
use thiserror::Error;
use zookeeper_client::{
    Acl, Acls, Client, CreateMode, EnsembleUpdate, Error, MultiWriteError, SessionState,
    StateWatcher,
};

use super::acl::format_acl_entry;
use super::command::{CONFIG_NODE, Command, ParseError, ReconfigUpdate};
use super::format::{format_stat, java_list, keeper_error_code, keeper_error_message};
use super::watches::{WatchClass, Watches};

/// How long `sync` waits for its reply (zkCli's `SyncCommand.SYNC_TIMEOUT`).
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// How long closing the session waits for the server to confirm.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a command did not complete. Every message is one line.
#[derive(Debug, Error)]
pub(crate) enum CommandFailure {
    /// The line was not a valid command.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The server or the session refused or failed the operation.
    #[error("{0}")]
    Operation(String),
    /// Standard output or error could not be written (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

impl CommandFailure {
    /// The process exit status for a one-shot command that failed so (zkCli's: 127 for an
    /// unknown command, else 1).
    pub(crate) fn exit_status(&self) -> u8 {
        match self {
            CommandFailure::Parse(ParseError::NotFound { .. }) => 127,
            _ => 1,
        }
    }
}

/// One ZooKeeper session and the watches left on it.
pub(crate) struct Session {
    client: Client,
    watches: Watches,
    /// Where stat dates are printed (the system's zone, as Java's `Date.toString()`).
    zone: TimeZone,
}

/// A failed operation on `path`, in zkCli's words.
fn failed(error: &Error, path: &str) -> CommandFailure {
    CommandFailure::Operation(keeper_error_message(error, Some(path)))
}

/// Resolves with the state once the session is not connected (disconnected or ended).
async fn connection_lost(mut states: StateWatcher) -> SessionState {
    loop {
        let state = states.peek_state();
        if state == SessionState::Disconnected || state.is_terminated() {
            return state;
        }
        states.changed().await;
    }
}

/// The absolute path of `child` under `parent`.
fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

impl Session {
    /// `reconfig`: asks the cluster to change its membership and prints the new one.
    async fn reconfig(
        &self,
        update: &ReconfigUpdate,
        version: Option<i64>,
        stat: bool,
        out: &mut dyn Write,
    ) -> Result<(), CommandFailure> {
        let as_str: fn(&String) -> &str = String::as_str;
        let from_file;
        let request = match update {
            ReconfigUpdate::Incremental { add, remove } => EnsembleUpdate::Incremental {
                joinings: add.iter().map(as_str),
                leavings: remove.iter().map(as_str),
            },
            ReconfigUpdate::Members(members) => EnsembleUpdate::New {
                ensemble: members.iter().map(as_str),
            },
            ReconfigUpdate::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    CommandFailure::Operation(format!("cannot read {path}: {error}"))
                })?;
                from_file = server_lines(&text);
                if from_file.is_empty() {
                    return Err(CommandFailure::Operation(format!(
                        "{path} has no server.N= line"
                    )));
                }
                EnsembleUpdate::New {
                    ensemble: from_file.iter().map(as_str),
                }
            }
        };
        let (data, new_stat) = self
            .client
            .update_ensemble(request, version)
            .await
            .map_err(|error| {
                CommandFailure::Operation(keeper_error_message(&error, Some(CONFIG_NODE)))
            })?;
        writeln!(out, "Committed new configuration:")?;
        writeln!(out, "{}", String::from_utf8_lossy(&data))?;
        if stat {
            write!(out, "{}", format_stat(&new_stat, &self.zone))?;
        }
        Ok(())
    }

    /// Wraps a connected client.
    pub(crate) fn new(client: Client, watches: Watches) -> Session {
        Session {
            client,
            watches,
            zone: TimeZone::system(),
        }
    }

    /// Follows the session's state (connected, disconnected, expired ...).
    pub(crate) fn state_watcher(&self) -> StateWatcher {
        self.client.state_watcher()
    }

    /// The session's current state.
    pub(crate) fn state(&self) -> SessionState {
        self.client.state()
    }

    /// Closes the session, so that its ephemeral nodes go at once rather than when it expires,
    /// waiting a bounded time for the server to confirm.
    pub(crate) async fn close(self) {
        let mut state = self.client.state_watcher();
        // The last client handle going away is what makes the library send closeSession.
        drop(self.client);
        let confirmed = async {
            while !state.peek_state().is_terminated() {
                state.changed().await;
            }
        };
        // A server that does not answer in time expires the session itself later.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, confirmed).await;
    }

    /// Runs `command`, printing its results on `out` and, for commands that go on after a
    /// failure on one node (`setAcl -R`), the per-node failures on `err`.
    ///
    /// While the connection is down the command fails at once with `ConnectionLoss`, as the
    /// Java client fails its queued requests, instead of waiting for a reconnect or for the
    /// session to expire (tens of seconds). A request already sent may still be applied: as
    /// with any `ConnectionLoss`, its outcome is unknown.
    ///
    /// `help` and `quit` belong to the shell and do nothing here.
    ///
    /// # Errors
    /// [`CommandFailure`] with zkCli's one-line message.
    pub(crate) async fn execute(
        &self,
        command: &Command,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(), CommandFailure> {
        let state = self.client.state();
        if state.is_terminated() {
            let why = match state {
                SessionState::Expired => "the session has expired",
                SessionState::AuthFailed => "authentication failed, so the session was closed",
                _ => "the session is closed",
            };
            return Err(CommandFailure::Operation(format!("Not connected: {why}")));
        }
        tokio::select! {
            biased;
            state = connection_lost(self.client.state_watcher()) => {
                let error = match state {
                    SessionState::Expired => Error::SessionExpired,
                    SessionState::AuthFailed => Error::AuthFailed,
                    SessionState::Closed => Error::ClientClosed,
                    _ => Error::ConnectionLoss,
                };
                Err(CommandFailure::Operation(keeper_error_message(&error, command.path())))
            }
            outcome = self.run(command, out, err) => outcome,
        }
    }

    async fn run(
        &self,
        command: &Command,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(), CommandFailure> {
        match command {
            Command::Ls {
                path,
                stat,
                watch,
                recursive,
            } => {
                if *recursive {
                    self.list_subtree(path, *watch, out).await
                } else {
                    self.list(path, *stat, *watch, out).await
                }
            }
            Command::Get { path, stat, watch } => self.get(path, *stat, *watch, out).await,
            Command::Set {
                path,
                data,
                stat,
                version,
            } => {
                let new_stat = self
                    .client
                    .set_data(path, data.as_bytes(), *version)
                    .await
                    .map_err(|error| failed(&error, path))?;
                if *stat {
                    write!(out, "{}", format_stat(&new_stat, &self.zone))?;
                }
                Ok(())
            }
            Command::Create {
                path,
                data,
                acl,
                mode,
                ttl,
            } => {
                let acls = match acl {
                    Some(list) => Acls::new(list),
                    None => Acls::anyone_all(),
                };
                let mut options = mode.with_acls(acls);
                if let Some(ttl) = ttl {
                    options = options.with_ttl(*ttl);
                }
                let (_, sequence) = self
                    .client
                    .create(path, data.as_bytes(), &options)
                    .await
                    .map_err(|error| failed(&error, path))?;
                let sequential = matches!(
                    mode,
                    CreateMode::PersistentSequential | CreateMode::EphemeralSequential
                );
                if sequential {
                    writeln!(out, "Created {path}{sequence}")?;
                } else {
                    writeln!(out, "Created {path}")?;
                }
                Ok(())
            }
            Command::Delete { path, version } => self
                .client
                .delete(path, *version)
                .await
                .map_err(|error| failed(&error, path)),
            Command::DeleteAll { path, batch_size } => self.delete_subtree(path, *batch_size).await,
            Command::Stat { path, watch } => {
                let stat = if *watch {
                    let (stat, watcher) = self
                        .client
                        .check_and_watch_stat(path)
                        .await
                        .map_err(|error| failed(&error, path))?;
                    self.watches.adopt(WatchClass::Data, path, watcher);
                    stat
                } else {
                    self.client
                        .check_stat(path)
                        .await
                        .map_err(|error| failed(&error, path))?
                };
                let stat = stat.ok_or_else(|| failed(&Error::NoNode, path))?;
                write!(out, "{}", format_stat(&stat, &self.zone))?;
                Ok(())
            }
            Command::GetAcl { path, stat } => {
                let (acls, node_stat) = self
                    .client
                    .get_acl(path)
                    .await
                    .map_err(|error| failed(&error, path))?;
                for acl in &acls {
                    writeln!(out, "{}", format_acl_entry(acl))?;
                }
                if *stat {
                    write!(out, "{}", format_stat(&node_stat, &self.zone))?;
                }
                Ok(())
            }
            Command::SetAcl {
                path,
                acl,
                stat,
                version,
                recursive,
            } => {
                if *recursive {
                    self.set_acl_subtree(path, acl, *version, err).await
                } else {
                    let new_stat = self
                        .client
                        .set_acl(path, acl, *version)
                        .await
                        .map_err(|error| failed(&error, path))?;
                    if *stat {
                        write!(out, "{}", format_stat(&new_stat, &self.zone))?;
                    }
                    Ok(())
                }
            }
            Command::AddAuth { scheme, auth } => self
                .client
                .auth(scheme, auth.as_bytes())
                .await
                .map_err(|error| CommandFailure::Operation(keeper_error_message(&error, None))),
            Command::Sync { path } => {
                match tokio::time::timeout(SYNC_TIMEOUT, self.client.sync(path)).await {
                    Ok(Ok(())) => {
                        writeln!(out, "Sync is OK")?;
                        Ok(())
                    }
                    Ok(Err(error)) => {
                        Err(CommandFailure::Operation(match keeper_error_code(&error) {
                            Some(code) => format!("Sync has failed. rc={code}"),
                            None => format!("Sync has failed: {error}"),
                        }))
                    }
                    Err(_elapsed) => Err(CommandFailure::Operation(format!(
                        "Sync has failed: no reply within {} ms",
                        SYNC_TIMEOUT.as_millis()
                    ))),
                }
            }
            Command::WhoAmI => {
                let users = self.client.list_auth_users().await.map_err(|error| {
                    CommandFailure::Operation(keeper_error_message(&error, None))
                })?;
                writeln!(out, "Auth scheme: User")?;
                for user in users {
                    writeln!(out, "{}: {}", user.scheme(), user.user())?;
                }
                Ok(())
            }
            Command::GetEphemerals { path } => {
                let ephemerals = self
                    .client
                    .list_ephemerals(path)
                    .await
                    .map_err(|error| failed(&error, path))?;
                writeln!(out, "{}", java_list(&ephemerals))?;
                Ok(())
            }
            Command::GetAllChildrenNumber { path } => {
                let count = self
                    .client
                    .count_descendants_number(path)
                    .await
                    .map_err(|error| failed(&error, path))?;
                writeln!(out, "{count}")?;
                Ok(())
            }
            Command::Config { client_only, stat } => {
                let (data, node_stat) = self
                    .client
                    .get_config()
                    .await
                    .map_err(|error| failed(&error, CONFIG_NODE))?;
                let text = String::from_utf8_lossy(&data);
                if *client_only {
                    writeln!(out, "{}", client_config(&text))?;
                } else {
                    writeln!(out, "{text}")?;
                }
                if *stat {
                    write!(out, "{}", format_stat(&node_stat, &self.zone))?;
                }
                Ok(())
            }
            Command::Reconfig {
                update,
                version,
                stat,
            } => self.reconfig(update, *version, *stat, out).await,
            Command::SetQuota { path, limit, value } => {
                super::quota::set_quota(&self.client, path, *limit, *value).await
            }
            Command::ListQuota { path } => {
                super::quota::list_quota(&self.client, path, out, err).await
            }
            Command::DelQuota { path, limit } => {
                super::quota::del_quota(&self.client, path, *limit, out).await
            }
            Command::Help | Command::Quit => Ok(()),
        }
    }

    /// `ls [-s] [-w] path`: sorted children as a Java list, then the stat with `-s`.
    async fn list(
        &self,
        path: &str,
        stat: bool,
        watch: bool,
        out: &mut dyn Write,
    ) -> Result<(), CommandFailure> {
        let on_error = |error: Error| failed(&error, path);
        let (mut children, node_stat) = match (stat, watch) {
            (false, false) => (
                self.client.list_children(path).await.map_err(on_error)?,
                None,
            ),
            (false, true) => {
                let (children, watcher) = self
                    .client
                    .list_and_watch_children(path)
                    .await
                    .map_err(on_error)?;
                self.watches.adopt(WatchClass::Child, path, watcher);
                (children, None)
            }
            (true, false) => {
                let (children, stat) = self.client.get_children(path).await.map_err(on_error)?;
                (children, Some(stat))
            }
            (true, true) => {
                let (children, stat, watcher) = self
                    .client
                    .get_and_watch_children(path)
                    .await
                    .map_err(on_error)?;
                self.watches.adopt(WatchClass::Child, path, watcher);
                (children, Some(stat))
            }
        };
        children.sort_unstable();
        writeln!(out, "{}", java_list(&children))?;
        if let Some(node_stat) = node_stat {
            write!(out, "{}", format_stat(&node_stat, &self.zone))?;
        }
        Ok(())
    }

    /// `ls -R`: the root, then depth first each node's sorted children before descending into
    /// them (zkCli's `ZKUtil.visitSubTreeDFS`). A node deleted meanwhile is skipped.
    async fn list_subtree(
        &self,
        root: &str,
        watch: bool,
        out: &mut dyn Write,
    ) -> Result<(), CommandFailure> {
        // zkCli reads the root's data first; that is where a missing root is reported and where
        // `-w` leaves the root a data watch.
        if watch {
            let (_, _, watcher) = self
                .client
                .get_and_watch_data(root)
                .await
                .map_err(|error| failed(&error, root))?;
            self.watches.adopt(WatchClass::Data, root, watcher);
        } else {
            self.client
                .get_data(root)
                .await
                .map_err(|error| failed(&error, root))?;
        }
        writeln!(out, "{root}")?;
        let mut pending = vec![root.to_owned()];
        while let Some(node) = pending.pop() {
            let listed = if watch {
                self.client
                    .list_and_watch_children(&node)
                    .await
                    .map(|(children, watcher)| {
                        self.watches.adopt(WatchClass::Child, &node, watcher);
                        children
                    })
            } else {
                self.client.list_children(&node).await
            };
            let mut children = match listed {
                Ok(children) => children,
                Err(Error::NoNode) => continue,
                Err(error) => return Err(failed(&error, &node)),
            };
            children.sort_unstable();
            let paths: Vec<String> = children
                .iter()
                .map(|child| child_path(&node, child))
                .collect();
            for path in &paths {
                writeln!(out, "{path}")?;
            }
            pending.extend(paths.into_iter().rev());
        }
        Ok(())
    }

    /// `get [-s] [-w] path`: the data as UTF-8 (invalid bytes replaced), then the stat with `-s`.
    async fn get(
        &self,
        path: &str,
        stat: bool,
        watch: bool,
        out: &mut dyn Write,
    ) -> Result<(), CommandFailure> {
        let (data, node_stat) = if watch {
            let (data, node_stat, watcher) = self
                .client
                .get_and_watch_data(path)
                .await
                .map_err(|error| failed(&error, path))?;
            self.watches.adopt(WatchClass::Data, path, watcher);
            (data, node_stat)
        } else {
            self.client
                .get_data(path)
                .await
                .map_err(|error| failed(&error, path))?
        };
        writeln!(out, "{}", String::from_utf8_lossy(&data))?;
        if stat {
            write!(out, "{}", format_stat(&node_stat, &self.zone))?;
        }
        Ok(())
    }

    /// Every path of the subtree at `root`, breadth first (zkCli's `ZKUtil.listSubTreeBFS`).
    /// A node deleted while the tree is walked is left out.
    async fn subtree_breadth_first(&self, root: &str) -> Result<Vec<String>, CommandFailure> {
        let mut tree = vec![root.to_owned()];
        let mut next = 0;
        while let Some(node) = tree.get(next).cloned() {
            next += 1;
            match self.client.list_children(&node).await {
                Ok(children) => tree.extend(children.iter().map(|child| child_path(&node, child))),
                Err(Error::NoNode) if node != root => {}
                Err(error) => return Err(failed(&error, &node)),
            }
        }
        Ok(tree)
    }

    /// `deleteall`: lists the subtree, then deletes it leaves first in `multi` batches of
    /// `batch_size` (zkCli's `ZKUtil.deleteRecursive`).
    async fn delete_subtree(&self, root: &str, batch_size: u32) -> Result<(), CommandFailure> {
        assert!(
            batch_size >= 1,
            "deleteall batch size {batch_size} must be at least 1"
        );
        if root == "/" {
            // zkCli would try, and delete whatever it could before failing on /zookeeper.
            return Err(failed(
                &Error::BadArguments(&"cannot delete the root"),
                root,
            ));
        }
        let tree = self.subtree_breadth_first(root).await?;
        let batch_len = usize::try_from(batch_size).unwrap_or(usize::MAX);
        for batch in tree.rchunks(batch_len) {
            // Deepest first: the reverse of breadth-first order never deletes a parent before
            // its children.
            let ordered: Vec<&String> = batch.iter().rev().collect();
            let mut writer = self.client.new_multi_writer();
            for path in &ordered {
                writer
                    .add_delete(path, None)
                    .map_err(|error| failed(&error, path))?;
            }
            if let Err(error) = writer.commit().await {
                let (error, path) = match error {
                    MultiWriteError::OperationFailed { index, source } => (
                        source,
                        ordered.get(index).map_or(root, |path| path.as_str()),
                    ),
                    MultiWriteError::RequestFailed { source } => (source, root),
                };
                return Err(CommandFailure::Operation(format!(
                    "Failed to delete some node(s) in the subtree! {}",
                    keeper_error_message(&error, Some(path))
                )));
            }
        }
        Ok(())
    }

    /// `setAcl -R`: lists the subtree first (so that an ACL taking away read access cannot stop
    /// the walk half way), then sets the ACL on each node, root first, reporting each failure
    /// on `err` and going on.
    async fn set_acl_subtree(
        &self,
        root: &str,
        acl: &[Acl],
        version: Option<i32>,
        err: &mut dyn Write,
    ) -> Result<(), CommandFailure> {
        // Breadth first: a parent's ACL is set before its children's.
        let tree = self.subtree_breadth_first(root).await?;
        let mut failures = 0_usize;
        for path in &tree {
            if let Err(error) = self.client.set_acl(path, acl, version).await {
                failures += 1;
                writeln!(err, "{}", keeper_error_message(&error, Some(path)))?;
            }
        }
        if failures == 0 {
            Ok(())
        } else {
            Err(CommandFailure::Operation(format!(
                "setAcl -R failed on {failures} of {} node(s) under {root}",
                tree.len()
            )))
        }
    }
}

/// The `server.N=...` lines of a dynamic config file, as `reconfig -file` sends them.
fn server_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| line.starts_with("server."))
        .map(str::to_owned)
        .collect()
}

/// `config -c`: the version and the client connect string of a dynamic config text
/// (ZooKeeper's `ConfigUtils.getClientConfigStr`): `<version> host:port,host:port`.
fn client_config(text: &str) -> String {
    let mut version = "";
    let mut clients = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("version=") {
            version = value;
        } else if line.starts_with("server.")
            && let Some((_, client)) = line.split_once(';')
        {
            clients.push(client.trim());
        }
    }
    format!("{version} {}", clients.join(","))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dash_c_is_the_version_and_the_client_addresses() {
        let text = "server.1=a:1:2:participant;a:2181\nserver.2=b:1:2:observer;0.0.0.0:2182\n\
                    server.3=c:1:2\nversion=100000002\n";
        assert_eq!(client_config(text), "100000002 a:2181,0.0.0.0:2182");
        assert_eq!(server_lines(text).len(), 3);
    }

    #[test]
    fn child_paths() {
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
    }

    #[test]
    fn unknown_commands_exit_127_like_zkcli() {
        let not_found = CommandFailure::Parse(ParseError::NotFound {
            name: "x".to_owned(),
        });
        assert_eq!(not_found.exit_status(), 127);
        assert_eq!(
            CommandFailure::Operation("Node does not exist: /x".to_owned()).exit_status(),
            1
        );
    }
}
