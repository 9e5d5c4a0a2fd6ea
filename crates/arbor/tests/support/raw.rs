//! A raw ZooKeeper-protocol connection built on `arbor-proto`, for what `zookeeper-client`
//! cannot express: exact reply codes and multi results, special xids, an old 44-byte handshake,
//! a `lastZxidSeen` ahead of the server, malformed frames, unknown opcodes, oversized frames,
//! and the order of events against replies.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};

use arbor_proto::{
    ConnectRequest, ConnectResponse, ErrorCode, Jute, OpCode, Reader, ReplyHeader, Request,
    Response, Stat, WatcherEvent, XID_NOTIFICATION, XID_PING, split_frame,
};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::within;

/// Largest frame this test client reads (the server's own limit is what is under test).
const READ_FRAME_BYTES_MAX: u32 = 64 << 20;

/// A request's data field from bytes. Generic over the field's type so the tests read the same
/// whether `arbor-proto` spells data `Bytes` or `Option<Bytes>` (null data).
pub fn data<T: From<Bytes>>(bytes: impl Into<Bytes>) -> T {
    T::from(bytes.into())
}

/// The handshake of a new session asking for `timeout_ms`.
pub fn new_session_request(timeout_ms: i32) -> ConnectRequest {
    ConnectRequest {
        timeout_ms,
        password: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
        ..ConnectRequest::default()
    }
}

/// The handshake that resumes a session, from a client that has seen `last_zxid_seen`.
pub fn resume_request(session_id: i64, password: &Bytes, last_zxid_seen: i64) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen,
        timeout_ms: 10_000,
        session_id,
        password: password.clone(),
        read_only: Some(false),
    }
}

/// One message from the server after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A reply to a request (or a ping, xid −2).
    Reply(Reply),
    /// A watch notification (xid −1).
    Event {
        /// The zxid in the notification's header.
        zxid: i64,
        /// The event.
        event: WatcherEvent,
    },
}

/// A reply: its header and the undecoded body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// xid, zxid and error code.
    pub header: ReplyHeader,
    /// The body (empty when `header.err != 0`).
    pub body: Vec<u8>,
}

impl Reply {
    /// The error code (0 for success).
    pub fn err(&self) -> i32 {
        self.header.err
    }

    /// Decodes the body of a successful getData reply: the data (`None` when null) and the
    /// stat.
    pub fn get_data(&self) -> (Option<Bytes>, Stat) {
        assert_eq!(self.header.err, 0, "getData failed: {self:?}");
        let body = Bytes::copy_from_slice(&self.body);
        let mut reader = Reader::from_bytes(&body);
        let data = reader.read_buffer_opt().expect("getData data");
        let stat = Stat::decode(&mut reader).expect("getData stat");
        assert_eq!(reader.remaining(), 0, "trailing bytes in a getData reply");
        (data, stat)
    }

    /// Decodes the body of a successful reply to an `op` request.
    pub fn decode(&self, op: OpCode) -> Response {
        assert_eq!(self.header.err, 0, "decode of a failed reply {self:?}");
        let body = Bytes::copy_from_slice(&self.body);
        let mut reader = Reader::from_bytes(&body);
        let response = Response::decode(op, &mut reader)
            .unwrap_or_else(|error| panic!("reply to {op:?} does not decode: {error}"));
        assert_eq!(
            reader.remaining(),
            0,
            "trailing bytes in the reply to {op:?}"
        );
        response
    }
}

/// A raw connection to the server.
pub struct RawConnection {
    stream: TcpStream,
    buffer: Vec<u8>,
    next_xid: i32,
    /// Events read while waiting for a reply, oldest first.
    pub events: VecDeque<(i64, WatcherEvent)>,
}

impl RawConnection {
    /// Opens a TCP connection (no handshake yet).
    pub async fn open(address: SocketAddr) -> RawConnection {
        let stream = within("a TCP connection", TcpStream::connect(address))
            .await
            .unwrap_or_else(|error| panic!("connect to {address}: {error}"));
        RawConnection::from_stream(stream)
    }

