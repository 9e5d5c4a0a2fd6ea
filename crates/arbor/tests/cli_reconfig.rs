//! `arbor cli`'s `config` and `reconfig` against a real 3-node cluster: the membership as
//! `/zookeeper/config` holds it, and a membership change from the admin shell (issue
//! "Replicated arbor": membership change from the `reconfig` operation and the admin CLI).

mod support;

use support::cli::{cli, script};
use support::cluster::{Cluster, ClusterOptions, SUPER_PASSWORD};

/// The `server.N=` lines of a config text.
fn server_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| line.starts_with("server."))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_shows_the_membership_and_reconfig_changes_it_from_the_shell() {
    let options = ClusterOptions::voters(3).set("reconfig_enabled", true).set(
        "super_digest",
        format!("{:?}", support::digest_id("super", SUPER_PASSWORD)),
    );
    let cluster = Cluster::start_with(options).await;
    let ids = cluster.ids();
    let leader = cluster.wait_for_leader(&ids).await;
    let address = cluster.address(leader);

    let config = cli(&address, "config");
    assert_eq!(config.code, Some(0), "{config:?}");
    let members = server_lines(&config.stdout);
    assert_eq!(members.len(), 3, "{config:?}");
    for id in &ids {
        assert!(
            members
                .iter()
                .any(|line| line.starts_with(&format!("server.{id}="))),
            "server.{id} missing: {config:?}"
        );
    }
    let version = config
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("version="))
        .unwrap_or_else(|| panic!("no version line: {config:?}"))
        .to_owned();

    // `config -c`: the version and the client connect string (the client addresses the
    // members' lines carry after `;`; this harness's members start without one).
    let client = cli(&address, "config -c");
    assert_eq!(client.code, Some(0), "{client:?}");
    let (shown_version, connect) = client
        .stdout
        .trim_end_matches('\n')
        .split_once(' ')
        .unwrap_or_else(|| panic!("not `<version> <connect>`: {client:?}"));
    assert_eq!(shown_version, version, "{client:?}");
    let expected: Vec<&str> = members
        .iter()
        .filter_map(|line| line.split_once(';').map(|(_, client)| client))
        .collect();
    assert_eq!(connect, expected.join(","), "{client:?}");

    // Without the super user's identity the config node is read-only.
    let refused = cli(&address, "reconfig -remove 1");
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert_eq!(refused.stdout, "", "{refused:?}");
    assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");

    // A stale version is refused; the current one (as `config` printed it) is taken.
    let victim = ids
        .iter()
        .copied()
        .find(|&id| id != leader)
        .expect("a follower");
    let auth = format!("addauth digest super:{SUPER_PASSWORD}");
    let stale = script(
        &address,
        &[&auth, &format!("reconfig -v 1 -remove {victim}")],
    );
    assert!(
        stale.stderr.contains("BadVersion") || stale.stderr.contains("version"),
        "{stale:?}"
    );
    let changed = script(
        &address,
        &[&auth, &format!("reconfig -v {version} -remove {victim}")],
    );
    assert!(
        changed.stdout.starts_with("Committed new configuration:\n"),
        "{changed:?}"
    );
    let after = server_lines(&changed.stdout);
    assert_eq!(after.len(), 2, "{changed:?}");
    assert!(
        after
            .iter()
            .all(|line| !line.starts_with(&format!("server.{victim}="))),
        "{changed:?}"
    );
    let reread = cli(&address, "config");
    assert_eq!(server_lines(&reread.stdout), after, "{reread:?}");
}

#[test]
fn reconfig_usage_errors_are_one_line_and_need_no_server() {
    // Parsing happens before connecting: a closed port is never dialled.
    for (line, expected) in [
        (
            "reconfig -members 1=127.0.0.1:1:2 -add 2=127.0.0.1:3:4",
            "Can't use -file or -members together with -add or -remove",
        ),
        ("reconfig -v xyz -remove 1", "-v argument must be"),
        ("reconfig -zap 1", "Unrecognized option: -zap"),
        ("reconfig", "reconfig [-s] [-v version]"),
    ] {
        let run = cli("127.0.0.1:1", line);
        assert_eq!(run.code, Some(1), "{line}: {run:?}");
        assert_eq!(run.stdout, "", "{line}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{line}: {run:?}");
        assert!(run.stderr.contains(expected), "{line}: {run:?}");
    }
}
