//! Fault tests: a holder's connection is cut, or it goes silent until its session expires,
//! while it holds a lock or leads; the next holder must proceed only after the old one was
//! told. Each test runs its own server with 100 ms ticks so a victim's session (2 s) expires
//! quickly, while healthy clients keep a long session.
//!
//! Why the order is guaranteed and not a race: the victim's client gives up a silent or
//! closed connection after at most 2/5 of its session timeout and reports `Disconnected`
//! (our `Hold::Suspended`) then; the server cannot expire the session, and so cannot delete
//! the victim's node, before the whole timeout has passed.

mod support;

use arbor_recipes::{
    Hold, LatchState, LeaderLatch, LeaderSelector, Mutex, NodeCache, Outcome, TreeCache, node_name,
};
use std::time::Duration;
use support::{
    Ensemble, FAST_EXPIRY_TOML, Proxy, VICTIM_SESSION_TIMEOUT, connect, connect_with_timeout, ok,
    unique_path, wait_for_children, within,
};

use tokio::time::Instant;
use zookeeper_client as zk;

/// How the victim loses its server.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The proxy closes the connection (and every new one).
    Cut,
    /// The proxy stops forwarding; nothing is closed.
    Freeze,
}

fn inflict(proxy: &Proxy, fault: Fault) {
    match fault {
        Fault::Cut => proxy.cut(),
        Fault::Freeze => proxy.freeze(),
    }
}

async fn lock_holder_is_told_before_the_next_holder_proceeds(fault: Fault) {
    let ensemble = Ensemble::own(FAST_EXPIRY_TOML);
    let path = unique_path("fault-lock");
    let proxy = Proxy::start(&ensemble.first_address()).await;
    let victim_client = connect_with_timeout(proxy.address(), VICTIM_SESSION_TIMEOUT).await;
    let mut victim = Mutex::new(&victim_client, &path).expect("a lock");
    ok("victim acquires", victim.acquire()).await;
    let mut hold = victim.hold_watch().expect("held");
    assert_eq!(hold.current(), Hold::Held);

    let next_client = connect(ensemble.connect_string()).await;
    let waiting_path = path.clone();
    let next = tokio::spawn(async move {
        let mut lock = Mutex::new(&next_client, &waiting_path).expect("a lock");
        ok("next acquires", lock.acquire()).await;
        let acquired_at = Instant::now();
        ok("next releases", lock.release()).await;
        acquired_at
    });
    let observer = connect(ensemble.connect_string()).await;
    wait_for_children(&observer, &path, 2).await;

    inflict(&proxy, fault);
    let suspended = within("the victim told", hold.not_held()).await;
    let told_at = Instant::now();
    assert_eq!(suspended, Hold::Suspended, "first word to the victim");
    assert!(
        !victim.is_held(),
        "the victim still believes it holds the lock"
    );

    let acquired_at = within("the next holder", next).await.expect("next task");
    assert!(
        told_at < acquired_at,
        "{fault:?}: the next holder got the lock {:?} before the victim was told",
        told_at - acquired_at
    );
    within("the victim told it lost", hold.lost()).await;
    assert_eq!(hold.current(), Hold::Lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_holder_cut_off_is_told_before_the_next_holder_proceeds() {
    lock_holder_is_told_before_the_next_holder_proceeds(Fault::Cut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_holder_whose_session_expires_is_told_before_the_next_holder_proceeds() {
    lock_holder_is_told_before_the_next_holder_proceeds(Fault::Freeze).await;
}

/// A lock node deleted by someone else (an operator) is reported lost at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_lock_node_is_reported_lost() {
    let ensemble = Ensemble::any();
    let path = unique_path("fault-deleted");
    let client = connect(ensemble.connect_string()).await;
    let mut lock = Mutex::new(&client, &path).expect("a lock");
    ok("acquire", lock.acquire()).await;
    let mut hold = lock.hold_watch().expect("held");
    let operator = connect(ensemble.connect_string()).await;
    let lock_path = lock.lock_path().expect("held").to_owned();
    ok("operator deletes", operator.delete(&lock_path, None)).await;
    within("told lost", hold.lost()).await;
    assert!(!lock.is_held());
    // Acquiring again contends anew rather than counting on the lost node.
    ok("acquire again", lock.acquire()).await;
    assert_ne!(lock.lock_path(), Some(lock_path.as_str()));
    ok("release", lock.release()).await;
}

/// The leader's closure is cancelled when its connection goes silent, before the next
/// leader's closure starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_cancels_the_leader_before_another_leads() {
    let ensemble = Ensemble::own(FAST_EXPIRY_TOML);
    let path = unique_path("fault-selector");
    let proxy = Proxy::start(&ensemble.first_address()).await;
    let victim_client = connect_with_timeout(proxy.address(), VICTIM_SESSION_TIMEOUT).await;
    let mut victim = LeaderSelector::new(&victim_client, &path, "victim").expect("a selector");
    let (leading_sender, leading) = tokio::sync::oneshot::channel();
    let (cancelled_sender, cancelled) = tokio::sync::oneshot::channel();
    let victim_run = tokio::spawn(async move {
        victim
            .run_once(|_leadership| async move {
                // Reports the instant the closure's future is dropped (cancelled).
                let _cancelled = SendOnDrop(Some(cancelled_sender));
                let _ = leading_sender.send(());
                std::future::pending::<()>().await
            })
            .await
    });
    within("the victim leads", leading)
        .await
        .expect("leading signal");

    let next_client = connect(ensemble.connect_string()).await;
    let next_path = path.clone();
    let next_run = tokio::spawn(async move {
        let mut next = LeaderSelector::new(&next_client, &next_path, "next").expect("a selector");
        ok("next leads", next.run_once(|_| async { Instant::now() })).await
    });
    let observer = connect(ensemble.connect_string()).await;
    wait_for_children(&observer, &path, 2).await;

    proxy.freeze();
    let cancelled_at = within("the victim cancelled", cancelled)
        .await
        .expect("cancellation instant");
    let outcome = within("the victim's turn ends", victim_run)
        .await
        .expect("victim task");
    assert_eq!(
        outcome.expect("victim outcome"),
        Outcome::Cancelled(Hold::Suspended)
    );
    let Outcome::Completed(started_at) = within("the next leader", next_run)
        .await
        .expect("next task")
    else {
        panic!("the next leader was cancelled");
    };
    assert!(
        cancelled_at < started_at,
        "the next leader started before the old one was cancelled"
    );
}

/// Sends the instant it is dropped.
struct SendOnDrop(Option<tokio::sync::oneshot::Sender<Instant>>);

impl Drop for SendOnDrop {
    fn drop(&mut self) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(Instant::now());
        }
    }
}

