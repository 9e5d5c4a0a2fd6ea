//! A cluster of real `arbor server` processes on loopback, optionally with a fault-injecting
//! proxy on every directed peer link.
//!
//! Every node gets a fixed peer port at creation (kept across restarts: the cluster's
//! membership, replicated in `/zookeeper/config`, names it). Client ports are `127.0.0.1:0` at
//! the first start and kept across restarts.
//!
//! # Link control
//!
//! With [`ClusterOptions::link_control`], node `b`'s address in the membership is a *router*
//! of this test process instead of `b`'s own port. The router reads the 30-byte hello every
//! peer connection opens with (`"ARBP" | version u16 | cluster u64 | sender u64 | receiver
//! u64`, see `arbor_server::peer`), and sends the connection through the proxy of the directed
//! link `(sender, b)` ([`Cluster::link`]), which forwards to `b`'s port. Blackholing link
//! `(a, b)` silences `a` towards `b` only: one-way and symmetric partitions are both a matter
//! of which links drop.
//!
//! Because a starting cluster's leader records *its own* configuration as the membership (its
//! own entry being the port it binds), the harness then moves that one entry to its router with
//! a `reconfig` as the super user; link control therefore needs `reconfig` to work.
//!
//! Processes: SIGKILL ([`Cluster::kill`]), SIGTERM ([`Cluster::terminate`]), SIGSTOP/SIGCONT
//! ([`Cluster::pause`], [`Cluster::resume`]), restart on the same data. Dropping the cluster
//! kills every process; if the test is failing, the end of every node's log is printed first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use arbor_check::proxy::{Mode, Proxy};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use super::{WAIT_MAX, connect_with, connector, digest_id, ok, within};

/// Bound on one four-letter-word exchange: a paused or dead node does not answer.
pub const FOUR_LETTER_WAIT: Duration = Duration::from_secs(2);

/// Attempts at starting a cluster whose freshly chosen ports get taken before the nodes bind
/// them.
const START_ATTEMPTS: u32 = 3;

/// Lines of each node's log printed when a test fails, unless `ARBOR_CLUSTER_LOG_LINES` says
/// otherwise.
const LOG_TAIL_LINES: usize = 40;

/// The super user's password in link-control clusters (`super:test`, as kazoo's suite uses).
pub const SUPER_PASSWORD: &str = "test";

/// The bytes of the hello that opens a peer connection, and where its sender id is.
const HELLO_BYTES: usize = 30;
const HELLO_SENDER: std::ops::Range<usize> = 14..22;

/// Whether a member votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A voter.
    Participant,
    /// A learner that serves reads and forwards writes.
    Observer,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Participant => "participant",
            Role::Observer => "observer",
        }
    }
}

/// What a test wants of its cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Voting members (ids 1..=voters).
    pub voters: u8,
    /// Observers (the ids after the voters).
    pub observers: u8,
    /// `key = value` lines (TOML syntax) added to every node's configuration.
    pub toml: Vec<(String, String)>,
    /// A proxy on every directed peer link (see the module documentation).
    pub link_control: bool,
}

impl ClusterOptions {
    /// `voters` voting members, no observer, default settings, no link control.
    pub fn voters(voters: u8) -> ClusterOptions {
        ClusterOptions {
            voters,
            observers: 0,
            toml: Vec::new(),
            link_control: false,
        }
    }

    /// Adds `observers` observers.
    pub fn observers(mut self, observers: u8) -> ClusterOptions {
        self.observers = observers;
        self
    }

    /// Adds a setting to every node (`value` in TOML syntax).
    pub fn set(mut self, key: &str, value: impl ToString) -> ClusterOptions {
        self.toml.push((key.to_owned(), value.to_string()));
        self
    }

    /// Puts a controllable proxy on every directed peer link.
    pub fn link_control(mut self) -> ClusterOptions {
        self.link_control = true;
        self
    }

    fn setting(&self, key: &str) -> Option<u64> {
        self.toml
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    }

    /// Raft's election timeout as configured (arbor's defaults: 10 ticks of 50 ms).
    pub fn election_timeout(&self) -> Duration {
        let tick = self.setting("raft_tick_ms").unwrap_or(50);
        let ticks = self.setting("election_timeout_ticks").unwrap_or(10);
        Duration::from_millis(tick * ticks)
    }
}

