//! Runs `arbor bench` without the `arbor` binary: `cargo run -p arbor-bench --example cli -- --help`.

use clap::Parser;

/// The same arguments as `arbor bench`.
#[derive(Parser)]
#[command(name = "arbor-bench", about = "ZooKeeper-protocol load generator")]
struct Cli {
    #[command(flatten)]
    bench: arbor_bench::BenchArgs,
}

fn main() -> anyhow::Result<()> {
    arbor_bench::run(Cli::parse().bench)
}
