//! A loopback TCP proxy in front of the server. A client connected through it can be cut off
//! (every connection dropped, new ones closed at once) while the server keeps running, and let
//! back in later: that is how a test makes changes "while the client is away" without racing
//! the client's reconnection.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy; dropping it stops it and every connection through it.
pub struct Proxy {
    address: SocketAddr,
    open: watch::Sender<bool>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let (open, is_open) = watch::channel(true);
        let acceptor = tokio::spawn(accept_loop(listener, upstream, is_open));
        Proxy {
            address,
            open,
            acceptor,
        }
    }

    /// `host:port` for a client connect string.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Cuts every client off: open connections are dropped, new ones closed on accept.
    pub fn block(&self) {
        self.open.send_replace(false);
    }

    /// Lets clients connect again.
    pub fn unblock(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.open.send_replace(false);
        self.acceptor.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, is_open: watch::Receiver<bool>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if !*is_open.borrow() {
            drop(client);
            continue;
        }
        let mut is_open = is_open.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (mut client, mut server) = (client, server);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = is_open.wait_for(|open| !*open) => {}
            }
        });
    }
}
