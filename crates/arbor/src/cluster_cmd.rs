//! `arbor cluster`: a local cluster of N `arbor server` processes on loopback, for newcomers
//! and tests.
//!
//! Layout of `--dir` (default `./arbor-cluster`), one directory per node:
//!
//! ```text
//! arbor-cluster/node-1/arbor.toml   the node's configuration (written once, read on resume)
//! arbor-cluster/node-1/data/        its WAL and snapshots
//! arbor-cluster/node-1/server.log   its log (appended to by every run)
//! arbor-cluster/node-1/server.pid   its process id while `arbor cluster` runs it
//! ```
//!
//! Node `i` (1-based) listens for clients on `P + i - 1` and for its peers on
//! `P + 100 + i - 1`, where `P` is `--base-port` (2181 by default); `--base-port 0` picks free
//! ports instead. The configurations are the cluster's only record: running the command again
//! on the same directory reads them back and resumes the cluster with its data.
//!
//! The children run in their own process group, so a Ctrl-C in the terminal reaches only this
//! process, which then stops every child with SIGTERM (a graceful stop: a leader hands over
//! its leadership first) and reaps it. A child that dies on its own stops the whole cluster
//! with an error naming it.
//!
//! The pure parts (port plan, configuration text, `mntr` parsing, leader agreement) are apart
//! from the process handling and tested below.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use arbor_server::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Most nodes a local cluster may have (ZooKeeper ensembles stop at 7 in practice too).
const NODES_MAX: u32 = 7;
/// Nodes of a new cluster when `--nodes` is not given.
const NODES_DEFAULT: u32 = 3;
/// Client port of node 1 when `--base-port` is not given (ZooKeeper's client port).
const BASE_PORT_DEFAULT: u16 = 2181;
/// A node's peer port is its client port plus this.
const PEER_PORT_OFFSET: u16 = 100;
/// How long a child may take to say it serves.
const SERVE_WAIT: Duration = Duration::from_secs(30);
/// How long the cluster may take to agree on a leader once every node serves.
const LEADER_WAIT: Duration = Duration::from_secs(30);
/// How long a child may take to stop after SIGTERM before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(15);
/// Pause between two rounds of `mntr` while waiting for a leader.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Bound on one four-letter-word exchange.
const FOUR_LETTER_WAIT: Duration = Duration::from_secs(2);
/// Largest four-letter-word answer read.
const FOUR_LETTER_REPLY_BYTES_MAX: u64 = 1 << 20;

/// `arbor cluster --nodes N [--dir DIR] [--base-port P]`.
#[derive(clap::Args, Debug)]
pub(crate) struct ClusterArgs {
    /// Number of servers, 1 to 7 [default: 3, or the size of the cluster found in --dir].
    #[arg(long, value_name = "N")]
    nodes: Option<u32>,
    /// Directory of the nodes' configurations, data and logs; an existing cluster there is
    /// resumed.
    #[arg(long, value_name = "DIR", default_value = "arbor-cluster")]
    dir: PathBuf,
    /// Client port of node 1: node i serves clients on P+i-1 and peers on P+100+i-1; 0 picks
    /// free ports [default: 2181].
    #[arg(long = "base-port", value_name = "P")]
    base_port: Option<u16>,
}

/// Where one node listens.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NodeLayout {
    /// The server id, 1..=N.
    id: u8,
    client_address: SocketAddr,
    /// None for a one-node cluster, which runs standalone.
    peer_address: Option<SocketAddr>,
}

/// Runs `arbor cluster` until Ctrl-C or SIGTERM (then `Ok`) or until a node dies (`Err`
/// naming it).
pub(crate) fn run(args: ClusterArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: ClusterArgs) -> Result<()> {
    let mut signals = Signals::install()?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let layout = prepare(&dir, args.nodes, args.base_port)?;
    let exe = std::env::current_exe().context("cannot find the arbor executable")?;

    let mut nodes = Vec::with_capacity(layout.len());
    for node in &layout {
        match spawn_node(&exe, &dir, node) {
            Ok(process) => nodes.push(process),
            Err(error) => {
                stop_all(nodes).await;
                return Err(error);
            }
        }
    }
    let started = tokio::select! {
        started = start_up(&mut nodes) => Some(started),
        () = signals.next() => None,
    };
    let leader = match started {
        Some(Ok(leader)) => leader,
        Some(Err(error)) => {
            stop_all(nodes).await;
            return Err(error);
        }
        None => {
            eprintln!("arbor cluster: interrupted during start-up; stopping the nodes");
            stop_all(nodes).await;
            bail!("interrupted before the cluster was up");
        }
    };
    print!("{}", summary(&dir, &layout, &nodes, leader));
    let _ = std::io::stdout().flush();
    supervise(nodes, &mut signals, &dir).await
}

