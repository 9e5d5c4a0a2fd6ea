//! The handshake that opens every peer connection, before any frame.
//!
//! The dialer speaks first with a *hello*; the acceptor checks it and answers *accept* or
//! *refuse* with a reason code; the dialer checks the answer in turn. Every integer is
//! big-endian.
//!
//! ```text
//! hello  (dialer → acceptor, 30 bytes)
//!   magic "ARBP" | version u16 | cluster_id u64 | sender u64 | receiver u64
//! answer (acceptor → dialer, 23 bytes)
//!   magic "ARBP" | version u16 | code u8 (0 = accept, else a RefuseReason)
//!                | cluster_id u64 | node_id u64         (the acceptor's own)
//! ```
//!
//! The six-byte prefix (magic, version) of both messages is fixed for every protocol version,
//! so a node reads a newer peer's version before the rest and refuses it by name instead of
//! misparsing it. The acceptor also answers when it refuses, so the misconfigured side logs a
//! clear line naming both cluster ids, not a bare "connection reset".

use std::fmt;
use std::io;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::PeerStream;

/// Opens every hello and answer: "ARBP", arbor peer.
pub(crate) const MAGIC: [u8; 4] = *b"ARBP";
/// The protocol version this build speaks (and the only one it accepts).
pub(crate) const PROTOCOL_VERSION: u16 = 1;
/// Magic plus version: the part of a hello or answer that every version shares.
pub(crate) const PREFIX_BYTES: usize = 6;
/// A version-1 hello, after the prefix: cluster id, sender, receiver.
pub(crate) const HELLO_BODY_BYTES: usize = 24;
/// A whole answer.
pub(crate) const ANSWER_BYTES: usize = 23;

/// Who is dialing whom: the body of a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    /// The dialer's cluster.
    pub(crate) cluster_id: u64,
    /// The dialer's node id.
    pub(crate) sender: u64,
    /// The node id the dialer meant to reach.
    pub(crate) receiver: u64,
}

/// Why an acceptor refused a connection; carried on the wire as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefuseReason {
    /// The hello did not start with arbor's magic: not an arbor peer at all.
    BadMagic,
    /// The dialer speaks a protocol version the acceptor does not.
    VersionUnsupported,
    /// The dialer belongs to another cluster.
    ClusterMismatch,
    /// The dialer meant to reach another node id than the acceptor's: an address book that
    /// points at the wrong machine.
    WrongReceiver,
    /// The dialer claims the acceptor's own node id: two nodes configured with one id.
    DuplicateNodeId,
    /// The acceptor has too many inbound connections already.
    Busy,
}

impl RefuseReason {
    /// The byte on the wire.
    pub(crate) fn code(self) -> u8 {
        match self {
            RefuseReason::BadMagic => 1,
            RefuseReason::VersionUnsupported => 2,
            RefuseReason::ClusterMismatch => 3,
            RefuseReason::WrongReceiver => 4,
            RefuseReason::DuplicateNodeId => 5,
            RefuseReason::Busy => 6,
        }
    }

    /// The reason for a byte on the wire; `None` for 0 (accept) and for codes a newer
    /// version may have added.
    pub(crate) fn from_code(code: u8) -> Option<RefuseReason> {
        match code {
            1 => Some(RefuseReason::BadMagic),
            2 => Some(RefuseReason::VersionUnsupported),
            3 => Some(RefuseReason::ClusterMismatch),
            4 => Some(RefuseReason::WrongReceiver),
            5 => Some(RefuseReason::DuplicateNodeId),
            6 => Some(RefuseReason::Busy),
            _ => None,
        }
    }
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefuseReason::BadMagic => "not an arbor peer handshake",
            RefuseReason::VersionUnsupported => "unsupported peer protocol version",
            RefuseReason::ClusterMismatch => "cluster id mismatch",
            RefuseReason::WrongReceiver => "the dialed node has another node id",
            RefuseReason::DuplicateNodeId => "the dialer uses the acceptor's own node id",
            RefuseReason::Busy => "too many inbound peer connections",
        })
    }
}

