//! The exclusive lock, the read/write lock and the semaphore against a real server with many
//! concurrent contenders.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arbor_recipes::{Mutex, ReadWriteLock, Semaphore, is_protected_name, node_name};
use support::{Ensemble, SectionLog, Step, connect, ok, unique_path, wait_for_children, within};
use tokio::sync::mpsc;

/// Contenders in the exclusion tests: each its own session.
const CONTENDERS: usize = 8;
/// Times each contender takes the lock.
const ROUNDS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_excludes_many_contenders() {
    let ensemble = Ensemble::any();
    let path = unique_path("mutex-exclusion");
    let log = SectionLog::default();
    let mut tasks = Vec::new();
    for who in 0..CONTENDERS {
        let client = connect(ensemble.connect_string()).await;
        let (path, log) = (path.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            let mut lock = Mutex::new(&client, &path).expect("a lock");
            for _ in 0..ROUNDS {
                ok("acquire", lock.acquire()).await;
                log.record(Step::Enter(who));
                // Let the others run while we hold it: a broken lock shows as an overlap.
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                log.record(Step::Exit(who));
                ok("release", lock.release()).await;
            }
        }));
    }
    for task in tasks {
        within("a contender", task).await.expect("contender task");
    }
    log.assert_exclusive();
    assert_eq!(log.steps().len(), CONTENDERS * ROUNDS * 2);
    let client = connect(ensemble.connect_string()).await;
    assert!(
        ok("list", client.list_children(&path)).await.is_empty(),
        "lock nodes left behind"
    );
}

