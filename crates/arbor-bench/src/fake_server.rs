//! An in-process stand-in for a ZooKeeper server, for the driver's tests: just enough of the
//! protocol (handshake, create, setData, getData, exists with watches, getChildren, ping,
//! closeSession) over real TCP on 127.0.0.1:0, plus misbehaviours a real server must not have.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arbor_proto::{
    ConnectRequest, ConnectResponse, CreateResponse, ExistsResponse, GetChildrenResponse,
    GetDataResponse, Jute, OpCode, Reader, ReplyHeader, Request, Response, SetDataResponse, Stat,
    WatcherEvent, decode_request, split_frame, write_notification, write_reply,
};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// How the fake answers getData requests (everything else is always answered at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// In order, immediately.
    Normal,
    /// Holds getData replies until `window` are outstanding on the connection, then answers
    /// the oldest; once `total` getData requests arrived it answers everything. A client that
    /// exceeds the window is recorded as a violation.
    HoldUntilWindow {
        /// The client's window.
        window: usize,
        /// getData requests the client will send in all.
        total: u64,
    },
    /// Answers the second getData of a connection before the first.
    SwapFirstTwo,
}

/// What the fake observed.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Most getData requests outstanding at once on one connection.
    pub max_outstanding: usize,
    /// Times a connection had more outstanding than the window.
    pub window_violations: u64,
    /// Requests by opcode.
    pub requests: BTreeMap<i32, u64>,
    /// Sessions closed with closeSession.
    pub closed_sessions: u64,
}

#[derive(Debug, Default)]
struct Tree {
    nodes: BTreeMap<String, (Bytes, i32)>,
    /// path -> connections (by id) with an exists/data watch there.
    watches: BTreeMap<String, BTreeSet<u64>>,
    connections: BTreeMap<u64, mpsc::UnboundedSender<Vec<u8>>>,
    zxid: i64,
}

#[derive(Debug)]
struct Shared {
    behaviour: Behaviour,
    tree: Mutex<Tree>,
    stats: Mutex<Stats>,
}

/// A running fake server; stops when dropped.
pub struct FakeServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    /// Starts a fake on 127.0.0.1:0 in its own thread and runtime.
    pub fn start(behaviour: Behaviour) -> FakeServer {
        let shared = Arc::new(Shared {
            behaviour,
            tree: Mutex::new(Tree::default()),
            stats: Mutex::new(Stats::default()),
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let server_shared = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let mut next_id = 0u64;
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        next_id += 1;
                        tokio::spawn(serve(stream, next_id, Arc::clone(&server_shared)));
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = shutdown_rx => {}
                }
            });
        });
        let addr = addr_rx.recv().unwrap();
        FakeServer {
            addr,
            shared,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// A copy of what it observed so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn stat(version: i32, data_length: usize) -> Stat {
    Stat {
        version,
        data_length: data_length as i32,
        ..Stat::default()
    }
}

/// Answers one request against the tree; returns (error code, body, paths whose watchers fire).
fn answer(tree: &mut Tree, connection: u64, request: &Request) -> (i32, Response, Vec<String>) {
    match request {
        Request::Create(create) => {
            if tree.nodes.contains_key(&create.path) {
                return (-110, Response::Empty, vec![]);
            }
            tree.nodes.insert(
                create.path.clone(),
                (create.data.clone().unwrap_or_default(), 0),
            );
            (
                0,
                Response::Create(CreateResponse {
                    path: create.path.clone(),
                }),
                vec![],
            )
        }
        Request::SetData(set) => match tree.nodes.get_mut(&set.path) {
            Some((data, version)) => {
                *data = set.data.clone().unwrap_or_default();
                *version += 1;
                let stat = stat(*version, data.len());
                (
                    0,
                    Response::SetData(SetDataResponse { stat }),
                    vec![set.path.clone()],
                )
            }
            None => (-101, Response::Empty, vec![]),
        },
        Request::GetData(get) => match tree.nodes.get(&get.path) {
            Some((data, version)) => (
                0,
                Response::GetData(GetDataResponse {
                    data: Some(data.clone()),
                    stat: stat(*version, data.len()),
                }),
                vec![],
            ),
            None => (-101, Response::Empty, vec![]),
        },
        Request::Exists(exists) => {
            if exists.watch {
                tree.watches
                    .entry(exists.path.clone())
                    .or_default()
                    .insert(connection);
            }
            match tree.nodes.get(&exists.path) {
                Some((data, version)) => (
                    0,
                    Response::Exists(ExistsResponse {
                        stat: stat(*version, data.len()),
                    }),
                    vec![],
                ),
                None if exists.path == "/" => (
                    0,
                    Response::Exists(ExistsResponse { stat: stat(0, 0) }),
                    vec![],
                ),
                None => (-101, Response::Empty, vec![]),
            }
        }
        Request::GetChildren(list) => {
            let prefix = format!("{}/", list.path);
            let children = tree
                .nodes
                .range(prefix.clone()..)
                .take_while(|(path, _)| path.starts_with(&prefix))
                .filter(|(path, _)| !path[prefix.len()..].contains('/'))
                .map(|(path, _)| path[prefix.len()..].to_owned())
                .collect();
            (
                0,
                Response::GetChildren(GetChildrenResponse { children }),
                vec![],
            )
        }
        _ => (0, Response::Empty, vec![]),
    }
}

