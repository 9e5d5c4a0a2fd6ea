//! A small pipelined ZooKeeper client session over tokio TCP: the handshake, a bounded window
//! of outstanding requests matched to replies by xid, pings when idle, and watch events.
//!
//! It is deliberately not a general client (no reconnect, no watcher callbacks, no chroot): a
//! benchmark wants to see every failure, not hide it behind retries.

use std::time::Duration;

use arbor_proto::{
    ConnectRequest, ConnectResponse, DecodeError, Jute, OpCode, Reader, ReplyHeader, Request,
    Response, WatcherEvent, XID_NOTIFICATION, XID_PING, split_frame, write_frame,
};
use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use crate::pipeline::{Pipeline, PipelineError};

/// The largest frame this client accepts from a server by default. Servers cap what they accept
/// at jute.maxbuffer (1 MiB − 1), but not always what they send (a getChildren of 100k children
/// is about that size), so the bench reads up to this rather than fail the measurement.
pub const READ_FRAME_SIZE_BYTES_MAX_DEFAULT: u32 = 16 * 1024 * 1024;

/// Bytes read from the socket per read call (the buffer grows for larger frames).
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Why a session failed. Every variant ends the session: the bench counts it, never retries.
#[derive(Debug, Error)]
pub enum SessionError {
    /// The TCP connection or an I/O on it failed.
    #[error("i/o with {addr}: {source}")]
    Io {
        /// The server.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The connect (TCP and handshake) took longer than allowed.
    #[error("connecting to {addr} timed out after {timeout:?}")]
    ConnectTimeout {
        /// The server.
        addr: String,
        /// The limit.
        timeout: Duration,
    },
    /// The server refused the session (timeout 0 in the connect response).
    #[error("server {addr} refused the session")]
    SessionRefused {
        /// The server.
        addr: String,
    },
    /// The server closed the connection.
    #[error("server {addr} closed the connection")]
    Closed {
        /// The server.
        addr: String,
    },
    /// The server sent bytes that do not decode.
    #[error("undecodable frame from {addr}: {source}")]
    Decode {
        /// The server.
        addr: String,
        /// The cause.
        source: DecodeError,
    },
    /// A reply did not match the outstanding requests, or the window was overrun.
    #[error("protocol violation on {addr}: {source}")]
    Pipeline {
        /// The server.
        addr: String,
        /// The cause.
        source: PipelineError,
    },
    /// The server missed its ping deadline: nothing arrived for the whole session timeout.
    #[error("server {addr} silent for {silent:?} (session timeout)")]
    Silent {
        /// The server.
        addr: String,
        /// How long nothing arrived.
        silent: Duration,
    },
}

/// How to open a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Session timeout asked of the server.
    pub session_timeout_ms: i32,
    /// Outstanding requests allowed on the connection.
    pub window: usize,
    /// Largest frame accepted from the server.
    pub read_frame_size_bytes_max: u32,
    /// Limit on TCP connect plus handshake.
    pub connect_timeout: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            session_timeout_ms: 30_000,
            window: 1,
            read_frame_size_bytes_max: READ_FRAME_SIZE_BYTES_MAX_DEFAULT,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Something the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming<T> {
    /// The reply to a request.
    Reply {
        /// The tag given to [`Session::send`].
        tag: T,
        /// The request's opcode.
        op: OpCode,
        /// The reply header (`err` is 0 on success).
        header: ReplyHeader,
        /// The decoded body on success.
        response: Option<Response>,
        /// When the reply was decoded.
        received_at: Instant,
    },
    /// A watch notification.
    Watch {
        /// The event.
        event: WatcherEvent,
        /// When it was decoded.
        received_at: Instant,
    },
}

/// One ZooKeeper session on one TCP connection.
#[derive(Debug)]
pub struct Session<T> {
    addr: String,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    read_buffer: BytesMut,
    write_buffer: Vec<u8>,
    /// Invariant: `written <= write_buffer.len()`; bytes before it are on the wire.
    written: usize,
    pipeline: Pipeline<T>,
    session_id: i64,
    negotiated_timeout: Duration,
    read_frame_size_bytes_max: u32,
    last_sent_at: Instant,
    last_received_at: Instant,
    ping_outstanding: bool,
}

impl<T> Session<T> {
    /// Connects to `addr` and opens a new session.
    ///
    /// # Errors
    /// [`SessionError::ConnectTimeout`], [`SessionError::Io`], [`SessionError::Closed`],
    /// [`SessionError::Decode`] or [`SessionError::SessionRefused`].
    pub async fn connect(addr: &str, options: &SessionOptions) -> Result<Session<T>, SessionError> {
        let timeout = options.connect_timeout;
        match tokio::time::timeout(timeout, Self::connect_inner(addr, options)).await {
            Ok(result) => result,
            Err(_) => Err(SessionError::ConnectTimeout {
                addr: addr.to_owned(),
                timeout,
            }),
        }
    }

