//! Deterministic simulation of arbor-raft clusters (in the manner of TigerBeetle's VOPR).
//!
//! One `u64` seed drives everything: the cluster shape (1, 3, 5 or 7 voters plus spare
//! nodes for membership changes), the fault mix, every fault and every client action. A
//! faulty safety phase is followed by a fault-free liveness phase; the checker compares
//! every replica against one canonical history after every step.
//!
//! Environment:
//! * `ARBOR_SIM_SEEDS=N` — how many seeds `simulate_many_seeds` runs (default 2000).
//! * `ARBOR_SIM_SEED=S` — replay one seed (with a trace when `ARBOR_SIM_TRACE=1`).
//! * `ARBOR_SIM_SOAK=1` — run random seeds until one fails.

mod sim {
    pub mod checker;
    pub mod faults;
    pub mod run;
    pub mod world;
}

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arbor_raft::{Bugs, LogIndex, NodeId, ReadOnlyOption, Role};
use sim::checker::{Checker, Violation};
use sim::run::{Profile, run_seed, run_seed_with};
use sim::world::{ELECTION_TICKS, Faults, Stats, World};

const DEFAULT_SEEDS: u64 = 2000;
/// The first seed CI runs; runs are reproducible across machines.
const BASE_SEED: u64 = 0xA5B0_0000;

