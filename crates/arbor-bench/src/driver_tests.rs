//! The driver against the in-process fake server: xid pairing, the window bound, and every
//! workload end to end through [`crate::measure`]. No ZooKeeper needed.

use arbor_proto::{CreateMode, GetDataRequest, OpCode, Request, Response};
use bytes::Bytes;
use clap::Parser;

use crate::fake_server::{Behaviour, FakeServer};
use crate::pipeline::PipelineError;
use crate::session::{Incoming, Session, SessionError, SessionOptions};
use crate::workload::create_request;
use crate::{BenchArgs, Report, measure};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn bench(server: &FakeServer, extra: &[&str]) -> Report {
    let addr = server.addr.to_string();
    let mut argv = vec!["bench", "--server", &addr, "--quiet", "--keys", "10"];
    if !extra.contains(&"--warmup") {
        argv.extend_from_slice(&["--warmup", "0s"]);
    }
    argv.extend_from_slice(extra);
    let args = Cli::try_parse_from(argv).unwrap().args;
    measure(&args).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn options(window: usize) -> SessionOptions {
    SessionOptions {
        window,
        ..SessionOptions::default()
    }
}

async fn replies<T>(session: &mut Session<T>, count: usize) -> Vec<Incoming<T>> {
    let mut incoming = Vec::new();
    while incoming
        .iter()
        .filter(|m| matches!(m, Incoming::Reply { .. }))
        .count()
        < count
    {
        session.poll(None, &mut incoming).await.unwrap();
    }
    incoming
}

fn get(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    })
}