/// The cluster to run: the one found in `dir`, or a new one written there.
fn prepare(dir: &Path, nodes: Option<u32>, base_port: Option<u16>) -> Result<Vec<NodeLayout>> {
    if let Some(asked) = nodes {
        check_node_count(asked)?;
    }
    if let Some(layout) = load_existing(dir)? {
        let size = layout.len() as u32;
        if let Some(asked) = nodes
            && asked != size
        {
            bail!(
                "{} holds a {size}-node cluster, not {asked}: run without --nodes to resume it, \
                 or pick another --dir",
                dir.display()
            );
        }
        let port = layout[0].client_address.port();
        if let Some(asked) = base_port
            && asked != 0
            && asked != port
        {
            bail!(
                "{} holds a cluster on base port {port}, not {asked}: run without --base-port \
                 to resume it, or pick another --dir",
                dir.display()
            );
        }
        check_not_running(dir, &layout)?;
        check_ports_free(&layout)?;
        return Ok(layout);
    }
    let size = check_node_count(nodes.unwrap_or(NODES_DEFAULT))?;
    let base = base_port.unwrap_or(BASE_PORT_DEFAULT);
    // Held until the configurations are written, so nothing else takes the free ports between
    // choosing and writing them (the children bind them a moment later).
    let mut held = Vec::new();
    let layout = if base == 0 {
        free_layout(size, &mut held)?
    } else {
        let layout = fixed_layout(size, base)?;
        check_ports_free(&layout)?;
        layout
    };
    let cluster_id = new_cluster_id();
    for node in &layout {
        let node_dir = node_dir(dir, node.id);
        std::fs::create_dir_all(&node_dir)
            .with_context(|| format!("cannot create {}", node_dir.display()))?;
        let path = node_dir.join("arbor.toml");
        std::fs::write(&path, render_config(&layout, node.id, cluster_id))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    drop(held);
    Ok(layout)
}

/// `--nodes` checked against 1..=[`NODES_MAX`].
fn check_node_count(nodes: u32) -> Result<u8> {
    if !(1..=NODES_MAX).contains(&nodes) {
        bail!("--nodes {nodes} is out of range: a local cluster has 1 to {NODES_MAX} nodes");
    }
    Ok(nodes as u8)
}

/// Node `i` on client port `base + i - 1` and peer port `base + 100 + i - 1`, all on
/// 127.0.0.1; a single node runs standalone (no peer port).
fn fixed_layout(nodes: u8, base: u16) -> Result<Vec<NodeLayout>> {
    let last = u32::from(base) + u32::from(PEER_PORT_OFFSET) + u32::from(nodes) - 1;
    if last > u32::from(u16::MAX) {
        bail!("--base-port {base} is too high: {nodes} nodes need ports up to {last}, past 65535");
    }
    Ok((1..=nodes)
        .map(|id| {
            let client = base + u16::from(id) - 1;
            NodeLayout {
                id,
                client_address: loopback(client),
                peer_address: (nodes > 1).then(|| loopback(client + PEER_PORT_OFFSET)),
            }
        })
        .collect())
}

/// Free loopback ports from the kernel, kept bound in `held` by the caller until written down.
fn free_layout(nodes: u8, held: &mut Vec<TcpListener>) -> Result<Vec<NodeLayout>> {
    let mut free = || -> Result<SocketAddr> {
        let listener =
            TcpListener::bind(loopback(0)).context("cannot find a free loopback port")?;
        let address = listener.local_addr()?;
        held.push(listener);
        Ok(address)
    };
    let mut layout = Vec::with_capacity(usize::from(nodes));
    for id in 1..=nodes {
        let client_address = free()?;
        let peer_address = if nodes > 1 { Some(free()?) } else { None };
        layout.push(NodeLayout {
            id,
            client_address,
            peer_address,
        });
    }
    Ok(layout)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A cluster id no other cluster on the machine will share, so two clusters started on the
/// same ports one after the other never mix their peers.
fn new_cluster_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(elapsed) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(elapsed.as_nanos());
    }
    hasher.finish()
}

