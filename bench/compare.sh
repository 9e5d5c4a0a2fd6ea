#!/usr/bin/env bash
# arbor vs Apache ZooKeeper on this machine, in one run: installs Debian's zookeeper (3.8) if
# missing, builds arbor and the load generator in release mode, then runs bench/compare.py,
# which measures both side by side and rewrites the zk-compare section of BENCHMARKS.md.
#
#   bench/compare.sh            full run (about an hour on 2 cores)
#   bench/compare.sh --quick    a few minutes: short runs, one round, smaller sizes
#
# Any other option goes to compare.py (see `python3 bench/compare.py --help`), e.g.
# `--workloads get,set --topologies standalone --skip-memory`.
# Everything listens on 127.0.0.1, ports 23000-23999; data goes to /tmp/arbor-compare.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
[[ -d $HOME/.cargo/bin ]] && PATH=$HOME/.cargo/bin:$PATH

need_packages=()
[[ -f /usr/share/java/zookeeper.jar ]] || need_packages+=(zookeeper)
command -v java >/dev/null || need_packages+=(default-jre-headless)
command -v python3 >/dev/null || need_packages+=(python3)
if ((${#need_packages[@]})); then
    echo "compare.sh: installing ${need_packages[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

# 10k fan-out watchers are 10k sockets in the client and 10k in the server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

target=${CARGO_TARGET_DIR:-$repo/target}
cargo build --release -q -p arbor-bench --example cli
arbor_bin=$target/release/arbor
if ! cargo build --release -q -p arbor; then
    # Measure ZooKeeper alone rather than nothing; arbor's columns then read "not available".
    echo "compare.sh: building arbor failed; arbor will be reported as not available" >&2
    rm -f "$arbor_bin"
fi
if "$arbor_bin" bench --help >/dev/null 2>&1; then
    bench_cmd="$arbor_bin bench"
else
    # `arbor bench` is not wired yet: the example runs the same library code.
    bench_cmd="$target/release/examples/cli"
fi

exec python3 "$repo/bench/compare.py" --bench "$bench_cmd" --arbor "$arbor_bin" "$@"
