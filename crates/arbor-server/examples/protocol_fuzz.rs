//! Stateful protocol fuzzing of an in-process arbor server, on stable Rust.
//!
//! ```text
//! cargo run -p arbor-server --example protocol_fuzz -- --seconds 1800 --seed 7
//! ```
//!
//! Several client tasks connect over loopback and, episode after episode, speak the protocol
//! the way a hostile or broken client would: a handshake (sometimes resuming a random session,
//! sometimes garbage or a four-letter word), then a random sequence of requests over a small
//! namespace (every opcode, random flags, versions, ACLs, watches, quota nodes, SASL and digest
//! auth, multis), now and then a corrupted frame, an unknown opcode, a frame over the size
//! limit, a client that never reads its socket, and an abrupt disconnect or a closeSession.
//!
//! The server runs with small limits so they are all reached: frame size, requests in flight,
//! watches per connection, outbound bytes per connection (slow readers), child-listing size,
//! the memory budget and hard quotas. The driver fails (exit status 1) when
//! - anything panics (a panic hook counts panics on every thread),
//! - the server stops serving (a fresh client's create/getData/delete at the end fails),
//! - the server stops by itself, or
//! - the process's resident set grows without bound: its peak must stay under `--rss-max-mib`,
//!   and the peak of the last third of the run must not exceed the first third's by more than
//!   `--growth-max-mib` (the state is bounded by the namespace and the memory budget, so a leak
//!   shows as steady growth).
//!
//! One `u64` seed drives every client (`SEED=` is printed first); the interleaving over real
//! sockets is not deterministic, so a failure is reproduced by running the seed again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arbor_proto::{
    Acl, AddWatchRequest, AuthPacket, CheckVersionRequest, CheckWatchesRequest, ConnectRequest,
    CreateRequest, CreateTtlRequest, DeleteRequest, ExistsRequest, GetAclRequest,
    GetAllChildrenNumberRequest, GetChildrenRequest, GetDataRequest, GetEphemeralsRequest,
    GetSaslRequest, Id, Jute, MultiOp, MultiRequest, ReconfigRequest, RemoveWatchesRequest,
    Request, SetAclRequest, SetDataRequest, SetWatches, SetWatches2, SyncRequest,
};
use arbor_server::{Server, ServerConfig, resident_set_bytes};
use bytes::Bytes;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Panics seen anywhere in the process.
static PANICS: AtomicU64 = AtomicU64::new(0);

/// The frame size limit the server runs with (small, so oversized frames are cheap to send).
const FRAME_BYTES_MAX: u32 = 256 * 1024;
/// How long one socket operation of a client may take before the episode gives up on it.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest frame a fuzz client reads back.
const READ_FRAME_BYTES_MAX: usize = 64 << 20;

/// Counters the clients share.
#[derive(Default)]
struct Tally {
    episodes: AtomicU64,
    requests: AtomicU64,
    replies: AtomicU64,
    events: AtomicU64,
    refused_handshakes: AtomicU64,
    server_closes: AtomicU64,
}

struct Options {
    seconds: u64,
    seed: u64,
    clients: u64,
    rss_max_mib: u64,
    growth_max_mib: u64,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        seconds: 60,
        seed: 1,
        clients: 8,
        rss_max_mib: 1024,
        growth_max_mib: 128,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse::<u64>()
            .map_err(|error| format!("{flag}: {error}"))?;
        match flag.as_str() {
            "--seconds" => options.seconds = value,
            "--seed" => options.seed = value,
            "--clients" => options.clients = value.max(1),
            "--rss-max-mib" => options.rss_max_mib = value,
            "--growth-max-mib" => options.growth_max_mib = value,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(options)
}

fn main() -> std::process::ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!(
                "protocol_fuzz: {error}\nusage: protocol_fuzz [--seconds N] [--seed N] [--clients N] [--rss-max-mib N] [--growth-max-mib N]"
            );
            return std::process::ExitCode::from(2);
        }
    };
    println!(
        "SEED={} seconds={} clients={}",
        options.seed, options.seconds, options.clients
    );
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("protocol_fuzz: no runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&options)) {
        Ok(()) => {
            println!("protocol_fuzz: PASS");
            std::process::ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("protocol_fuzz: FAIL: {failure}");
            println!(
                "replay: cargo run -p arbor-server --example protocol_fuzz -- --seconds {} --seed {} --clients {}",
                options.seconds, options.seed, options.clients
            );
            std::process::ExitCode::FAILURE
        }
    }
}

