//! The machine's physical references, so each figure can be read against its limit: how long
//! the data disk takes to make a 4 KiB append durable, and a TCP round trip on loopback. And
//! the readiness probe the comparison script uses to time a restart.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use arbor_proto::{ExistsRequest, Request};

use crate::latency::LatencyRecorder;
use crate::session::{Incoming, Session, SessionError, SessionOptions};

/// Bytes per fsync probe write: one small WAL batch.
pub const FSYNC_WRITE_BYTES: usize = 4_096;

/// Samples the probes take unless `--ops` says otherwise.
pub const PROBE_SAMPLES_DEFAULT: u64 = 2_000;

/// Bytes of each loopback ping.
const RTT_MESSAGE_BYTES: usize = 64;

/// Time between attempts of the readiness probe.
const READY_RETRY: Duration = Duration::from_millis(5);

/// Appends `samples` blocks of 4 KiB to a scratch file in `dir`, `fdatasync` after each, and
/// returns the latency of each write + sync. The file is removed afterwards.
///
/// # Errors
/// Any I/O error.
pub fn fsync_latency(dir: &Path, samples: u64) -> std::io::Result<LatencyRecorder> {
    let path = dir.join(format!("arbor-bench-fsync-{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = [0x5au8; FSYNC_WRITE_BYTES];
    let mut recorder = LatencyRecorder::new();
    let result: std::io::Result<()> = (|| {
        for _ in 0..samples {
            let started = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            recorder.record(started.elapsed());
        }
        Ok(())
    })();
    drop(file);
    let removed = std::fs::remove_file(&path);
    result?;
    removed?;
    Ok(recorder)
}

/// Ping-pongs `samples` small messages over a TCP connection on 127.0.0.1 (Nagle off on both
/// ends) and returns the round-trip times.
///
/// # Errors
/// Any I/O error.
pub fn loopback_rtt(samples: u64) -> std::io::Result<LatencyRecorder> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut buffer = [0u8; RTT_MESSAGE_BYTES];
        loop {
            match stream.read_exact(&mut buffer) {
                Ok(()) => stream.write_all(&buffer)?,
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(error) => return Err(error),
            }
        }
    });
    let mut recorder = LatencyRecorder::new();
    {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut buffer = [7u8; RTT_MESSAGE_BYTES];
        for _ in 0..samples {
            let started = Instant::now();
            stream.write_all(&buffer)?;
            stream.read_exact(&mut buffer)?;
            recorder.record(started.elapsed());
        }
    }
    match echo.join() {
        Ok(result) => result?,
        Err(_) => return Err(std::io::Error::other("echo thread panicked")),
    }
    Ok(recorder)
}

/// Retries connect + `exists /` against `addr` until it succeeds or `limit` passes. Returns
/// the time from the call to the first successful reply.
///
/// # Errors
/// The last failure once `limit` has passed.
pub async fn wait_ready(
    addr: &str,
    options: &SessionOptions,
    limit: Duration,
) -> Result<Duration, SessionError> {
    let started = tokio::time::Instant::now();
    let deadline = started + limit;
    loop {
        let attempt = async {
            let mut session: Session<()> = Session::connect(addr, options).await?;
            session.send(
                &Request::Exists(ExistsRequest {
                    path: "/".into(),
                    watch: false,
                }),
                (),
            )?;
            let mut incoming = Vec::new();
            loop {
                session.poll(None, &mut incoming).await?;
                if incoming.iter().any(
                    |message| matches!(message, Incoming::Reply { header, .. } if header.err == 0),
                ) {
                    let ready = started.elapsed();
                    let _ = session.close(()).await;
                    return Ok(ready);
                }
                incoming.clear();
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let result = match tokio::time::timeout(left.max(Duration::from_millis(1)), attempt).await {
            Ok(result) => result,
            Err(_) => Err(SessionError::ConnectTimeout {
                addr: addr.to_owned(),
                timeout: limit,
            }),
        };
        match result {
            Ok(ready) => return Ok(ready),
            Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(READY_RETRY).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_probe_measures_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = fsync_latency(dir.path(), 5).unwrap();
        assert_eq!(recorder.count(), 5);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn loopback_probe_takes_every_sample() {
        let recorder = loopback_rtt(50).unwrap();
        assert_eq!(recorder.count(), 50);
        assert!(recorder.summary().p50_us > 0.0);
    }
}
