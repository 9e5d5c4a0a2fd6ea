//! Quotas from the shell against a real `arbor server`: `setquota`, `listquota` and `delquota`
//! in `arbor cli` (zkCli 3.9's commands and output), with hard limits refused by the server
//! with QuotaExceeded (−125) and soft limits only logged.

mod support;

use std::process::{Command, Output, Stdio};

use support::{Server, connect, ok, persistent};
use zookeeper_client as zk;

/// `arbor cli -server ADDRESS -c COMMAND`.
fn cli(address: &str, command: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args([
            "cli",
            "-server",
            address,
            "--timeout",
            "10000",
            "-c",
            command,
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("arbor cli runs")
}

/// Runs `command`, which must succeed; its standard output and error.
fn cli_ok(address: &str, command: &str) -> (String, String) {
    let output = cli(address, command);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{command}: exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        output.status.code()
    );
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setquota_listquota_delquota_and_hard_limit_enforcement() {
    let server = Server::start();
    let address = server.address();
    let client = connect(&address).await;
    ok("create /app", client.create("/app", b"", &persistent())).await;
    ok(
        "create /app/a",
        client.create("/app/a", b"12345", &persistent()),
    )
    .await;

    // A hard count limit of 3: /app and /app/a exist, one more fits.
    cli_ok(&address, "setquota -N 3 /app");
    let (stdout, stderr) = cli_ok(&address, "listquota /app");
    assert_eq!(
        stderr,
        "absolute path is /zookeeper/quota/app/zookeeper_limits\n"
    );
    assert_eq!(
        stdout,
        "Output quota for /app count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3\n\
         Output stat for /app count=2,bytes=5\n"
    );
    ok("create /app/b", client.create("/app/b", b"", &persistent())).await;
    let error = client
        .create("/app/c", b"", &persistent())
        .await
        .expect_err("a create past countHardLimit");
    assert_eq!(error, zk::Error::QuotaExceeded);
    let output = cli(&address, "create /app/c");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "Quota has exceeded : /app/c\n"
    );

    // A hard byte limit next to it; the count limit stays.
    cli_ok(&address, "setquota -B 10 /app");
    let (stdout, _) = cli_ok(&address, "listquota /app");
    assert!(
        stdout.contains("byteHardLimit=10;countHardLimit=3"),
        "{stdout}"
    );
    let error = client
        .set_data("/app/b", b"0123456789", None)
        .await
        .expect_err("a setData past byteHardLimit");
    assert_eq!(error, zk::Error::QuotaExceeded);

    // Unset the count limit only: creates fit again, bytes are still limited.
    cli_ok(&address, "delquota -N /app");
    ok("create /app/c", client.create("/app/c", b"", &persistent())).await;
    let error = client
        .create("/app/d", b"0123456789", &persistent())
        .await
        .expect_err("still past byteHardLimit");
    assert_eq!(error, zk::Error::QuotaExceeded);

    // Overlapping quotas are refused.
    let output = cli(&address, "setquota -n 5 /app/a");
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "/app/a has a parent /zookeeper/quota/app which has a quota\n"
    );

    // The whole quota removed, with the quota nodes it leaves empty.
    cli_ok(&address, "delquota /app");
    let (_, stderr) = cli_ok(&address, "listquota /app");
    assert!(
        stderr.contains("quota for /app does not exist."),
        "{stderr}"
    );
    assert_eq!(
        ok("exists", client.check_stat("/zookeeper/quota/app")).await,
        None
    );
    ok(
        "create /app/d",
        client.create("/app/d", b"0123456789", &persistent()),
    )
    .await;
    let (stdout, _) = cli_ok(&address, "delquota /app");
    assert_eq!(stdout, "Quota does not exist for /app\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_quota_is_logged_not_enforced() {
    let mut server = Server::start();
    let address = server.address();
    let client = connect(&address).await;
    ok("create /soft", client.create("/soft", b"", &persistent())).await;
    cli_ok(&address, "setquota -n 1 /soft");
    ok(
        "create /soft/a",
        client.create("/soft/a", b"", &persistent()),
    )
    .await;
    ok(
        "create /soft/b",
        client.create("/soft/b", b"", &persistent()),
    )
    .await;
    support::eventually("the soft-quota warning in the server log", || {
        server.log().contains("Quota exceeded (soft limit")
    })
    .await;
    assert!(server.is_running());
}
