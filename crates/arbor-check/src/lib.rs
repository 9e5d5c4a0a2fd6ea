//! Test-only harness of arbor: tools that make faults on demand for tests of real processes
//! and real sockets. Nothing here is used by a server in production.
//!
//! - [`proxy`]: a loopback TCP proxy that passes, blackholes (each direction on its own),
//!   delays, refuses or resets traffic on command, for partition tests of a Raft cluster (one
//!   proxy per directed peer link) and for cutting a client's connection.
//!
//! ```
//! use arbor_check::proxy::{Direction, Flow, Mode, Proxy};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let upstream = TcpListener::bind("127.0.0.1:0").await?;
//! let proxy = Proxy::start("127.0.0.1:0".parse().expect("an address"), upstream.local_addr()?).await?;
//!
//! let mut client = TcpStream::connect(proxy.local_address()).await?;
//! let (mut server, _) = upstream.accept().await?;
//! client.write_all(b"ping").await?;
//! let mut ping = [0u8; 4];
//! server.read_exact(&mut ping).await?;
//! assert_eq!(&ping, b"ping");
//!
//! proxy.set_flow(Direction::ToUpstream, Flow::Drop); // a one-way partition
//! proxy.set_mode(Mode::Reject);                      // close everything, refuse new
//! proxy.set_mode(Mode::Pass);                        // heal
//! proxy.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod proxy;
