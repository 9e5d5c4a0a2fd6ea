//! Sessions on a real `arbor server`: expiry (ephemerals deleted, watches fired), refusal of
//! expired sessions and bad passwords, a session taken over by a new connection, survival
//! across a graceful restart and across `kill -9` (each recovered session gets a fresh
//! timeout), a `lastZxidSeen` ahead of the server refused, negotiated timeout clamping and the
//! old 44-byte handshake.
//!
//! The expiry tests necessarily wait for a session timeout; `tick_ms = 100` keeps those waits
//! to about a second. Everything else waits for events, replies or states.

mod support;

use std::time::{Duration, Instant};

use arbor_proto::{ConnectRequest, CreateRequest, ExistsRequest, Jute, Request};
use bytes::Bytes;
use support::proxy::Proxy;
use support::raw::{RawConnection, data, new_session_request, resume_request};
use support::{
    Server, ServerOptions, connect, connect_with, mode, ok, persistent, wait_for_state, within,
};
use zookeeper_client as zk;

/// A server whose tick is 100 ms: negotiated timeouts fall in [200 ms, 2 s].
fn fast_ticking() -> ServerOptions {
    ServerOptions::default().set("tick_ms", 100)
}

fn create_ephemeral(path: &str) -> Request {
    Request::Create2(CreateRequest {
        path: path.into(),
        data: data(Bytes::new()),
        acl: arbor_proto::Acl::open_unsafe(),
        flags: 1,
    })
}