#[test]
fn pipelined_replies_are_paired_with_their_requests() {
    let server = FakeServer::start(Behaviour::Normal);
    runtime().block_on(async {
        let addr = server.addr.to_string();
        let mut session: Session<&str> = Session::connect(&addr, &options(8)).await.unwrap();
        for name in ["a", "b"] {
            let request = create_request(
                format!("/{name}"),
                Bytes::from(name.to_owned()),
                CreateMode::Persistent,
            );
            session.send(&request, "create").unwrap();
        }
        replies(&mut session, 2).await;
        for (path, tag) in [("/a", "a"), ("/b", "b"), ("/a", "a"), ("/missing", "none")] {
            session.send(&get(path), tag).unwrap();
        }
        assert_eq!(session.outstanding(), 4);
        for message in replies(&mut session, 4).await {
            let Incoming::Reply {
                tag,
                op,
                header,
                response,
                ..
            } = message
            else {
                panic!("unexpected notification");
            };
            assert_eq!(op, OpCode::GetData);
            match response {
                Some(Response::GetData(reply)) => {
                    assert_eq!(reply.data.as_deref(), Some(tag.as_bytes()))
                }
                None => assert_eq!((tag, header.err), ("none", -101)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(session.outstanding(), 0);
        session.close("close").await.unwrap();
    });
    assert_eq!(server.stats().closed_sessions, 1);
}

#[test]
fn reply_out_of_xid_order_fails_the_session() {
    let server = FakeServer::start(Behaviour::SwapFirstTwo);
    let error = runtime().block_on(async {
        let addr = server.addr.to_string();
        let mut session: Session<()> = Session::connect(&addr, &options(2)).await.unwrap();
        session.send(&get("/x"), ()).unwrap();
        session.send(&get("/y"), ()).unwrap();
        let mut incoming = Vec::new();
        loop {
            if let Err(error) = session.poll(None, &mut incoming).await {
                return error;
            }
        }
    });
    assert!(
        matches!(
            error,
            SessionError::Pipeline {
                source: PipelineError::OutOfOrder {
                    expected: 1,
                    got: 2
                },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn session_refuses_to_send_beyond_its_window() {
    let server = FakeServer::start(Behaviour::Normal);
    runtime().block_on(async {
        let addr = server.addr.to_string();
        let mut session: Session<()> = Session::connect(&addr, &options(2)).await.unwrap();
        session.send(&get("/x"), ()).unwrap();
        session.send(&get("/x"), ()).unwrap();
        assert!(!session.can_send());
        assert!(matches!(
            session.send(&get("/x"), ()),
            Err(SessionError::Pipeline {
                source: PipelineError::WindowFull { window: 2 },
                ..
            })
        ));
    });
}

#[test]
fn closed_loop_keeps_the_window_full_and_never_overruns_it() {
    let server = FakeServer::start(Behaviour::HoldUntilWindow {
        window: 4,
        total: 200,
    });
    let report = bench(
        &server,
        &[
            "--workload",
            "get",
            "--connections",
            "1",
            "--window",
            "4",
            "--ops",
            "200",
        ],
    );
    assert_eq!(report.ops, 200);
    assert_eq!(report.errors, 0);
    let stats = server.stats();
    assert_eq!(stats.max_outstanding, 4, "{stats:?}");
    assert_eq!(stats.window_violations, 0, "{stats:?}");
    assert_eq!(stats.requests.get(&OpCode::GetData.code()), Some(&200));
}

#[test]
fn a_client_beyond_the_servers_window_is_caught_by_the_fake() {
    // The check of the window test must be able to fail: a client with window 8 against a fake
    // expecting 4 is reported.
    let server = FakeServer::start(Behaviour::HoldUntilWindow {
        window: 4,
        total: 40,
    });
    let report = bench(
        &server,
        &[
            "--workload",
            "get",
            "--connections",
            "1",
            "--window",
            "8",
            "--ops",
            "40",
        ],
    );
    assert_eq!(report.ops, 40);
    assert!(server.stats().window_violations > 0);
}

#[test]
fn every_request_workload_runs_to_its_op_count() {
    let server = FakeServer::start(Behaviour::Normal);
    for (workload, extra) in [
        ("create", vec![]),
        ("set", vec![]),
        ("get", vec![]),
        ("mixed", vec!["--read-pct", "50"]),
        ("exists-watch", vec![]),
        ("children", vec!["--children", "100"]),
    ] {
        let mut argv = vec![
            "--workload",
            workload,
            "--ops",
            "300",
            "--connections",
            "3",
            "--window",
            "5",
        ];
        argv.extend(extra);
        let report = bench(&server, &argv);
        assert_eq!(report.ops, 300, "{workload}");
        assert_eq!(report.errors, 0, "{workload}: {:?}", report.error_codes);
        assert_eq!(report.latency.count, 300, "{workload}");
        assert!(report.ops_per_s > 0.0, "{workload}");
        assert_eq!(report.workload, workload);
        if workload == "mixed" {
            let (reads, writes) = (report.reads.unwrap(), report.writes.unwrap());
            assert_eq!(reads.count + writes.count, 300);
            assert!(
                reads.count > 60 && writes.count > 60,
                "{reads:?} {writes:?}"
            );
        }
    }
    let stats = server.stats();
    assert_eq!(stats.requests.get(&OpCode::GetChildren.code()), Some(&300));
    assert!(stats.requests.get(&OpCode::Exists.code()) >= Some(&300));
}

#[test]
fn open_loop_sends_at_the_rate_and_counts_every_op() {
    let server = FakeServer::start(Behaviour::Normal);
    let report = bench(
        &server,
        &[
            "--workload",
            "get",
            "--ops",
            "100",
            "--rate",
            "20000",
            "--connections",
            "2",
        ],
    );
    assert_eq!(report.ops, 100);
    assert_eq!(report.config.mode, "open");
    // 100 requests due at 20k/s span 5 ms: the run cannot be faster than its schedule.
    assert!(report.elapsed_s >= 0.004, "{}", report.elapsed_s);
}

#[test]
fn churn_opens_and_closes_a_session_per_op() {
    let server = FakeServer::start(Behaviour::Normal);
    let report = bench(
        &server,
        &["--workload", "churn", "--ops", "30", "--connections", "3"],
    );
    assert_eq!(report.ops, 30);
    assert_eq!(report.errors, 0, "{:?}", report.error_codes);
    // One session for setup, one per churn op.
    assert_eq!(server.stats().closed_sessions, 31);
}

#[test]
fn fanout_times_until_every_watcher_heard_the_write() {
    let server = FakeServer::start(Behaviour::Normal);
    let report = bench(
        &server,
        &[
            "--workload",
            "fanout",
            "--ops",
            "3",
            "--watchers",
            "25",
            "--warmup",
            "1s",
        ],
    );
    assert_eq!(report.ops, 3);
    assert_eq!(report.notifications, 75);
    assert_eq!(report.latency.count, 3);
    assert!(report.extra["watcher_max_ms"] * 1e3 <= report.latency.max_us * 1.01);
    // One warm-up round and three measured: four writes of the fan-out node.
    assert_eq!(
        server.stats().requests.get(&OpCode::SetData.code()),
        Some(&4)
    );
}

#[test]
fn ready_probe_answers_once_the_server_does() {
    let server = FakeServer::start(Behaviour::Normal);
    let report = bench(&server, &["--workload", "ready", "--duration", "10s"]);
    assert_eq!(report.ops, 1);
    assert!(report.extra["ready_ms"] >= 0.0);
}

#[test]
fn ready_probe_gives_up_after_its_limit() {
    // A port nobody listens on: bind, note it, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let args = Cli::try_parse_from([
        "bench",
        "--server",
        &addr,
        "--quiet",
        "--workload",
        "ready",
        "--duration",
        "50ms",
    ])
    .unwrap()
    .args;
    assert!(measure(&args).is_err());
}

#[test]
fn an_unreachable_server_is_an_error_not_a_hang() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let args = Cli::try_parse_from(["bench", "--server", &addr, "--quiet", "--ops", "1"])
        .unwrap()
        .args;
    let error = measure(&args).unwrap_err();
    assert!(format!("{error:#}").contains(&addr), "{error:#}");
}

#[test]
fn setup_only_then_no_setup_measures_the_same_nodes() {
    let server = FakeServer::start(Behaviour::Normal);
    let setup = bench(
        &server,
        &["--workload", "get", "--run-id", "shared", "--setup-only"],
    );
    assert_eq!(setup.ops, 0);
    let creates = server.stats().requests[&OpCode::Create.code()];
    let report = bench(
        &server,
        &[
            "--workload",
            "get",
            "--run-id",
            "shared",
            "--no-setup",
            "--ops",
            "50",
        ],
    );
    assert_eq!(report.ops, 50);
    assert_eq!(report.errors, 0, "{:?}", report.error_codes);
    assert_eq!(server.stats().requests[&OpCode::Create.code()], creates);
}

#[test]
fn without_warm_up_every_completion_is_measured() {
    let server = FakeServer::start(Behaviour::Normal);
    let report = bench(&server, &["--workload", "get", "--ops", "20"]);
    assert_eq!((report.ops, report.warmup_ops), (20, 0));
}
