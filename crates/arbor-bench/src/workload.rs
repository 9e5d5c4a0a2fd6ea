//! The workloads and the requests each one sends. Pure: randomness comes from a seeded
//! generator, so a seed replays the same sequence of requests.

use std::sync::Arc;

use arbor_proto::{
    Acl, CreateMode, CreateRequest, ExistsRequest, GetChildrenRequest, GetDataRequest, Request,
    SetDataRequest,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What the load generator does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Create new persistent nodes (`--value-size` bytes each); with `--ops N` this loads N
    /// znodes.
    Create,
    /// setData on `--keys` existing nodes, chosen at random.
    Set,
    /// getData on `--keys` existing nodes, chosen at random.
    Get,
    /// getData / setData on `--keys` nodes with `--read-pct` percent reads.
    Mixed,
    /// exists with a watch on `--keys` nodes (registers watches, nothing fires them).
    ExistsWatch,
    /// Each operation is a whole session: connect, create an ephemeral node, close.
    Churn,
    /// getChildren on one node with `--children` children.
    Children,
    /// One setData, `--watchers` sessions each watching the node: time until all are notified.
    Fanout,
    /// No server: fdatasync latency of 4 KiB appends in `--dir` (the disk's reference).
    Fsync,
    /// No server: TCP round trip on loopback (the network's reference).
    LoopbackRtt,
    /// Wait until the server answers (connect + exists "/"): time to ready, for restarts.
    Ready,
}

impl Workload {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Set => "set",
            Workload::Get => "get",
            Workload::Mixed => "mixed",
            Workload::ExistsWatch => "exists-watch",
            Workload::Churn => "churn",
            Workload::Children => "children",
            Workload::Fanout => "fanout",
            Workload::Fsync => "fsync",
            Workload::LoopbackRtt => "loopback-rtt",
            Workload::Ready => "ready",
        }
    }

    /// Whether the workload needs the `--keys` nodes created before it starts.
    pub fn needs_keys(self) -> bool {
        matches!(
            self,
            Workload::Set | Workload::Get | Workload::Mixed | Workload::ExistsWatch
        )
    }
}

/// Whether an operation reads or writes (reported separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// getData, exists, getChildren.
    Read,
    /// create, setData.
    Write,
}

/// A small, fast, seedable generator (SplitMix64): good enough to pick keys, and the same seed
/// gives the same run.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0; slight modulo bias is irrelevant here).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "empty range");
        self.next_u64() % bound
    }
}

/// The node names of a run, all under one run directory so runs never collide.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The run directory, e.g. `/arbor-bench/r1-1700000000000`.
    pub run_dir: String,
    /// The parent of the `--keys` nodes.
    pub keys_dir: String,
    /// The key paths, `keys_dir/k<i>`.
    pub keys: Arc<Vec<String>>,
    /// The parent of the `--children` nodes.
    pub children_dir: String,
    /// The parent of nodes made by the create and churn workloads.
    pub create_dir: String,
    /// The node the fan-out watchers watch.
    pub fanout_node: String,
}

impl Layout {
    /// The layout under `root/run_id` with `key_count` keys.
    pub fn new(root: &str, run_id: &str, key_count: u32) -> Layout {
        let root = root.trim_end_matches('/');
        let run_dir = format!("{root}/{run_id}");
        let keys_dir = format!("{run_dir}/keys");
        let keys = (0..key_count).map(|i| format!("{keys_dir}/k{i}")).collect();
        Layout {
            children_dir: format!("{run_dir}/children"),
            create_dir: format!("{run_dir}/new"),
            fanout_node: format!("{run_dir}/fanout"),
            keys: Arc::new(keys),
            keys_dir,
            run_dir,
        }
    }

    /// The name of child `index` of the children node: four base-36 digits, short so that
    /// listing 100k of them stays under ZooKeeper's 1 MiB frame limit (8 bytes per name on the
    /// wire instead of 10+).
    pub fn child_name(index: u32) -> String {
        const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut value = index;
        let mut name = [b'0'; 4];
        for slot in name.iter_mut().rev() {
            *slot = DIGITS[(value % 36) as usize];
            value /= 36;
        }
        let mut name: String = name.iter().map(|&b| char::from(b)).collect();
        if value > 0 {
            // Beyond 36^4 (1.68M) names grow a prefix so they stay unique.
            name.insert_str(0, &format!("{value}_"));
        }
        name
    }
}

/// A plain persistent create with an open ACL.
pub fn create_request(path: String, data: Bytes, mode: CreateMode) -> Request {
    Request::Create(CreateRequest {
        path,
        data: Some(data),
        acl: Acl::open_unsafe(),
        flags: mode.flags(),
    })
}

