//! A real `arbor server` process on a temporary data directory: started on `127.0.0.1:0`,
//! its port read from the line it prints when it serves, stopped gracefully (SIGTERM) or
//! crashed (SIGKILL), and restarted on the same address and data. Dropping it kills it.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::WAIT_MAX;

/// What a test wants of its server beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// `key = value` lines of the TOML file (values already in TOML syntax), fields of
    /// `arbor_server::ServerConfig`.
    pub toml: Vec<(String, String)>,
    /// `-Dkey=value` system properties.
    pub properties: Vec<String>,
}

impl ServerOptions {
    /// Adds one TOML setting (`value` in TOML syntax, e.g. `100` or `"x"`).
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.toml.push((key.to_owned(), value.to_string()));
        self
    }

    /// Adds one `-Dkey=value` property.
    pub fn property(mut self, key: &str, value: &str) -> Self {
        self.properties.push(format!("{key}={value}"));
        self
    }
}

/// A running (or stopped, between restarts) `arbor server`.
pub struct Server {
    process: Option<Child>,
    /// Kept open so the server never writes into a closed pipe.
    stdout: Option<BufReader<ChildStdout>>,
    address: SocketAddr,
    dir: TempDir,
    options: ServerOptions,
    /// Runs so far; run `n` logs to `server-<n>.log`.
    runs: u32,
}

impl Server {
    /// Starts a server with default settings.
    pub fn start() -> Server {
        Server::start_with(ServerOptions::default())
    }

    /// Starts a server with `options`, on a fresh data directory and a free port.
    pub fn start_with(options: ServerOptions) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory for the server");
        let mut toml = String::new();
        for (key, value) in &options.toml {
            let _ = writeln!(toml, "{key} = {value}");
        }
        std::fs::write(dir.path().join("arbor.toml"), toml).expect("write arbor.toml");
        let mut server = Server {
            process: None,
            stdout: None,
            address: "127.0.0.1:0".parse().expect("a socket address"),
            dir,
            options,
            runs: 0,
        };
        server.spawn();
        server
    }

    /// `host:port` for a client connect string.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The socket address.
    pub fn socket_address(&self) -> SocketAddr {
        self.address
    }

    /// The data directory (kept across restarts).
    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("server-{run}.log"))
    }

    fn spawn(&mut self) {
        assert!(self.process.is_none(), "server already running");
        self.runs += 1;
        let log = File::create(self.log_path(self.runs)).expect("create the server log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_arbor"));
        command
            .arg("server")
            .arg("--config")
            .arg(self.dir.path().join("arbor.toml"))
            .arg("--listen")
            .arg(self.address.to_string())
            .arg("--data-dir")
            .arg(self.data_dir());
        for property in &self.options.properties {
            command.arg(format!("-D{property}"));
        }
        let mut process = command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("arbor server starts");
        let Some(stdout) = process.stdout.take() else {
            let _ = process.kill();
            let _ = process.wait();
            panic!("no stdout pipe from arbor server");
        };
        self.process = Some(process);
        // Read the ready line on a thread, so a server that never prints fails the test after
        // a bound instead of hanging it.
        let (lines, line) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let read = reader.read_line(&mut first);
            let _ = lines.send((read.map(|_| first), reader));
        });
        let (first, reader) = match line.recv_timeout(WAIT_MAX) {
            Ok((Ok(first), reader)) => (first, reader),
            Ok((Err(error), _)) => panic!("reading the server's stdout: {error}"),
            Err(_) => panic!(
                "arbor server did not say it was serving within {WAIT_MAX:?}; log:\n{}",
                self.log()
            ),
        };
        self.stdout = Some(reader);
        // "arbor <version> serving on <address>"
        let Some(address) = first
            .trim()
            .rsplit_once(" serving on ")
            .and_then(|(_, address)| address.parse().ok())
        else {
            panic!(
                "unexpected first line from arbor server: {first:?}; log:\n{}",
                self.log()
            );
        };
        self.address = address;
    }

    /// SIGKILL: a crash at whatever moment the server is in. Waits until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
        self.stdout = None;
    }

    /// SIGTERM: a graceful stop. Returns the exit status; a server still running
    /// [`WAIT_MAX`] after the signal is killed and the test fails.
    pub fn terminate(&mut self) -> ExitStatus {
        let Some(mut process) = self.process.take() else {
            panic!("terminate: the server is not running");
        };
        self.stdout = None;
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(process.id().to_string())
            .status();
        assert!(
            signalled.is_ok_and(|status| status.success()),
            "kill -TERM failed"
        );
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            match process.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = process.kill();
                    let _ = process.wait();
                    panic!("arbor server did not stop within {WAIT_MAX:?} of SIGTERM");
                }
            }
        }
    }

    /// Starts the server again on the same address and data directory.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Whether the process is still running (it has not exited on its own).
    pub fn is_running(&mut self) -> bool {
        match self.process.as_mut() {
            Some(process) => matches!(process.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Everything the server logged, over all its runs.
    pub fn log(&self) -> String {
        let mut text = String::new();
        for run in 1..=self.runs {
            if let Ok(log) = std::fs::read_to_string(self.log_path(run)) {
                let _ = writeln!(text, "----- run {run} -----\n{log}");
            }
        }
        text
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