fn replay_command(seed: u64) -> String {
    format!(
        "ARBOR_SIM_SEED={seed} ARBOR_SIM_TRACE=1 cargo test -p arbor-raft --test sim -- \
         simulate_many_seeds --nocapture"
    )
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn check_seed(seed: u64, trace: bool) {
    println!("SEED={seed}");
    if let Err(violation) = run_seed(seed, Bugs::default(), trace) {
        panic!(
            "SEED={seed}: {}\nreplay with: {}",
            violation.0,
            replay_command(seed)
        );
    }
}

#[test]
fn simulate_many_seeds() {
    if let Some(seed) = env_u64("ARBOR_SIM_SEED") {
        check_seed(seed, std::env::var("ARBOR_SIM_TRACE").is_ok());
        return;
    }
    if std::env::var("ARBOR_SIM_SOAK").is_ok() {
        let base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        println!("soak: base seed {base}");
        for i in 0.. {
            let seed = base.wrapping_add(i);
            if i % 1000 == 0 {
                println!("soak: {i} seeds done");
            }
            check_seed(seed, false);
        }
    }
    let count = env_u64("ARBOR_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let started = Instant::now();
    let mut committed = 0;
    let mut reads = 0;
    let mut guests = 0;
    let mut snapshots = SnapshotTally::default();
    for i in 0..count {
        let seed = BASE_SEED + i;
        println!("SEED={seed}");
        match run_seed(seed, Bugs::default(), false) {
            Ok(outcome) => {
                committed += outcome.committed;
                reads += outcome.reads_checked;
                guests += outcome.stats.guests_attached;
                snapshots.add(&outcome.stats);
            }
            Err(violation) => panic!(
                "SEED={seed}: {}\nreplay with: {}",
                violation.0,
                replay_command(seed)
            ),
        }
    }
    eprintln!(
        "simulated {count} seeds in {:?}: {committed} proposals committed, {reads} reads checked, \
         {guests} guests attached",
        started.elapsed()
    );
    eprintln!("snapshots: {snapshots:?}");
}

/// What the snapshot transfers of many runs added up to.
#[derive(Debug, Default)]
struct SnapshotTally {
    installed: u64,
    largest_installed_bytes: u64,
    chunks_sent: u64,
    chunks_below_ack: u64,
    acks_delivered: u64,
    crashes_mid_transfer: u64,
}

impl SnapshotTally {
    fn add(&mut self, stats: &Stats) {
        self.installed += stats.snapshots_installed;
        self.largest_installed_bytes = self
            .largest_installed_bytes
            .max(stats.largest_snapshot_installed_bytes);
        self.chunks_sent += stats.snapshot_chunks_sent;
        self.chunks_below_ack += stats.snapshot_chunks_below_ack;
        self.acks_delivered += stats.snapshot_acks_delivered;
        self.crashes_mid_transfer += stats.crashes_mid_snapshot;
    }
}

/// Runs seeds with `bugs` switched on and returns the first seed the simulator catches.
fn first_caught(bugs: Bugs, profile: Option<&Profile>, seeds: u64) -> Option<(u64, Violation)> {
    (0..seeds)
        .map(|i| BASE_SEED + 7_000_000 + i)
        .find_map(|seed| {
            run_seed_with(seed, bugs, profile, false)
                .err()
                .map(|violation| (seed, violation))
        })
}

/// Crash-heavy: many short crashes, duplicated and delayed messages, no membership noise.
fn crash_heavy(voters: usize) -> Profile {
    Profile {
        voters,
        append_bytes_max: None,
        safety_ticks: None,
        snapshot_pad_bytes: None,
        faults: Faults {
            drop_per_mille: 50,
            duplicate_per_mille: 200,
            delay_ticks_max: 6,
            partition_per_mille: 30,
            crash_per_mille: 80,
            pause_per_mille: 5,
            conf_change_per_mille: 0,
            transfer_per_mille: 0,
            snapshot_per_mille: 0,
            persist_delay_ticks_max: 4,
            clock_skew_every: 10,
            guest_per_mille: 0,
        },
    }
}

fn assert_caught(name: &str, bugs: Bugs, seeds: u64) {
    assert_caught_with(name, bugs, None, seeds);
}

fn assert_caught_with(name: &str, bugs: Bugs, profile: Option<&Profile>, seeds: u64) {
    match first_caught(bugs, profile, seeds) {
        Some((seed, violation)) => {
            println!("{name}: caught at SEED={seed}: {}", violation.0);
        }
        None => panic!("{name}: the simulator did not catch the bug within {seeds} seeds"),
    }
}

/// Partition-heavy, one entry per append, long runs: figure 8 needs a quorum to
/// acknowledge an earlier-term entry before the new leader's no-op reaches it, then a leader
/// with a higher last term that lacks the entry.
fn figure8_profile() -> Profile {
    Profile {
        voters: 5,
        append_bytes_max: Some(1),
        safety_ticks: Some(1500),
        snapshot_pad_bytes: None,
        faults: Faults {
            drop_per_mille: 20,
            duplicate_per_mille: 50,
            delay_ticks_max: 3,
            partition_per_mille: 100,
            crash_per_mille: 20,
            pause_per_mille: 20,
            conf_change_per_mille: 0,
            transfer_per_mille: 0,
            snapshot_per_mille: 0,
            persist_delay_ticks_max: 2,
            clock_skew_every: 10,
            guest_per_mille: 0,
        },
    }
}

#[test]
fn simulator_catches_commit_of_prior_term_entries() {
    assert_caught_with(
        "figure 8",
        Bugs {
            commit_prior_term: true,
            ..Bugs::default()
        },
        Some(&figure8_profile()),
        300,
    );
}

/// The profile that catches figure 8 must not fail a correct core.
#[test]
fn figure8_profile_passes_without_the_bug() {
    if let Some((seed, violation)) = first_caught(Bugs::default(), Some(&figure8_profile()), 120) {
        panic!("SEED={seed}: {}", violation.0);
    }
}

#[test]
fn simulator_catches_unpersisted_vote() {
    assert_caught_with(
        "forget vote",
        Bugs {
            forget_vote: true,
            ..Bugs::default()
        },
        Some(&crash_heavy(3)),
        400,
    );
}

#[test]
fn simulator_catches_skipped_truncation() {
    assert_caught(
        "skip truncation",
        Bugs {
            skip_truncation: true,
            ..Bugs::default()
        },
        400,
    );
}

#[test]
fn simulator_catches_truncation_of_matching_suffix() {
    assert_caught(
        "truncate matching suffix",
        Bugs {
            truncate_matching_suffix: true,
            ..Bugs::default()
        },
        400,
    );
}

#[test]
fn simulator_catches_read_index_before_noop_commits() {
    assert_caught(
        "read index before no-op",
        Bugs {
            read_index_before_noop: true,
            ..Bugs::default()
        },
        400,
    );
}

#[test]
fn simulator_catches_ack_before_persist() {
    assert_caught_with(
        "ack before persist",
        Bugs {
            ack_before_persist: true,
            ..Bugs::default()
        },
        Some(&crash_heavy(3)),
        400,
    );
}

/// A leadership transfer whose new leader the old one cannot hear: the old leader must
/// stop answering lease reads at once (pitfall 4). Returns the violation, if any.
fn lease_transfer_scenario(seed: u64, bugs: Bugs) -> Result<(), Violation> {
    // A long election timeout gives a long lease, so the new leader commits inside it.
    let mut world = World::new_with(seed, 3, 0, ReadOnlyOption::LeaseBased, bugs, &|config| {
        config.election_timeout_ticks = 3 * ELECTION_TICKS;
    });
    world.faults = Faults::none();
    world.trace = std::env::var("ARBOR_SIM_TRACE").is_ok();
    let leader = loop {
        world.step(false, false)?;
        if let Some(l) = world.leader() {
            break l;
        }
        if world.now > 100 * ELECTION_TICKS {
            return Err(Violation("no first leader".into()));
        }
    };
    for _ in 0..3 {
        world.propose_on(leader);
        world.step(false, false)?;
    }
    // Settle until the leader holds a fresh lease.
    for _ in 0..(3 * ELECTION_TICKS) {
        world.step(false, false)?;
        let fresh = world.nodes[&leader]
            .raw
            .as_ref()
            .and_then(|r| r.lease_remaining_ticks())
            .is_some_and(|t| t >= 2 * ELECTION_TICKS);
        if fresh {
            break;
        }
    }
    let others: Vec<NodeId> = world.ids().into_iter().filter(|&i| i != leader).collect();
    for &o in &others {
        world.block(o, leader, u64::MAX);
    }
    if let Some(raw) = world.nodes.get_mut(&leader).and_then(|n| n.raw.as_mut()) {
        if world.trace {
            println!(
                "t={} transfer from {leader} lease={:?}",
                world.now,
                raw.lease_remaining_ticks()
            );
        }
        raw.transfer_leader(others[0]);
    }
    for _ in 0..(2 * ELECTION_TICKS) {
        world.step(false, false)?;
    }
    Ok(())
}

#[test]
fn simulator_catches_lease_kept_through_transfer() {
    let bugs = Bugs {
        lease_survives_transfer: true,
        ..Bugs::default()
    };
    let caught = (0..20).find_map(|seed| lease_transfer_scenario(seed, bugs).err());
    match caught {
        Some(violation) => println!("lease survives transfer: caught: {}", violation.0),
        None => panic!("lease survives transfer: not caught in 20 seeds"),
    }
    for seed in 0..20 {
        if let Err(violation) = lease_transfer_scenario(seed, Bugs::default()) {
            panic!(
                "correct core failed the lease scenario, seed {seed}: {}",
                violation.0
            );
        }
    }
}

/// The leader dies for good; the two survivors must elect one of them within a bounded time.
fn survivors_elect(seed: u64, bugs: Bugs) -> Result<(), Violation> {
    let mut world = World::new(seed, 3, 0, ReadOnlyOption::Safe, bugs);
    world.faults = Faults::none();
    let leader = loop {
        world.step(false, false)?;
        if let Some(l) = world.leader() {
            break l;
        }
        if world.now > 100 * ELECTION_TICKS {
            return Err(Violation("no first leader".into()));
        }
    };
    for _ in 0..ELECTION_TICKS {
        world.step(false, false)?;
    }
    world.crash(leader, u64::MAX);
    let deadline = world.now + 60 * ELECTION_TICKS;
    while world.now < deadline {
        world.step(false, false)?;
        if world.leader().is_some() {
            return Ok(());
        }
    }
    Err(Violation(format!(
        "liveness: no leader among the survivors of {leader} within {} ticks",
        60 * ELECTION_TICKS
    )))
}

#[test]
fn simulator_catches_pre_vote_that_keeps_the_leader() {
    let bugs = Bugs {
        pre_vote_keeps_leader: true,
        ..Bugs::default()
    };
    match (0..200).find_map(|seed| survivors_elect(seed, bugs).err().map(|v| (seed, v))) {
        Some((seed, violation)) => println!(
            "pre-vote keeps leader: caught at seed {seed}: {}",
            violation.0
        ),
        None => panic!("pre-vote keeps leader: not caught in 200 seeds"),
    }
    for seed in 0..200 {
        if let Err(violation) = survivors_elect(seed, Bugs::default()) {
            panic!(
                "correct core failed the survivors scenario, seed {seed}: {}",
                violation.0
            );
        }
    }
}

#[test]
fn checker_objects_to_a_known_bad_history() {
    let mut checker = Checker::default();
    checker
        .observe_leader(arbor_raft::Term(2), NodeId(1))
        .expect("first leader of term 2");
    assert!(
        checker
            .observe_leader(arbor_raft::Term(2), NodeId(2))
            .is_err(),
        "two leaders in one term"
    );
    checker
        .observe_commit(
            NodeId(1),
            LogIndex(5),
            arbor_raft::Term(2),
            arbor_raft::Term(2),
        )
        .expect("first commit");
    assert!(
        checker
            .observe_commit(
                NodeId(2),
                LogIndex(5),
                arbor_raft::Term(3),
                arbor_raft::Term(3)
            )
            .is_err(),
        "a committed entry replaced"
    );
    checker.read_requested(b"r".to_vec());
    assert!(
        checker.read_answered(NodeId(1), b"r", LogIndex(4)).is_err(),
        "a read older than a known commit"
    );
    assert!(checker.lease_held(NodeId(1), LogIndex(3)).is_err());
}

/// The classic question: a stop-the-world pause freezes the leader and its heartbeats stop.
/// The others elect a new leader; when the old one wakes it learns the higher term, becomes
/// follower, loses every entry it had that was never committed, and catches up.
#[test]
fn paused_leader_is_replaced_and_truncates_its_uncommitted_entries() {
    let mut world = World::new(42, 3, 0, ReadOnlyOption::Safe, Bugs::default());
    world.faults = Faults::none();
    world.trace = std::env::var("ARBOR_SIM_TRACE").is_ok();
    let leader = loop {
        world.step(false, false).expect("safe");
        if let Some(l) = world.leader() {
            break l;
        }
        assert!(world.now < 50 * ELECTION_TICKS, "no first leader");
    };
    for _ in 0..5 {
        assert!(world.propose_on(leader));
        world.step(false, false).expect("safe");
    }
    for _ in 0..(3 * ELECTION_TICKS) {
        world.step(false, false).expect("safe");
    }
    let old_term = world.nodes[&leader].raw.as_ref().unwrap().status().term;
    let committed_before = world.nodes[&leader].raw.as_ref().unwrap().status().commit;
    // Cut the leader off, let it accept proposals nobody else sees, then freeze it.
    let others: Vec<NodeId> = world.ids().into_iter().filter(|&i| i != leader).collect();
    world.isolate(leader, u64::MAX);
    for _ in 0..3 {
        assert!(world.propose_on(leader));
    }
    world.step(false, false).expect("safe");
    let stale_last = world.nodes[&leader]
        .raw
        .as_ref()
        .unwrap()
        .status()
        .last_index;
    assert!(stale_last > committed_before);
    world.pause(leader, u64::MAX);
    world.unblock_all();
    // The others elect a new leader and commit new entries at the stale indexes.
    let new_leader = loop {
        world.step(false, false).expect("safe");
        if let Some(l) = world.leader()
            && l != leader
        {
            break l;
        }
        assert!(
            world.now < 100 * ELECTION_TICKS,
            "no new leader while the old one sleeps"
        );
    };
    for _ in 0..5 {
        assert!(world.propose_on(new_leader));
        world.step(false, false).expect("safe");
    }
    for _ in 0..(2 * ELECTION_TICKS) {
        world.step(false, false).expect("safe");
    }
    let new_commit = world.nodes[&new_leader]
        .raw
        .as_ref()
        .unwrap()
        .status()
        .commit;
    assert!(
        new_commit > stale_last,
        "new leader committed over the stale indexes"
    );
    // Wake the old leader: missed ticks first (monotonic clock), then the messages.
    world.resume(leader);
    let status = world.nodes[&leader].raw.as_ref().unwrap().status();
    assert_ne!(
        status.role,
        Role::Leader,
        "check-quorum deposes it as it wakes"
    );
    for _ in 0..(4 * ELECTION_TICKS) {
        world.step(false, false).expect("safe");
    }
    let node = &world.nodes[&leader];
    let raw = node.raw.as_ref().unwrap();
    let status = raw.status();
    assert_eq!(status.role, Role::Follower);
    assert!(status.term > old_term);
    assert_eq!(status.leader, Some(new_leader));
    let reference = world.nodes[&others[0]].raw.as_ref().unwrap();
    for i in (committed_before.0 + 1)..=stale_last.0 {
        assert_eq!(
            raw.term_at(LogIndex(i)),
            reference.term_at(LogIndex(i)),
            "uncommitted entry {i} of the old leader was truncated and replaced"
        );
    }
    assert!(node.applied >= new_commit, "caught up");
    assert_eq!(
        world.checker.digest_at(node.applied),
        Some(node.digest),
        "same state as everyone"
    );
}
