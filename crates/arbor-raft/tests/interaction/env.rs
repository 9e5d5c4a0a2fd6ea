//! The interaction environment behind the golden files: a handful of nodes whose Readies
//! are processed and whose messages are delivered only when a command says so.
//!
//! Commands:
//! * `add-nodes N [voters=(..)] [prevote=false] [checkquorum=false] [max-append-bytes=B]`
//! * `log ID terms=(t1,t2,..) [term=T]` — give a (stopped) node a durable log
//! * `campaign ID`, `propose ID DATA`, `read-index ID CTX`, `transfer-leader ID to=T`
//! * `tick ID.. [n=K]`
//! * `process-ready ID..` (persists at once), `deliver-msgs [to=(..)]`,
//!   `drop-msgs [to=(..)] [from=(..)]`
//! * `stabilize [ID..]` — process and deliver until quiet (only among ID.. if given; other
//!   messages are dropped)
//! * `crash ID` (loses nothing: every processed Ready was persisted), `restart ID`
//! * `compact ID INDEX` — snapshot the (applied) state at INDEX and drop the log before it
//! * `propose-conf-change ID [voters=(..)] [learners=(..)] [remove=(..)]`
//! * `raft-log ID`, `status ID`

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use arbor_raft::{
    ConfChange, ConfChangeSingle, ConfState, Config, Entry, EntryKind, HardState, LogIndex,
    MemStorage, Message, NodeId, RawNode, Ready, Storage, Term,
};
use bytes::Bytes;

use super::datadriven::Command;

struct Node {
    config: Config,
    raw: Option<RawNode<MemStorage>>,
    durable: MemStorage,
}

#[derive(Default)]
pub struct Env {
    nodes: BTreeMap<u64, Node>,
    queue: Vec<Message>,
}

fn entry_text(e: &Entry) -> String {
    match e.kind {
        EntryKind::NoOp => format!("{}/{} noop", e.term, e.index),
        EntryKind::ConfChange => format!("{}/{} conf", e.term, e.index),
        EntryKind::Normal => format!(
            "{}/{} {}",
            e.term,
            e.index,
            String::from_utf8_lossy(&e.data)
        ),
    }
}

