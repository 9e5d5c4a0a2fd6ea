//! Election, barriers, queues, the counter, caches and the service registry against a real
//! server.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arbor_recipes::{
    Barrier, CacheEvent, DistributedQueue, DoubleBarrier, LatchState, LeaderLatch, LeaderSelector,
    NodeCache, Outcome, PriorityQueue, ServiceDiscovery, ServiceInstance, SharedCounter, TreeCache,
    is_protected_name, node_name,
};
use support::{
    Ensemble, SectionLog, Step, WAIT_MAX, connect, ok, unique_path, wait_for_children, within,
};
use zookeeper_client as zk;

const PARTICIPANTS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latch_elects_one_leader_at_a_time_in_join_order() {
    let ensemble = Ensemble::any();
    let path = unique_path("latch");
    let observer = connect(ensemble.connect_string()).await;
    let mut latches = Vec::new();
    let mut clients = Vec::new();
    for who in 0..PARTICIPANTS {
        let client = connect(ensemble.connect_string()).await;
        latches.push(LeaderLatch::start(&client, &path, &format!("p{who}")).expect("a latch"));
        clients.push(client);
        wait_for_children(&observer, &path, who + 1).await;
    }
    for who in 0..PARTICIPANTS {
        assert!(
            ok("leadership", latches[0].await_leadership(WAIT_MAX)).await,
            "p{who} never led"
        );
        let leaders = latches
            .iter()
            .filter(|latch| latch.has_leadership())
            .count();
        assert_eq!(leaders, 1, "{leaders} leaders at once");
        assert_eq!(
            ok("leader id", latches[0].leader_id()).await,
            Some(format!("p{who}"))
        );
        let our = latches[0].our_path().expect("our node");
        assert!(is_protected_name(node_name(&our)) && our.contains("latch-"));
        let mut state = latches[0].subscribe();
        let leader = latches.remove(0);
        ok("close", leader.close()).await;
        assert!(matches!(
            *state.borrow_and_update(),
            LatchState::Ended(None)
        ));
    }
    assert!(ok("list", observer.list_children(&path)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_runs_one_leader_at_a_time() {
    let ensemble = Ensemble::any();
    let path = unique_path("selector");
    let log = SectionLog::default();
    let turns = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for who in 0..PARTICIPANTS {
        let client = connect(ensemble.connect_string()).await;
        let (path, log, turns) = (path.clone(), log.clone(), turns.clone());
        tasks.push(tokio::spawn(async move {
            let mut selector =
                LeaderSelector::new(&client, &path, &format!("p{who}")).expect("a selector");
            // Requeue: lead twice.
            for _ in 0..2 {
                let outcome = ok(
                    "lead",
                    selector.run_once(|leadership| {
                        let log = log.clone();
                        let turns = turns.clone();
                        async move {
                            assert!(leadership.is_leader());
                            log.record(Step::Enter(who));
                            tokio::task::yield_now().await;
                            turns.fetch_add(1, Ordering::SeqCst);
                            log.record(Step::Exit(who));
                        }
                    }),
                )
                .await;
                assert_eq!(outcome, Outcome::Completed(()));
            }
        }));
    }
    for task in tasks {
        within("a participant", task)
            .await
            .expect("participant task");
    }
    log.assert_exclusive();
    assert_eq!(turns.load(Ordering::SeqCst), PARTICIPANTS * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_holds_waiters_until_removed() {
    let ensemble = Ensemble::any();
    let path = unique_path("barrier");
    let client = connect(ensemble.connect_string()).await;
    let barrier = Barrier::new(&client, &path).expect("a barrier");
    ok("set", barrier.set()).await;
    ok("set again", barrier.set()).await;
    assert!(
        !ok(
            "bounded wait",
            barrier.wait(Some(Duration::from_millis(200)))
        )
        .await,
        "passed a raised barrier"
    );
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let client = connect(ensemble.connect_string()).await;
        let path = path.clone();
        waiters.push(tokio::spawn(async move {
            let barrier = Barrier::new(&client, &path).expect("a barrier");
            ok("wait", barrier.wait(None)).await
        }));
    }
    ok("remove", barrier.remove()).await;
    for waiter in waiters {
        assert!(within("a waiter", waiter).await.expect("waiter task"));
    }
    ok("remove again", barrier.remove()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_barrier_enters_and_leaves_together() {
    const MEMBERS: usize = 4;
    let ensemble = Ensemble::any();
    let path = unique_path("double-barrier");
    let entered = Arc::new(AtomicUsize::new(0));
    let left = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..MEMBERS {
        let client = connect(ensemble.connect_string()).await;
        let (path, entered, left) = (path.clone(), entered.clone(), left.clone());
        tasks.push(tokio::spawn(async move {
            let barrier = DoubleBarrier::new(&client, &path, MEMBERS).expect("a barrier");
            assert!(ok("enter", barrier.enter(None)).await);
            // Nobody gets past enter before everyone arrived.
            entered.fetch_add(1, Ordering::SeqCst);
            assert!(ok("leave", barrier.leave(None)).await);
            assert_eq!(
                entered.load(Ordering::SeqCst),
                MEMBERS,
                "left before all entered"
            );
            left.fetch_add(1, Ordering::SeqCst);
        }));
    }
    for task in tasks {
        within("a member", task).await.expect("member task");
    }
    assert_eq!(left.load(Ordering::SeqCst), MEMBERS);
    let client = connect(ensemble.connect_string()).await;
    let remaining = match client.list_children(&path).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => Vec::new(),
        Err(error) => panic!("list: {error}"),
    };
    assert!(remaining.is_empty(), "left behind: {remaining:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_barrier_enter_times_out_when_members_are_missing() {
    let ensemble = Ensemble::any();
    let path = unique_path("double-barrier-timeout");
    let client = connect(ensemble.connect_string()).await;
    let barrier = DoubleBarrier::new(&client, &path, 2).expect("a barrier");
    assert!(
        !ok(
            "enter alone",
            barrier.enter(Some(Duration::from_millis(200)))
        )
        .await
    );
    assert!(ok("leave alone", barrier.leave(Some(WAIT_MAX))).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_is_fifo_and_each_item_is_taken_once() {
    const ITEMS: usize = 60;
    const CONSUMERS: usize = 3;
    let ensemble = Ensemble::any();
    let path = unique_path("queue");
    let producer_client = connect(ensemble.connect_string()).await;
    let producer = DistributedQueue::new(&producer_client, &path).expect("a queue");
    // One consumer alone first: strict FIFO.
    for item in 0..10 {
        ok("put", producer.put(format!("{item}").as_bytes())).await;
    }
    ok(
        "put multi",
        producer.put_multi(&[b"m1".as_slice(), b"m2".as_slice()]),
    )
    .await;
    let consumer_client = connect(ensemble.connect_string()).await;
    let mut consumer = DistributedQueue::new(&consumer_client, &path).expect("a queue");
    for item in 0..10 {
        let taken = ok("take", consumer.take(Some(WAIT_MAX))).await;
        assert_eq!(taken, Some(format!("{item}").into_bytes()), "not FIFO");
    }
    assert_eq!(
        ok("take", consumer.take(Some(WAIT_MAX))).await,
        Some(b"m1".to_vec())
    );
    assert_eq!(
        ok("take", consumer.take(Some(WAIT_MAX))).await,
        Some(b"m2".to_vec())
    );
    assert_eq!(
        ok(
            "take from empty",
            consumer.take(Some(Duration::from_millis(200)))
        )
        .await,
        None
    );

    // Then competing consumers, started before the items exist (they wait on the queue).
    let taken = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let client = connect(ensemble.connect_string()).await;
        let (path, taken) = (path.clone(), taken.clone());
        consumers.push(tokio::spawn(async move {
            let mut queue = DistributedQueue::new(&client, &path).expect("a queue");
            let mut mine = Vec::new();
            loop {
                let item = ok("take", queue.take(Some(WAIT_MAX)))
                    .await
                    .expect("an item");
                if item == b"stop" {
                    break;
                }
                mine.push(String::from_utf8(item).expect("utf-8"));
            }
            taken.lock().expect("taken").extend(mine.clone());
            mine
        }));
    }
    for item in 0..ITEMS {
        ok("put", producer.put(format!("{item}").as_bytes())).await;
    }
    for _ in 0..CONSUMERS {
        ok("put stop", producer.put(b"stop")).await;
    }
    for consumer in consumers {
        let mine = within("a consumer", consumer).await.expect("consumer task");
        // Each consumer saw its items in queue order.
        let numbers: Vec<usize> = mine
            .iter()
            .map(|item| item.parse().expect("a number"))
            .collect();
        assert!(
            numbers.windows(2).all(|pair| pair[0] < pair[1]),
            "{numbers:?}"
        );
    }
    let all = taken.lock().expect("taken").clone();
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), ITEMS, "an item was taken twice or lost");
    assert_eq!(unique.len(), ITEMS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_queue_serves_lowest_priority_first() {
    let ensemble = Ensemble::any();
    let path = unique_path("priority-queue");
    let client = connect(ensemble.connect_string()).await;
    let producer = PriorityQueue::new(&client, &path).expect("a queue");
    for (item, priority) in [("c", 5), ("a", -10), ("d", 5), ("b", 0), ("e", i32::MAX)] {
        ok("put", producer.put(item.as_bytes(), priority)).await;
    }
    let mut consumer = PriorityQueue::new(&client, &path).expect("a queue");
    let mut order = String::new();
    for _ in 0..5 {
        let item = ok("take", consumer.take(Some(WAIT_MAX)))
            .await
            .expect("an item");
        order.push_str(std::str::from_utf8(&item).expect("utf-8"));
    }
    assert_eq!(order, "abcde");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_adds_from_many_sessions_exactly_once() {
    const ADDERS: usize = 6;
    const ADDS: usize = 10;
    let ensemble = Ensemble::any();
    let path = unique_path("counter");
    let mut tasks = Vec::new();
    for _ in 0..ADDERS {
        let client = connect(ensemble.connect_string()).await;
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let counter = ok("open", SharedCounter::open(&client, &path, 100)).await;
            for _ in 0..ADDS {
                ok("add", counter.add(1)).await;
            }
        }));
    }
    for task in tasks {
        within("an adder", task).await.expect("adder task");
    }
    let client = connect(ensemble.connect_string()).await;
    let counter = ok("open", SharedCounter::open(&client, &path, 0)).await;
    let value = ok("get", counter.get()).await;
    assert_eq!(value.value, 100 + (ADDERS * ADDS) as i32);
    // A stale compare-and-set fails; a fresh one succeeds and is seen by a waiter.
    ok("set", counter.set(7)).await;
    assert!(!ok("stale CAS", counter.try_set(value, 1)).await);
    let fresh = ok("get", counter.get()).await;
    assert_eq!(fresh.value, 7);
    let waiter = counter.clone();
    let wait = tokio::spawn(async move { waiter.wait_change(fresh, WAIT_MAX).await });
    assert!(ok("fresh CAS", counter.try_set(fresh, 8)).await);
    let seen = within("the change", wait).await.expect("waiter task");
    assert_eq!(seen.expect("wait").map(|seen| seen.value), Some(8));
    // The data is Curator SharedCount's: 4 bytes, big-endian.
    let (raw, _) = ok("raw", client.get_data(&path)).await;
    assert_eq!(raw, 8i32.to_be_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_cache_follows_a_subtree() {
    let ensemble = Ensemble::any();
    let root = unique_path("tree-cache");
    let client = connect(ensemble.connect_string()).await;
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    // Starts before the root exists.
    let cache = ok("start", TreeCache::start(&client, &root)).await;
    let mut events = cache.subscribe();
    ok("mkdir", client.mkdir(&format!("{root}/a"), &options)).await;
    ok(
        "create",
        client.create(&format!("{root}/a/b"), b"1", &options),
    )
    .await;
    ok("set", client.set_data(&format!("{root}/a/b"), b"2", None)).await;
    ok("delete", client.delete(&format!("{root}/a/b"), None)).await;
    let mut seen = Vec::new();
    within("the events", async {
        loop {
            let event = events.recv().await.expect("an event");
            let done = matches!(&event, CacheEvent::Deleted(node) if node.path.ends_with("/a/b"));
            seen.push(event);
            if done {
                return;
            }
        }
    })
    .await;
    let b_events: Vec<&CacheEvent> = seen
        .iter()
        .filter(|event| match event {
            CacheEvent::Created(node) | CacheEvent::Deleted(node) => node.path.ends_with("/a/b"),
            CacheEvent::Changed { new, .. } => new.path.ends_with("/a/b"),
            CacheEvent::Resynced => false,
        })
        .collect();
    assert!(
        matches!(b_events.first(), Some(CacheEvent::Created(_))),
        "{seen:?}"
    );
    assert!(
        matches!(b_events.last(), Some(CacheEvent::Deleted(_))),
        "{seen:?}"
    );
    assert!(cache.get(&format!("{root}/a")).is_some());
    assert_eq!(cache.children(&root), vec!["a".to_owned()]);
    assert!(cache.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_cache_sees_creation_change_and_deletion() {
    let ensemble = Ensemble::any();
    let path = unique_path("node-cache");
    let client = connect(ensemble.connect_string()).await;
    let cache = ok("start", NodeCache::start(&client, &path)).await;
    assert_eq!(cache.current(), None);
    let mut current = cache.subscribe();
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    ok("mkdir", client.mkdir(&path, &options)).await;
    ok("set", client.set_data(&path, b"hello", None)).await;
    within(
        "the data",
        current.wait_for(|node| node.as_ref().map(|node| node.data.as_slice()) == Some(b"hello")),
    )
    .await
    .expect("cache running");
    ok("delete", client.delete(&path, None)).await;
    within("the deletion", current.wait_for(Option::is_none))
        .await
        .expect("cache running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_shows_live_members_and_drops_ended_sessions() {
    let ensemble = Ensemble::any();
    let base = unique_path("registry");
    let watcher_client = connect(ensemble.connect_string()).await;
    let discovery = ServiceDiscovery::new(&watcher_client, &base).expect("a registry");
    let live = ok("cache", discovery.cache("api")).await;
    let mut generation = live.tree().generation();

    let member_client = connect(ensemble.connect_string()).await;
    let member = ServiceDiscovery::new(&member_client, &base).expect("a registry");
    let mut instance = ServiceInstance::new("api", "127.0.0.1", 8080);
    instance.payload = Some(serde_json::json!({"zone": "a"}));
    ok("register", member.register(&instance)).await;
    ok("register again", member.register(&instance)).await;
    let other_client = connect(ensemble.connect_string()).await;
    let other = ServiceDiscovery::new(&other_client, &base).expect("a registry");
    let second = ServiceInstance::new("api", "127.0.0.2", 8081);
    ok("register second", other.register(&second)).await;

    within("both members seen", async {
        while live.instances().len() != 2 {
            generation.changed().await.expect("cache running");
        }
    })
    .await;
    assert_eq!(live.instances().get(&instance.id), Some(&instance));
    assert_eq!(
        ok("names", discovery.service_names()).await,
        vec!["api".to_owned()]
    );
    assert_eq!(ok("query", discovery.instances("api")).await.len(), 2);

    // The member's process "dies": its session ends, its registration goes with it.
    drop(member);
    drop(member_client);
    within("the ended member dropped", async {
        while live.instances().contains_key(&instance.id) {
            generation.changed().await.expect("cache running");
        }
    })
    .await;
    assert_eq!(
        live.instances().keys().cloned().collect::<Vec<_>>(),
        vec![second.id.clone()]
    );
    ok("unregister", other.unregister(&second)).await;
    within("the unregistered member dropped", async {
        while !live.instances().is_empty() {
            generation.changed().await.expect("cache running");
        }
    })
    .await;
}