struct Node {
    role: Role,
    process: Option<Child>,
    client_address: SocketAddr,
    /// The port the node binds for its peers.
    peer_address: SocketAddr,
    /// Where the others reach it: its router with link control, else its peer port.
    advertised_address: SocketAddr,
    /// Runs so far; run `n` logs to `node-<id>/server-<n>.log`.
    runs: u32,
}

/// A running cluster.
pub struct Cluster {
    dir: TempDir,
    cluster_id: u64,
    options: ClusterOptions,
    nodes: BTreeMap<u8, Node>,
    /// `(from, to)`: the proxy carrying `from`'s connections to `to` (link control only).
    links: BTreeMap<(u8, u8), Proxy>,
    routers: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// Starts `voters` voters with default settings and waits for a leader.
    pub async fn start(voters: u8) -> Cluster {
        Cluster::start_with(ClusterOptions::voters(voters)).await
    }

    /// Starts the cluster `options` describes and waits until every node serves and all agree
    /// on a leader (and, with link control, until every peer link runs through its proxy).
    pub async fn start_with(options: ClusterOptions) -> Cluster {
        for attempt in 1..=START_ATTEMPTS {
            match Cluster::try_start(options.clone()).await {
                Ok(cluster) => return cluster,
                // A peer port is taken from the kernel and released before its node binds
                // it; something else on the machine may grab it meanwhile. Start afresh.
                Err(error) if error.contains("Address already in use") => eprintln!(
                    "cluster start, attempt {attempt}: a port was taken meanwhile; again with \
                     new ports"
                ),
                Err(error) => panic!("{error}"),
            }
        }
        panic!("the cluster did not start in {START_ATTEMPTS} attempts: ports kept being taken");
    }

