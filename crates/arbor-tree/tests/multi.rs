//! `multi` (all-or-nothing, one zxid, ZooKeeper's result codes) and `multiRead`.

mod common;

use arbor_proto::{
    Acl, CheckVersionRequest, CreateTtlRequest, DeleteRequest, ErrorCode, EventType,
    GetChildrenRequest, GetDataRequest, Id, MultiOp, MultiResponse, OpResult, Response,
    SetDataRequest, perms,
};
use arbor_tree::WatchTrigger;
use common::{Harness, create_request};

fn create(path: &str, flags: i32) -> MultiOp {
    MultiOp::Create(create_request(path, b"", flags))
}

fn create2(path: &str) -> MultiOp {
    MultiOp::Create2(create_request(path, b"", 0))
}

fn delete(path: &str, version: i32) -> MultiOp {
    MultiOp::Delete(DeleteRequest {
        path: path.into(),
        version,
    })
}

fn set_data(path: &str, data: &str, version: i32) -> MultiOp {
    MultiOp::SetData(SetDataRequest {
        path: path.into(),
        data: Some(data.to_owned().into()),
        version,
    })
}

fn check(path: &str, version: i32) -> MultiOp {
    MultiOp::Check(CheckVersionRequest {
        path: path.into(),
        version,
    })
}

fn results(response: Result<Response, ErrorCode>) -> Vec<OpResult> {
    match response {
        Ok(Response::Multi(MultiResponse { results })) => results,
        other => panic!("not a multi response: {other:?}"),
    }
}

fn errors(codes: &[i32]) -> Vec<OpResult> {
    codes.iter().map(|&err| OpResult::Error { err }).collect()
}

#[test]
fn successful_multi_applies_everything_at_one_zxid() {
    let mut h = Harness::new();
    h.time_ms = 42;
    let zxid = h.next_zxid();
    let applied = h.multi(vec![
        create("/m", 0),
        create2("/m/a"),
        set_data("/m", "v", 0),
        check("/m", 1),
        delete("/m/a", 0),
        create("/m/s-", 2),
    ]);
    let results = results(applied.result);
    let stat_a = match &results[1] {
        OpResult::Create {
            path,
            stat: Some(stat),
        } if path == "/m/a" => *stat,
        other => panic!("{other:?}"),
    };
    assert_eq!((stat_a.czxid, stat_a.ctime), (zxid, 42));
    assert_eq!(
        results[0],
        OpResult::Create {
            path: "/m".into(),
            stat: None
        }
    );
    assert!(
        matches!(results[2], OpResult::SetData { stat } if stat.version == 1 && stat.mzxid == zxid)
    );
    assert_eq!(results[3], OpResult::Check);
    assert_eq!(results[4], OpResult::Delete);
    // Later ops see earlier ones: /m/a's create counted in /m's sequence.
    assert_eq!(
        results[5],
        OpResult::Create {
            path: "/m/s-0000000001".into(),
            stat: None
        }
    );
    let trigger = |path: &str, event| WatchTrigger {
        path: path.into(),
        event,
        acl: arbor_proto::Acl::open_unsafe().into(),
    };
    assert_eq!(
        applied.triggers,
        vec![
            trigger("/m", EventType::NodeCreated),
            trigger("/", EventType::NodeChildrenChanged),
            trigger("/m/a", EventType::NodeCreated),
            trigger("/m", EventType::NodeChildrenChanged),
            trigger("/m", EventType::NodeDataChanged),
            trigger("/m/a", EventType::NodeDeleted),
            trigger("/m", EventType::NodeChildrenChanged),
            trigger("/m/s-0000000001", EventType::NodeCreated),
            trigger("/m", EventType::NodeChildrenChanged),
        ]
    );
    let m = h.stat("/m");
    assert_eq!(
        (m.czxid, m.mzxid, m.pzxid, m.version),
        (zxid, zxid, zxid, 1)
    );
    assert_eq!(h.tree.last_applied_zxid().0, zxid);
}

#[test]
fn failed_multi_changes_nothing_and_reports_zookeepers_codes() {
    let mut h = Harness::new();
    h.create("/p", b"").unwrap();
    let before = h.tree.clone();
    let zxid = h.next_zxid();
    let applied = h.multi(vec![
        create("/p/s-", 2),
        create("/x", 0),
        create("/x", 0),
        set_data("/p", "never", -1),
        delete("/nothing", -1),
    ]);
    assert_eq!(results(applied.result), errors(&[0, 0, -110, -2, -2]));
    assert!(applied.triggers.is_empty());
    assert_eq!(h.tree.exists("/x"), Err(ErrorCode::NoNode));
    // Nothing but the applied zxid moved.
    assert_eq!(h.tree.last_applied_zxid().0, zxid);
    assert_eq!(h.tree.stats(), before.stats());
    assert_eq!(h.stat("/p"), before.exists("/p").unwrap());
    // The rolled-back sequential create did not consume its number.
    assert_eq!(h.create_mode("/p/s-", b"", 2).unwrap().0, "/p/s-0000000000");
}