fn fuzz_config(dir: &std::path::Path) -> Result<ServerConfig, String> {
    let jaas = dir.join("jaas.conf");
    std::fs::write(
        &jaas,
        "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_super=\"super_secret\"\n  user_fuzz=\"fuzz_password\";\n};\n",
    )
    .map_err(|error| format!("write {}: {error}", jaas.display()))?;
    let mut config = ServerConfig {
        client_address: "127.0.0.1:0".parse().map_err(|_| "address")?,
        data_dir: dir.join("data"),
        ..ServerConfig::default()
    };
    config.frame_size_bytes_max = FRAME_BYTES_MAX;
    config.requests_inflight_per_connection_max = 64;
    config.outbound_queue_max = 4096;
    config.outbound_bytes_max = 1024 * 1024;
    config.watches_per_connection_max = 500;
    config.children_listing_bytes_max = 16 * 1024;
    config.memory_budget_bytes = 48 * 1024 * 1024;
    config.connections_per_ip_max = 0;
    config.connections_max = 256;
    config.snapshot_every_entries = 20_000;
    config.sasl_jaas_file = Some(jaas);
    config.audit_enabled = false;
    // super:test, as kazoo's harness sets it: the final check authenticates as super, since
    // the fuzz clients may have set any ACL on any node.
    config.super_digest = Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=".into());
    Ok(config)
}

async fn run(options: &Options) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|error| format!("temporary directory: {error}"))?;
    let server = Server::start(fuzz_config(dir.path())?)
        .await
        .map_err(|error| format!("server start: {error}"))?;
    let address = server.local_address();
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let mut clients = Vec::new();
    for client in 0..options.clients {
        let seed = options.seed.wrapping_mul(1_000_003).wrapping_add(client);
        let tally = tally.clone();
        clients.push(tokio::spawn(client_loop(address, seed, deadline, tally)));
    }
    let started = Instant::now();
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut next_report = started + Duration::from_secs(60);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(5).min(deadline - Instant::now())).await;
        let rss = resident_set_bytes();
        samples.push((started.elapsed().as_secs(), rss));
        if rss > options.rss_max_mib << 20 {
            return Err(format!(
                "resident set {} MiB over the bound of {} MiB",
                rss >> 20,
                options.rss_max_mib
            ));
        }
        if PANICS.load(Ordering::SeqCst) > 0 {
            return Err("a panic (see above)".into());
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(60);
            report(started, rss, &tally);
        }
    }
    for client in clients {
        if let Err(error) = client.await {
            return Err(format!("a client task failed: {error}"));
        }
    }
    report(started, resident_set_bytes(), &tally);
    still_serving(address).await?;
    server
        .shutdown()
        .await
        .map_err(|error| format!("shutdown: {error}"))?;
    if PANICS.load(Ordering::SeqCst) > 0 {
        return Err("a panic (see above)".into());
    }
    check_growth(&samples, options.growth_max_mib)
}

fn report(started: Instant, rss: u64, tally: &Tally) {
    println!(
        "t={}s rss={}MiB episodes={} requests={} replies={} events={} refused_handshakes={} server_closes={}",
        started.elapsed().as_secs(),
        rss >> 20,
        tally.episodes.load(Ordering::Relaxed),
        tally.requests.load(Ordering::Relaxed),
        tally.replies.load(Ordering::Relaxed),
        tally.events.load(Ordering::Relaxed),
        tally.refused_handshakes.load(Ordering::Relaxed),
        tally.server_closes.load(Ordering::Relaxed),
    );
}

/// The last third's peak against the first third's.
fn check_growth(samples: &[(u64, u64)], growth_max_mib: u64) -> Result<(), String> {
    if samples.len() < 6 {
        return Ok(());
    }
    let third = samples.len() / 3;
    let peak = |part: &[(u64, u64)]| part.iter().map(|(_, rss)| *rss).max().unwrap_or(0);
    let first = peak(&samples[..third]);
    let last = peak(&samples[samples.len() - third..]);
    println!(
        "rss peak: first third {} MiB, last third {} MiB, overall {} MiB",
        first >> 20,
        last >> 20,
        peak(samples) >> 20
    );
    if last > first + (growth_max_mib << 20) {
        return Err(format!(
            "resident set kept growing: {} MiB in the first third, {} MiB in the last",
            first >> 20,
            last >> 20
        ));
    }
    Ok(())
}

