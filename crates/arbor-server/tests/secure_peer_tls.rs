//! TLS between servers: peer networks built from PEM key and trust stores exchange messages
//! over mutual TLS, and a node whose certificate the others do not trust cannot reach them
//! (its dial fails with a TLS error, and nothing it sends is delivered); certificates and trust
//! stores rotated on disk are used from the next connection on, without a restart.

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
    tls_files(
        pki,
        &format!("{node}-bundle.pem"),
        &format!("{trust}-ca.pem"),
    )
}

/// Peer TLS from a key store file and a trust store file of the PKI's directory.
fn tls_files(pki: &Pki, key_store: &str, trust_store: &str) -> PeerTls {
    PeerTls::from_config(&TlsConfig {
        key_store: Some(StoreLocation::new(pki.path(key_store))),
        trust_store: Some(StoreLocation::new(pki.path(trust_store))),
        client_auth: ClientAuth::Need,
    })
    .unwrap_or_else(|error| panic!("peer TLS from {key_store}: {error}"))
}

/// Waits until `network`'s last dial to `peer` failed in the TLS handshake (`tls_only`), or
/// failed at all: under TLS 1.3 a dialer whose certificate the acceptor refuses finishes its
/// side of the handshake and learns of the refusal only when the connection drops.
async fn dial_fails(network: &PeerNetwork, peer: u64, tls_only: bool) {
    within("the dial to fail", async {
        loop {
            let stats = network.peer_stats(peer).expect("stats for the peer");
            match stats.last_connect_error {
                Some(ConnectError::Tls { .. }) => return,
                Some(_) if !tls_only => return,
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Sends `payload` from `network` to `peer` until it arrives in `inbox` (messages queued on a
/// link that is down may be dropped when the dial fails).
async fn delivered(
    network: &PeerNetwork,
    peer: u64,
    inbox: &mut mpsc::Receiver<(u64, Bytes)>,
    payload: &'static [u8],
) -> u64 {
    within("a message to get through", async {
        loop {
            network
                .send(peer, Bytes::from_static(payload))
                .expect("queued");
            if let Ok(Some((from, got))) =
                tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await
                && &got[..] == payload
            {
                return from;
            }
        }
    })
    .await
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
    dial_fails(&node3, 2, true).await;
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

/// Rotation on both ends of a link, as an operator renews certificates: the dialer's key and
/// trust store files are replaced (its next dial presents the new certificate), and the
/// acceptor's trust store gains a CA (its next accept trusts it). Neither node restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_peer_certificates_take_effect_without_restart() {
    let certs = tempfile::tempdir().expect("a directory");
    let pki = pki(certs.path());
    let copy = |from: &str, to: &str| {
        std::fs::copy(pki.path(from), pki.path(to)).expect("copy a store file");
    };
    std::fs::write(
        certs.path().join("node4.ext"),
        "extendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("ext");
    pki.issue_with("quorum", "node4", "/CN=node4");

    // Node 2 trusts the quorum CA through a file it will later extend.
    copy("quorum-ca.pem", "node2-trust.pem");
    let (node2, mut inbox2) = start(
        2,
        BTreeMap::new(),
        tls_files(&pki, "node2-bundle.pem", "node2-trust.pem"),
    )
    .await;
    let peers = BTreeMap::from([(2, node2.local_address())]);

    // The dialer's side: node 3 starts with a certificate of the rogue CA and trusts only it.
    copy("node3-bundle.pem", "node3-live-bundle.pem");
    copy("rogue-ca.pem", "node3-live-trust.pem");
    let (node3, _inbox3) = start(
        3,
        peers.clone(),
        tls_files(&pki, "node3-live-bundle.pem", "node3-live-trust.pem"),
    )
    .await;
    node3
        .send(2, Bytes::from_static(b"before the rotation"))
        .expect("queued");
    dial_fails(&node3, 2, true).await;
    // An operator installs a quorum-issued certificate and the quorum CA for node 3.
    copy("node4-bundle.pem", "node3-live-bundle.pem");
    copy("quorum-ca.pem", "node3-live-trust.pem");
    let from = delivered(&node3, 2, &mut inbox2, b"after node 3's rotation").await;
    assert_eq!(from, 3);

    // The acceptor's side: node 5 holds the rogue-issued certificate and trusts both CAs;
    // node 2 refuses it until its trust store also holds the rogue CA.
    let mut both = std::fs::read(pki.path("quorum-ca.pem")).expect("CA");
    both.extend(std::fs::read(pki.path("rogue-ca.pem")).expect("CA"));
    std::fs::write(pki.path("both-ca.pem"), &both).expect("a two-CA trust store");
    let (node5, _inbox5) = start(5, peers, tls(&pki, "node3", "both")).await;
    node5
        .send(2, Bytes::from_static(b"before node 2's rotation"))
        .expect("queued");
    dial_fails(&node5, 2, false).await;
    // A trust store that does not load is logged and ignored: node 2 keeps its last good one
    // (node 3's established link is unaffected, and node 5 is still refused).
    std::fs::write(pki.path("node2-trust.pem"), b"not a certificate").expect("garbage");
    let from = delivered(&node3, 2, &mut inbox2, b"with a broken trust file").await;
    assert_eq!(from, 3);
    std::fs::write(pki.path("node2-trust.pem"), &both).expect("node 2's new trust store");
    let from = delivered(&node5, 2, &mut inbox2, b"after node 2's rotation").await;
    assert_eq!(from, 5);

    node5.shutdown().await;
    node3.shutdown().await;
    node2.shutdown().await;
}
