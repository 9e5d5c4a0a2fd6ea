// ---- arbor harness: compat/zookeeper-client/harness.rs (spliced in by run.sh) ----
//
// Stands in for the testcontainers/Docker harness of zookeeper-client's tests/zookeeper.rs:
// the same `Cluster` API, but every "container" is an `arbor server --zoo-cfg` process on
// loopback. Environment:
//   ARBOR_BIN          the arbor binary (required)
//   ARBOR_ZKC_NODES    servers in a default cluster (`Cluster::new()` and friends): 1 or 3
//   ARBOR_ZKC_READY_S  seconds a cluster may take to boot (default 60)

use std::io::{Read as _, Write as _};
use std::net::TcpStream as StdTcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Where a zoo.cfg, the data and the log of one server live inside the cluster's directory.
fn server_paths(root: &Path, id: u32) -> (PathBuf, PathBuf, PathBuf) {
    (root.join(format!("zoo{id}.cfg")), root.join(format!("zoo{id}.data")), root.join(format!("zoo{id}.log")))
}

/// Ports the kernel hands out now. The listeners stay open until every port is chosen, so a
/// cluster never gets the same port twice; another process could still take one before arbor
/// binds it (`boot` then starts over on new ports).
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<_> =
        (0..count).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("harness: bind 127.0.0.1:0")).collect();
    listeners.iter().map(|l| l.local_addr().expect("harness: local_addr").port()).collect()
}

fn default_cluster_size() -> usize {
    match std::env::var("ARBOR_ZKC_NODES").as_deref() {
        Err(_) | Ok("1") => 1,
        Ok("3") => 3,
        Ok(other) => panic!("harness: ARBOR_ZKC_NODES={other}: expected 1 or 3"),
    }
}

fn arbor_binary() -> PathBuf {
    match std::env::var_os("ARBOR_BIN") {
        Some(path) if Path::new(&path).is_file() => PathBuf::from(path),
        other => {
            panic!("harness: ARBOR_BIN={other:?} is not the arbor binary (compat/zookeeper-client/run.sh sets it)")
        }
    }
}

/// Sends a four-letter word to a plaintext client port and returns the answer ("" when the
/// server does not answer).
fn four_letter_word(port: u16, word: &str) -> String {
    let Ok(mut stream) =
        StdTcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(1))
    else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = String::new();
    if stream.write_all(word.as_bytes()).is_ok() {
        let _ = stream.read_to_string(&mut answer);
    }
    answer
}

