//! One client connection: the handshake (or a four-letter word), then a reader loop that turns
//! frames into requests for the core and a writer task that encodes what the core sends back.
//! Generic over the byte stream, so plain TCP and TLS (the secure client port) share it all.
//! SASL exchanges run here (the mechanism's state is per connection); the core learns only
//! each step's reply and, at the end, the identities the connection gains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arbor_proto::{
    ConnectRequest, ErrorCode, Id, Jute, Reader, ReplyHeader, Request, RequestHeader,
    four_letter_word, split_frame, write_frame, write_notification, write_reply,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::ServerConfig;
use crate::core::{ConnectOutcome, CoreMessage, SaslOutcome};
use crate::limits::{OutboundReceiver, outbound_queue};
use crate::outbound::Outbound;
use crate::sasl::{DigestMd5Server, SaslStep, SaslUsers};
use crate::watches::ConnectionId;

/// A client byte stream: TCP, or TLS over TCP.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientStream for T {}

/// What a connection knows before its first byte: identities the transport proved (an x509
/// subject), and the SASL users.
#[derive(Clone, Default)]
pub(crate) struct Admission {
    /// Identities proven by the transport (TLS client certificate).
    pub identities: Vec<Id>,
    /// SASL DIGEST-MD5 users; none: SASL requests go to the core, which refuses them.
    pub sasl_users: Option<Arc<SaslUsers>>,
}

/// Bytes written to the socket in one go at most; more queued replies wait for the next write.
const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;

/// Why a connection ended, for the log line.
type CloseReason = String;

/// Serves one accepted socket until it closes; tells the core when it does.
pub(crate) async fn serve<S: ClientStream>(
    stream: S,
    peer: SocketAddr,
    connection: ConnectionId,
    core: mpsc::Sender<CoreMessage>,
    config: Arc<ServerConfig>,
    admission: Admission,
) {
    let closer = CancellationToken::new();
    let served = serve_inner(
        stream,
        peer,
        connection,
        &core,
        &config,
        admission,
        closer.clone(),
    );
    match served.await {
        Ok(()) => debug!(%peer, "connection ended"),
        Err(reason) => info!(%peer, %reason, "connection closed"),
    }
    closer.cancel();
    let _ = core.send(CoreMessage::Closed { connection }).await;
}