/// A latch leader whose connection is cut stops leading before anyone else leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latch_leader_cut_off_steps_down_before_another_leads() {
    let ensemble = Ensemble::own(FAST_EXPIRY_TOML);
    let path = unique_path("fault-latch");
    let proxy = Proxy::start(&ensemble.first_address()).await;
    let victim_client = connect_with_timeout(proxy.address(), VICTIM_SESSION_TIMEOUT).await;
    let victim = LeaderLatch::start(&victim_client, &path, "victim").expect("a latch");
    assert!(ok("victim leads", victim.await_leadership(support::WAIT_MAX)).await);
    let next_client = connect(ensemble.connect_string()).await;
    let next = LeaderLatch::start(&next_client, &path, "next").expect("a latch");
    let observer = connect(ensemble.connect_string()).await;
    wait_for_children(&observer, &path, 2).await;
    assert!(!next.has_leadership());

    let mut victim_state = victim.subscribe();
    proxy.cut();
    within(
        "the victim steps down",
        victim_state.wait_for(|state| *state != LatchState::Leader),
    )
    .await
    .expect("victim state");
    let stepped_down_at = Instant::now();
    assert!(ok("next leads", next.await_leadership(support::WAIT_MAX)).await);
    let leads_at = Instant::now();
    assert!(stepped_down_at < leads_at);
    assert!(!victim.has_leadership());
    // The victim's session is gone: its latch ends with that error.
    let ended = within(
        "the victim latch ends",
        victim_state.wait_for(|state| matches!(state, LatchState::Ended(_))),
    )
    .await
    .expect("victim state")
    .clone();
    assert!(
        matches!(ended, LatchState::Ended(Some(ref error)) if error.is_session_ended()),
        "{ended:?}"
    );
    ok("close", next.close()).await;
}

