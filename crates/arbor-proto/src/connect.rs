//! The session handshake: the first frame a client sends and the server's answer. Clients older
//! than ZooKeeper 3.4 omit the trailing `readOnly` byte (a 44-byte body instead of 45), and the
//! server then omits it from its answer too.

use bytes::{BufMut, Bytes};

use crate::jute::{DecodeError, Jute, Reader};

/// The client's session request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Always 0 in every released client.
    pub protocol_version: i32,
    /// The highest zxid the client has seen; a server behind it must refuse the client.
    pub last_zxid_seen: i64,
    /// Requested session timeout in milliseconds.
    pub timeout_ms: i32,
    /// 0 for a new session, or the session to resume.
    pub session_id: i64,
    /// The session's password when resuming (16 bytes), else zeros.
    pub password: Bytes,
    /// Whether the client accepts a read-only server; `None` when the client omitted the byte.
    pub read_only: Option<bool>,
}

impl Jute for ConnectRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        self.protocol_version.encode(out);
        self.last_zxid_seen.encode(out);
        self.timeout_ms.encode(out);
        self.session_id.encode(out);
        self.password.encode(out);
        if let Some(read_only) = self.read_only {
            read_only.encode(out);
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol_version = reader.read_i32()?;
        let last_zxid_seen = reader.read_i64()?;
        let timeout_ms = reader.read_i32()?;
        let session_id = reader.read_i64()?;
        let password = reader.read_buffer()?;
        let read_only = if reader.remaining() > 0 {
            Some(reader.read_bool()?)
        } else {
            None
        };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            password,
            read_only,
        })
    }
}

/// The server's answer to [`ConnectRequest`]. A refused session is answered with timeout 0,
/// session id 0 and a zeroed password, which clients read as "session expired".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectResponse {
    /// Always 0.
    pub protocol_version: i32,
    /// Negotiated session timeout in milliseconds (0 when refused).
    pub timeout_ms: i32,
    /// The session id (0 when refused).
    pub session_id: i64,
    /// The session password (16 bytes).
    pub password: Bytes,
    /// Whether this server is read-only; `None` to omit the byte for old clients.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// The answer that tells a client its session is gone.
    pub fn refused(read_only: Option<bool>) -> ConnectResponse {
        ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            password: Bytes::from_static(&[0; 16]),
            read_only: read_only.map(|_| false),
        }
    }
}

impl Jute for ConnectResponse {
    fn encode(&self, out: &mut Vec<u8>) {
        self.protocol_version.encode(out);
        self.timeout_ms.encode(out);
        self.session_id.encode(out);
        self.password.encode(out);
        if let Some(read_only) = self.read_only {
            out.put_u8(u8::from(read_only));
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol_version = reader.read_i32()?;
        let timeout_ms = reader.read_i32()?;
        let session_id = reader.read_i64()?;
        let password = reader.read_buffer()?;
        let read_only = if reader.remaining() > 0 {
            Some(reader.read_bool()?)
        } else {
            None
        };
        Ok(ConnectResponse {
            protocol_version,
            timeout_ms,
            session_id,
            password,
            read_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(read_only: Option<bool>) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x1_0000_0005,
            timeout_ms: 30_000,
            session_id: 0x100_0000_0000_0001,
            password: Bytes::from_static(&[7; 16]),
            read_only,
        }
    }

    #[test]
    fn old_client_handshake_is_44_bytes_and_new_is_45() {
        assert_eq!(request(None).to_bytes().len(), 44);
        assert_eq!(request(Some(true)).to_bytes().len(), 45);
    }

    #[test]
    fn both_handshakes_round_trip() {
        for read_only in [None, Some(false), Some(true)] {
            let original = request(read_only);
            assert_eq!(
                ConnectRequest::from_slice(&original.to_bytes()).unwrap(),
                original
            );
        }
    }

    #[test]
    fn response_omits_read_only_for_old_clients() {
        let response = ConnectResponse {
            read_only: None,
            ..ConnectResponse::refused(None)
        };
        assert_eq!(response.to_bytes().len(), 36);
        let with_byte = ConnectResponse::refused(Some(true));
        assert_eq!(with_byte.to_bytes().len(), 37);
        assert_eq!(
            ConnectResponse::from_slice(&with_byte.to_bytes()).unwrap(),
            with_byte
        );
    }
}