    async fn connect_inner(
        addr: &str,
        options: &SessionOptions,
    ) -> Result<Session<T>, SessionError> {
        let io = |source| SessionError::Io {
            addr: addr.to_owned(),
            source,
        };
        let stream = TcpStream::connect(addr).await.map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let (reader, writer) = stream.into_split();
        let now = Instant::now();
        let mut session = Session {
            addr: addr.to_owned(),
            reader,
            writer,
            read_buffer: BytesMut::with_capacity(READ_CHUNK_BYTES),
            write_buffer: Vec::with_capacity(4096),
            written: 0,
            pipeline: Pipeline::new(options.window.max(1)),
            session_id: 0,
            negotiated_timeout: Duration::from_millis(
                u64::try_from(options.session_timeout_ms).unwrap_or(30_000),
            ),
            read_frame_size_bytes_max: options.read_frame_size_bytes_max,
            last_sent_at: now,
            last_received_at: now,
            ping_outstanding: false,
        };
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: options.session_timeout_ms,
            session_id: 0,
            password: Bytes::from_static(&[0; 16]),
            read_only: Some(false),
        };
        write_frame(&mut session.write_buffer, |payload| request.encode(payload));
        session.flush().await?;
        let frame = loop {
            if let Some(frame) = session.take_frame()? {
                break frame;
            }
            session.fill().await?;
        };
        let response = ConnectResponse::decode(&mut Reader::from_bytes(&frame))
            .map_err(|source| session.decode_error(source))?;
        if response.timeout_ms <= 0 || response.session_id == 0 {
            return Err(SessionError::SessionRefused {
                addr: addr.to_owned(),
            });
        }
        session.session_id = response.session_id;
        session.negotiated_timeout =
            Duration::from_millis(u64::try_from(response.timeout_ms).unwrap_or(30_000));
        session.last_received_at = Instant::now();
        Ok(session)
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The session id the server assigned.
    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    /// Requests sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.pipeline.len()
    }

    /// Whether the window allows another request.
    pub fn can_send(&self) -> bool {
        !self.pipeline.is_full()
    }

    /// Queues `request` (it leaves on the next [`Session::poll`] or [`Session::flush`]).
    ///
    /// # Errors
    /// [`SessionError::Pipeline`] with `WindowFull` if the window is full.
    pub fn send(&mut self, request: &Request, tag: T) -> Result<i32, SessionError> {
        let xid = self
            .pipeline
            .admit(request.op_code(), tag)
            .map_err(|source| self.pipeline_error(source))?;
        write_frame(&mut self.write_buffer, |payload| {
            request.encode_with_header(xid, payload)
        });
        Ok(xid)
    }

