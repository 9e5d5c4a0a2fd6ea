//! The `arbor` binary: `arbor server` runs a node; more subcommands come with their issues.

mod cli;
mod cluster_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use arbor_server::{Server, ServerConfig};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "arbor",
    version,
    about = "A ZooKeeper-compatible coordination service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server (with no options: one node on 127.0.0.1:2181, data in ./arbor-data).
    Server(ServerArgs),
    /// A zkCli-style shell: one command with -c, else commands read from standard input.
    Cli(cli::CliArgs),
    /// A local N-node cluster on loopback: prints its connect string; Ctrl-C stops it.
    Cluster(cluster_cmd::ClusterArgs),
    /// A load generator speaking the ZooKeeper protocol (drives arbor and ZooKeeper alike).
    Bench(arbor_bench::BenchArgs),
}

#[derive(Args)]
struct ServerArgs {
    /// arbor's TOML configuration file.
    #[arg(long, conflicts_with = "zoo_cfg")]
    config: Option<PathBuf>,
    /// A ZooKeeper zoo.cfg, read unchanged (clientPort, dataDir, tickTime, ...).
    #[arg(long = "zoo-cfg", value_name = "FILE")]
    zoo_cfg: Option<PathBuf>,
    /// Address clients connect to (overrides the configuration files).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides the configuration files).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// ZooKeeper system properties, as `-Dkey=value` (e.g. the super digest).
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    properties: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal; log files and test harnesses get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Server(args) => run_server(args),
        Command::Cluster(args) => cluster_cmd::run(args),
        Command::Bench(args) => arbor_bench::run(args),
        Command::Cli(args) => match cli::run(args) {
            Ok(status) => return status,
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("arbor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn server_config(args: &ServerArgs) -> Result<ServerConfig> {
    let mut config = match (&args.config, &args.zoo_cfg) {
        (Some(path), _) => ServerConfig::from_toml_file(path)?,
        (None, Some(path)) => {
            let (config, warnings) = ServerConfig::from_zoo_cfg(path)?;
            for warning in warnings {
                tracing::warn!(file = %path.display(), "{warning}");
            }
            config
        }
        (None, None) => ServerConfig::default(),
    };
    for property in &args.properties {
        let Some((key, value)) = property.split_once('=') else {
            bail!("-D{property}: expected -Dkey=value");
        };
        if let Some(warning) = config.apply_property(key, value)? {
            tracing::warn!("{warning}");
        }
    }
    if let Some(listen) = args.listen {
        config.client_address = listen;
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

fn run_server(args: ServerArgs) -> Result<()> {
    let config = server_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::start(config).await?;
        // Tests and scripts read this line to learn the port when they asked for port 0.
        println!(
            "arbor {} serving on {}",
            env!("CARGO_PKG_VERSION"),
            server.local_address()
        );
        server.run_until(shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
