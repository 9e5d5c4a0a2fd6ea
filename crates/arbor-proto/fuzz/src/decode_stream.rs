//! What a server does with the bytes of an untrusted connection, as one function: the fuzz
//! target `decode_stream` runs it on every input, and `tests/fuzz_corpus.rs` replays the
//! committed corpus through it. Both include this very file by path, so the replay cannot
//! drift from what was fuzzed.
//!
//! Besides "never panics", it checks oracles on everything that decodes: decoding what was
//! decoded and re-encoded gives the same value, and the zero-copy reader agrees with the
//! copying one. A failed oracle is a panic, which libFuzzer reports as a crash.

use arbor_proto::{
    ConnectRequest, ConnectResponse, DecodeError, FRAME_SIZE_BYTES_MAX_DEFAULT, Jute, OpCode,
    Reader, ReplyHeader, Request, RequestHeader, Response, WatcherEvent, XID_NOTIFICATION,
    four_letter_word, split_frame,
};
use bytes::Bytes;

/// A frame limit small enough that ordinary inputs hit it, so the "frame too large" path and
/// its boundary are exercised as well as the default limit.
pub const FRAME_SIZE_BYTES_MAX_SMALL: u32 = 64;

/// The frame limits every input is decoded under.
pub const FRAME_SIZE_LIMITS: [u32; 2] = [FRAME_SIZE_BYTES_MAX_DEFAULT, FRAME_SIZE_BYTES_MAX_SMALL];

/// Why decoding a stream stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// The first four bytes spell an admin word (`ruok`, `stat`...): not the jute path.
    FourLetterWord,
    /// The input ended inside a frame (or exactly between frames).
    NeedMoreBytes,
    /// A length prefix was negative or over the limit: the server closes the connection.
    FrameTooLarge,
    /// The first frame is not a `ConnectRequest`: the server closes the connection.
    BadConnectRequest,
}

/// What one pass over a stream decoded, so the replay test can check that the corpus really
/// reaches past the handshake and covers every opcode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOutcome {
    /// The frame limit used.
    pub frame_size_max: u32,
    /// The handshake decoded.
    pub connect: Option<ConnectRequest>,
    /// Opcodes of the requests that decoded, in order.
    pub requests: Vec<OpCode>,
    /// Request frames that did not decode (the server answers MarshallingError or closes).
    pub request_errors: usize,
    /// Why the pass ended.
    pub stop: Stop,
}

/// Decodes `bytes` as a server reads a connection, once under each of [`FRAME_SIZE_LIMITS`].
///
/// # Panics
/// When an oracle fails: a decoded value that does not survive encode + decode, or the two
/// readers disagreeing. Never on malformed input.
pub fn decode_stream(bytes: &[u8]) -> Vec<StreamOutcome> {
    FRAME_SIZE_LIMITS
        .iter()
        .map(|&limit| decode_with_limit(bytes, limit))
        .collect()
}

fn decode_with_limit(bytes: &[u8], frame_size_max: u32) -> StreamOutcome {
    let mut outcome = StreamOutcome {
        frame_size_max,
        connect: None,
        requests: Vec::new(),
        request_errors: 0,
        stop: Stop::NeedMoreBytes,
    };
    if let Some(first) = bytes.first_chunk::<4>()
        && four_letter_word(*first).is_some()
    {
        outcome.stop = Stop::FourLetterWord;
        return outcome;
    }
    let mut rest = bytes;
    let mut first_frame = true;
    loop {
        let (payload, consumed) = match split_frame(rest, frame_size_max) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                outcome.stop = Stop::NeedMoreBytes;
                return outcome;
            }
            Err(error) => {
                assert!(
                    matches!(error, DecodeError::FrameTooLarge { .. }),
                    "split_frame failed with {error:?}"
                );
                outcome.stop = Stop::FrameTooLarge;
                return outcome;
            }
        };
        assert_eq!(
            consumed,
            4 + payload.len(),
            "split_frame consumed the wrong count"
        );
        assert!(
            payload.len() <= frame_size_max as usize,
            "frame over the limit"
        );
        rest = &rest[consumed..];
        if first_frame {
            first_frame = false;
            // A client reading the server's handshake answer decodes the same shape.
            decode_connect_response(payload);
            match decode_connect_request(payload) {
                Some(connect) => outcome.connect = Some(connect),
                None => {
                    outcome.stop = Stop::BadConnectRequest;
                    return outcome;
                }
            }
            continue;
        }
        // The client's side of the same bytes: a reply or a notification.
        decode_reply(payload);
        match decode_request_frame(payload) {
            Some(op) => outcome.requests.push(op),
            None => outcome.request_errors += 1,
        }
    }
}

