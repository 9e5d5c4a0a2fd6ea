//! The audit log (ZooKeeper's `audit.enable`): one line per client write applied on the server
//! that answered it — who (session and authenticated ids), what (operation), where (path),
//! and the result — in ZooKeeper's `key=value` tab-separated shape:
//!
//! `session=0x1000000000001 user=ip:127.0.0.1,digest:bob ip=127.0.0.1 operation=create
//! znode=/a znode_type=persistent result=success` (fields separated by tabs).
//!
//! Lines go to the `audit` tracing target and, when a file is configured, are appended to it
//! by a writer thread behind a bounded queue: the core never waits on the disk; lines that do
//! not fit are counted and reported instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arbor_proto::{CreateMode, ErrorCode, Id, MultiOp, Response, SessionId};
use arbor_tree::{Command, WriteRequest};

/// Lines waiting for the writer thread before new ones are dropped (and counted).
const AUDIT_QUEUE_LINES_MAX: usize = 65_536;

/// Where audit lines go.
pub(crate) struct AuditLog {
    file: Option<std::sync::mpsc::SyncSender<String>>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// An audit log to the tracing target only, or also appended to `file`.
    ///
    /// # Errors
    /// When the file cannot be opened for appending.
    pub(crate) fn open(file: Option<&Path>) -> std::io::Result<AuditLog> {
        let dropped = Arc::new(AtomicU64::new(0));
        let Some(path) = file else {
            return Ok(AuditLog {
                file: None,
                dropped,
            });
        };
        let mut out = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        );
        let (sender, receiver) = std::sync::mpsc::sync_channel::<String>(AUDIT_QUEUE_LINES_MAX);
        let path: PathBuf = path.to_owned();
        std::thread::Builder::new()
            .name("arbor-audit".into())
            .spawn(move || {
                while let Ok(line) = receiver.recv() {
                    let mut result = writeln!(out, "{line}");
                    // Write out whatever else is waiting, then flush once.
                    while let Ok(line) = receiver.try_recv() {
                        result = result.and_then(|()| writeln!(out, "{line}"));
                    }
                    if let Err(error) = result.and_then(|()| out.flush()) {
                        tracing::error!(%error, path = %path.display(), "audit log write failed");
                    }
                }
            })?;
        Ok(AuditLog {
            file: Some(sender),
            dropped,
        })
    }

    /// Records one applied write.
    pub(crate) fn record(&self, command: &Command, result: &Result<Response, ErrorCode>) {
        let Some(line) = audit_line(command, result) else {
            return;
        };
        tracing::info!(target: "audit", "{line}");
        if let Some(file) = &self.file
            && file.try_send(line).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines that could not be queued for the file.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn users(identities: &[Id]) -> String {
    identities
        .iter()
        .map(|id| format!("{}:{}", id.scheme, id.id))
        .collect::<Vec<_>>()
        .join(",")
}

fn client_ip(identities: &[Id]) -> &str {
    identities
        .iter()
        .find(|id| id.scheme == "ip")
        .map_or("", |id| id.id.as_str())
}

fn znode_type(flags: i32) -> &'static str {
    match CreateMode::from_flags(flags) {
        Some(mode) if mode.is_ephemeral() && mode.is_sequential() => "ephemeral_sequential",
        Some(mode) if mode.is_ephemeral() => "ephemeral",
        Some(mode) if mode.is_ttl() && mode.is_sequential() => "persistent_sequential_with_ttl",
        Some(mode) if mode.is_ttl() => "persistent_with_ttl",
        Some(mode) if mode.is_sequential() => "persistent_sequential",
        Some(mode) if mode.is_container() => "container",
        _ => "persistent",
    }
}

