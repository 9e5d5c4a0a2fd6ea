//! The nemesis: faults on a seeded schedule, one at a time. Each fault is applied, held, healed,
//! and then the time until the cluster takes a write again is measured (its recovery time).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::seq::SliceRandom as _;
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

use crate::cluster::{Cluster, NodeId, Target, connect_with};
use crate::history::{At, Clock};

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL, then restart on the same data.
    Kill,
    /// SIGSTOP, then SIGCONT (the leader preferred: a long GC pause).
    Pause,
    /// Peer links cut: majority/minority, isolated leader, bridge, one-way.
    Partition,
    /// A voter removed with `reconfig`, then added back (arbor only).
    Membership,
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "kill" => Ok(FaultKind::Kill),
            "pause" => Ok(FaultKind::Pause),
            "partition" => Ok(FaultKind::Partition),
            "membership" => Ok(FaultKind::Membership),
            other => Err(format!(
                "unknown nemesis {other:?} (kill, pause, partition, membership)"
            )),
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Membership => "membership",
        };
        f.write_str(name)
    }
}

/// One fault as it happened.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Its kind.
    pub kind: FaultKind,
    /// What exactly (which nodes, which links).
    pub description: String,
    /// When it began.
    pub start: At,
    /// When it was healed.
    pub healed: At,
    /// From the heal to the first acknowledged write; `None` if none came within the wait.
    pub recovery: Option<Duration>,
}

/// How long the cluster may take to take a write after a heal before the fault counts as
/// unrecovered.
pub const RECOVERY_WAIT: Duration = Duration::from_secs(60);

/// Runs faults from `kinds` until `stop`, then heals everything. Returns the faults.
pub async fn run(
    cluster: &mut Cluster,
    kinds: &[FaultKind],
    seed: u64,
    clock: Clock,
    stop: CancellationToken,
) -> anyhow::Result<Vec<Fault>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x006E_656D_6573_6973);
    let mut faults = Vec::new();
    let mut probe = connect_with(&cluster.connect_string(), Duration::from_secs(10)).await?;
    let probe_path = format!("{}/probe", super::workloads::ROOT);
    let _ = probe
        .create(
            &probe_path,
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
        )
        .await;
    let kinds: Vec<FaultKind> = kinds
        .iter()
        .copied()
        .filter(|kind| {
            *kind != FaultKind::Membership || matches!(cluster.target(), Target::Arbor { .. })
        })
        .collect();
    while !kinds.is_empty() {
        let quiet = Duration::from_millis(rng.random_range(2000..6000));
        tokio::select! {
            () = tokio::time::sleep(quiet) => {}
            () = stop.cancelled() => break,
        }
        let kind = kinds[rng.random_range(0..kinds.len())];
        let hold = Duration::from_millis(rng.random_range(1000..8000));
        let start = clock.now();
        let description = apply(cluster, kind, &mut rng, hold).await?;
        let healed = clock.now();
        let recovery = recover(&mut probe, &probe_path, cluster).await;
        println!(
            "nemesis {:>8}  {kind:<10} {description}  healed {healed}  recovered in {}",
            start.to_string(),
            recovery.map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()))
        );
        faults.push(Fault {
            kind,
            description,
            start,
            healed,
            recovery,
        });
    }
    cluster.restore().await?;
    Ok(faults)
}

async fn pick_leader_or_random(
    cluster: &Cluster,
    rng: &mut ChaCha8Rng,
    leader_odds: f64,
) -> NodeId {
    let ids = cluster.ids();
    let random = ids[rng.random_range(0..ids.len())];
    if rng.random_bool(leader_odds)
        && let Some(leader) = cluster.leader().await
    {
        return leader;
    }
    random
}

