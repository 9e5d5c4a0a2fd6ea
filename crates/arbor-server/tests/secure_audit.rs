//! The audit log (ZooKeeper's `audit.enable`): one line per client write with who (session,
//! authenticated ids, address), what (operation), where (path) and the result.

mod support;

use std::time::Duration;

use arbor_proto::{Acl, AuthPacket, CreateRequest, DeleteRequest, Request, SetDataRequest};
use bytes::Bytes;
use support::{TestServer, session, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_gets_an_audit_line_with_who_what_and_where() {
    let server = TestServer::start(|config, dir| {
        config.audit_enabled = true;
        config.audit_log_file = Some(dir.join("audit.log"));
    })
    .await;
    let audit_file = server.dir.path().join("audit.log");
    let mut client = session(server.address()).await;
    let auth = Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: Bytes::from_static(b"alice:secret"),
    });
    let xid = client.send(&auth).await.expect("send auth");
    assert!(xid > 0);
    let create = Request::Create(CreateRequest {
        path: "/audited".into(),
        data: Some(Bytes::from_static(b"v")),
        acl: Acl::open_unsafe(),
        flags: 1,
    });
    assert_eq!(client.code(&create).await, 0);
    let set = Request::SetData(SetDataRequest {
        path: "/audited".into(),
        data: Some(Bytes::from_static(b"w")),
        version: 7,
    });
    assert_eq!(
        client.code(&set).await,
        arbor_proto::ErrorCode::BadVersion.code()
    );
    let delete = Request::Delete(DeleteRequest {
        path: "/audited".into(),
        version: -1,
    });
    assert_eq!(client.code(&delete).await, 0);
    // Reads are not audited.
    assert_eq!(client.code(&Request::WhoAmI).await, 0);

    let session_hex = format!("session=0x{:x}", client.session_id);
    let lines = within("three audit lines", async {
        loop {
            let text = std::fs::read_to_string(&audit_file).unwrap_or_default();
            let lines: Vec<String> = text
                .lines()
                .filter(|line| line.contains(&session_hex) && line.contains("/audited"))
                .map(str::to_owned)
                .collect();
            if lines.len() >= 3 {
                return lines;
            }
            // The writer thread appends behind a queue; poll the file.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let find = |operation: &str| {
        lines
            .iter()
            .find(|line| line.contains(&format!("operation={operation}\t")))
            .unwrap_or_else(|| panic!("no {operation} line in {lines:#?}"))
            .clone()
    };
    let created = find("create");
    for field in [
        "user=ip:127.0.0.1,digest:alice:",
        "ip=127.0.0.1",
        "znode=/audited",
        "znode_type=ephemeral",
        "result=success",
    ] {
        assert!(created.contains(field), "{field} missing in {created:?}");
    }
    assert!(find("setData").contains("result=failure"), "{lines:#?}");
    assert!(find("delete").contains("result=success"), "{lines:#?}");
    assert_eq!(lines.len(), 3, "one line per write: {lines:#?}");
    server.stop().await;
}