/// A fresh, well-behaved client must still be served.
async fn still_serving(address: SocketAddr) -> Result<(), String> {
    let mut stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| "connect timed out")?
        .map_err(|error| format!("connect: {error}"))?;
    let connect = ConnectRequest {
        timeout_ms: 10_000,
        password: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
        ..ConnectRequest::default()
    };
    send_payload(&mut stream, &connect.to_bytes()).await?;
    read_frame(&mut stream)
        .await?
        .ok_or("no handshake answer at the end")?;
    let path = "/fuzz-final-check";
    let mut payload = Vec::new();
    Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: Bytes::from_static(b"super:test"),
    })
    .encode_with_header(arbor_proto::XID_AUTH, &mut payload);
    send_payload(&mut stream, &payload).await?;
    let requests = [
        Request::Create(CreateRequest {
            path: path.into(),
            data: Some(Bytes::from_static(b"ok")),
            acl: Acl::open_unsafe(),
            flags: 0,
        }),
        Request::GetData(GetDataRequest {
            path: path.into(),
            watch: false,
        }),
        Request::Delete(DeleteRequest {
            path: path.into(),
            version: -1,
        }),
    ];
    for (xid, request) in (1..).zip(requests) {
        let mut payload = Vec::new();
        request.encode_with_header(xid, &mut payload);
        send_payload(&mut stream, &payload).await?;
        loop {
            let frame = read_frame(&mut stream)
                .await?
                .ok_or("the server closed the final check's connection")?;
            let reply_xid = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            if reply_xid == -1 {
                continue;
            }
            if reply_xid == arbor_proto::XID_AUTH {
                let err = i32::from_be_bytes([frame[12], frame[13], frame[14], frame[15]]);
                if err != 0 {
                    return Err(format!("final check: super auth answered {err}"));
                }
                continue;
            }
            let err = i32::from_be_bytes([frame[12], frame[13], frame[14], frame[15]]);
            if reply_xid != xid || err != 0 {
                return Err(format!(
                    "final check: {:?} answered xid {reply_xid} err {err}",
                    request.op_code()
                ));
            }
            break;
        }
    }
    println!("final check: a fresh client created, read and deleted {path}");
    Ok(())
}

async fn send_payload(stream: &mut TcpStream, payload: &[u8]) -> Result<(), String> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    out.extend_from_slice(payload);
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(&out))
        .await
        .map_err(|_| "write timed out".to_owned())?
        .map_err(|error| format!("write: {error}"))
}

/// One frame's payload; `None` when the server closed the connection.
async fn read_frame(stream: &mut TcpStream) -> Result<Option<Vec<u8>>, String> {
    let mut prefix = [0u8; 4];
    match tokio::time::timeout(IO_TIMEOUT, stream.read_exact(&mut prefix)).await {
        Err(_) => return Err("read timed out".into()),
        Ok(Err(_)) => return Ok(None),
        Ok(Ok(_)) => {}
    }
    let length = i32::from_be_bytes(prefix);
    let length =
        usize::try_from(length).map_err(|_| format!("server sent frame length {length}"))?;
    if length > READ_FRAME_BYTES_MAX {
        return Err(format!("server sent a frame of {length} bytes"));
    }
    let mut payload = vec![0; length];
    match tokio::time::timeout(IO_TIMEOUT, stream.read_exact(&mut payload)).await {
        Err(_) => Err("read timed out".into()),
        Ok(Err(_)) => Ok(None),
        Ok(Ok(_)) => Ok(Some(payload)),
    }
}

async fn client_loop(address: SocketAddr, seed: u64, deadline: Instant, tally: Arc<Tally>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut known_sessions: Vec<(i64, Bytes)> = Vec::new();
    while Instant::now() < deadline {
        tally.episodes.fetch_add(1, Ordering::Relaxed);
        // A failed episode (the server closed us, a timeout) is an expected outcome here;
        // what matters is that the server survives it.
        let _ = episode(address, &mut rng, &tally, &mut known_sessions, deadline).await;
    }
}

