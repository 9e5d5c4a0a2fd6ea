//! Limits and hostile input on a real `arbor server`: a frame over the size limit (1 MiB − 1 by
//! default, configurable), connections over the per-IP limit, malformed frames and unknown
//! opcodes. Each is answered by closing that one connection with a logged reason; the server
//! keeps serving everyone else.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use arbor_proto::{
    ErrorCode, ExistsRequest, FRAME_SIZE_BYTES_MAX_DEFAULT, Jute, Request, RequestHeader,
    SetDataRequest,
};
use bytes::Bytes;
use support::raw::{Message, RawConnection, data, new_session_request};
use support::{Server, ServerOptions, connect, eventually, fails, ok, persistent};
use zookeeper_client as zk;

fn exists_root() -> Request {
    Request::Exists(ExistsRequest {
        path: "/".into(),
        watch: false,
    })
}

/// The length of a setData request payload on `/big` with no data.
fn set_data_overhead() -> usize {
    let mut payload = Vec::new();
    Request::SetData(SetDataRequest {
        path: "/big".into(),
        data: data(Bytes::new()),
        version: -1,
    })
    .encode_with_header(7, &mut payload);
    payload.len()
}

/// The payload of a setData request on `/big` whose whole frame payload is `size` bytes.
fn set_data_payload(size: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    Request::SetData(SetDataRequest {
        path: "/big".into(),
        data: data(vec![b'x'; size - set_data_overhead()]),
        version: -1,
    })
    .encode_with_header(7, &mut payload);
    assert_eq!(payload.len(), size);
    payload
}

