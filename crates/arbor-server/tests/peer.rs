//! The peer transport on loopback: real sockets, in-process networks, every wait bounded.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbor_server::peer::{
    ConnectError, PeerConfig, PeerNetwork, PeerStats, RefuseReason, SendError,
};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The longest any single wait in these tests may take before it counts as a failure.
const WAIT: Duration = Duration::from_secs(20);

/// Short timings so that failures and recoveries happen within a test's patience.
fn config(cluster_id: u64, node_id: u64, peers: BTreeMap<u64, SocketAddr>) -> PeerConfig {
    PeerConfig {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(2),
        keepalive_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(1000),
        ..PeerConfig::new(cluster_id, node_id, loopback(), peers)
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A loopback address nobody listens on (bound once by the OS, then released).
fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind(loopback()).expect("bind a free port");
    listener.local_addr().expect("its address")
}

struct Node {
    network: PeerNetwork,
    inbox: mpsc::Receiver<(u64, Bytes)>,
}

impl Node {
    async fn start(config: PeerConfig) -> Node {
        Node::start_with_inbox(config, 1024).await
    }

    async fn start_with_inbox(config: PeerConfig, inbox_capacity: usize) -> Node {
        let (sender, inbox) = mpsc::channel(inbox_capacity);
        let network = PeerNetwork::start(config, sender)
            .await
            .expect("start a peer network");
        Node { network, inbox }
    }

    fn address(&self) -> SocketAddr {
        self.network.local_address()
    }

    async fn recv(&mut self) -> (u64, Bytes) {
        tokio::time::timeout(WAIT, self.inbox.recv())
            .await
            .expect("a message within the wait")
            .expect("the inbound channel is open")
    }

    fn stats(&self, peer_id: u64) -> PeerStats {
        self.network
            .peer_stats(peer_id)
            .unwrap_or_else(|| panic!("no stats for peer {peer_id}"))
    }
}

/// Polls `condition` until it holds; panics naming `what` after the wait.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn message(from: u64, to: u64, sequence: u32) -> Bytes {
    Bytes::from(format!("{from}->{to}#{sequence}"))
}

#[tokio::test]
async fn three_networks_exchange_messages_in_order() {
    const MESSAGES: u32 = 200;
    let mut nodes = Vec::new();
    for node_id in 1..=3 {
        nodes.push(Node::start(config(7, node_id, BTreeMap::new())).await);
    }
    // Everyone gets the full membership, itself included: its own id is skipped.
    let members: BTreeMap<u64, SocketAddr> =
        (1..=3u64).zip(nodes.iter().map(Node::address)).collect();
    for node in &nodes {
        node.network.set_peers(members.clone());
    }
    for (index, node) in nodes.iter().enumerate() {
        let from = index as u64 + 1;
        assert_eq!(
            node.network.send(from, Bytes::from_static(b"self")),
            Err(SendError::UnknownPeer { node_id: from })
        );
        for sequence in 0..MESSAGES {
            for to in (1..=3).filter(|&to| to != from) {
                node.network
                    .send(to, message(from, to, sequence))
                    .expect("queued");
            }
        }
    }
    for (index, node) in nodes.iter_mut().enumerate() {
        let to = index as u64 + 1;
        let mut next: BTreeMap<u64, u32> = BTreeMap::new();
        for _ in 0..2 * MESSAGES {
            let (from, payload) = node.recv().await;
            let sequence = next.entry(from).or_insert(0);
            assert_eq!(payload, message(from, to, *sequence), "per-link FIFO");
            *sequence += 1;
        }
        assert_eq!(
            next.values().copied().collect::<Vec<_>>(),
            vec![MESSAGES; 2]
        );
    }
    for (index, node) in nodes.iter().enumerate() {
        let me = index as u64 + 1;
        let stats = node.network.stats();
        assert_eq!(stats.len(), 2);
        for peer in stats {
            assert_ne!(peer.node_id, me);
            assert!(peer.member && peer.connected && peer.inbound_connected);
            assert_eq!(peer.messages_sent, u64::from(MESSAGES));
            assert_eq!(peer.messages_received, u64::from(MESSAGES));
            assert_eq!(peer.messages_dropped, 0);
            assert_eq!(peer.reconnects, 0);
        }
    }
    for node in nodes {
        node.network.shutdown().await;
    }
}

