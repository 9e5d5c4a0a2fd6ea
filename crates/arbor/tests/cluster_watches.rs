//! Watches follow a session to another server: a client cut off from its server reconnects to
//! another one with `setWatches`; a change made elsewhere while it was away fires its watch on
//! arrival, and a change made after fires the watch it carried over.

mod support;

use support::cluster::Cluster;
use support::proxy::Proxy;
use support::{connect_with, connector, ok, persistent, wait_for_state, within};
use zookeeper_client as zk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_move_with_the_session_to_another_server() {
    let cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    let (first, second, third) = (ids[0], ids[1], ids[2]);
    let writer = cluster.connect_to(third).await;
    for path in ["/away", "/later"] {
        ok("create", writer.create(path, b"0", &persistent())).await;
    }

    // The client reaches `first` and `second` only through proxies; `second` is closed to it
    // until it has to move.
    let to_first = Proxy::start(cluster.socket_address(first)).await;
    let to_second = Proxy::start(cluster.socket_address(second)).await;
    to_second.block();
    let client = connect_with(
        connector(),
        &format!("{},{}", to_first.address(), to_second.address()),
    )
    .await;
    ok("sync", client.sync("/away")).await;
    let (_, _, away_watch) = ok("watch /away", client.get_and_watch_data("/away")).await;
    let (_, _, later_watch) = ok("watch /later", client.get_and_watch_data("/later")).await;
    let session = client.session_id();
    let mut states = client.state_watcher();

    // Cut off from `first`; a change is made elsewhere while it is away.
    to_first.block();
    wait_for_state(&mut states, zk::SessionState::Disconnected).await;
    ok("change /away", writer.set_data("/away", b"1", None)).await;
    to_second.unblock();
    wait_for_state(&mut states, zk::SessionState::SyncConnected).await;
    assert_eq!(
        client.session_id(),
        session,
        "the session moved, not renewed"
    );

    let event = within("the watch on /away after the move", away_watch.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);
    assert_eq!(event.path, "/away");

    ok("change /later", writer.set_data("/later", b"1", None)).await;
    let event = within(
        "the watch on /later on the new server",
        later_watch.changed(),
    )
    .await;
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);
    assert_eq!(event.path, "/later");
    drop(to_first);
}
