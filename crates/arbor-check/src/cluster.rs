//! A cluster under test: real server processes on loopback (arbor, or Apache ZooKeeper for
//! comparison), with a fault proxy on every directed peer link so that the nemesis can cut
//! any message flow `from → to` on its own.
//!
//! - arbor: every node's membership names one address per peer, and the membership is
//!   replicated (`/zookeeper/config`), so every node sees the same address for node `b`. That
//!   address is a *router* of this process: it reads the hello a peer connection opens with
//!   (`"ARBP" | version u16 | cluster u64 | sender u64 | receiver u64`) and sends the connection
//!   through the proxy of the link `(sender, b)`. The first leader records its own configuration
//!   (its own entry at the port it binds); one `reconfig` as super then moves every entry to its
//!   router.
//! - ZooKeeper: membership is static (`reconfigEnabled=false`) and each server's `zoo.cfg`
//!   names the others at the proxies of its own outgoing links (quorum and election ports).
//!
//! Cutting `from → to` drops the bytes `from` sends to `to` on both kinds of connection: those
//! `from` opened towards `to` (upstream direction of link `(from, to)`) and those `to` opened
//! towards `from` (client direction of link `(to, from)`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use sha1::Digest as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::proxy::{Direction, Flow, Proxy};

/// A node's id (1-based, as ZooKeeper's `myid`).
pub type NodeId = u8;

/// Bound on one four-letter-word exchange: a paused or dead node does not answer.
pub const FOUR_LETTER_WAIT: Duration = Duration::from_secs(2);
/// The longest the harness waits for a node to serve or the cluster to agree on a leader.
pub const START_WAIT: Duration = Duration::from_secs(60);
/// The super user's password on arbor clusters (for `reconfig`).
pub const SUPER_PASSWORD: &str = "chaos";
/// ZooKeeper's ports are taken from this range (the machine's convention for ZooKeeper).
const ZOOKEEPER_PORTS: std::ops::Range<u16> = 25000..26000;
/// The classpath that runs Debian's ZooKeeper 3.8 (its manifest lacks these jars).
pub const ZOOKEEPER_CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar:/usr/share/java/slf4j-simple.jar:/usr/share/java/netty-handler.jar:/usr/share/java/netty-transport.jar:/usr/share/java/netty-buffer.jar:/usr/share/java/netty-common.jar";

const HELLO_BYTES: usize = 30;
const HELLO_SENDER: std::ops::Range<usize> = 14..22;

/// Which server runs.
#[derive(Clone, Debug)]
pub enum Target {
    /// `arbor server` from this binary.
    Arbor {
        /// The `arbor` executable.
        binary: PathBuf,
        /// `key = value` TOML lines added to every node's configuration.
        settings: Vec<(String, String)>,
    },
    /// Apache ZooKeeper (Debian's package) through `java`.
    ZooKeeper,
}

impl Target {
    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Arbor { .. } => "arbor",
            Target::ZooKeeper => "zookeeper",
        }
    }
}

struct Node {
    child: Option<Child>,
    paused: bool,
    client_address: SocketAddr,
    /// arbor: the peer port; ZooKeeper: (quorum, election) ports.
    peer_ports: (u16, u16),
    runs: u32,
}