/// How a client treats its socket's incoming side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Drains and parses every frame.
    Normal,
    /// Never reads (a slow reader).
    Never,
}

async fn episode(
    address: SocketAddr,
    rng: &mut ChaCha8Rng,
    tally: &Tally,
    known_sessions: &mut Vec<(i64, Bytes)>,
    deadline: Instant,
) -> Result<(), String> {
    let mut stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| "connect timed out")?
        .map_err(|error| format!("connect: {error}"))?;
    let opening = rng.random_range(0..100);
    if opening < 3 {
        let garbage: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
        let _ = stream.write_all(&garbage).await;
        let _ = drain(&mut stream, Duration::from_millis(200)).await;
        return Ok(());
    }
    if opening < 5 {
        let words = [
            "ruok", "mntr", "stat", "srvr", "cons", "wchs", "wchc", "wchp", "dump", "envi", "conf",
            "isro", "crst", "srst", "dirs", "hash",
        ];
        let word = words[rng.random_range(0..words.len())];
        let _ = stream.write_all(word.as_bytes()).await;
        let _ = drain(&mut stream, IO_TIMEOUT).await;
        return Ok(());
    }
    let mut connect = ConnectRequest {
        timeout_ms: rng.random_range(-10..30_000),
        password: Bytes::from_static(&[0; 16]),
        read_only: Some(rng.random_bool(0.1)),
        ..ConnectRequest::default()
    };
    if rng.random_bool(0.15) && !known_sessions.is_empty() {
        let (id, password) = known_sessions[rng.random_range(0..known_sessions.len())].clone();
        connect.session_id = id;
        connect.password = if rng.random_bool(0.8) {
            password
        } else {
            Bytes::from(vec![rng.random::<u8>(); 16])
        };
    } else if rng.random_bool(0.05) {
        connect.session_id = rng.random();
        connect.last_zxid_seen = rng.random_range(-1..1 << 40);
    }
    send_payload(&mut stream, &connect.to_bytes()).await?;
    let Some(answer) = read_frame(&mut stream).await? else {
        tally.refused_handshakes.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    if let Ok(response) = arbor_proto::ConnectResponse::from_slice(&answer) {
        if response.session_id == 0 {
            tally.refused_handshakes.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        known_sessions.push((response.session_id, response.password.clone()));
        if known_sessions.len() > 32 {
            known_sessions.remove(0);
        }
    }
    let reading = if rng.random_bool(0.1) {
        Reading::Never
    } else {
        Reading::Normal
    };
    let (read_half, mut write_half) = stream.into_split();
    let reader = (reading == Reading::Normal).then(|| tokio::spawn(read_all(read_half)));
    // Most episodes are well-formed, so sessions live long enough to build up state; the
    // rest corrupt a frame now and then (which ends the connection).
    let hostile = rng.random_bool(0.3);
    let count = rng.random_range(1..300);
    let mut xid = 1;
    let mut outcome = Ok(());
    for _ in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        let payload = next_payload(rng, &mut xid, hostile);
        tally.requests.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::with_capacity(payload.len() + 4);
        if hostile && rng.random_bool(0.002) {
            // A length prefix over the limit (sometimes negative), then whatever follows.
            let length: i32 = if rng.random_bool(0.5) {
                -rng.random_range(1..i32::MAX)
            } else {
                rng.random_range(FRAME_BYTES_MAX as i32 + 1..i32::MAX)
            };
            out.extend_from_slice(&length.to_be_bytes());
        } else {
            out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        }
        out.extend_from_slice(&payload);
        match tokio::time::timeout(IO_TIMEOUT, write_half.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                outcome = Err(format!("write: {error}"));
                break;
            }
            Err(_) => {
                outcome = Err("write timed out (server back-pressure)".into());
                break;
            }
        }
    }
    if outcome.is_ok() && rng.random_bool(0.5) {
        let mut payload = Vec::new();
        Request::CloseSession.encode_with_header(xid, &mut payload);
        let mut out = (payload.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&payload);
        let _ = write_half.write_all(&out).await;
    }
    let _ = write_half.shutdown().await;
    drop(write_half);
    if let Some(reader) = reader {
        match tokio::time::timeout(IO_TIMEOUT * 2, reader).await {
            Ok(Ok(counts)) => {
                tally.replies.fetch_add(counts.replies, Ordering::Relaxed);
                tally.events.fetch_add(counts.events, Ordering::Relaxed);
                if counts.closed_by_server {
                    tally.server_closes.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Err(error)) => return Err(format!("reader task: {error}")),
            // The reader is dropped with its half of the socket.
            Err(_) => {}
        }
    }
    outcome
}

