//! Loads a million znodes of 100 bytes and reports memory per node and the cost of a
//! snapshot: `cargo run --release -p arbor-tree --example million [nodes]`.
//!
//! The figures are RSS deltas read from /proc/self/statm (Linux), so they include allocator
//! overhead and fragmentation: what an operator would see. `ZkDataTreeMemory.java` beside
//! this file runs the same workload on ZooKeeper's own `DataTree` for comparison.
//!
//! Measured on the 2-core dev machine (2026-11, arbor-tree with `Arc`'d nodes), 1M znodes:
//! arbor-tree 355 bytes/znode RSS; clone 130 ns–10 µs; write_snapshot 0.23 s CPU for 151 MiB;
//! read_snapshot 1.4 s CPU. ZooKeeper 3.8.0's DataTree (Debian, OpenJDK 17, -Xmx8g):
//! 441 bytes/znode of live heap after GC, 1111 bytes/znode RSS.

use std::io;
use std::time::Instant;

use arbor_proto::{Acl, CreateRequest, SessionId, SetDataRequest, Zxid};
use arbor_tree::{Command, DataTree, TreeConfig, Txn, WriteRequest};

const CHILDREN_PER_PARENT: usize = 1_000;
const DATA_BYTES: usize = 100;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// CPU time of this thread in ns (/proc/thread-self/schedstat): wall time on a shared
/// machine includes waiting for a core.
fn cpu_ns() -> u64 {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    schedstat
        .split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .unwrap_or(0)
}

/// Wall and CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, String) {
    let (wall, cpu) = (Instant::now(), cpu_ns());
    let value = f();
    let (wall, cpu) = (wall.elapsed(), cpu_ns() - cpu);
    (
        value,
        format!(
            "{wall:?} wall, {:?} cpu",
            std::time::Duration::from_nanos(cpu)
        ),
    )
}

struct Driver {
    tree: DataTree,
    counter: u32,
    session_id: SessionId,
}

impl Driver {
    fn apply(&mut self, command: Command) {
        self.counter += 1;
        let txn = Txn {
            time_ms: 1_700_000_000_000 + i64::from(self.counter),
            command,
        };
        let applied = self.tree.apply(Zxid::from_parts(1, self.counter), &txn);
        assert!(applied.result.is_ok(), "{:?}", applied.result);
    }

    fn write(&mut self, request: WriteRequest) {
        let command = Command::Request {
            session_id: self.session_id,
            identities: Vec::new(),
            request,
        };
        self.apply(command);
    }
}

fn create(path: String, data: &[u8]) -> WriteRequest {
    WriteRequest::Create(CreateRequest {
        path,
        data: Some(data.to_vec().into()),
        acl: Acl::open_unsafe(),
        flags: 0,
    })
}

fn main() {
    let nodes: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(1_000_000);
    let parents = nodes.div_ceil(CHILDREN_PER_PARENT);
    let data = [b'x'; DATA_BYTES];

    let rss_start = rss_bytes();
    let mut driver = Driver {
        tree: DataTree::new(TreeConfig::default()),
        counter: 0,
        session_id: SessionId(0x0100_0000_0000_0001),
    };
    driver.apply(Command::CreateSession {
        session_id: driver.session_id,
        timeout_ms: 30_000,
        password: vec![0; 16],
    });
    let mut created = 0;
    let (load_cpu, load) = (cpu_ns(), Instant::now());
    for parent in 0..parents {
        driver.write(create(format!("/p{parent:06}"), &[]));
        for child in 0..CHILDREN_PER_PARENT.min(nodes - created) {
            driver.write(create(format!("/p{parent:06}/n{child:010}"), &data));
            created += 1;
        }
    }
    let load = load.elapsed();
    let load_cpu = std::time::Duration::from_nanos(cpu_ns() - load_cpu);
    let rss_loaded = rss_bytes();
    let total_nodes = driver.tree.stats().node_count;
    println!(
        "loaded {total_nodes} znodes ({created} of {DATA_BYTES} B) in {load:?} wall, {load_cpu:?} cpu: {:.0} applies per cpu-second",
        (created + parents) as f64 / load_cpu.as_secs_f64()
    );
    println!(
        "rss delta {:.1} MiB = {:.0} bytes/znode",
        (rss_loaded - rss_start) as f64 / (1 << 20) as f64,
        (rss_loaded - rss_start) as f64 / total_nodes as f64
    );

    let (frozen, clone_time) = timed(|| driver.tree.clone());
    println!("clone (snapshot stall): {clone_time}");

    // Writes right after the clone pay copy-on-write of the map paths they touch.
    let writes = 10_000;
    let (cow_cpu, cow) = (cpu_ns(), Instant::now());
    for i in 0..writes {
        let parent = (i * 7919) % parents;
        driver.write(WriteRequest::SetData(SetDataRequest {
            path: format!(
                "/p{parent:06}/n{:010}",
                i % CHILDREN_PER_PARENT.min(created)
            ),
            data: Some(data.to_vec().into()),
            version: -1,
        }));
    }
    let (cow, cow_cpu) = (cow.elapsed(), cpu_ns() - cow_cpu);
    println!(
        "{writes} setData after the clone: {cow:?} wall, {:.1} us cpu each; rss now +{:.1} MiB",
        cow_cpu as f64 / 1e3 / writes as f64,
        (rss_bytes() - rss_loaded) as f64 / (1 << 20) as f64
    );

    let mut sink = CountingSink(0);
    let ((), write_time) = timed(|| {
        frozen
            .write_snapshot(&mut sink)
            .expect("sink does not fail")
    });
    println!(
        "write_snapshot: {write_time}, {:.1} MiB",
        sink.0 as f64 / (1 << 20) as f64
    );

    let mut bytes = Vec::with_capacity(sink.0 as usize);
    frozen
        .write_snapshot(&mut bytes)
        .expect("vec does not fail");
    drop(frozen);
    let (restored, read_time) = timed(|| {
        DataTree::read_snapshot(&mut &bytes[..], TreeConfig::default())
            .expect("own snapshot reads back")
    });
    println!("read_snapshot: {read_time}");
    assert_eq!(restored.stats().node_count, total_nodes);
}

struct CountingSink(u64);

impl io::Write for CountingSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0 += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