fn mode_of(port: u16) -> Option<String> {
    four_letter_word(port, "srvr").lines().find_map(|line| line.strip_prefix("Mode: ").map(str::to_owned))
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// How to start one server of a cluster.
struct ServerPlan {
    id: u32,
    /// zoo.cfg without its dataDir line.
    config: String,
    plain_port: u16,
    client_port: u16,
}

/// One arbor server: what `Container` was to the Docker harness.
struct ArborServer {
    id: u32,
    /// The port tests connect to: the TLS port when the cluster has one, else the plain one.
    client_port: u16,
    /// A plaintext client port, for four-letter words.
    plain_port: u16,
    config_file: PathBuf,
    log_file: PathBuf,
    properties: Vec<String>,
    process: Mutex<Option<Child>>,
}

impl ArborServer {
    /// Starts the server again (after `stop`), with the same configuration and data.
    pub fn start(&self) {
        let mut process = self.process.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if process.is_some() {
            return;
        }
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log_file).expect("harness: open log");
        let stderr = log.try_clone().expect("harness: clone log handle");
        let child = Command::new(arbor_binary())
            .arg("server")
            .arg("--zoo-cfg")
            .arg(&self.config_file)
            .args(&self.properties)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .expect("harness: spawn arbor");
        *process = Some(child);
    }

    /// Stops the server as `docker stop` does: SIGTERM, then SIGKILL after ten seconds.
    pub fn stop(&self) {
        let Some(mut child) = self.process.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else {
            return;
        };
        let terminated = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
        let deadline = Instant::now() + Duration::from_secs(10);
        while terminated && Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn kill(&self) {
        if let Some(mut child) = self.process.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The host port behind a container port; every container port the tests ask for is the
    /// client port 2181.
    pub fn get_host_port(&self, container_port: u16) -> u16 {
        assert_eq!(container_port, 2181, "harness: only the client port is mapped");
        self.client_port
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.process
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }
}

/// A server's output, as testcontainers' `LogStream` offered it.
struct LogStream {
    log_file: PathBuf,
}

impl LogStream {
    /// Blocks until the server's log holds `message` (arbor logs ZooKeeper's "Read-only server
    /// started", which test_readonly waits for, too).
    pub fn wait_for_message(&self, message: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if fs::read_to_string(&self.log_file).unwrap_or_default().contains(message) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("harness: no {message:?} in {} within 120 s", self.log_file.display()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

struct ClusterOptions<'a> {
    /// The ZooKeeper image tag; arbor is one server, so only the default tag can be honoured.
    tag: &'a str,
    /// Docker's network mode: arbor always runs on the host's loopback.
    #[allow(dead_code)]
    network: Option<&'a str>,
    /// Files to place at container paths; the harness writes them under the cluster's
    /// directory and rewrites the container path wherever a property or config names it.
    volumes: HashMap<&'a str, &'a str>,
    /// JVM system properties (`-Dkey=value`), handed to arbor as they are.
    properties: Vec<&'a str>,
    /// zoo.cfg lines for every server.
    configs: Vec<&'a str>,
    /// An explicit ensemble: each server's id and its `server.N=` lines.
    servers: Vec<(u32, &'a [&'a str])>,
}

impl Default for ClusterOptions<'_> {
    fn default() -> Self {
        Self {
            tag: ZK_IMAGE_TAG,
            network: None,
            volumes: HashMap::new(),
            properties: Vec::new(),
            configs: Vec::new(),
            servers: Vec::new(),
        }
    }
}

struct Cluster {
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
    servers: Vec<ArborServer>,
    /// Configs, data, logs and certificates of every server, removed with the cluster.
    dir: Arc<TempDir>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.servers.iter().for_each(ArborServer::kill);
    }
}

/// The client port named by the `server.N=...;[host:]port` line of server `id`.
fn client_port_of(id: u32, lines: &[&str]) -> u16 {
    let prefix = format!("server.{id}=");
    lines
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.split_once(';'))
        .and_then(|(_, client)| client.rsplit(':').next())
        .and_then(|port| port.trim().parse().ok())
        .unwrap_or_else(|| panic!("harness: no client port for server {id} in {lines:?}"))
}

impl Cluster {
    /// A default cluster: ARBOR_ZKC_NODES servers, TLS as `ZK_TEST_TLS` says.
    pub async fn new() -> Self {
        Self::with_options(ClusterOptions::default(), None).await
    }

    /// A default cluster whose servers get these `-D` system properties too.
    pub async fn with_properties(properties: Vec<&'_ str>) -> Self {
        let options = ClusterOptions { properties, ..ClusterOptions::default() };
        Self::with_options(options, None).await
    }

    /// Boots a cluster; with no `encryption`, TLS or not as `ZK_TEST_TLS` says (random when
    /// unset, as upstream).
    pub async fn with_options(options: ClusterOptions<'_>, encryption: Option<Encryption>) -> Self {
        let dir = Arc::new(tempdir().expect("harness: temporary directory"));
        #[cfg(feature = "tls")]
        let tls = match encryption {
            Some(Encryption::Tls) => Some(Tls::new(dir.clone())),
            Some(Encryption::Raw) => None,
            None => env_toggle("ZK_TEST_TLS").then(|| Tls::new(dir.clone())),
        };
        #[cfg(not(feature = "tls"))]
        let _ = encryption;
        let mut cluster = Self {
            #[cfg(feature = "tls")]
            tls,
            servers: Vec::new(),
            dir,
        };
        println!("starting {} arbor {} ...", if cluster.tls_enabled() { "tls" } else { "plaintext" }, options.tag);
        cluster.boot(options).await;
        cluster
    }

