//! The proxy's modes against plain sockets on loopback.
//!
//! "Nothing arrives" can only be observed over a window: those checks wait [`QUIET`] and then
//! heal the fault and check that the held bytes do arrive, in order, so a proxy that forwarded
//! or lost them fails either way.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use arbor_check::proxy::{Direction, Flow, Mode, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The longest any expected event may take.
const WAIT: Duration = Duration::from_secs(20);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(200);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

struct Setup {
    upstream: TcpListener,
    proxy: Proxy,
}

impl Setup {
    async fn start() -> Setup {
        let upstream = TcpListener::bind(loopback()).await.expect("bind upstream");
        let proxy = Proxy::start(loopback(), upstream.local_addr().expect("address"))
            .await
            .expect("start the proxy");
        Setup { upstream, proxy }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.proxy.local_address())
            .await
            .expect("connect to the proxy")
    }

    async fn accept(&self) -> TcpStream {
        tokio::time::timeout(WAIT, self.upstream.accept())
            .await
            .expect("an upstream connection within the wait")
            .expect("accept")
            .0
    }

    /// A client connection and its upstream end.
    async fn pair(&self) -> (TcpStream, TcpStream) {
        let client = self.connect().await;
        (client, self.accept().await)
    }
}

async fn read_exactly(stream: &mut TcpStream, length: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; length];
    tokio::time::timeout(WAIT, stream.read_exact(&mut bytes))
        .await
        .expect("bytes within the wait")
        .expect("bytes");
    bytes
}

/// Asserts that nothing (no byte, no close) arrives during [`QUIET`].
async fn assert_quiet(stream: &mut TcpStream, what: &str) {
    let mut byte = [0u8; 1];
    if let Ok(read) = tokio::time::timeout(QUIET, stream.read(&mut byte)).await {
        panic!("{what}: expected silence, got {read:?}");
    }
}

/// Reads until the stream ends; returns how it ended.
async fn read_to_end(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("the stream ends within the wait")
        .map(|_| bytes)
}

#[tokio::test]
async fn pass_forwards_both_ways_and_forwards_the_close() {
    let setup = Setup::start().await;
    let (mut client, mut server) = setup.pair().await;
    client.write_all(b"ping").await.expect("write");
    assert_eq!(read_exactly(&mut server, 4).await, b"ping");
    server.write_all(b"pong").await.expect("write");
    assert_eq!(read_exactly(&mut client, 4).await, b"pong");
    // A half-close travels through, and the other direction keeps working.
    client.shutdown().await.expect("shutdown");
    assert_eq!(
        read_to_end(&mut server).await.expect("an orderly close"),
        b""
    );
    server.write_all(b"late").await.expect("write");
    drop(server);
    assert_eq!(
        read_to_end(&mut client).await.expect("an orderly close"),
        b"late"
    );
    let stats = setup.proxy.stats();
    assert_eq!((stats.bytes_to_upstream, stats.bytes_to_client), (4, 8));
    assert_eq!(stats.connections_accepted, 1);
    setup.proxy.shutdown().await;
}

#[tokio::test]
async fn drop_both_ways_holds_traffic_on_open_connections() {
    let setup = Setup::start().await;
    let (mut client, mut server) = setup.pair().await;
    setup.proxy.set_mode(Mode::Drop);
    client.write_all(b"to server").await.expect("write");
    server.write_all(b"to client").await.expect("write");
    assert_quiet(&mut server, "upstream during drop").await;
    assert_quiet(&mut client, "client during drop").await;
    assert_eq!(setup.proxy.stats().connections_open, 1);
    setup.proxy.set_mode(Mode::Pass);
    assert_eq!(read_exactly(&mut server, 9).await, b"to server");
    assert_eq!(read_exactly(&mut client, 9).await, b"to client");
    setup.proxy.shutdown().await;
}

#[tokio::test]
async fn drop_holds_new_connections_away_from_the_upstream() {
    let setup = Setup::start().await;
    setup.proxy.set_mode(Mode::Drop);
    let mut client = setup.connect().await;
    client.write_all(b"early").await.expect("write");
    assert!(
        tokio::time::timeout(QUIET, setup.upstream.accept())
            .await
            .is_err(),
        "the upstream saw a connection during drop"
    );
    setup.proxy.set_mode(Mode::Pass);
    let mut server = setup.accept().await;
    assert_eq!(read_exactly(&mut server, 5).await, b"early");
    setup.proxy.shutdown().await;
}

#[tokio::test]
async fn one_way_drop_blocks_only_that_direction() {
    let setup = Setup::start().await;
    let (mut client, mut server) = setup.pair().await;
    setup.proxy.set_flow(Direction::ToUpstream, Flow::Drop);
    client.write_all(b"held").await.expect("write");
    server.write_all(b"free").await.expect("write");
    assert_eq!(read_exactly(&mut client, 4).await, b"free");
    assert_quiet(&mut server, "upstream behind a one-way drop").await;
    setup.proxy.set_flow(Direction::ToUpstream, Flow::Pass);
    assert_eq!(read_exactly(&mut server, 4).await, b"held");

    setup.proxy.set_flow(Direction::ToClient, Flow::Drop);
    client.write_all(b"free").await.expect("write");
    server.write_all(b"held").await.expect("write");
    assert_eq!(read_exactly(&mut server, 4).await, b"free");
    assert_quiet(&mut client, "client behind a one-way drop").await;
    setup.proxy.set_flow(Direction::ToClient, Flow::Pass);
    assert_eq!(read_exactly(&mut client, 4).await, b"held");
    setup.proxy.shutdown().await;
}