/// A running cluster (see the module documentation).
pub struct Cluster {
    target: Target,
    dir: PathBuf,
    cluster_id: u64,
    nodes: BTreeMap<NodeId, Node>,
    /// `(from, to)`: the proxies carrying connections `from` opens towards `to`.
    links: BTreeMap<(NodeId, NodeId), Vec<Proxy>>,
    /// arbor: each node's router (what the membership names).
    routers: BTreeMap<NodeId, SocketAddr>,
    router_tasks: Vec<JoinHandle<()>>,
    /// arbor: listeners holding each node's peer port until its first start.
    reserved: BTreeMap<NodeId, std::net::TcpListener>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A free loopback port, and the listener that holds it until its node is about to bind it
/// (so that neither a later probe nor a proxy can be given the same port).
fn free_port() -> anyhow::Result<(u16, std::net::TcpListener)> {
    let listener = std::net::TcpListener::bind(loopback(0))?;
    let port = listener.local_addr()?.port();
    Ok((port, listener))
}

/// A free port of [`ZOOKEEPER_PORTS`], starting the probe at `from` (wrapping).
fn free_zookeeper_port(from: &mut u16) -> anyhow::Result<u16> {
    let span = ZOOKEEPER_PORTS.end - ZOOKEEPER_PORTS.start;
    for _ in 0..span {
        let port = ZOOKEEPER_PORTS.start + (*from - ZOOKEEPER_PORTS.start) % span;
        *from = port + 1;
        if std::net::TcpListener::bind(loopback(port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {ZOOKEEPER_PORTS:?}")
}

/// ZooKeeper's digest identity for `user:password`.
pub fn digest_id(user: &str, password: &str) -> String {
    let hash = sha1::Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

impl Cluster {
    /// Starts `count` voters of `target` in `dir` and waits until all serve and agree on a
    /// leader, with every peer link through its proxy. `port_hint` picks where ZooKeeper's
    /// port probe starts (a seed makes it reproducible).
    ///
    /// # Errors
    /// A node that does not start or a cluster that does not elect within [`START_WAIT`].
    pub async fn start(
        target: Target,
        count: NodeId,
        dir: &Path,
        port_hint: u16,
    ) -> anyhow::Result<Cluster> {
        if count < 3 {
            bail!("a chaos cluster has at least 3 nodes");
        }
        let mut hint = ZOOKEEPER_PORTS.start + port_hint % 900;
        let mut nodes = BTreeMap::new();
        let mut reserved = BTreeMap::new();
        for id in 1..=count {
            let (client, peer_ports) = match target {
                Target::Arbor { .. } => {
                    let (port, listener) = free_port()?;
                    reserved.insert(id, listener);
                    (0, (port, 0))
                }
                Target::ZooKeeper => (
                    free_zookeeper_port(&mut hint)?,
                    (
                        free_zookeeper_port(&mut hint)?,
                        free_zookeeper_port(&mut hint)?,
                    ),
                ),
            };
            nodes.insert(
                id,
                Node {
                    child: None,
                    paused: false,
                    client_address: loopback(client),
                    peer_ports,
                    runs: 0,
                },
            );
        }
        let mut links = BTreeMap::new();
        let mut routers = BTreeMap::new();
        let mut router_tasks = Vec::new();
        for to in 1..=count {
            let ports = nodes[&to].peer_ports;
            let mut by_sender = BTreeMap::new();
            for from in (1..=count).filter(|&from| from != to) {
                let mut proxies = vec![Proxy::start(loopback(0), loopback(ports.0)).await?];
                if matches!(target, Target::ZooKeeper) {
                    proxies.push(Proxy::start(loopback(0), loopback(ports.1)).await?);
                }
                by_sender.insert(u64::from(from), proxies[0].local_address());
                links.insert((from, to), proxies);
            }
            if matches!(target, Target::Arbor { .. }) {
                let listener = TcpListener::bind(loopback(0)).await?;
                routers.insert(to, listener.local_addr()?);
                router_tasks.push(tokio::spawn(route(listener, Arc::new(by_sender))));
            }
        }
        let cluster_id = u64::from(std::process::id()) << 20 | u64::from(port_hint);
        let mut cluster = Cluster {
            target,
            dir: dir.to_owned(),
            cluster_id,
            nodes,
            links,
            routers,
            router_tasks,
            reserved,
        };
        for id in cluster.ids() {
            cluster.spawn(id).await?;
        }
        cluster.wait_for_leader(START_WAIT).await?;
        if matches!(cluster.target, Target::Arbor { .. }) {
            cluster.route_every_link().await?;
        }
        Ok(cluster)
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Every node's id.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Node `id`'s client address.
    pub fn client_address(&self, id: NodeId) -> SocketAddr {
        self.nodes[&id].client_address
    }

    /// The connect string of every node.
    pub fn connect_string(&self) -> String {
        self.ids()
            .iter()
            .map(|&id| self.client_address(id).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn node_dir(&self, id: NodeId) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }

    /// The log file of node `id`'s run `run`.
    pub fn log_path(&self, id: NodeId, run: u32) -> PathBuf {
        self.node_dir(id).join(format!("server-{run}.log"))
    }

    fn arbor_config(&self, id: NodeId, settings: &[(String, String)]) -> String {
        let node = &self.nodes[&id];
        let mut text = String::new();
        let _ = writeln!(text, "server_id = {id}");
        let _ = writeln!(text, "client_address = \"{}\"", node.client_address);
        let data = self.node_dir(id).join("data");
        let _ = writeln!(text, "data_dir = {:?}", data.display().to_string());
        let _ = writeln!(text, "cluster_id = {}", self.cluster_id);
        let _ = writeln!(text, "reconfig_enabled = true");
        let _ = writeln!(
            text,
            "super_digest = {:?}",
            digest_id("super", SUPER_PASSWORD)
        );
        for (key, value) in settings {
            let _ = writeln!(text, "{key} = {value}");
        }
        for (&member, state) in &self.nodes {
            let address = if member == id {
                loopback(state.peer_ports.0)
            } else {
                self.routers[&member]
            };
            let _ = writeln!(text, "\n[[members]]\nid = {member}");
            let _ = writeln!(text, "peer_address = \"{address}\"\nrole = \"participant\"");
        }
        text
    }

    fn zookeeper_config(&self, id: NodeId) -> String {
        let node = &self.nodes[&id];
        let mut text = String::new();
        let data = self.node_dir(id).join("data");
        let _ = writeln!(text, "tickTime=500\ninitLimit=20\nsyncLimit=5");
        let _ = writeln!(text, "dataDir={}", data.display());
        let _ = writeln!(text, "clientPort={}", node.client_address.port());
        let _ = writeln!(text, "clientPortAddress=127.0.0.1");
        let _ = writeln!(text, "admin.enableServer=false\n4lw.commands.whitelist=*");
        let _ = writeln!(text, "reconfigEnabled=false\nstandaloneEnabled=false");
        let _ = writeln!(text, "maxSessionTimeout=20000");
        for (&member, state) in &self.nodes {
            let (quorum, election) = if member == id {
                state.peer_ports
            } else {
                let proxies = &self.links[&(id, member)];
                (
                    proxies[0].local_address().port(),
                    proxies[1].local_address().port(),
                )
            };
            let _ = writeln!(text, "server.{member}=127.0.0.1:{quorum}:{election}");
        }
        text
    }

    /// Starts node `id` (first run or restart on the same data and ports) and waits until it
    /// serves.
    async fn spawn(&mut self, id: NodeId) -> anyhow::Result<()> {
        let node_dir = self.node_dir(id);
        std::fs::create_dir_all(node_dir.join("data"))?;
        let run = self.nodes[&id].runs + 1;
        let log_path = self.log_path(id, run);
        let log = std::fs::File::create(&log_path)?;
        let mut command = match &self.target {
            Target::Arbor { binary, settings } => {
                let config = node_dir.join("arbor.toml");
                std::fs::write(&config, self.arbor_config(id, settings))?;
                let mut command = Command::new(binary);
                command
                    .arg("server")
                    .arg("--config")
                    .arg(&config)
                    .env("RUST_LOG", "info")
                    .env("NO_COLOR", "1")
                    .stdout(Stdio::piped());
                command
            }
            Target::ZooKeeper => {
                let config = node_dir.join("zoo.cfg");
                std::fs::write(&config, self.zookeeper_config(id))?;
                std::fs::write(node_dir.join("data").join("myid"), format!("{id}\n"))?;
                let mut command = Command::new("java");
                command
                    .arg("-Xmx256m")
                    .arg("-Dzookeeper.admin.enableServer=false")
                    .arg("-cp")
                    .arg(ZOOKEEPER_CLASSPATH)
                    .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
                    .arg(&config)
                    .stdout(log.try_clone()?);
                command
            }
        };
        // Release the port this node binds only now.
        drop(self.reserved.remove(&id));
        let mut child = command
            .stdin(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start node {id}"))?;
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| anyhow!("no node {id}"))?;
        node.runs = run;
        node.paused = false;
        match &self.target {
            Target::Arbor { .. } => {
                let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
                node.child = Some(child);
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let read = tokio::time::timeout(START_WAIT, reader.read_line(&mut line)).await;
                let address = match read {
                    Ok(Ok(n)) if n > 0 => line
                        .trim()
                        .rsplit_once(" serving on ")
                        .and_then(|(_, address)| address.parse::<SocketAddr>().ok()),
                    _ => None,
                };
                let Some(address) = address else {
                    bail!(
                        "node {id} did not say it serves (first line {line:?}); see {}",
                        log_path.display()
                    );
                };
                tokio::spawn(async move {
                    let mut sink = Vec::new();
                    while matches!(reader.read_until(b'\n', &mut sink).await, Ok(n) if n > 0) {
                        sink.clear();
                    }
                });
                node.client_address = address;
            }
            Target::ZooKeeper => {
                node.child = Some(child);
                let address = node.client_address;
                let deadline = tokio::time::Instant::now() + START_WAIT;
                while four_letter(address, "ruok").await.as_deref() != Some("imok") {
                    if tokio::time::Instant::now() > deadline {
                        bail!("node {id} does not answer ruok; see {}", log_path.display());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Ok(())
    }

    /// arbor: once the first leader has recorded the membership, moves every entry to its
    /// router, then waits until every node has applied that.
    async fn route_every_link(&self) -> anyhow::Result<()> {
        let admin = self.admin().await?;
        let deadline = tokio::time::Instant::now() + START_WAIT;
        let recorded = loop {
            if let Ok(Ok((data, _))) =
                tokio::time::timeout(FOUR_LETTER_WAIT, admin.get_config()).await
            {
                let text = String::from_utf8_lossy(&data).into_owned();
                if text.lines().filter(|l| l.starts_with("server.")).count() == self.nodes.len() {
                    break text;
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the first leader did not record the membership");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let joining: Vec<String> = self
            .ids()
            .into_iter()
            .filter(|&id| {
                let router = self.routers[&id];
                !recorded.lines().any(|line| {
                    line.starts_with(&format!("server.{id}="))
                        && line.contains(&format!(":{}:", router.port()))
                })
            })
            .map(|id| self.member_line(id))
            .collect();
        if !joining.is_empty() {
            let update = zk::EnsembleUpdate::Incremental {
                joinings: joining
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .into_iter(),
                leavings: Vec::<&str>::new().into_iter(),
            };
            admin
                .update_ensemble(update, None)
                .await
                .with_context(|| format!("reconfig moving {joining:?} to their routers"))?;
        }
        for id in self.ids() {
            let client = connect(&self.client_address(id).to_string(), false).await?;
            loop {
                let _ = client.sync("/zookeeper/config").await;
                if let Ok((data, _)) = client.get_config().await {
                    let text = String::from_utf8_lossy(&data).into_owned();
                    if self.ids().iter().all(|member| {
                        text.lines().any(|line| {
                            line.starts_with(&format!("server.{member}="))
                                && line.contains(&format!(":{}:", self.routers[member].port()))
                        })
                    }) {
                        break;
                    }
                }
                if tokio::time::Instant::now() > deadline {
                    bail!("node {id} did not apply the routed membership");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Node `id`'s line in `/zookeeper/config` at its router, with its client address.
    pub fn member_line(&self, id: NodeId) -> String {
        let router = self.routers[&id];
        format!(
            "server.{id}={}:{}:0:participant;{}",
            router.ip(),
            router.port(),
            self.client_address(id)
        )
    }

    /// A session as the super user (arbor) on any node.
    ///
    /// # Errors
    /// No session within [`START_WAIT`].
    pub async fn admin(&self) -> anyhow::Result<zk::Client> {
        let connector = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .with_auth("digest", format!("super:{SUPER_PASSWORD}").as_bytes());
        tokio::time::timeout(START_WAIT, connector.connect(&self.connect_string()))
            .await
            .map_err(|_| anyhow!("no admin session within {START_WAIT:?}"))?
            .map_err(|error| anyhow!("admin session: {error}"))
    }

    fn signal(&self, id: NodeId, signal: rustix::process::Signal) -> anyhow::Result<()> {
        let pid = self.nodes[&id]
            .child
            .as_ref()
            .and_then(Child::id)
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(pid)?).ok_or_else(|| anyhow!("pid 0"))?;
        rustix::process::kill_process(pid, signal)?;
        Ok(())
    }

    /// Whether node `id` runs (not killed; it may be paused).
    pub fn is_running(&self, id: NodeId) -> bool {
        self.nodes[&id].child.is_some()
    }

    /// Whether node `id` is paused.
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.nodes[&id].paused
    }

    /// SIGKILL; returns once the process is gone.
    ///
    /// # Errors
    /// The node was not running.
    pub async fn kill(&mut self, id: NodeId) -> anyhow::Result<()> {
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| anyhow!("no node {id}"))?;
        let mut child = node
            .child
            .take()
            .ok_or_else(|| anyhow!("node {id} not running"))?;
        node.paused = false;
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }

    /// Starts a killed node again on its ports and data; returns once it serves.
    ///
    /// # Errors
    /// See [`Cluster::start`].
    pub async fn restart(&mut self, id: NodeId) -> anyhow::Result<()> {
        self.spawn(id).await
    }

    /// SIGSTOP.
    ///
    /// # Errors
    /// The node is not running.
    pub fn pause(&mut self, id: NodeId) -> anyhow::Result<()> {
        self.signal(id, rustix::process::Signal::STOP)?;
        if let Some(node) = self.nodes.get_mut(&id) {
            node.paused = true;
        }
        Ok(())
    }

    /// SIGCONT.
    ///
    /// # Errors
    /// The node is not running.
    pub fn resume(&mut self, id: NodeId) -> anyhow::Result<()> {
        self.signal(id, rustix::process::Signal::CONT)?;
        if let Some(node) = self.nodes.get_mut(&id) {
            node.paused = false;
        }
        Ok(())
    }

    /// Drops every byte `from` sends to `to` (see the module documentation).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        for proxy in self.links.get(&(from, to)).into_iter().flatten() {
            proxy.set_flow(Direction::ToUpstream, Flow::Drop);
        }
        for proxy in self.links.get(&(to, from)).into_iter().flatten() {
            proxy.set_flow(Direction::ToClient, Flow::Drop);
        }
    }

    /// Cuts every flow between the two sides, both ways.
    pub fn partition(&self, side_a: &[NodeId], side_b: &[NodeId]) {
        for &a in side_a {
            for &b in side_b {
                self.cut(a, b);
                self.cut(b, a);
            }
        }
    }

    /// Every link passes again; connections that held bytes are reset, so that no peer sees
    /// a burst of stale traffic from a hole it cannot tell apart from a slow link.
    pub fn heal(&self) {
        for proxies in self.links.values() {
            for proxy in proxies {
                proxy.set_flow(Direction::ToUpstream, Flow::Pass);
                proxy.set_flow(Direction::ToClient, Flow::Pass);
            }
        }
    }

    /// The node every answering node names as leader, if they agree now (arbor: `mntr`'s
    /// `arbor_raft_leader`; ZooKeeper: the one whose `zk_server_state` is `leader`).
    pub async fn leader(&self) -> Option<NodeId> {
        let mut leaders = Vec::new();
        let mut named = Vec::new();
        for id in self.ids() {
            if !self.is_running(id) || self.is_paused(id) {
                continue;
            }
            let Some(text) = four_letter(self.client_address(id), "mntr").await else {
                continue;
            };
            let value = |key: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(key)?.strip_prefix('\t'))
                    .map(str::to_owned)
            };
            if value("zk_server_state").as_deref() == Some("leader") {
                leaders.push(id);
            }
            if let Some(leader) = value("arbor_raft_leader").and_then(|v| v.parse::<u8>().ok()) {
                named.push(leader);
            }
        }
        match leaders.as_slice() {
            [leader] if named.iter().all(|n| n == leader) => Some(*leader),
            _ => None,
        }
    }

    /// Waits until the nodes agree on a leader.
    ///
    /// # Errors
    /// None within `wait`.
    pub async fn wait_for_leader(&self, wait: Duration) -> anyhow::Result<NodeId> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(leader) = self.leader().await {
                return Ok(leader);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no agreed leader within {wait:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resumes paused nodes, restarts killed ones, heals every link.
    ///
    /// # Errors
    /// A node that does not restart.
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        self.heal();
        for id in self.ids() {
            if self.is_paused(id) {
                self.resume(id)?;
            }
            if !self.is_running(id) {
                self.restart(id).await?;
            }
        }
        Ok(())
    }

    /// Kills every process (SIGKILL also ends a stopped one) and stops the routers.
    pub async fn stop(&mut self) {
        for task in &self.router_tasks {
            task.abort();
        }
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.router_tasks {
            task.abort();
        }
        // Each `Child` is killed on drop (kill_on_drop).
    }
}

/// Connects a session to `connect_string`; `pinned` sessions never move to another server.
///
/// # Errors
/// No session within [`START_WAIT`].
pub async fn connect(connect_string: &str, _pinned: bool) -> anyhow::Result<zk::Client> {
    connect_with(connect_string, Duration::from_secs(10)).await
}

/// Connects a session with `session_timeout`.
///
/// # Errors
/// No session within [`START_WAIT`].
pub async fn connect_with(
    connect_string: &str,
    session_timeout: Duration,
) -> anyhow::Result<zk::Client> {
    let connector = zk::Client::connector().with_session_timeout(session_timeout);
    tokio::time::timeout(START_WAIT, connector.connect(connect_string))
        .await
        .map_err(|_| anyhow!("no session on {connect_string} within {START_WAIT:?}"))?
        .map_err(|error| anyhow!("session on {connect_string}: {error}"))
}

/// A router in front of one arbor node: each peer connection goes through the link proxy of
/// its sender, read from the hello.
async fn route(listener: TcpListener, by_sender: Arc<BTreeMap<u64, SocketAddr>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let by_sender = by_sender.clone();
        tokio::spawn(async move {
            let mut hello = [0u8; HELLO_BYTES];
            let read = tokio::time::timeout(START_WAIT, stream.read_exact(&mut hello)).await;
            if !matches!(read, Ok(Ok(_))) || &hello[..4] != b"ARBP" {
                return;
            }
            let mut sender = [0u8; 8];
            sender.copy_from_slice(&hello[HELLO_SENDER]);
            let Some(&link) = by_sender.get(&u64::from_be_bytes(sender)) else {
                return;
            };
            let Ok(mut upstream) = TcpStream::connect(link).await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            if upstream.write_all(&hello).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
        });
    }
}

/// Sends a four-letter word and reads the answer to the end; `None` when the server does not
/// answer within [`FOUR_LETTER_WAIT`].
pub async fn four_letter(address: SocketAddr, word: &str) -> Option<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        stream.write_all(word.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(FOUR_LETTER_WAIT, exchange)
        .await
        .ok()
        .flatten()
}
