//! Client requests: one enum over every opcode a client may send, decoded from the opcode in
//! the request header and the body that follows it.

use crate::jute::{DecodeError, Jute, Reader};
use crate::opcode::OpCode;
use crate::records::*;

/// One operation inside a `multi` (writes) or `multiRead` (reads).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MultiOp {
    /// `create` (the result carries the path only).
    Create(CreateRequest),
    /// `create2` (the result carries path and stat).
    Create2(CreateRequest),
    /// `createContainer`.
    CreateContainer(CreateRequest),
    /// `createTTL`.
    CreateTtl(CreateTtlRequest),
    /// `delete`.
    Delete(DeleteRequest),
    /// `setData`.
    SetData(SetDataRequest),
    /// `check`.
    Check(CheckVersionRequest),
    /// `getChildren` (multiRead only).
    GetChildren(GetChildrenRequest),
    /// `getData` (multiRead only).
    GetData(GetDataRequest),
}

impl MultiOp {
    /// The opcode written in the operation's multi header.
    pub fn op_code(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
            MultiOp::GetData(_) => OpCode::GetData,
        }
    }

    /// Whether this is a read (allowed in `multiRead`, not in `multi`).
    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetChildren(_) | MultiOp::GetData(_))
    }

    /// The path the operation addresses.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => &r.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.encode(out),
            MultiOp::CreateTtl(r) => r.encode(out),
            MultiOp::Delete(r) => r.encode(out),
            MultiOp::SetData(r) => r.encode(out),
            MultiOp::Check(r) => r.encode(out),
            MultiOp::GetChildren(r) => r.encode(out),
            MultiOp::GetData(r) => r.encode(out),
        }
    }

    fn decode_body(op_code: i32, reader: &mut Reader<'_>) -> Result<MultiOp, DecodeError> {
        let op = OpCode::from_i32(op_code).ok_or(DecodeError::UnknownOpCode(op_code))?;
        Ok(match op {
            OpCode::Create => MultiOp::Create(Jute::decode(reader)?),
            OpCode::Create2 => MultiOp::Create2(Jute::decode(reader)?),
            OpCode::CreateContainer => MultiOp::CreateContainer(Jute::decode(reader)?),
            OpCode::CreateTtl => MultiOp::CreateTtl(Jute::decode(reader)?),
            OpCode::Delete => MultiOp::Delete(Jute::decode(reader)?),
            OpCode::SetData => MultiOp::SetData(Jute::decode(reader)?),
            OpCode::Check => MultiOp::Check(Jute::decode(reader)?),
            OpCode::GetChildren => MultiOp::GetChildren(Jute::decode(reader)?),
            OpCode::GetData => MultiOp::GetData(Jute::decode(reader)?),
            _ => return Err(DecodeError::UnexpectedOpCode(op_code)),
        })
    }
}

/// The operations of a `multi` or `multiRead` request (`MultiOperationRecord`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MultiRequest {
    /// The operations, in order.
    pub ops: Vec<MultiOp>,
}

impl Jute for MultiRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        for op in &self.ops {
            MultiHeader {
                op_code: op.op_code().code(),
                done: false,
                err: -1,
            }
            .encode(out);
            op.encode_body(out);
        }
        MultiHeader {
            op_code: -1,
            done: true,
            err: -1,
        }
        .encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut ops = Vec::new();
        loop {
            let header = MultiHeader::decode(reader)?;
            if header.done {
                return Ok(MultiRequest { ops });
            }
            ops.push(MultiOp::decode_body(header.op_code, reader)?);
        }
    }
}

/// A request from a client, after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Opcode 1.
    Create(CreateRequest),
    /// Opcode 15.
    Create2(CreateRequest),
    /// Opcode 19.
    CreateContainer(CreateRequest),
    /// Opcode 21.
    CreateTtl(CreateTtlRequest),
    /// Opcode 2.
    Delete(DeleteRequest),
    /// Opcode 3.
    Exists(ExistsRequest),
    /// Opcode 4.
    GetData(GetDataRequest),
    /// Opcode 5.
    SetData(SetDataRequest),
    /// Opcode 6.
    GetAcl(GetAclRequest),
    /// Opcode 7.
    SetAcl(SetAclRequest),
    /// Opcode 8.
    GetChildren(GetChildrenRequest),
    /// Opcode 12.
    GetChildren2(GetChildrenRequest),
    /// Opcode 9.
    Sync(SyncRequest),
    /// Opcode 11 (no body).
    Ping,
    /// Opcode 13.
    Check(CheckVersionRequest),
    /// Opcode 14.
    Multi(MultiRequest),
    /// Opcode 22.
    MultiRead(MultiRequest),
    /// Opcode 16.
    Reconfig(ReconfigRequest),
    /// Opcode 17.
    CheckWatches(CheckWatchesRequest),
    /// Opcode 18.
    RemoveWatches(RemoveWatchesRequest),
    /// Opcode 100.
    Auth(AuthPacket),
    /// Opcode 101.
    SetWatches(SetWatches),
    /// Opcode 105.
    SetWatches2(SetWatches2),
    /// Opcode 102.
    Sasl(GetSaslRequest),
    /// Opcode 103.
    GetEphemerals(GetEphemeralsRequest),
    /// Opcode 104.
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    /// Opcode 106.
    AddWatch(AddWatchRequest),
    /// Opcode 107 (no body).
    WhoAmI,
    /// Opcode −11 (no body).
    CloseSession,
}