#[derive(Default)]
struct ReadCounts {
    replies: u64,
    events: u64,
    closed_by_server: bool,
}

async fn read_all(mut read_half: tokio::net::tcp::OwnedReadHalf) -> ReadCounts {
    let mut counts = ReadCounts::default();
    let mut buffer = Vec::with_capacity(64 * 1024);
    loop {
        buffer.reserve(64 * 1024);
        match read_half.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => {
                counts.closed_by_server = true;
                return counts;
            }
            Ok(_) => {}
        }
        while buffer.len() >= 4 {
            let length = i32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]);
            let Ok(length) = usize::try_from(length) else {
                return counts;
            };
            if length > READ_FRAME_BYTES_MAX || buffer.len() < 4 + length {
                break;
            }
            if length >= 4 && i32::from_be_bytes([buffer[4], buffer[5], buffer[6], buffer[7]]) == -1
            {
                counts.events += 1;
            } else {
                counts.replies += 1;
            }
            buffer.drain(..4 + length);
        }
    }
}

async fn drain(stream: &mut TcpStream, wait: Duration) -> std::io::Result<()> {
    let mut sink = vec![0; 64 * 1024];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut sink)).await {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
        }
    }
}

/// The namespace the clients share: small, so the tree stays bounded except for sequential
/// nodes (bounded by the memory budget, and mostly ephemeral).
const PATHS: &[&str] = &[
    "/",
    "/f",
    "/f/a",
    "/f/b",
    "/f/a/x",
    "/f/a/y",
    "/f/b/z",
    "/f/a/x/deep",
    "/f/seq",
    "/f/seq/n",
    "/f/wide",
    "/zookeeper",
    "/zookeeper/config",
    "/zookeeper/quota",
    "/zookeeper/quota/f",
    "/zookeeper/quota/f/a",
    "/zookeeper/quota/f/a/zookeeper_limits",
    "/zookeeper/quota/f/a/zookeeper_stats",
    "/zookeeper/quota/f/b/zookeeper_limits",
];

/// Paths a careful client would never send.
const BAD_PATHS: &[&str] = &[
    "",
    "noslash",
    "/trailing/",
    "/a//b",
    "/f/./x",
    "/f/../x",
    "/f/\u{0}",
    "/f/\u{1}ctrl",
    "/\u{ffff}",
];

fn path(rng: &mut ChaCha8Rng) -> String {
    if rng.random_bool(0.03) {
        return BAD_PATHS[rng.random_range(0..BAD_PATHS.len())].to_owned();
    }
    if rng.random_bool(0.05) {
        return format!("/f/wide/{}", rng.random_range(0..200));
    }
    PATHS[rng.random_range(0..PATHS.len())].to_owned()
}

fn data(rng: &mut ChaCha8Rng) -> Option<Bytes> {
    let roll = rng.random_range(0..100);
    if roll < 5 {
        return None;
    }
    if roll < 10 {
        let quota = format!(
            "count={},bytes={}",
            rng.random_range(-1..20),
            rng.random_range(-1..5000)
        );
        return Some(Bytes::from(quota));
    }
    let size = if roll < 97 {
        rng.random_range(0..64)
    } else if roll < 99 {
        rng.random_range(0..16 * 1024)
    } else {
        rng.random_range(0..(FRAME_BYTES_MAX as usize + 1024))
    };
    Some(Bytes::from(vec![rng.random::<u8>(); size]))
}

fn acl(rng: &mut ChaCha8Rng) -> Vec<Acl> {
    match rng.random_range(0..10) {
        0 => Vec::new(),
        1 => vec![Acl {
            perms: rng.random_range(-1..64),
            id: Id::new("digest", "fuzz:bad"),
        }],
        2 => vec![Acl {
            perms: 31,
            id: Id::new("auth", ""),
        }],
        3 => vec![Acl {
            perms: 1,
            id: Id::new("sasl", "fuzz"),
        }],
        4 => vec![Acl {
            perms: 31,
            id: Id::new("ip", "127.0.0.1/33"),
        }],
        5 => vec![Acl {
            perms: 31,
            id: Id::new("nosuchscheme", "x"),
        }],
        _ => Acl::open_unsafe(),
    }
}