/// Why the dialer could not establish a connection to a peer. Kept in
/// [`PeerStats::last_connect_error`](super::PeerStats::last_connect_error).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConnectError {
    /// The peer answered the handshake with a refusal.
    #[error(
        "refused by the peer: {reason} (peer: cluster id {cluster_id}, node id {node_id}, \
         protocol version {version})"
    )]
    Refused {
        /// Why.
        reason: RefuseReason,
        /// The peer's cluster id.
        cluster_id: u64,
        /// The peer's node id.
        node_id: u64,
        /// The peer's protocol version.
        version: u16,
    },
    /// The peer refused with a code this build does not know (a newer peer).
    #[error(
        "refused by the peer with unknown reason code {code} (peer protocol version {version})"
    )]
    RefusedUnknown {
        /// The code.
        code: u8,
        /// The peer's protocol version.
        version: u16,
    },
    /// The peer accepted, but it is not who we dialed: another cluster or another node id.
    #[error(
        "the peer that answered is cluster id {cluster_id}, node id {node_id}: not the one dialed"
    )]
    WrongPeer {
        /// The cluster id it announced.
        cluster_id: u64,
        /// The node id it announced.
        node_id: u64,
    },
    /// The answer is not an arbor handshake.
    #[error("the peer's answer is not an arbor peer handshake")]
    BadAnswer,
    /// No connection and answer within the connect timeout.
    #[error("no connection and handshake within the connect timeout")]
    Timeout,
    /// The TLS handshake failed (an untrusted or missing certificate on either side).
    #[error("TLS handshake failed: {reason}")]
    Tls {
        /// What rustls said.
        reason: String,
    },
    /// The TCP connect or the handshake I/O failed.
    #[error("connection failed: {kind}")]
    Io {
        /// The kind of I/O error (the error itself is not `Clone`).
        kind: io::ErrorKind,
    },
}

impl From<io::Error> for ConnectError {
    fn from(error: io::Error) -> ConnectError {
        ConnectError::Io { kind: error.kind() }
    }
}

/// What a node knows of itself for the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LocalIdentity {
    /// Its cluster.
    pub(crate) cluster_id: u64,
    /// Its node id.
    pub(crate) node_id: u64,
}

