//! Limits against hostile or broken clients, each checked the same way: the client that passes
//! the limit gets a clear error (ThrottledOp, QuotaExceeded) or loses its connection, and the
//! other clients are unaffected. The slow-reader test measures this process's resident set
//! (the server runs in it) while a client that never reads its socket is flooded with replies
//! and watch events.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arbor_proto::{
    Acl, AddWatchRequest, CreateRequest, DeleteRequest, ErrorCode, ExistsRequest,
    GetChildrenRequest, GetDataRequest, Request, SetDataRequest,
};
use bytes::Bytes;
use support::{TestServer, open_tcp, rss_bytes, session, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const THROTTLED: i32 = -127;

fn create(path: &str, data: impl Into<Bytes>) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(data.into()),
        acl: Acl::open_unsafe(),
        flags: 0,
    })
}

fn set_data(path: &str, data: impl Into<Bytes>) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(data.into()),
        version: -1,
    })
}

fn delete(path: &str) -> Request {
    Request::Delete(DeleteRequest {
        path: path.into(),
        version: -1,
    })
}

fn exists_watch(path: &str) -> Request {
    Request::Exists(ExistsRequest {
        path: path.into(),
        watch: true,
    })
}

fn get(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    })
}

fn children(path: &str) -> Request {
    Request::GetChildren(GetChildrenRequest {
        path: path.into(),
        watch: false,
    })
}

