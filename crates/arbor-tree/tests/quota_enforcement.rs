//! Hard quotas enforced in apply (`zookeeper.enforceQuota`, ZooKeeper 3.9's
//! `ZooKeeperServer.checkQuota`): a create or setData below a quota'd path that passes a
//! hard limit fails with QuotaExceeded on every replica alike; soft limits never fail a write
//! and are reported for the server's log.

mod common;

use arbor_proto::{ErrorCode, MultiOp, Response, SetDataRequest};
use arbor_tree::{QuotaKind, TreeConfig};
use common::Harness;

fn enforcing() -> Harness {
    Harness::with_config(TreeConfig {
        quota_enforced: true,
        ..TreeConfig::default()
    })
}

/// What `setquota` writes: limits, then zero stats the tree recomputes.
fn set_quota(h: &mut Harness, path: &str, limits: &str) {
    let quota = format!("/zookeeper/quota{path}");
    h.create(&quota, b"").unwrap();
    h.create(&format!("{quota}/zookeeper_limits"), limits.as_bytes())
        .unwrap();
    h.create(&format!("{quota}/zookeeper_stats"), b"count=0,bytes=0")
        .unwrap();
}

#[test]
fn hard_count_limit_refuses_the_create_that_would_pass_it() {
    let mut h = enforcing();
    h.create("/app", b"").unwrap();
    set_quota(
        &mut h,
        "/app",
        "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3",
    );
    h.create("/app/a", b"").unwrap();
    h.create("/app/b", b"").unwrap();
    assert_eq!(h.create("/app/c", b""), Err(ErrorCode::QuotaExceeded));
    // Nothing changed: the node is absent and the stats still say 3.
    assert!(h.tree.exists("/app/c").is_err());
    // Outside the subtree, and after a delete, creates go through again.
    h.create("/other", b"").unwrap();
    h.delete("/app/b", -1).unwrap();
    h.create("/app/c", b"").unwrap();
    // A multi with a create past the limit fails whole.
    let applied = h.multi(vec![
        MultiOp::SetData(SetDataRequest {
            path: "/app".into(),
            data: Some(b"x".to_vec().into()),
            version: -1,
        }),
        MultiOp::Create(common::create_request("/app/d", b"", 0)),
    ]);
    let Ok(Response::Multi(multi)) = applied.result else {
        panic!("{:?}", applied.result)
    };
    assert_eq!(
        multi.results[1],
        arbor_proto::OpResult::error(ErrorCode::QuotaExceeded)
    );
    assert_eq!(
        h.tree
            .get_data("/app", &[])
            .unwrap()
            .0
            .unwrap_or_default()
            .len(),
        0
    );
    h.tree.assert_invariants();
}

#[test]
fn hard_byte_limit_counts_the_growth_of_set_data() {
    let mut h = enforcing();
    h.create("/app", b"12345").unwrap();
    set_quota(
        &mut h,
        "/app",
        "count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=-1",
    );
    h.create("/app/a", b"123").unwrap(); // 8 bytes
    assert_eq!(h.create("/app/b", b"123"), Err(ErrorCode::QuotaExceeded));
    assert_eq!(
        h.set_data("/app/a", b"1234567", -1).map(|_| ()),
        Err(ErrorCode::QuotaExceeded)
    );
    h.set_data("/app/a", b"12345", -1).unwrap(); // exactly 10
    // Shrinking is always allowed.
    h.set_data("/app", b"", -1).unwrap();
    h.create("/app/b", b"12345").unwrap();
}

#[test]
fn without_enforcement_hard_limits_are_only_accounting() {
    let mut h = Harness::new();
    h.create("/app", b"").unwrap();
    set_quota(
        &mut h,
        "/app",
        "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=1",
    );
    h.create("/app/a", b"").unwrap();
    h.create("/app/b", b"").unwrap();
}

#[test]
fn soft_limits_never_fail_and_are_reported() {
    let mut h = enforcing();
    h.create("/app", b"").unwrap();
    set_quota(
        &mut h,
        "/app",
        "count=2,bytes=4=;byteHardLimit=-1;countHardLimit=-1",
    );
    assert_eq!(h.tree.quota_soft_excess("/app"), None);
    h.create("/app/a", b"").unwrap();
    h.create("/app/b", b"").unwrap();
    let excess = h.tree.quota_soft_excess("/app/b").unwrap();
    assert_eq!(
        (
            excess.quota_path.as_str(),
            excess.kind,
            excess.current,
            excess.limit
        ),
        ("/app", QuotaKind::Count, 3, 2)
    );
    assert_eq!(h.tree.quota_soft_excess("/elsewhere"), None);
}

#[test]
fn a_hard_limit_overrides_the_soft_one_of_its_kind() {
    let mut h = enforcing();
    h.create("/app", b"").unwrap();
    // Soft 1, hard 3: the soft one is neither enforced nor reported (ZooKeeper compares the
    // hard limit only when one is set).
    set_quota(
        &mut h,
        "/app",
        "count=1,bytes=-1=;byteHardLimit=-1;countHardLimit=3",
    );
    h.create("/app/a", b"").unwrap();
    assert_eq!(h.tree.quota_soft_excess("/app/a"), None);
    h.create("/app/b", b"").unwrap();
    assert_eq!(h.create("/app/c", b""), Err(ErrorCode::QuotaExceeded));
}