    /// Opens a TCP connection from the local address `source` (another loopback address such
    /// as 127.0.0.2 makes a different client IP).
    pub async fn open_from(source: IpAddr, address: SocketAddr) -> RawConnection {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .unwrap_or_else(|error| panic!("bind {source}: {error}"));
        let stream = within("a TCP connection", socket.connect(address))
            .await
            .unwrap_or_else(|error| panic!("connect to {address} from {source}: {error}"));
        RawConnection::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> RawConnection {
        let _ = stream.set_nodelay(true);
        RawConnection {
            stream,
            buffer: Vec::new(),
            next_xid: 1,
            events: VecDeque::new(),
        }
    }

    /// Opens a connection and creates a new session with `timeout_ms`.
    pub async fn new_session(
        address: SocketAddr,
        timeout_ms: i32,
    ) -> (RawConnection, ConnectResponse) {
        let mut connection = RawConnection::open(address).await;
        let response = connection
            .handshake(&new_session_request(timeout_ms))
            .await
            .expect("the server answers a new session");
        assert_ne!(response.session_id, 0, "new session refused: {response:?}");
        (connection, response)
    }

    /// Sends raw bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Sends one frame: a length prefix, then `payload`.
    pub async fn send_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 4);
        out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        out.extend_from_slice(payload);
        self.send_bytes(&out).await
    }

    /// Sends a handshake and reads the answer; `None` when the server closed the connection
    /// without answering.
    pub async fn handshake(&mut self, request: &ConnectRequest) -> Option<ConnectResponse> {
        self.send_frame(&request.to_bytes()).await.ok()?;
        let frame = self.read_frame().await?;
        Some(
            ConnectResponse::from_slice(&frame)
                .unwrap_or_else(|error| panic!("connect response does not decode: {error}")),
        )
    }

    /// Reads the next frame; `None` once the server has closed the connection.
    pub async fn read_frame(&mut self) -> Option<Vec<u8>> {
        within("a frame from the server", async {
            loop {
                match split_frame(&self.buffer, READ_FRAME_BYTES_MAX) {
                    Ok(Some((payload, consumed))) => {
                        let payload = payload.to_vec();
                        self.buffer.drain(..consumed);
                        return Some(payload);
                    }
                    Ok(None) => {}
                    Err(error) => panic!("the server sent a bad frame: {error}"),
                }
                self.buffer.reserve(64 * 1024);
                match self.stream.read_buf(&mut self.buffer).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
    }

    /// Reads the next message; `None` once the server has closed the connection.
    pub async fn next_message(&mut self) -> Option<Message> {
        let frame = Bytes::from(self.read_frame().await?);
        let mut reader = Reader::from_bytes(&frame);
        let header = ReplyHeader::decode(&mut reader)
            .unwrap_or_else(|error| panic!("reply header does not decode: {error}"));
        if header.xid == XID_NOTIFICATION {
            let event = WatcherEvent::decode(&mut reader)
                .unwrap_or_else(|error| panic!("notification does not decode: {error}"));
            return Some(Message::Event {
                zxid: header.zxid,
                event,
            });
        }
        let body = frame[reader.position()..].to_vec();
        Some(Message::Reply(Reply { header, body }))
    }

    /// Sends `request` with the next xid and returns that xid.
    pub async fn send(&mut self, request: &Request) -> i32 {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.send_with_xid(xid, request).await;
        xid
    }

    /// Sends `request` with a chosen xid.
    pub async fn send_with_xid(&mut self, xid: i32, request: &Request) {
        let mut payload = Vec::new();
        request.encode_with_header(xid, &mut payload);
        self.send_frame(&payload)
            .await
            .unwrap_or_else(|error| panic!("send {:?}: {error}", request.op_code()));
    }

    /// Waits for the reply with `xid`, keeping events that arrive before it in `events`.
    /// Panics if the connection closes first or a reply to another xid arrives.
    pub async fn reply_to(&mut self, xid: i32) -> Reply {
        loop {
            match self.next_message().await {
                Some(Message::Event { zxid, event }) => self.events.push_back((zxid, event)),
                Some(Message::Reply(reply)) => {
                    assert_eq!(reply.header.xid, xid, "replies out of order: {reply:?}");
                    return reply;
                }
                None => panic!("the server closed the connection before replying to xid {xid}"),
            }
        }
    }

    /// Pings (xid −2) and waits for the answer: keeps the session alive.
    pub async fn ping(&mut self) {
        self.send_with_xid(XID_PING, &Request::Ping).await;
        let reply = self.reply_to(XID_PING).await;
        assert_eq!(reply.err(), 0, "ping failed: {reply:?}");
    }

    /// Sends `request` and waits for its reply.
    pub async fn call(&mut self, request: &Request) -> Reply {
        let xid = self.send(request).await;
        self.reply_to(xid).await
    }

    /// Sends `request`, expects success and decodes the reply.
    pub async fn call_ok(&mut self, request: &Request) -> Response {
        let reply = self.call(request).await;
        assert_eq!(
            reply.err(),
            0,
            "{:?} failed with {:?}",
            request.op_code(),
            ErrorCode::from_i32(reply.err())
        );
        reply.decode(request.op_code())
    }

    /// Sends `request` and returns the error code of its reply.
    pub async fn call_code(&mut self, request: &Request) -> i32 {
        self.call(request).await.err()
    }

    /// Waits until the server closes the connection; returns what it sent before closing.
    pub async fn closed(&mut self) -> Vec<Message> {
        let mut before = Vec::new();
        while let Some(message) = self.next_message().await {
            before.push(message);
        }
        before
    }

    /// Whether the server has closed the connection, waiting for the close (bounded).
    pub async fn expect_closed_without_reply(&mut self) {
        let before = self.closed().await;
        assert!(
            before.iter().all(|m| matches!(m, Message::Event { .. })),
            "expected the connection closed without a reply, got {before:?}"
        );
    }

    /// The next event, reading it from the socket if none is queued.
    pub async fn next_event(&mut self) -> (i64, WatcherEvent) {
        if let Some(event) = self.events.pop_front() {
            return event;
        }
        match self.next_message().await {
            Some(Message::Event { zxid, event }) => (zxid, event),
            other => panic!("expected an event, got {other:?}"),
        }
    }
}