/// Waiters queue in creation order, and each release wakes exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_waiters_are_served_fifo_and_each_release_wakes_one() {
    let ensemble = Ensemble::any();
    let path = unique_path("mutex-fifo");
    let observer = connect(ensemble.connect_string()).await;
    let holder_client = connect(ensemble.connect_string()).await;
    let mut holder = Mutex::new(&holder_client, &path).expect("a lock");
    ok("holder acquires", holder.acquire()).await;

    let (order_sender, mut order) = mpsc::channel(CONTENDERS);
    let mut waiters = Vec::new();
    let mut stats = Vec::new();
    for who in 0..CONTENDERS {
        let client = connect(ensemble.connect_string()).await;
        let mut lock = Mutex::new(&client, &path).expect("a lock");
        stats.push(lock.stats());
        let order_sender = order_sender.clone();
        waiters.push(tokio::spawn(async move {
            ok("waiter acquires", lock.acquire()).await;
            order_sender.send(who).await.expect("order channel");
            ok("waiter releases", lock.release()).await;
            drop(client);
        }));
        // The next waiter starts only once this one's node exists: creation order is `who`.
        wait_for_children(&observer, &path, who + 2).await;
    }
    drop(order_sender);
    ok("holder releases", holder.release()).await;
    let mut served = Vec::new();
    while let Some(who) = within("the next waiter", order.recv()).await {
        served.push(who);
    }
    for waiter in waiters {
        within("a waiter", waiter).await.expect("waiter task");
    }
    assert_eq!(served, (0..CONTENDERS).collect::<Vec<_>>(), "not FIFO");
    // Herd-free: every waiter was woken once, by its own predecessor's release.
    let wakeups: Vec<u64> = stats.iter().map(|stats| stats.wakeups()).collect();
    assert_eq!(wakeups, vec![1; CONTENDERS], "wake-ups per waiter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_is_reentrant_and_uses_curator_protected_names() {
    let ensemble = Ensemble::any();
    let path = unique_path("mutex-reentrant");
    let client = connect(ensemble.connect_string()).await;
    let mut lock = Mutex::new(&client, &path).expect("a lock");
    ok("acquire", lock.acquire()).await;
    ok("acquire again", lock.acquire()).await;
    let lock_path = lock.lock_path().expect("held").to_owned();
    let name = node_name(&lock_path);
    assert!(is_protected_name(name), "{name} is not protected");
    assert!(name.contains("-lock-"), "{name} lacks Curator's lock name");
    ok("release once", lock.release()).await;
    assert!(lock.is_held(), "released after one of two releases");
    assert_eq!(ok("list", client.list_children(&path)).await.len(), 1);
    ok("release twice", lock.release()).await;
    assert!(!lock.is_held());
    assert!(ok("list", client.list_children(&path)).await.is_empty());
    assert!(lock.release().await.is_err(), "release of an unheld lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_timeout_gives_up_and_leaves_nothing() {
    let ensemble = Ensemble::any();
    let path = unique_path("mutex-timeout");
    let holder_client = connect(ensemble.connect_string()).await;
    let other_client = connect(ensemble.connect_string()).await;
    let mut holder = Mutex::new(&holder_client, &path).expect("a lock");
    let mut other = Mutex::new(&other_client, &path).expect("a lock");
    ok("holder acquires", holder.acquire()).await;
    let acquired = ok(
        "bounded acquire",
        other.try_acquire(Duration::from_millis(300)),
    )
    .await;
    assert!(!acquired, "acquired a held lock");
    assert_eq!(
        ok("list", holder_client.list_children(&path)).await.len(),
        1,
        "the timed-out contender left its node"
    );
    ok("holder releases", holder.release()).await;
    assert!(ok("second try", other.try_acquire(WAIT)).await);
    ok("release", other.release()).await;
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_lock_shares_reads_and_excludes_writes() {
    let ensemble = Ensemble::any();
    let path = unique_path("rwlock");
    let readers_inside = Arc::new(AtomicUsize::new(0));
    let writers_inside = Arc::new(AtomicUsize::new(0));
    let max_readers = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for who in 0..CONTENDERS {
        let client = connect(ensemble.connect_string()).await;
        let path = path.clone();
        let (readers, writers, max_readers) = (
            readers_inside.clone(),
            writers_inside.clone(),
            max_readers.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lock = ReadWriteLock::new(&client, &path).expect("a lock");
            for round in 0..ROUNDS {
                if (who + round) % 3 == 0 {
                    ok("write", lock.acquire_write()).await;
                    assert_eq!(writers.fetch_add(1, Ordering::SeqCst), 0, "two writers");
                    assert_eq!(readers.load(Ordering::SeqCst), 0, "reader with a writer");
                    tokio::task::yield_now().await;
                    assert_eq!(readers.load(Ordering::SeqCst), 0, "reader with a writer");
                    writers.fetch_sub(1, Ordering::SeqCst);
                    ok("release write", lock.release_write()).await;
                } else {
                    ok("read", lock.acquire_read()).await;
                    let now = readers.fetch_add(1, Ordering::SeqCst) + 1;
                    max_readers.fetch_max(now, Ordering::SeqCst);
                    assert_eq!(writers.load(Ordering::SeqCst), 0, "writer with a reader");
                    tokio::task::yield_now().await;
                    assert_eq!(writers.load(Ordering::SeqCst), 0, "writer with a reader");
                    readers.fetch_sub(1, Ordering::SeqCst);
                    ok("release read", lock.release_read()).await;
                }
            }
        }));
    }
    for task in tasks {
        within("a contender", task).await.expect("contender task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_hold_together() {
    let ensemble = Ensemble::any();
    let path = unique_path("rwlock-shared");
    let first_client = connect(ensemble.connect_string()).await;
    let second_client = connect(ensemble.connect_string()).await;
    let mut first = ReadWriteLock::new(&first_client, &path).expect("a lock");
    let mut second = ReadWriteLock::new(&second_client, &path).expect("a lock");
    ok("first read", first.acquire_read()).await;
    assert!(ok("second read", second.try_acquire_read(WAIT)).await);
    assert!(first.is_read_held() && second.is_read_held());
    let writer_client = connect(ensemble.connect_string()).await;
    let mut writer = ReadWriteLock::new(&writer_client, &path).expect("a lock");
    assert!(
        !ok(
            "write under readers",
            writer.try_acquire_write(Duration::from_millis(300))
        )
        .await,
        "a writer got in with two readers"
    );
    assert!(
        first.acquire_write().await.is_err(),
        "a read lock was upgraded"
    );
}

/// A writer that downgrades keeps out a writer that queued meanwhile (CURATOR-621).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrade_keeps_queued_writers_out() {
    let ensemble = Ensemble::any();
    let path = unique_path("rwlock-downgrade");
    let owner_client = connect(ensemble.connect_string()).await;
    let mut owner = ReadWriteLock::new(&owner_client, &path).expect("a lock");
    ok("write", owner.acquire_write()).await;

    let queued_client = connect(ensemble.connect_string()).await;
    let mut queued_writer = ReadWriteLock::new(&queued_client, &path).expect("a lock");
    let (granted_sender, mut granted) = mpsc::channel(1);
    let waiter = tokio::spawn(async move {
        ok("queued write", queued_writer.acquire_write()).await;
        granted_sender.send(()).await.expect("granted channel");
        ok("queued release", queued_writer.release_write()).await;
    });
    wait_for_children(&owner_client, &path, 2).await;

    ok("downgrade", owner.downgrade()).await;
    assert!(owner.is_read_held() && !owner.is_write_held());
    let order = ok("participants", owner.participants()).await;
    assert_eq!(order.len(), 2, "{order:?}");
    assert!(
        order[0].contains("__READ__"),
        "the downgraded read does not sort first: {order:?}"
    );
    // The queued writer must still be waiting: nothing arrives while we read.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), granted.recv())
            .await
            .is_err(),
        "a queued writer got in after a downgrade"
    );
    ok("release read", owner.release_read()).await;
    within("the queued writer", granted.recv()).await;
    within("the waiter", waiter).await.expect("waiter task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_never_grants_more_than_its_leases() {
    const LEASES: usize = 3;
    let ensemble = Ensemble::any();
    let path = unique_path("semaphore");
    let inside = Arc::new(AtomicUsize::new(0));
    let max_inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONTENDERS {
        let client = connect(ensemble.connect_string()).await;
        let (path, inside, max_inside) = (path.clone(), inside.clone(), max_inside.clone());
        tasks.push(tokio::spawn(async move {
            let mut semaphore = Semaphore::new(&client, &path, LEASES).expect("a semaphore");
            for _ in 0..ROUNDS {
                let lease = ok("lease", semaphore.acquire()).await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max_inside.fetch_max(now, Ordering::SeqCst);
                assert!(now <= LEASES, "{now} holders of {LEASES} leases");
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                inside.fetch_sub(1, Ordering::SeqCst);
                ok("return", lease.release()).await;
            }
        }));
    }
    for task in tasks {
        within("a contender", task).await.expect("contender task");
    }
    assert!(max_inside.load(Ordering::SeqCst) <= LEASES);
    let client = connect(ensemble.connect_string()).await;
    let semaphore = Semaphore::new(&client, &path, LEASES).expect("a semaphore");
    assert!(
        ok("participants", semaphore.participants())
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_all_or_nothing_with_timeout() {
    let ensemble = Ensemble::any();
    let path = unique_path("semaphore-timeout");
    let client = connect(ensemble.connect_string()).await;
    let mut semaphore = Semaphore::new(&client, &path, 2).expect("a semaphore");
    let held = ok("one lease", semaphore.acquire()).await;
    let other_client = connect(ensemble.connect_string()).await;
    let mut other = Semaphore::new(&other_client, &path, 2).expect("a semaphore");
    let none = ok("two more", other.try_acquire(2, Duration::from_millis(300))).await;
    assert!(none.is_none(), "granted 3 leases of 2");
    // What was taken for the failed request is returned (in the background).
    wait_for_children(&client, &format!("{path}/leases"), 1).await;
    let one = ok("one more", other.try_acquire(1, WAIT)).await;
    assert_eq!(one.map(|leases| leases.len()), Some(1));
    drop(held);
}

/// An `acquire` future dropped while waiting (a `select!` that took another branch) leaves no
/// node behind to block the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_acquire_leaves_nothing_behind() {
    let ensemble = Ensemble::any();
    let path = unique_path("mutex-abandoned");
    let holder_client = connect(ensemble.connect_string()).await;
    let mut holder = Mutex::new(&holder_client, &path).expect("a lock");
    ok("holder acquires", holder.acquire()).await;
    let waiter_client = connect(ensemble.connect_string()).await;
    let mut waiter = Mutex::new(&waiter_client, &path).expect("a lock");
    let observer = connect(ensemble.connect_string()).await;
    tokio::select! {
        acquired = waiter.acquire() => panic!("acquired a held lock: {acquired:?}"),
        () = wait_for_children(&observer, &path, 2) => {}
    }
    // The waiter's acquire future is dropped here, with its node created.
    wait_for_children(&observer, &path, 1).await;
    ok("holder releases", holder.release()).await;
    wait_for_children(&observer, &path, 0).await;
    assert!(ok("waiter tries again", waiter.try_acquire(WAIT)).await);
    ok("release", waiter.release()).await;
}
