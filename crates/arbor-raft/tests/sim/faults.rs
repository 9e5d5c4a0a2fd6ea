//! The simulator's seeded RNG and the fault mix of a run.

/// Deterministic RNG for the simulator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.below(items.len() as u64) as usize])
        }
    }
}

/// The fault mix of one run, drawn from its seed.
#[derive(Clone, Debug)]
pub struct Faults {
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    /// Extra delivery delay, in ticks, drawn uniformly from `[0, delay_ticks_max]`.
    pub delay_ticks_max: u64,
    pub partition_per_mille: u64,
    pub crash_per_mille: u64,
    pub pause_per_mille: u64,
    pub conf_change_per_mille: u64,
    /// Leadership transfers started by the simulated operator.
    pub transfer_per_mille: u64,
    pub snapshot_per_mille: u64,
    /// How long a Ready may wait before it is persisted (its `messages` leave at once).
    pub persist_delay_ticks_max: u64,
    /// Clock drift: every this many ticks a slow node misses a tick and a fast node gets an
    /// extra one (0: perfect clocks). At 10 or more, two nodes drift apart by at most 2 ticks
    /// per election timeout of 10, within `lease_drift_ticks`.
    pub clock_skew_every: u64,
    /// Nodes outside the membership attached to the leader as guests (drawn from the world's
    /// separate guest RNG, so the other draws of a seed stay as they were).
    pub guest_per_mille: u64,
}

impl Faults {
    pub fn random(rng: &mut Rng) -> Faults {
        Faults {
            drop_per_mille: [0, 10, 50, 200][rng.below(4) as usize],
            duplicate_per_mille: [0, 20, 100][rng.below(3) as usize],
            delay_ticks_max: [0, 2, 6][rng.below(3) as usize],
            partition_per_mille: [0, 5, 20][rng.below(3) as usize],
            crash_per_mille: [0, 5, 20][rng.below(3) as usize],
            pause_per_mille: [0, 3, 10][rng.below(3) as usize],
            conf_change_per_mille: [0, 10, 40][rng.below(3) as usize],
            transfer_per_mille: [0, 5, 20][rng.below(3) as usize],
            snapshot_per_mille: [0, 20, 80][rng.below(3) as usize],
            persist_delay_ticks_max: [0, 1, 4][rng.below(3) as usize],
            clock_skew_every: [0, 10, 20][rng.below(3) as usize],
            guest_per_mille: 20,
        }
    }

    pub fn none() -> Faults {
        Faults {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            delay_ticks_max: 0,
            partition_per_mille: 0,
            crash_per_mille: 0,
            pause_per_mille: 0,
            conf_change_per_mille: 0,
            transfer_per_mille: 0,
            snapshot_per_mille: 0,
            persist_delay_ticks_max: 0,
            clock_skew_every: 0,
            guest_per_mille: 0,
        }
    }
}
