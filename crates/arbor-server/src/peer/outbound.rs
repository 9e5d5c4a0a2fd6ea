//! The dialer: one task per peer that keeps a connection to it open and writes its queue.
//!
//! Dial, handshake, then write frames until the connection breaks; then wait out the backoff
//! and dial again, for as long as the peer is a member. The acceptor sends keepalives back, so
//! a peer that vanished without a FIN (power loss, partition) is noticed by the idle timeout
//! instead of by TCP's retransmission timeout many minutes later.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::PeerStream;
use super::backoff::backoff_delay;
use super::config::PeerConfig;
use super::frame::{Frame, FrameError, read_frame, write_keepalive, write_payload};
use super::handshake::{self, ConnectError, RefuseReason};
use super::queue::SendQueue;
use super::stats::PeerCounters;

/// Payload bytes taken from the queue per write batch: one flush per batch.
const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;
/// The write buffer that coalesces small frames; larger payloads bypass it.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Why an established outbound connection ended with an error.
#[derive(Debug, Error)]
enum LinkError {
    #[error("write failed: {0}")]
    Write(io::Error),
    #[error(transparent)]
    Read(FrameError),
    #[error("the acceptor sent a payload frame, but it may only send keepalives")]
    UnexpectedPayload,
}

/// How an established outbound connection ended.
enum ConnectionEnd {
    /// The peer was removed or the network is stopping.
    Stopped,
    /// The peer's address changed: dial the new one at once.
    AddressChanged,
    /// The connection broke.
    Failed(LinkError),
}

/// One peer's dialer task.
pub(crate) struct Outbound {
    pub(crate) config: Arc<PeerConfig>,
    pub(crate) identity: Arc<super::identity::Identity>,
    pub(crate) peer_id: u64,
    pub(crate) address: watch::Receiver<SocketAddr>,
    pub(crate) queue: Arc<SendQueue>,
    pub(crate) counters: Arc<PeerCounters>,
    /// Cancelled when the peer leaves the membership or the network stops.
    pub(crate) stop: CancellationToken,
}

