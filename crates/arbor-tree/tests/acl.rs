//! ACLs checked on every operation where ZooKeeper 3.9 checks them.

mod common;

use arbor_proto::{Acl, ErrorCode, Id, perms};
use arbor_tree::{TreeConfig, authenticate, digest};
use common::Harness;

fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        id: Id::new(scheme, id),
    }
}

fn bob() -> Id {
    Id::new("digest", digest("bob:pw"))
}

fn anonymous() -> Vec<Id> {
    vec![Id::new("ip", "127.0.0.1")]
}

fn as_bob() -> Vec<Id> {
    vec![Id::new("ip", "127.0.0.1"), bob()]
}

/// `/bob` readable/writable/etc. only by bob, one permission bit per child.
fn setup() -> Harness {
    let mut h = Harness::new();
    h.identities = as_bob();
    h.create_acl("/bob", vec![acl(perms::ALL, "digest", &bob().id)])
        .unwrap();
    h
}

#[test]
fn reads_need_read_and_get_acl_needs_read_or_admin() {
    let h = setup();
    let (stranger, owner) = (anonymous(), as_bob());
    assert_eq!(h.tree.get_data("/bob", &stranger), Err(ErrorCode::NoAuth));
    assert_eq!(
        h.tree.get_children("/bob", &stranger),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        h.tree.get_all_children_number("/bob", &stranger),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(h.tree.get_acl("/bob", &stranger), Err(ErrorCode::NoAuth));
    assert_eq!(
        h.tree.exists_checked("/bob", &stranger),
        Err(ErrorCode::NoAuth)
    );
    // exists without identities is the server's own, unchecked view.
    assert!(h.tree.exists("/bob").is_ok());
    // A missing node is NoNode before any ACL question.
    assert_eq!(
        h.tree.get_data("/bob/none", &stranger),
        Err(ErrorCode::NoNode)
    );
    assert!(h.tree.get_data("/bob", &owner).is_ok());
    assert!(h.tree.get_children("/bob", &owner).is_ok());
    assert!(h.tree.exists_checked("/bob", &owner).is_ok());
    assert_eq!(
        h.tree.get_acl("/bob", &owner).unwrap().0,
        vec![acl(perms::ALL, "digest", &bob().id)]
    );
    let superuser = vec![Id::new("super", "")];
    assert!(h.tree.get_data("/bob", &superuser).is_ok());
}

#[test]
fn get_acl_without_admin_redacts_digests() {
    let mut h = setup();
    h.create_acl(
        "/mixed",
        vec![
            acl(perms::READ, "world", "anyone"),
            acl(perms::ALL, "digest", &bob().id),
        ],
    )
    .unwrap();
    let (shown, _) = h.tree.get_acl("/mixed", &anonymous()).unwrap();
    assert_eq!(
        shown,
        vec![
            acl(perms::READ, "world", "anyone"),
            acl(perms::ALL, "digest", "bob:x")
        ]
    );
    let (full, _) = h.tree.get_acl("/mixed", &as_bob()).unwrap();
    assert_eq!(full[1].id.id, bob().id);
}

#[test]
fn writes_need_their_permission() {
    let mut h = setup();
    h.create("/bob/child", b"").unwrap();
    h.identities = anonymous();
    assert_eq!(h.create("/bob/other", b""), Err(ErrorCode::NoAuth));
    assert_eq!(h.delete("/bob/child", -1), Err(ErrorCode::NoAuth));
    assert_eq!(h.set_data("/bob", b"", -1), Err(ErrorCode::NoAuth));
    assert_eq!(
        h.set_acl("/bob", Acl::open_unsafe(), -1),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(h.check("/bob", -1), Err(ErrorCode::NoAuth));
    // The child itself is open: its own ACL governs setData, the parent's governs delete.
    assert!(h.set_data("/bob/child", b"x", -1).is_ok());

    // One permission each.
    h.identities = as_bob();
    h.create_acl(
        "/perm",
        vec![
            acl(perms::CREATE, "world", "anyone"),
            acl(perms::ALL, "digest", &bob().id),
        ],
    )
    .unwrap();
    h.identities = anonymous();
    assert!(h.create("/perm/a", b"").is_ok());
    assert_eq!(h.delete("/perm/a", -1), Err(ErrorCode::NoAuth));
    assert_eq!(h.set_data("/perm", b"", -1), Err(ErrorCode::NoAuth));
    assert!(h.tree.get_data("/perm", &anonymous()).is_err());
    h.identities = vec![Id::new("super", "")];
    assert!(h.delete("/perm/a", -1).is_ok());
    assert!(h.set_acl("/bob", Acl::open_unsafe(), -1).is_ok());
}

#[test]
fn acl_errors_precede_node_errors_where_zookeeper_checks_them_first() {
    let mut h = Harness::new();
    // setACL validates the list before looking the node up.
    assert_eq!(
        h.set_acl("/missing", vec![], -1),
        Err(ErrorCode::InvalidAcl)
    );
    assert_eq!(
        h.set_acl("/missing", Acl::open_unsafe(), -1),
        Err(ErrorCode::NoNode)
    );
    h.create("/a", b"").unwrap();
    for bad in [
        vec![],
        vec![acl(perms::ALL, "auth", "")], // only an ip identity: nothing to expand to
        vec![acl(perms::ALL, "digest", "nohash")],
        vec![acl(perms::ALL, "ip", "1.2.3.4/99")],
        vec![acl(perms::ALL, "world", "everyone")],
        vec![acl(perms::ALL, "super", "")],
    ] {
        assert_eq!(
            h.set_acl("/a", bad.clone(), -1),
            Err(ErrorCode::InvalidAcl),
            "{bad:?}"
        );
        assert_eq!(
            h.create_acl("/b", bad.clone()),
            Err(ErrorCode::InvalidAcl),
            "{bad:?}"
        );
    }
}

#[test]
fn auth_scheme_expands_to_the_callers_digest() {
    let mut h = Harness::new();
    h.identities = as_bob();
    h.create_acl("/mine", vec![acl(perms::ALL, "auth", "")])
        .unwrap();
    let (stored, _) = h.tree.get_acl("/mine", &as_bob()).unwrap();
    assert_eq!(
        stored,
        vec![Acl {
            perms: perms::ALL,
            id: bob()
        }]
    );
    assert_eq!(
        h.tree.get_data("/mine", &anonymous()),
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn ip_acls_match_addresses_and_ranges() {
    let mut h = Harness::new();
    h.create_acl(
        "/lan",
        vec![
            acl(perms::READ, "ip", "10.0.0.0/8"),
            acl(perms::ALL, "ip", "127.0.0.1"),
        ],
    )
    .unwrap();
    assert!(
        h.tree
            .get_data("/lan", &[Id::new("ip", "10.9.8.7")])
            .is_ok()
    );
    assert_eq!(
        h.tree.get_data("/lan", &[Id::new("ip", "11.0.0.1")]),
        Err(ErrorCode::NoAuth)
    );
    h.identities = vec![Id::new("ip", "10.9.8.7")];
    assert_eq!(h.set_data("/lan", b"", -1), Err(ErrorCode::NoAuth));
    h.identities = vec![Id::new("ip", "::1")];
    assert_eq!(h.set_data("/lan", b"", -1), Err(ErrorCode::NoAuth));
    h.identities = anonymous();
    assert!(h.set_data("/lan", b"", -1).is_ok());
    h.create_acl("/v6", vec![acl(perms::ALL, "ip", "fd00::/8")])
        .unwrap();
    assert!(
        h.tree
            .get_data("/v6", &[Id::new("ip", "fd12:3456::1")])
            .is_ok()
    );
    assert_eq!(
        h.tree.get_data("/v6", &[Id::new("ip", "fe80::1")]),
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn super_digest_from_config_unlocks_the_config_node() {
    let config = TreeConfig {
        super_digest: Some(digest("super:test")),
        ..TreeConfig::default()
    };
    let mut h = Harness::with_config(config.clone());
    assert_eq!(
        h.set_data("/zookeeper/config", b"x", -1),
        Err(ErrorCode::NoAuth)
    );
    let mut identities = anonymous();
    identities.extend(authenticate("digest", b"super:test", &config).unwrap());
    h.identities = identities;
    assert!(h.set_data("/zookeeper/config", b"server.1=...", -1).is_ok());
    assert!(
        h.set_acl("/zookeeper/config", Acl::open_unsafe(), -1)
            .is_ok()
    );
}

#[test]
fn identical_acl_lists_are_stored_once() {
    let mut h = Harness::new();
    let before = h.tree.stats().acl_count;
    for i in 0..100 {
        h.create(&format!("/n{i}"), b"").unwrap();
    }
    assert_eq!(h.tree.stats().acl_count, before);
    h.create_acl("/r", Acl::read_unsafe()).unwrap();
    assert_eq!(h.tree.stats().acl_count, before);
    h.create_acl("/l", vec![acl(perms::READ, "ip", "10.0.0.0/8")])
        .unwrap();
    assert_eq!(h.tree.stats().acl_count, before + 1);
    h.delete("/l", -1).unwrap();
    assert_eq!(h.tree.stats().acl_count, before);
}