fn version(rng: &mut ChaCha8Rng) -> i32 {
    if rng.random_bool(0.7) {
        -1
    } else {
        rng.random_range(-2..5)
    }
}

fn create(rng: &mut ChaCha8Rng) -> CreateRequest {
    let flags = if rng.random_bool(0.95) {
        // Mostly persistent or ephemeral, some ephemeral-sequential, rarely persistent
        // sequential (it accumulates), and the container and TTL modes.
        match rng.random_range(0..100) {
            0..40 => 0,
            40..75 => 1,
            75..92 => 3,
            92..93 => 2,
            93..96 => 4,
            _ => rng.random_range(5..7),
        }
    } else {
        rng.random_range(-3..10)
    };
    CreateRequest {
        path: path(rng),
        data: data(rng),
        acl: acl(rng),
        flags,
    }
}

fn paths(rng: &mut ChaCha8Rng) -> Vec<String> {
    (0..rng.random_range(0..8)).map(|_| path(rng)).collect()
}

fn multi_op(rng: &mut ChaCha8Rng, reads: bool) -> MultiOp {
    if reads {
        return if rng.random_bool(0.5) {
            MultiOp::GetData(GetDataRequest {
                path: path(rng),
                watch: false,
            })
        } else {
            MultiOp::GetChildren(GetChildrenRequest {
                path: path(rng),
                watch: false,
            })
        };
    }
    match rng.random_range(0..6) {
        0 => MultiOp::Create(create(rng)),
        1 => MultiOp::Create2(create(rng)),
        2 => MultiOp::Delete(DeleteRequest {
            path: path(rng),
            version: version(rng),
        }),
        3 => MultiOp::SetData(SetDataRequest {
            path: path(rng),
            data: data(rng),
            version: version(rng),
        }),
        4 => MultiOp::Check(CheckVersionRequest {
            path: path(rng),
            version: version(rng),
        }),
        _ => MultiOp::GetData(GetDataRequest {
            path: path(rng),
            watch: false,
        }),
    }
}

fn request(rng: &mut ChaCha8Rng) -> Request {
    match rng.random_range(0..36) {
        0..3 => Request::Create(create(rng)),
        3..5 => Request::Create2(create(rng)),
        5 => Request::CreateContainer(create(rng)),
        6 => {
            let base = create(rng);
            Request::CreateTtl(CreateTtlRequest {
                path: base.path,
                data: base.data,
                acl: base.acl,
                flags: rng.random_range(4..8),
                ttl: rng.random_range(-5..100_000),
            })
        }
        7..10 => Request::Delete(DeleteRequest {
            path: path(rng),
            version: version(rng),
        }),
        10..12 => Request::Exists(ExistsRequest {
            path: path(rng),
            watch: rng.random_bool(0.6),
        }),
        12..14 => Request::GetData(GetDataRequest {
            path: path(rng),
            watch: rng.random_bool(0.6),
        }),
        14..16 => Request::SetData(SetDataRequest {
            path: path(rng),
            data: data(rng),
            version: version(rng),
        }),
        16 => Request::GetAcl(GetAclRequest { path: path(rng) }),
        17 => Request::SetAcl(SetAclRequest {
            path: path(rng),
            acl: acl(rng),
            version: version(rng),
        }),
        18 => Request::GetChildren(GetChildrenRequest {
            path: path(rng),
            watch: rng.random_bool(0.5),
        }),
        19 => Request::GetChildren2(GetChildrenRequest {
            path: path(rng),
            watch: rng.random_bool(0.5),
        }),
        20 => Request::Sync(SyncRequest { path: path(rng) }),
        21 => Request::Ping,
        22 => Request::Check(CheckVersionRequest {
            path: path(rng),
            version: version(rng),
        }),
        23 => Request::Multi(MultiRequest {
            ops: (0..rng.random_range(0..6))
                .map(|_| multi_op(rng, false))
                .collect(),
        }),
        24 => Request::MultiRead(MultiRequest {
            ops: (0..rng.random_range(0..6))
                .map(|_| multi_op(rng, true))
                .collect(),
        }),
        25 => Request::Reconfig(ReconfigRequest {
            joining_servers: String::new(),
            leaving_servers: "9".into(),
            new_members: String::new(),
            cur_config_id: -1,
        }),
        26 => Request::CheckWatches(CheckWatchesRequest {
            path: path(rng),
            watcher_type: rng.random_range(0..7),
        }),
        27 => Request::RemoveWatches(RemoveWatchesRequest {
            path: path(rng),
            watcher_type: rng.random_range(0..7),
        }),
        28 => Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: if rng.random_bool(0.8) {
                "digest".into()
            } else {
                "nosuch".into()
            },
            auth: Bytes::from(if rng.random_bool(0.5) {
                "fuzz:fuzz_password"
            } else {
                "nocolon"
            }),
        }),
        29 => Request::SetWatches(SetWatches {
            relative_zxid: rng.random_range(-1..1 << 33),
            data_watches: paths(rng),
            exist_watches: paths(rng),
            child_watches: paths(rng),
        }),
        30 => Request::SetWatches2(SetWatches2 {
            relative_zxid: rng.random_range(-1..1 << 33),
            data_watches: paths(rng),
            exist_watches: paths(rng),
            child_watches: paths(rng),
            persistent_watches: paths(rng),
            persistent_recursive_watches: paths(rng),
        }),
        // A failed SASL exchange closes the connection: rarely, or few episodes get far.
        31 if rng.random_bool(0.1) => Request::Sasl(GetSaslRequest {
            token: sasl_token(rng),
        }),
        32 => Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: path(rng),
        }),
        33 => Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: path(rng) }),
        34 => Request::AddWatch(AddWatchRequest {
            path: path(rng),
            mode: rng.random_range(-1..3),
        }),
        _ => Request::WhoAmI,
    }
}

