//! arbor's peer transport through fault proxies: one proxy per directed link, as the Raft
//! cluster tests will use them. Node 1 reaches node 2 through `link_1_to_2`, node 2 reaches
//! node 1 through `link_2_to_1`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use arbor_check::proxy::{Direction, Flow, Mode, Proxy};
use arbor_server::peer::{ConnectError, PeerConfig, PeerNetwork, PeerStats};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(20);
const IDLE_TIMEOUT: Duration = Duration::from_millis(400);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn config(node_id: u64) -> PeerConfig {
    PeerConfig {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        connect_timeout: Duration::from_millis(300),
        keepalive_interval: Duration::from_millis(50),
        idle_timeout: IDLE_TIMEOUT,
        ..PeerConfig::new(7, node_id, loopback(), BTreeMap::new())
    }
}

struct Node {
    network: PeerNetwork,
    inbox: mpsc::Receiver<(u64, Bytes)>,
}

impl Node {
    async fn start(node_id: u64) -> Node {
        let (sender, inbox) = mpsc::channel(1024);
        let network = PeerNetwork::start(config(node_id), sender)
            .await
            .expect("start a peer network");
        Node { network, inbox }
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

struct Pair {
    node_1: Node,
    node_2: Node,
    link_1_to_2: Proxy,
    link_2_to_1: Proxy,
}

impl Pair {
    async fn start() -> Pair {
        let node_1 = Node::start(1).await;
        let node_2 = Node::start(2).await;
        let link_1_to_2 = Proxy::start(loopback(), node_2.network.local_address())
            .await
            .expect("proxy");
        let link_2_to_1 = Proxy::start(loopback(), node_1.network.local_address())
            .await
            .expect("proxy");
        node_1
            .network
            .set_peers(BTreeMap::from([(2, link_1_to_2.local_address())]));
        node_2
            .network
            .set_peers(BTreeMap::from([(1, link_2_to_1.local_address())]));
        let mut pair = Pair {
            node_1,
            node_2,
            link_1_to_2,
            link_2_to_1,
        };
        pair.assert_1_reaches_2("hello").await;
        pair.assert_2_reaches_1("hello").await;
        pair
    }

    async fn assert_1_reaches_2(&mut self, text: &'static str) {
        self.node_1
            .network
            .send(2, Bytes::from_static(text.as_bytes()))
            .expect("queued");
        assert_eq!(
            self.node_2.recv().await,
            (1, Bytes::from_static(text.as_bytes()))
        );
    }

    async fn assert_2_reaches_1(&mut self, text: &'static str) {
        self.node_2
            .network
            .send(1, Bytes::from_static(text.as_bytes()))
            .expect("queued");
        assert_eq!(
            self.node_1.recv().await,
            (2, Bytes::from_static(text.as_bytes()))
        );
    }

    /// Waits until node 1's link to node 2 is down on both ends.
    async fn link_1_to_2_down(&self) {
        eventually("the 1→2 link is down on both ends", || {
            !self.node_1.stats(2).connected && !self.node_2.stats(1).inbound_connected
        })
        .await;
    }

    async fn shutdown(self) {
        self.node_1.network.shutdown().await;
        self.node_2.network.shutdown().await;
        self.link_1_to_2.shutdown().await;
        self.link_2_to_1.shutdown().await;
    }
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_blackholed_link_is_detected_by_the_idle_timeout_and_heals() {
    let mut pair = Pair::start().await;
    pair.link_1_to_2.set_mode(Mode::Drop);
    let started = Instant::now();
    pair.link_1_to_2_down().await;
    assert!(
        started.elapsed() >= IDLE_TIMEOUT / 2,
        "detected by silence, not by an error: {:?}",
        started.elapsed()
    );
    // Redials go nowhere: the proxy holds them past the connect timeout.
    eventually("a redial times out", || {
        pair.node_1.stats(2).last_connect_error == Some(ConnectError::Timeout)
    })
    .await;
    // The other direction is its own link and is unaffected.
    pair.assert_2_reaches_1("2 during the partition").await;
    pair.node_1
        .network
        .send(2, Bytes::from_static(b"queued during the partition"))
        .expect("queued");

    pair.link_1_to_2.set_mode(Mode::Pass);
    assert_eq!(
        pair.node_2.recv().await,
        (1, Bytes::from_static(b"queued during the partition"))
    );
    let stats = pair.node_1.stats(2);
    assert!(stats.reconnects >= 1);
    assert!(stats.connect_failures >= 1);
    pair.assert_1_reaches_2("after").await;
    pair.shutdown().await;
}

#[tokio::test]
async fn a_one_way_partition_stops_one_direction_only() {
    let mut pair = Pair::start().await;
    // Node 1's frames no longer reach node 2; node 2's keepalives still reach node 1. Node 2
    // hears nothing, times the connection out and closes it, which node 1 then sees.
    pair.link_1_to_2.set_flow(Direction::ToUpstream, Flow::Drop);
    pair.link_1_to_2_down().await;
    pair.assert_2_reaches_1("2 → 1 still works").await;
    pair.node_1
        .network
        .send(2, Bytes::from_static(b"held"))
        .expect("queued");
    pair.link_1_to_2.set_flow(Direction::ToUpstream, Flow::Pass);
    assert_eq!(pair.node_2.recv().await, (1, Bytes::from_static(b"held")));

    // The reverse: node 2's keepalives to node 1 are lost, so node 1 gives up on the link.
    pair.link_1_to_2.set_flow(Direction::ToClient, Flow::Drop);
    pair.link_1_to_2_down().await;
    pair.link_1_to_2.set_flow(Direction::ToClient, Flow::Pass);
    pair.assert_1_reaches_2("healed").await;
    pair.shutdown().await;
}

#[tokio::test]
async fn a_cut_link_reconnects_at_once() {
    let mut pair = Pair::start().await;
    let before = pair.node_1.stats(2).reconnects;
    pair.link_1_to_2.cut_all();
    eventually("node 1 reconnected", || {
        let stats = pair.node_1.stats(2);
        stats.connected && stats.reconnects > before
    })
    .await;
    pair.assert_1_reaches_2("after the cut").await;
    pair.assert_2_reaches_1("unaffected").await;
    pair.shutdown().await;
}

#[tokio::test]
async fn a_rejecting_link_fails_every_dial_until_it_passes() {
    let mut pair = Pair::start().await;
    pair.link_1_to_2.set_mode(Mode::Reject);
    pair.link_1_to_2_down().await;
    let failures = pair.node_1.stats(2).connect_failures;
    eventually("more dials fail", || {
        let stats = pair.node_1.stats(2);
        stats.connect_failures >= failures + 2
            && matches!(stats.last_connect_error, Some(ConnectError::Io { .. }))
    })
    .await;
    pair.link_1_to_2.set_mode(Mode::Pass);
    pair.assert_1_reaches_2("after the reject").await;
    pair.shutdown().await;
}
