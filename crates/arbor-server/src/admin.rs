//! The four-letter words, answered on the client port in ZooKeeper's formats so existing
//! monitoring (`echo mntr | nc`, kazoo's `command()`, Kafka's health checks) keeps working.

use std::fmt::Write as _;

use crate::core::Core;

/// The ZooKeeper release whose client protocol and behaviour arbor matches. Clients parse this
/// (kazoo's `server_version()` reads `zookeeper.version=` from `envi`).
pub const ZOOKEEPER_COMPATIBLE_VERSION: &str = "3.9.4";

fn version_line() -> String {
    format!(
        "{ZOOKEEPER_COMPATIBLE_VERSION}-arbor-{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The text ZooKeeper answers to `word`.
pub(crate) fn answer(core: &mut Core, word: &'static str) -> String {
    if !core.config().four_letter_word_allowed(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => "imok".to_owned(),
        "srvr" => server_summary(core, false),
        "stat" => server_summary(core, true),
        "mntr" => monitor(core),
        "conf" => configuration(core),
        "cons" => {
            let mut text = String::new();
            for line in core.connection_lines() {
                let _ = writeln!(text, "{line}");
            }
            text.push('\n');
            text
        }
        "envi" => environment(),
        "isro" => if core.serving_read_only() { "ro" } else { "rw" }.to_owned(),
        "wchs" => {
            let watches = core.watches();
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                watches.connection_count(),
                watches.path_count(),
                watches.watch_count()
            )
        }
        "wchc" => {
            let mut text = String::new();
            for (session, paths) in core.watches_by_session() {
                let _ = writeln!(text, "{session}");
                for path in paths {
                    let _ = writeln!(text, "\t{path}");
                }
            }
            text
        }
        "wchp" => {
            let mut text = String::new();
            for (path, sessions) in core.watches_by_path() {
                let _ = writeln!(text, "{path}");
                for session in sessions {
                    let _ = writeln!(text, "\t{session}");
                }
            }
            text
        }
        "dump" => {
            let mut text = String::from("SessionTracker dump:\n");
            let sessions = core.session_ephemerals();
            let _ = writeln!(text, "Session count: {}", sessions.len());
            text.push_str("ephemeral nodes dump:\n");
            let _ = writeln!(
                text,
                "Sessions with Ephemerals ({}):",
                sessions.iter().filter(|(_, e)| !e.is_empty()).count()
            );
            for (session, paths) in sessions.iter().filter(|(_, e)| !e.is_empty()) {
                let _ = writeln!(text, "{session}:");
                for path in paths {
                    let _ = writeln!(text, "\t{path}");
                }
            }
            text
        }
        "srst" => {
            core.stats.reset();
            "Server stats reset.\n".to_owned()
        }
        "crst" => "Connection stats reset.\n".to_owned(),
        "dirs" => {
            let size = directory_size(&core.config().data_dir);
            format!("datadir_size: {size}\nlogdir_size: 0\n")
        }
        _ => format!("{word} is not supported by arbor.\n"),
    }
}

fn server_summary(core: &Core, with_clients: bool) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Zookeeper version: {}, built by arbor",
        version_line()
    );
    if with_clients {
        text.push_str("Clients:\n");
        for line in core.connection_lines() {
            let _ = writeln!(text, "{line}");
        }
        text.push('\n');
    }
    let (min, avg, max) = core.stats.latency_ms();
    let _ = writeln!(text, "Latency min/avg/max: {min:.3}/{avg:.4}/{max:.3}");
    let _ = writeln!(text, "Received: {}", core.stats.packets_received);
    let _ = writeln!(text, "Sent: {}", core.stats.packets_sent);
    let _ = writeln!(text, "Connections: {}", core.connection_count());
    let _ = writeln!(text, "Outstanding: {}", core.outstanding_requests());
    let _ = writeln!(text, "Zxid: {}", core.tree().last_applied_zxid());
    let _ = writeln!(text, "Mode: {}", core.mode());
    let _ = writeln!(text, "Node count: {}", core.tree().stats().node_count);
    text
}

