//! Shared harness of the "Secure arbor" tests: an in-process server on `127.0.0.1:0` with a
//! temporary data directory, a raw protocol client over plain TCP or TLS, certificates made
//! with the `openssl` command line (a CA, a server certificate for localhost, client
//! certificates), and the resident-set sampler the slow-reader test uses.
//!
//! Every wait is bounded by [`WAIT_MAX`]; nothing sleeps hoping for timing to work out.

// Each test binary uses part of the harness.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arbor_proto::{
    ConnectRequest, ConnectResponse, Jute, Reader, ReplyHeader, Request, XID_NOTIFICATION,
    split_frame,
};
use arbor_server::{Server, ServerConfig};
use bytes::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any test waits for something that should happen (a loaded 2-core machine
/// included); only a bug reaches it.
pub const WAIT_MAX: Duration = Duration::from_secs(30);

/// Largest frame the test client reads.
const READ_FRAME_BYTES_MAX: u32 = 64 << 20;

/// Awaits `future`, failing the test with `what` if it takes longer than [`WAIT_MAX`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT_MAX, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT_MAX:?} waiting for {what}"),
    }
}

/// A running in-process server and its directory.
pub struct TestServer {
    pub server: Server,
    pub dir: TempDir,
}

impl TestServer {
    /// Starts a server on `127.0.0.1:0` with `edit` applied to the default configuration.
    pub async fn start(edit: impl FnOnce(&mut ServerConfig, &Path)) -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = ServerConfig {
            client_address: "127.0.0.1:0".parse().expect("an address"),
            data_dir: dir.path().join("data"),
            ..ServerConfig::default()
        };
        edit(&mut config, dir.path());
        let server = within("the server to start", Server::start(config))
            .await
            .unwrap_or_else(|error| panic!("server start: {error}"));
        TestServer { server, dir }
    }

    /// The plain client port.
    pub fn address(&self) -> SocketAddr {
        self.server.local_address()
    }

    /// The TLS client port.
    pub fn secure_address(&self) -> SocketAddr {
        self.server
            .secure_address()
            .expect("a secure client port is configured")
    }

    /// Stops the server.
    pub async fn stop(self) {
        within("the server to stop", self.server.shutdown())
            .await
            .unwrap_or_else(|error| panic!("shutdown: {error}"));
    }
}

/// One reply: error code and body.
#[derive(Debug)]
pub struct Reply {
    pub err: i32,
    pub body: Bytes,
}

/// A raw protocol connection over any byte stream.
pub struct Conn<S> {
    stream: S,
    buffer: Vec<u8>,
    next_xid: i32,
    /// Notifications read while waiting for replies.
    pub events: Vec<arbor_proto::WatcherEvent>,
    pub session_id: i64,
    pub password: Bytes,
}

/// Opens a plain TCP connection (no handshake yet).
pub async fn open_tcp(address: SocketAddr) -> Conn<TcpStream> {
    let stream = within("a TCP connection", TcpStream::connect(address))
        .await
        .unwrap_or_else(|error| panic!("connect to {address}: {error}"));
    Conn::new(stream)
}

/// A new session over plain TCP.
pub async fn session(address: SocketAddr) -> Conn<TcpStream> {
    let mut conn = open_tcp(address).await;
    assert!(
        conn.handshake().await,
        "the server refused a plain handshake"
    );
    conn
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buffer: Vec::new(),
            next_xid: 1,
            events: Vec::new(),
            session_id: 0,
            password: Bytes::new(),
        }
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 4);
        out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        out.extend_from_slice(payload);
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    /// A new session's handshake; false when the server closed the connection instead.
    pub async fn handshake(&mut self) -> bool {
        let request = ConnectRequest {
            timeout_ms: 30_000,
            password: Bytes::from_static(&[0; 16]),
            read_only: Some(false),
            ..ConnectRequest::default()
        };
        if self.send_frame(&request.to_bytes()).await.is_err() {
            return false;
        }
        let Some(frame) = self.read_frame().await else {
            return false;
        };
        let response = ConnectResponse::from_slice(&frame).expect("a connect response");
        self.session_id = response.session_id;
        self.password = response.password.clone();
        response.session_id != 0
    }

    /// The next frame, `None` once the server closed the connection.
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
                let mut chunk = vec![0; 64 * 1024];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                }
            }
        })
        .await
    }

    /// Sends `request` with the next xid, without waiting.
    pub async fn send(&mut self, request: &Request) -> std::io::Result<i32> {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut payload = Vec::new();
        request.encode_with_header(xid, &mut payload);
        self.send_frame(&payload).await?;
        Ok(xid)
    }

    /// The reply to `xid` (events before it are kept); `None` when the connection closed.
    pub async fn reply_to(&mut self, xid: i32) -> Option<Reply> {
        loop {
            let frame = Bytes::from(self.read_frame().await?);
            let mut reader = Reader::from_bytes(&frame);
            let header = ReplyHeader::decode(&mut reader).expect("a reply header");
            if header.xid == XID_NOTIFICATION {
                let event = arbor_proto::WatcherEvent::decode(&mut reader).expect("an event");
                self.events.push(event);
                continue;
            }
            if header.xid != xid {
                continue;
            }
            let body = frame.slice(reader.position()..);
            return Some(Reply {
                err: header.err,
                body,
            });
        }
    }

    /// Sends `request` and waits for its reply; panics if the connection closes first.
    pub async fn call(&mut self, request: &Request) -> Reply {
        let xid = self
            .send(request)
            .await
            .unwrap_or_else(|error| panic!("send {:?}: {error}", request.op_code()));
        self.reply_to(xid).await.unwrap_or_else(|| {
            panic!(
                "the server closed the connection before answering {:?}",
                request.op_code()
            )
        })
    }

    /// Sends `request` and returns its error code (0: success).
    pub async fn code(&mut self, request: &Request) -> i32 {
        self.call(request).await.err
    }

    /// Reads until the server closes the connection; true if it did within [`WAIT_MAX`].
    pub async fn closed_by_server(&mut self) -> bool {
        let read_to_end = async {
            let mut chunk = vec![0; 256 * 1024];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(WAIT_MAX, read_to_end)
            .await
            .unwrap_or(false)
    }

    /// The underlying stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }
}

