//! Opening the session, with a bounded wait and a reason a person can act on when it fails.

use std::time::Duration;

use tokio::net::TcpStream;
use zookeeper_client::{Client, Error};

use super::invocation::Invocation;

/// Longest wait for one plain TCP connection made only to explain a failure.
const PROBE_TIMEOUT: Duration = Duration::from_millis(2_000);

/// The port of a server listed without one (ZooKeeper's client port).
const PORT_DEFAULT: u16 = 2181;

/// Opens a session on one of the servers of `invocation`, giving up after its timeout.
///
/// # Errors
/// Why no session could be had, as one line: the operating system's reason when no server
/// accepts a TCP connection ("Connection refused (os error 111)"), else what the client library
/// reported, or that no session came within the timeout.
pub(crate) async fn connect(invocation: &Invocation) -> Result<Client, String> {
    let connector = Client::connector()
        .with_session_timeout(invocation.timeout)
        .with_readonly(invocation.read_only)
        // Try each server once and report, rather than cycling until the timeout: a shell
        // pointed at the wrong port should say so at once.
        .with_fail_eagerly();
    let outcome =
        tokio::time::timeout(invocation.timeout, connector.connect(&invocation.server)).await;
    match outcome {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => Err(explain(&invocation.server, Some(error), invocation.timeout).await),
        Err(_elapsed) => Err(explain(&invocation.server, None, invocation.timeout).await),
    }
}

/// Finds a reason for a failed connect: the first server that refuses TCP, else the library's
/// error, else the timeout.
async fn explain(server: &str, error: Option<Error>, timeout: Duration) -> String {
    let addresses = socket_addresses(server);
    let several = addresses.len() > 1;
    for address in &addresses {
        let probe = tokio::time::timeout(PROBE_TIMEOUT.min(timeout), TcpStream::connect(address));
        let problem = match probe.await {
            Ok(Ok(_stream)) => continue,
            Ok(Err(io_error)) => io_error.to_string(),
            Err(_elapsed) => format!(
                "no TCP connection within {} ms",
                PROBE_TIMEOUT.min(timeout).as_millis()
            ),
        };
        return if several {
            format!("{address}: {problem}")
        } else {
            problem
        };
    }
    match error {
        Some(Error::BadArguments(reason)) => format!("bad server list: {reason}"),
        // Every server took the TCP connection but none completed the session handshake
        // (not a ZooKeeper server, or one too busy to answer within the connection timeout).
        Some(Error::NoHosts) => "connected, but no session established".to_owned(),
        Some(Error::Timeout) | None => {
            format!("no session established within {} ms", timeout.as_millis())
        }
        Some(other) => other.to_string(),
    }
}

/// The `host:port` of every server in a connect string
/// (`host[:port][,host[:port]...][/chroot]`, with optional `tcp://` prefixes).
fn socket_addresses(server: &str) -> Vec<String> {
    server
        .split(',')
        .map(|entry| {
            let entry = entry.strip_prefix("tcp://").unwrap_or(entry);
            let entry = entry.split('/').next().unwrap_or_default();
            // An IPv6 literal is bracketed, so the port is whatever follows the last ']'.
            let after_host = entry.rfind(']').map_or(entry, |end| &entry[end..]);
            if after_host.contains(':') {
                entry.to_owned()
            } else {
                format!("{entry}:{PORT_DEFAULT}")
            }
        })
        .filter(|address| !address.starts_with(':'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_a_connect_string() {
        assert_eq!(socket_addresses("127.0.0.1:2181"), ["127.0.0.1:2181"]);
        assert_eq!(
            socket_addresses("a:1,tcp://b:2,c/chroot/x"),
            ["a:1", "b:2", "c:2181"]
        );
        assert_eq!(
            socket_addresses("[::1]:24000,[::1]"),
            ["[::1]:24000", "[::1]:2181"]
        );
        assert!(socket_addresses("").is_empty());
    }

    #[tokio::test]
    async fn a_refused_port_is_reported_with_the_os_reason() {
        // A port that was just free: bind, note it, release it.
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(address) => address.port(),
            Err(error) => panic!("cannot bind a loopback port: {error}"),
        };
        let invocation = Invocation {
            server: format!("127.0.0.1:{port}"),
            timeout: Duration::from_millis(5_000),
            read_only: false,
            one_shot: None,
        };
        match connect(&invocation).await {
            Ok(_) => panic!("connected to a closed port"),
            Err(reason) => assert!(reason.contains("refused"), "{reason}"),
        }
    }
}
