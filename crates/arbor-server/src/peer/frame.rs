//! Frames after the handshake: `[u32 big-endian length][payload]`. A length of 0 is a
//! keepalive (it carries nothing and is never delivered), which is why `send` refuses an empty
//! payload.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The length prefix.
pub(crate) const FRAME_HEADER_BYTES: usize = 4;

/// One frame read from a peer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// An empty frame that only says "still here".
    Keepalive,
    /// A payload for the core.
    Payload(Bytes),
}

/// Why reading a frame failed; every case ends the connection.
#[derive(Debug, Error)]
pub(crate) enum FrameError {
    /// The peer closed the connection between two frames.
    #[error("closed by the peer")]
    Closed,
    /// The peer announced a frame longer than the limit.
    #[error("frame of {length} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        length: u32,
        /// The limit.
        max: u32,
    },
    /// Not a byte arrived for the idle timeout.
    #[error("nothing received for {0:?}")]
    Idle(Duration),
    /// The socket failed, or closed in the middle of a frame.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads into `buffer` until it is full. Each single read must make progress within
/// `idle_timeout`, so a large frame arriving slowly is fine and a silent peer is not.
async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut [u8],
    idle_timeout: Duration,
    at_frame_start: bool,
) -> Result<(), FrameError> {
    let mut filled = 0;
    while filled < buffer.len() {
        let read = tokio::time::timeout(idle_timeout, reader.read(&mut buffer[filled..]))
            .await
            .map_err(|_| FrameError::Idle(idle_timeout))??;
        if read == 0 {
            return Err(if at_frame_start && filled == 0 {
                FrameError::Closed
            } else {
                FrameError::Io(io::ErrorKind::UnexpectedEof.into())
            });
        }
        filled += read;
    }
    Ok(())
}

/// Reads one frame. Memory is bounded by `frame_bytes_max`: the length is checked before
/// anything is allocated for the payload.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame_bytes_max: u32,
    idle_timeout: Duration,
) -> Result<Frame, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    fill(reader, &mut header, idle_timeout, true).await?;
    let length = u32::from_be_bytes(header);
    if length == 0 {
        return Ok(Frame::Keepalive);
    }
    if length > frame_bytes_max {
        return Err(FrameError::TooLarge {
            length,
            max: frame_bytes_max,
        });
    }
    let Ok(length) = usize::try_from(length) else {
        return Err(FrameError::TooLarge {
            length,
            max: frame_bytes_max,
        });
    };
    let mut payload = vec![0u8; length];
    fill(reader, &mut payload, idle_timeout, false).await?;
    Ok(Frame::Payload(Bytes::from(payload)))
}

/// Writes one payload frame (not flushed). The caller checked the length against the limit.
pub(crate) async fn write_payload<W: AsyncWrite + Unpin>(
    writer: &mut W,
    payload: &[u8],
) -> io::Result<()> {
    let Ok(length) = u32::try_from(payload.len()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "payload longer than a frame can say",
        ));
    };
    assert!(
        length > 0,
        "an empty payload would read back as a keepalive"
    );
    writer.write_all(&length.to_be_bytes()).await?;
    writer.write_all(payload).await
}

/// Writes a keepalive frame (not flushed).
pub(crate) async fn write_keepalive<W: AsyncWrite + Unpin>(writer: &mut W) -> io::Result<()> {
    writer.write_all(&0u32.to_be_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn payloads_and_keepalives_round_trip() {
        let (mut write_end, mut read_end) = tokio::io::duplex(64);
        let writer = async {
            write_payload(&mut write_end, b"first").await?;
            write_keepalive(&mut write_end).await?;
            write_payload(&mut write_end, &[7u8; 1000]).await?;
            write_end.flush().await?;
            drop(write_end);
            io::Result::Ok(())
        };
        let reader = async {
            let mut frames = Vec::new();
            loop {
                match read_frame(&mut read_end, 1000, IDLE).await {
                    Ok(frame) => frames.push(frame),
                    Err(FrameError::Closed) => break,
                    Err(error) => panic!("unexpected {error}"),
                }
            }
            frames
        };
        let (written, frames) = tokio::join!(writer, reader);
        assert!(written.is_ok());
        assert_eq!(
            frames,
            vec![
                Frame::Payload(Bytes::from_static(b"first")),
                Frame::Keepalive,
                Frame::Payload(Bytes::from(vec![7u8; 1000])),
            ]
        );
    }

    #[tokio::test]
    async fn frame_over_the_limit_is_refused_before_reading_it() {
        // Only the header is written: the reader must refuse on the length alone.
        let mut input: &[u8] = &1001u32.to_be_bytes();
        let result = read_frame(&mut input, 1000, IDLE).await;
        assert!(matches!(
            result,
            Err(FrameError::TooLarge {
                length: 1001,
                max: 1000
            })
        ));
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_an_error_not_a_clean_close() {
        let mut bytes = 10u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let mut input: &[u8] = &bytes;
        let result = read_frame(&mut input, 1000, IDLE).await;
        assert!(
            matches!(result, Err(FrameError::Io(ref error)) if error.kind() == io::ErrorKind::UnexpectedEof)
        );
        let mut half_header: &[u8] = &[0, 0];
        let result = read_frame(&mut half_header, 1000, IDLE).await;
        assert!(matches!(result, Err(FrameError::Io(_))));
    }

    #[tokio::test]
    async fn silence_past_the_idle_timeout_is_reported() {
        let (_write_end, mut read_end) = tokio::io::duplex(64);
        let result = read_frame(&mut read_end, 1000, Duration::from_millis(50)).await;
        assert!(matches!(result, Err(FrameError::Idle(_))));
    }
}