fn prefix(version: u16) -> [u8; PREFIX_BYTES] {
    let mut bytes = [0u8; PREFIX_BYTES];
    bytes[..4].copy_from_slice(&MAGIC);
    bytes[4..].copy_from_slice(&version.to_be_bytes());
    bytes
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

/// The dialer's hello, prefix included.
pub(crate) fn encode_hello(hello: &Hello) -> [u8; PREFIX_BYTES + HELLO_BODY_BYTES] {
    let mut bytes = [0u8; PREFIX_BYTES + HELLO_BODY_BYTES];
    bytes[..PREFIX_BYTES].copy_from_slice(&prefix(PROTOCOL_VERSION));
    bytes[6..14].copy_from_slice(&hello.cluster_id.to_be_bytes());
    bytes[14..22].copy_from_slice(&hello.sender.to_be_bytes());
    bytes[22..30].copy_from_slice(&hello.receiver.to_be_bytes());
    bytes
}

/// Checks the prefix of a hello: arbor's magic and a version this build speaks.
pub(crate) fn check_hello_prefix(bytes: &[u8; PREFIX_BYTES]) -> Result<(), RefuseReason> {
    if bytes[..4] != MAGIC {
        return Err(RefuseReason::BadMagic);
    }
    if u16::from_be_bytes([bytes[4], bytes[5]]) != PROTOCOL_VERSION {
        return Err(RefuseReason::VersionUnsupported);
    }
    Ok(())
}

/// The body of a version-1 hello.
pub(crate) fn decode_hello_body(bytes: &[u8; HELLO_BODY_BYTES]) -> Hello {
    Hello {
        cluster_id: u64_at(bytes, 0),
        sender: u64_at(bytes, 8),
        receiver: u64_at(bytes, 16),
    }
}

/// The acceptor's decision on a well-formed hello.
pub(crate) fn check_hello(hello: &Hello, local: LocalIdentity) -> Result<(), RefuseReason> {
    if hello.cluster_id != local.cluster_id {
        return Err(RefuseReason::ClusterMismatch);
    }
    if hello.sender == local.node_id {
        return Err(RefuseReason::DuplicateNodeId);
    }
    if hello.receiver != local.node_id {
        return Err(RefuseReason::WrongReceiver);
    }
    Ok(())
}

/// The acceptor's answer: `None` accepts.
pub(crate) fn encode_answer(
    refusal: Option<RefuseReason>,
    local: LocalIdentity,
) -> [u8; ANSWER_BYTES] {
    let mut bytes = [0u8; ANSWER_BYTES];
    bytes[..PREFIX_BYTES].copy_from_slice(&prefix(PROTOCOL_VERSION));
    bytes[6] = refusal.map_or(0, RefuseReason::code);
    bytes[7..15].copy_from_slice(&local.cluster_id.to_be_bytes());
    bytes[15..23].copy_from_slice(&local.node_id.to_be_bytes());
    bytes
}

/// The dialer's check of the answer: accepted, and by the node it meant to reach.
pub(crate) fn check_answer(
    bytes: &[u8; ANSWER_BYTES],
    local: LocalIdentity,
    expected_node_id: u64,
) -> Result<(), ConnectError> {
    if bytes[..4] != MAGIC {
        return Err(ConnectError::BadAnswer);
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    let code = bytes[6];
    let cluster_id = u64_at(bytes, 7);
    let node_id = u64_at(bytes, 15);
    if code != 0 {
        return Err(match RefuseReason::from_code(code) {
            Some(reason) => ConnectError::Refused {
                reason,
                cluster_id,
                node_id,
                version,
            },
            None => ConnectError::RefusedUnknown { code, version },
        });
    }
    if version != PROTOCOL_VERSION {
        // An acceptor must refuse a version it does not speak; accepting one is a peer bug.
        return Err(ConnectError::BadAnswer);
    }
    if cluster_id != local.cluster_id || node_id != expected_node_id {
        return Err(ConnectError::WrongPeer {
            cluster_id,
            node_id,
        });
    }
    Ok(())
}

/// The dialer's side: sends the hello and checks the answer. The caller bounds it in time.
pub(crate) async fn dial<S: PeerStream>(
    stream: &mut S,
    local: LocalIdentity,
    peer_id: u64,
) -> Result<(), ConnectError> {
    let hello = Hello {
        cluster_id: local.cluster_id,
        sender: local.node_id,
        receiver: peer_id,
    };
    stream.write_all(&encode_hello(&hello)).await?;
    stream.flush().await?;
    let mut answer = [0u8; ANSWER_BYTES];
    stream.read_exact(&mut answer).await?;
    check_answer(&answer, local, peer_id)
}

/// How an acceptor's side of the handshake ended.
#[derive(Debug)]
pub(crate) enum AcceptOutcome {
    /// Accepted (and answered so): the connection carries frames from `sender` now.
    Accepted(Hello),
    /// Refused and answered so; `hello` is what the dialer said, when it got that far.
    Refused {
        /// Why.
        reason: RefuseReason,
        /// The dialer's hello, if it was well-formed up to the body.
        hello: Option<Hello>,
    },
}

/// The acceptor's side: reads the hello, answers, and says what it decided. The caller
/// bounds it in time.
///
/// # Errors
/// The I/O error when the socket fails or closes mid-handshake.
pub(crate) async fn accept<S: PeerStream>(
    stream: &mut S,
    local: LocalIdentity,
) -> io::Result<AcceptOutcome> {
    let mut prefix = [0u8; PREFIX_BYTES];
    stream.read_exact(&mut prefix).await?;
    let outcome = match check_hello_prefix(&prefix) {
        Err(reason) => AcceptOutcome::Refused {
            reason,
            hello: None,
        },
        Ok(()) => {
            let mut body = [0u8; HELLO_BODY_BYTES];
            stream.read_exact(&mut body).await?;
            let hello = decode_hello_body(&body);
            match check_hello(&hello, local) {
                Ok(()) => AcceptOutcome::Accepted(hello),
                Err(reason) => AcceptOutcome::Refused {
                    reason,
                    hello: Some(hello),
                },
            }
        }
    };
    let refusal = match &outcome {
        AcceptOutcome::Accepted(_) => None,
        AcceptOutcome::Refused { reason, .. } => Some(*reason),
    };
    stream.write_all(&encode_answer(refusal, local)).await?;
    stream.flush().await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: LocalIdentity = LocalIdentity {
        cluster_id: 7,
        node_id: 2,
    };

    fn hello_bytes(hello: &Hello) -> ([u8; PREFIX_BYTES], [u8; HELLO_BODY_BYTES]) {
        let bytes = encode_hello(hello);
        let mut prefix = [0u8; PREFIX_BYTES];
        let mut body = [0u8; HELLO_BODY_BYTES];
        prefix.copy_from_slice(&bytes[..PREFIX_BYTES]);
        body.copy_from_slice(&bytes[PREFIX_BYTES..]);
        (prefix, body)
    }

    #[test]
    fn hello_layout_is_fixed() {
        let bytes = encode_hello(&Hello {
            cluster_id: 0x0102_0304_0506_0708,
            sender: 9,
            receiver: 10,
        });
        assert_eq!(&bytes[..4], b"ARBP");
        assert_eq!(&bytes[4..6], &[0, 1]);
        assert_eq!(&bytes[6..14], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[14..22], &9u64.to_be_bytes());
        assert_eq!(&bytes[22..30], &10u64.to_be_bytes());
    }

    #[test]
    fn hello_round_trips() {
        let hello = Hello {
            cluster_id: 7,
            sender: 1,
            receiver: 2,
        };
        let (prefix, body) = hello_bytes(&hello);
        assert_eq!(check_hello_prefix(&prefix), Ok(()));
        assert_eq!(decode_hello_body(&body), hello);
        assert_eq!(check_hello(&hello, LOCAL), Ok(()));
    }

    #[test]
    fn foreign_bytes_are_bad_magic() {
        // A ZooKeeper client's connect request sent to the peer port by mistake.
        let prefix = [0, 0, 0, 44, 0, 0];
        assert_eq!(check_hello_prefix(&prefix), Err(RefuseReason::BadMagic));
    }

    #[test]
    fn newer_version_is_refused_by_name() {
        let mut prefix = [0u8; PREFIX_BYTES];
        prefix[..4].copy_from_slice(&MAGIC);
        prefix[4..].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(
            check_hello_prefix(&prefix),
            Err(RefuseReason::VersionUnsupported)
        );
    }

    #[test]
    fn acceptor_refuses_what_does_not_match() {
        let good = Hello {
            cluster_id: 7,
            sender: 1,
            receiver: 2,
        };
        let other_cluster = Hello {
            cluster_id: 8,
            ..good
        };
        let same_id = Hello { sender: 2, ..good };
        let other_receiver = Hello {
            receiver: 3,
            ..good
        };
        assert_eq!(
            check_hello(&other_cluster, LOCAL),
            Err(RefuseReason::ClusterMismatch)
        );
        assert_eq!(
            check_hello(&same_id, LOCAL),
            Err(RefuseReason::DuplicateNodeId)
        );
        assert_eq!(
            check_hello(&other_receiver, LOCAL),
            Err(RefuseReason::WrongReceiver)
        );
    }

    #[test]
    fn every_reason_round_trips_through_its_code() {
        for reason in [
            RefuseReason::BadMagic,
            RefuseReason::VersionUnsupported,
            RefuseReason::ClusterMismatch,
            RefuseReason::WrongReceiver,
            RefuseReason::DuplicateNodeId,
            RefuseReason::Busy,
        ] {
            assert_ne!(reason.code(), 0, "0 means accept");
            assert_eq!(RefuseReason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(RefuseReason::from_code(0), None);
        assert_eq!(RefuseReason::from_code(200), None);
    }

    #[test]
    fn dialer_checks_the_answer() {
        let dialer = LocalIdentity {
            cluster_id: 7,
            node_id: 1,
        };
        let accepted = encode_answer(None, LOCAL);
        assert_eq!(check_answer(&accepted, dialer, 2), Ok(()));
        assert_eq!(
            check_answer(&accepted, dialer, 3),
            Err(ConnectError::WrongPeer {
                cluster_id: 7,
                node_id: 2
            })
        );
        let foreign = encode_answer(
            None,
            LocalIdentity {
                cluster_id: 8,
                node_id: 2,
            },
        );
        assert_eq!(
            check_answer(&foreign, dialer, 2),
            Err(ConnectError::WrongPeer {
                cluster_id: 8,
                node_id: 2
            })
        );
        let refused = encode_answer(Some(RefuseReason::ClusterMismatch), LOCAL);
        assert_eq!(
            check_answer(&refused, dialer, 2),
            Err(ConnectError::Refused {
                reason: RefuseReason::ClusterMismatch,
                cluster_id: 7,
                node_id: 2,
                version: PROTOCOL_VERSION
            })
        );
        let mut unknown = accepted;
        unknown[6] = 99;
        assert_eq!(
            check_answer(&unknown, dialer, 2),
            Err(ConnectError::RefusedUnknown {
                code: 99,
                version: PROTOCOL_VERSION
            })
        );
        let mut garbage = accepted;
        garbage[0] = b'X';
        assert_eq!(
            check_answer(&garbage, dialer, 2),
            Err(ConnectError::BadAnswer)
        );
    }

    #[tokio::test]
    async fn both_sides_agree_over_a_stream() {
        let (mut dialer_end, mut acceptor_end) = tokio::io::duplex(256);
        let dialer = LocalIdentity {
            cluster_id: 7,
            node_id: 1,
        };
        let (dialed, accepted) = tokio::join!(
            dial(&mut dialer_end, dialer, 2),
            accept(&mut acceptor_end, LOCAL)
        );
        assert_eq!(dialed, Ok(()));
        assert!(matches!(
            accepted,
            Ok(AcceptOutcome::Accepted(Hello {
                cluster_id: 7,
                sender: 1,
                receiver: 2
            }))
        ));
    }

    #[tokio::test]
    async fn refusal_reaches_the_dialer_with_the_acceptors_identity() {
        let (mut dialer_end, mut acceptor_end) = tokio::io::duplex(256);
        let dialer = LocalIdentity {
            cluster_id: 99,
            node_id: 1,
        };
        let (dialed, accepted) = tokio::join!(
            dial(&mut dialer_end, dialer, 2),
            accept(&mut acceptor_end, LOCAL)
        );
        assert_eq!(
            dialed,
            Err(ConnectError::Refused {
                reason: RefuseReason::ClusterMismatch,
                cluster_id: 7,
                node_id: 2,
                version: PROTOCOL_VERSION
            })
        );
        assert!(matches!(
            accepted,
            Ok(AcceptOutcome::Refused {
                reason: RefuseReason::ClusterMismatch,
                hello: Some(Hello { cluster_id: 99, .. })
            })
        ));
    }
}
