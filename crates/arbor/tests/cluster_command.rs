//! `arbor cluster --nodes N`: the local cluster for newcomers and tests, run as a user does. It
//! prints a connect string that works, Ctrl-C (SIGINT) stops every node and exits 0, running it
//! again on the same directory resumes the cluster with its data, a node that dies stops the
//! cluster with an error naming it, and bad arguments get a one-line error.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use rustix::process::{Pid, Signal, kill_process, test_kill_process};
use support::{connect, ok, persistent, within};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// A running `arbor cluster`; its nodes are killed if the test ends without stopping it.
struct LocalCluster {
    process: Child,
    stdout: BufReader<ChildStdout>,
    /// The connect string it printed.
    connect: String,
    /// Node id -> process id, as printed.
    pids: BTreeMap<u8, i32>,
}

impl LocalCluster {
    /// Runs `arbor cluster <args> --dir <dir>` and reads its summary.
    async fn start(dir: &Path, args: &[&str]) -> LocalCluster {
        let mut process = Command::new(env!("CARGO_BIN_EXE_arbor"))
            .arg("cluster")
            .args(args)
            .arg("--dir")
            .arg(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("arbor cluster starts");
        let mut stdout = BufReader::new(process.stdout.take().expect("a stdout pipe"));
        let mut connect = None;
        let mut pids = BTreeMap::new();
        let mut seen = String::new();
        within("arbor cluster to print its summary", async {
            loop {
                let mut line = String::new();
                let read = stdout.read_line(&mut line).await.expect("read stdout");
                if read == 0 {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = process.stderr.take() {
                        let _ = pipe.read_to_string(&mut stderr).await;
                    }
                    panic!("arbor cluster ended before its summary:\n{seen}\nstderr:\n{stderr}");
                }
                seen.push_str(&line);
                if let Some(string) = line.trim().strip_prefix("connect string: ") {
                    connect = Some(string.to_owned());
                }
                if let Some(rest) = line.trim().strip_prefix("node ")
                    && let Some((id, rest)) = rest.split_once(": pid ")
                    && let Some((pid, _)) = rest.split_once(',')
                {
                    pids.insert(
                        id.parse().expect("a node id"),
                        pid.parse().expect("a process id"),
                    );
                }
                if line.starts_with("Ctrl-C stops the cluster") {
                    break;
                }
            }
        })
        .await;
        let connect = connect.unwrap_or_else(|| panic!("no connect string in:\n{seen}"));
        LocalCluster {
            process,
            stdout,
            connect,
            pids,
        }
    }

    fn addresses(&self) -> Vec<String> {
        self.connect.split(',').map(str::to_owned).collect()
    }

    fn signal(&self, signal: Signal) {
        let pid = self.process.id().expect("arbor cluster runs") as i32;
        kill_process(Pid::from_raw(pid).expect("a pid"), signal).expect("signal arbor cluster");
    }

    /// Waits for `arbor cluster` to exit; returns its status and what it wrote on stderr.
    async fn exit(mut self) -> (ExitStatus, String, BTreeMap<u8, i32>) {
        let mut stderr = String::new();
        let mut pipe = self.process.stderr.take().expect("a stderr pipe");
        let mut rest = String::new();
        let (status, _, _) = within("arbor cluster to exit", async {
            tokio::join!(
                self.process.wait(),
                pipe.read_to_string(&mut stderr),
                self.stdout.read_to_string(&mut rest)
            )
        })
        .await;
        let pids = std::mem::take(&mut self.pids);
        (status.expect("wait for arbor cluster"), stderr, pids)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // A failing test must not leave servers behind.
        for &pid in self.pids.values() {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
}

fn alive(pid: i32) -> bool {
    Pid::from_raw(pid).is_some_and(|pid| test_kill_process(pid).is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbor_cluster_prints_a_working_connect_string_stops_on_ctrl_c_and_resumes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cluster_dir = dir.path().join("local");
    let local = LocalCluster::start(&cluster_dir, &["--nodes", "3", "--base-port", "0"]).await;
    assert_eq!(local.pids.len(), 3, "one line per node");
    let addresses = local.addresses();
    assert_eq!(addresses.len(), 3, "connect string {}", local.connect);

    let client = connect(&local.connect).await;
    ok(
        "create through the connect string",
        client.create("/hello", b"world", &persistent()),
    )
    .await;
    for address in &addresses {
        let on_node = connect(address).await;
        ok("sync", on_node.sync("/hello")).await;
        let (value, _) = ok(&format!("read on {address}"), on_node.get_data("/hello")).await;
        assert_eq!(value, b"world", "node at {address}");
    }
    drop(client);

    local.signal(Signal::INT);
    let (status, stderr, pids) = local.exit().await;
    assert!(status.success(), "Ctrl-C: {status}; stderr:\n{stderr}");
    for (id, pid) in &pids {
        assert!(
            !alive(*pid),
            "node {id} (pid {pid}) still runs after Ctrl-C"
        );
    }

    // The same directory again: the same addresses, the same data.
    let resumed = LocalCluster::start(&cluster_dir, &[]).await;
    assert_eq!(resumed.addresses(), addresses, "resumed on the same ports");
    let client = connect(&resumed.connect).await;
    ok("sync", client.sync("/hello")).await;
    let (value, _) = ok("read after resuming", client.get_data("/hello")).await;
    assert_eq!(value, b"world");
    drop(client);
    resumed.signal(Signal::TERM);
    let (status, stderr, pids) = resumed.exit().await;
    assert!(status.success(), "SIGTERM: {status}; stderr:\n{stderr}");
    for (id, pid) in &pids {
        assert!(
            !alive(*pid),
            "node {id} (pid {pid}) still runs after SIGTERM"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbor_cluster_stops_and_names_a_node_that_dies() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let local = LocalCluster::start(
        &dir.path().join("local"),
        &["--nodes", "3", "--base-port", "0"],
    )
    .await;
    let victim = local.pids[&2];
    kill_process(Pid::from_raw(victim).expect("a pid"), Signal::KILL).expect("kill node 2");
    let (status, stderr, pids) = local.exit().await;
    assert!(!status.success(), "a node died, yet: {status}");
    assert!(
        stderr.contains("node 2") && stderr.contains(&format!("pid {victim}")),
        "the error names the node: {stderr}"
    );
    for (id, pid) in &pids {
        assert!(!alive(*pid), "node {id} (pid {pid}) still runs");
    }
}

/// Runs `arbor cluster` expecting it to refuse at once; returns its stderr.
async fn refused(args: &[&str]) -> String {
    let output = within(
        "arbor cluster to refuse",
        Command::new(env!("CARGO_BIN_EXE_arbor"))
            .arg("cluster")
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("run arbor cluster");
    assert!(
        !output.status.success(),
        "arbor cluster {args:?} did not fail"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbor_cluster_refuses_bad_sizes_and_taken_ports_in_one_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bad");
    let path = path.to_str().expect("a UTF-8 path");
    for nodes in ["0", "8"] {
        let stderr = refused(&["--nodes", nodes, "--dir", path]).await;
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("out of range"), "{stderr}");
    }
    // Node 1's client port is taken by someone else.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("its address").port().to_string();
    let path = dir.path().join("taken");
    let stderr = refused(&[
        "--nodes",
        "3",
        "--base-port",
        &port,
        "--dir",
        path.to_str().expect("a UTF-8 path"),
    ])
    .await;
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!("port {port}")) && stderr.contains("taken"),
        "{stderr}"
    );
}
