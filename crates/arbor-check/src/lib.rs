//! Verification of arbor, the way Jepsen and etcd's robustness tests do it: real processes,
//! real faults, every operation recorded, the history checked against a model.
//!
//! - [`history`]: operations with their invocation and completion times; indeterminate ones
//!   (a timeout, a lost connection) have no completion.
//! - [`linearizability`]: a Wing & Gong / Lowe just-in-time linearizability checker with a
//!   search cache (as porcupine), per key, reporting a minimal non-linearizable sub-history.
//! - [`models`]: a znode as compare-and-set register with existence, unique sequential names,
//!   a FIFO queue on sequential nodes.
//! - [`checks`]: checkers for what is not a linearizable object (sequentially consistent
//!   reads, lock holdings, session lifetimes, watch notifications).
//! - [`cluster`]: a cluster of real `arbor` (or Apache ZooKeeper) processes on loopback with a
//!   fault proxy on every directed peer link: kill, pause, cut `from → to`, heal.
//! - [`chaos`]: the `arbor-check chaos` run: recording workloads, the seeded nemesis, the
//!   checks and the report (see VERIFICATION.md at the repository root).
//! - [`proxy`]: a loopback TCP proxy that passes, blackholes (each direction on its own),
//!   delays, refuses or resets traffic on command, for partition tests of a Raft cluster (one
//!   proxy per directed peer link) and for cutting a client's connection.
//!
//! ```
//! use arbor_check::history::{At, Op, Process};
//! use arbor_check::linearizability::{Budget, check};
//! use arbor_check::models::{Znode, ZnodeInput, ZnodeOutput};
//!
//! let op = |id, call, ret, input, output| Op {
//!     id, process: Process::default(), call: At(call), ret: Some(At(ret)), input, output: Some(output),
//! };
//! // A write completes, then a read that starts later returns the older value: stale.
//! let history = vec![
//!     op(0, 0, 10, ZnodeInput::Set { value: 1, expected: None }, ZnodeOutput::Written { version: 1 }),
//!     op(1, 20, 30, ZnodeInput::Read { synced: true }, ZnodeOutput::Value { value: 0, version: 0 }),
//! ];
//! let verdict = check(&Znode::new(Some((0, 0))), &history, Budget::default());
//! assert!(!verdict.passed());
//! ```
//!
//! The proxy:
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

pub mod chaos;
pub mod checks;
pub mod cluster;
pub mod history;
pub mod linearizability;
pub mod models;
pub mod proxy;