    /// Writes everything queued.
    ///
    /// # Errors
    /// [`SessionError::Io`].
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        while self.written < self.write_buffer.len() {
            let count = self
                .writer
                .write(&self.write_buffer[self.written..])
                .await
                .map_err(|source| self.io_error(source))?;
            self.advance_written(count)?;
        }
        Ok(())
    }

    /// Moves data both ways until at least one message arrived (appended to `out`) or `wake_at`
    /// passed. Sends a ping when the connection was idle for a third of the session timeout.
    ///
    /// # Errors
    /// Any [`SessionError`]; the session is unusable afterwards.
    pub async fn poll(
        &mut self,
        wake_at: Option<Instant>,
        out: &mut Vec<Incoming<T>>,
    ) -> Result<(), SessionError> {
        let before = out.len();
        loop {
            // Queued requests leave first, without waiting: reading is preferred below, and a
            // steady stream of replies must not hold back the requests that keep it going.
            self.try_flush()?;
            while let Some(frame) = self.take_frame()? {
                if let Some(incoming) = self.decode_incoming(frame)? {
                    out.push(incoming);
                }
            }
            if out.len() > before {
                return Ok(());
            }
            let now = Instant::now();
            if wake_at.is_some_and(|wake| wake <= now) {
                // Out of time: still move whatever the socket takes without waiting, so a
                // caller that polls with a past deadline cannot starve the connection.
                return self.poll_nonblocking(out);
            }
            let silent = now.saturating_duration_since(self.last_received_at);
            if silent >= self.negotiated_timeout {
                return Err(SessionError::Silent {
                    addr: self.addr.clone(),
                    silent,
                });
            }
            let ping_at = self.last_sent_at + self.negotiated_timeout / 3;
            if ping_at <= now && !self.ping_outstanding {
                write_frame(&mut self.write_buffer, |payload| {
                    Request::Ping.encode_with_header(XID_PING, payload)
                });
                self.ping_outstanding = true;
            }
            let deadline = match wake_at {
                Some(wake) => wake.min(self.last_received_at + self.negotiated_timeout),
                None => self.last_received_at + self.negotiated_timeout,
            };
            let deadline = if self.ping_outstanding {
                deadline
            } else {
                deadline.min(ping_at)
            };
            let pending_write = self.written < self.write_buffer.len();
            if self.read_buffer.capacity() - self.read_buffer.len() < READ_CHUNK_BYTES {
                self.read_buffer.reserve(READ_CHUNK_BYTES);
            }
            tokio::select! {
                biased;
                result = self.reader.read_buf(&mut self.read_buffer) => {
                    let count = result.map_err(|source| SessionError::Io {
                        addr: self.addr.clone(),
                        source,
                    })?;
                    if count == 0 {
                        return Err(SessionError::Closed { addr: self.addr.clone() });
                    }
                    self.last_received_at = Instant::now();
                }
                result = self.writer.write(&self.write_buffer[self.written..]), if pending_write => {
                    let count = result.map_err(|source| SessionError::Io {
                        addr: self.addr.clone(),
                        source,
                    })?;
                    self.advance_written(count)?;
                }
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Sends `closeSession` and waits for its reply (or for the server to hang up).
    ///
    /// # Errors
    /// Any [`SessionError`] other than the server closing the connection after the request.
    pub async fn close(mut self, tag: T) -> Result<(), SessionError> {
        self.send(&Request::CloseSession, tag)?;
        let mut out = Vec::new();
        loop {
            match self.poll(None, &mut out).await {
                Ok(()) => {
                    let closed = out.iter().any(|incoming| {
                        matches!(
                            incoming,
                            Incoming::Reply {
                                op: OpCode::CloseSession,
                                ..
                            }
                        )
                    });
                    if closed {
                        return Ok(());
                    }
                    out.clear();
                }
                Err(SessionError::Closed { .. }) => return Ok(()),
                Err(error) => return Err(error),
            }
        }
    }

    fn try_flush(&mut self) -> Result<(), SessionError> {
        if self.written < self.write_buffer.len() {
            match self.writer.try_write(&self.write_buffer[self.written..]) {
                Ok(count) => self.advance_written(count)?,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(self.io_error(error)),
            }
        }
        Ok(())
    }

    fn poll_nonblocking(&mut self, out: &mut Vec<Incoming<T>>) -> Result<(), SessionError> {
        self.try_flush()?;
        self.read_buffer.reserve(READ_CHUNK_BYTES);
        match self.reader.try_read_buf(&mut self.read_buffer) {
            Ok(0) => {
                return Err(SessionError::Closed {
                    addr: self.addr.clone(),
                });
            }
            Ok(_) => self.last_received_at = Instant::now(),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(self.io_error(error)),
        }
        while let Some(frame) = self.take_frame()? {
            if let Some(incoming) = self.decode_incoming(frame)? {
                out.push(incoming);
            }
        }
        Ok(())
    }

    fn advance_written(&mut self, count: usize) -> Result<(), SessionError> {
        if count == 0 {
            return Err(SessionError::Closed {
                addr: self.addr.clone(),
            });
        }
        self.written += count;
        assert!(self.written <= self.write_buffer.len(), "wrote past buffer");
        if self.written == self.write_buffer.len() {
            self.write_buffer.clear();
            self.written = 0;
        }
        self.last_sent_at = Instant::now();
        Ok(())
    }

    async fn fill(&mut self) -> Result<(), SessionError> {
        self.read_buffer.reserve(READ_CHUNK_BYTES);
        let count = self
            .reader
            .read_buf(&mut self.read_buffer)
            .await
            .map_err(|source| self.io_error(source))?;
        if count == 0 {
            return Err(SessionError::Closed {
                addr: self.addr.clone(),
            });
        }
        Ok(())
    }

    /// Splits one whole frame's payload off the read buffer.
    fn take_frame(&mut self) -> Result<Option<Bytes>, SessionError> {
        let consumed = match split_frame(&self.read_buffer, self.read_frame_size_bytes_max) {
            Ok(Some((_, consumed))) => consumed,
            Ok(None) => return Ok(None),
            Err(source) => return Err(self.decode_error(source)),
        };
        let mut frame = self.read_buffer.split_to(consumed).freeze();
        Ok(Some(frame.split_off(4)))
    }

    fn decode_incoming(&mut self, frame: Bytes) -> Result<Option<Incoming<T>>, SessionError> {
        let mut reader = Reader::from_bytes(&frame);
        let header = ReplyHeader::decode(&mut reader).map_err(|e| self.decode_error(e))?;
        let received_at = Instant::now();
        match header.xid {
            XID_NOTIFICATION => {
                let event = WatcherEvent::decode(&mut reader).map_err(|e| self.decode_error(e))?;
                Ok(Some(Incoming::Watch { event, received_at }))
            }
            XID_PING => {
                self.ping_outstanding = false;
                Ok(None)
            }
            xid => {
                let (op, tag) = self
                    .pipeline
                    .complete(xid)
                    .map_err(|source| self.pipeline_error(source))?;
                let response = if header.err == 0 {
                    Some(Response::decode(op, &mut reader).map_err(|e| self.decode_error(e))?)
                } else {
                    None
                };
                Ok(Some(Incoming::Reply {
                    tag,
                    op,
                    header,
                    response,
                    received_at,
                }))
            }
        }
    }

    fn io_error(&self, source: std::io::Error) -> SessionError {
        SessionError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn decode_error(&self, source: DecodeError) -> SessionError {
        SessionError::Decode {
            addr: self.addr.clone(),
            source,
        }
    }

    fn pipeline_error(&self, source: PipelineError) -> SessionError {
        SessionError::Pipeline {
            addr: self.addr.clone(),
            source,
        }
    }
}