/// The TOML configuration of node `me` (read by `arbor server --config`, run with the node's
/// directory as its working directory, so the cluster directory can be moved).
fn render_config(layout: &[NodeLayout], me: u8, cluster_id: u64) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Written by `arbor cluster`; read back when the cluster is resumed."
    );
    let _ = writeln!(text, "server_id = {me}");
    if let Some(node) = layout.iter().find(|node| node.id == me) {
        let _ = writeln!(text, "client_address = \"{}\"", node.client_address);
    }
    let _ = writeln!(text, "data_dir = \"data\"");
    let _ = writeln!(text, "cluster_id = {cluster_id}");
    for node in layout {
        let Some(peer_address) = node.peer_address else {
            continue;
        };
        let _ = writeln!(text, "\n[[members]]");
        let _ = writeln!(text, "id = {}", node.id);
        let _ = writeln!(text, "peer_address = \"{peer_address}\"");
        let _ = writeln!(text, "client_address = \"{}\"", node.client_address);
    }
    text
}

fn node_dir(dir: &Path, id: u8) -> PathBuf {
    dir.join(format!("node-{id}"))
}

fn config_path(dir: &Path, id: u8) -> PathBuf {
    node_dir(dir, id).join("arbor.toml")
}

fn log_path(dir: &Path, id: u8) -> PathBuf {
    node_dir(dir, id).join("server.log")
}

fn pid_path(dir: &Path, id: u8) -> PathBuf {
    node_dir(dir, id).join("server.pid")
}

/// The cluster written in `dir` by an earlier run, if any.
fn load_existing(dir: &Path) -> Result<Option<Vec<NodeLayout>>> {
    let mut layout = Vec::new();
    for id in 1..=NODES_MAX as u8 {
        let path = config_path(dir, id);
        if !path.exists() {
            break;
        }
        let config = ServerConfig::from_toml_file(&path)?;
        if config.server_id != id {
            bail!(
                "{} says server_id = {}, expected {id}",
                path.display(),
                config.server_id
            );
        }
        layout.push(NodeLayout {
            id,
            client_address: config.client_address,
            peer_address: config.me().map(|member| member.peer_address),
        });
    }
    if layout.is_empty() {
        return Ok(None);
    }
    let with_peers = layout.iter().filter(|n| n.peer_address.is_some()).count();
    if with_peers != 0 && with_peers != layout.len() || layout.len() > 1 && with_peers == 0 {
        bail!(
            "{} holds node configurations that do not form one cluster (node-1 ... node-{})",
            dir.display(),
            layout.len()
        );
    }
    Ok(Some(layout))
}

/// Refuses to start a node whose earlier run (of a killed `arbor cluster`) still runs.
fn check_not_running(dir: &Path, layout: &[NodeLayout]) -> Result<()> {
    for node in layout {
        let Ok(text) = std::fs::read_to_string(pid_path(dir, node.id)) else {
            continue;
        };
        let Ok(pid) = text.trim().parse::<u32>() else {
            continue;
        };
        let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&command).contains("arbor") {
            bail!(
                "node {} of an earlier `arbor cluster` on {} still runs (pid {pid}): stop it \
                 first (kill {pid})",
                node.id,
                dir.display()
            );
        }
    }
    Ok(())
}

/// Fails with the first port of `layout` something else listens on.
fn check_ports_free(layout: &[NodeLayout]) -> Result<()> {
    for node in layout {
        let ports = [
            Some((node.client_address, "client")),
            node.peer_address.map(|address| (address, "peer")),
        ];
        for (address, what) in ports.into_iter().flatten() {
            if let Err(error) = TcpListener::bind(address) {
                bail!(
                    "port {} ({what} port of node {}) is taken: {error}; stop what uses it or \
                     pick another --base-port",
                    address.port(),
                    node.id
                );
            }
        }
    }
    Ok(())
}