async fn apply(
    cluster: &mut Cluster,
    kind: FaultKind,
    rng: &mut ChaCha8Rng,
    hold: Duration,
) -> anyhow::Result<String> {
    let hold_ms = hold.as_millis();
    match kind {
        FaultKind::Kill => {
            let id = pick_leader_or_random(cluster, rng, 0.5).await;
            cluster.kill(id).await?;
            tokio::time::sleep(hold).await;
            cluster.restart(id).await?;
            Ok(format!("kill -9 node {id}, restart after {hold_ms} ms"))
        }
        FaultKind::Pause => {
            let id = pick_leader_or_random(cluster, rng, 0.75).await;
            cluster.pause(id)?;
            tokio::time::sleep(hold).await;
            cluster.resume(id)?;
            Ok(format!("SIGSTOP node {id}, SIGCONT after {hold_ms} ms"))
        }
        FaultKind::Partition => {
            let mut ids = cluster.ids();
            ids.shuffle(rng);
            let leader = cluster.leader().await;
            let description = match rng.random_range(0..4) {
                0 => {
                    // Majority / minority at random.
                    let minority = rng.random_range(1..=(ids.len() - 1) / 2);
                    let (a, b) = ids.split_at(minority);
                    cluster.partition(a, b);
                    format!("partition {a:?} | {b:?}")
                }
                1 => {
                    // The leader (or a node) alone in a minority.
                    let id = leader.unwrap_or(ids[0]);
                    let others: Vec<NodeId> = ids.iter().copied().filter(|&o| o != id).collect();
                    cluster.partition(&[id], &others);
                    format!("isolate node {id} (leader {leader:?})")
                }
                2 => {
                    // A bridge: two halves that only the bridge node hears both of.
                    let bridge = ids[0];
                    let rest = &ids[1..];
                    let (a, b) = rest.split_at(rest.len() / 2);
                    cluster.partition(a, b);
                    format!("bridge node {bridge} between {a:?} and {b:?}")
                }
                _ => {
                    // One way: the leader's messages to everyone are lost, it still hears.
                    let id = leader.unwrap_or(ids[0]);
                    for &other in ids.iter().filter(|&&o| o != id) {
                        cluster.cut(id, other);
                    }
                    format!("one-way: node {id} (leader {leader:?}) cannot send")
                }
            };
            tokio::time::sleep(hold).await;
            cluster.heal();
            Ok(format!("{description}, healed after {hold_ms} ms"))
        }
        FaultKind::Membership => {
            let leader = cluster.leader().await;
            let candidates: Vec<NodeId> = cluster
                .ids()
                .into_iter()
                .filter(|&id| Some(id) != leader)
                .collect();
            let id = candidates[rng.random_range(0..candidates.len())];
            let admin = cluster.admin().await?;
            let leave = id.to_string();
            let removed = tokio::time::timeout(
                Duration::from_secs(20),
                admin.update_ensemble(
                    zk::EnsembleUpdate::Incremental {
                        joinings: Vec::<&str>::new().into_iter(),
                        leavings: vec![leave.as_str()].into_iter(),
                    },
                    None,
                ),
            )
            .await;
            tokio::time::sleep(hold).await;
            let line = cluster.member_line(id);
            let mut added = None;
            for _ in 0..20 {
                let result = tokio::time::timeout(
                    Duration::from_secs(20),
                    admin.update_ensemble(
                        zk::EnsembleUpdate::Incremental {
                            joinings: vec![line.as_str()].into_iter(),
                            leavings: Vec::<&str>::new().into_iter(),
                        },
                        None,
                    ),
                )
                .await;
                let ok = matches!(result, Ok(Ok(_)));
                added = Some(result);
                if ok {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(format!(
                "reconfig: remove node {id} ({}), add it back after {hold_ms} ms ({})",
                outcome(&removed),
                added.as_ref().map_or("not tried".to_owned(), outcome)
            ))
        }
    }
}

fn outcome<T>(result: &Result<Result<T, zk::Error>, tokio::time::error::Elapsed>) -> String {
    match result {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(error)) => format!("failed: {error}"),
        Err(_) => "timed out".to_owned(),
    }
}

/// From now to the first acknowledged write of the probe session (then the cluster also has
/// an agreed leader).
async fn recover(probe: &mut zk::Client, path: &str, cluster: &Cluster) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    while start.elapsed() < RECOVERY_WAIT {
        if probe.state().is_terminated() {
            // The probe's session expired during the fault: a new one (its creation is a
            // write too, so the recovery time still ends at the first acknowledged write).
            match connect_with(&cluster.connect_string(), Duration::from_secs(10)).await {
                Ok(client) => *probe = client,
                Err(_) => continue,
            }
        }
        let write = tokio::time::timeout(Duration::from_secs(2), probe.set_data(path, b"p", None));
        if matches!(write.await, Ok(Ok(_))) {
            let elapsed = start.elapsed();
            // Let the cluster agree on its leader before the next fault picks one.
            let _ = cluster.wait_for_leader(Duration::from_secs(20)).await;
            return Some(elapsed);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}