/// The identities `whoAmI` reports, as `scheme:id`.
pub async fn who_am_i<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<S>) -> Vec<String> {
    let reply = conn.call(&Request::WhoAmI).await;
    assert_eq!(reply.err, 0, "whoAmI failed");
    let response = arbor_proto::Response::decode(
        arbor_proto::OpCode::WhoAmI,
        &mut Reader::from_bytes(&reply.body),
    )
    .expect("a whoAmI response");
    let arbor_proto::Response::WhoAmI(who) = response else {
        panic!("not a whoAmI response: {response:?}");
    };
    who.client_info
        .into_iter()
        .map(|info| format!("{}:{}", info.auth_scheme, info.user))
        .collect()
}

// ----- certificates ---------------------------------------------------------------------------

/// Runs `openssl` in `dir`, failing the test with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("openssl {args:?} (is openssl installed?): {error}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A test PKI in a directory: a CA and certificates it signed.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// A new CA named `name` (files `<name>-ca.key`, `<name>-ca.pem`) in `dir`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let pki = Pki {
            dir: dir.to_owned(),
        };
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name} test CA"),
                "-keyout",
                &format!("{name}-ca.key"),
                "-out",
                &format!("{name}-ca.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        pki
    }

    /// A certificate for `subject` (`/CN=client/O=arbor`) signed by CA `ca`, written as
    /// `<file>.key`, `<file>.pem` and `<file>-bundle.pem` (certificate then key, a PEM key
    /// store).
    pub fn issue(&self, ca: &str, file: &str, subject: &str, server: bool) {
        let extensions = if server {
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        } else {
            "extendedKeyUsage=clientAuth\n"
        };
        std::fs::write(self.dir.join(format!("{file}.ext")), extensions).expect("write ext");
        self.issue_with(ca, file, subject);
    }

    /// A certificate for `subject` signed by CA `ca`, with the extensions already written to
    /// `<file>.ext`; the same files as [`Pki::issue`].
    pub fn issue_with(&self, ca: &str, file: &str, subject: &str) {
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                &format!("{file}.key"),
                "-out",
                &format!("{file}.csr"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{file}.csr"),
                "-CA",
                &format!("{ca}-ca.pem"),
                "-CAkey",
                &format!("{ca}-ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{file}.ext"),
                "-out",
                &format!("{file}.pem"),
            ],
        );
        let mut bundle = std::fs::read(self.dir.join(format!("{file}.pem"))).expect("cert");
        bundle.extend(std::fs::read(self.dir.join(format!("{file}.key"))).expect("key"));
        std::fs::write(self.dir.join(format!("{file}-bundle.pem")), bundle).expect("bundle");
    }

    /// A file of this PKI.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

/// A TLS client trusting `ca_pem`, presenting `client` (`<file>` of [`Pki::issue`]) if given.
pub fn tls_client(pki: &Pki, ca: &str, client: Option<&str>) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.path(&format!("{ca}-ca.pem"))).expect("CA pem") {
        roots
            .add(cert.expect("a CA certificate"))
            .expect("add root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(file) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(pki.path(&format!("{file}.pem")))
                    .expect("client pem")
                    .map(|cert| cert.expect("a client certificate"))
                    .collect();
            let key =
                PrivateKeyDer::from_pem_file(pki.path(&format!("{file}.key"))).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `address` (no handshake of the ZooKeeper protocol yet); `None` when
/// the TLS handshake fails.
pub async fn open_tls(
    connector: &tokio_rustls::TlsConnector,
    address: SocketAddr,
) -> Option<Conn<tokio_rustls::client::TlsStream<TcpStream>>> {
    let tcp = within("a TCP connection", TcpStream::connect(address))
        .await
        .expect("TCP connect");
    let name = ServerName::try_from("localhost").expect("a server name");
    let tls = within("a TLS handshake", connector.connect(name, tcp)).await;
    tls.ok().map(Conn::new)
}

// ----- memory ---------------------------------------------------------------------------------

/// This process's resident set in bytes (Linux).
pub fn rss_bytes() -> u64 {
    arbor_server::resident_set_bytes()
}