/// Changes made while a cache's client is cut off are all seen after it reconnects (full
/// resynchronisation: persistent watches do not replay them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_resynchronise_after_reconnecting() {
    let ensemble = Ensemble::own(FAST_EXPIRY_TOML);
    let root = unique_path("fault-cache");
    let writer = connect(ensemble.connect_string()).await;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    ok("mkdir", writer.mkdir(&root, &options)).await;
    let config = format!("{root}/config");
    ok("create config", writer.create(&config, b"v1", &options)).await;

    let proxy = Proxy::start(&ensemble.first_address()).await;
    // A long session: the client must come back to the same session.
    let reader = connect(proxy.address()).await;
    let tree = ok("tree cache", TreeCache::start(&reader, &root)).await;
    let node = ok("node cache", NodeCache::start(&reader, &config)).await;
    assert_eq!(node.current().map(|node| node.data), Some(b"v1".to_vec()));
    let mut states = reader.state_watcher();

    proxy.cut();
    within("the reader disconnected", async {
        while states.changed().await != zk::SessionState::Disconnected {}
    })
    .await;
    ok("change while away", writer.set_data(&config, b"v2", None)).await;
    ok(
        "create while away",
        writer.create(&format!("{root}/added"), b"new", &options),
    )
    .await;
    proxy.open();
    within("the reader reconnected", async {
        while states.changed().await != zk::SessionState::SyncConnected {}
    })
    .await;

    let mut generation = tree.generation();
    within("the tree cache catches up", async {
        loop {
            let config_seen = tree.get(&config).map(|node| node.data);
            let added_seen = tree.get(&format!("{root}/added")).is_some();
            if config_seen == Some(b"v2".to_vec()) && added_seen {
                return;
            }
            generation.changed().await.expect("cache running");
        }
    })
    .await;
    let mut current = node.subscribe();
    within(
        "the node cache catches up",
        current.wait_for(|node| node.as_ref().map(|node| node.data.as_slice()) == Some(b"v2")),
    )
    .await
    .expect("node cache running");
}

/// A create whose reply is lost to a connection drop is found again by its protected prefix,
/// not made twice: one node, the lock held, nothing orphaned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_create_reply_is_found_again_not_duplicated() {
    /// `create2`, what zookeeper-client sends for a create.
    const OPCODE_CREATE2: i32 = 15;
    let ensemble = Ensemble::any();
    let path = unique_path("fault-lost-reply");
    let observer = connect(ensemble.connect_string()).await;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    // The lock's parent exists already, so the lock node's create is the first create sent.
    ok("mkdir", observer.mkdir(&path, &options)).await;
    let proxy = Proxy::start(&ensemble.first_address()).await;
    let client = connect(proxy.address()).await;
    let mut lock = Mutex::new(&client, &path).expect("a lock");
    proxy.drop_reply_to(OPCODE_CREATE2);
    let acquired = ok("acquire", lock.try_acquire(Duration::from_secs(15))).await;
    assert!(proxy.trap_sprung(), "no create went through the proxy");
    assert!(acquired, "blocked (by our own orphaned node?)");
    let ours = node_name(lock.lock_path().expect("held")).to_owned();
    let prefix = &ours[..40];
    let children = ok("list", observer.list_children(&path)).await;
    assert!(
        children.iter().all(|child| child.starts_with(prefix)),
        "a foreign node while we hold the lock: {children:?}"
    );
    ok("release", lock.release()).await;
    // Our node, and any duplicate of it, are gone.
    wait_for_children(&observer, &path, 0).await;
}

/// Reproducer of an arbor server bug (see the arbor-recipes report): a session whose
/// connection drops right after it sent a create reconnects and lists the parent. arbor
/// answered the read first: the node was missing, then appeared, so the session saw its own
/// requests applied out of order. ZooKeeper answers the read only after the session's earlier
/// write (its CommitProcessor queues a session's requests behind its pending writes, across
/// connections). The create's outcome is unknown to the client (ConnectionLoss): when the
/// server had not read it off the old socket before the session moved, the server drops it
/// with the old connection, as ZooKeeper does, and the node never appears. What must not
/// happen is a read that misses the create followed by the create taking effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_reconnect_sees_the_sessions_write_sent_before_the_drop() {
    const OPCODE_CREATE2: i32 = 15;
    const ATTEMPTS: usize = 20;
    let ensemble = Ensemble::any();
    let path = unique_path("server-session-order");
    let observer = connect(ensemble.connect_string()).await;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    ok("mkdir", observer.mkdir(&path, &options)).await;
    let proxy = Proxy::start(&ensemble.first_address()).await;
    let client = connect(proxy.address()).await;
    let mut missed = Vec::new();
    for attempt in 0..ATTEMPTS {
        let node = format!("{path}/n{attempt}");
        proxy.drop_reply_to(OPCODE_CREATE2);
        let created = client.create(&node, b"", &options).await;
        assert_eq!(
            created.err(),
            Some(zk::Error::ConnectionLoss),
            "the reply was not lost"
        );
        let seen = ok("list after reconnect", client.list_children(&path)).await;
        if !seen.contains(&format!("n{attempt}")) {
            missed.push(node);
        }
    }
    // A later write of the session is applied after anything it sent before: once it is
    // acknowledged, a create the list missed can no longer take effect.
    let fence = format!("{path}/fence");
    ok("fence", client.create(&fence, b"", &options)).await;
    ok("sync", observer.sync(&path)).await;
    for node in &missed {
        let stat = ok("exists", observer.check_stat(node)).await;
        assert!(
            stat.is_none(),
            "{node}: a read after the reconnect missed the session's earlier create, which \
             then took effect ({} of {ATTEMPTS} reads missed their create)",
            missed.len()
        );
    }
}