/// Checks that the server is alive and serving: a fresh session works, and so does `others`.
async fn still_serving(server: &mut Server, others: &mut [&mut RawConnection]) {
    assert!(server.is_running(), "the server exited:\n{}", server.log());
    for connection in others.iter_mut() {
        connection.call_ok(&exists_root()).await;
    }
    let (mut fresh, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    fresh.call_ok(&exists_root()).await;
}

/// Waits until the server's log mentions `reason`.
async fn logged(server: &Server, reason: &str) {
    eventually(&format!("{reason:?} in the server log"), || {
        server.log().contains(reason)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_default_limit_closes_only_its_connection() {
    let mut server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /big", client.create("/big", b"", &persistent())).await;
    let (mut bystander, _) = RawConnection::new_session(server.socket_address(), 10_000).await;

    // Exactly the limit (jute.maxbuffer = 0xfffff) is accepted.
    let limit = FRAME_SIZE_BYTES_MAX_DEFAULT as usize;
    assert_eq!(limit, 1_048_575);
    let (mut at_limit, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    at_limit
        .send_frame(&set_data_payload(limit))
        .await
        .expect("send");
    let Some(Message::Reply(reply)) = at_limit.next_message().await else {
        panic!("no reply to a frame of exactly the limit");
    };
    assert_eq!(reply.err(), 0, "{reply:?}");

    // One byte more is refused by closing the connection.
    let (mut over, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let _ = over.send_frame(&set_data_payload(limit + 1)).await;
    over.expect_closed_without_reply().await;

    // A 2 MiB frame likewise (the server may close before it has read it all).
    let (mut huge, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let _ = huge.send_frame(&set_data_payload(2 << 20)).await;
    huge.expect_closed_without_reply().await;

    logged(&server, "frame over the size limit").await;
    still_serving(&mut server, &mut [&mut bystander, &mut at_limit]).await;
    let (data, _) = ok("get /big", client.get_data("/big")).await;
    assert_eq!(
        data.len(),
        limit - set_data_overhead(),
        "the write at the limit landed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frame_limit_is_configurable() {
    let mut server = Server::start_with(ServerOptions::default().set("frame_size_bytes_max", 4096));
    let client = connect(&server.address()).await;
    ok("create /big", client.create("/big", b"", &persistent())).await;
    let (mut bystander, _) = RawConnection::new_session(server.socket_address(), 10_000).await;

    let (mut at_limit, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    at_limit
        .send_frame(&set_data_payload(4096))
        .await
        .expect("send");
    let Some(Message::Reply(reply)) = at_limit.next_message().await else {
        panic!("no reply at the configured limit");
    };
    assert_eq!(reply.err(), 0);
    let (mut over, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let _ = over.send_frame(&set_data_payload(4097)).await;
    over.expect_closed_without_reply().await;
    logged(&server, "frame over the size limit").await;

    // zookeeper-client: the oversized write fails with a lost connection; the session itself
    // reconnects and carries on.
    let mut state = client.state_watcher();
    let error = fails(
        "oversized setData",
        client.set_data("/big", &[b'y'; 5000], None),
    )
    .await;
    assert_eq!(error, zk::Error::ConnectionLoss);
    support::wait_for_state(&mut state, zk::SessionState::SyncConnected).await;
    ok("small write after", client.set_data("/big", b"small", None)).await;
    still_serving(&mut server, &mut [&mut bystander, &mut at_limit]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jute_maxbuffer_property_sets_the_frame_limit() {
    let mut server =
        Server::start_with(ServerOptions::default().property("jute.maxbuffer", "2048"));
    let (mut over, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let _ = over.send_frame(&set_data_payload(2049)).await;
    over.expect_closed_without_reply().await;
    still_serving(&mut server, &mut []).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_ip_limit_are_closed() {
    let server = Server::start_with(ServerOptions::default().set("connections_per_ip_max", 3));
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            RawConnection::new_session(server.socket_address(), 10_000)
                .await
                .0,
        );
    }
    // The fourth from 127.0.0.1 is closed without an answer.
    let mut fourth = RawConnection::open(server.socket_address()).await;
    let answer = fourth.handshake(&new_session_request(10_000)).await;
    assert_eq!(
        answer, None,
        "a connection over the per-IP limit was served"
    );
    logged(&server, "too many connections from this address").await;

    // Another address is not affected, nor are the connections already there.
    let other_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut other = RawConnection::open_from(other_ip, server.socket_address()).await;
    let answer = other
        .handshake(&new_session_request(10_000))
        .await
        .expect("127.0.0.2 is served");
    assert_ne!(answer.session_id, 0);
    other.call_ok(&exists_root()).await;
    let mut others: Vec<&mut RawConnection> = held.iter_mut().collect();
    for connection in others.iter_mut() {
        connection.call_ok(&exists_root()).await;
    }

    // A slot freed is a slot to use again (the server notices the close asynchronously).
    held.pop();
    let address = server.socket_address();
    let mut admitted = None;
    support::within("a freed connection slot", async {
        loop {
            let mut candidate = RawConnection::open(address).await;
            let answer = candidate.handshake(&new_session_request(10_000)).await;
            if answer.is_some() {
                admitted = Some(candidate);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let mut admitted = admitted.expect("admitted");
    admitted.call_ok(&exists_root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_total_limit_are_closed() {
    let server = Server::start_with(ServerOptions::default().set("connections_max", 2));
    let (mut first, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let other_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut second = RawConnection::open_from(other_ip, server.socket_address()).await;
    let request = new_session_request(10_000);
    assert!(second.handshake(&request).await.is_some());
    // The third, whatever its address, is closed without an answer.
    let third_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let mut third = RawConnection::open_from(third_ip, server.socket_address()).await;
    assert_eq!(third.handshake(&request).await, None);
    logged(&server, "too many connections; closing").await;
    first.call_ok(&exists_root()).await;
    second.call_ok(&exists_root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_the_connection_and_the_server_keeps_serving() {
    let mut server = Server::start();
    let (mut bystander, _) = RawConnection::new_session(server.socket_address(), 10_000).await;

    // A handshake that is not one.
    let mut garbage = RawConnection::open(server.socket_address()).await;
    garbage.send_frame(&[1, 2, 3]).await.expect("send");
    garbage.expect_closed_without_reply().await;

    // A negative length prefix.
    let mut negative = RawConnection::open(server.socket_address()).await;
    negative
        .send_bytes(&(-5i32).to_be_bytes())
        .await
        .expect("send");
    negative.expect_closed_without_reply().await;

    // After the handshake: a truncated header, a truncated body, a string whose length runs
    // past the frame, a negative string length other than −1, a multi cut short.
    let header = |op: i32| {
        let mut out = Vec::new();
        RequestHeader {
            xid: 1,
            op_code: op,
        }
        .encode(&mut out);
        out
    };
    let mut truncated_body = header(4);
    truncated_body.extend_from_slice(&100i32.to_be_bytes());
    truncated_body.extend_from_slice(b"/abc");
    let mut negative_string = header(4);
    negative_string.extend_from_slice(&(-7i32).to_be_bytes());
    // A multi announcing a create whose body is cut short.
    let mut bad_multi = header(14);
    arbor_proto::MultiHeader {
        op_code: 1,
        done: false,
        err: -1,
    }
    .encode(&mut bad_multi);
    bad_multi.extend_from_slice(&100i32.to_be_bytes());
    bad_multi.extend_from_slice(b"/ab");
    for (what, payload) in [
        ("truncated header", vec![0, 0]),
        ("truncated body", truncated_body),
        ("negative string length", negative_string),
        ("malformed multi", bad_multi),
        ("empty frame", Vec::new()),
    ] {
        let (mut bad, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
        bad.send_frame(&payload).await.expect("send");
        let before = bad.closed().await;
        assert!(
            before.is_empty(),
            "{what}: the server answered {before:?} instead of closing"
        );
    }
    logged(&server, "malformed request").await;
    still_serving(&mut server, &mut [&mut bystander]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcodes_close_the_connection_and_the_server_keeps_serving() {
    let mut server = Server::start();
    let (mut bystander, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    // 10 is unused; 23 and 999 are beyond the last; −10 (createSession) and 0 (notification)
    // are never sent by a client after the handshake.
    for op in [10, 23, 999, -10, 0] {
        let (mut bad, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
        let mut payload = Vec::new();
        RequestHeader {
            xid: 5,
            op_code: op,
        }
        .encode(&mut payload);
        payload.extend_from_slice(&[0; 8]);
        bad.send_frame(&payload).await.expect("send");
        let before = bad.closed().await;
        // ZooKeeper's UnimplementedRequestProcessor answers Unimplemented, then closes; a
        // close alone also ends the connection. Anything else is wrong.
        for message in before {
            match message {
                Message::Reply(reply) => assert_eq!(
                    (reply.header.xid, reply.err()),
                    (5, ErrorCode::Unimplemented.code()),
                    "op {op}"
                ),
                Message::Event { .. } => panic!("op {op}: an event on a fresh session"),
            }
        }
    }
    logged(&server, "bad request").await;
    still_serving(&mut server, &mut [&mut bystander]).await;
}
