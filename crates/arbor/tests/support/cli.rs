//! `arbor cli` as a user runs it: one-shot commands and the interactive shell on a pipe.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

/// Session timeout given to the shell: short enough that a broken test ends, long enough for a
/// loaded machine.
pub const CLI_TIMEOUT_MS: &str = "10000";

/// The `arbor` binary of this build, with a pinned time zone and no inherited log filter.
pub fn arbor() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arbor"));
    // Stat dates are printed in the local zone, as zkCli does; pin it. Keep the client
    // library's logs off whatever the caller's environment says.
    command.env("TZ", "UTC").env_remove("RUST_LOG");
    command
}

/// What one `arbor cli` run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    /// The exit status (None: killed by a signal).
    pub code: Option<i32>,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts success with nothing on stderr and returns stdout.
    pub fn ok(self) -> String {
        assert_eq!((self.code, self.stderr.as_str()), (Some(0), ""), "{self:?}");
        self.stdout
    }

    /// Asserts failure with exit code `code`, nothing on stdout and exactly the one line
    /// `message` on stderr.
    pub fn fails(self, code: i32, message: &str) {
        assert_eq!(self.code, Some(code), "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        assert_eq!(self.stderr, format!("{message}\n"), "{self:?}");
    }
}

/// `arbor cli -server ADDRESS -c COMMAND`.
pub fn cli(address: &str, command: &str) -> Run {
    arbor()
        .args([
            "cli",
            "-server",
            address,
            "--timeout",
            CLI_TIMEOUT_MS,
            "-c",
            command,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("arbor cli runs")
        .into()
}

/// The interactive shell fed `lines` on a pipe, to end of input.
pub fn script(address: &str, lines: &[&str]) -> Run {
    let mut process = arbor()
        .args(["cli", "-server", address, "--timeout", CLI_TIMEOUT_MS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("arbor cli starts");
    if let Some(mut stdin) = process.stdin.take() {
        for line in lines {
            writeln!(stdin, "{line}").expect("write to the shell");
        }
    }
    process.wait_with_output().expect("arbor cli ends").into()
}
