//! The bookkeeping of one connection's outstanding requests: xid assignment, the bounded window,
//! and matching each reply to its request. Pure: no socket, no clock.
//!
//! A ZooKeeper server answers the requests of one session in the order it received them (FIFO
//! client order, programmer's guide), so a reply must carry the xid of the *oldest* outstanding
//! request. Anything else is a protocol violation, which ZooKeeper's own Java client reports as
//! "Xid out of order"; we report it too rather than silently re-pairing latencies.

use std::collections::VecDeque;

use arbor_proto::OpCode;
use thiserror::Error;

/// The first xid a session uses (ZooKeeper's client starts at 1; negative xids are special).
pub const XID_FIRST: i32 = 1;

/// Why a reply could not be matched to a request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PipelineError {
    /// The window is full: the caller must wait for a reply before sending.
    #[error("window of {window} outstanding requests is full")]
    WindowFull {
        /// The window size.
        window: usize,
    },
    /// A reply arrived while nothing was outstanding.
    #[error("reply with xid {xid} while no request is outstanding")]
    Unsolicited {
        /// The reply's xid.
        xid: i32,
    },
    /// A reply did not answer the oldest outstanding request.
    #[error("reply xid {got} out of order: expected {expected}")]
    OutOfOrder {
        /// The xid of the oldest outstanding request.
        expected: i32,
        /// The xid the server sent.
        got: i32,
    },
}

/// One request on the wire, waiting for its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight<T> {
    xid: i32,
    op: OpCode,
    tag: T,
}

/// The outstanding requests of one connection, oldest first, with the caller's tag (for the
/// bench: when the request was meant to be sent, and whether it is a read or a write).
#[derive(Debug, Clone)]
pub struct Pipeline<T> {
    window: usize,
    next_xid: i32,
    /// Invariant: `in_flight.len() <= window`, and xids increase from front to back (modulo the
    /// wrap from `i32::MAX` to [`XID_FIRST`]).
    in_flight: VecDeque<InFlight<T>>,
}

impl<T> Pipeline<T> {
    /// An empty pipeline that allows `window` outstanding requests.
    ///
    /// # Panics
    /// If `window` is 0 (the caller validates user input before this point).
    pub fn new(window: usize) -> Pipeline<T> {
        assert!(window > 0, "a pipeline window must allow one request");
        Pipeline {
            window,
            next_xid: XID_FIRST,
            in_flight: VecDeque::with_capacity(window),
        }
    }

    /// The window size.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Requests sent and not yet answered.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Whether another request would exceed the window.
    pub fn is_full(&self) -> bool {
        self.in_flight.len() >= self.window
    }

    /// Assigns an xid to a request of type `op` and records it as outstanding.
    ///
    /// # Errors
    /// [`PipelineError::WindowFull`] when `window` requests are already outstanding.
    pub fn admit(&mut self, op: OpCode, tag: T) -> Result<i32, PipelineError> {
        if self.is_full() {
            return Err(PipelineError::WindowFull {
                window: self.window,
            });
        }
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { XID_FIRST } else { xid + 1 };
        self.in_flight.push_back(InFlight { xid, op, tag });
        assert!(self.in_flight.len() <= self.window, "window overrun");
        Ok(xid)
    }

    /// Matches a reply's xid to the oldest outstanding request and removes it.
    ///
    /// # Errors
    /// [`PipelineError::Unsolicited`] when nothing is outstanding,
    /// [`PipelineError::OutOfOrder`] when `xid` is not the oldest outstanding xid. The pipeline
    /// is left unchanged on error.
    pub fn complete(&mut self, xid: i32) -> Result<(OpCode, T), PipelineError> {
        let Some(oldest) = self.in_flight.front() else {
            return Err(PipelineError::Unsolicited { xid });
        };
        if oldest.xid != xid {
            return Err(PipelineError::OutOfOrder {
                expected: oldest.xid,
                got: xid,
            });
        }
        let done = self
            .in_flight
            .pop_front()
            .ok_or(PipelineError::Unsolicited { xid })?;
        Ok((done.op, done.tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_matched_oldest_first_with_their_tags() {
        let mut pipeline = Pipeline::new(3);
        let a = pipeline.admit(OpCode::GetData, "a").unwrap();
        let b = pipeline.admit(OpCode::SetData, "b").unwrap();
        assert_eq!((a, b), (XID_FIRST, XID_FIRST + 1));
        assert_eq!(pipeline.complete(a).unwrap(), (OpCode::GetData, "a"));
        assert_eq!(pipeline.complete(b).unwrap(), (OpCode::SetData, "b"));
        assert!(pipeline.is_empty());
    }

    #[test]
    fn window_bound_refuses_the_request_beyond_it() {
        let mut pipeline = Pipeline::new(2);
        pipeline.admit(OpCode::Create, ()).unwrap();
        pipeline.admit(OpCode::Create, ()).unwrap();
        assert!(pipeline.is_full());
        assert_eq!(
            pipeline.admit(OpCode::Create, ()),
            Err(PipelineError::WindowFull { window: 2 })
        );
        pipeline.complete(XID_FIRST).unwrap();
        assert!(!pipeline.is_full());
        assert_eq!(pipeline.admit(OpCode::Create, ()), Ok(XID_FIRST + 2));
    }

    #[test]
    fn out_of_order_reply_is_an_error_and_changes_nothing() {
        let mut pipeline = Pipeline::new(4);
        pipeline.admit(OpCode::GetData, 1).unwrap();
        pipeline.admit(OpCode::GetData, 2).unwrap();
        assert_eq!(
            pipeline.complete(XID_FIRST + 1),
            Err(PipelineError::OutOfOrder {
                expected: XID_FIRST,
                got: XID_FIRST + 1
            })
        );
        assert_eq!(pipeline.len(), 2);
        assert_eq!(pipeline.complete(XID_FIRST).unwrap().1, 1);
    }

    #[test]
    fn unsolicited_reply_is_an_error() {
        let mut pipeline: Pipeline<()> = Pipeline::new(1);
        assert_eq!(
            pipeline.complete(7),
            Err(PipelineError::Unsolicited { xid: 7 })
        );
    }

    #[test]
    fn xids_wrap_to_the_first_positive_xid() {
        let mut pipeline = Pipeline::new(2);
        pipeline.next_xid = i32::MAX;
        assert_eq!(pipeline.admit(OpCode::Exists, ()).unwrap(), i32::MAX);
        assert_eq!(pipeline.admit(OpCode::Exists, ()).unwrap(), XID_FIRST);
        pipeline.complete(i32::MAX).unwrap();
        pipeline.complete(XID_FIRST).unwrap();
    }
}