async fn serve_inner<S: ClientStream>(
    stream: S,
    peer: SocketAddr,
    connection: ConnectionId,
    core: &mpsc::Sender<CoreMessage>,
    config: &ServerConfig,
    admission: Admission,
    closer: CancellationToken,
) -> Result<(), CloseReason> {
    let (mut read_half, mut write_half) = tokio::io::split(stream);
    let mut buffer = BytesMut::with_capacity(4096);
    while buffer.len() < 4 {
        if read_half
            .read_buf(&mut buffer)
            .await
            .map_err(|e| e.to_string())?
            == 0
        {
            return Ok(());
        }
    }
    if let Some(word) = four_letter_word([buffer[0], buffer[1], buffer[2], buffer[3]]) {
        let (reply, answer) = oneshot::channel();
        core.send(CoreMessage::Admin { word, reply })
            .await
            .map_err(|_| "server stopping")?;
        let text = answer.await.map_err(|_| "server stopping")?;
        write_half
            .write_all(text.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let _ = write_half.shutdown().await;
        return Ok(());
    }
    let frame_max = config.frame_size_bytes_max;
    let Some(payload) = next_frame(&mut read_half, &mut buffer, frame_max, &closer).await? else {
        return Ok(());
    };
    let request = ConnectRequest::decode(&mut Reader::from_bytes(&payload))
        .map_err(|error| format!("malformed connect request: {error}"))?;
    let (outbound_tx, outbound_rx) =
        outbound_queue(config.outbound_queue_max, config.outbound_bytes_max);
    let permits = Arc::new(Semaphore::new(
        config.requests_inflight_per_connection_max.max(1) as usize,
    ));
    let (reply, outcome) = oneshot::channel();
    let message = CoreMessage::Connect {
        connection,
        peer,
        request,
        outbound: outbound_tx,
        closer: closer.clone(),
        permits: permits.clone(),
        identities: admission.identities,
        reply,
    };
    core.send(message).await.map_err(|_| "server stopping")?;
    let response = match outcome.await.map_err(|_| "server stopping")? {
        ConnectOutcome::Accepted(response) => response,
        ConnectOutcome::Refused(response) => {
            let mut out = Vec::new();
            write_frame(&mut out, |payload| response.encode(payload));
            let _ = write_half.write_all(&out).await;
            let _ = write_half.shutdown().await;
            return Err("session expired or invalid".into());
        }
        ConnectOutcome::Close(reason) => return Err(reason.into()),
    };
    let mut out = Vec::new();
    write_frame(&mut out, |payload| response.encode(payload));
    write_half
        .write_all(&out)
        .await
        .map_err(|e| e.to_string())?;
    write_half.flush().await.map_err(|e| e.to_string())?;
    let writer = tokio::spawn(write_loop(write_half, outbound_rx, closer.clone()));
    let reader = ConnectionReader {
        read_half,
        buffer,
        connection,
        frame_max,
        permits,
        sasl: admission
            .sasl_users
            .filter(|users| !users.is_empty())
            .map(|users| (users, DigestMd5Server::new())),
    };
    let result = read_loop(reader, core, &closer).await;
    closer.cancel();
    let _ = writer.await;
    result
}

/// Reads the next whole frame, or `None` at end of stream or when the connection is closed.
async fn next_frame<R: AsyncRead + Unpin>(
    read_half: &mut R,
    buffer: &mut BytesMut,
    frame_max: u32,
    closer: &CancellationToken,
) -> Result<Option<Bytes>, CloseReason> {
    loop {
        match split_frame(buffer, frame_max) {
            Ok(Some((_, consumed))) => {
                let mut frame = buffer.split_to(consumed).freeze();
                return Ok(Some(frame.split_off(4)));
            }
            Ok(None) => {}
            Err(error) => {
                warn!(%error, "closing connection: frame over the size limit");
                return Err(error.to_string());
            }
        }
        tokio::select! {
            read = read_half.read_buf(buffer) => {
                if read.map_err(|e| e.to_string())? == 0 {
                    return Ok(None);
                }
            }
            _ = closer.cancelled() => return Ok(None),
        }
    }
}

/// The reading side of an established connection.
struct ConnectionReader<S> {
    read_half: ReadHalf<S>,
    buffer: BytesMut,
    connection: ConnectionId,
    frame_max: u32,
    permits: Arc<Semaphore>,
    /// The SASL users and this connection's DIGEST-MD5 exchange, when SASL is configured.
    sasl: Option<(Arc<SaslUsers>, DigestMd5Server)>,
}

/// Runs one SASL step here and tells the core only its outcome.
fn sasl_message(
    users: &SaslUsers,
    server: &mut DigestMd5Server,
    connection: ConnectionId,
    xid: i32,
    token: &[u8],
    received: Instant,
) -> CoreMessage {
    let outcome = match server.step(users, token, &crate::sasl::fresh_nonce()) {
        SaslStep::Challenge(token) => SaslOutcome::Continue(Bytes::from(token)),
        SaslStep::Success {
            token,
            identities,
            user,
        } => {
            info!(%user, "SASL DIGEST-MD5 authentication succeeded");
            SaslOutcome::Authenticated {
                token: Bytes::from(token),
                identities,
            }
        }
        SaslStep::Failure(reason) => {
            warn!(%reason, "SASL authentication failed; closing the connection");
            SaslOutcome::Failed
        }
    };
    CoreMessage::Sasl {
        connection,
        xid,
        received,
        outcome,
    }
}

async fn read_loop<S: ClientStream>(
    mut conn: ConnectionReader<S>,
    core: &mpsc::Sender<CoreMessage>,
    closer: &CancellationToken,
) -> Result<(), CloseReason> {
    let connection = conn.connection;
    let permits = conn.permits.clone();
    while let Some(payload) = next_frame(
        &mut conn.read_half,
        &mut conn.buffer,
        conn.frame_max,
        closer,
    )
    .await?
    {
        let received = Instant::now();
        let mut reader = Reader::from_bytes(&payload);
        let header = RequestHeader::decode(&mut reader)
            .map_err(|error| format!("malformed request header: {error}"))?;
        let request = Request::decode(header.op_code, &mut reader).map_err(|error| {
            warn!(xid = header.xid, op = header.op_code, %error, "closing connection: bad request");
            format!("bad request (op {}): {error}", header.op_code)
        })?;
        // Back-pressure: at most N requests of this connection await their reply; past that we
        // stop reading its socket until the core answers one.
        tokio::select! {
            permit = permits.acquire() => match permit {
                Ok(permit) => permit.forget(),
                Err(_) => return Ok(()),
            },
            _ = closer.cancelled() => return Ok(()),
        }
        let message = match (request, conn.sasl.as_mut()) {
            (Request::Sasl(sasl), Some((users, server))) => {
                sasl_message(users, server, connection, header.xid, &sasl.token, received)
            }
            (request, _) => CoreMessage::Request {
                connection,
                xid: header.xid,
                request,
                received,
            },
        };
        if core.send(message).await.is_err() {
            return Err("server stopping".into());
        }
    }
    Ok(())
}

async fn write_loop<S: ClientStream>(
    mut write_half: WriteHalf<S>,
    mut outbound: OutboundReceiver,
    closer: CancellationToken,
) {
    let mut buffer = Vec::with_capacity(64 * 1024);
    loop {
        let first = tokio::select! {
            message = outbound.recv() => message,
            _ = closer.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut close = encode(first, &mut buffer);
        while !close && buffer.len() < WRITE_BATCH_BYTES_MAX {
            match outbound.try_recv() {
                Some(message) => close = encode(message, &mut buffer),
                None => break,
            }
        }
        if write_half.write_all(&buffer).await.is_err() {
            break;
        }
        // TLS buffers what it encrypts: push it to the socket now, not at the next write.
        if write_half.flush().await.is_err() {
            break;
        }
        buffer.clear();
        // A burst can grow the buffer far past its usual size; give that memory back.
        if buffer.capacity() > 4 * WRITE_BATCH_BYTES_MAX {
            buffer = Vec::with_capacity(64 * 1024);
        }
        if close {
            break;
        }
    }
    closer.cancel();
    let _ = write_half.shutdown().await;
}

/// Encodes one message; true when the connection must close after it.
fn encode(message: Outbound, buffer: &mut Vec<u8>) -> bool {
    match message {
        Outbound::Reply { xid, zxid, result } => {
            let err = match &result {
                Ok(_) => ErrorCode::Ok.code(),
                Err(code) => code.code(),
            };
            write_reply(buffer, &ReplyHeader { xid, zxid, err }, |body| {
                if let Ok(response) = &result {
                    response.encode(body);
                }
            });
            false
        }
        Outbound::Event { zxid, event } => {
            write_notification(buffer, zxid, &event);
            false
        }
        Outbound::Close => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_proto::GetDataRequest;
    use std::time::Duration;
    use tokio::sync::mpsc::error::TryRecvError;

    /// Runs every other task of this (paused-clock) runtime until all are idle: tokio moves a
    /// paused clock forward only when nothing else can run.
    async fn settle() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    fn next_xid(core: &mut mpsc::Receiver<CoreMessage>) -> Option<i32> {
        match core.try_recv() {
            Ok(CoreMessage::Request { xid, .. }) => Some(xid),
            Ok(_) => panic!("a request was expected"),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }

    /// `requests_inflight_per_connection_max`: with N requests unanswered the reader stops
    /// taking frames from the socket (they stay in the kernel's buffer, so a flooding client
    /// cannot grow the server's memory), and takes exactly one more per answer, in order.
    #[tokio::test(start_paused = true)]
    async fn past_the_in_flight_limit_the_reader_waits_for_answers() {
        const LIMIT: usize = 4;
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (read_half, _write_half) = tokio::io::split(server);
        let permits = Arc::new(Semaphore::new(LIMIT));
        let reader = ConnectionReader {
            read_half,
            buffer: BytesMut::new(),
            connection: 7,
            frame_max: 1 << 20,
            permits: permits.clone(),
            sasl: None,
        };
        let (core_tx, mut core) = mpsc::channel(1024);
        let closer = CancellationToken::new();
        let loop_closer = closer.clone();
        let task = tokio::spawn(async move { read_loop(reader, &core_tx, &loop_closer).await });

        let mut frames = Vec::new();
        for xid in 1..=10 {
            let request = Request::GetData(GetDataRequest {
                path: "/x".into(),
                watch: false,
            });
            write_frame(&mut frames, |payload| {
                request.encode_with_header(xid, payload)
            });
        }
        let (_client_read, mut client_write) = tokio::io::split(client);
        client_write
            .write_all(&frames)
            .await
            .expect("in-memory write");
        settle().await;

        let first: Vec<_> = std::iter::from_fn(|| next_xid(&mut core)).collect();
        assert_eq!(
            first,
            vec![1, 2, 3, 4],
            "only the limit's worth reaches the core"
        );
        // The core answers one (what core/replies.rs does per reply): one more comes in.
        permits.add_permits(1);
        settle().await;
        assert_eq!(next_xid(&mut core), Some(5));
        assert_eq!(next_xid(&mut core), None, "one answer lets one request in");
        permits.add_permits(LIMIT);
        settle().await;
        let rest: Vec<_> = std::iter::from_fn(|| next_xid(&mut core)).collect();
        assert_eq!(rest, vec![6, 7, 8, 9]);

        // Closing the connection ends a reader that is waiting for a permit.
        closer.cancel();
        let outcome = task.await.expect("the reader task");
        assert!(outcome.is_ok(), "{outcome:?}");
    }
}
