//! Server replies: the body that follows a [`ReplyHeader`] whose `err` is 0. (A failed request
//! is answered with the header alone, carrying the error code.)

use bytes::Bytes;

use crate::data::Stat;
use crate::error_code::ErrorCode;
use crate::jute::{DecodeError, Jute, Reader};
use crate::opcode::OpCode;
use crate::records::*;

/// The result of one operation of a `multi` or `multiRead`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// A created node; `stat` is present for create2, createTTL and createContainer.
    Create {
        /// The created path.
        path: String,
        /// The created node's stat, except for plain `create`.
        stat: Option<Stat>,
    },
    /// A deleted node.
    Delete,
    /// A written node.
    SetData {
        /// The stat after the write.
        stat: Stat,
    },
    /// A passed version check.
    Check,
    /// A child listing (multiRead).
    GetChildren {
        /// The children's names.
        children: Vec<String>,
    },
    /// A node's data (multiRead).
    GetData {
        /// The data (`None`: null).
        data: Option<Bytes>,
        /// The stat.
        stat: Stat,
    },
    /// A failed operation, or — in a failed multi — an operation that was rolled back (code 0)
    /// or never run (RuntimeInconsistency).
    Error {
        /// The error code (raw, as ZooKeeper may send codes we do not know).
        err: i32,
    },
}

impl OpResult {
    /// The error result for a code.
    pub fn error(code: ErrorCode) -> OpResult {
        OpResult::Error { err: code.code() }
    }

    fn header(&self) -> MultiHeader {
        let (op, err) = match self {
            OpResult::Create { stat: None, .. } => (OpCode::Create, 0),
            OpResult::Create { stat: Some(_), .. } => (OpCode::Create2, 0),
            OpResult::Delete => (OpCode::Delete, 0),
            OpResult::SetData { .. } => (OpCode::SetData, 0),
            OpResult::Check => (OpCode::Check, 0),
            OpResult::GetChildren { .. } => (OpCode::GetChildren, 0),
            OpResult::GetData { .. } => (OpCode::GetData, 0),
            OpResult::Error { err } => (OpCode::Error, *err),
        };
        MultiHeader {
            op_code: op.code(),
            done: false,
            err,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            OpResult::Create { path, stat: None } => path.encode(out),
            OpResult::Create {
                path,
                stat: Some(stat),
            } => {
                path.encode(out);
                stat.encode(out);
            }
            OpResult::Delete | OpResult::Check => {}
            OpResult::SetData { stat } => stat.encode(out),
            OpResult::GetChildren { children } => children.encode(out),
            OpResult::GetData { data, stat } => {
                data.encode(out);
                stat.encode(out);
            }
            OpResult::Error { err } => err.encode(out),
        }
    }

    fn decode_body(op_code: i32, reader: &mut Reader<'_>) -> Result<OpResult, DecodeError> {
        let op = OpCode::from_i32(op_code).ok_or(DecodeError::UnknownOpCode(op_code))?;
        Ok(match op {
            OpCode::Create => OpResult::Create {
                path: reader.read_string()?,
                stat: None,
            },
            OpCode::Create2 | OpCode::CreateTtl | OpCode::CreateContainer => {
                let path = reader.read_string()?;
                OpResult::Create {
                    path,
                    stat: Some(Stat::decode(reader)?),
                }
            }
            OpCode::Delete | OpCode::DeleteContainer => OpResult::Delete,
            OpCode::Check => OpResult::Check,
            OpCode::SetData => OpResult::SetData {
                stat: Stat::decode(reader)?,
            },
            OpCode::GetChildren => OpResult::GetChildren {
                children: reader.read_vec()?,
            },
            OpCode::GetData => {
                let data = reader.read_buffer_opt()?;
                OpResult::GetData {
                    data,
                    stat: Stat::decode(reader)?,
                }
            }
            OpCode::Error => OpResult::Error {
                err: reader.read_i32()?,
            },
            _ => return Err(DecodeError::UnexpectedOpCode(op_code)),
        })
    }
}

/// The results of a `multi` or `multiRead` (`MultiResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MultiResponse {
    /// One result per operation, in order.
    pub results: Vec<OpResult>,
}

impl Jute for MultiResponse {
    fn encode(&self, out: &mut Vec<u8>) {
        for result in &self.results {
            result.header().encode(out);
            result.encode_body(out);
        }
        MultiHeader {
            op_code: -1,
            done: true,
            err: -1,
        }
        .encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut results = Vec::new();
        loop {
            let header = MultiHeader::decode(reader)?;
            if header.done {
                return Ok(MultiResponse { results });
            }
            results.push(OpResult::decode_body(header.op_code, reader)?);
        }
    }
}

