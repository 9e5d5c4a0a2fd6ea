//! SASL DIGEST-MD5 with users from a JAAS file, spoken by a client written here from RFC 2831
//! (the exchange kazoo's pure-sasl makes): the user becomes `sasl:<user>` in whoAmI and ACLs,
//! `zookeeper.superUser` also gets `super`, and a wrong password is answered AuthFailed with
//! the connection closed while other clients go on.

mod support;

use arbor_proto::{
    Acl, CreateRequest, ErrorCode, GetDataRequest, GetSaslRequest, Id, Jute, Reader, Request,
    SetSaslResponse,
};
use bytes::Bytes;
use md5::{Digest, Md5};
use support::{Conn, TestServer, session, who_am_i};
use tokio::net::TcpStream;

const REALM: &str = "zk-sasl-md5";
const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The client's DIGEST-MD5 response to `challenge` (RFC 2831 §2.1.2, qop=auth, md5-sess).
fn digest_response(challenge: &str, user: &str, password: &str) -> String {
    let nonce = challenge
        .split(',')
        .find_map(|field| field.trim().strip_prefix("nonce="))
        .map(|nonce| nonce.trim_matches('"'))
        .unwrap_or_else(|| panic!("no nonce in the challenge {challenge:?}"));
    let cnonce = "OA6MHXh6VqTrRk";
    let inner = Md5::digest(format!("{user}:{REALM}:{password}").as_bytes());
    let mut a1 = Md5::new();
    a1.update(inner);
    a1.update(format!(":{nonce}:{cnonce}").as_bytes());
    let ha1 = hex(&a1.finalize());
    let ha2 = hex(&Md5::digest(
        format!("AUTHENTICATE:{DIGEST_URI}").as_bytes(),
    ));
    let response = hex(&Md5::digest(
        format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}").as_bytes(),
    ));
    format!(
        "charset=utf-8,username=\"{user}\",realm=\"{REALM}\",nonce=\"{nonce}\",nc=00000001,\
         cnonce=\"{cnonce}\",digest-uri=\"{DIGEST_URI}\",maxbuf=65536,response={response},qop=auth"
    )
}

fn sasl(token: impl Into<Bytes>) -> Request {
    Request::Sasl(GetSaslRequest {
        token: token.into(),
    })
}

fn token_of(reply: &support::Reply) -> String {
    let response =
        SetSaslResponse::decode(&mut Reader::from_bytes(&reply.body)).expect("a SASL response");
    String::from_utf8(response.token.to_vec()).expect("a text token")
}

/// Runs the exchange; the final reply's error code.
async fn authenticate(conn: &mut Conn<TcpStream>, user: &str, password: &str) -> i32 {
    let challenge = conn.call(&sasl(Bytes::new())).await;
    assert_eq!(
        challenge.err, 0,
        "the first SASL step is answered with a challenge"
    );
    let challenge = token_of(&challenge);
    assert!(challenge.contains("realm=\"zk-sasl-md5\""), "{challenge}");
    let answer = conn
        .call(&sasl(digest_response(&challenge, user, password)))
        .await;
    if answer.err == 0 {
        let rspauth = token_of(&answer);
        assert!(rspauth.starts_with("rspauth="), "{rspauth}");
    }
    answer.err
}

async fn sasl_server() -> TestServer {
    TestServer::start(|config, dir| {
        let jaas = dir.join("jaas.conf");
        std::fs::write(
            &jaas,
            "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
             user_super=\"super_secret\"\n  user_jaasuser=\"jaas_password\";\n};\n",
        )
        .expect("write jaas.conf");
        config.sasl_jaas_file = Some(jaas);
        config.sasl_super_user = Some("super".into());
    })
    .await
}

fn get(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_user_is_the_identity_in_who_am_i_and_acls() {
    let server = sasl_server().await;
    let mut conn = session(server.address()).await;
    assert_eq!(
        authenticate(&mut conn, "jaasuser", "jaas_password").await,
        0
    );
    let identities = who_am_i(&mut conn).await;
    assert!(
        identities.contains(&"sasl:jaasuser".to_owned()),
        "{identities:?}"
    );
    let only_jaasuser = vec![Acl {
        perms: arbor_proto::perms::ALL,
        id: Id::new("sasl", "jaasuser"),
    }];
    let create = Request::Create(CreateRequest {
        path: "/sasl-only".into(),
        data: Some(Bytes::from_static(b"secret")),
        acl: only_jaasuser,
        flags: 0,
    });
    assert_eq!(conn.code(&create).await, 0);
    assert_eq!(conn.code(&get("/sasl-only")).await, 0);
    let mut anonymous = session(server.address()).await;
    assert_eq!(
        anonymous.code(&get("/sasl-only")).await,
        ErrorCode::NoAuth.code()
    );
    // zookeeper.superUser: authenticated as super, it reads what only jaasuser may.
    let mut admin = session(server.address()).await;
    assert_eq!(authenticate(&mut admin, "super", "super_secret").await, 0);
    assert_eq!(admin.code(&get("/sasl-only")).await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_sasl_password_is_auth_failed_and_closes_only_that_connection() {
    let server = sasl_server().await;
    let mut bystander = session(server.address()).await;
    let mut conn = session(server.address()).await;
    assert_eq!(
        authenticate(&mut conn, "jaasuser", "not the password").await,
        ErrorCode::AuthFailed.code()
    );
    assert!(
        conn.closed_by_server().await,
        "the connection stays open after a failed SASL exchange"
    );
    let mut unknown = session(server.address()).await;
    assert_eq!(
        authenticate(&mut unknown, "nobody", "x").await,
        ErrorCode::AuthFailed.code()
    );
    assert_eq!(bystander.code(&get("/")).await, 0);
    server.stop().await;
}
