//! One client connection: the handshake (or a four-letter word), then a reader loop that turns
//! frames into requests for the core and a writer task that encodes what the core sends back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arbor_proto::{
    ConnectRequest, ErrorCode, Jute, Reader, ReplyHeader, Request, RequestHeader, four_letter_word,
    split_frame, write_frame, write_notification, write_reply,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::ServerConfig;
use crate::core::{ConnectOutcome, CoreMessage};
use crate::outbound::Outbound;
use crate::watches::ConnectionId;

/// Bytes written to the socket in one go at most; more queued replies wait for the next write.
const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;

/// Why a connection ended, for the log line.
type CloseReason = String;

/// Serves one accepted socket until it closes; tells the core when it does.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    connection: ConnectionId,
    core: mpsc::Sender<CoreMessage>,
    config: Arc<ServerConfig>,
) {
    let closer = CancellationToken::new();
    match serve_inner(stream, peer, connection, &core, &config, closer.clone()).await {
        Ok(()) => debug!(%peer, "connection ended"),
        Err(reason) => info!(%peer, %reason, "connection closed"),
    }
    closer.cancel();
    let _ = core.send(CoreMessage::Closed { connection }).await;
}

async fn serve_inner(
    stream: TcpStream,
    peer: SocketAddr,
    connection: ConnectionId,
    core: &mpsc::Sender<CoreMessage>,
    config: &ServerConfig,
    closer: CancellationToken,
) -> Result<(), CloseReason> {
    let (mut read_half, mut write_half) = stream.into_split();
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
    let (outbound_tx, outbound_rx) = mpsc::channel(config.outbound_queue_max.max(1) as usize);
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
    let writer = tokio::spawn(write_loop(write_half, outbound_rx, closer.clone()));
    let result = read_loop(
        read_half, buffer, connection, core, frame_max, permits, &closer,
    )
    .await;
    closer.cancel();
    let _ = writer.await;
    result
}

/// Reads the next whole frame, or `None` at end of stream or when the connection is closed.
async fn next_frame(
    read_half: &mut OwnedReadHalf,
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

async fn read_loop(
    mut read_half: OwnedReadHalf,
    mut buffer: BytesMut,
    connection: ConnectionId,
    core: &mpsc::Sender<CoreMessage>,
    frame_max: u32,
    permits: Arc<Semaphore>,
    closer: &CancellationToken,
) -> Result<(), CloseReason> {
    while let Some(payload) = next_frame(&mut read_half, &mut buffer, frame_max, closer).await? {
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
        let message = CoreMessage::Request {
            connection,
            xid: header.xid,
            request,
            received,
        };
        if core.send(message).await.is_err() {
            return Err("server stopping".into());
        }
    }
    Ok(())
}

async fn write_loop(
    mut write_half: OwnedWriteHalf,
    mut outbound: mpsc::Receiver<Outbound>,
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
                Ok(message) => close = encode(message, &mut buffer),
                Err(_) => break,
            }
        }
        if write_half.write_all(&buffer).await.is_err() {
            break;
        }
        buffer.clear();
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