/// Generates the requests of one connection for the request/response workloads.
#[derive(Debug, Clone)]
pub struct OpGenerator {
    workload: Workload,
    layout: Layout,
    value: Bytes,
    read_pct: u8,
    connection: u32,
    sequence: u64,
    rng: SplitMix64,
}

impl OpGenerator {
    /// The generator of connection number `connection`.
    pub fn new(
        workload: Workload,
        layout: Layout,
        value: Bytes,
        read_pct: u8,
        connection: u32,
        seed: u64,
    ) -> OpGenerator {
        OpGenerator {
            workload,
            layout,
            value,
            read_pct: read_pct.min(100),
            connection,
            sequence: 0,
            rng: SplitMix64::new(seed ^ (u64::from(connection) << 32).wrapping_add(0x5eed)),
        }
    }

    fn random_key(&mut self) -> String {
        let count = self.layout.keys.len() as u64;
        let index = self.rng.below(count.max(1)) as usize;
        self.layout.keys.get(index).cloned().unwrap_or_default()
    }

    /// The next request and whether it reads or writes.
    ///
    /// # Panics
    /// For a workload that does not send plain requests (churn, fanout, probes): the runner
    /// never asks for those.
    pub fn next_request(&mut self) -> (Request, OpClass) {
        self.sequence += 1;
        match self.workload {
            Workload::Create => {
                let path = format!(
                    "{}/c{}-{}",
                    self.layout.create_dir, self.connection, self.sequence
                );
                (
                    create_request(path, self.value.clone(), CreateMode::Persistent),
                    OpClass::Write,
                )
            }
            Workload::Set => (self.set_data(), OpClass::Write),
            Workload::Get => (self.get_data(), OpClass::Read),
            Workload::Mixed => {
                if self.rng.below(100) < u64::from(self.read_pct) {
                    (self.get_data(), OpClass::Read)
                } else {
                    (self.set_data(), OpClass::Write)
                }
            }
            Workload::ExistsWatch => {
                let path = self.random_key();
                (
                    Request::Exists(ExistsRequest { path, watch: true }),
                    OpClass::Read,
                )
            }
            Workload::Children => (
                Request::GetChildren(GetChildrenRequest {
                    path: self.layout.children_dir.clone(),
                    watch: false,
                }),
                OpClass::Read,
            ),
            other => panic!("workload {} has no request generator", other.name()),
        }
    }

    fn get_data(&mut self) -> Request {
        let path = self.random_key();
        Request::GetData(GetDataRequest { path, watch: false })
    }

    fn set_data(&mut self) -> Request {
        let path = self.random_key();
        Request::SetData(SetDataRequest {
            path,
            data: Some(self.value.clone()),
            version: -1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(workload: Workload, read_pct: u8, seed: u64) -> OpGenerator {
        let layout = Layout::new("/b/", "run", 10);
        OpGenerator::new(
            workload,
            layout,
            Bytes::from_static(b"v"),
            read_pct,
            3,
            seed,
        )
    }

    #[test]
    fn mixed_read_ratio_is_respected() {
        for read_pct in [0u8, 50, 90, 99, 100] {
            let mut ops = generator(Workload::Mixed, read_pct, 9);
            let reads = (0..10_000)
                .filter(|_| ops.next_request().1 == OpClass::Read)
                .count();
            let expected = usize::from(read_pct) * 100;
            assert!(
                reads.abs_diff(expected) <= 300,
                "{read_pct}%: {reads} reads of 10000"
            );
        }
    }

    #[test]
    fn same_seed_same_requests() {
        let mut a = generator(Workload::Mixed, 50, 42);
        let mut b = generator(Workload::Mixed, 50, 42);
        for _ in 0..100 {
            assert_eq!(a.next_request().0, b.next_request().0);
        }
    }

    #[test]
    fn creates_are_unique_per_connection_and_under_the_run() {
        let mut ops = generator(Workload::Create, 0, 1);
        let (Request::Create(first), _) = ops.next_request() else {
            panic!("not a create")
        };
        let (Request::Create(second), _) = ops.next_request() else {
            panic!("not a create")
        };
        assert_eq!(first.path, "/b/run/new/c3-1");
        assert_ne!(first.path, second.path);
    }

    #[test]
    fn child_names_are_short_unique_and_sorted() {
        let names: Vec<String> = (0..2_000).map(Layout::child_name).collect();
        assert_eq!(names[0], "0000");
        assert_eq!(names[37], "0011");
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Layout::child_name(99_999).len(), 4);
        assert_ne!(
            Layout::child_name(36u32.pow(4)),
            Layout::child_name(0),
            "names beyond four digits stay unique"
        );
    }
}