async fn serve(stream: TcpStream, connection: u64, shared: Arc<Shared>) {
    let (mut reader, mut writer) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut connected = false;
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut get_data_seen = 0u64;
    let mut swapped = None::<Vec<u8>>;
    while let Ok(count) = reader.read(&mut chunk).await {
        if count == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..count]);
        let mut out = Vec::new();
        while let Ok(Some((payload, consumed))) = split_frame(&buffer, 16 << 20) {
            let payload = payload.to_vec();
            buffer.drain(..consumed);
            if !connected {
                let request = ConnectRequest::decode(&mut Reader::new(&payload)).unwrap();
                let response = ConnectResponse {
                    protocol_version: 0,
                    timeout_ms: request.timeout_ms,
                    session_id: i64::try_from(connection).unwrap(),
                    password: Bytes::from_static(&[1; 16]),
                    read_only: request.read_only.map(|_| false),
                };
                arbor_proto::write_frame(&mut out, |p| response.encode(p));
                connected = true;
                shared
                    .tree
                    .lock()
                    .unwrap()
                    .connections
                    .insert(connection, out_tx.clone());
                continue;
            }
            let (header, request) = decode_request(&payload).unwrap();
            *shared
                .stats
                .lock()
                .unwrap()
                .requests
                .entry(header.op_code)
                .or_default() += 1;
            let mut reply = Vec::new();
            let fired = {
                let mut tree = shared.tree.lock().unwrap();
                let (err, response, fired) = answer(&mut tree, connection, &request);
                tree.zxid += 1;
                let reply_header = ReplyHeader {
                    xid: header.xid,
                    zxid: tree.zxid,
                    err,
                };
                write_reply(&mut reply, &reply_header, |b| response.encode(b));
                let mut notified = Vec::new();
                for path in fired {
                    let watchers = tree.watches.remove(&path).unwrap_or_default();
                    for watcher in watchers {
                        notified.push((watcher, path.clone(), tree.zxid));
                    }
                }
                let senders: Vec<_> = notified
                    .into_iter()
                    .filter_map(|(watcher, path, zxid)| {
                        tree.connections
                            .get(&watcher)
                            .map(|tx| (tx.clone(), path, zxid))
                    })
                    .collect();
                senders
            };
            // Notifications go out before the write's reply, as ZooKeeper orders them.
            for (tx, path, zxid) in fired {
                let mut note = Vec::new();
                let event = WatcherEvent {
                    event_type: 3,
                    state: 3,
                    path,
                };
                write_notification(&mut note, zxid, &event);
                let _ = tx.send(note);
            }
            let is_get = header.op_code == OpCode::GetData.code();
            if request == Request::CloseSession {
                shared.stats.lock().unwrap().closed_sessions += 1;
            }
            match shared.behaviour {
                Behaviour::HoldUntilWindow { .. } if is_get => {
                    get_data_seen += 1;
                    held.push(reply);
                }
                Behaviour::SwapFirstTwo if is_get => {
                    get_data_seen += 1;
                    match get_data_seen {
                        1 => swapped = Some(reply),
                        2 => {
                            out.extend_from_slice(&reply);
                            if let Some(first) = swapped.take() {
                                out.extend_from_slice(&first);
                            }
                        }
                        _ => out.extend_from_slice(&reply),
                    }
                }
                _ => out.extend_from_slice(&reply),
            }
        }
        // Judged per read batch: a client that overruns its window sends the extra requests in
        // the same burst, before it could have read any reply.
        if let Behaviour::HoldUntilWindow { window, total } = shared.behaviour
            && !held.is_empty()
        {
            {
                let mut stats = shared.stats.lock().unwrap();
                stats.max_outstanding = stats.max_outstanding.max(held.len());
                if held.len() > window {
                    stats.window_violations += 1;
                }
            }
            let keep = if get_data_seen >= total {
                0
            } else {
                window - 1
            };
            while held.len() > keep && (held.len() >= window || get_data_seen >= total) {
                out.extend_from_slice(&held.remove(0));
            }
        }
        if !out.is_empty() && out_tx.send(out).is_err() {
            break;
        }
    }
    shared.tree.lock().unwrap().connections.remove(&connection);
}
