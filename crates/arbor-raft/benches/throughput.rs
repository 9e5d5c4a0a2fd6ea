//! Entries per second through an in-memory 3-node cluster: propose on the leader, replicate,
//! persist into `MemStorage`, commit and apply on every node. Single-threaded, so wall time
//! per entry is CPU time per entry (of all three nodes together).
//!
//! Run: `bash crates/arbor-raft/bench.sh` (rewrites the figures in BENCHMARKS.md) or
//! `cargo bench -p arbor-raft --bench throughput`.

use arbor_raft::{ConfState, Config, MemStorage, Message, NodeId, RawNode, Role};
use bytes::Bytes;

fn main() {
    if std::env::var("ARBOR_BENCH_CPU").is_ok() {
        for batch in [1, 10, 100] {
            cpu_per_entry(batch, 200_000);
        }
        return;
    }
    divan::main();
}

/// User + system CPU seconds of this process so far, from `/proc/self/stat` (Linux; clock
/// ticks of 1/100 s).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// Measures CPU time (not wall time) per entry over `entries` entries: immune to other
/// processes competing for the cores.
fn cpu_per_entry(batch: usize, entries: usize) {
    let mut cluster = Cluster::new();
    let payload = Bytes::from(vec![7u8; 128]);
    let wall = std::time::Instant::now();
    let cpu_start = process_cpu_seconds().unwrap_or(0.0);
    let mut proposed = 0;
    while proposed < entries {
        if cluster.nodes[0]
            .propose(vec![payload.clone(); batch])
            .is_ok()
        {
            proposed += batch;
        }
        cluster.round();
    }
    let target = cluster.nodes[0].status().last_index;
    cluster.run_until(|c| c.nodes.iter().all(|n| n.status().applied >= target));
    let cpu = process_cpu_seconds().unwrap_or(0.0) - cpu_start;
    let wall = wall.elapsed().as_secs_f64();
    println!(
        "cpu: batch={batch} entries={proposed} cpu_us_per_entry={:.3} entries_per_cpu_s={:.0} \
         wall_s={wall:.3}",
        cpu * 1e6 / proposed as f64,
        proposed as f64 / cpu.max(1e-9)
    );
}

const NODES: u64 = 3;
const ENTRIES_PER_ITERATION: usize = 1000;

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    inbox: Vec<Message>,
}

impl Cluster {
    fn new() -> Cluster {
        let conf = ConfState::with_voters((1..=NODES).map(NodeId));
        let nodes = (1..=NODES)
            .map(|i| {
                let mut config = Config::new(NodeId(i));
                config.inflight_msgs_max = 64;
                RawNode::new(&config, MemStorage::new_with_conf_state(conf.clone()))
                    .expect("valid config")
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            inbox: Vec::new(),
        };
        cluster.nodes[0].campaign();
        cluster.run_until(|c| c.nodes[0].status().role == Role::Leader);
        cluster
    }

    /// One round: every node handles its Ready, then every message is delivered.
    fn round(&mut self) {
        for node in &mut self.nodes {
            if !node.has_ready() {
                continue;
            }
            let mut ready = node.ready();
            self.inbox.append(&mut ready.messages);
            if let Some(snapshot) = &ready.snapshot {
                node.store_mut()
                    .apply_snapshot(snapshot.clone())
                    .expect("newer snapshot");
            }
            node.store_mut().append(&ready.entries);
            if let Some(hard_state) = ready.hard_state {
                node.store_mut().set_hard_state(hard_state);
            }
            self.inbox.append(&mut ready.persisted_messages);
            divan::black_box(&ready.committed_entries);
            node.advance(ready);
        }
        for message in std::mem::take(&mut self.inbox) {
            let to = (message.to.0 - 1) as usize;
            self.nodes[to].step(message).expect("addressed to it");
        }
    }

    fn run_until(&mut self, done: impl Fn(&Cluster) -> bool) {
        for _ in 0..1_000_000 {
            if done(self) {
                return;
            }
            self.round();
        }
        panic!("cluster made no progress");
    }
}

#[divan::bench(args = [1, 10, 100])]
fn replicate_commit_apply(bencher: divan::Bencher, batch: usize) {
    let mut cluster = Cluster::new();
    let payload = Bytes::from(vec![7u8; 128]);
    bencher
        .counter(divan::counter::ItemsCount::new(ENTRIES_PER_ITERATION))
        .bench_local(|| {
            let mut proposed = 0;
            while proposed < ENTRIES_PER_ITERATION {
                let batch_payloads = vec![payload.clone(); batch];
                if cluster.nodes[0].propose(batch_payloads).is_ok() {
                    proposed += batch;
                }
                cluster.round();
            }
            let target = cluster.nodes[0].status().last_index;
            cluster.run_until(|c| c.nodes.iter().all(|n| n.status().applied >= target));
        });
}
