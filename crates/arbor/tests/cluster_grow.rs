//! Growing an ensemble the ZooKeeper way, with zoo.cfg files as ZooKeeper's reconfig guide
//! writes them: a single server with `standaloneEnabled=false` runs as a cluster of one; two
//! servers started with a configuration that names it and themselves as observers sync from
//! it as learners (it never heard of them: they are in no membership); a `reconfig` makes the
//! three participants. A fourth server, whose file names the three and itself as an
//! observer (so it derives another cluster id than the first three, whose files never changed),
//! takes the cluster's id, joins, and is added as a participant; and then the first server
//! can die without the ensemble stopping.

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::cluster::{four_letter, until};
use support::{
    SESSION_TIMEOUT, connect, connect_with, connector, digest_id, fails, ok, persistent,
};
use zookeeper_client as zk;

const SUPER_PASSWORD: &str = "test";

/// Ports nobody held a moment ago (listeners kept open until all are chosen, so no two are
/// the same).
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a local address").port())
        .collect()
}

/// One `arbor server --zoo-cfg` process; killed when dropped.
struct ZooServer {
    id: u8,
    client: SocketAddr,
    log: PathBuf,
    process: Option<Child>,
}

impl ZooServer {
    /// Writes `dir/zoo<id>.cfg` (with `lines` and a data directory holding `myid`) and
    /// starts the server on it.
    fn start(dir: &Path, id: u8, client: SocketAddr, lines: &str) -> ZooServer {
        let data = dir.join(format!("data{id}"));
        std::fs::create_dir_all(&data).expect("create the data directory");
        std::fs::write(data.join("myid"), format!("{id}\n")).expect("write myid");
        let config = dir.join(format!("zoo{id}.cfg"));
        let text = format!(
            "tickTime=2000\nreconfigEnabled=true\ndataDir={}\n{lines}",
            data.display()
        );
        std::fs::write(&config, text).expect("write zoo.cfg");
        let log = dir.join(format!("server{id}.log"));
        let out = std::fs::File::create(&log).expect("create the log");
        let err = out.try_clone().expect("clone the log handle");
        let super_digest = digest_id("super", SUPER_PASSWORD);
        let process = Command::new(env!("CARGO_BIN_EXE_arbor"))
            .arg("server")
            .arg("--zoo-cfg")
            .arg(&config)
            .arg(format!(
                "-Dzookeeper.DigestAuthenticationProvider.superDigest={super_digest}"
            ))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn arbor");
        ZooServer {
            id,
            client,
            log,
            process: Some(process),
        }
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// `srvr`'s `Mode:` line, if the server answers.
    async fn mode(&self) -> Option<String> {
        let answer = four_letter(self.client, "srvr").await?;
        answer
            .lines()
            .find_map(|line| line.strip_prefix("Mode: ").map(str::to_owned))
    }

    async fn wait_mode(&self, wanted: &str) {
        until(&format!("server {} to be {wanted}", self.id), || async {
            self.mode().await.as_deref() == Some(wanted)
        })
        .await;
    }
}

impl Drop for ZooServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "--- server {} (last lines of {}):\n{}",
                self.id,
                self.log.display(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}

/// The `server.N=` ids a configuration text lists.
fn ids_in(config: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(config)
        .lines()
        .filter_map(|line| line.strip_prefix("server."))
        .filter_map(|rest| rest.split_once('=').and_then(|(id, _)| id.parse().ok()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_join_a_cluster_of_one_and_reconfig_makes_them_participants() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ports = free_ports(12);
    let client = |n: usize| SocketAddr::from(([127, 0, 0, 1], ports[8 + n]));
    let line = |n: usize, role: &str| {
        format!(
            "server.{}=127.0.0.1:{}:{}:{role};{}",
            n + 1,
            ports[n],
            ports[4 + n],
            client(n)
        )
    };

    // A cluster of one, not standalone: it leads its own quorum.
    let mut first = ZooServer::start(
        dir.path(),
        1,
        client(0),
        &format!("standaloneEnabled=false\n{}\n", line(0, "participant")),
    );
    first.wait_mode("leader").await;
    let on_first = connect(&client(0).to_string()).await;
    ok(
        "create /before",
        on_first.create("/before", b"1", &persistent()),
    )
    .await;

    // A membership naming two servers that are not running could commit nothing (not even
    // itself): refused, as ZooKeeper does, and nothing changes.
    let admin = connect_with(
        connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .with_auth("digest", format!("super:{SUPER_PASSWORD}").as_bytes()),
        &client(0).to_string(),
    )
    .await;
    let participants: Vec<String> = (0..3).map(|n| line(n, "participant")).collect();
    let refused = fails(
        "reconfig to servers not yet running",
        admin.update_ensemble(
            zk::EnsembleUpdate::New {
                ensemble: participants.iter().map(String::as_str),
            },
            None,
        ),
    )
    .await;
    // zookeeper-client has no name for -13 (NewConfigNoQuorum).
    assert_eq!(refused, zk::Error::UnexpectedErrorCode(-13));
    let (config, _) = ok("getConfig", on_first.get_config()).await;
    assert_eq!(ids_in(&config), vec![1]);

    // Two servers that name the first and themselves as observers.
    let mut joiners = Vec::new();
    for n in [1, 2] {
        let mut lines = String::new();
        let _ = writeln!(lines, "{}", line(0, "participant"));
        let _ = writeln!(lines, "{}", line(n, "observer"));
        joiners.push(ZooServer::start(dir.path(), n as u8 + 1, client(n), &lines));
    }
    for joiner in &joiners {
        joiner.wait_mode("observer").await;
        let on_joiner = connect(&joiner.client.to_string()).await;
        ok("sync on a joiner", on_joiner.sync("/")).await;
        let (data, _) = ok("read /before on a joiner", on_joiner.get_data("/before")).await;
        assert_eq!(data, b"1", "server {} synced from the leader", joiner.id);
        // Its writes go through the leader, which it is not a member of.
        let path = format!("/from{}", joiner.id);
        ok(
            "create through a joiner",
            on_joiner.create(&path, b"", &persistent()),
        )
        .await;
        ok("sync on the first", on_first.sync("/")).await;
        let stat = ok("read it on the first", on_first.check_stat(&path)).await;
        assert!(
            stat.is_some(),
            "{path} written through server {}",
            joiner.id
        );
    }

    // The leader counts them as learners outside the membership (mntr).
    let mntr = four_letter(client(0), "mntr").await.unwrap_or_default();
    let value = |key: &str| {
        mntr.lines().find_map(|line| {
            line.strip_prefix(key)?
                .strip_prefix('\t')
                .map(str::to_owned)
        })
    };
    assert_eq!(value("arbor_guests").as_deref(), Some("2"), "{mntr}");
    assert_eq!(value("zk_learners").as_deref(), Some("2"), "{mntr}");

    // The membership still names the first server only.
    let (config, stat) = ok("getConfig", on_first.get_config()).await;
    assert_eq!(ids_in(&config), vec![1]);

    let (config, _) = ok(
        "reconfig to three participants",
        admin.update_ensemble(
            zk::EnsembleUpdate::New {
                ensemble: participants.iter().map(String::as_str),
            },
            Some(stat.mzxid),
        ),
    )
    .await;
    assert_eq!(ids_in(&config), vec![1, 2, 3]);
    for joiner in &joiners {
        joiner.wait_mode("follower").await;
    }

    // A fourth server written with the membership of the day: three participants and itself.
    let mut lines = String::new();
    for n in 0..3 {
        let _ = writeln!(lines, "{}", line(n, "participant"));
    }
    let _ = writeln!(lines, "{}", line(3, "observer"));
    let fourth = ZooServer::start(dir.path(), 4, client(3), &lines);
    fourth.wait_mode("observer").await;
    let cluster_id = |id: u8| {
        std::fs::read_to_string(dir.path().join(format!("data{id}/cluster-id")))
            .unwrap_or_else(|error| panic!("server {id}'s cluster-id: {error}"))
    };
    assert_eq!(
        cluster_id(4),
        cluster_id(1),
        "the fourth took the cluster's id"
    );
    let on_fourth = connect(&fourth.client.to_string()).await;
    ok("sync on the fourth", on_fourth.sync("/")).await;
    let stat = ok("read /from3 on the fourth", on_fourth.check_stat("/from3")).await;
    assert!(stat.is_some(), "the fourth synced");
    let joining = line(3, "participant");
    let (config, _) = ok(
        "reconfig -add the fourth",
        admin.update_ensemble(
            zk::EnsembleUpdate::Incremental {
                joinings: vec![joining.as_str()].into_iter(),
                leavings: Vec::<&str>::new().into_iter(),
            },
            None,
        ),
    )
    .await;
    assert_eq!(ids_in(&config), vec![1, 2, 3, 4]);
    fourth.wait_mode("follower").await;
    joiners.push(fourth);

    // They vote now: with the first server gone, three of the four voters elect a leader
    // among themselves and commit.
    first.kill();
    until("a leader among servers 2, 3 and 4", || async {
        let mut modes = Vec::new();
        for joiner in &joiners {
            modes.push(joiner.mode().await);
        }
        modes.iter().any(|mode| mode.as_deref() == Some("leader"))
    })
    .await;
    let on_second = connect(&joiners[0].client.to_string()).await;
    ok(
        "create with the first server down",
        on_second.create("/after", b"2", &persistent()),
    )
    .await;
    for joiner in &joiners[1..] {
        let on_other = connect(&joiner.client.to_string()).await;
        ok("sync", on_other.sync("/")).await;
        let (data, _) = ok("read /after", on_other.get_data("/after")).await;
        assert_eq!(data, b"2", "server {} has the write", joiner.id);
    }
}