impl Env {
    pub fn handle(&mut self, cmd: &Command) -> String {
        let mut out = String::new();
        match cmd.name.as_str() {
            "add-nodes" => self.add_nodes(cmd, &mut out),
            "log" => self.set_log(cmd, &mut out),
            "campaign" => {
                for id in cmd.ids() {
                    self.raw(id).campaign();
                }
            }
            "propose" => {
                let id = cmd.ids()[0];
                let data = cmd.args.get(1).cloned().unwrap_or_default();
                if let Err(e) = self.raw(id).propose(vec![Bytes::from(data)]) {
                    let _ = writeln!(out, "error: {e}");
                }
            }
            "read-index" => {
                let id = cmd.ids()[0];
                let ctx = cmd.args.get(1).cloned().unwrap_or_default();
                if let Err(e) = self.raw(id).read_index(Bytes::from(ctx)) {
                    let _ = writeln!(out, "error: {e}");
                }
            }
            "transfer-leader" => {
                let id = cmd.ids()[0];
                let to = cmd.key_u64("to").expect("to=");
                self.raw(id).transfer_leader(NodeId(to));
            }
            "tick" => {
                let n = cmd.key_u64("n").unwrap_or(1);
                for id in cmd.ids() {
                    for _ in 0..n {
                        self.raw(id).tick();
                    }
                }
            }
            "process-ready" => {
                for id in cmd.ids() {
                    self.process_ready(id, &mut out);
                }
            }
            "deliver-msgs" => {
                let to = cmd.key_list("to");
                self.deliver(&to, &mut out);
            }
            "drop-msgs" => {
                let to = cmd.key_list("to");
                let from = cmd.key_list("from");
                self.queue.retain(|m| {
                    let hit_to = to.is_empty() || to.contains(&m.to.0);
                    let hit_from = from.is_empty() || from.contains(&m.from.0);
                    !(hit_to && hit_from)
                });
            }
            "stabilize" => self.stabilize(&cmd.ids(), &mut out),
            "compact" => {
                let id = cmd.ids()[0];
                let index = LogIndex(cmd.ids()[1]);
                let raw = self.raw(id);
                let conf = raw.status().conf_state;
                let data = Bytes::from(format!("snap@{index}"));
                match raw.store_mut().create_snapshot(index, conf, data) {
                    Ok(_) => {
                        let first = raw.store().first_index();
                        let durable = raw.store().clone();
                        self.nodes.get_mut(&id).expect("node").durable = durable;
                        let _ = writeln!(out, "{id}: log now starts at {first}");
                    }
                    Err(e) => {
                        let _ = writeln!(out, "error: {e}");
                    }
                }
            }
            "propose-conf-change" => {
                let id = cmd.ids()[0];
                let mut changes = Vec::new();
                for v in cmd.key_list("voters") {
                    changes.push(ConfChangeSingle::AddVoter(NodeId(v)));
                }
                for l in cmd.key_list("learners") {
                    changes.push(ConfChangeSingle::AddLearner(NodeId(l)));
                }
                for r in cmd.key_list("remove") {
                    changes.push(ConfChangeSingle::Remove(NodeId(r)));
                }
                if let Err(e) = self.raw(id).propose_conf_change(&ConfChange { changes }) {
                    let _ = writeln!(out, "error: {e}");
                }
            }
            "crash" => {
                for id in cmd.ids() {
                    if let Some(n) = self.nodes.get_mut(&id) {
                        n.raw = None;
                    }
                    self.queue.retain(|m| m.to.0 != id);
                }
            }
            "restart" => {
                for id in cmd.ids() {
                    let n = self.nodes.get_mut(&id).expect("node");
                    n.raw = Some(RawNode::new(&n.config, n.durable.clone()).expect("restart"));
                }
            }
            "raft-log" => {
                for id in cmd.ids() {
                    let n = &self.nodes[&id];
                    let entries: Vec<String> =
                        n.durable.all_entries().iter().map(entry_text).collect();
                    let _ = writeln!(out, "{id}: [{}]", entries.join(", "));
                }
            }
            "status" => {
                for id in cmd.ids() {
                    match self.nodes[&id].raw.as_ref() {
                        Some(raw) => {
                            let s = raw.status();
                            let _ = writeln!(
                                out,
                                "{id}: {:?} term={} lead={} commit={} applied={} last={} lease={}",
                                s.role,
                                s.term,
                                s.leader.map_or(0, |l| l.0),
                                s.commit,
                                s.applied,
                                s.last_index,
                                raw.lease_remaining_ticks().is_some()
                            );
                            if cmd.keys.contains_key("conf") {
                                let c = &s.conf_state;
                                let _ = writeln!(
                                    out,
                                    "   voters={:?} outgoing={:?} learners={:?}",
                                    c.voters.iter().map(|n| n.0).collect::<Vec<_>>(),
                                    c.voters_outgoing.iter().map(|n| n.0).collect::<Vec<_>>(),
                                    c.learners.iter().map(|n| n.0).collect::<Vec<_>>()
                                );
                            }
                        }
                        None => {
                            let _ = writeln!(out, "{id}: down");
                        }
                    }
                }
            }
            other => panic!("unknown command {other}"),
        }
        out
    }

