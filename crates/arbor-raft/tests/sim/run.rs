//! One simulation run: a faulty safety phase, then a fault-free liveness phase.

use std::panic::{AssertUnwindSafe, catch_unwind};

use arbor_raft::{Bugs, ReadOnlyOption, Role};

use super::checker::Violation;
use super::world::{ELECTION_TICKS, Faults, Rng, Stats, World};

/// Ticks after healing within which a leader must exist.
pub const LIVENESS_LEADER_TICKS: u64 = 40 * ELECTION_TICKS;
/// Ticks after a leader exists within which fresh proposals must commit everywhere.
pub const LIVENESS_COMMIT_TICKS: u64 = 40 * ELECTION_TICKS;
/// Fresh proposals made after healing.
pub const LIVENESS_PROPOSALS: usize = 3;

/// What a run looked like.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub committed: usize,
    pub reads_checked: u64,
    pub stats: Stats,
}

/// The shape of a run, drawn from its seed.
pub struct Shape {
    pub voters: usize,
    pub spares: usize,
    pub read_only: ReadOnlyOption,
    pub safety_ticks: u64,
    /// Padding of each snapshot: most runs send a few chunks, some a hundred.
    pub snapshot_pad_bytes: usize,
}

impl Shape {
    pub fn from_seed(seed: u64) -> Shape {
        let mut rng = Rng::new(seed ^ 0x5eed_5eed_5eed_5eed);
        Shape {
            voters: [1, 3, 3, 5, 5, 7][rng.below(6) as usize],
            spares: rng.below(3) as usize,
            read_only: if rng.chance(500) {
                ReadOnlyOption::Safe
            } else {
                ReadOnlyOption::LeaseBased
            },
            safety_ticks: 200 + rng.below(300),
            snapshot_pad_bytes: [150, 150, 1500, 6000][rng.below(4) as usize],
        }
    }
}

/// Runs one seed; a panic inside the core counts as a failure too.
pub fn run_seed(seed: u64, bugs: Bugs, trace: bool) -> Result<Outcome, Violation> {
    run_seed_with(seed, bugs, None, trace)
}

/// Runs one seed with a chosen fault profile (`None`: drawn from the seed).
pub fn run_seed_with(
    seed: u64,
    bugs: Bugs,
    profile: Option<&Profile>,
    trace: bool,
) -> Result<Outcome, Violation> {
    match catch_unwind(AssertUnwindSafe(|| {
        run_seed_inner(seed, bugs, profile, trace)
    })) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            Err(Violation(format!("panic: {message}")))
        }
    }
}

/// A fault profile that aims the simulator at one class of bug.
pub struct Profile {
    pub voters: usize,
    pub faults: Faults,
    /// Overrides `append_bytes_max` (1 sends one entry per append).
    pub append_bytes_max: Option<u64>,
    /// Overrides the length of the faulty phase.
    pub safety_ticks: Option<u64>,
    /// Overrides the padding of each snapshot.
    pub snapshot_pad_bytes: Option<usize>,
}

fn run_seed_inner(
    seed: u64,
    bugs: Bugs,
    profile: Option<&Profile>,
    trace: bool,
) -> Result<Outcome, Violation> {
    let mut shape = Shape::from_seed(seed);
    if let Some(p) = profile {
        shape.voters = p.voters;
        shape.safety_ticks = p.safety_ticks.unwrap_or(shape.safety_ticks);
        shape.snapshot_pad_bytes = p.snapshot_pad_bytes.unwrap_or(shape.snapshot_pad_bytes);
    }
    let append_bytes_max = profile.and_then(|p| p.append_bytes_max);
    let mut world = World::new_with(
        seed,
        shape.voters,
        shape.spares,
        shape.read_only,
        bugs,
        &|config| {
            if let Some(max) = append_bytes_max {
                config.append_bytes_max = max;
            }
        },
    );
    if let Some(p) = profile {
        world.faults = p.faults.clone();
    }
    world.trace = trace;
    world.snapshot_pad_bytes = shape.snapshot_pad_bytes;
    if trace {
        println!(
            "shape: voters={} spares={} snapshot_pad_bytes={} faults={:?}",
            shape.voters, shape.spares, shape.snapshot_pad_bytes, world.faults
        );
    }
    for _ in 0..shape.safety_ticks {
        world.step(true, true)?;
    }
    world.heal();
    liveness(&mut world)?;
    if trace {
        println!("stats: {:?}", world.stats);
    }
    Ok(Outcome {
        committed: world.committed_proposals.len(),
        reads_checked: world.checker.reads_checked,
        stats: world.stats.clone(),
    })
}

/// After healing: a leader within bounded time, then fresh proposals committed and applied
/// by every member of the configuration.
pub fn liveness(world: &mut World) -> Result<(), Violation> {
    let deadline = world.now + LIVENESS_LEADER_TICKS;
    let leader = loop {
        world.step(false, false)?;
        if let Some(leader) = world.leader() {
            break leader;
        }
        if world.now > deadline {
            if world.trace {
                world.dump();
            }
            return Err(Violation(format!(
                "liveness: no leader {LIVENESS_LEADER_TICKS} ticks after healing"
            )));
        }
    };
    let _ = leader;
    let deadline = world.now + LIVENESS_COMMIT_TICKS;
    let mut accepted = 0;
    loop {
        if accepted < LIVENESS_PROPOSALS
            && let Some(leader) = world.leader()
            && world.propose_on(leader)
        {
            accepted += 1;
        }
        world.step(false, false)?;
        if accepted == LIVENESS_PROPOSALS && converged(world) {
            return Ok(());
        }
        if world.now > deadline {
            if world.trace {
                world.dump();
            }
            return Err(Violation(format!(
                "liveness: proposals not committed everywhere {LIVENESS_COMMIT_TICKS} ticks \
                 after a leader appeared ({} of {LIVENESS_PROPOSALS} accepted)",
                accepted
            )));
        }
    }
}

/// Whether every member of the leader's configuration applied the leader's commit index.
fn converged(world: &World) -> bool {
    let Some(leader) = world.leader() else {
        return false;
    };
    let Some(status) = world.nodes[&leader].raw.as_ref().map(|r| r.status()) else {
        return false;
    };
    if status.role != Role::Leader || status.conf_state.is_joint() {
        return false;
    }
    status.conf_state.all_nodes().iter().all(|id| {
        world.nodes[id]
            .raw
            .as_ref()
            .is_some_and(|r| r.status().applied >= status.commit)
    }) && world
        .pending_proposals
        .iter()
        .all(|(_, &term)| term < status.term)
}