/// One child `arbor server`.
struct NodeProcess {
    id: u8,
    pid: u32,
    child: Child,
    /// The child's stdout until its ready line is read; then drained by a task.
    stdout: Option<BufReader<ChildStdout>>,
    log: PathBuf,
    pid_file: PathBuf,
}

fn spawn_node(exe: &Path, dir: &Path, node: &NodeLayout) -> Result<NodeProcess> {
    let node_dir = node_dir(dir, node.id);
    let log = log_path(dir, node.id);
    let mut log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let _ = writeln!(
        log_file,
        "----- started by arbor cluster (pid {}) -----",
        std::process::id()
    );
    let mut command = Command::new(exe);
    command
        .arg("server")
        .arg("--config")
        .arg("arbor.toml")
        .current_dir(&node_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        // Its own process group: a terminal's Ctrl-C reaches only us, and we stop the nodes in
        // order. kill_on_drop is the backstop if we fail before reaping them.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start node {} ({})", node.id, exe.display()))?;
    let pid = child.id().unwrap_or(0);
    let stdout = child.stdout.take().map(BufReader::new);
    let pid_file = pid_path(dir, node.id);
    if let Err(error) = std::fs::write(&pid_file, format!("{pid}\n")) {
        eprintln!(
            "arbor cluster: cannot write {}: {error}",
            pid_file.display()
        );
    }
    Ok(NodeProcess {
        id: node.id,
        pid,
        child,
        stdout,
        log,
        pid_file,
    })
}

/// Waits until every node says it serves and the cluster agrees on a leader; returns its id.
async fn start_up(nodes: &mut [NodeProcess]) -> Result<u8> {
    let mut addresses = Vec::with_capacity(nodes.len());
    for node in nodes.iter_mut() {
        addresses.push((node.id, wait_serving(node).await?));
    }
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    loop {
        for node in nodes.iter_mut() {
            if let Ok(Some(status)) = node.child.try_wait() {
                bail!(
                    "node {} exited before a leader was elected ({}); {}",
                    node.id,
                    describe(status),
                    last_words(&node.log)
                );
            }
        }
        let mut reports = Vec::with_capacity(addresses.len());
        for (id, address) in &addresses {
            let report = four_letter(*address, "mntr")
                .await
                .ok()
                .map(|t| parse_mntr(&t));
            reports.push((*id, report));
        }
        if let Some(leader) = agreed_leader(&reports) {
            return Ok(leader);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "no leader agreed on within {LEADER_WAIT:?}; the nodes' logs are in {}",
                nodes
                    .first()
                    .and_then(|n| n.log.parent().and_then(Path::parent))
                    .map_or_else(String::new, |dir| dir.display().to_string())
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Reads the child's ready line (`arbor <version> serving on <address>`).
async fn wait_serving(node: &mut NodeProcess) -> Result<SocketAddr> {
    let Some(stdout) = node.stdout.as_mut() else {
        bail!("node {} has no stdout", node.id);
    };
    let mut line = String::new();
    let outcome = tokio::time::timeout(SERVE_WAIT, async {
        tokio::select! {
            read = stdout.read_line(&mut line) => Ok(read),
            status = node.child.wait() => Err(status),
        }
    })
    .await;
    let read = match outcome {
        Err(_) => bail!(
            "node {} did not serve within {SERVE_WAIT:?}; {}",
            node.id,
            last_words(&node.log)
        ),
        Ok(Err(status)) => bail!(
            "node {} exited during start-up ({}); {}",
            node.id,
            status.map_or_else(|e| e.to_string(), describe),
            last_words(&node.log)
        ),
        Ok(Ok(read)) => read,
    };
    let address = match read {
        Ok(n) if n > 0 => parse_ready_line(&line),
        _ => None,
    };
    match address {
        Some(address) => {
            if let Some(stdout) = node.stdout.take() {
                tokio::spawn(drain(stdout));
            }
            Ok(address)
        }
        None => {
            // A child that closed its stdout is about to exit: report how, if it does.
            let status = tokio::time::timeout(Duration::from_secs(2), node.child.wait()).await;
            let how = match status {
                Ok(Ok(status)) => describe(status),
                _ => format!("said {:?}", line.trim()),
            };
            bail!(
                "node {} did not start ({how}); {}",
                node.id,
                last_words(&node.log)
            )
        }
    }
}

/// Reads and drops whatever else a child prints, so it never blocks on a full pipe.
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

/// The address in `arbor <version> serving on <address>`.
fn parse_ready_line(line: &str) -> Option<SocketAddr> {
    line.trim()
        .rsplit_once(" serving on ")
        .and_then(|(_, address)| address.parse().ok())
}

/// The end of a node's log, for an error message: the last line, and where the log is.
fn last_words(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    match text.lines().rev().find(|line| !line.trim().is_empty()) {
        Some(line) => format!("last log line: {}; log: {}", line.trim(), log.display()),
        None => format!("log: {}", log.display()),
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Sends one four-letter word and reads the answer to the end.
async fn four_letter(address: SocketAddr, word: &str) -> std::io::Result<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut answer = Vec::new();
        stream
            .take(FOUR_LETTER_REPLY_BYTES_MAX)
            .read_to_end(&mut answer)
            .await?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    match tokio::time::timeout(FOUR_LETTER_WAIT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer",
        )),
    }
}

/// `mntr`'s `key<TAB>value` lines (a repeated key keeps its last value).
fn parse_mntr(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// The leader every node agrees on: all answered, one says it leads (or runs standalone), and
/// every node names it as leader.
fn agreed_leader(reports: &[(u8, Option<BTreeMap<String, String>>)]) -> Option<u8> {
    let mut leader = None;
    for (id, report) in reports {
        let report = report.as_ref()?;
        match report.get("zk_server_state").map(String::as_str) {
            Some("standalone") if reports.len() == 1 => return Some(*id),
            Some("leader") => leader = Some(*id),
            _ => {}
        }
    }
    let leader = leader?;
    let named = leader.to_string();
    reports
        .iter()
        .all(|(_, report)| {
            report
                .as_ref()
                .and_then(|r| r.get("arbor_raft_leader"))
                .is_some_and(|id| *id == named)
        })
        .then_some(leader)
}

/// What the user reads once the cluster is up.
fn summary(dir: &Path, layout: &[NodeLayout], nodes: &[NodeProcess], leader: u8) -> String {
    let connect: Vec<String> = layout
        .iter()
        .map(|node| node.client_address.to_string())
        .collect();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "arbor cluster: {} node{} serving from {} (leader: node {leader})",
        layout.len(),
        if layout.len() == 1 { "" } else { "s" },
        dir.display()
    );
    let _ = writeln!(text, "connect string: {}", connect.join(","));
    for (node, process) in layout.iter().zip(nodes) {
        let _ = writeln!(
            text,
            "node {}: pid {}, client {}, data {}, log {}",
            node.id,
            process.pid,
            node.client_address,
            node_dir(dir, node.id).join("data").display(),
            process.log.display()
        );
    }
    let _ = writeln!(
        text,
        "Ctrl-C stops the cluster; `arbor cluster --dir {}` resumes it.",
        dir.display()
    );
    text
}

/// How a child's run ended.
enum Ended {
    /// It exited on its own.
    Died(String),
    /// It stopped after SIGTERM.
    Stopped(ExitStatus),
    /// It ignored SIGTERM for [`STOP_WAIT`] and was killed.
    Killed,
}

/// Runs until a signal or a child's death, then stops every child.
async fn supervise(nodes: Vec<NodeProcess>, signals: &mut Signals, dir: &Path) -> Result<()> {
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut logs = BTreeMap::new();
    let mut pids = BTreeMap::new();
    for node in nodes {
        logs.insert(node.id, node.log.clone());
        pids.insert(node.id, node.pid);
        tasks.spawn(watch_node(node, stopping.clone()));
    }
    let mut died: Option<(u8, String)> = None;
    let mut results = Vec::new();
    tokio::select! {
        () = signals.next() => {}
        Some(joined) = tasks.join_next() => match joined {
            Ok((id, ended)) => {
                if let Ended::Died(how) = &ended {
                    died = Some((id, how.clone()));
                }
                results.push((id, ended));
            }
            Err(error) => died = Some((0, format!("its supervising task failed: {error}"))),
        },
    }
    if let Some((id, how)) = &died {
        eprintln!(
            "arbor cluster: node {id} (pid {}) exited unexpectedly ({how}); stopping the others",
            pids.get(id).copied().unwrap_or(0)
        );
    } else {
        eprintln!("arbor cluster: stopping {} nodes", pids.len());
    }
    stop.send_replace(true);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(id, _)| *id);
    let mut failures = Vec::new();
    for (id, ended) in &results {
        match ended {
            Ended::Stopped(status) if status.success() => {}
            Ended::Stopped(status) => {
                failures.push(format!("node {id} stopped with {}", describe(*status)));
            }
            Ended::Killed => failures.push(format!(
                "node {id} did not stop within {STOP_WAIT:?} of SIGTERM and was killed"
            )),
            Ended::Died(_) => {}
        }
    }
    if let Some((id, how)) = died {
        let log = logs
            .get(&id)
            .map_or_else(|| dir.display().to_string(), |log| last_words(log));
        return Err(anyhow!(
            "node {id} (pid {}) exited unexpectedly ({how}); {log}",
            pids.get(&id).copied().unwrap_or(0)
        ));
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    eprintln!("arbor cluster: stopped");
    Ok(())
}

/// Watches one child: reports its death, or stops it gracefully when `stopping` turns true.
async fn watch_node(mut node: NodeProcess, mut stopping: watch::Receiver<bool>) -> (u8, Ended) {
    let ended = tokio::select! {
        status = node.child.wait() => {
            Ended::Died(status.map_or_else(|e| e.to_string(), describe))
        }
        // The guard wait_for returns must not live across the stop.
        stop = async { stopping.wait_for(|stop| *stop).await.is_ok() } => {
            let _ = stop;
            stop_child(&mut node).await
        }
    };
    let _ = std::fs::remove_file(&node.pid_file);
    (node.id, ended)
}

/// SIGTERM, then SIGKILL after [`STOP_WAIT`].
async fn stop_child(node: &mut NodeProcess) -> Ended {
    if let Ok(Some(status)) = node.child.try_wait() {
        return Ended::Stopped(status);
    }
    if let Some(pid) = rustix::process::Pid::from_raw(node.pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    match tokio::time::timeout(STOP_WAIT, node.child.wait()).await {
        Ok(Ok(status)) => Ended::Stopped(status),
        _ => {
            let _ = node.child.kill().await;
            Ended::Killed
        }
    }
}

/// Stops children after a failed start-up (errors are already being reported).
async fn stop_all(nodes: Vec<NodeProcess>) {
    for mut node in nodes {
        let _ = stop_child(&mut node).await;
        let _ = std::fs::remove_file(&node.pid_file);
    }
}

/// Ctrl-C and SIGTERM.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }

    /// Resolves on the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_count_is_checked() {
        assert!(check_node_count(0).is_err());
        assert_eq!(check_node_count(1).unwrap(), 1);
        assert_eq!(check_node_count(7).unwrap(), 7);
        let error = check_node_count(8).unwrap_err().to_string();
        assert_eq!(
            error,
            "--nodes 8 is out of range: a local cluster has 1 to 7 nodes"
        );
    }

    #[test]
    fn fixed_layout_numbers_ports_from_the_base() {
        let layout = fixed_layout(3, 2181).unwrap();
        let ports: Vec<(u16, u16)> = layout
            .iter()
            .map(|n| (n.client_address.port(), n.peer_address.unwrap().port()))
            .collect();
        assert_eq!(ports, vec![(2181, 2281), (2182, 2282), (2183, 2283)]);
        assert!(layout.iter().all(|n| n.client_address.ip().is_loopback()));
        let single = fixed_layout(1, 2181).unwrap();
        assert_eq!(single[0].peer_address, None);
        assert!(fixed_layout(7, 65_429).is_ok());
        assert!(fixed_layout(7, 65_430).is_err());
    }

    #[test]
    fn free_layout_holds_distinct_ports() {
        let mut held = Vec::new();
        let layout = free_layout(3, &mut held).unwrap();
        assert_eq!(held.len(), 6);
        let mut ports: Vec<u16> = layout
            .iter()
            .flat_map(|n| [n.client_address, n.peer_address.unwrap()])
            .map(|a| a.port())
            .collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 6);
    }

    #[test]
    fn rendered_configs_are_read_back_as_one_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let layout = fixed_layout(3, 2181).unwrap();
        for node in &layout {
            let path = config_path(dir.path(), node.id);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, render_config(&layout, node.id, 99)).unwrap();
        }
        let configs: Vec<ServerConfig> = layout
            .iter()
            .map(|n| ServerConfig::from_toml_file(&config_path(dir.path(), n.id)).unwrap())
            .collect();
        for (config, node) in configs.iter().zip(&layout) {
            assert_eq!(config.server_id, node.id);
            assert_eq!(config.client_address, node.client_address);
            assert_eq!(config.data_dir, PathBuf::from("data"));
            assert_eq!(config.cluster_id, Some(99));
            assert_eq!(config.members.len(), 3);
            assert!(config.is_clustered());
            config.validate_members().unwrap();
            assert_eq!(config.effective_cluster_id(), 99);
        }
        assert_eq!(load_existing(dir.path()).unwrap(), Some(layout));
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(load_existing(empty.path()).unwrap(), None);
    }

    #[test]
    fn a_single_node_runs_standalone() {
        let layout = fixed_layout(1, 2181).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = config_path(dir.path(), 1);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, render_config(&layout, 1, 5)).unwrap();
        let config = ServerConfig::from_toml_file(&path).unwrap();
        assert!(!config.is_clustered());
        assert_eq!(load_existing(dir.path()).unwrap(), Some(layout));
    }

    #[test]
    fn resuming_refuses_other_sizes_and_ports() {
        let dir = tempfile::tempdir().unwrap();
        let layout = fixed_layout(3, 40_000).unwrap();
        for node in &layout {
            let path = config_path(dir.path(), node.id);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, render_config(&layout, node.id, 1)).unwrap();
        }
        let error = prepare(dir.path(), Some(5), None).unwrap_err().to_string();
        assert!(error.contains("holds a 3-node cluster, not 5"), "{error}");
        let error = prepare(dir.path(), None, Some(2181))
            .unwrap_err()
            .to_string();
        assert!(error.contains("on base port 40000, not 2181"), "{error}");
    }

    #[test]
    fn a_taken_port_is_named() {
        let taken = TcpListener::bind(loopback(0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let layout = vec![NodeLayout {
            id: 2,
            client_address: loopback(port),
            peer_address: None,
        }];
        let error = check_ports_free(&layout).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("port {port} (client port of node 2) is taken: ")),
            "{error}"
        );
    }

    #[test]
    fn ready_line_gives_the_address() {
        assert_eq!(
            parse_ready_line("arbor 0.1.0 serving on 127.0.0.1:2181\n"),
            Some(loopback(2181))
        );
        assert_eq!(parse_ready_line("something else"), None);
    }

    fn report(state: &str, leader: u8) -> Option<BTreeMap<String, String>> {
        Some(parse_mntr(&format!(
            "zk_version\t3.9.4\nzk_server_state\t{state}\narbor_raft_leader\t{leader}\n"
        )))
    }

    #[test]
    fn leader_needs_everyone_to_agree() {
        let agreed = [
            (1, report("follower", 2)),
            (2, report("leader", 2)),
            (3, report("follower", 2)),
        ];
        assert_eq!(agreed_leader(&agreed), Some(2));
        let behind = [
            (1, report("follower", 0)),
            (2, report("leader", 2)),
            (3, report("follower", 2)),
        ];
        assert_eq!(agreed_leader(&behind), None);
        let silent = [
            (1, None),
            (2, report("leader", 2)),
            (3, report("follower", 2)),
        ];
        assert_eq!(agreed_leader(&silent), None);
        let none = [(1, report("follower", 0)), (2, report("follower", 0))];
        assert_eq!(agreed_leader(&none), None);
        assert_eq!(agreed_leader(&[(1, report("standalone", 0))]), Some(1));
    }
}