/// A four-letter word's answer.
async fn four_letter(address: std::net::SocketAddr, word: &str) -> String {
    let mut stream = within("a connection", tokio::net::TcpStream::connect(address))
        .await
        .expect("connect");
    stream.write_all(word.as_bytes()).await.expect("send");
    let mut text = String::new();
    within("the answer", stream.read_to_string(&mut text))
        .await
        .expect("read");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_past_the_connection_limit_are_throttled() {
    let server = TestServer::start(|config, _| config.watches_per_connection_max = 5).await;
    let mut writer = session(server.address()).await;
    for i in 0..7 {
        assert_eq!(writer.code(&create(&format!("/w{i}"), "x")).await, 0);
    }
    let mut greedy = session(server.address()).await;
    for i in 0..5 {
        assert_eq!(greedy.code(&exists_watch(&format!("/w{i}"))).await, 0);
    }
    assert_eq!(greedy.code(&exists_watch("/w5")).await, THROTTLED);
    // A watch it already holds costs nothing; plain reads go on.
    assert_eq!(greedy.code(&exists_watch("/w0")).await, 0);
    assert_eq!(greedy.code(&get("/w5")).await, 0);
    // Another connection has its own allowance.
    let mut other = session(server.address()).await;
    assert_eq!(other.code(&exists_watch("/w5")).await, 0);
    assert_eq!(other.code(&exists_watch("/w6")).await, 0);
    // The watches the greedy connection holds still fire.
    assert_eq!(writer.code(&set_data("/w0", "changed")).await, 0);
    let xid = greedy.send(&Request::Ping).await.expect("ping");
    within("the ping", greedy.reply_to(xid)).await;
    assert!(
        greedy.events.iter().any(|event| event.path == "/w0"),
        "events: {:?}",
        greedy.events
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_listing_over_the_size_limit_is_throttled() {
    let server = TestServer::start(|config, _| config.children_listing_bytes_max = 1024).await;
    let mut client = session(server.address()).await;
    assert_eq!(client.code(&create("/wide", "")).await, 0);
    assert_eq!(client.code(&create("/narrow", "")).await, 0);
    assert_eq!(client.code(&create("/narrow/a", "")).await, 0);
    for i in 0..60 {
        let path = format!("/wide/child-with-a-longish-name-{i:04}");
        assert_eq!(client.code(&create(&path, "")).await, 0);
    }
    assert_eq!(client.code(&children("/wide")).await, THROTTLED);
    assert_eq!(client.code(&children("/narrow")).await, 0);
    let mut other = session(server.address()).await;
    assert_eq!(other.code(&children("/narrow")).await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_total_limit_are_closed() {
    let server = TestServer::start(|config, _| config.connections_max = 3).await;
    let mut first = session(server.address()).await;
    let _second = session(server.address()).await;
    let third = session(server.address()).await;
    let mut refused = open_tcp(server.address()).await;
    assert!(
        !refused.handshake().await,
        "a fourth connection got a session past connections_max = 3"
    );
    assert_eq!(first.code(&get("/")).await, 0);
    // A slot frees when a connection ends.
    drop(third);
    let mut later = None;
    for _ in 0..100 {
        let mut conn = open_tcp(server.address()).await;
        if conn.handshake().await {
            later = Some(conn);
            break;
        }
        // The server notices the closed connection asynchronously.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut later = later.expect("a connection after one of three closed");
    assert_eq!(later.code(&get("/")).await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_quota_refuses_with_quota_exceeded() {
    let server = TestServer::start(|_, _| {}).await;
    let mut client = session(server.address()).await;
    assert_eq!(client.code(&create("/q", "")).await, 0);
    assert_eq!(client.code(&create("/zookeeper/quota/q", "")).await, 0);
    // setquota -N 3 /q as zkCli writes it: the limits node, then the stats node.
    let limits = "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3";
    assert_eq!(
        client
            .code(&create("/zookeeper/quota/q/zookeeper_limits", limits))
            .await,
        0
    );
    assert_eq!(
        client
            .code(&create("/zookeeper/quota/q/zookeeper_stats", ""))
            .await,
        0
    );
    // /q counts itself: two children fit, the third does not.
    assert_eq!(client.code(&create("/q/a", "")).await, 0);
    assert_eq!(client.code(&create("/q/b", "")).await, 0);
    assert_eq!(
        client.code(&create("/q/c", "")).await,
        ErrorCode::QuotaExceeded.code()
    );
    // Elsewhere nothing is limited, and freeing a slot lets the create through.
    assert_eq!(client.code(&create("/free", "")).await, 0);
    assert_eq!(client.code(&delete("/q/b")).await, 0);
    assert_eq!(client.code(&create("/q/c", "")).await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_memory_budget_growing_writes_fail_and_the_rest_works() {
    const BUDGET: u64 = 1024 * 1024;
    let server = TestServer::start(|config, _| config.memory_budget_bytes = BUDGET).await;
    let mut client = session(server.address()).await;
    let mut other = session(server.address()).await;
    assert_eq!(client.code(&create("/m", "")).await, 0);
    let payload = Bytes::from(vec![b'm'; 8 * 1024]);
    let mut created = 0;
    loop {
        let code = client
            .code(&create(&format!("/m/n{created}"), payload.clone()))
            .await;
        if code == THROTTLED {
            break;
        }
        assert_eq!(code, 0, "create /m/n{created}");
        created += 1;
        assert!(created < 1000, "a 1 MiB budget never refused 8 KiB creates");
    }
    let mntr = four_letter(server.address(), "mntr").await;
    assert!(
        mntr.contains("arbor_memory_budget_level\t2"),
        "mntr past the budget:\n{mntr}"
    );
    // Growing writes are refused for everyone; reads, shrinking writes, deletes and session
    // closes go on.
    assert_eq!(other.code(&create("/other", "")).await, THROTTLED);
    assert_eq!(
        other.code(&set_data("/m/n0", vec![b'x'; 16 * 1024])).await,
        THROTTLED
    );
    assert_eq!(other.code(&get("/m/n0")).await, 0);
    assert_eq!(other.code(&set_data("/m/n0", "small")).await, 0);
    for i in 1..created {
        assert_eq!(client.code(&delete(&format!("/m/n{i}"))).await, 0);
    }
    assert_eq!(other.code(&Request::CloseSession).await, 0);
    // Under the budget again: creates work.
    assert_eq!(client.code(&create("/m/again", "")).await, 0);
    server.stop().await;
}

/// Samples this process's resident set every few milliseconds until stopped; the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_bytes()));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak.load(Ordering::Relaxed).max(rss_bytes())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_before_server_memory_grows() {
    const OUTBOUND_BYTES_MAX: u64 = 4 * 1024 * 1024;
    const CHILDREN: usize = 100;
    const LISTINGS: usize = 20_000;
    let server =
        TestServer::start(|config, _| config.outbound_bytes_max = OUTBOUND_BYTES_MAX).await;
    let mut writer = session(server.address()).await;
    assert_eq!(writer.code(&create("/flood", "")).await, 0);
    for i in 0..CHILDREN {
        let name = format!("/flood/{i:04}-{}", "n".repeat(90));
        assert_eq!(writer.code(&create(&name, "")).await, 0);
    }
    let mut slow = session(server.address()).await;
    let watch = Request::AddWatch(AddWatchRequest {
        path: "/flood".into(),
        mode: 1, // persistent recursive: every change below fires an event
    });
    assert_eq!(slow.code(&watch).await, 0);
    let (slow_session, slow_password) = (slow.session_id, slow.password.clone());

    // Every listing is ~100 names of ~95 bytes, allocated anew for each reply: kept queued
    // for a client that does not read, they would be LISTINGS x ~13 KB = ~250 MB.
    let baseline = rss_bytes();
    let sampler = RssSampler::start();
    let mut sent = 0;
    for i in 0..LISTINGS {
        if slow.send(&children("/flood")).await.is_err() {
            break;
        }
        sent += 1;
        if i % 200 == 0 {
            // Watches fire too, and the writer is served all along.
            let path = format!("/flood/{:04}-{}", i % CHILDREN, "n".repeat(90));
            assert_eq!(writer.code(&set_data(&path, format!("{i}"))).await, 0);
        }
    }
    let peak = sampler.finish();
    let growth = peak.saturating_sub(baseline);
    println!(
        "slow reader: sent {sent} listings (~{} MiB of replies if queued); resident set baseline {} MiB, peak {} MiB, growth {} MiB; outbound_bytes_max {} MiB",
        sent * CHILDREN * 130 / (1 << 20),
        baseline >> 20,
        peak >> 20,
        growth >> 20,
        OUTBOUND_BYTES_MAX >> 20
    );
    assert!(
        slow.closed_by_server().await,
        "the server kept a connection whose client never reads"
    );
    assert!(
        growth < 64 * 1024 * 1024,
        "resident set grew by {} MiB for a client that never reads",
        growth >> 20
    );
    // Others are unaffected, and the slow client lost its connection, not its session.
    assert_eq!(writer.code(&get("/flood")).await, 0);
    let mut resumed = open_tcp(server.address()).await;
    let resume = arbor_proto::ConnectRequest {
        timeout_ms: 30_000,
        session_id: slow_session,
        password: slow_password,
        read_only: Some(false),
        ..arbor_proto::ConnectRequest::default()
    };
    resumed
        .send_frame(&arbor_proto::Jute::to_bytes(&resume))
        .await
        .expect("send the resume handshake");
    let answer = resumed.read_frame().await.expect("a handshake answer");
    let response = <arbor_proto::ConnectResponse as arbor_proto::Jute>::from_slice(&answer)
        .expect("a connect response");
    assert_eq!(response.session_id, slow_session, "the session survived");
    server.stop().await;
}
