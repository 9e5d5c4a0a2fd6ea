//! TLS on the secure client port: PEM key and trust stores, client certificates required
//! (`ssl.clientAuth=need`, ZooKeeper's default) and checked against the trust store, the
//! certificate's subject as the `x509:` identity (whoAmI, ACLs), and key/trust store reload
//! without a restart.

mod support;

use std::path::Path;

use arbor_proto::{Acl, CreateRequest, GetDataRequest, Id, Request};
use arbor_server::{ClientAuth, ServerConfig, StoreLocation, TlsConfig};
use bytes::Bytes;
use support::{Pki, TestServer, open_tls, session, tls_client, who_am_i, within};

/// A server whose secure port uses `server-bundle.pem` and trusts `clients-ca.pem`.
fn secure(config: &mut ServerConfig, pki: &Pki, client_auth: ClientAuth) {
    config.secure_client_address = Some("127.0.0.1:0".parse().expect("an address"));
    config.tls = TlsConfig {
        key_store: Some(StoreLocation::new(pki.path("server-bundle.pem"))),
        trust_store: Some(StoreLocation::new(pki.path("clients-ca.pem"))),
        client_auth,
    };
}

/// A PKI with a CA for servers and one for clients, a server certificate for localhost and
/// a client certificate `CN=client,O=arbor`.
fn pki(dir: &Path) -> Pki {
    let pki = Pki::new(dir, "servers");
    Pki::new(dir, "clients");
    pki.issue("servers", "server", "/CN=localhost", true);
    pki.issue("clients", "client", "/O=arbor/CN=client", false);
    pki
}

fn create(path: &str, acl: Vec<Acl>) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"v")),
        acl,
        flags: 0,
    })
}