    fn tls_enabled(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// zoo.cfg lines that give a server its TLS key and trust stores (as the Docker harness
    /// gave ZooKeeper), plus the secure client port when there is one.
    fn tls_lines(&self, secure_port: Option<u16>) -> String {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_ref() {
            let mut lines = format!(
                "ssl.clientAuth=need\nssl.keyStore.location={}\nssl.trustStore.location={}\n",
                tls.server_identity_file.display(),
                tls.ca_cert_file.display()
            );
            if let Some(port) = secure_port {
                writeln!(&mut lines, "secureClientPort={port}").unwrap();
            }
            return lines;
        }
        let _ = secure_port;
        String::new()
    }

    pub async fn boot(&mut self, options: ClusterOptions<'_>) {
        assert_eq!(
            options.tag, ZK_IMAGE_TAG,
            "harness: arbor cannot stand in for ZooKeeper {} (see compat/zookeeper-client/skipped.toml)",
            options.tag
        );
        let root = self.dir.path().to_owned();
        let mut volume_paths = Vec::new();
        for (container_path, content) in options.volumes.iter() {
            let relative = container_path.trim_start_matches('/');
            let host_path = root.join("volumes").join(relative);
            fs::create_dir_all(host_path.parent().expect("harness: volume parent")).expect("harness: volume directory");
            fs::write(&host_path, content).expect("harness: write a volume file");
            volume_paths.push((container_path.to_string(), host_path.display().to_string()));
        }
        let rewrite = |text: &str| -> String {
            volume_paths.iter().fold(text.to_owned(), |text, (from, to)| text.replace(from.as_str(), to))
        };
        // What the Docker harness gave every ZooKeeper server.
        let mut properties = vec![
            "-Dzookeeper.enableEagerACLCheck=true".to_owned(),
            "-Dzookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=".to_owned(),
        ];
        properties.extend(options.properties.iter().map(|property| rewrite(property)));
        let mut common = String::from("tickTime=2000\ninitLimit=5\nsyncLimit=2\n");
        for config in options.configs.iter() {
            writeln!(&mut common, "{}", rewrite(config)).unwrap();
        }

        // A default cluster gets ports nobody held a moment ago; if someone takes one before
        // arbor binds it, the cluster boots again on other ports.
        const ATTEMPTS: u32 = 3;
        for attempt in 1..=ATTEMPTS {
            let plans = if options.servers.is_empty() {
                self.default_plans(&common)
            } else {
                self.explicit_plans(&common, &options.servers)
            };
            self.launch(&root.join(format!("boot{attempt}")), plans, &properties);
            match self.wait_ready().await {
                Ok(()) => return,
                Err(report) => {
                    let port_taken = self.servers.iter().any(|server| {
                        fs::read_to_string(&server.log_file).unwrap_or_default().contains("Address already in use")
                    });
                    self.servers.drain(..).for_each(|server| server.kill());
                    if !(port_taken && options.servers.is_empty() && attempt < ATTEMPTS) {
                        panic!("{report}");
                    }
                    println!("harness: a port was taken during boot; booting again on other ports");
                }
            }
        }
    }

    /// `Cluster::new()`'s servers: ARBOR_ZKC_NODES of them on free loopback ports, each with a
    /// plaintext port for four-letter words and, for a TLS cluster, the secure port tests use.
    fn default_plans(&self, common: &str) -> Vec<ServerPlan> {
        let size = default_cluster_size();
        let ports = free_ports(size * 4);
        let mut members = String::new();
        for (index, block) in ports.chunks(4).enumerate() {
            let (peer, election, client) = (block[0], block[1], block[2]);
            writeln!(&mut members, "server.{}=127.0.0.1:{peer}:{election};127.0.0.1:{client}", index + 1).unwrap();
        }
        let tls = self.tls_enabled();
        let mut plans = Vec::new();
        for (index, block) in ports.chunks(4).enumerate() {
            let (plain_port, secure_port) = (block[2], block[3]);
            let mut config = format!("{common}clientPort={plain_port}\n");
            if size > 1 {
                config += &members;
            }
            config += &self.tls_lines(Some(secure_port));
            let client_port = if tls { secure_port } else { plain_port };
            plans.push(ServerPlan { id: index as u32 + 1, config, plain_port, client_port });
        }
        plans
    }

    /// An ensemble the test spelled out with `server.N=` lines and fixed ports, written as the
    /// Docker harness wrote it (no clientPort: each server's line names its client port).
    fn explicit_plans(&self, common: &str, servers: &[(u32, &[&str])]) -> Vec<ServerPlan> {
        let mut plans = Vec::new();
        for (id, lines) in servers {
            let mut config = format!("{common}{}\n", lines.join("\n"));
            config += &self.tls_lines(None);
            let port = client_port_of(*id, lines);
            plans.push(ServerPlan { id: *id, config, plain_port: port, client_port: port });
        }
        plans
    }

    /// Writes each server's zoo.cfg (and myid when clustered) under `root` and starts it.
    fn launch(&mut self, root: &Path, plans: Vec<ServerPlan>, properties: &[String]) {
        let clustered = plans.len() > 1;
        for plan in plans {
            let (config_file, data_dir, log_file) = server_paths(root, plan.id);
            fs::create_dir_all(&data_dir).expect("harness: create the data directory");
            if clustered {
                fs::write(data_dir.join("myid"), format!("{}\n", plan.id)).expect("harness: write myid");
            }
            let config = format!("{}dataDir={}\n", plan.config, data_dir.display());
            fs::write(&config_file, config).expect("harness: write zoo.cfg");
            let server = ArborServer {
                id: plan.id,
                client_port: plan.client_port,
                plain_port: plan.plain_port,
                config_file,
                log_file,
                properties: properties.to_vec(),
                process: Mutex::new(None),
            };
            server.start();
            self.servers.push(server);
        }
    }

    /// Waits as the Docker harness's health check (`zkServer.sh status`) did: every server
    /// reports a mode, and a clustered one only once some server leads. The error is a report
    /// with each server's log.
    async fn wait_ready(&self) -> Result<(), String> {
        let limit = std::env::var("ARBOR_ZKC_READY_S").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
        let deadline = Instant::now() + Duration::from_secs(limit);
        let report = |headline: String| {
            let logs: Vec<String> = self
                .servers
                .iter()
                .map(|s| format!("--- server {} ({:?}):\n{}", s.id, mode_of(s.plain_port), log_tail(&s.log_file)))
                .collect();
            format!("harness: {headline}\n{}", logs.join("\n"))
        };
        loop {
            if let Some((id, status)) = self.servers.iter().find_map(|s| s.exited().map(|status| (s.id, status))) {
                return Err(report(format!("arbor server {id} exited ({status}) during boot")));
            }
            let modes: Vec<Option<String>> = self.servers.iter().map(|s| mode_of(s.plain_port)).collect();
            let ready = match modes.as_slice() {
                [mode] => mode.as_deref().is_some_and(|m| m == "standalone" || m == "leader"),
                _ => {
                    modes.iter().all(|mode| matches!(mode.as_deref(), Some("leader" | "follower" | "observer")))
                        && modes.iter().any(|mode| mode.as_deref() == Some("leader"))
                }
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(report(format!("the cluster was not ready within {limit} s")));
            }
            Timer::after(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&self) {
        self.servers.iter().for_each(ArborServer::stop);
    }

    pub fn by_id(&self, id: u32) -> &ArborServer {
        self.servers.iter().find(|server| server.id == id).unwrap_or_else(|| panic!("harness: no server {id}"))
    }

    #[allow(dead_code)]
    pub fn logs(&self, id: u32) -> LogStream {
        let server = self.by_id(id);
        LogStream { log_file: server.log_file.clone() }
    }

    /// The connect string naming every server (`tcp+tls://` endpoints when the cluster
    /// speaks TLS, so the client uses TLS whatever its connector's default).
    pub fn url(&self, chroot: Option<&str>) -> String {
        let scheme = if self.tls_enabled() { "tcp+tls://" } else { "" };
        let mut url = String::new();
        for (index, server) in self.servers.iter().enumerate() {
            let separator = if index == 0 { "" } else { "," };
            write!(&mut url, "{separator}{scheme}127.0.0.1:{}", server.client_port).unwrap();
        }
        url + chroot.unwrap_or("")
    }

    /// A connector that carries the cluster's client certificate when it speaks TLS.
    pub fn connector(&self) -> zk::Connector {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return zk::Client::connector().with_tls(tls.options());
        }
        zk::Client::connector()
    }

    /// Connects or panics with the error's Debug form, as upstream's `unwrap()` did:
    /// test_auth_failed expects "AuthFailed" in the panic message.
    pub async fn client(&self, chroot: Option<&str>) -> zk::Client {
        match self.custom_client(chroot, |connector| connector).await {
            Ok(client) => client,
            Err(error) => panic!("harness: cannot connect to {}: {error:?}", self.url(chroot)),
        }
    }

    /// A client with the second client certificate (CN=client_x) of a TLS cluster.
    #[cfg(feature = "tls")]
    pub async fn client_x(&self, chroot: Option<&str>) -> zk::Client {
        let other_identity = |connector: zk::Connector| match &self.tls {
            Some(tls) => connector.with_tls(tls.options_x()),
            None => connector,
        };
        match self.custom_client(chroot, other_identity).await {
            Ok(client) => client,
            Err(error) => panic!("harness: cannot connect to {}: {error:?}", self.url(chroot)),
        }
    }

    pub async fn custom_client(
        &self,
        chroot: Option<&str>,
        custom: impl FnOnce(zk::Connector) -> zk::Connector,
    ) -> Result<zk::Client, zk::Error> {
        custom(self.connector()).connect(&self.url(chroot)).await
    }
}
// ---- end of the arbor harness ----
