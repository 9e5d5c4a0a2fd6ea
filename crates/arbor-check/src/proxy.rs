//! A fault-injecting TCP proxy on loopback.
//!
//! Every connection accepted on [`Proxy::local_address`] is forwarded to the upstream address,
//! byte for byte, through two pumps: client → upstream ([`Direction::ToUpstream`]) and
//! upstream → client ([`Direction::ToClient`]). Controls take effect at once, on existing and
//! new connections:
//!
//! - [`Mode::Pass`]: forward both ways.
//! - [`Mode::Drop`], or [`Proxy::set_flow`] for one direction: a blackhole. Connections stay
//!   open and nothing is forwarded. The bytes are *held*, not discarded: a TCP stream never
//!   loses bytes in the middle, it delivers them late or breaks, so discarding would produce a
//!   corruption no real network can. Held bytes back up into the sender's socket buffer, as
//!   unacknowledged segments do in a real partition, and flow again if the partition heals
//!   before the endpoints give up (a keepalive or idle timeout usually gives up first). A new
//!   connection is accepted but held silent, not connected upstream, until both directions
//!   pass (a TCP handshake needs both).
//! - [`Mode::Reject`]: every connection is reset, and new ones are reset as soon as they are
//!   accepted (the client sees its connect succeed, then a reset).
//! - [`Proxy::cut_all`]: resets the connections open now; new ones are served as usual.
//! - [`Proxy::set_latency`]: a one-way delay added to every chunk in each direction
//!   (pipelined: it delays, it does not throttle).
//!
//! When one side closes its sending direction, the proxy forwards the close (a FIN) once the
//! bytes before it are delivered; a read or write error resets both sides.
//!
//! Memory is bounded per connection: at most [`PUMP_CHUNKS_MAX`] chunks of
//! [`CHUNK_BYTES_MAX`] bytes in flight per direction.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Bytes read from one side in one go at most.
pub const CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Chunks read but not yet written (held or delayed), per direction of a connection.
pub const PUMP_CHUNKS_MAX: usize = 64;
/// Time allowed to connect upstream for an admitted connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What the proxy does with all traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Blackhole both ways: keep connections open, forward nothing (bytes are held).
    Drop,
    /// Reset every connection and every new one.
    Reject,
}

/// One direction of a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the client that connected to the proxy, to the upstream server.
    ToUpstream,
    /// From the upstream server back to the client.
    ToClient,
}

/// What one direction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Forward.
    Pass,
    /// Forward nothing (bytes are held, connections stay open).
    Drop,
}

/// Counters of a proxy's life so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted from clients.
    pub connections_accepted: u64,
    /// Connections reset at accept because the proxy was rejecting.
    pub connections_rejected: u64,
    /// Connections being held or forwarded now.
    pub connections_open: u64,
    /// Connections reset by [`Mode::Reject`] or [`Proxy::cut_all`] while open.
    pub connections_reset: u64,
    /// Bytes delivered to the upstream.
    pub bytes_to_upstream: u64,
    /// Bytes delivered to clients.
    pub bytes_to_client: u64,
}

/// Everything a connection needs to know, in one value so a change is seen whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Settings {
    to_upstream: Flow,
    to_client: Flow,
    reject: bool,
    latency: Duration,
    /// Bumped by `cut_all`: a connection born under an older generation resets itself.
    cut_generation: u64,
    upstream: SocketAddr,
}

impl Settings {
    fn flow(&self, direction: Direction) -> Flow {
        match direction {
            Direction::ToUpstream => self.to_upstream,
            Direction::ToClient => self.to_client,
        }
    }