#[tokio::test]
async fn reject_resets_everything_and_refuses_new_connections() {
    let setup = Setup::start().await;
    let (mut client, mut server) = setup.pair().await;
    // One connection held by a drop is reset as well.
    setup.proxy.set_mode(Mode::Drop);
    let mut held = setup.connect().await;
    let started = Instant::now();
    while setup.proxy.stats().connections_open < 2 {
        assert!(started.elapsed() < WAIT, "the held connection is accepted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    setup.proxy.set_mode(Mode::Reject);
    assert!(read_to_end(&mut client).await.is_err(), "client reset");
    assert!(read_to_end(&mut server).await.is_err(), "upstream reset");
    assert!(
        read_to_end(&mut held).await.is_err(),
        "held connection reset"
    );

    let mut refused = setup.connect().await;
    assert!(
        read_to_end(&mut refused).await.is_err(),
        "new connection reset"
    );
    assert!(
        tokio::time::timeout(QUIET, setup.upstream.accept())
            .await
            .is_err(),
        "the upstream saw a connection during reject"
    );
    let stats = setup.proxy.stats();
    assert_eq!(stats.connections_rejected, 1);
    assert_eq!(stats.connections_reset, 2);

    setup.proxy.set_mode(Mode::Pass);
    let (mut client, mut server) = setup.pair().await;
    client.write_all(b"back").await.expect("write");
    assert_eq!(read_exactly(&mut server, 4).await, b"back");
    setup.proxy.shutdown().await;
}

#[tokio::test]
async fn cut_all_resets_open_connections_only() {
    let setup = Setup::start().await;
    let (mut client, mut server) = setup.pair().await;
    setup.proxy.cut_all();
    let client_end = read_to_end(&mut client).await;
    assert_eq!(
        client_end.map_err(|error| error.kind()),
        Err(io::ErrorKind::ConnectionReset),
        "a cut is a reset, not an orderly close"
    );
    assert!(read_to_end(&mut server).await.is_err(), "upstream reset");
    let (mut client, mut server) = setup.pair().await;
    client.write_all(b"new").await.expect("write");
    assert_eq!(read_exactly(&mut server, 3).await, b"new");
    assert_eq!(setup.proxy.stats().connections_reset, 1);
    setup.proxy.shutdown().await;
}

#[tokio::test]
async fn latency_delays_each_direction_without_throttling() {
    const LATENCY: Duration = Duration::from_millis(100);
    let setup = Setup::start().await;
    let (mut client, mut server) = setup.pair().await;
    setup.proxy.set_latency(LATENCY);
    let started = Instant::now();
    client.write_all(b"ping").await.expect("write");
    assert_eq!(read_exactly(&mut server, 4).await, b"ping");
    server.write_all(b"pong").await.expect("write");
    assert_eq!(read_exactly(&mut client, 4).await, b"pong");
    assert!(started.elapsed() >= 2 * LATENCY, "{:?}", started.elapsed());
    // Ten writes in a row arrive one latency later, not ten.
    let started = Instant::now();
    for _ in 0..10 {
        client.write_all(b"x").await.expect("write");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(read_exactly(&mut server, 10).await, vec![b'x'; 10]);
    let elapsed = started.elapsed();
    assert!(elapsed >= LATENCY, "{elapsed:?}");
    assert!(elapsed < 5 * LATENCY, "latency is pipelined: {elapsed:?}");
    setup.proxy.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_upstream_resets_the_client() {
    let nowhere = {
        let listener = std::net::TcpListener::bind(loopback()).expect("bind");
        listener.local_addr().expect("address")
    };
    let proxy = Proxy::start(loopback(), nowhere).await.expect("start");
    let mut client = TcpStream::connect(proxy.local_address())
        .await
        .expect("connect");
    assert!(read_to_end(&mut client).await.is_err());
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_large_transfer_passes_intact() {
    let setup = Setup::start().await;
    let (mut client, mut server) = setup.pair().await;
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|index| (index % 251) as u8)
        .collect();
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&data).await.expect("write");
        client.shutdown().await.expect("shutdown");
        client
    });
    let received = read_to_end(&mut server).await.expect("an orderly close");
    assert!(received == expected, "8 MiB arrive intact and in order");
    let _client = writer.await.expect("the writer");
    let started = Instant::now();
    while setup.proxy.stats().bytes_to_upstream < expected.len() as u64 {
        assert!(started.elapsed() < WAIT);
        tokio::task::yield_now().await;
    }
    setup.proxy.shutdown().await;
}