/// Collects what `tracing` writes, for asserting that a line was logged.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        let bytes = self.0.lock().expect("log buffer").clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a capturing subscriber for this thread (the current-thread runtime of a
/// `#[tokio::test]` runs every task here).
fn capture_log() -> (CapturedLog, tracing::subscriber::DefaultGuard) {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    (log, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn cluster_id_mismatch_is_refused_and_logged() {
    let (log, _guard) = capture_log();
    let mut other_cluster = Node::start(config(222, 2, BTreeMap::new())).await;
    let ours = Node::start(config(
        111,
        1,
        BTreeMap::from([(2, other_cluster.address())]),
    ))
    .await;
    ours.network
        .send(2, Bytes::from_static(b"must never arrive"))
        .expect("queued");
    eventually("the dialer records the refusal", || {
        ours.stats(2).last_connect_error
            == Some(ConnectError::Refused {
                reason: RefuseReason::ClusterMismatch,
                cluster_id: 222,
                node_id: 2,
                version: 1,
            })
    })
    .await;
    let stats = ours.stats(2);
    assert!(!stats.connected);
    assert_eq!(stats.messages_queued, 1, "nothing left over a refused link");
    assert!(other_cluster.inbox.try_recv().is_err());
    assert!(other_cluster.network.stats().is_empty());
    let text = log.text();
    let acceptor_line = text
        .lines()
        .find(|line| line.contains("refused peer connection"))
        .unwrap_or_else(|| panic!("no refusal logged by the acceptor in:\n{text}"));
    assert!(
        acceptor_line.contains("cluster id mismatch"),
        "{acceptor_line}"
    );
    assert!(
        acceptor_line.contains("peer_cluster_id=111"),
        "{acceptor_line}"
    );
    assert!(acceptor_line.contains("cluster_id=222"), "{acceptor_line}");
    let dialer_line = text
        .lines()
        .find(|line| line.contains("cannot connect to peer"))
        .unwrap_or_else(|| panic!("no refusal logged by the dialer in:\n{text}"));
    assert!(
        dialer_line.contains("refused by the peer: cluster id mismatch"),
        "{dialer_line}"
    );
    ours.network.shutdown().await;
    other_cluster.network.shutdown().await;
}

#[tokio::test]
async fn wrong_address_book_and_duplicate_ids_are_refused_by_name() {
    let node_2 = Node::start(config(7, 2, BTreeMap::new())).await;
    // Node 1 believes node 3 lives at node 2's address.
    let confused = Node::start(config(7, 1, BTreeMap::from([(3, node_2.address())]))).await;
    // Another node also calls itself 2.
    let twin = Node::start(config(7, 2, BTreeMap::from([(5, node_2.address())]))).await;
    eventually("both refusals are recorded", || {
        matches!(
            confused.stats(3).last_connect_error,
            Some(ConnectError::Refused {
                reason: RefuseReason::WrongReceiver,
                node_id: 2,
                ..
            })
        ) && matches!(
            twin.stats(5).last_connect_error,
            Some(ConnectError::Refused {
                reason: RefuseReason::DuplicateNodeId,
                ..
            })
        )
    })
    .await;
    for node in [confused, twin, node_2] {
        node.network.shutdown().await;
    }
}

#[tokio::test]
async fn a_peer_that_starts_late_is_reached() {
    let late_address = free_address();
    let early = Node::start(config(7, 1, BTreeMap::from([(2, late_address)]))).await;
    for sequence in 0..3 {
        early
            .network
            .send(2, message(1, 2, sequence))
            .expect("queued");
    }
    eventually("several failed dials", || {
        early.stats(2).connect_failures >= 3
    })
    .await;
    assert!(matches!(
        early.stats(2).last_connect_error,
        Some(ConnectError::Io { .. })
    ));
    let mut late = Node::start(PeerConfig {
        listen: late_address,
        ..config(7, 2, BTreeMap::new())
    })
    .await;
    for sequence in 0..3 {
        assert_eq!(late.recv().await, (1, message(1, 2, sequence)));
    }
    let stats = early.stats(2);
    assert!(stats.connected);
    assert_eq!(stats.last_connect_error, None);
    assert_eq!(
        stats.reconnects, 0,
        "the first connection is not a reconnect"
    );
    early.network.shutdown().await;
    late.network.shutdown().await;
}

#[tokio::test]
async fn a_peer_restarted_on_the_same_address_is_reconnected() {
    let mut node_1 = Node::start(config(7, 1, BTreeMap::new())).await;
    let node_2 = Node::start(config(7, 2, BTreeMap::from([(1, node_1.address())]))).await;
    let address_2 = node_2.address();
    node_1.network.set_peers(BTreeMap::from([(2, address_2)]));
    node_1
        .network
        .send(2, Bytes::from_static(b"before"))
        .expect("queued");
    node_2
        .network
        .send(1, Bytes::from_static(b"hello"))
        .expect("queued");
    assert_eq!(node_1.recv().await, (2, Bytes::from_static(b"hello")));
    eventually("node 1 connected to node 2", || node_1.stats(2).connected).await;

    node_2.network.shutdown().await;
    eventually("node 1 notices the loss", || {
        let stats = node_1.stats(2);
        !stats.connected && !stats.inbound_connected
    })
    .await;

    let mut node_2 = Node::start(PeerConfig {
        listen: address_2,
        ..config(7, 2, BTreeMap::from([(1, node_1.address())]))
    })
    .await;
    eventually("node 1 reconnected", || {
        let stats = node_1.stats(2);
        stats.connected && stats.reconnects >= 1
    })
    .await;
    node_1
        .network
        .send(2, Bytes::from_static(b"after"))
        .expect("queued");
    assert_eq!(node_2.recv().await, (1, Bytes::from_static(b"after")));
    node_2
        .network
        .send(1, Bytes::from_static(b"back"))
        .expect("queued");
    assert_eq!(node_1.recv().await, (2, Bytes::from_static(b"back")));
    assert!(node_1.stats(2).inbound_connected);
    node_1.network.shutdown().await;
    node_2.network.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_answers_full_at_once() {
    let nowhere = free_address();
    let by_messages = Node::start(PeerConfig {
        queue_messages_max: 4,
        ..config(7, 1, BTreeMap::from([(2, nowhere)]))
    })
    .await;
    for sequence in 0..4 {
        by_messages
            .network
            .send(2, message(1, 2, sequence))
            .expect("room");
    }
    let started = std::time::Instant::now();
    assert_eq!(
        by_messages.network.send(2, message(1, 2, 4)),
        Err(SendError::Full { node_id: 2 })
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    let stats = by_messages.stats(2);
    assert_eq!((stats.messages_queued, stats.messages_dropped), (4, 1));

    let by_bytes = Node::start(PeerConfig {
        queue_bytes_max: 100,
        ..config(7, 1, BTreeMap::from([(2, nowhere)]))
    })
    .await;
    let payload = |length: usize| Bytes::from(vec![1u8; length]);
    assert_eq!(by_bytes.network.send(2, payload(60)), Ok(()));
    assert_eq!(
        by_bytes.network.send(2, payload(41)),
        Err(SendError::Full { node_id: 2 })
    );
    assert_eq!(by_bytes.network.send(2, payload(40)), Ok(()));
    let stats = by_bytes.stats(2);
    assert_eq!((stats.bytes_queued, stats.bytes_dropped), (100, 41));

    assert_eq!(
        by_bytes.network.send(9, payload(1)),
        Err(SendError::UnknownPeer { node_id: 9 })
    );
    assert_eq!(
        by_bytes.network.send(2, Bytes::new()),
        Err(SendError::Empty)
    );
    by_messages.network.shutdown().await;
    by_bytes.network.shutdown().await;
}

#[tokio::test]
async fn a_four_mib_payload_passes() {
    let mut receiver = Node::start(config(7, 2, BTreeMap::new())).await;
    let sender = Node::start(config(7, 1, BTreeMap::from([(2, receiver.address())]))).await;
    let big: Bytes = (0..4 * 1024 * 1024u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into();
    sender
        .network
        .send(2, Bytes::from_static(b"first"))
        .expect("queued");
    sender.network.send(2, big.clone()).expect("queued");
    sender
        .network
        .send(2, Bytes::from_static(b"last"))
        .expect("queued");
    assert_eq!(receiver.recv().await, (1, Bytes::from_static(b"first")));
    let (from, payload) = receiver.recv().await;
    assert_eq!(from, 1);
    assert!(payload == big, "the 4 MiB payload arrives intact");
    assert_eq!(receiver.recv().await, (1, Bytes::from_static(b"last")));
    sender.network.shutdown().await;
    receiver.network.shutdown().await;
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_the_connection() {
    let (log, _guard) = capture_log();
    let mut strict = Node::start(PeerConfig {
        frame_bytes_max: 1024 * 1024,
        ..config(7, 2, BTreeMap::new())
    })
    .await;
    let generous = Node::start(PeerConfig {
        frame_bytes_max: 8 * 1024 * 1024,
        ..config(7, 1, BTreeMap::from([(2, strict.address())]))
    })
    .await;
    generous
        .network
        .send(2, Bytes::from(vec![0u8; 2 * 1024 * 1024]))
        .expect("under the sender's own limit");
    eventually("the sender reconnects after the close", || {
        let stats = generous.stats(2);
        stats.connected && stats.reconnects >= 1
    })
    .await;
    generous
        .network
        .send(2, Bytes::from_static(b"small"))
        .expect("queued");
    assert_eq!(strict.recv().await, (1, Bytes::from_static(b"small")));
    assert_eq!(
        strict.stats(1).messages_received,
        1,
        "the big frame was never delivered"
    );
    let text = log.text();
    assert!(
        text.lines()
            .any(|line| line.contains("peer connection closed")
                && line.contains("over the limit of 1048576 bytes")),
        "no close logged in:\n{text}"
    );
    // The sender's own limit is checked before queueing.
    assert_eq!(
        generous
            .network
            .send(2, Bytes::from(vec![0u8; 8 * 1024 * 1024 + 1])),
        Err(SendError::TooLarge {
            node_id: 2,
            bytes: 8 * 1024 * 1024 + 1,
            max: 8 * 1024 * 1024
        })
    );
    generous.network.shutdown().await;
    strict.network.shutdown().await;
}

#[tokio::test]
async fn a_slow_core_pushes_back_instead_of_buffering() {
    const INBOX: usize = 4;
    const PAYLOAD_BYTES: usize = 64 * 1024;
    let mut slow = Node::start_with_inbox(config(7, 2, BTreeMap::new()), INBOX).await;
    let sender = Node::start(PeerConfig {
        queue_messages_max: 16,
        ..config(7, 1, BTreeMap::from([(2, slow.address())]))
    })
    .await;
    let payload = |sequence: u32| {
        let mut bytes = vec![0u8; PAYLOAD_BYTES];
        bytes[..4].copy_from_slice(&sequence.to_be_bytes());
        Bytes::from(bytes)
    };
    // Send until the pipeline is stuck: the queue stays full for a while.
    let mut accepted = 0u32;
    let mut full_in_a_row = 0;
    while full_in_a_row < 40 {
        assert!(
            accepted < 20_000,
            "1.3 GB accepted: the receiver is buffering without bound"
        );
        match sender.network.send(2, payload(accepted)) {
            Ok(()) => {
                accepted += 1;
                full_in_a_row = 0;
                tokio::task::yield_now().await;
            }
            Err(SendError::Full { .. }) => {
                full_in_a_row += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(error) => panic!("unexpected {error}"),
        }
    }
    let sent = sender.stats(2);
    let received = slow.stats(1);
    assert!(
        received.messages_received <= INBOX as u64,
        "the reader handed over {} messages to an inbox of {INBOX}",
        received.messages_received
    );
    assert!(
        sent.messages_sent > INBOX as u64,
        "the sender wrote only {} messages",
        sent.messages_sent
    );
    assert!(sent.connected, "slow is not dead: the connection stays up");
    // Now the core catches up, and everything that was accepted arrives, in order.
    for sequence in 0..accepted {
        let (from, bytes) = slow.recv().await;
        assert_eq!(from, 1);
        assert_eq!(bytes, payload(sequence));
    }
    sender.network.shutdown().await;
    slow.network.shutdown().await;
}

#[tokio::test]
async fn membership_changes_start_stop_and_redirect_dialing() {
    let mut node_2 = Node::start(config(7, 2, BTreeMap::new())).await;
    let wrong = free_address();
    let node_1 = Node::start(config(7, 1, BTreeMap::from([(2, wrong)]))).await;
    node_1
        .network
        .send(2, Bytes::from_static(b"queued early"))
        .expect("queued");
    eventually("dials to the wrong address fail", || {
        node_1.stats(2).connect_failures >= 1
    })
    .await;
    node_1
        .network
        .set_peers(BTreeMap::from([(2, node_2.address())]));
    assert_eq!(
        node_2.recv().await,
        (1, Bytes::from_static(b"queued early"))
    );
    assert_eq!(node_1.stats(2).address, Some(node_2.address()));

    node_1.network.set_peers(BTreeMap::new());
    assert_eq!(
        node_1.network.send(2, Bytes::from_static(b"gone")),
        Err(SendError::UnknownPeer { node_id: 2 })
    );
    eventually("node 2 sees the connection end", || {
        node_2
            .network
            .peer_stats(1)
            .is_none_or(|stats| !stats.inbound_connected)
    })
    .await;
    assert!(node_1.network.stats().is_empty());
    node_1.network.shutdown().await;
    node_2.network.shutdown().await;
}

#[tokio::test]
async fn an_invalid_configuration_is_refused() {
    let (sender, _inbox) = mpsc::channel(1);
    let result = PeerNetwork::start(
        PeerConfig {
            idle_timeout: Duration::from_millis(10),
            keepalive_interval: Duration::from_millis(10),
            ..PeerConfig::default()
        },
        sender,
    )
    .await;
    let Err(error) = result else {
        panic!("started with an idle timeout equal to the keepalive interval");
    };
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

/// The wire format, written by hand: `ARBP`, version 1, cluster id, sender, receiver.
fn hello(cluster_id: u64, sender: u64, receiver: u64) -> Vec<u8> {
    let mut bytes = b"ARBP".to_vec();
    bytes.extend_from_slice(&1u16.to_be_bytes());
    bytes.extend_from_slice(&cluster_id.to_be_bytes());
    bytes.extend_from_slice(&sender.to_be_bytes());
    bytes.extend_from_slice(&receiver.to_be_bytes());
    bytes
}

/// `ARBP`, version 1, the code (0 accepts), then the acceptor's cluster id and node id.
fn answer(code: u8, cluster_id: u64, node_id: u64) -> Vec<u8> {
    let mut bytes = b"ARBP".to_vec();
    bytes.extend_from_slice(&1u16.to_be_bytes());
    bytes.push(code);
    bytes.extend_from_slice(&cluster_id.to_be_bytes());
    bytes.extend_from_slice(&node_id.to_be_bytes());
    bytes
}

async fn read_answer(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = vec![0u8; 23];
    tokio::time::timeout(WAIT, stream.read_exact(&mut bytes))
        .await
        .expect("an answer within the wait")
        .expect("an answer");
    bytes
}

/// Reads until the peer closes; returns the keepalive frames seen before.
async fn read_until_closed(stream: &mut TcpStream) -> usize {
    let mut keepalives = 0;
    loop {
        let mut header = [0u8; 4];
        match tokio::time::timeout(WAIT, stream.read_exact(&mut header))
            .await
            .expect("closed within the wait")
        {
            Ok(_) => {
                assert_eq!(header, [0; 4], "an acceptor sends keepalives only");
                keepalives += 1;
            }
            Err(_) => return keepalives,
        }
    }
}

#[tokio::test]
async fn the_handshake_on_the_wire() {
    let mut node = Node::start(config(7, 2, BTreeMap::new())).await;

    let mut accepted = TcpStream::connect(node.address()).await.expect("connect");
    accepted.write_all(&hello(7, 1, 2)).await.expect("hello");
    assert_eq!(read_answer(&mut accepted).await, answer(0, 7, 2));
    accepted
        .write_all(&[0, 0, 0, 3, b'a', b'b', b'c'])
        .await
        .expect("a frame");
    assert_eq!(node.recv().await, (1, Bytes::from_static(b"abc")));

    let mut foreign = TcpStream::connect(node.address()).await.expect("connect");
    foreign.write_all(&hello(8, 1, 2)).await.expect("hello");
    assert_eq!(read_answer(&mut foreign).await, answer(3, 7, 2));
    assert_eq!(read_until_closed(&mut foreign).await, 0);

    // A ZooKeeper client's connect request on the peer port: refused as not arbor.
    let mut stranger = TcpStream::connect(node.address()).await.expect("connect");
    stranger
        .write_all(&[0, 0, 0, 44, 0, 0, 0, 0])
        .await
        .expect("bytes");
    assert_eq!(read_answer(&mut stranger).await, answer(1, 7, 2));

    let mut newer = TcpStream::connect(node.address()).await.expect("connect");
    let mut newer_hello = hello(7, 1, 2);
    newer_hello[5] = 2;
    newer.write_all(&newer_hello).await.expect("hello");
    assert_eq!(read_answer(&mut newer).await, answer(2, 7, 2));
    node.network.shutdown().await;
}

#[tokio::test]
async fn a_silent_dialer_is_closed_by_the_idle_timeout() {
    let node = Node::start(PeerConfig {
        idle_timeout: Duration::from_millis(300),
        ..config(7, 2, BTreeMap::new())
    })
    .await;
    let mut silent = TcpStream::connect(node.address()).await.expect("connect");
    silent.write_all(&hello(7, 1, 2)).await.expect("hello");
    assert_eq!(read_answer(&mut silent).await, answer(0, 7, 2));
    eventually("the connection is registered", || {
        node.network
            .peer_stats(1)
            .is_some_and(|stats| stats.inbound_connected)
    })
    .await;
    let started = Instant::now();
    let keepalives = read_until_closed(&mut silent).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(
        keepalives >= 1,
        "the acceptor kept the line alive meanwhile"
    );
    eventually("the connection is forgotten", || {
        node.network.peer_stats(1).is_none()
    })
    .await;
    node.network.shutdown().await;
}

#[tokio::test]
async fn a_silent_acceptor_is_redialed_after_the_idle_timeout() {
    // A fake peer that accepts the handshake and then never sends a keepalive: the dialer
    // must give up on it and dial again, although its writes still succeed.
    let fake = TcpListener::bind(loopback()).await.expect("bind");
    let node = Node::start(PeerConfig {
        idle_timeout: Duration::from_millis(300),
        ..config(
            7,
            1,
            BTreeMap::from([(2, fake.local_addr().expect("address"))]),
        )
    })
    .await;
    let mut connections = Vec::new();
    for _ in 0..2 {
        let (mut stream, _) = tokio::time::timeout(WAIT, fake.accept())
            .await
            .expect("a dial within the wait")
            .expect("accept");
        let mut hello_bytes = vec![0u8; 30];
        stream.read_exact(&mut hello_bytes).await.expect("hello");
        assert_eq!(hello_bytes, hello(7, 1, 2));
        stream.write_all(&answer(0, 7, 2)).await.expect("answer");
        connections.push(stream);
    }
    eventually("the second connection counts as a reconnect", || {
        node.stats(2).reconnects == 1
    })
    .await;
    // The first connection was closed by the dialer (it may have written keepalives first).
    let mut first = connections.remove(0);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, first.read_to_end(&mut rest))
        .await
        .expect("closed within the wait");
    assert!(read.is_ok());
    assert!(rest.chunks(4).all(|chunk| chunk == [0, 0, 0, 0]));
    node.network.shutdown().await;
}

#[tokio::test]
async fn too_many_inbound_connections_are_refused_as_busy() {
    let node = Node::start(PeerConfig {
        inbound_connections_max: 1,
        ..config(7, 2, BTreeMap::new())
    })
    .await;
    let mut first = TcpStream::connect(node.address()).await.expect("connect");
    first.write_all(&hello(7, 1, 2)).await.expect("hello");
    assert_eq!(read_answer(&mut first).await, answer(0, 7, 2));
    let mut second = TcpStream::connect(node.address()).await.expect("connect");
    assert_eq!(read_answer(&mut second).await, answer(6, 7, 2));
    drop(first);
    eventually("the slot is free again", || {
        node.network.peer_stats(1).is_none()
    })
    .await;
    let mut third = TcpStream::connect(node.address()).await.expect("connect");
    third.write_all(&hello(7, 3, 2)).await.expect("hello");
    assert_eq!(read_answer(&mut third).await, answer(0, 7, 2));
    node.network.shutdown().await;
}