    fn admits_new_connections(&self) -> bool {
        !self.reject && self.to_upstream == Flow::Pass && self.to_client == Flow::Pass
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    open: AtomicU64,
    reset: AtomicU64,
    to_upstream: AtomicU64,
    to_client: AtomicU64,
}

struct Shared {
    settings: watch::Sender<Settings>,
    counters: Counters,
    stop: CancellationToken,
}

/// A running proxy. Dropping it resets its connections without waiting;
/// [`Proxy::shutdown`] waits for them.
pub struct Proxy {
    shared: Arc<Shared>,
    local_address: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `listen` (port 0 picks a free port) and forwards to `upstream`, in
    /// [`Mode::Pass`] with no added latency.
    ///
    /// # Errors
    /// The bind error.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let local_address = listener.local_addr()?;
        let (settings, _) = watch::channel(Settings {
            to_upstream: Flow::Pass,
            to_client: Flow::Pass,
            reject: false,
            latency: Duration::ZERO,
            cut_generation: 0,
            upstream,
        });
        let shared = Arc::new(Shared {
            settings,
            counters: Counters::default(),
            stop: CancellationToken::new(),
        });
        let acceptor = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Proxy {
            shared,
            local_address,
            acceptor: Some(acceptor),
        })
    }

    /// The address clients connect to.
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// Sets both directions at once; see [`Mode`]. Leaving [`Mode::Reject`] lets new
    /// connections in again.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.settings.send_modify(|settings| {
            let (flow, reject) = match mode {
                Mode::Pass => (Flow::Pass, false),
                Mode::Drop => (Flow::Drop, false),
                Mode::Reject => (Flow::Pass, true),
            };
            settings.to_upstream = flow;
            settings.to_client = flow;
            settings.reject = reject;
        });
    }

    /// Sets one direction, for one-way partitions. Does not leave [`Mode::Reject`].
    pub fn set_flow(&self, direction: Direction, flow: Flow) {
        self.shared
            .settings
            .send_modify(|settings| match direction {
                Direction::ToUpstream => settings.to_upstream = flow,
                Direction::ToClient => settings.to_client = flow,
            });
    }

    /// Adds `latency` to every chunk forwarded from now on, in each direction.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .settings
            .send_modify(|settings| settings.latency = latency);
    }

    /// Resets every connection open now (both sides see a reset); new connections are served
    /// according to the mode.
    pub fn cut_all(&self) {
        self.shared
            .settings
            .send_modify(|settings| settings.cut_generation += 1);
    }

    /// Forwards connections admitted from now on to another address (a restarted server on a
    /// new port). Open connections keep their upstream.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.shared
            .settings
            .send_modify(|settings| settings.upstream = upstream);
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        let counters = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ProxyStats {
            connections_accepted: load(&counters.accepted),
            connections_rejected: load(&counters.rejected),
            connections_open: load(&counters.open),
            connections_reset: load(&counters.reset),
            bytes_to_upstream: load(&counters.to_upstream),
            bytes_to_client: load(&counters.to_client),
        }
    }

    /// Stops listening, resets every connection and waits for them.
    pub async fn shutdown(mut self) {
        self.shared.stop.cancel();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(error) => {
                warn!(%error, "proxy accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if shared.settings.borrow().reject {
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            reset(client);
            continue;
        }
        connections.spawn(serve(client, shared.clone()));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Closes with a reset (RST) instead of an orderly close (FIN).
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Decrements the open-connection count however a connection ends.
struct OpenGuard<'a>(&'a Counters);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a forwarded connection ended.
enum End {
    /// Both directions closed in order.
    Closed,
    /// A side failed, or a reset was ordered: reset both.
    Reset { ordered: bool },
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    shared.counters.open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(&shared.counters);
    let mut settings = shared.settings.subscribe();
    let born = settings.borrow().cut_generation;
    let doomed = |settings: &Settings| settings.reject || settings.cut_generation != born;
    // Held silent until both directions pass.
    loop {
        let current = *settings.borrow_and_update();
        if doomed(&current) {
            shared.counters.reset.fetch_add(1, Ordering::Relaxed);
            reset(client);
            return;
        }
        if current.admits_new_connections() {
            break;
        }
        tokio::select! {
            () = shared.stop.cancelled() => {
                reset(client);
                return;
            }
            changed = settings.changed() => {
                if changed.is_err() {
                    reset(client);
                    return;
                }
            }
        }
    }
    let upstream_address = settings.borrow().upstream;
    let connected = tokio::select! {
        () = shared.stop.cancelled() => None,
        connected = tokio::time::timeout(
            UPSTREAM_CONNECT_TIMEOUT,
            TcpStream::connect(upstream_address),
        ) => Some(connected),
    };
    let mut upstream = match connected {
        Some(Ok(Ok(upstream))) => upstream,
        Some(Ok(Err(error))) => {
            debug!(%upstream_address, %error, "proxy cannot reach the upstream");
            reset(client);
            return;
        }
        Some(Err(_)) | None => {
            reset(client);
            return;
        }
    };
    let mut client = client;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let end = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let (to_upstream_settings, to_client_settings) = (settings.clone(), settings.clone());
        let pumps = async {
            tokio::try_join!(
                pump(
                    client_read,
                    upstream_write,
                    Direction::ToUpstream,
                    to_upstream_settings,
                    &shared.counters.to_upstream,
                ),
                pump(
                    upstream_read,
                    client_write,
                    Direction::ToClient,
                    to_client_settings,
                    &shared.counters.to_client,
                ),
            )
        };
        tokio::select! {
            biased;
            () = shared.stop.cancelled() => End::Reset { ordered: false },
            _ = settings.wait_for(|current| doomed(current)) => End::Reset { ordered: true },
            pumped = pumps => match pumped {
                Ok(_) => End::Closed,
                Err(_) => End::Reset { ordered: false },
            },
        }
    };
    if let End::Reset { ordered } = end {
        if ordered {
            shared.counters.reset.fetch_add(1, Ordering::Relaxed);
        }
        reset(client);
        reset(upstream);
    }
}

/// Waits until `direction` passes.
async fn flowing(settings: &mut watch::Receiver<Settings>, direction: Direction) {
    // An error means the proxy is gone; the connection is being torn down anyway.
    let _ = settings
        .wait_for(|current| current.flow(direction) == Flow::Pass)
        .await;
}

/// Forwards one direction until its source closes (then forwards the close) or fails.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    direction: Direction,
    settings: watch::Receiver<Settings>,
    delivered: &AtomicU64,
) -> io::Result<()> {
    let (chunks, mut pending) = mpsc::channel::<(Instant, Bytes)>(PUMP_CHUNKS_MAX);
    let mut read_settings = settings.clone();
    let mut write_settings = settings;
    let reading = async move {
        let mut buffer = vec![0u8; CHUNK_BYTES_MAX];
        loop {
            flowing(&mut read_settings, direction).await;
            let read = from.read(&mut buffer).await?;
            if read == 0 {
                return io::Result::Ok(());
            }
            let due = Instant::now() + read_settings.borrow().latency;
            let chunk = Bytes::copy_from_slice(&buffer[..read]);
            if chunks.send((due, chunk)).await.is_err() {
                return Ok(());
            }
        }
    };
    let writing = async move {
        while let Some((due, chunk)) = pending.recv().await {
            tokio::time::sleep_until(due).await;
            flowing(&mut write_settings, direction).await;
            to.write_all(&chunk).await?;
            delivered.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        to.shutdown().await
    };
    tokio::try_join!(reading, writing).map(|_| ())
}