fn decode_connect_request(payload: &[u8]) -> Option<ConnectRequest> {
    let connect = ConnectRequest::from_slice(payload).ok()?;
    let shared = Bytes::copy_from_slice(payload);
    let zero_copy = ConnectRequest::decode(&mut Reader::from_bytes(&shared));
    assert_eq!(zero_copy.as_ref(), Ok(&connect), "readers disagree");
    let again = ConnectRequest::from_slice(&connect.to_bytes());
    assert_eq!(
        again.as_ref(),
        Ok(&connect),
        "ConnectRequest does not round-trip"
    );
    Some(connect)
}

fn decode_connect_response(payload: &[u8]) {
    if let Ok(response) = ConnectResponse::from_slice(payload) {
        let again = ConnectResponse::from_slice(&response.to_bytes());
        assert_eq!(again, Ok(response), "ConnectResponse does not round-trip");
    }
}

/// Header and request body, as the server decodes them; `None` when they do not decode.
fn decode_request_frame(payload: &[u8]) -> Option<OpCode> {
    let shared = Bytes::copy_from_slice(payload);
    let mut reader = Reader::from_bytes(&shared);
    let decoded = RequestHeader::decode(&mut reader)
        .and_then(|header| Ok((header.xid, Request::decode(header.op_code, &mut reader)?)));
    let copied =
        arbor_proto::decode_request(payload).map(|(header, request)| (header.xid, request));
    assert_eq!(decoded, copied, "readers disagree");
    let (xid, request) = decoded.ok()?;
    let op = request.op_code();
    let mut encoded = Vec::new();
    request.encode_with_header(xid, &mut encoded);
    let (header, again) = match arbor_proto::decode_request(&encoded) {
        Ok(decoded) => decoded,
        Err(error) => panic!("{op:?} request does not round-trip: {error:?}"),
    };
    assert_eq!(
        (header.xid, header.op_code),
        (xid, op.code()),
        "header changed"
    );
    assert_eq!(again, request, "{op:?} request does not round-trip");
    Some(op)
}

/// A reply header and body as a client decodes them. The opcode the client would know from
/// its pending request is taken from the xid, so every reply shape gets exercised.
fn decode_reply(payload: &[u8]) {
    let mut reader = Reader::new(payload);
    let Ok(header) = ReplyHeader::decode(&mut reader) else {
        return;
    };
    if header.xid == XID_NOTIFICATION {
        if let Ok(event) = WatcherEvent::decode(&mut reader) {
            assert_eq!(
                WatcherEvent::from_slice(&event.to_bytes()),
                Ok(event),
                "WatcherEvent does not round-trip"
            );
        }
        return;
    }
    let index = header.xid.rem_euclid(OpCode::ALL.len() as i32) as usize;
    let op = OpCode::ALL[index];
    if let Ok(response) = Response::decode(op, &mut reader) {
        let mut encoded = Vec::new();
        response.encode(&mut encoded);
        let again = Response::decode(op, &mut Reader::new(&encoded));
        assert_eq!(again, Ok(response), "{op:?} response does not round-trip");
    }
}