    fn raw(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        self.nodes
            .get_mut(&id)
            .and_then(|n| n.raw.as_mut())
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    fn add_nodes(&mut self, cmd: &Command, out: &mut String) {
        let count = cmd.ids()[0];
        let first = self.nodes.len() as u64 + 1;
        let mut voters = cmd.key_list("voters");
        if voters.is_empty() {
            voters = (first..first + count).collect();
        }
        let conf = ConfState::with_voters(voters.iter().map(|&v| NodeId(v)));
        for id in first..first + count {
            let mut config = Config::new(NodeId(id));
            config.heartbeat_interval_ticks = 1;
            config.election_timeout_ticks = 10;
            config.pre_vote = cmd.keys.get("prevote").is_none_or(|v| v != "false");
            config.check_quorum = cmd.keys.get("checkquorum").is_none_or(|v| v != "false");
            if let Some(max) = cmd.key_u64("max-append-bytes") {
                config.append_bytes_max = max;
            }
            if let Some(max) = cmd.key_u64("snapshot-chunk-bytes") {
                config.snapshot_chunk_bytes_max = max;
            }
            let durable = MemStorage::new_with_conf_state(conf.clone());
            let raw = RawNode::new(&config, durable.clone()).expect("valid config");
            self.nodes.insert(
                id,
                Node {
                    config,
                    raw: Some(raw),
                    durable,
                },
            );
        }
        let _ = writeln!(out, "voters {voters:?}");
    }

    /// Replaces a node's durable log (for the paper's figures) and restarts it.
    fn set_log(&mut self, cmd: &Command, out: &mut String) {
        let id = cmd.ids()[0];
        let terms = cmd.key_list("terms");
        let n = self.nodes.get_mut(&id).expect("node");
        let conf = n.durable.initial_state().expect("state").conf_state;
        let mut storage = MemStorage::new_with_conf_state(conf);
        let mut entries = Vec::new();
        let mut position = 0u32;
        for (i, &t) in terms.iter().enumerate() {
            let prev = if i == 0 { 0 } else { terms[i - 1] };
            position = if t == prev { position + 1 } else { 0 };
            entries.push(Entry {
                term: Term(t),
                index: LogIndex(i as u64 + 1),
                position,
                kind: EntryKind::Normal,
                data: Bytes::from(format!("t{t}")),
            });
        }
        storage.append(&entries);
        let term = cmd
            .key_u64("term")
            .unwrap_or_else(|| terms.last().copied().unwrap_or(0));
        storage.set_hard_state(HardState {
            term: Term(term),
            vote: None,
            commit: LogIndex(0),
        });
        n.durable = storage.clone();
        n.raw = Some(RawNode::new(&n.config, storage).expect("restart"));
        let _ = writeln!(out, "{id}: {} entries, term {term}", terms.len());
    }

    fn process_ready(&mut self, id: u64, out: &mut String) -> bool {
        let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut()) else {
            return false;
        };
        if !raw.has_ready() {
            return false;
        }
        let mut ready: Ready = raw.ready();
        let _ = writeln!(out, "> {id} handling Ready");
        if let Some(ss) = ready.soft_state {
            let _ = writeln!(
                out,
                "  State: {:?} lead={}",
                ss.role,
                ss.leader.map_or(0, |l| l.0)
            );
        }
        if let Some(hs) = ready.hard_state {
            let _ = writeln!(
                out,
                "  HardState: term={} vote={} commit={}",
                hs.term,
                hs.vote.map_or(0, |v| v.0),
                hs.commit
            );
        }
        if !ready.entries.is_empty() {
            let e: Vec<String> = ready.entries.iter().map(entry_text).collect();
            let _ = writeln!(out, "  Entries: {}", e.join(", "));
        }
        if let Some(snapshot) = &ready.snapshot {
            let _ = writeln!(
                out,
                "  Snapshot: {}/{}",
                snapshot.metadata.term, snapshot.metadata.index
            );
            raw.store_mut()
                .apply_snapshot(snapshot.clone())
                .expect("snapshot");
        }
        raw.store_mut().append(&ready.entries);
        if let Some(hs) = ready.hard_state {
            raw.store_mut().set_hard_state(hs);
        }
        if !ready.committed_entries.is_empty() {
            let e: Vec<String> = ready.committed_entries.iter().map(entry_text).collect();
            let _ = writeln!(out, "  Committed: {}", e.join(", "));
        }
        for rs in &ready.read_states {
            let _ = writeln!(
                out,
                "  ReadState: index={} ctx={}",
                rs.index,
                String::from_utf8_lossy(&rs.context)
            );
        }
        let mut messages = std::mem::take(&mut ready.messages);
        for m in &messages {
            let _ = writeln!(out, "  send: {m}");
        }
        let persisted = std::mem::take(&mut ready.persisted_messages);
        for m in &persisted {
            let _ = writeln!(out, "  send after persist: {m}");
        }
        messages.extend(persisted);
        raw.advance(ready);
        let durable = raw.store().clone();
        if let Some(n) = self.nodes.get_mut(&id) {
            n.durable = durable;
        }
        self.queue.extend(messages);
        true
    }

    fn deliver(&mut self, to: &[u64], out: &mut String) -> bool {
        let (now, later): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|m| to.is_empty() || to.contains(&m.to.0));
        self.queue = later;
        let delivered = !now.is_empty();
        for m in now {
            let target = m.to.0;
            match self.nodes.get_mut(&target).and_then(|n| n.raw.as_mut()) {
                Some(raw) => {
                    let _ = writeln!(out, "> {target} receiving {m}");
                    raw.step(m).expect("addressed");
                }
                None => {
                    let _ = writeln!(out, "> {target} down, dropped {m}");
                }
            }
        }
        delivered
    }

    fn stabilize(&mut self, only: &[u64], out: &mut String) {
        let ids: BTreeSet<u64> = if only.is_empty() {
            self.nodes.keys().copied().collect()
        } else {
            only.iter().copied().collect()
        };
        for _ in 0..1000 {
            let mut progressed = false;
            for &id in &ids {
                progressed |= self.process_ready(id, out);
            }
            self.queue
                .retain(|m| ids.contains(&m.to.0) && ids.contains(&m.from.0));
            let targets: Vec<u64> = ids.iter().copied().collect();
            progressed |= self.deliver(&targets, out);
            if !progressed {
                return;
            }
        }
        panic!("stabilize did not settle");
    }
}
