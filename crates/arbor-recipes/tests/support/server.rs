//! A real `arbor server` process for the recipe tests, or an external ensemble.
//!
//! The binary: `ARBOR_BIN` if set; otherwise the tests run `cargo build -p arbor` into the
//! same target directory as this test executable (a no-op when `cargo test --workspace` has
//! built it already) and use `<target>/<profile>/arbor`. This crate cannot use
//! `CARGO_BIN_EXE_arbor` (that exists only for the `arbor` package's own tests), and building
//! keeps the binary current with the sources.
//!
//! External ensemble: with `ARBOR_RECIPES_CONNECT=host:port,...` set, tests that accept any
//! server use it instead of starting one (the 3-node variants, once a cluster exists). Tests
//! that need a server setting (fast session expiry) always start their own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use tempfile::TempDir;

/// How long a server may take to print its "serving on" line.
const SERVER_START_WAIT_MAX: Duration = Duration::from_secs(60);

static ARBOR_BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The `arbor` binary, built on first use.
pub fn arbor_binary() -> PathBuf {
    match ARBOR_BINARY.get_or_init(find_or_build_arbor) {
        Ok(path) => path.clone(),
        Err(reason) => panic!("no arbor binary: {reason}"),
    }
}

fn find_or_build_arbor() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ARBOR_BIN") {
        return Ok(PathBuf::from(path));
    }
    // <target>/<profile>/deps/<test executable>
    let exe = std::env::current_exe().map_err(|error| format!("current_exe: {error}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("test executable outside a target directory")?;
    let target_dir = profile_dir
        .parent()
        .ok_or("test executable outside a target directory")?;
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("debug");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--quiet",
            "-p",
            "arbor",
            "--bin",
            "arbor",
            "--target-dir",
        ])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile == "release" {
        command.arg("--release");
    }
    let status = command
        .status()
        .map_err(|error| format!("cannot run cargo: {error}"))?;
    if !status.success() {
        return Err(format!("cargo build -p arbor failed: {status}"));
    }
    let binary = profile_dir.join("arbor");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!("{} missing after the build", binary.display()))
    }
}

/// A running `arbor server` on a temporary data directory; dropping it kills it.
pub struct Server {
    process: Child,
    address: String,
    _dir: TempDir,
}

impl Server {
    /// Starts a server with `toml` (lines of arbor's config file) on a free loopback port.
    pub fn start(toml: &str) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("arbor.toml");
        std::fs::write(&config, toml).expect("write the config");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("a log file");
        let mut process = Command::new(arbor_binary())
            .arg("server")
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn arbor server");
        let stdout = process.stdout.take().expect("the server's stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if lines.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        let address = loop {
            match received.recv_timeout(SERVER_START_WAIT_MAX) {
                Ok(line) => {
                    if let Some((_, address)) = line.split_once(" serving on ") {
                        break address.trim().to_owned();
                    }
                }
                Err(error) => {
                    let _ = process.kill();
                    panic!("arbor server did not report its address: {error}");
                }
            }
        };
        Server {
            process,
            address,
            _dir: dir,
        }
    }

    /// `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Where a test's clients connect: an external ensemble or a server of its own.
pub struct Ensemble {
    connect: String,
    _server: Option<Server>,
}

impl Ensemble {
    /// `ARBOR_RECIPES_CONNECT` if set, else a fresh standalone server with default settings.
    pub fn any() -> Ensemble {
        match std::env::var("ARBOR_RECIPES_CONNECT") {
            Ok(connect) if !connect.is_empty() => Ensemble {
                connect,
                _server: None,
            },
            _ => Ensemble::own(""),
        }
    }

    /// A standalone server of this test's own with `toml` settings.
    pub fn own(toml: &str) -> Ensemble {
        let server = Server::start(toml);
        Ensemble {
            connect: server.address().to_owned(),
            _server: Some(server),
        }
    }

    /// The connect string.
    pub fn connect_string(&self) -> &str {
        &self.connect
    }

    /// The first server's `host:port` (what a proxy forwards to).
    pub fn first_address(&self) -> String {
        self.connect
            .split(',')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}