fn monitor(core: &Core) -> String {
    let stats = core.tree().stats();
    let (min, avg, max) = core.stats.latency_ms();
    let mut rows: Vec<(&str, String)> = vec![
        ("zk_version", format!("{}, built by arbor", version_line())),
        ("zk_server_state", core.mode().into()),
        ("zk_avg_latency", format!("{avg:.4}")),
        ("zk_max_latency", format!("{max:.3}")),
        ("zk_min_latency", format!("{min:.3}")),
        (
            "zk_packets_received",
            core.stats.packets_received.to_string(),
        ),
        ("zk_packets_sent", core.stats.packets_sent.to_string()),
        (
            "zk_num_alive_connections",
            core.connection_count().to_string(),
        ),
        (
            "zk_outstanding_requests",
            core.outstanding_requests().to_string(),
        ),
        ("zk_znode_count", stats.node_count.to_string()),
        ("zk_watch_count", core.watches().watch_count().to_string()),
        ("zk_ephemerals_count", stats.ephemeral_count.to_string()),
        (
            "zk_approximate_data_size",
            stats.approximate_data_size_bytes.to_string(),
        ),
        (
            "zk_global_sessions",
            core.tree().sessions().count().to_string(),
        ),
        ("zk_last_zxid", core.tree().last_applied_zxid().to_string()),
        (
            "zk_sessions_expired",
            core.stats.sessions_expired.to_string(),
        ),
        ("arbor_fsync_batches", core.stats.fsync_batches.to_string()),
    ];
    rows.extend(security_rows(core));
    let raft = core.raft_status();
    rows.push(("arbor_raft_term", raft.term.0.to_string()));
    rows.push(("arbor_raft_commit_index", raft.commit.0.to_string()));
    rows.push(("arbor_raft_applied_index", raft.applied.0.to_string()));
    rows.push(("arbor_raft_last_index", raft.last_index.0.to_string()));
    rows.push((
        "arbor_raft_leader",
        raft.leader.map_or(0, |leader| leader.0).to_string(),
    ));
    rows.push((
        "arbor_leader_changes",
        core.stats.leader_changes.to_string(),
    ));
    rows.push((
        "arbor_peer_messages_dropped",
        core.stats.peer_messages_dropped.to_string(),
    ));
    if !raft.progress.is_empty() || !raft.guests.is_empty() {
        let voters = &raft.conf_state.voters;
        let followers = raft
            .progress
            .keys()
            .filter(|id| voters.contains(id))
            .count();
        let synced = raft
            .progress
            .iter()
            .filter(|(id, p)| voters.contains(id) && p.recent_active)
            .count();
        // Learners: the observers of the membership and the servers outside it syncing as
        // observers (guests), as ZooKeeper counts every learner connected to its leader.
        let learners = raft
            .progress
            .iter()
            .filter(|(id, _)| !voters.contains(id))
            .chain(&raft.guests);
        let (learner_count, synced_observers) = learners.fold((0, 0), |(all, synced), (_, p)| {
            (all + 1, synced + usize::from(p.recent_active))
        });
        rows.push(("zk_followers", followers.to_string()));
        rows.push(("zk_synced_followers", synced.to_string()));
        rows.push(("zk_learners", learner_count.to_string()));
        rows.push(("zk_synced_observers", synced_observers.to_string()));
        rows.push(("arbor_guests", raft.guests.len().to_string()));
        for (id, progress) in raft.progress.iter().chain(&raft.guests) {
            let lag = raft.last_index.0.saturating_sub(progress.matched.0);
            rows.push(("arbor_follower_lag", format!("{id}={lag}")));
        }
    }
    if let Some(wal) = core.wal_stats() {
        rows.push(("arbor_wal_stats", format!("{wal:?}").replace('\n', " ")));
    }
    let mut text = String::new();
    for (key, value) in rows {
        let _ = writeln!(text, "{key}\t{value}");
    }
    text
}

/// The memory budget and the limits' refusals (Secure arbor).
fn security_rows(core: &Core) -> Vec<(&'static str, String)> {
    let level = match core.memory_level() {
        crate::limits::BudgetLevel::Normal => 0,
        crate::limits::BudgetLevel::Warning => 1,
        crate::limits::BudgetLevel::Exceeded => 2,
    };
    vec![
        (
            "arbor_memory_estimate_bytes",
            core.memory_use().estimate_bytes().to_string(),
        ),
        (
            "arbor_memory_budget_bytes",
            core.config().memory_budget_bytes.to_string(),
        ),
        // 0 below 80 % of the budget, 1 past 80 %, 2 past 100 % (growing writes refused).
        ("arbor_memory_budget_level", level.to_string()),
        (
            "arbor_memory_budget_refused_writes",
            core.security.refused_by_memory_budget.to_string(),
        ),
        (
            "arbor_watches_refused",
            core.security.refused_watches.to_string(),
        ),
        (
            "arbor_listings_refused",
            core.security.refused_listings.to_string(),
        ),
        (
            "arbor_audit_lines_dropped",
            core.security.audit_dropped().to_string(),
        ),
        (
            "arbor_resident_set_bytes",
            crate::limits::resident_set_bytes().to_string(),
        ),
    ]
}

fn configuration(core: &Core) -> String {
    let config = core.config();
    let (min, max) = config.session_timeout_bounds_ms();
    let mut text = String::new();
    let _ = writeln!(text, "clientPort={}", config.client_address.port());
    if let Some(secure) = config.secure_client_address {
        let _ = writeln!(text, "secureClientPort={}", secure.port());
    }
    let _ = writeln!(text, "clientPortAddress={}", config.client_address.ip());
    let _ = writeln!(text, "dataDir={}", config.data_dir.display());
    let _ = writeln!(text, "dataLogDir={}", config.data_dir.display());
    let _ = writeln!(text, "tickTime={}", config.tick_ms);
    let _ = writeln!(text, "maxClientCnxns={}", config.connections_per_ip_max);
    let _ = writeln!(text, "minSessionTimeout={min}");
    let _ = writeln!(text, "maxSessionTimeout={max}");
    let _ = writeln!(text, "clientPortListenBacklog=-1");
    let _ = writeln!(text, "serverId={}", config.server_id);
    let _ = writeln!(text, "jute.maxbuffer={}", config.frame_size_bytes_max);
    let _ = writeln!(text, "snapCount={}", config.snapshot_every_entries);
    for (key, value) in &config.properties {
        let _ = writeln!(text, "{key}={value}");
    }
    text
}

fn environment() -> String {
    let mut text = String::from("Environment:\n");
    let _ = writeln!(text, "zookeeper.version={}, built by arbor", version_line());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let _ = writeln!(text, "host.name={}", host.trim());
    let _ = writeln!(text, "arbor.version={}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(text, "os.name={}", std::env::consts::OS);
    let _ = writeln!(text, "os.arch={}", std::env::consts::ARCH);
    if let Ok(dir) = std::env::current_dir() {
        let _ = writeln!(text, "user.dir={}", dir.display());
    }
    text
}

fn directory_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
