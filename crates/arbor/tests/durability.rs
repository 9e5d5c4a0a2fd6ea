//! `kill -9` at any moment loses no acknowledged write.
//!
//! Concurrent `zookeeper-client` writers hammer a real `arbor server` with creates and
//! setData while it takes snapshots; the server is SIGKILLed at a random moment, restarted on
//! the same data, and every write whose reply arrived must be there with its data. A write
//! whose reply did not arrive may or may not be there, but if it is, its data is the data
//! sent, and nothing appears that nobody wrote. Several cycles run on the same data directory,
//! the last one ending with a graceful stop instead.
//!
//! The kill moments and the written data come from one seed, printed as `SEED=`; set
//! `ARBOR_DURABILITY_SEED` to run the same moments again (the thread interleaving of the run
//! itself is not replayable).

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::{Server, ServerOptions, connect, ok, persistent};
use zookeeper_client as zk;

/// Concurrent writer sessions.
const WRITERS: usize = 6;
/// Kill/restart cycles; one more cycle ends with SIGTERM.
const KILL_CYCLES: u32 = 3;
/// The kill comes this long after the writers start, at random within the range.
const KILL_AFTER_MS: std::ops::Range<u64> = 150..600;
/// Reads per multiRead when verifying.
const VERIFY_BATCH: usize = 200;

/// What the writers know about their writes.
#[derive(Clone, Default)]
struct Ledger {
    /// Creates whose reply arrived: path → data.
    acknowledged: BTreeMap<String, Vec<u8>>,
    /// Creates sent whose reply did not arrive: path → data.
    uncertain: BTreeMap<String, Vec<u8>>,
    /// Per writer key: the last counter acknowledged and the highest sent.
    counters: BTreeMap<String, (Option<u64>, u64)>,
    /// Errors other than losing the connection to the killed server.
    unexpected: Vec<String>,
    /// Writes acknowledged in the current cycle.
    written: u64,
}

/// Each cycle has its own keys: a write the killed server never answered may still be sent
/// by its client once the server is back (the client queues requests while disconnected), and
/// must not overwrite a newer value of a later cycle.
fn key_path(cycle: u32, writer: usize) -> String {
    format!("/load/key-c{cycle}-w{writer}")
}

/// One writer: alternately creates a fresh node and sets its key to the next counter, until
/// the first failure (the kill).
async fn write_until_failure(
    client: zk::Client,
    writer: usize,
    cycle: u32,
    seed: u64,
    ledger: Arc<Mutex<Ledger>>,
) {
    let key = key_path(cycle, writer);
    for step in 0u64.. {
        let result = if step % 2 == 0 {
            let path = format!("/load/c{cycle}-w{writer}-{step:08}");
            let data = format!("{seed:x}/{cycle}/{writer}/{step}").into_bytes();
            if let Ok(mut ledger) = ledger.lock() {
                ledger.uncertain.insert(path.clone(), data.clone());
            }
            let result = client.create(&path, &data, &persistent()).await;
            if result.is_ok()
                && let Ok(mut ledger) = ledger.lock()
            {
                ledger.uncertain.remove(&path);
                ledger.acknowledged.insert(path, data);
            }
            result.map(|_| ())
        } else {
            let counter = step;
            if let Ok(mut ledger) = ledger.lock() {
                ledger.counters.entry(key.clone()).or_default().1 = counter;
            }
            let result = client
                .set_data(&key, counter.to_string().as_bytes(), None)
                .await;
            if result.is_ok()
                && let Ok(mut ledger) = ledger.lock()
            {
                ledger.counters.entry(key.clone()).or_default().0 = Some(counter);
            }
            result.map(|_| ())
        };
        match result {
            Ok(()) => {
                if let Ok(mut ledger) = ledger.lock() {
                    ledger.written += 1;
                }
            }
            // The kill, as the client reports it: a lost connection or the socket's own error.
            Err(zk::Error::ConnectionLoss | zk::Error::Custom(_)) => break,
            Err(error) => {
                if let Ok(mut ledger) = ledger.lock() {
                    ledger
                        .unexpected
                        .push(format!("writer {writer} step {step}: {error}"));
                }
                break;
            }
        }
    }
}