fn exists_root() -> Request {
    Request::Exists(ExistsRequest {
        path: "/".into(),
        watch: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_deletes_ephemerals_and_fires_watches() {
    let server = Server::start_with(fast_ticking());
    let proxy = Proxy::start(server.socket_address()).await;
    let observer = connect(&server.address()).await;
    ok("create /app", observer.create("/app", b"", &persistent())).await;

    // The longest timeout tick 100 allows: a loaded machine must not expire it by accident
    // before the test cuts it off.
    let client = connect_with(
        zk::Client::connector().with_session_timeout(Duration::from_millis(2000)),
        &proxy.address(),
    )
    .await;
    assert_eq!(client.session_timeout(), Duration::from_millis(2000));
    let mut state = client.state_watcher();
    ok(
        "ephemeral",
        client.create("/app/member", b"", &mode(zk::CreateMode::Ephemeral)),
    )
    .await;
    let (_, sequence) = ok(
        "ephemeral sequential",
        client.create("/app/seq-", b"", &mode(zk::CreateMode::EphemeralSequential)),
    )
    .await;
    let (_, _, own_watch) = ok("own watch", client.get_and_watch_data("/app/member")).await;
    let (_, deleted) = ok(
        "observer watch",
        observer.check_and_watch_stat("/app/member"),
    )
    .await;
    let (_, children) = ok(
        "observer ls watch",
        observer.list_and_watch_children("/app"),
    )
    .await;

    // The client goes silent (its connection is cut; the server stays up).
    let silent_since = Instant::now();
    proxy.block();
    let fired = within("ephemeral deletion on expiry", deleted.changed()).await;
    let waited = silent_since.elapsed();
    assert_eq!(
        (fired.event_type, fired.path.as_str()),
        (zk::EventType::NodeDeleted, "/app/member")
    );
    // Not at the disconnect: only once the session timed out.
    assert!(
        waited >= Duration::from_millis(1000),
        "expired {waited:?} after going silent with a 2 s timeout"
    );
    let fired = within("child watch on expiry", children.changed()).await;
    assert_eq!(fired.event_type, zk::EventType::NodeChildrenChanged);
    assert_eq!(
        ok("ls /app", observer.list_children("/app")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        ok(
            "exists seq",
            observer.check_stat(&format!("/app/seq-{sequence}"))
        )
        .await,
        None
    );

    // The owner learns it too: its watch ends with Expired, and so does its session.
    proxy.unblock();
    let fired = within("owner's watch", own_watch.changed()).await;
    assert_eq!(
        (fired.event_type, fired.session_state),
        (zk::EventType::Session, zk::SessionState::Expired)
    );
    wait_for_state(&mut state, zk::SessionState::Expired).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_expired_and_closed_and_cannot_be_resumed() {
    let server = Server::start_with(fast_ticking());
    let observer = connect(&server.address()).await;
    let (mut raw, session) = RawConnection::new_session(server.socket_address(), 400).await;
    assert_eq!(session.timeout_ms, 400);
    raw.call_ok(&create_ephemeral("/quiet")).await;
    let (_, deleted) = ok("watch", observer.check_and_watch_stat("/quiet")).await;
    // Send nothing, not even pings: the server expires the session and closes the socket.
    raw.expect_closed_without_reply().await;
    let fired = within("deletion", deleted.changed()).await;
    assert_eq!(fired.event_type, zk::EventType::NodeDeleted);

    let mut again = RawConnection::open(server.socket_address()).await;
    let answer = again
        .handshake(&resume_request(session.session_id, &session.password, 0))
        .await
        .expect("an answer");
    // ZooKeeper's "session expired" answer: timeout 0, session 0, a zeroed password.
    assert_eq!(
        (answer.timeout_ms, answer.session_id, &answer.password[..]),
        (0, 0, &[0u8; 16][..])
    );
    again.expect_closed_without_reply().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_password_is_refused_and_the_session_lives_on() {
    let server = Server::start();
    let (mut owner, session) = RawConnection::new_session(server.socket_address(), 10_000).await;
    assert_eq!(session.password.len(), 16);
    let mut wrong = session.password.to_vec();
    wrong[0] ^= 0xff;
    let mut intruder = RawConnection::open(server.socket_address()).await;
    let answer = intruder
        .handshake(&resume_request(session.session_id, &Bytes::from(wrong), 0))
        .await
        .expect("an answer");
    assert_eq!((answer.timeout_ms, answer.session_id), (0, 0), "{answer:?}");
    intruder.expect_closed_without_reply().await;
    // The rightful connection is untouched.
    owner.call_ok(&exists_root()).await;
    // An unknown session id is refused the same way.
    let mut stranger = RawConnection::open(server.socket_address()).await;
    let answer = stranger
        .handshake(&resume_request(0x0100_0000_dead_beef, &session.password, 0))
        .await
        .expect("an answer");
    assert_eq!((answer.timeout_ms, answer.session_id), (0, 0), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_moves_to_the_new_connection() {
    let server = Server::start();
    let (mut first, session) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let zxid = first.call(&create_ephemeral("/held")).await.header.zxid;
    let mut second = RawConnection::open(server.socket_address()).await;
    let answer = second
        .handshake(&resume_request(session.session_id, &session.password, zxid))
        .await
        .expect("an answer");
    assert_eq!(
        (answer.session_id, &answer.password, answer.timeout_ms),
        (session.session_id, &session.password, session.timeout_ms)
    );
    // ZooKeeper closes the old connection (DisconnectReason.CLIENT_RECONNECT).
    first.expect_closed_without_reply().await;
    second.call_ok(&exists_root()).await;
    let observer = connect(&server.address()).await;
    let stat = ok("exists /held", observer.check_stat("/held")).await;
    assert_eq!(stat.map(|s| s.ephemeral_owner), Some(session.session_id));
}

/// Creates a session with ephemerals through `zookeeper-client`, stops the server with
/// `stop`, restarts it, and checks the same session carries on with its ephemerals.
async fn session_survives(options: ServerOptions, stop: impl FnOnce(&mut Server)) {
    let snapshots = options
        .toml
        .iter()
        .any(|(key, _)| key == "snapshot_every_entries");
    let mut server = Server::start_with(options);
    let client = connect(&server.address()).await;
    let session = client.session_id();
    let mut state = client.state_watcher();
    ok("create /svc", client.create("/svc", b"", &persistent())).await;
    ok(
        "ephemeral",
        client.create("/svc/me", b"here", &mode(zk::CreateMode::Ephemeral)),
    )
    .await;
    let (_, sequence) = ok(
        "ephemeral sequential",
        client.create("/svc/n-", b"", &mode(zk::CreateMode::EphemeralSequential)),
    )
    .await;

    if snapshots {
        // Enough writes for a snapshot that holds the session and its ephemerals; the kill
        // comes once one is saved, so recovery starts from it.
        for round in 0..10 {
            let value = round.to_string();
            ok("write", client.set_data("/svc", value.as_bytes(), None)).await;
        }
        support::eventually("a snapshot", || server.log().contains("snapshot saved")).await;
    }
    stop(&mut server);
    wait_for_state(&mut state, zk::SessionState::Disconnected).await;
    server.restart();
    wait_for_state(&mut state, zk::SessionState::SyncConnected).await;
    assert_eq!(client.session_id(), session);

    let observer = connect(&server.address()).await;
    for path in ["/svc/me".to_owned(), format!("/svc/n-{sequence}")] {
        let stat = ok("exists", observer.check_stat(&path)).await;
        assert_eq!(stat.map(|s| s.ephemeral_owner), Some(session.0), "{path}");
    }
    // The session is fully usable: it writes, and it still owns its nodes.
    ok(
        "write after restart",
        client.set_data("/svc/me", b"back", None),
    )
    .await;
    let mut own = ok("own ephemerals", client.list_ephemerals("/svc")).await;
    own.sort();
    assert_eq!(own, ["/svc/me".to_owned(), format!("/svc/n-{sequence}")]);
    // And its ephemerals still go with it.
    let (_, gone) = ok("watch", observer.check_and_watch_stat("/svc/me")).await;
    drop(client);
    let fired = within("close after restart", gone.changed()).await;
    assert_eq!(fired.event_type, zk::EventType::NodeDeleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_graceful_restart() {
    session_survives(ServerOptions::default(), |server| {
        assert!(server.terminate().success(), "graceful stop")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_kill_9() {
    session_survives(ServerOptions::default(), Server::kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_kill_9_recovered_from_a_snapshot() {
    let options = ServerOptions::default().set("snapshot_every_entries", 5);
    session_survives(options, Server::kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovered_sessions_get_a_fresh_timeout_and_still_expire() {
    let mut server = Server::start_with(fast_ticking());
    let (mut returning, session) = RawConnection::new_session(server.socket_address(), 1_000).await;
    returning.call_ok(&create_ephemeral("/returning")).await;
    let (mut leaving, _) = RawConnection::new_session(server.socket_address(), 1_000).await;
    let last_zxid = leaving
        .call(&create_ephemeral("/leaving"))
        .await
        .header
        .zxid;

    server.kill();
    drop((returning, leaving));
    // Down for longer than the sessions' timeout: that time must not count against them.
    // (This wait is the point of the test, not a guess at how long something takes.)
    std::thread::sleep(Duration::from_millis(1_500));
    server.restart();

    let mut back = RawConnection::open(server.socket_address()).await;
    let answer = back
        .handshake(&resume_request(
            session.session_id,
            &session.password,
            last_zxid,
        ))
        .await
        .expect("an answer");
    assert_eq!(answer.session_id, session.session_id, "{answer:?}");
    back.call_ok(&exists_root()).await;
    // The client that came back keeps pinging from now on, whatever else the test waits for.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let pinger = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => return back,
                () = tokio::time::sleep(Duration::from_millis(200)) => back.ping().await,
            }
        }
    });

    // The session whose client never came back expires a timeout after recovery, while the
    // one that came back lives on.
    let observer = connect(&server.address()).await;
    let (stat, leaving_gone) =
        ok("watch /leaving", observer.check_and_watch_stat("/leaving")).await;
    if stat.is_some() {
        let fired = within("expiry after recovery", leaving_gone.changed()).await;
        assert_eq!(fired.event_type, zk::EventType::NodeDeleted);
    }
    let _ = stop.send(());
    let mut back = within("the pinger", pinger).await.expect("the pinger");
    back.call_ok(&exists_root()).await;
    let stat = ok("exists /returning", observer.check_stat("/returning")).await;
    assert_eq!(stat.map(|s| s.ephemeral_owner), Some(session.session_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_has_seen_a_newer_zxid_is_refused() {
    let mut server = Server::start();
    let (mut raw, session) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let zxid = raw.call(&create_ephemeral("/e")).await.header.zxid;
    assert!(zxid > 0);
    let ahead = zxid + (1 << 32);

    // A new session from a client ahead of us: closed without an answer, so the client tries
    // another server (ZooKeeperServer.processConnectRequest, CLIENT_ZXID_AHEAD).
    let mut fresh = RawConnection::open(server.socket_address()).await;
    let answer = fresh
        .handshake(&ConnectRequest {
            last_zxid_seen: ahead,
            ..new_session_request(10_000)
        })
        .await;
    assert_eq!(answer, None, "a client ahead of the server got an answer");
    // Resuming an existing session from ahead: the same.
    let mut resumed = RawConnection::open(server.socket_address()).await;
    let answer = resumed
        .handshake(&resume_request(
            session.session_id,
            &session.password,
            zxid + 1,
        ))
        .await;
    assert_eq!(answer, None);
    // The session itself is untouched and may resume from where it really is.
    let mut honest = RawConnection::open(server.socket_address()).await;
    let answer = honest
        .handshake(&resume_request(session.session_id, &session.password, zxid))
        .await
        .expect("an answer");
    assert_eq!(answer.session_id, session.session_id);
    honest.call_ok(&exists_root()).await;
    support::eventually("the refusal in the log", || {
        server.log().contains("newer zxid")
    })
    .await;
    assert!(server.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiated_timeouts_are_clamped() {
    // Default bounds: [2, 20] ticks.
    let server = Server::start_with(fast_ticking());
    for (asked, negotiated) in [
        (1, 200),
        (199, 200),
        (1_000, 1_000),
        (2_000, 2_000),
        (60_000, 2_000),
    ] {
        let (_, answer) = RawConnection::new_session(server.socket_address(), asked).await;
        assert_eq!(answer.timeout_ms, negotiated, "asked {asked} ms");
    }
    let client = connect_with(
        zk::Client::connector().with_session_timeout(Duration::from_secs(60)),
        &server.address(),
    )
    .await;
    assert_eq!(client.session_timeout(), Duration::from_secs(2));

    // Configured bounds replace the tick-derived ones.
    let server = Server::start_with(
        fast_ticking()
            .set("session_timeout_min_ms", 500)
            .set("session_timeout_max_ms", 800),
    );
    for (asked, negotiated) in [(100, 500), (600, 600), (10_000, 800)] {
        let (_, answer) = RawConnection::new_session(server.socket_address(), asked).await;
        assert_eq!(answer.timeout_ms, negotiated, "asked {asked} ms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_44_byte_handshake_gets_a_36_byte_answer() {
    let server = Server::start();
    let request = ConnectRequest {
        timeout_ms: 10_000,
        password: Bytes::from_static(&[0; 16]),
        read_only: None,
        ..ConnectRequest::default()
    };
    let body = request.to_bytes();
    assert_eq!(body.len(), 44);
    let mut raw = RawConnection::open(server.socket_address()).await;
    raw.send_frame(&body).await.expect("send the handshake");
    let answer = raw.read_frame().await.expect("an answer");
    // protocolVersion, timeOut, sessionId, passwd (4 + 16): no readOnly byte.
    assert_eq!(answer.len(), 36, "{answer:?}");
    let answer = arbor_proto::ConnectResponse::from_slice(&answer).expect("decodes");
    assert_ne!(answer.session_id, 0);
    assert_eq!(answer.read_only, None);
    raw.call_ok(&exists_root()).await;
}
