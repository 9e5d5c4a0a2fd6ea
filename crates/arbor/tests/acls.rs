//! ACLs and authentication on a real `arbor server`: getACL/setACL, the digest, world, ip and
//! auth schemes, a super digest given as a system property, an unknown scheme, whoAmI and the
//! auth packet's special xid. Driven by `zookeeper-client` and, for exact codes, raw frames.
//!
//! Expected behaviour is ZooKeeper 3.9.4's (`PrepRequestProcessor.fixupACL`,
//! `FinalRequestProcessor` getACL, `DigestAuthenticationProvider`, `AuthUtil.getClientInfos`).

mod support;

use arbor_proto::{AuthPacket, ErrorCode, Request, Response};
use bytes::Bytes;
use support::raw::RawConnection;
use support::{
    Server, ServerOptions, connect, connect_with, connector, digest_id, fails, ok, persistent,
    within,
};
use zookeeper_client as zk;

/// `super:test`, as kazoo's suite and ZooKeeper's docs use it.
const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_set_acl() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    let (created_stat, _) = ok("create /acl", client.create("/acl", b"d", &persistent())).await;
    let (acl, stat) = ok("getACL", client.get_acl("/acl")).await;
    assert_eq!(acl, zk::Acls::anyone_all().to_vec());
    assert_eq!(stat, created_stat);

    let read_only = [zk::Acl::new(
        zk::Permission::READ | zk::Permission::ADMIN,
        zk::AuthId::anyone(),
    )];
    assert_eq!(
        fails(
            "stale aversion",
            client.set_acl("/acl", &read_only, Some(3))
        )
        .await,
        zk::Error::BadVersion
    );
    let stat = ok("setACL", client.set_acl("/acl", &read_only, Some(0))).await;
    // setACL bumps aversion and nothing else: not mzxid, not mtime (DataTree.setACL).
    assert_eq!(
        stat,
        zk::Stat {
            aversion: 1,
            ..created_stat
        }
    );
    let (acl, read) = ok("getACL", client.get_acl("/acl")).await;
    assert_eq!((acl.as_slice(), read), (&read_only[..], stat));
    assert_eq!(
        fails("write without WRITE", client.set_data("/acl", b"x", None)).await,
        zk::Error::NoAuth
    );
    let none = [zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())];
    ok("setACL -1", client.set_acl("/acl", &none, None)).await;
    assert_eq!(
        fails(
            "setACL without ADMIN",
            client.set_acl("/acl", &read_only, None)
        )
        .await,
        zk::Error::NoAuth
    );
    assert_eq!(
        fails("getACL missing", client.get_acl("/missing")).await,
        zk::Error::NoNode
    );
    assert_eq!(
        fails("setACL missing", client.set_acl("/missing", &none, None)).await,
        zk::Error::NoNode
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_world_ip_and_auth_acls_are_enforced() {
    let server = Server::start();
    let alice = connect_with(
        connector().with_auth("digest", b"alice:secret"),
        &server.address(),
    )
    .await;
    let anonymous = connect(&server.address()).await;
    let bob = connect(&server.address()).await;
    ok("bob auth", bob.auth("digest", b"bob:pw")).await;

    let alice_id = digest_id("alice", "secret");
    let alice_only = [zk::Acl::new(
        zk::Permission::ALL,
        zk::AuthId::new("digest", &alice_id),
    )];
    ok(
        "create /private",
        alice.create(
            "/private",
            b"p",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&alice_only)),
        ),
    )
    .await;
    for who in [&anonymous, &bob] {
        assert_eq!(
            fails("get", who.get_data("/private")).await,
            zk::Error::NoAuth
        );
        assert_eq!(
            fails("exists", who.check_stat("/private")).await,
            zk::Error::NoAuth
        );
        assert_eq!(
            fails("set", who.set_data("/private", b"x", None)).await,
            zk::Error::NoAuth
        );
        assert_eq!(
            fails("ls", who.list_children("/private")).await,
            zk::Error::NoAuth
        );
        assert_eq!(
            fails("create child", who.create("/private/c", b"", &persistent())).await,
            zk::Error::NoAuth
        );
        assert_eq!(
            fails("getACL", who.get_acl("/private")).await,
            zk::Error::NoAuth
        );
    }
    ok("alice get", alice.get_data("/private")).await;
    ok(
        "alice create child",
        alice.create("/private/c", b"", &persistent()),
    )
    .await;
    // Deleting a child needs DELETE on the parent.
    assert_eq!(
        fails(
            "anonymous delete child",
            anonymous.delete("/private/c", None)
        )
        .await,
        zk::Error::NoAuth
    );
    ok("alice delete child", alice.delete("/private/c", None)).await;

    // A reader without ADMIN sees digest ids with the hash masked (FinalRequestProcessor
    // getACL).
    let shared = [
        zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("digest", &alice_id)),
        zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()),
    ];
    ok(
        "create /shared",
        alice.create(
            "/shared",
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&shared)),
        ),
    )
    .await;
    let (acl, _) = ok("anonymous getACL", anonymous.get_acl("/shared")).await;
    assert_eq!(
        acl,
        [
            zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("digest", "alice:x")),
            zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()),
        ]
    );
    let (acl, _) = ok("alice getACL", alice.get_acl("/shared")).await;
    assert_eq!(acl, shared);

    // world:anyone READ only.
    ok(
        "create /readable",
        alice.create(
            "/readable",
            b"r",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_read()),
        ),
    )
    .await;
    ok("read", anonymous.get_data("/readable")).await;
    assert_eq!(
        fails("write", anonymous.set_data("/readable", b"x", None)).await,
        zk::Error::NoAuth
    );

    // ip: this client is 127.0.0.1.
    for (path, id, allowed) in [
        ("/ip-exact", "127.0.0.1", true),
        ("/ip-cidr", "127.0.0.0/8", true),
        ("/ip-other", "10.11.12.13", false),
        ("/ip-other-net", "10.0.0.0/8", false),
    ] {
        let acl = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("ip", id))];
        ok(
            "create ip node",
            alice.create(
                path,
                b"",
                &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl)),
            ),
        )
        .await;
        let result = within("get ip node", anonymous.get_data(path)).await;
        assert_eq!(result.is_ok(), allowed, "{path} with ip:{id}: {result:?}");
        if !allowed {
            assert_eq!(result.err(), Some(zk::Error::NoAuth));
        }
    }

    // auth:: means "whoever I am authenticated as"; with no identity it is invalid.
    let creator = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    assert_eq!(
        fails(
            "auth acl without auth",
            anonymous.create("/mine", b"", &creator)
        )
        .await,
        zk::Error::InvalidAcl
    );
    ok("auth acl", alice.create("/mine", b"", &creator)).await;
    let (acl, _) = ok("getACL /mine", alice.get_acl("/mine")).await;
    assert_eq!(acl, alice_only);
    assert_eq!(
        fails("bob reads alice's", bob.get_data("/mine")).await,
        zk::Error::NoAuth
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_auth_scheme_fails_the_session() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    let mut state = client.state_watcher();
    assert_eq!(
        fails("auth nosuch", client.auth("nosuchscheme", b"x")).await,
        zk::Error::AuthFailed
    );
    support::wait_for_state(&mut state, zk::SessionState::AuthFailed).await;

    // Raw: the reply carries AuthFailed, then the server closes the connection.
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    let auth = Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "nosuchscheme".into(),
        auth: Bytes::from_static(b"x"),
    });
    let reply = raw.call(&auth).await;
    assert_eq!(reply.err(), ErrorCode::AuthFailed.code());
    raw.expect_closed_without_reply().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_digest_from_a_system_property_grants_everything() {
    assert_eq!(digest_id("super", "test"), SUPER_DIGEST);
    let server = Server::start_with(ServerOptions::default().property(
        "zookeeper.DigestAuthenticationProvider.superDigest",
        SUPER_DIGEST,
    ));
    let alice = connect_with(
        connector().with_auth("digest", b"alice:secret"),
        &server.address(),
    )
    .await;
    // Alice may read and create children, nothing else; super may do everything.
    let locked = [zk::Acl::new(
        zk::Permission::READ | zk::Permission::CREATE,
        zk::AuthId::new("digest", &digest_id("alice", "secret")),
    )];
    ok(
        "create /locked",
        alice.create(
            "/locked",
            b"s",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&locked)),
        ),
    )
    .await;
    ok(
        "create /locked/c",
        alice.create("/locked/c", b"", &persistent()),
    )
    .await;

    assert_eq!(
        fails("alice writes", alice.set_data("/locked", b"t", None)).await,
        zk::Error::NoAuth
    );
    let root = connect_with(
        connector().with_auth("digest", b"super:test"),
        &server.address(),
    )
    .await;
    let (data, _) = ok("super reads", root.get_data("/locked")).await;
    assert_eq!(data, b"s");
    ok("super writes", root.set_data("/locked", b"t", None)).await;
    ok("super deletes a child", root.delete("/locked/c", None)).await;
    ok(
        "super sets the ACL",
        root.set_acl("/locked", zk::Acls::anyone_all().as_ref(), None),
    )
    .await;
    ok("super deletes", root.delete("/locked", None)).await;

    let mut users = ok("whoAmI", root.list_auth_users()).await;
    users.sort_by(|a, b| (a.scheme(), a.user()).cmp(&(b.scheme(), b.user())));
    assert_eq!(
        users,
        [
            zk::AuthUser::new("digest", "super"),
            zk::AuthUser::new("ip", "127.0.0.1"),
            zk::AuthUser::new("super", ""),
        ]
    );

    // A wrong super password is just another digest user.
    let wrong = connect_with(
        connector().with_auth("digest", b"super:wrong"),
        &server.address(),
    )
    .await;
    ok(
        "create /locked2",
        alice.create(
            "/locked2",
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&locked)),
        ),
    )
    .await;
    assert_eq!(
        fails("wrong super", wrong.get_data("/locked2")).await,
        zk::Error::NoAuth
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_am_i_lists_the_connection_identities() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    let users = ok("whoAmI", client.list_auth_users()).await;
    assert_eq!(users, [zk::AuthUser::new("ip", "127.0.0.1")]);
    ok("auth", client.auth("digest", b"alice:secret")).await;
    // The user of a digest id is the part before ':' (DigestAuthenticationProvider
    // .getUserName, via AuthUtil.getClientInfos).
    let users = ok("whoAmI", client.list_auth_users()).await;
    assert_eq!(
        users,
        [
            zk::AuthUser::new("ip", "127.0.0.1"),
            zk::AuthUser::new("digest", "alice"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_packets_use_their_special_xid() {
    let server = Server::start();
    let (mut raw, _) = RawConnection::new_session(server.socket_address(), 10_000).await;
    // The Java client sends auth with xid −4 and matches the reply by it.
    raw.send_with_xid(
        arbor_proto::XID_AUTH,
        &Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: Bytes::from_static(b"carol:pw"),
        }),
    )
    .await;
    let reply = raw.reply_to(arbor_proto::XID_AUTH).await;
    assert_eq!(reply.err(), 0);
    let Response::WhoAmI(who) = raw.call_ok(&Request::WhoAmI).await else {
        panic!("whoAmI answered something else");
    };
    let users: Vec<(&str, &str)> = who
        .client_info
        .iter()
        .map(|info| (info.auth_scheme.as_str(), info.user.as_str()))
        .collect();
    assert_eq!(users, [("ip", "127.0.0.1"), ("digest", "carol")]);
}
