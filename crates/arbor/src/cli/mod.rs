//! `arbor cli`: a zkCli-style shell to poke a server (ours or Apache ZooKeeper's).
//!
//! It speaks through the `zookeeper-client` crate, so it is also a client we did not write the
//! protocol side of. Commands, output and error messages follow zkCli 3.9 (`ls`, `get`, `set`,
//! `create -e/-s/-c/-t`, `delete`, `deleteall`, `stat`, `getAcl`, `setAcl`, `addauth`, `sync`,
//! `whoami`, `getEphemerals`, `getAllChildrenNumber`, `setquota`, `listquota`, `delquota`, `help`,
//! `quit`). Differences on purpose:
//! `Created /x` goes to standard output (zkCli writes it on standard error), a malformed ACL or
//! an unknown permission letter refuses the command (zkCli warns and sends what it could read),
//! and too many arguments are a usage error (zkCli ignores the extra ones).
//!
//! The pure parts (words, paths, ACLs, commands, formats) are separate from the parts that talk
//! to the server (`connect`, `session`) and to the terminal (`shell`).

mod acl;
mod command;
mod connect;
mod format;
mod invocation;
mod path;
mod quota;
mod session;
mod shell;
mod syntax;
mod watches;
mod words;

use std::process::ExitCode;

use anyhow::Context;

/// `arbor cli [-server host:port[,...]] [--timeout MS] [-r] [-c "cmd args" | cmd args]`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "zkCli's spellings work too: -server HOST:PORT, -timeout MS, and a \
                        command after the options (arbor cli -server 127.0.0.1:2181 ls /). \
                        Without a command the shell reads commands from standard input; type \
                        help for the list."
)]
pub(crate) struct CliArgs {
    /// Servers to connect to: host:port[,host:port...][/chroot] [default: 127.0.0.1:2181].
    #[arg(long, value_name = "HOST:PORT[,...]")]
    server: Option<String>,
    /// Session timeout in milliseconds; connecting gives up after it too [default: 30000].
    #[arg(long = "timeout", value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Accept a read-only server.
    #[arg(short = 'r', long = "read-only")]
    read_only: bool,
    /// Run one command and exit: 0 if it succeeded, 127 for an unknown command, else 1.
    #[arg(short = 'c', value_name = "COMMAND")]
    command: Option<String>,
    /// zkCli-style options, then optionally a command and its arguments to run once.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    rest: Vec<String>,
}

/// Runs `arbor cli`. Returns the exit status: 2 for a command line it cannot read, 1 when no
/// session could be opened, else what [`shell::run`] says.
///
/// The client library logs through `tracing`; unless `RUST_LOG` asks for them, those logs are
/// silenced here so that the shell's output stays the shell's.
///
/// # Errors
/// Only when the async runtime cannot be built.
pub(crate) fn run(args: CliArgs) -> anyhow::Result<ExitCode> {
    let invocation = match invocation::Invocation::from_args(args) {
        Ok(invocation) => invocation,
        Err(error) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "arbor cli: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let _quiet = std::env::var_os("RUST_LOG").is_none().then(|| {
        tracing::dispatcher::set_default(&tracing::Dispatch::new(
            tracing::subscriber::NoSubscriber::default(),
        ))
    });
    // One thread: the shell is sequential, and the silenced logging above is per thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(shell::run(invocation)))
}