impl Outbound {
    /// Runs until `stop` is cancelled.
    pub(crate) async fn run(mut self) {
        let mut failures: u32 = 0;
        let mut ever_connected = false;
        let mut last_error: Option<ConnectError> = None;
        // Taken from the queue and not yet confirmed written; what is left here when a
        // connection ends is counted as dropped.
        let mut batch: Vec<Bytes> = Vec::new();
        loop {
            let address = *self.address.borrow_and_update();
            let dialed = tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                dialed = self.connect(address) => dialed,
            };
            match dialed {
                Ok(stream) => {
                    failures = 0;
                    last_error = None;
                    self.counters.set_last_connect_error(None);
                    if ever_connected {
                        PeerCounters::add(&self.counters.reconnects, 1);
                    }
                    ever_connected = true;
                    self.counters
                        .connected
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    info!(%address, "connected to peer");
                    let end = self.serve(stream, &mut batch).await;
                    self.counters
                        .connected
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    if !batch.is_empty() {
                        let bytes: usize = batch.iter().map(Bytes::len).sum();
                        self.counters.dropped(batch.len() as u64, bytes as u64);
                        batch.clear();
                    }
                    match end {
                        ConnectionEnd::Stopped => return,
                        ConnectionEnd::AddressChanged => {
                            info!(old_address = %address, "peer address changed; redialing");
                            continue;
                        }
                        ConnectionEnd::Failed(error) => {
                            if matches!(error, LinkError::Read(FrameError::TooLarge { .. })) {
                                warn!(%address, %error, "connection to peer lost");
                            } else {
                                info!(%address, %error, "connection to peer lost");
                            }
                        }
                    }
                }
                Err(ConnectError::Refused {
                    reason: RefuseReason::ClusterMismatch,
                    cluster_id,
                    node_id,
                    ..
                }) if node_id == self.peer_id && self.identity.adopt(cluster_id, node_id) => {
                    continue;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    PeerCounters::add(&self.counters.connect_failures, 1);
                    // The first failure of a kind is worth a warning; the same failure on
                    // every retry is not.
                    if last_error.as_ref() == Some(&error) {
                        debug!(%address, %error, failures, "cannot connect to peer");
                    } else {
                        warn!(%address, %error, failures, "cannot connect to peer");
                    }
                    self.counters.set_last_connect_error(Some(error.clone()));
                    last_error = Some(error);
                }
            }
            let delay = backoff_delay(
                self.config.backoff_min,
                self.config.backoff_max,
                failures,
                rand::random::<f64>(),
            );
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                changed = self.address.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// TCP connect, TLS when configured, then the handshake, within the connect timeout.
    async fn connect(&self, address: SocketAddr) -> Result<Box<dyn PeerStream>, ConnectError> {
        let attempt = async {
            let stream = TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let mut stream: Box<dyn PeerStream> = match &self.config.tls {
                Some(tls) => Box::new(tls.connect(address, stream).await?),
                None => Box::new(stream),
            };
            handshake::dial(&mut stream, self.identity.local(), self.peer_id).await?;
            Ok(stream)
        };
        tokio::time::timeout(self.config.connect_timeout, attempt)
            .await
            .unwrap_or(Err(ConnectError::Timeout))
    }

    /// Writes the queue to an established connection until it ends.
    async fn serve<S: PeerStream>(&mut self, stream: S, batch: &mut Vec<Bytes>) -> ConnectionEnd {
        let (mut read_half, write_half) = tokio::io::split(stream);
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write_half);
        tokio::select! {
            biased;
            () = self.stop.cancelled() => ConnectionEnd::Stopped,
            changed = self.address.changed() => match changed {
                Ok(()) => ConnectionEnd::AddressChanged,
                Err(_) => ConnectionEnd::Stopped,
            },
            error = write_loop(&self.queue, &self.counters, &self.config, &mut writer, batch) => {
                ConnectionEnd::Failed(error)
            }
            error = read_loop(&mut read_half, &self.config) => ConnectionEnd::Failed(error),
        }
    }
}

/// Moves the queue onto the socket, a batch and one flush at a time; writes a keepalive after
/// `keepalive_interval` with nothing to send. Returns only on failure.
async fn write_loop<W: AsyncWrite + Unpin>(
    queue: &SendQueue,
    counters: &PeerCounters,
    config: &PeerConfig,
    writer: &mut BufWriter<W>,
    batch: &mut Vec<Bytes>,
) -> LinkError {
    loop {
        debug_assert!(batch.is_empty());
        queue.pop_batch(batch, WRITE_BATCH_BYTES_MAX);
        if batch.is_empty() {
            tokio::select! {
                () = queue.ready() => {}
                () = tokio::time::sleep(config.keepalive_interval) => {
                    if let Err(error) = write_keepalive(writer).await {
                        return LinkError::Write(error);
                    }
                    if let Err(error) = writer.flush().await {
                        return LinkError::Write(error);
                    }
                }
            }
            continue;
        }
        for payload in batch.iter() {
            if let Err(error) = write_payload(writer, payload).await {
                return LinkError::Write(error);
            }
        }
        if let Err(error) = writer.flush().await {
            return LinkError::Write(error);
        }
        let bytes: usize = batch.iter().map(Bytes::len).sum();
        PeerCounters::add(&counters.messages_sent, batch.len() as u64);
        PeerCounters::add(&counters.bytes_sent, bytes as u64);
        batch.clear();
    }
}

/// Reads the acceptor's keepalives: silence past the idle timeout means the connection is
/// dead even though writes may still succeed (into the kernel's buffer). Returns only on
/// failure.
async fn read_loop<R: AsyncRead + Unpin>(reader: &mut R, config: &PeerConfig) -> LinkError {
    loop {
        match read_frame(reader, config.frame_bytes_max, config.idle_timeout).await {
            Ok(Frame::Keepalive) => {}
            Ok(Frame::Payload(_)) => return LinkError::UnexpectedPayload,
            Err(error) => return LinkError::Read(error),
        }
    }
}
