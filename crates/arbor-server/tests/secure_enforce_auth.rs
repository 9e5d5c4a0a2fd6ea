//! ZooKeeper's `enforce.auth.enabled` / `enforce.auth.schemes` (and `sessionRequireClientSASLAuth`):
//! a session that has not authenticated with a required scheme gets AuthFailed for its first
//! other request, a ping included, and loses its connection; one that authenticated first is
//! served as usual.

mod support;

use arbor_proto::{AuthPacket, ErrorCode, ExistsRequest, Request};
use arbor_server::ServerConfig;
use bytes::Bytes;
use support::{TestServer, session};

fn exists(path: &str) -> Request {
    Request::Exists(ExistsRequest {
        path: path.into(),
        watch: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_the_required_authentication_fail_and_close_the_connection() {
    let server = TestServer::start(|config, _| {
        config
            .apply_property("enforce.auth.enabled", "true")
            .expect("a known key");
        config
            .apply_property("enforce.auth.schemes", "digest")
            .expect("a known key");
    })
    .await;

    let mut anonymous = session(server.address()).await;
    assert_eq!(
        ErrorCode::from_i32(anonymous.code(&Request::Ping).await),
        Some(ErrorCode::AuthFailed)
    );
    assert!(
        anonymous.closed_by_server().await,
        "the connection stays open"
    );

    let mut alice = session(server.address()).await;
    let auth = Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: Bytes::from_static(b"alice:secret"),
    });
    alice.send(&auth).await.expect("send auth");
    assert_eq!(
        ErrorCode::from_i32(alice.code(&exists("/zookeeper")).await),
        Some(ErrorCode::Ok)
    );
    server.stop().await;
}

#[test]
fn enforcement_without_a_scheme_is_refused_at_start() {
    let mut config = ServerConfig::default();
    config
        .apply_property("enforce.auth.enabled", "true")
        .expect("a known key");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let error = runtime
        .block_on(arbor_server::Server::start(config))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("enforce.auth.schemes"), "{error}");
}
