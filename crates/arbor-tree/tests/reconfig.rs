//! `/zookeeper/config` and `reconfig`: membership as replicated state.

mod common;

use arbor_proto::{ErrorCode, Id, ReconfigRequest, Response};
use arbor_tree::{ClusterConfig, Command, TreeConfig, WriteRequest, digest};
use common::Harness;

fn reconfig(joining: &str, leaving: &str, version: i64) -> WriteRequest {
    WriteRequest::Reconfig(ReconfigRequest {
        joining_servers: joining.into(),
        leaving_servers: leaving.into(),
        new_members: String::new(),
        cur_config_id: version,
    })
}

fn cluster() -> Harness {
    let mut harness = Harness::with_config(TreeConfig {
        reconfig_enabled: true,
        super_digest: Some(digest("super:test")),
        ..TreeConfig::default()
    });
    let applied = harness.run(Command::SetClusterConfig {
        members: "server.1=127.0.0.1:2888:3888:participant\nserver.2=127.0.0.1:2889:3889".into(),
    });
    assert!(applied.result.is_ok(), "{:?}", applied.result);
    harness
}

fn config(harness: &Harness) -> ClusterConfig {
    let (data, _) = harness.tree.get_data("/zookeeper/config", &[]).unwrap();
    ClusterConfig::parse(std::str::from_utf8(&data.unwrap()).unwrap()).unwrap()
}

#[test]
fn set_cluster_config_records_members_with_its_zxid_as_version() {
    let harness = cluster();
    let config = config(&harness);
    assert_eq!(config.members.len(), 2);
    assert_eq!(config.version, harness.tree.last_applied_zxid().0);
}

#[test]
fn reconfig_checks_input_and_version_before_the_acl() {
    let mut harness = cluster();
    assert_eq!(
        harness.request(reconfig("some thing", "", -1)).result.err(),
        Some(ErrorCode::BadArguments)
    );
    assert_eq!(
        harness.request(reconfig("", "", 12345)).result.err(),
        Some(ErrorCode::BadVersion)
    );
}

#[test]
fn reconfig_needs_write_on_the_config_node() {
    let mut harness = cluster();
    let joining = "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456";
    assert_eq!(
        harness.request(reconfig(joining, "", -1)).result,
        Err(ErrorCode::NoAuth)
    );
    harness.identities.push(Id::new("super", ""));
    let Ok(Response::GetData(reply)) = harness.request(reconfig(joining, "", -1)).result else {
        panic!("reconfig as super should succeed");
    };
    let text = String::from_utf8(reply.data.unwrap().to_vec()).unwrap();
    assert!(text.contains(joining), "{text}");
    assert_eq!(config(&harness).observers().collect::<Vec<_>>(), vec![100]);
}

#[test]
fn reconfig_checks_version_and_input() {
    let mut harness = cluster();
    harness.identities.push(Id::new("super", ""));
    let version = config(&harness).version;
    let joining = "server.3=127.0.0.1:2890:3890;2183";
    assert_eq!(
        harness
            .request(reconfig(joining, "", version + 1))
            .result
            .err(),
        Some(ErrorCode::BadVersion)
    );
    assert_eq!(
        harness.request(reconfig("some thing", "", -1)).result.err(),
        Some(ErrorCode::BadArguments)
    );
    assert_eq!(
        harness.request(reconfig("", "1", -1)).result.err(),
        Some(ErrorCode::BadArguments)
    );
    assert!(
        harness
            .request(reconfig(joining, "", version))
            .result
            .is_ok()
    );
    assert!(harness.request(reconfig("", "3", -1)).result.is_ok());
    assert_eq!(config(&harness).members.len(), 2);
}

#[test]
fn reconfig_is_refused_when_disabled_or_standalone() {
    let mut disabled = Harness::new();
    assert_eq!(
        disabled
            .request(reconfig("server.3=a:1:2", "", -1))
            .result
            .err(),
        Some(ErrorCode::ReconfigDisabled)
    );
    let mut standalone = Harness::with_config(TreeConfig {
        reconfig_enabled: true,
        ..TreeConfig::default()
    });
    standalone.identities.push(Id::new("super", ""));
    assert_eq!(
        standalone
            .request(reconfig("server.3=a:1:2", "", -1))
            .result
            .err(),
        Some(ErrorCode::Unimplemented)
    );
}