fn get(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_subject_is_the_x509_identity() {
    let certs = tempfile::tempdir().expect("a directory");
    let pki = pki(certs.path());
    let server = TestServer::start(|config, _| secure(config, &pki, ClientAuth::Need)).await;
    let connector = tls_client(&pki, "servers", Some("client"));
    let mut tls = open_tls(&connector, server.secure_address())
        .await
        .expect("the TLS handshake succeeds with a trusted client certificate");
    assert!(tls.handshake().await, "a session over TLS");
    let identities = who_am_i(&mut tls).await;
    assert!(
        identities.contains(&"x509:CN=client,O=arbor".to_owned()),
        "whoAmI over TLS: {identities:?}"
    );

    // The subject works in ACLs: only the certificate's holder reads the node.
    let only_client = vec![Acl {
        perms: arbor_proto::perms::ALL,
        id: Id::new("x509", "CN=client,O=arbor"),
    }];
    assert_eq!(tls.code(&create("/x509-only", only_client)).await, 0);
    assert_eq!(tls.code(&get("/x509-only")).await, 0);
    let mut plain = session(server.address()).await;
    assert_eq!(
        plain.code(&get("/x509-only")).await,
        arbor_proto::ErrorCode::NoAuth.code(),
        "a plain client has no x509 identity"
    );
    let plain_identities = who_am_i(&mut plain).await;
    assert!(
        plain_identities.iter().all(|id| !id.starts_with("x509:")),
        "{plain_identities:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_trusted_certificate_is_refused_when_required() {
    let certs = tempfile::tempdir().expect("a directory");
    let pki = pki(certs.path());
    // A certificate from a CA the server does not trust.
    Pki::new(certs.path(), "rogue");
    pki.issue("rogue", "rogue-client", "/CN=rogue", false);
    let server = TestServer::start(|config, _| secure(config, &pki, ClientAuth::Need)).await;

    for client in [None, Some("rogue-client")] {
        let connector = tls_client(&pki, "servers", client);
        // TLS 1.3 finishes the client's side of the handshake before the server checks the
        // certificate: the refusal shows as a closed connection at the first exchange.
        if let Some(mut conn) = open_tls(&connector, server.secure_address()).await {
            assert!(
                !conn.handshake().await,
                "client {client:?} got a session without a trusted certificate"
            );
        }
    }
    // A trusted client still gets in, and plain clients are unaffected.
    let connector = tls_client(&pki, "servers", Some("client"));
    let mut good = open_tls(&connector, server.secure_address())
        .await
        .expect("TLS handshake");
    assert!(good.handshake().await);
    let mut plain = session(server.address()).await;
    assert_eq!(plain.code(&get("/")).await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_auth_none_admits_clients_without_certificates() {
    let certs = tempfile::tempdir().expect("a directory");
    let pki = pki(certs.path());
    let server = TestServer::start(|config, _| secure(config, &pki, ClientAuth::None)).await;
    let connector = tls_client(&pki, "servers", None);
    let mut conn = open_tls(&connector, server.secure_address())
        .await
        .expect("TLS handshake");
    assert!(conn.handshake().await);
    let identities = who_am_i(&mut conn).await;
    assert!(
        identities.iter().all(|id| !id.starts_with("x509:")),
        "{identities:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_without_restart() {
    let certs = tempfile::tempdir().expect("a directory");
    let pki = pki(certs.path());
    let server = TestServer::start(|config, _| secure(config, &pki, ClientAuth::Need)).await;
    let old_connector = tls_client(&pki, "servers", Some("client"));
    let mut before = open_tls(&old_connector, server.secure_address())
        .await
        .expect("TLS handshake before the reload");
    assert!(before.handshake().await);

    // A new server CA and certificate replace the key store in place; the trust store now
    // trusts a new client CA only.
    Pki::new(certs.path(), "servers2");
    pki.issue("servers2", "server2", "/CN=localhost", true);
    Pki::new(certs.path(), "clients2");
    pki.issue("clients2", "client2", "/CN=client2", false);
    std::fs::copy(
        pki.path("server2-bundle.pem"),
        pki.path("server-bundle.pem"),
    )
    .expect("copy");
    std::fs::copy(pki.path("clients2-ca.pem"), pki.path("clients-ca.pem")).expect("copy");

    // The next connection sees the new certificate: a client trusting only the new server CA
    // with the new client certificate gets in, the old pair does not.
    let new_connector = tls_client(&pki, "servers2", Some("client2"));
    let mut after = open_tls(&new_connector, server.secure_address())
        .await
        .expect("TLS handshake against the reloaded certificate");
    assert!(
        after.handshake().await,
        "a session with the new certificates"
    );
    let identities = who_am_i(&mut after).await;
    assert!(
        identities.contains(&"x509:CN=client2".to_owned()),
        "{identities:?}"
    );
    let refused = match open_tls(&old_connector, server.secure_address()).await {
        None => true,
        Some(mut conn) => !conn.handshake().await,
    };
    assert!(
        refused,
        "the old server CA / client certificate still work after the reload"
    );

    // The connection made before the reload keeps working.
    assert_eq!(within("a read", before.code(&get("/"))).await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_does_not_load_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().expect("a directory");
    let jks = dir.path().join("keystore.jks");
    std::fs::write(&jks, b"not a key store").expect("write");
    let config = ServerConfig {
        client_address: "127.0.0.1:0".parse().expect("an address"),
        data_dir: dir.path().join("data"),
        secure_client_address: Some("127.0.0.1:0".parse().expect("an address")),
        tls: TlsConfig {
            key_store: Some(StoreLocation {
                location: jks.clone(),
                password: Some("apassword".into()),
                store_type: None,
            }),
            trust_store: None,
            client_auth: ClientAuth::None,
        },
        ..ServerConfig::default()
    };
    let error = match arbor_server::Server::start(config).await {
        Ok(server) => {
            let _ = server.shutdown().await;
            panic!("a server started with a broken key store");
        }
        Err(error) => error.to_string(),
    };
    assert!(error.contains("keystore.jks"), "{error}");
}