    /// One attempt at [`Cluster::start_with`]: `Err` with the node's log if one does not come
    /// up (the nodes started so far go with the dropped cluster).
    async fn try_start(mut options: ClusterOptions) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().expect("a temporary directory for the cluster");
        let count = options.voters + options.observers;
        assert!(count >= 2, "a cluster has at least two members");
        if options.link_control {
            options = options.set("reconfig_enabled", true).set(
                "super_digest",
                format!("{:?}", digest_id("super", SUPER_PASSWORD)),
            );
        }
        // Peer ports are fixed before any node starts: every configuration names them. Each
        // is taken from the kernel and released just before its node binds it.
        let peer_ports: Vec<SocketAddr> = (0..count).map(|_| free_port()).collect();
        let mut links = BTreeMap::new();
        let mut routers = Vec::new();
        let mut advertised = Vec::new();
        for to in 1..=count {
            let peer = peer_ports[usize::from(to - 1)];
            if !options.link_control {
                advertised.push(peer);
                continue;
            }
            let mut by_sender = BTreeMap::new();
            for from in (1..=count).filter(|&from| from != to) {
                let proxy = Proxy::start(loopback(0), peer)
                    .await
                    .expect("start a link proxy");
                by_sender.insert(u64::from(from), proxy.local_address());
                links.insert((from, to), proxy);
            }
            let listener = TcpListener::bind(loopback(0)).await.expect("bind a router");
            advertised.push(listener.local_addr().expect("the router's address"));
            routers.push(tokio::spawn(route(listener, Arc::new(by_sender))));
        }
        let nodes = (1..=count)
            .map(|id| {
                let role = if id <= options.voters {
                    Role::Participant
                } else {
                    Role::Observer
                };
                let node = Node {
                    role,
                    process: None,
                    client_address: loopback(0),
                    peer_address: peer_ports[usize::from(id - 1)],
                    advertised_address: advertised[usize::from(id - 1)],
                    runs: 0,
                };
                (id, node)
            })
            .collect();
        let cluster_id = u64::from(std::process::id()) << 20 | u64::from(rand::random::<u16>());
        let mut cluster = Cluster {
            dir,
            cluster_id,
            options,
            nodes,
            links,
            routers,
        };
        for id in cluster.ids() {
            cluster.try_spawn(id).await?;
        }
        let all = cluster.ids();
        cluster.wait_for_leader(&all).await;
        if cluster.options.link_control {
            cluster.route_every_link().await;
        }
        Ok(cluster)
    }

    /// Every node's id.
    pub fn ids(&self) -> Vec<u8> {
        self.nodes.keys().copied().collect()
    }

    /// The voters' ids.
    pub fn voter_ids(&self) -> Vec<u8> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.role == Role::Participant)
            .map(|(&id, _)| id)
            .collect()
    }

    /// The options the cluster was started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// The configured election timeout.
    pub fn election_timeout(&self) -> Duration {
        self.options.election_timeout()
    }

    fn node(&self, id: u8) -> &Node {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: u8) -> &mut Node {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Node `id`'s client address.
    pub fn socket_address(&self, id: u8) -> SocketAddr {
        self.node(id).client_address
    }

    /// Node `id`'s client address as `host:port`.
    pub fn address(&self, id: u8) -> String {
        self.socket_address(id).to_string()
    }

    /// The connect string of `ids`.
    pub fn connect_string_of(&self, ids: &[u8]) -> String {
        ids.iter()
            .map(|&id| self.address(id))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The connect string of every node.
    pub fn connect_string(&self) -> String {
        self.connect_string_of(&self.ids())
    }

    /// A session on node `id` only (it cannot move to another server).
    pub async fn connect_to(&self, id: u8) -> zk::Client {
        connect_with(connector(), &self.address(id)).await
    }

    /// A session that may use any node.
    pub async fn connect_any(&self) -> zk::Client {
        connect_with(connector(), &self.connect_string()).await
    }

    fn node_dir(&self, id: u8) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    fn log_path(&self, id: u8, run: u32) -> PathBuf {
        self.node_dir(id).join(format!("server-{run}.log"))
    }

    /// Node `id`'s configuration, as it is written before each run: its own peer port, the
    /// others at their advertised addresses.
    fn config_text(&self, id: u8) -> String {
        let node = self.node(id);
        let mut text = String::new();
        let _ = writeln!(text, "server_id = {id}");
        let _ = writeln!(text, "client_address = \"{}\"", node.client_address);
        let data = self.node_dir(id).join("data");
        let _ = writeln!(text, "data_dir = {:?}", data.display().to_string());
        let _ = writeln!(text, "cluster_id = {}", self.cluster_id);
        for (key, value) in &self.options.toml {
            let _ = writeln!(text, "{key} = {value}");
        }
        for (&member, state) in &self.nodes {
            let peer_address = if member == id {
                state.peer_address
            } else {
                state.advertised_address
            };
            let _ = writeln!(text, "\n[[members]]");
            let _ = writeln!(text, "id = {member}");
            let _ = writeln!(text, "peer_address = \"{peer_address}\"");
            let _ = writeln!(text, "role = \"{}\"", state.role.name());
        }
        text
    }

    /// Starts node `id` (its first run or a restart) and waits until it serves.
    async fn spawn(&mut self, id: u8) {
        if let Err(error) = self.try_spawn(id).await {
            panic!("{error}");
        }
    }

    /// [`Cluster::spawn`], with a node that does not come up as an `Err` carrying its log.
    async fn try_spawn(&mut self, id: u8) -> Result<(), String> {
        assert!(
            self.node(id).process.is_none(),
            "node {id} is already running"
        );
        let node_dir = self.node_dir(id);
        std::fs::create_dir_all(&node_dir).expect("create the node's directory");
        let config = node_dir.join("arbor.toml");
        std::fs::write(&config, self.config_text(id)).expect("write the node's configuration");
        let run = self.node(id).runs + 1;
        self.node_mut(id).runs = run;
        let log_path = self.log_path(id, run);
        let log = std::fs::File::create(&log_path).expect("create the node's log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_arbor"))
            .arg("server")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("arbor server starts");
        let stdout = child.stdout.take().expect("a stdout pipe");
        self.node_mut(id).process = Some(child);
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(WAIT_MAX, reader.read_line(&mut line)).await;
        let address = match read {
            Ok(Ok(n)) if n > 0 => line
                .trim()
                .rsplit_once(" serving on ")
                .and_then(|(_, address)| address.parse::<SocketAddr>().ok()),
            _ => None,
        };
        let Some(address) = address else {
            return Err(format!(
                "node {id} did not say it serves (first line {line:?}); log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            ));
        };
        tokio::spawn(drain(reader));
        self.node_mut(id).client_address = address;
        Ok(())
    }

    /// Link control: once the first leader has recorded the membership (its own entry being
    /// the port it binds), moves every entry that is not a router to its router, then waits
    /// until every node has applied that.
    async fn route_every_link(&self) {
        let admin = connect_with(
            connector().with_auth("digest", format!("super:{SUPER_PASSWORD}").as_bytes()),
            &self.connect_string(),
        )
        .await;
        let recorded = within("the first leader to record the membership", async {
            loop {
                let (data, _) = ok("read /zookeeper/config", admin.get_config()).await;
                let text = String::from_utf8_lossy(&data).into_owned();
                if text.lines().filter(|l| l.starts_with("server.")).count() == self.nodes.len() {
                    return text;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let joining: Vec<String> = self
            .nodes
            .iter()
            .filter(|&(&id, node)| {
                let at_router = [false, true].map(|client| self.member_line(id, node, client));
                !recorded
                    .lines()
                    .any(|line| at_router.iter().any(|l| l == line))
            })
            .map(|(&id, node)| self.member_line(id, node, true))
            .collect();
        if !joining.is_empty() {
            let joinings: Vec<&str> = joining.iter().map(String::as_str).collect();
            let update = zk::EnsembleUpdate::Incremental {
                joinings: joinings.clone().into_iter(),
                leavings: Vec::<&str>::new().into_iter(),
            };
            ok(
                &format!("reconfig moving {joining:?} to their routers"),
                admin.update_ensemble(update, None),
            )
            .await;
        }
        for id in self.ids() {
            let client = self.connect_to(id).await;
            until(&format!("node {id} to route every link"), || async {
                ok("sync", client.sync("/zookeeper/config")).await;
                let (data, _) = ok("read /zookeeper/config", client.get_config()).await;
                let text = String::from_utf8_lossy(&data).into_owned();
                self.nodes.iter().all(|(&member, node)| {
                    text.lines().any(|line| {
                        line.starts_with(&format!("server.{member}="))
                            && line.contains(&format!(":{}:", node.advertised_address.port()))
                    })
                })
            })
            .await;
        }
    }

    /// Node `id`'s `server.N=` line as `reconfig` takes it for a joining server (its
    /// advertised peer address, its role, its client address).
    pub fn joining_line(&self, id: u8) -> String {
        self.member_line(id, self.node(id), true)
    }

    /// Node `id`'s line in `/zookeeper/config` at its advertised address.
    fn member_line(&self, id: u8, node: &Node, with_client: bool) -> String {
        let address = node.advertised_address;
        let mut line = format!(
            "server.{id}={}:{}:0:{}",
            address.ip(),
            address.port(),
            node.role.name()
        );
        if with_client {
            let _ = write!(line, ";{}", node.client_address);
        }
        line
    }

    fn pid(&self, id: u8) -> rustix::process::Pid {
        let pid = self
            .node(id)
            .process
            .as_ref()
            .and_then(Child::id)
            .unwrap_or_else(|| panic!("node {id} is not running"));
        rustix::process::Pid::from_raw(pid as i32).expect("a valid pid")
    }

    fn signal(&self, id: u8, signal: rustix::process::Signal) {
        rustix::process::kill_process(self.pid(id), signal)
            .unwrap_or_else(|error| panic!("signal {signal:?} to node {id}: {error}"));
    }

    /// SIGKILL: a crash at whatever moment the node is in. Returns once the process is gone.
    pub async fn kill(&mut self, id: u8) {
        let Some(mut child) = self.node_mut(id).process.take() else {
            panic!("kill: node {id} is not running");
        };
        let _ = child.start_kill();
        within(&format!("node {id} to die"), child.wait())
            .await
            .expect("wait for a killed node");
    }

    /// SIGTERM: a graceful stop. Returns the exit status once the process is gone.
    pub async fn terminate(&mut self, id: u8) -> ExitStatus {
        self.signal(id, rustix::process::Signal::TERM);
        let mut child = self
            .node_mut(id)
            .process
            .take()
            .expect("the node is running");
        within(&format!("node {id} to stop after SIGTERM"), child.wait())
            .await
            .expect("wait for a stopped node")
    }

    /// Starts node `id` again on its addresses and data; returns once it serves.
    pub async fn restart(&mut self, id: u8) {
        self.spawn(id).await;
    }

    /// SIGSTOP: the process freezes (a long GC pause, a VM stall).
    pub fn pause(&self, id: u8) {
        self.signal(id, rustix::process::Signal::STOP);
    }

    /// SIGCONT.
    pub fn resume(&self, id: u8) {
        self.signal(id, rustix::process::Signal::CONT);
    }

    /// Whether node `id` is running (not killed or stopped by the test, not exited on its own).
    pub fn is_running(&mut self, id: u8) -> bool {
        match self.node_mut(id).process.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The proxy of the directed link `from → to` (link control only).
    pub fn link(&self, from: u8, to: u8) -> &Proxy {
        self.links.get(&(from, to)).unwrap_or_else(|| {
            panic!("no link {from} -> {to} (start the cluster with link control)")
        })
    }

    /// Blackholes every link between the two sides, both ways.
    pub fn partition(&self, side_a: &[u8], side_b: &[u8]) {
        for &a in side_a {
            for &b in side_b {
                self.link(a, b).set_mode(Mode::Drop);
                self.link(b, a).set_mode(Mode::Drop);
            }
        }
    }

    /// Blackholes every link into and out of `id`.
    pub fn isolate(&self, id: u8) {
        let others: Vec<u8> = self.ids().into_iter().filter(|&o| o != id).collect();
        self.partition(&[id], &others);
    }

    /// Every link passes again.
    pub fn heal(&self) {
        for proxy in self.links.values() {
            proxy.set_mode(Mode::Pass);
        }
    }

    /// `mntr` of node `id`; `None` if it does not answer within [`FOUR_LETTER_WAIT`].
    pub async fn mntr(&self, id: u8) -> Option<Mntr> {
        four_letter(self.socket_address(id), "mntr")
            .await
            .map(|text| Mntr::parse(&text))
    }

    /// `mntr` of node `id`, which must answer.
    pub async fn mntr_ok(&self, id: u8) -> Mntr {
        self.mntr(id)
            .await
            .unwrap_or_else(|| panic!("node {id} does not answer mntr"))
    }

    /// A four-letter word to node `id`.
    pub async fn four_letter(&self, id: u8, word: &str) -> Option<String> {
        four_letter(self.socket_address(id), word).await
    }

    /// The leader `among` agree on, if they do now: one says it leads and all name it.
    pub async fn agreed_leader(&self, among: &[u8]) -> Option<u8> {
        let mut leader = None;
        let mut named = BTreeSet::new();
        for &id in among {
            let report = self.mntr(id).await?;
            if report.state() == "leader" {
                leader = Some(id);
            }
            named.insert(report.leader());
        }
        let leader = leader?;
        (named.len() == 1 && named.contains(&Some(leader))).then_some(leader)
    }

    /// Waits until `among` agree on a leader; returns it.
    pub async fn wait_for_leader(&self, among: &[u8]) -> u8 {
        within(&format!("nodes {among:?} to agree on a leader"), async {
            loop {
                if let Some(leader) = self.agreed_leader(among).await {
                    return leader;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Waits until `ids` report the same commit index, applied to it, and the same last zxid
    /// and last log index: replication has converged (call it once the load has stopped).
    pub async fn wait_converged(&self, ids: &[u8]) -> Mntr {
        let mut last = Vec::new();
        let reached = tokio::time::timeout(WAIT_MAX, async {
            loop {
                last.clear();
                for &id in ids {
                    if let Some(report) = self.mntr(id).await {
                        last.push((id, report));
                    }
                }
                if last.len() == ids.len() {
                    let first = &last[0].1;
                    let same = last.iter().all(|(_, r)| {
                        r.commit_index() == first.commit_index()
                            && r.applied_index() == r.commit_index()
                            && r.last_index() == first.last_index()
                            && r.get("zk_last_zxid") == first.get("zk_last_zxid")
                    });
                    if same {
                        return first.clone();
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        match reached {
            Ok(report) => report,
            Err(_) => {
                let summary: Vec<String> = last
                    .iter()
                    .map(|(id, r)| {
                        format!(
                            "node {id}: commit {} applied {} last {} zxid {:?}",
                            r.commit_index(),
                            r.applied_index(),
                            r.last_index(),
                            r.get("zk_last_zxid")
                        )
                    })
                    .collect();
                panic!("nodes {ids:?} did not converge within {WAIT_MAX:?}: {summary:?}")
            }
        }
    }

    /// Everything node `id` logged, over all its runs.
    pub fn log(&self, id: u8) -> String {
        let mut text = String::new();
        for run in 1..=self.node(id).runs {
            if let Ok(log) = std::fs::read_to_string(self.log_path(id, run)) {
                let _ = writeln!(text, "----- node {id} run {run} -----\n{log}");
            }
        }
        text
    }
}

/// A router in front of one node: each peer connection goes through the link proxy of its
/// sender, read from the hello.
async fn route(listener: TcpListener, by_sender: Arc<BTreeMap<u64, SocketAddr>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let by_sender = by_sender.clone();
        tokio::spawn(async move {
            let mut hello = [0u8; HELLO_BYTES];
            let read = tokio::time::timeout(WAIT_MAX, stream.read_exact(&mut hello)).await;
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

/// A loopback port nothing listens on now.
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind(loopback(0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        use std::io::Write as _;
        for router in &self.routers {
            router.abort();
        }
        // Every process is killed first (SIGKILL, which also ends a stopped one), before
        // anything here can fail: their `Child`s would do it too, but not if the test process
        // aborts on a panic in this destructor.
        for node in self.nodes.values_mut() {
            if let Some(child) = node.process.as_mut() {
                let _ = child.start_kill();
            }
        }
        if std::thread::panicking() {
            let wanted = std::env::var("ARBOR_CLUSTER_LOG_LINES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(LOG_TAIL_LINES);
            for &id in self.nodes.keys() {
                let log = self.log(id);
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(wanted)..];
                // Not `eprintln!`: it panics when stderr cannot be written (a full disk), and
                // a panic while unwinding aborts the test process.
                let _ = writeln!(
                    std::io::stderr(),
                    "===== node {id}: last {} log lines =====\n{}",
                    tail.len(),
                    tail.join("\n")
                );
            }
        }
    }
}

/// One `mntr` answer.
#[derive(Clone, Debug, Default)]
pub struct Mntr {
    values: BTreeMap<String, String>,
    /// `arbor_follower_lag` lines: (node id, entries behind the leader's last index).
    pub follower_lag: Vec<(u8, u64)>,
}

impl Mntr {
    /// Parses `key<TAB>value` lines.
    pub fn parse(text: &str) -> Mntr {
        let mut report = Mntr::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('\t') else {
                continue;
            };
            if key == "arbor_follower_lag" {
                if let Some((id, lag)) = value.split_once('=')
                    && let (Ok(id), Ok(lag)) = (id.parse(), lag.parse())
                {
                    report.follower_lag.push((id, lag));
                }
                continue;
            }
            report.values.insert(key.to_owned(), value.to_owned());
        }
        report
    }

    /// A value as printed.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    fn number(&self, key: &str) -> u64 {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("mntr has no numeric {key}: {:?}", self.values))
    }

    /// `zk_server_state`: leader, follower, observer or standalone.
    pub fn state(&self) -> &str {
        self.get("zk_server_state").unwrap_or("")
    }

    /// `arbor_raft_term`.
    pub fn term(&self) -> u64 {
        self.number("arbor_raft_term")
    }

    /// `arbor_raft_commit_index`.
    pub fn commit_index(&self) -> u64 {
        self.number("arbor_raft_commit_index")
    }

    /// `arbor_raft_applied_index`.
    pub fn applied_index(&self) -> u64 {
        self.number("arbor_raft_applied_index")
    }

    /// `arbor_raft_last_index`.
    pub fn last_index(&self) -> u64 {
        self.number("arbor_raft_last_index")
    }

    /// `arbor_raft_leader` (0 means none).
    pub fn leader(&self) -> Option<u8> {
        match self.number("arbor_raft_leader") {
            0 => None,
            id => Some(id as u8),
        }
    }

    /// `arbor_leader_changes`.
    pub fn leader_changes(&self) -> u64 {
        self.number("arbor_leader_changes")
    }

    /// `zk_sessions_expired`.
    pub fn sessions_expired(&self) -> u64 {
        self.number("zk_sessions_expired")
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

/// Polls an asynchronous condition until it holds, failing with `what` after [`WAIT_MAX`].
pub async fn until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// The children of `path` as node `id` sees them after a `sync` (so every write completed
/// anywhere before this call is included).
pub async fn children_after_sync(cluster: &Cluster, id: u8, path: &str) -> BTreeSet<String> {
    let client = cluster.connect_to(id).await;
    super::ok(&format!("sync on node {id}"), client.sync(path)).await;
    let children = super::ok(
        &format!("children of {path} on node {id}"),
        client.list_children(path),
    )
    .await;
    children.into_iter().collect()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn drain(mut stdout: BufReader<ChildStdout>) {
    let mut sink = Vec::new();
    loop {
        sink.clear();
        match stdout.read_until(b'\n', &mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
