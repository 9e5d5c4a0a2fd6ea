//! A three-server cluster whose peer connections all use mutual TLS (`sslQuorum` with PEM
//! quorum stores, set in the TOML file as an operator would), in this process: a write
//! through one server is read through another after a sync.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use arbor_proto::{Acl, CreateRequest, GetDataRequest, Reader, Request, SyncRequest};
use arbor_server::{Server, ServerConfig};
use bytes::Bytes;
use support::{Conn, Pki, open_tcp, within};
use tokio::net::TcpStream;

/// A loopback port nobody listens on (bound once by the OS, then released).
fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_replicates_over_tls_between_servers() {
    let dir = tempfile::tempdir().expect("a directory");
    let pki = Pki::new(dir.path(), "quorum");
    std::fs::write(
        dir.path().join("node.ext"),
        "extendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("ext");
    pki.issue_with("quorum", "node", "/CN=arbor-node");
    let peers: Vec<SocketAddr> = (0..3).map(|_| free_address()).collect();
    let members: String = peers
        .iter()
        .enumerate()
        .map(|(i, address)| format!("  {{ id = {}, peer_address = \"{address}\" }},\n", i + 1))
        .collect();
    let mut configs = Vec::new();
    for id in 1..=3 {
        let toml = format!(
            "client_address = \"127.0.0.1:0\"\n\
             data_dir = \"{data}\"\n\
             server_id = {id}\n\
             ssl_quorum = true\n\
             members = [\n{members}]\n\
             [quorum_tls]\n\
             key_store = {{ location = \"{key}\" }}\n\
             trust_store = {{ location = \"{trust}\" }}\n",
            data = dir.path().join(format!("data-{id}")).display(),
            key = pki.path("node-bundle.pem").display(),
            trust = pki.path("quorum-ca.pem").display(),
        );
        let path = dir.path().join(format!("arbor-{id}.toml"));
        std::fs::write(&path, toml).expect("write the TOML file");
        configs.push(ServerConfig::from_toml_file(&path).expect("a valid TOML file"));
    }
    let mut configs = configs.into_iter();
    let (one, two, three) = (
        configs.next().expect("1"),
        configs.next().expect("2"),
        configs.next().expect("3"),
    );
    // Each start waits for the cluster to catch up, so they start together.
    let (one, two, three) = within(
        "three servers to start",
        futures_join(Server::start(one), Server::start(two), Server::start(three)),
    )
    .await;
    let servers: Vec<Server> = [one, two, three]
        .into_iter()
        .map(|started| started.unwrap_or_else(|error| panic!("server start: {error}")))
        .collect();

    let mut writer = session_once_led(servers[0].local_address()).await;
    let create = Request::Create(CreateRequest {
        path: "/over-tls".into(),
        data: Some(Bytes::from_static(b"replicated")),
        acl: Acl::open_unsafe(),
        flags: 0,
    });
    // Until a leader is elected a write may be refused; retry within the wait.
    within("the create to succeed", async {
        loop {
            match writer.code(&create).await {
                0 => return,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await;
    let mut reader = session_once_led(servers[2].local_address()).await;
    let sync = Request::Sync(SyncRequest {
        path: "/over-tls".into(),
    });
    assert_eq!(reader.code(&sync).await, 0);
    let reply = reader
        .call(&Request::GetData(GetDataRequest {
            path: "/over-tls".into(),
            watch: false,
        }))
        .await;
    assert_eq!(reply.err, 0, "the write is readable on another server");
    let data = Reader::from_bytes(&reply.body)
        .read_buffer_opt()
        .expect("getData data");
    assert_eq!(data.as_deref(), Some(&b"replicated"[..]));
    for server in servers {
        within("a server to stop", server.shutdown())
            .await
            .unwrap_or_else(|error| panic!("shutdown: {error}"));
    }
}

/// Awaits three futures concurrently.
async fn futures_join<A, B, C>(
    a: impl std::future::Future<Output = A>,
    b: impl std::future::Future<Output = B>,
    c: impl std::future::Future<Output = C>,
) -> (A, B, C) {
    tokio::join!(a, b, c)
}

/// A new session on `address` once its server knows a leader: until then a clustered server
/// turns clients away (as a ZooKeeper server looking for a leader does).
async fn session_once_led(address: SocketAddr) -> Conn<TcpStream> {
    within("a server with a leader to take a session", async {
        loop {
            let mut conn = open_tcp(address).await;
            if conn.handshake().await {
                return conn;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}
