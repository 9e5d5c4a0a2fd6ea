//! TLS between servers: peer networks built from PEM key and trust stores exchange messages
//! over mutual TLS, and a node whose certificate the others do not trust cannot reach them
//! (its dial fails with a TLS error, and nothing it sends is delivered).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use arbor_server::peer::{ConnectError, PeerConfig, PeerNetwork, PeerTls};
use arbor_server::{ClientAuth, StoreLocation, TlsConfig};
use bytes::Bytes;
use support::{Pki, within};
use tokio::sync::mpsc;

fn tls(pki: &Pki, node: &str, trust: &str) -> PeerTls {
    PeerTls::from_config(&TlsConfig {
        key_store: Some(StoreLocation::new(pki.path(&format!("{node}-bundle.pem")))),
        trust_store: Some(StoreLocation::new(pki.path(&format!("{trust}-ca.pem")))),
        client_auth: ClientAuth::Need,
    })
    .unwrap_or_else(|error| panic!("peer TLS for {node}: {error}"))
}

async fn start(
    node_id: u64,
    peers: BTreeMap<u64, SocketAddr>,
    tls: PeerTls,
) -> (PeerNetwork, mpsc::Receiver<(u64, Bytes)>) {
    let config = PeerConfig {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(5),
        tls: Some(tls),
        ..PeerConfig::new(7, node_id, "127.0.0.1:0".parse().expect("address"), peers)
    };
    let (sender, inbox) = mpsc::channel(64);
    let network = PeerNetwork::start(config, sender)
        .await
        .expect("a peer network starts");
    (network, inbox)
}

/// A PKI whose CA signed both servers' certificates (each usable as client and server), and
/// a rogue CA that signed a third.
fn pki(dir: &std::path::Path) -> Pki {
    let pki = Pki::new(dir, "quorum");
    Pki::new(dir, "rogue");
    for (ca, node) in [("quorum", "node1"), ("quorum", "node2"), ("rogue", "node3")] {
        std::fs::write(
            dir.join(format!("{node}.ext")),
            "extendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("ext");
        pki.issue_with(ca, node, &format!("/CN={node}"));
    }
    pki
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_exchange_messages_over_mutual_tls_and_refuse_untrusted_ones() {
    let certs = tempfile::tempdir().expect("a directory");
    let pki = pki(certs.path());
    let (node2, mut inbox2) = start(2, BTreeMap::new(), tls(&pki, "node2", "quorum")).await;
    let peers = BTreeMap::from([(2, node2.local_address())]);
    let (node1, mut inbox1) = start(1, peers, tls(&pki, "node1", "quorum")).await;
    node2.set_peers(BTreeMap::from([(1, node1.local_address())]));

    node1
        .send(2, Bytes::from_static(b"over TLS to 2"))
        .expect("queued");
    node2
        .send(1, Bytes::from_static(b"over TLS to 1"))
        .expect("queued");
    let (from, payload) = within("a message at node 2", inbox2.recv())
        .await
        .expect("open");
    assert_eq!((from, &payload[..]), (1, &b"over TLS to 2"[..]));
    let (from, payload) = within("a message at node 1", inbox1.recv())
        .await
        .expect("open");
    assert_eq!((from, &payload[..]), (2, &b"over TLS to 1"[..]));

    // Node 3's certificate comes from a CA the others do not trust (and it does not trust
    // theirs): its dial fails in the TLS handshake.
    let peers = BTreeMap::from([(2, node2.local_address())]);
    let (node3, _inbox3) = start(3, peers, tls(&pki, "node3", "rogue")).await;
    node3
        .send(2, Bytes::from_static(b"from an untrusted node"))
        .expect("queued");
    within("node 3's dial to fail in TLS", async {
        loop {
            let stats = node3.peer_stats(2).expect("stats for peer 2");
            if let Some(ConnectError::Tls { .. }) = stats.last_connect_error {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Nothing from node 3 arrived; node 1's link still works.
    node1
        .send(2, Bytes::from_static(b"still fine"))
        .expect("queued");
    let (from, payload) = within("a message at node 2", inbox2.recv())
        .await
        .expect("open");
    assert_eq!((from, &payload[..]), (1, &b"still fine"[..]));
    node3.shutdown().await;
    node1.shutdown().await;
    node2.shutdown().await;
}
