//! A small driver for tests: applies commands with increasing zxids and a settable clock.
#![allow(dead_code)]

pub mod random;

use arbor_proto::{
    Acl, CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, ErrorCode, Id,
    MultiOp, Response, SessionId, SetAclRequest, SetDataRequest, Stat, Zxid,
};
use arbor_tree::{Applied, Command, DataTree, ServerId, TreeConfig, Txn, WriteRequest};

pub const SESSION: SessionId = SessionId(0x0100_0000_0000_0001);
pub const OTHER_SESSION: SessionId = SessionId(0x0100_0000_0000_0002);

pub struct Harness {
    pub tree: DataTree,
    pub counter: u32,
    pub time_ms: i64,
    pub identities: Vec<Id>,
}

impl Harness {
    /// A tree with [`SESSION`] open, identities `ip:127.0.0.1`.
    pub fn new() -> Harness {
        Harness::with_config(TreeConfig::default())
    }

    pub fn with_config(config: TreeConfig) -> Harness {
        let mut harness = Harness {
            tree: DataTree::new(config),
            counter: 0,
            time_ms: 1_000_000,
            identities: vec![Id::new("ip", "127.0.0.1")],
        };
        harness.open(SESSION);
        harness
    }

    pub fn next_zxid(&self) -> i64 {
        Zxid::from_parts(1, self.counter + 1).0
    }

    pub fn run(&mut self, command: Command) -> Applied {
        let txn = self.logged(command);
        self.tree.apply(Zxid::from_parts(1, self.counter), &txn)
    }

    /// Applies `command` as an entry that server `origin` proposed for its client.
    pub fn run_from(&mut self, origin: ServerId, command: Command) -> Applied {
        let txn = self.logged(command);
        self.tree
            .apply_from(Zxid::from_parts(1, self.counter), origin, &txn)
    }

    /// The next txn, through the log encoding as in the server.
    fn logged(&mut self, command: Command) -> Txn {
        self.counter += 1;
        Txn::decode(
            &Txn {
                time_ms: self.time_ms,
                command,
            }
            .encode(),
        )
        .unwrap()
    }

    pub fn open(&mut self, session_id: SessionId) -> Applied {
        self.run(Command::CreateSession {
            session_id,
            timeout_ms: 10_000,
            password: vec![7; 16],
        })
    }

    pub fn close(&mut self, session_id: SessionId) -> Applied {
        self.run(Command::CloseSession { session_id })
    }

    pub fn request_as(&mut self, session_id: SessionId, request: WriteRequest) -> Applied {
        let identities = self.identities.clone();
        self.run(Command::Request {
            session_id,
            identities,
            request,
        })
    }

    pub fn request(&mut self, request: WriteRequest) -> Applied {
        self.request_as(SESSION, request)
    }

    /// create2 with flags; returns the path or the error.
    pub fn create_mode(
        &mut self,
        path: &str,
        data: &[u8],
        flags: i32,
    ) -> Result<(String, Stat), ErrorCode> {
        match self
            .request(WriteRequest::Create2(create_request(path, data, flags)))
            .result?
        {
            Response::Create2(r) => Ok((r.path, r.stat)),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn create(&mut self, path: &str, data: &[u8]) -> Result<String, ErrorCode> {
        self.create_mode(path, data, 0).map(|(path, _)| path)
    }

    pub fn create_acl(&mut self, path: &str, acl: Vec<Acl>) -> Result<String, ErrorCode> {
        let mut request = create_request(path, b"", 0);
        request.acl = acl;
        match self.request(WriteRequest::Create(request)).result? {
            Response::Create(r) => Ok(r.path),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn create_ttl(
        &mut self,
        path: &str,
        flags: i32,
        ttl: i64,
    ) -> Result<(String, Stat), ErrorCode> {
        let request = CreateTtlRequest {
            path: path.into(),
            data: Default::default(),
            acl: Acl::open_unsafe(),
            flags,
            ttl,
        };
        match self.request(WriteRequest::CreateTtl(request)).result? {
            Response::Create2(r) => Ok((r.path, r.stat)),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn create_container(&mut self, path: &str) -> Result<(String, Stat), ErrorCode> {
        match self
            .request(WriteRequest::CreateContainer(create_request(path, b"", 4)))
            .result?
        {
            Response::Create2(r) => Ok((r.path, r.stat)),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn delete(&mut self, path: &str, version: i32) -> Result<(), ErrorCode> {
        self.request(WriteRequest::Delete(DeleteRequest {
            path: path.into(),
            version,
        }))
        .result
        .map(|_| ())
    }

    pub fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> Result<Stat, ErrorCode> {
        let request = SetDataRequest {
            path: path.into(),
            data: Some(data.to_vec().into()),
            version,
        };
        match self.request(WriteRequest::SetData(request)).result? {
            Response::SetData(r) => Ok(r.stat),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn set_acl(&mut self, path: &str, acl: Vec<Acl>, version: i32) -> Result<Stat, ErrorCode> {
        let request = SetAclRequest {
            path: path.into(),
            acl,
            version,
        };
        match self.request(WriteRequest::SetAcl(request)).result? {
            Response::SetAcl(r) => Ok(r.stat),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn check(&mut self, path: &str, version: i32) -> Result<(), ErrorCode> {
        self.request(WriteRequest::Check(CheckVersionRequest {
            path: path.into(),
            version,
        }))
        .result
        .map(|_| ())
    }

    pub fn multi(&mut self, ops: Vec<MultiOp>) -> Applied {
        self.request(WriteRequest::Multi(ops))
    }

    pub fn stat(&self, path: &str) -> Stat {
        self.tree.exists(path).unwrap()
    }
}

pub fn create_request(path: &str, data: &[u8], flags: i32) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: Some(data.to_vec().into()),
        acl: Acl::open_unsafe(),
        flags,
    }
}