impl Request {
    /// The request's opcode.
    pub fn op_code(&self) -> OpCode {
        match self {
            Request::Create(_) => OpCode::Create,
            Request::Create2(_) => OpCode::Create2,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Sync(_) => OpCode::Sync,
            Request::Ping => OpCode::Ping,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::Sasl(_) => OpCode::Sasl,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// Whether the request changes replicated state (and so goes through the log).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Create2(_)
                | Request::CreateContainer(_)
                | Request::CreateTtl(_)
                | Request::Delete(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Check(_)
                | Request::Multi(_)
                | Request::Reconfig(_)
                | Request::CloseSession
        )
    }

    /// Decodes the body that follows a request header with opcode `op_code`.
    ///
    /// # Errors
    /// [`DecodeError::UnknownOpCode`] for an opcode ZooKeeper does not define,
    /// [`DecodeError::UnexpectedOpCode`] for one a client may not send (notification,
    /// createSession, deleteContainer, error), or any decoding error of the body.
    pub fn decode(op_code: i32, reader: &mut Reader<'_>) -> Result<Request, DecodeError> {
        let op = OpCode::from_i32(op_code).ok_or(DecodeError::UnknownOpCode(op_code))?;
        Ok(match op {
            OpCode::Create => Request::Create(Jute::decode(reader)?),
            OpCode::Create2 => Request::Create2(Jute::decode(reader)?),
            OpCode::CreateContainer => Request::CreateContainer(Jute::decode(reader)?),
            OpCode::CreateTtl => Request::CreateTtl(Jute::decode(reader)?),
            OpCode::Delete => Request::Delete(Jute::decode(reader)?),
            OpCode::Exists => Request::Exists(Jute::decode(reader)?),
            OpCode::GetData => Request::GetData(Jute::decode(reader)?),
            OpCode::SetData => Request::SetData(Jute::decode(reader)?),
            OpCode::GetAcl => Request::GetAcl(Jute::decode(reader)?),
            OpCode::SetAcl => Request::SetAcl(Jute::decode(reader)?),
            OpCode::GetChildren => Request::GetChildren(Jute::decode(reader)?),
            OpCode::GetChildren2 => Request::GetChildren2(Jute::decode(reader)?),
            OpCode::Sync => Request::Sync(Jute::decode(reader)?),
            OpCode::Ping => Request::Ping,
            OpCode::Check => Request::Check(Jute::decode(reader)?),
            OpCode::Multi => Request::Multi(Jute::decode(reader)?),
            OpCode::MultiRead => Request::MultiRead(Jute::decode(reader)?),
            OpCode::Reconfig => Request::Reconfig(Jute::decode(reader)?),
            OpCode::CheckWatches => Request::CheckWatches(Jute::decode(reader)?),
            OpCode::RemoveWatches => Request::RemoveWatches(Jute::decode(reader)?),
            OpCode::Auth => Request::Auth(Jute::decode(reader)?),
            OpCode::SetWatches => Request::SetWatches(Jute::decode(reader)?),
            OpCode::SetWatches2 => Request::SetWatches2(Jute::decode(reader)?),
            OpCode::Sasl => Request::Sasl(Jute::decode(reader)?),
            OpCode::GetEphemerals => Request::GetEphemerals(Jute::decode(reader)?),
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(Jute::decode(reader)?),
            OpCode::AddWatch => Request::AddWatch(Jute::decode(reader)?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Notification
            | OpCode::DeleteContainer
            | OpCode::CreateSession
            | OpCode::Error => return Err(DecodeError::UnexpectedOpCode(op_code)),
        })
    }

    /// Appends the body (without header) to `out`.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => r.encode(out),
            Request::CreateTtl(r) => r.encode(out),
            Request::Delete(r) => r.encode(out),
            Request::Exists(r) => r.encode(out),
            Request::GetData(r) => r.encode(out),
            Request::SetData(r) => r.encode(out),
            Request::GetAcl(r) => r.encode(out),
            Request::SetAcl(r) => r.encode(out),
            Request::GetChildren(r) | Request::GetChildren2(r) => r.encode(out),
            Request::Sync(r) => r.encode(out),
            Request::Check(r) => r.encode(out),
            Request::Multi(r) | Request::MultiRead(r) => r.encode(out),
            Request::Reconfig(r) => r.encode(out),
            Request::CheckWatches(r) => r.encode(out),
            Request::RemoveWatches(r) => r.encode(out),
            Request::Auth(r) => r.encode(out),
            Request::SetWatches(r) => r.encode(out),
            Request::SetWatches2(r) => r.encode(out),
            Request::Sasl(r) => r.encode(out),
            Request::GetEphemerals(r) => r.encode(out),
            Request::GetAllChildrenNumber(r) => r.encode(out),
            Request::AddWatch(r) => r.encode(out),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
        }
    }

    /// Encodes header and body as one frame payload (without the length prefix).
    pub fn encode_with_header(&self, xid: i32, out: &mut Vec<u8>) {
        RequestHeader {
            xid,
            op_code: self.op_code().code(),
        }
        .encode(out);
        self.encode_body(out);
    }
}

/// Decodes a whole request frame payload: header, then body.
///
/// # Errors
/// Any [`DecodeError`]; the header is returned inside the error path only through the
/// caller re-reading it, so callers that need the xid of a bad request should decode the
/// header first with [`RequestHeader::decode`] and then call [`Request::decode`].
pub fn decode_request(payload: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
    let mut reader = Reader::new(payload);
    let header = RequestHeader::decode(&mut reader)?;
    let request = Request::decode(header.op_code, &mut reader)?;
    Ok((header, request))
}