/// `(operation, path, extra)` of a write, as ZooKeeper's `AuditHelper` names them.
fn describe(request: &WriteRequest) -> (&'static str, String, String) {
    match request {
        WriteRequest::Create(r) | WriteRequest::Create2(r) => (
            "create",
            r.path.clone(),
            format!("znode_type={}", znode_type(r.flags)),
        ),
        WriteRequest::CreateContainer(r) => {
            ("create", r.path.clone(), "znode_type=container".into())
        }
        WriteRequest::CreateTtl(r) => (
            "create",
            r.path.clone(),
            format!("znode_type={}", znode_type(r.flags)),
        ),
        WriteRequest::Delete(r) => ("delete", r.path.clone(), String::new()),
        WriteRequest::SetData(r) => ("setData", r.path.clone(), String::new()),
        WriteRequest::SetAcl(r) => {
            let acl: Vec<String> = r
                .acl
                .iter()
                .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
                .collect();
            ("setAcl", r.path.clone(), format!("acl={}", acl.join(",")))
        }
        WriteRequest::Check(r) => ("check", r.path.clone(), String::new()),
        WriteRequest::Multi(ops) => {
            let paths: Vec<&str> = ops
                .iter()
                .filter_map(|op| match op {
                    MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => {
                        Some(r.path.as_str())
                    }
                    MultiOp::CreateTtl(r) => Some(r.path.as_str()),
                    MultiOp::Delete(r) => Some(r.path.as_str()),
                    MultiOp::SetData(r) => Some(r.path.as_str()),
                    MultiOp::Check(r) => Some(r.path.as_str()),
                    MultiOp::GetChildren(_) | MultiOp::GetData(_) => None,
                })
                .collect();
            ("multiOperation", paths.join(","), String::new())
        }
        WriteRequest::Reconfig(_) => ("reconfig", "/zookeeper/config".into(), String::new()),
    }
}

fn result_text(result: &Result<Response, ErrorCode>) -> String {
    match result {
        // A multi that failed is an Ok(Multi) whose results are all errors.
        Ok(Response::Multi(multi))
            if multi
                .results
                .iter()
                .any(|r| matches!(r, arbor_proto::OpResult::Error { .. })) =>
        {
            "failure".into()
        }
        Ok(_) => "success".into(),
        Err(code) => format!("failure({code:?})"),
    }
}

/// The audit line of an applied command, `None` for commands no client asked for.
pub(crate) fn audit_line(
    command: &Command,
    result: &Result<Response, ErrorCode>,
) -> Option<String> {
    let session = |id: &SessionId| format!("0x{:x}", id.0);
    match command {
        Command::Request {
            session_id,
            identities,
            request,
        } => {
            let (operation, path, extra) = describe(request);
            let mut line = format!(
                "session={}\tuser={}\tip={}\toperation={operation}\tznode={path}",
                session(session_id),
                users(identities),
                client_ip(identities),
            );
            if !extra.is_empty() {
                line.push('\t');
                line.push_str(&extra);
            }
            line.push_str(&format!("\tresult={}", result_text(result)));
            Some(line)
        }
        Command::CreateSession { session_id, .. } => Some(format!(
            "session={}\toperation=createSession\tresult={}",
            session(session_id),
            result_text(result)
        )),
        Command::CloseSession { session_id } => Some(format!(
            "session={}\toperation=closeSession\tresult={}",
            session(session_id),
            result_text(result)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_proto::{Acl, CreateRequest};

    #[test]
    fn lines_say_who_did_what_where() {
        let command = Command::Request {
            session_id: SessionId(0x100),
            identities: vec![Id::new("ip", "127.0.0.1"), Id::new("sasl", "bob")],
            request: WriteRequest::Create(CreateRequest {
                path: "/a".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 1,
            }),
        };
        let line = audit_line(&command, &Ok(Response::Empty)).unwrap();
        assert_eq!(
            line,
            "session=0x100\tuser=ip:127.0.0.1,sasl:bob\tip=127.0.0.1\toperation=create\t\
             znode=/a\tznode_type=ephemeral\tresult=success"
        );
        let line = audit_line(&command, &Err(ErrorCode::NoAuth)).unwrap();
        assert!(line.ends_with("result=failure(NoAuth)"), "{line}");
        assert!(audit_line(&Command::Noop, &Ok(Response::Empty)).is_none());
    }
}