/// The body of a successful reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, check, ping, auth, setWatches, removeWatches, checkWatches,
    /// closeSession.
    Empty,
    /// Reply to addWatch: ZooKeeper's server sends an `ErrorResponse` carrying 0 as the body,
    /// and the Java client deserializes it (an empty body fails its read with a connection
    /// loss).
    AddWatch(ErrorResponse),
    /// Reply to create.
    Create(CreateResponse),
    /// Reply to create2, createTTL and createContainer.
    Create2(Create2Response),
    /// Reply to exists.
    Exists(ExistsResponse),
    /// Reply to getData, and to reconfig (the new config).
    GetData(GetDataResponse),
    /// Reply to setData.
    SetData(SetDataResponse),
    /// Reply to getACL.
    GetAcl(GetAclResponse),
    /// Reply to setACL.
    SetAcl(SetAclResponse),
    /// Reply to getChildren.
    GetChildren(GetChildrenResponse),
    /// Reply to getChildren2.
    GetChildren2(GetChildren2Response),
    /// Reply to sync.
    Sync(SyncResponse),
    /// Reply to multi and multiRead.
    Multi(MultiResponse),
    /// Reply to getEphemerals.
    GetEphemerals(GetEphemeralsResponse),
    /// Reply to getAllChildrenNumber.
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    /// Reply to whoAmI.
    WhoAmI(WhoAmIResponse),
    /// Reply to sasl.
    Sasl(SetSaslResponse),
}

impl Response {
    /// Appends the body to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Response::Empty => {}
            Response::AddWatch(r) => r.encode(out),
            Response::Create(r) => r.encode(out),
            Response::Create2(r) => r.encode(out),
            Response::Exists(r) => r.encode(out),
            Response::GetData(r) => r.encode(out),
            Response::SetData(r) => r.encode(out),
            Response::GetAcl(r) => r.encode(out),
            Response::SetAcl(r) => r.encode(out),
            Response::GetChildren(r) => r.encode(out),
            Response::GetChildren2(r) => r.encode(out),
            Response::Sync(r) => r.encode(out),
            Response::Multi(r) => r.encode(out),
            Response::GetEphemerals(r) => r.encode(out),
            Response::GetAllChildrenNumber(r) => r.encode(out),
            Response::WhoAmI(r) => r.encode(out),
            Response::Sasl(r) => r.encode(out),
        }
    }

    /// Decodes the body of a successful reply to a request of type `op` (clients need the
    /// opcode, since the body does not name itself).
    ///
    /// # Errors
    /// Any [`DecodeError`] of the body; [`DecodeError::UnexpectedOpCode`] for an opcode that
    /// has no reply.
    pub fn decode(op: OpCode, reader: &mut Reader<'_>) -> Result<Response, DecodeError> {
        Ok(match op {
            OpCode::Create => Response::Create(Jute::decode(reader)?),
            OpCode::Create2 | OpCode::CreateTtl | OpCode::CreateContainer => {
                Response::Create2(Jute::decode(reader)?)
            }
            OpCode::Exists => Response::Exists(Jute::decode(reader)?),
            OpCode::GetData | OpCode::Reconfig => Response::GetData(Jute::decode(reader)?),
            OpCode::SetData => Response::SetData(Jute::decode(reader)?),
            OpCode::GetAcl => Response::GetAcl(Jute::decode(reader)?),
            OpCode::SetAcl => Response::SetAcl(Jute::decode(reader)?),
            OpCode::GetChildren => Response::GetChildren(Jute::decode(reader)?),
            OpCode::GetChildren2 => Response::GetChildren2(Jute::decode(reader)?),
            OpCode::Sync => Response::Sync(Jute::decode(reader)?),
            OpCode::Multi | OpCode::MultiRead => Response::Multi(Jute::decode(reader)?),
            OpCode::GetEphemerals => Response::GetEphemerals(Jute::decode(reader)?),
            OpCode::GetAllChildrenNumber => Response::GetAllChildrenNumber(Jute::decode(reader)?),
            OpCode::WhoAmI => Response::WhoAmI(Jute::decode(reader)?),
            OpCode::Sasl => Response::Sasl(Jute::decode(reader)?),
            OpCode::AddWatch => Response::AddWatch(Jute::decode(reader)?),
            OpCode::Delete
            | OpCode::Check
            | OpCode::Ping
            | OpCode::Auth
            | OpCode::SetWatches
            | OpCode::SetWatches2
            | OpCode::RemoveWatches
            | OpCode::CheckWatches
            | OpCode::CloseSession => Response::Empty,
            OpCode::Notification
            | OpCode::DeleteContainer
            | OpCode::CreateSession
            | OpCode::Error => return Err(DecodeError::UnexpectedOpCode(op.code())),
        })
    }
}
