//! ZooKeeper's client wire protocol, as arbor speaks it: the jute codec, every record of
//! ZooKeeper 3.9's client protocol, the opcodes and the error codes.
//!
//! This crate does no I/O. A server splits frames off its socket buffer, decodes them into
//! [`Request`]s and encodes [`Response`]s; a client does the reverse.
//!
//! ```
//! use arbor_proto::{decode_request, GetDataRequest, Jute, Request, ReplyHeader, Response,
//!     GetDataResponse, Stat, split_frame, write_frame, write_reply};
//!
//! // Client side: frame a getData request.
//! let request = Request::GetData(GetDataRequest { path: "/app".into(), watch: true });
//! let mut wire = Vec::new();
//! write_frame(&mut wire, |payload| request.encode_with_header(7, payload));
//!
//! // Server side: split the frame, decode, answer.
//! let (payload, consumed) = split_frame(&wire, arbor_proto::FRAME_SIZE_BYTES_MAX_DEFAULT)
//!     .expect("frame within limit")
//!     .expect("whole frame");
//! assert_eq!(consumed, wire.len());
//! let (header, decoded) = decode_request(payload).expect("valid request");
//! assert_eq!(decoded, request);
//! let reply = Response::GetData(GetDataResponse { data: Some("v".into()), stat: Stat::default() });
//! let mut out = Vec::new();
//! write_reply(&mut out, &ReplyHeader { xid: header.xid, zxid: 1, err: 0 }, |b| reply.encode(b));
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod connect;
mod data;
mod error_code;
mod frame;
mod jute;
mod opcode;
mod records;
mod request;
mod response;

pub use connect::{ConnectRequest, ConnectResponse};
pub use data::{
    Acl, AddWatchMode, ClientInfo, CreateMode, EventType, Id, KeeperState, SessionId, Stat,
    WatcherType, Zxid, perms,
};
pub use error_code::ErrorCode;
pub use frame::{
    FOUR_LETTER_WORDS, FRAME_SIZE_BYTES_MAX_DEFAULT, four_letter_word, split_frame, write_frame,
    write_notification, write_reply,
};
pub use jute::{DecodeError, Jute, Reader};
pub use opcode::{OpCode, XID_AUTH, XID_NOTIFICATION, XID_PING, XID_SET_WATCHES};
pub use records::*;
pub use request::{MultiOp, MultiRequest, Request, decode_request};
pub use response::{MultiResponse, OpResult, Response};
