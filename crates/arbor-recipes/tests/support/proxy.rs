//! A loopback TCP proxy between one client and the server, to make faults on demand:
//! - [`Proxy::cut`]: every connection is closed and new ones are closed on accept (the client
//!   sees its connection drop at once);
//! - [`Proxy::freeze`]: connections stay open but nothing is forwarded any more, and new ones
//!   are held silent (the client sees a dead peer only by its own timeout, the way a
//!   partition or a paused machine looks);
//! - [`Proxy::open`]: back to forwarding (for connections made from then on);
//! - [`Proxy::drop_reply_to`]: the next request with a given opcode reaches the server, then
//!   that connection is closed before any reply comes back (a reply lost to a connection
//!   drop); new connections are forwarded as usual.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward.
    Open,
    /// Hold every byte, close nothing.
    Frozen,
    /// Close everything.
    Cut,
}

/// No trap armed (no ZooKeeper opcode is this).
const NO_TRAP: i32 = i32::MIN;

/// A running proxy; dropping it stops it and closes its connections.
pub struct Proxy {
    address: String,
    mode: watch::Sender<Mode>,
    trap: Arc<AtomicI32>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a proxy");
        let address = listener.local_addr().expect("proxy address").to_string();
        let (mode, mode_receiver) = watch::channel(Mode::Open);
        let upstream = upstream.to_owned();
        let trap = Arc::new(AtomicI32::new(NO_TRAP));
        let accept_trap = trap.clone();
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mode = mode_receiver.clone();
                let upstream = upstream.clone();
                tokio::spawn(forward(client, upstream, mode, accept_trap.clone()));
            }
        });
        Proxy {
            address,
            mode,
            trap,
            acceptor,
        }
    }

    /// `host:port` of the proxy.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Closes every connection, and new ones at once.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Stops forwarding without closing anything.
    pub fn freeze(&self) {
        self.mode.send_replace(Mode::Frozen);
    }

    /// Forwards again.
    pub fn open(&self) {
        self.mode.send_replace(Mode::Open);
    }

    /// Arms the lost-reply trap for the next request with `opcode` (1 create, 15 create2...).
    pub fn drop_reply_to(&self, opcode: i32) {
        self.trap.store(opcode, Ordering::SeqCst);
    }

    /// Whether the trap went off (and is disarmed).
    pub fn trap_sprung(&self) -> bool {
        self.trap.load(Ordering::SeqCst) == NO_TRAP
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Cut);
        self.acceptor.abort();
    }
}

/// The opcode of a request frame that starts `chunk` (`[length][xid][opcode]...`).
fn request_opcode(chunk: &[u8]) -> Option<i32> {
    let bytes: [u8; 4] = chunk.get(8..12)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

async fn forward(
    client: TcpStream,
    upstream: String,
    mut mode: watch::Receiver<Mode>,
    trap: Arc<AtomicI32>,
) {
    // A connection accepted while not open waits (frozen) or is closed (cut).
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Open => break,
            Mode::Cut => return,
            Mode::Frozen => {
                if mode.changed().await.is_err() {
                    return;
                }
            }
        }
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut client_buffer = vec![0u8; 64 * 1024];
    let mut server_buffer = vec![0u8; 64 * 1024];
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Cut => return,
            Mode::Frozen => {
                if mode.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Mode::Open => {}
        }
        tokio::select! {
            read = client_read.read(&mut client_buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(count) => {
                    let chunk = &client_buffer[..count];
                    if server_write.write_all(chunk).await.is_err() {
                        return;
                    }
                    let armed = trap.load(Ordering::SeqCst);
                    if armed != NO_TRAP
                        && request_opcode(chunk) == Some(armed)
                        && trap
                            .compare_exchange(armed, NO_TRAP, Ordering::SeqCst, Ordering::SeqCst)
                            .is_ok()
                    {
                        // The request is on its way to the server; its reply will find
                        // this connection closed.
                        let _ = server_write.flush().await;
                        return;
                    }
                }
            },
            read = server_read.read(&mut server_buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(count) => {
                    if client_write.write_all(&server_buffer[..count]).await.is_err() {
                        return;
                    }
                }
            },
            _ = mode.changed() => {}
        }
    }
}