/// Checks the restarted server against the ledger.
async fn verify(client: &zk::Client, ledger: &Ledger) {
    // Every acknowledged create is there with its data.
    let paths: Vec<&String> = ledger.acknowledged.keys().collect();
    for batch in paths.chunks(VERIFY_BATCH) {
        let mut reader = client.new_multi_reader();
        for path in batch {
            reader.add_get_data(path).expect("a valid path");
        }
        let results = ok("multiRead of acknowledged creates", reader.commit()).await;
        for (path, result) in batch.iter().zip(results) {
            match result {
                zk::MultiReadResult::Data { data, .. } => {
                    assert_eq!(
                        data, ledger.acknowledged[*path],
                        "acknowledged {path} has other data"
                    );
                }
                other => panic!("acknowledged create {path} lost: {other:?}"),
            }
        }
    }
    // Every key holds a counter at least as new as the last acknowledged one, and no newer
    // than the last one sent.
    for (key, &(acknowledged, sent)) in &ledger.counters {
        let (data, _) = ok("get key", client.get_data(key)).await;
        let text = String::from_utf8_lossy(&data);
        let value: u64 = text
            .parse()
            .unwrap_or_else(|_| panic!("{key} holds {text:?}, which no writer wrote"));
        if let Some(acknowledged) = acknowledged {
            assert!(
                value >= acknowledged,
                "{key} went back from acknowledged {acknowledged} to {value}"
            );
        }
        assert!(
            value <= sent,
            "{key} holds {value}, never sent (last {sent})"
        );
    }
    // Nothing appears that nobody wrote, and unacknowledged creates that made it carry the
    // data that was sent.
    let children = ok("ls /load", client.list_children("/load")).await;
    for child in children {
        let path = format!("/load/{child}");
        if ledger.acknowledged.contains_key(&path) || ledger.counters.contains_key(&path) {
            continue;
        }
        let Some(expected) = ledger.uncertain.get(&path) else {
            panic!("{path} exists but no writer created it");
        };
        let (data, _) = ok("get uncertain", client.get_data(&path)).await;
        assert_eq!(&data, expected, "unacknowledged {path} has other data");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_write() {
    let seed = std::env::var("ARBOR_DURABILITY_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| support::now_ms() as u64);
    println!("SEED={seed}");
    println!(
        "replay the kill moments: ARBOR_DURABILITY_SEED={seed} cargo test -p arbor --test durability"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // Snapshots every few hundred entries, so kills also land during snapshots and log
    // compaction.
    let mut server =
        Server::start_with(ServerOptions::default().set("snapshot_every_entries", 300));
    let setup = connect(&server.address()).await;
    ok("create /load", setup.create("/load", b"", &persistent())).await;
    drop(setup);

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for cycle in 0..=KILL_CYCLES {
        let graceful = cycle == KILL_CYCLES;
        let mut clients = Vec::new();
        for writer in 0..WRITERS {
            let client = connect(&server.address()).await;
            let key = key_path(cycle, writer);
            ok("create key", client.create(&key, b"0", &persistent())).await;
            if let Ok(mut ledger) = ledger.lock() {
                ledger.counters.insert(key, (Some(0), 0));
                ledger.written = 0;
            }
            clients.push(client);
        }
        let writers: Vec<_> = clients
            .iter()
            .cloned()
            .enumerate()
            .map(|(writer, client)| {
                tokio::spawn(write_until_failure(
                    client,
                    writer,
                    cycle,
                    seed,
                    ledger.clone(),
                ))
            })
            .collect();
        let kill_after = rng.random_range(KILL_AFTER_MS);
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        if graceful {
            assert!(server.terminate().success(), "graceful stop under load");
        } else {
            server.kill();
        }
        // A writer whose request was queued while its client noticed the loss would wait for
        // the restart: stop them all now. Whatever they had not recorded as acknowledged is
        // uncertain in the ledger, which only weakens what is checked, never falsifies it.
        for writer in &writers {
            writer.abort();
        }
        for writer in writers {
            let _ = writer.await;
        }
        drop(clients);
        let written = ledger.lock().map_or(0, |ledger| ledger.written);
        let how = if graceful { "SIGTERM" } else { "SIGKILL" };
        println!("cycle {cycle}: {how} after {kill_after} ms, {written} writes acknowledged");
        assert!(
            written >= WRITERS as u64,
            "cycle {cycle}: only {written} writes before the stop; the test proved nothing"
        );

        server.restart();
        let checker = connect(&server.address()).await;
        let snapshot = ledger
            .lock()
            .map(|ledger| ledger.clone())
            .expect("the ledger");
        assert!(snapshot.unexpected.is_empty(), "{:?}", snapshot.unexpected);
        verify(&checker, &snapshot).await;
        println!(
            "cycle {cycle}: {} acknowledged creates and {} keys verified ({} unacknowledged)",
            snapshot.acknowledged.len(),
            snapshot.counters.len(),
            snapshot.uncertain.len()
        );
    }
}

/// The checker itself: fed a ledger that disagrees with the server, it must object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_objects_to_lost_changed_or_phantom_writes() {
    let server = Server::start();
    let client = connect(&server.address()).await;
    ok("create /load", client.create("/load", b"", &persistent())).await;
    ok("create a", client.create("/load/a", b"a", &persistent())).await;
    ok(
        "create key",
        client.create("/load/key", b"5", &persistent()),
    )
    .await;
    let good = Ledger {
        acknowledged: BTreeMap::from([("/load/a".to_owned(), b"a".to_vec())]),
        counters: BTreeMap::from([("/load/key".to_owned(), (Some(5), 6))]),
        ..Ledger::default()
    };
    verify(&client, &good).await;

    let mut lost = good.clone();
    lost.acknowledged
        .insert("/load/lost".to_owned(), b"x".to_vec());
    let mut changed = good.clone();
    changed
        .acknowledged
        .insert("/load/a".to_owned(), b"other".to_vec());
    let mut went_back = good.clone();
    went_back
        .counters
        .insert("/load/key".to_owned(), (Some(6), 6));
    let mut never_sent = good.clone();
    never_sent
        .counters
        .insert("/load/key".to_owned(), (Some(3), 4));
    let mut phantom = good.clone();
    phantom.acknowledged.clear();
    for (what, ledger) in [
        ("lost", lost),
        ("changed", changed),
        ("went back", went_back),
        ("never sent", never_sent),
        ("phantom", phantom),
    ] {
        let client = client.clone();
        let checked = tokio::spawn(async move { verify(&client, &ledger).await }).await;
        assert!(
            checked.is_err_and(|error| error.is_panic()),
            "the checker accepted a {what} write"
        );
    }
}
