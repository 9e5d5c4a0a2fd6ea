//! The acceptor: peers dial us to send; we check their handshake and hand their frames to the
//! core through the bounded inbound channel.
//!
//! A slow core makes the reader wait on that channel, which stops it reading the socket, which
//! fills TCP's window, which blocks the peer's writer, which fills the peer's bounded queue,
//! where `send` starts answering `Full`: back-pressure all the way, no buffer grows.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{Instrument, Span, debug, info, info_span, warn};

use super::frame::{Frame, FrameError, read_frame, write_keepalive};
use super::handshake::{self, AcceptOutcome, RefuseReason, encode_answer};
use super::stats::PeerCounters;
use super::{PeerStream, Shared};

/// The read buffer in front of the socket, so small frames do not cost a read each.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Bytes of a refused dialer's data discarded at most while waiting for it to close.
const REFUSED_DRAIN_BYTES_MAX: usize = 64 * 1024;
/// Pause after a failed `accept` (EMFILE and the like) before trying again.
const ACCEPT_ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// How an established inbound connection ended.
enum InboundEnd {
    Stopped,
    Superseded,
    InboundClosed,
    Read(FrameError),
    Write(std::io::Error),
}

impl fmt::Display for InboundEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InboundEnd::Stopped => f.write_str("the network is stopping"),
            InboundEnd::Superseded => f.write_str("the peer opened a newer connection"),
            InboundEnd::InboundClosed => f.write_str("the inbound channel is closed"),
            InboundEnd::Read(error) => write!(f, "{error}"),
            InboundEnd::Write(error) => write!(f, "keepalive write failed: {error}"),
        }
    }
}

/// Accepts peer connections until the network stops, then waits for their handlers.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    inbound: mpsc::Sender<(u64, Bytes)>,
) {
    let permits = Arc::new(Semaphore::new(shared.config.inbound_connections_max));
    let mut handlers = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.stop.cancelled() => break,
            Some(_) = handlers.join_next(), if !handlers.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accepting a peer connection failed");
                tokio::select! {
                    () = shared.stop.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(
                %remote,
                limit = shared.config.inbound_connections_max,
                "too many inbound peer connections; refusing"
            );
            // Best effort and without waiting: the dialer reads the refusal after its hello.
            let _ = stream.try_write(&encode_answer(
                Some(RefuseReason::Busy),
                shared.identity.local(),
            ));
            continue;
        };
        let span = info_span!(
            "peer_in",
            node_id = shared.config.node_id,
            %remote,
            peer_id = tracing::field::Empty
        );
        handlers.spawn(
            serve_inbound(stream, remote, shared.clone(), inbound.clone(), permit).instrument(span),
        );
    }
    drop(listener);
    while handlers.join_next().await.is_some() {}
}

/// One inbound connection: TLS when configured, the handshake, then frames until it ends.
async fn serve_inbound(
    stream: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    inbound: mpsc::Sender<(u64, Bytes)>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let Some(tls) = shared.config.tls.clone() else {
        serve_established(stream, remote, &shared, &inbound).await;
        return;
    };
    let accepted = tokio::select! {
        biased;
        () = shared.stop.cancelled() => return,
        outcome = tokio::time::timeout(shared.config.connect_timeout, tls.accept(stream)) => outcome,
    };
    match accepted {
        Ok(Ok(stream)) => serve_established(stream, remote, &shared, &inbound).await,
        Ok(Err(error)) => warn!(%remote, %error, "peer TLS handshake failed; closing"),
        Err(_) => debug!(%remote, "no peer TLS handshake within the connect timeout"),
    }
}