#[test]
fn each_failing_op_reports_its_own_code() {
    let mut h = Harness::new();
    h.create("/a", b"").unwrap();
    h.create("/a/b", b"").unwrap();
    h.identities = vec![Id::new("ip", "127.0.0.1")];
    h.create_acl("/ro", Acl::read_unsafe()).unwrap();
    for (ops, expected) in [
        (vec![check("/a", 5)], vec![-103]),
        (vec![check("/a", 0), delete("/a", -1)], vec![0, -111]),
        (
            vec![set_data("/ro", "x", -1), check("/a", 0)],
            vec![-102, -2],
        ),
        (vec![create("/e", 1), create("/e/c", 0)], vec![0, -108]),
        (vec![create("/a/b/c/d", 0)], vec![-101]),
        (vec![create("bad", 0), check("/a", -1)], vec![-8, -2]),
        (
            vec![MultiOp::CreateTtl(CreateTtlRequest {
                path: "/t".into(),
                data: Default::default(),
                acl: Acl::open_unsafe(),
                flags: 5,
                ttl: 0,
            })],
            vec![-8],
        ),
        (
            vec![MultiOp::Create(arbor_proto::CreateRequest {
                acl: vec![],
                ..create_request("/z", b"", 0)
            })],
            vec![-114],
        ),
    ] {
        assert_eq!(
            results(h.multi(ops.clone()).result),
            errors(&expected),
            "{ops:?}"
        );
    }
    assert_eq!(h.tree.exists("/e"), Err(ErrorCode::NoNode));
}

#[test]
fn malformed_multis_are_rejected_whole() {
    let mut h = Harness::new();
    let read = MultiOp::GetData(GetDataRequest {
        path: "/".into(),
        watch: false,
    });
    let applied = h.multi(vec![create("/a", 0), read]);
    assert_eq!(
        (applied.result, applied.triggers),
        (Err(ErrorCode::MarshallingError), vec![])
    );
    assert_eq!(
        h.multi(vec![create("/a", 9)]).result,
        Err(ErrorCode::MarshallingError)
    );
    assert_eq!(h.tree.exists("/a"), Err(ErrorCode::NoNode));
    assert_eq!(results(h.multi(vec![]).result), vec![]);
    let mut stranger = Harness::new();
    let applied = stranger.request_as(
        common::OTHER_SESSION,
        arbor_tree::WriteRequest::Multi(vec![create("/a", 0)]),
    );
    assert_eq!(applied.result, Err(ErrorCode::SessionExpired));
}

#[test]
fn container_and_ttl_creates_in_a_multi_carry_stats() {
    let mut h = Harness::new();
    let applied = h.multi(vec![
        MultiOp::CreateContainer(create_request("/c", b"", 4)),
        MultiOp::CreateTtl(CreateTtlRequest {
            path: "/t".into(),
            data: Default::default(),
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl: 100,
        }),
        create("/c/x", 1),
    ]);
    let results = results(applied.result);
    assert!(matches!(&results[0], OpResult::Create { path, stat: Some(_) } if path == "/c"));
    assert!(matches!(&results[1], OpResult::Create { path, stat: Some(_) } if path == "/t"));
    assert_eq!(h.tree.expired_ttl_nodes(h.time_ms + 101, 10), vec!["/t"]);
    assert_eq!(h.tree.get_ephemerals(common::SESSION, "/c"), vec!["/c/x"]);
}

#[test]
fn multi_read_answers_each_op_on_its_own() {
    let mut h = Harness::new();
    h.create("/a", b"A").unwrap();
    h.create("/a/x", b"").unwrap();
    h.identities = vec![Id::new("ip", "127.0.0.1")];
    h.create_acl(
        "/secret",
        vec![Acl {
            perms: perms::ALL,
            id: Id::new("ip", "10.0.0.1"),
        }],
    )
    .unwrap();
    let ops = vec![
        MultiOp::GetChildren(GetChildrenRequest {
            path: "/a".into(),
            watch: false,
        }),
        MultiOp::GetData(GetDataRequest {
            path: "/missing".into(),
            watch: false,
        }),
        MultiOp::GetData(GetDataRequest {
            path: "/a".into(),
            watch: false,
        }),
        MultiOp::GetData(GetDataRequest {
            path: "/secret".into(),
            watch: false,
        }),
    ];
    let response = h.tree.multi_read(&ops, &h.identities).unwrap();
    let results = results(Ok(response));
    assert_eq!(
        results[0],
        OpResult::GetChildren {
            children: vec!["x".into()]
        }
    );
    assert_eq!(results[1], OpResult::Error { err: -101 });
    assert!(
        matches!(&results[2], OpResult::GetData { data, stat } if data.as_deref() == Some(&b"A"[..]) && stat.num_children == 1)
    );
    assert_eq!(results[3], OpResult::Error { err: -102 });
    assert_eq!(
        h.tree.multi_read(&[create("/b", 0)], &[]),
        Err(ErrorCode::MarshallingError)
    );
}