/// A DIGEST-MD5 client response, mostly malformed in one way or another.
fn sasl_token(rng: &mut ChaCha8Rng) -> Bytes {
    let fields = [
        "username=\"fuzz\"",
        "username=\"nobody\"",
        "realm=\"zk-sasl-md5\"",
        "nonce=\"abc\"",
        "cnonce=\"xyz\"",
        "nc=00000001",
        "qop=auth",
        "qop=auth-conf",
        "digest-uri=\"zookeeper/zk-sasl-md5\"",
        "response=0123456789abcdef0123456789abcdef",
        "charset=utf-8",
        "username=\"unterminated",
        "=",
        ",,,",
        "nc=zzzz",
    ];
    if rng.random_bool(0.2) {
        return Bytes::from(
            (0..rng.random_range(0..200))
                .map(|_| rng.random())
                .collect::<Vec<u8>>(),
        );
    }
    let picked: Vec<&str> = (0..rng.random_range(0..10))
        .map(|_| fields[rng.random_range(0..fields.len())])
        .collect();
    Bytes::from(picked.join(","))
}

/// The next request's payload (header and body), sometimes corrupted.
fn next_payload(rng: &mut ChaCha8Rng, xid: &mut i32, hostile: bool) -> Vec<u8> {
    let mut payload = Vec::new();
    let this_xid = if rng.random_bool(0.01) {
        // Special and out-of-order xids.
        [-2, -4, -8, 0, i32::MAX, i32::MIN][rng.random_range(0..6)]
    } else {
        *xid += 1;
        *xid
    };
    request(rng).encode_with_header(this_xid, &mut payload);
    if !hostile {
        return payload;
    }
    match rng.random_range(0..1000) {
        // An unknown or server-internal opcode.
        0..5 => {
            let op: i32 = [-1, 0, 10, 20, 23, 99, 108, 1000, -10][rng.random_range(0..9)];
            payload[4..8].copy_from_slice(&op.to_be_bytes());
        }
        // Truncated.
        5..10 => payload.truncate(rng.random_range(0..payload.len())),
        // Flipped bytes.
        10..15 => {
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..payload.len());
                payload[at] = rng.random();
            }
        }
        // Trailing garbage.
        15..18 => payload.extend((0..rng.random_range(1..16)).map(|_| rng.random::<u8>())),
        _ => {}
    }
    payload
}