/// The handshake on a connected (plain or TLS) stream, then frames until it ends.
async fn serve_established<S: PeerStream>(
    mut stream: S,
    remote: SocketAddr,
    shared: &Arc<Shared>,
    inbound: &mpsc::Sender<(u64, Bytes)>,
) {
    let handshake = tokio::select! {
        biased;
        () = shared.stop.cancelled() => return,
        outcome = tokio::time::timeout(
            shared.config.connect_timeout,
            handshake::accept(&mut stream, shared.identity.local()),
        ) => outcome,
    };
    let hello = match handshake {
        Err(_) => {
            debug!(%remote, "no peer handshake within the connect timeout");
            return;
        }
        Ok(Err(error)) => {
            debug!(%remote, %error, "peer handshake failed");
            return;
        }
        Ok(Ok(AcceptOutcome::Refused {
            reason,
            hello: Some(hello),
        })) => {
            warn!(
                %remote,
                %reason,
                cluster_id = shared.identity.local().cluster_id,
                peer_cluster_id = hello.cluster_id,
                peer_node_id = hello.sender,
                intended_node_id = hello.receiver,
                "refused peer connection"
            );
            close_after_refusal(stream, shared).await;
            return;
        }
        Ok(Ok(AcceptOutcome::Refused {
            reason,
            hello: None,
        })) => {
            warn!(%remote, %reason, "refused peer connection");
            close_after_refusal(stream, shared).await;
            return;
        }
        Ok(Ok(AcceptOutcome::Accepted(hello))) => hello,
    };
    let peer_id = hello.sender;
    Span::current().record("peer_id", peer_id);
    let registration = shared.register_inbound(peer_id);
    info!(%remote, "accepted peer connection");
    let end = tokio::select! {
        biased;
        () = shared.stop.cancelled() => InboundEnd::Stopped,
        () = registration.superseded.cancelled() => InboundEnd::Superseded,
        end = serve_frames(stream, peer_id, &registration.counters, inbound, shared) => end,
    };
    shared.unregister_inbound(peer_id, registration.generation);
    match end {
        InboundEnd::Read(FrameError::TooLarge { .. }) => {
            warn!(%remote, reason = %end, "peer connection closed");
        }
        InboundEnd::Stopped => debug!(%remote, reason = %end, "peer connection closed"),
        _ => info!(%remote, reason = %end, "peer connection closed"),
    }
}

/// Closes a refused connection so that the refusal is read. Closing a socket with unread
/// bytes (the rest of a hello we stopped reading) sends a reset, which may reach the dialer
/// before it reads our answer; so: send our FIN, then discard what the dialer still sends
/// until it closes too, within the connect timeout and [`REFUSED_DRAIN_BYTES_MAX`].
async fn close_after_refusal<S: PeerStream>(mut stream: S, shared: &Shared) {
    let drain = async {
        stream.shutdown().await?;
        let mut buffer = [0u8; 512];
        let mut drained = 0usize;
        while drained < REFUSED_DRAIN_BYTES_MAX {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            drained += read;
        }
        std::io::Result::Ok(())
    };
    tokio::select! {
        () = shared.stop.cancelled() => {}
        _ = tokio::time::timeout(shared.config.connect_timeout, drain) => {}
    }
}

/// Reads frames and writes keepalives on an accepted connection until it fails.
async fn serve_frames<S: PeerStream>(
    stream: S,
    peer_id: u64,
    counters: &PeerCounters,
    inbound: &mpsc::Sender<(u64, Bytes)>,
    shared: &Shared,
) -> InboundEnd {
    let (read_half, mut write_half) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, read_half);
    tokio::select! {
        end = receive_loop(&mut reader, peer_id, counters, inbound, shared) => end,
        error = keepalive_loop(&mut write_half, shared) => InboundEnd::Write(error),
    }
}

async fn receive_loop<R: AsyncRead + Unpin>(
    reader: &mut R,
    peer_id: u64,
    counters: &PeerCounters,
    inbound: &mpsc::Sender<(u64, Bytes)>,
    shared: &Shared,
) -> InboundEnd {
    loop {
        let frame = read_frame(
            reader,
            shared.config.frame_bytes_max,
            shared.config.idle_timeout,
        )
        .await;
        match frame {
            Ok(Frame::Keepalive) => {}
            Ok(Frame::Payload(payload)) => {
                let bytes = payload.len() as u64;
                // Waiting here is the back-pressure: nothing more is read meanwhile.
                if inbound.send((peer_id, payload)).await.is_err() {
                    return InboundEnd::InboundClosed;
                }
                PeerCounters::add(&counters.messages_received, 1);
                PeerCounters::add(&counters.bytes_received, bytes);
            }
            Err(error) => return InboundEnd::Read(error),
        }
    }
}

/// The acceptor sends nothing but keepalives, so the dialer can tell a live peer from a dead
/// one even while it has nothing to send or while its writes sit in a full socket buffer.
async fn keepalive_loop<W: AsyncWrite + Unpin>(writer: &mut W, shared: &Shared) -> std::io::Error {
    loop {
        tokio::time::sleep(shared.config.keepalive_interval).await;
        let written = async {
            write_keepalive(writer).await?;
            writer.flush().await
        };
        if let Err(error) = written.await {
            return error;
        }
    }
}
