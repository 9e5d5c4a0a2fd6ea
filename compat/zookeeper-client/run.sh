#!/usr/bin/env bash
# Run the zookeeper-client crate's own integration tests (tests/zookeeper.rs of the published
# 0.11.2, the version arbor's Cargo.lock pins) against arbor.
#
#   compat/zookeeper-client/run.sh [--nodes 1|3] [--out FILE] [--tls off|on|random]
#                                  [--jobs N] [--timeout SECONDS] [--filter SUBSTRING]
#                                  [--expect RESULTS_FILE] [--work DIR]
#
# Upstream's harness (`Cluster` in tests/zookeeper.rs) starts ZooKeeper in Docker through
# testcontainers. This script takes the crate from the cargo registry (checked against the
# checksum in Cargo.lock), unpacks it in --work (default target/compat-zookeeper-client; one
# run at a time per work directory), replaces that harness with harness.rs
# (same API, `arbor server --zoo-cfg` processes on loopback), builds the test binary with the
# `tls` and `sasl-digest-md5` features, and runs every test in its own process (its own
# process group, killed with any arbor it left behind after --timeout seconds).
# Tests listed in skipped.toml are not run and are reported with their reason.
#
# Writes one `<test> PASS|FAIL|TIMEOUT|SKIP` line per test to --out (default
# compat/zookeeper-client/results/arbor-<nodes>.txt, arbor-<nodes>-tls.txt with --tls on;
# <work>/results.txt with --filter, --expect or --tls random), keeps each test's output in
# <work>/logs/, and prints
#   zookeeper-client(arbor, <nodes>): N passed, N failed, N skipped
# Exit status: 0 when the run completed (whatever the tests did), 1 when it could not run,
# 2 with --expect when a test that passes in RESULTS_FILE did not pass (the CI gate).
#
# Environment:
#   ARBOR_BIN         arbor binary (default: target/release/arbor, else target/debug/arbor)
#   CARGO_TARGET_DIR  where the test binary is built (default: target/ of this repo)
set -euo pipefail

# Everything is in main(), called on the last line: bash reads a script as it runs it, so
# without this, editing run.sh breaks the runs in progress.
main() {
export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

crate=zookeeper-client
version=0.11.2
# sha256 of tests/zookeeper.rs in the published crate: the splice below relies on its layout.
tests_sha256=6c51bcac7be1b9ea7ffe4b89b9cce90241cc3c76ada74329ed386bca672c2c28

nodes=1 out="" tls=off jobs=2 timeout_s=180 filter="" expect="" work=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --nodes) nodes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --tls) tls=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    --expect) expect=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 1 ;;
  esac
done
case $nodes in 1 | 3) ;; *) echo "run.sh: --nodes must be 1 or 3" >&2; exit 1 ;; esac
case $tls in
  off) tls_env=false ;;
  on) tls_env=true ;;
  random) tls_env=random ;;
  *) echo "run.sh: --tls must be off, on or random" >&2; exit 1 ;;
esac

work=$(realpath -m "${work:-$repo/target/compat-zookeeper-client}")
src=$work/$crate-$version
staged=$work/stage/$crate-$version
if [[ -z $out ]]; then
  out=$work/results.txt
  # A gate run compares with the committed results instead of replacing them.
  if [[ -z $filter$expect && $tls == off ]]; then out=$here/results/arbor-$nodes.txt; fi
  if [[ -z $filter$expect && $tls == on ]]; then out=$here/results/arbor-$nodes-tls.txt; fi
fi
if [[ -n $expect && ! -f $expect ]]; then
  echo "run.sh: --expect $expect: no such file" >&2
  exit 1
fi
if [[ -n $expect && $(realpath -m "$expect") == $(realpath -m "$out") ]]; then
  echo "run.sh: --expect and --out name the same file" >&2
  exit 1
fi

mkdir -p "$work"
# One run at a time: runs share the unpacked crate, the logs and the outcome files.
exec 9>"$work/lock"
if ! flock -n 9; then
  echo "run.sh: another run is using $work" >&2
  exit 1
fi

arbor_bin=${ARBOR_BIN:-}
if [[ -z $arbor_bin ]]; then
  for candidate in "$repo/target/release/arbor" "$repo/target/debug/arbor"; do
    if [[ -x $candidate ]]; then arbor_bin=$candidate; break; fi
  done
fi
if [[ -z $arbor_bin || ! -x $arbor_bin ]]; then
  echo "run.sh: no arbor binary: build one (cargo build -p arbor) or set ARBOR_BIN" >&2
  exit 1
fi
arbor_bin=$(cd "$(dirname "$arbor_bin")" && pwd)/$(basename "$arbor_bin")

unpack_crate
splice_harness
install_source
build_tests
run_tests
if [[ -n $expect ]]; then check_expected; fi
}

# The CI gate: every test that passes in $expect must pass now.
check_expected() {
  local regressions
  regressions=$(join <(grep ' PASS$' "$expect" | cut -d' ' -f1 | sort) \
                     <(grep -v ' PASS$' "$out" | sort) || true)
  local improved
  improved=$(join <(grep -v ' PASS$' "$expect" | cut -d' ' -f1 | sort) \
                  <(grep ' PASS$' "$out" | sort) || true)
  if [[ -n $improved ]]; then
    echo "now passing (update $expect):"
    echo "$improved" | sed 's/^/  /'
  fi
  # On an ensemble, tests whose assertions need one server's view are reported, not required
  # (racy-on-ensembles.txt says why).
  if ((nodes > 1)) && [[ -n $regressions ]]; then
    local racy excused
    racy=$(grep -v '^#' "$here/racy-on-ensembles.txt" | grep -v '^$' | sort)
    excused=$(join <(echo "$racy") <(echo "$regressions") || true)
    regressions=$(join -v 2 <(echo "$racy") <(echo "$regressions") || true)
    if [[ -n $excused ]]; then
      echo "not required on an ensemble (compat/zookeeper-client/racy-on-ensembles.txt):"
      echo "$excused" | sed 's/^/  /; s/$/ (racy on any ensemble)/'
    fi
  fi
  if [[ -n $regressions ]]; then
    echo "passing in $expect, not now:"
    echo "$regressions" | sed 's/^/  /'
    exit 2
  fi
}

# The .crate file cargo downloaded for the version and checksum arbor's Cargo.lock pins.
unpack_crate() {
  local pinned
  pinned=$(awk -v name="$crate" '
    $0 == "name = \"" name "\"" { found = 1; next }
    found && /^version = / { gsub(/"/, "", $3); version = $3 }
    found && /^checksum = / { gsub(/"/, "", $3); print version, $3; exit }
  ' "$repo/Cargo.lock")
  if [[ ${pinned%% *} != "$version" ]]; then
    echo "run.sh: Cargo.lock pins $crate '${pinned%% *}', this script is written for $version" >&2
    exit 1
  fi
  local checksum=${pinned#* }
  mkdir -p "$work"
  if ! (cd "$repo" && cargo fetch --locked) >"$work/fetch.log" 2>&1; then
    tail -20 "$work/fetch.log" >&2
    echo "run.sh: cargo fetch --locked failed in $repo" >&2
    exit 1
  fi
  local cargo_home=${CARGO_HOME:-$HOME/.cargo} archive=""
  for candidate in "$cargo_home"/registry/cache/*/"$crate-$version.crate"; do
    if [[ -f $candidate ]] && sha256sum "$candidate" | grep -q "^$checksum "; then
      archive=$candidate
    fi
  done
  if [[ -z $archive ]]; then
    echo "run.sh: no $crate-$version.crate with sha256 $checksum under $cargo_home/registry/cache" >&2
    exit 1
  fi
  rm -rf "$work/stage"
  mkdir -p "$work/stage"
  tar -xzf "$archive" -C "$work/stage"
  if ! sha256sum "$staged/tests/zookeeper.rs" | grep -q "^$tests_sha256 "; then
    echo "run.sh: $staged/tests/zookeeper.rs is not the file harness.rs was written for" >&2
    exit 1
  fi
  if grep -q testcontainers "$staged/Cargo.toml"; then
    # The published manifest drops upstream's git-only testcontainers dev-dependency; if a
    # release ever keeps it, the build would need Docker's crate for nothing.
    echo "run.sh: $staged/Cargo.toml names testcontainers: update run.sh to drop it" >&2
    exit 1
  fi
  # Not a member of arbor's workspace, though it lives inside the repository's target/.
  printf '\n[workspace]\n' >>"$staged/Cargo.toml"
}

# Replaces upstream's Docker harness in tests/zookeeper.rs with harness.rs; the rest of the
# file is left as published. Each anchor must match exactly once.
splice_harness() {
  local file=$staged/tests/zookeeper.rs
  awk -v harness="$here/harness.rs" '
    /^use testcontainers::/ { uses++; next }
    /^fn zookeeper_image<'"'"'a>\(/ { image = 1; images++; next }
    image { if ($0 == "}") image = 0; next }
    /^struct Cluster \{$/ { cluster = 1; clusters++; next }
    cluster && /^impl Cluster \{$/ { in_impl = 1; next }
    cluster {
      if (in_impl && $0 == "}") {
        cluster = 0; in_impl = 0
        while ((getline line < harness) > 0) print line
      }
      next
    }
    { print }
    END {
      if (uses != 3 || images != 1 || clusters != 1 || cluster || image) {
        printf "anchors: use testcontainers %d/3, fn zookeeper_image %d/1, struct Cluster %d/1\n", uses, images, clusters > "/dev/stderr"
        exit 1
      }
    }
  ' "$file" >"$file.spliced" || { echo "run.sh: splicing $file failed" >&2; exit 1; }
  mv "$file.spliced" "$file"
}

# Keeps the previous run's source when the new one is the same, so cargo (which goes by file
# times) does not rebuild the test binary for nothing.
install_source() {
  if [[ -d $src ]] && diff -rq "$staged" "$src" >/dev/null 2>&1; then
    rm -rf "$work/stage"
    return
  fi
  rm -rf "$src"
  mv "$staged" "$src"
  rm -rf "$work/stage"
}

build_tests() {
  local target=${CARGO_TARGET_DIR:-$repo/target}
  local build_log=$work/build.log
  # Upstream's dev profile asks for thin LTO (for linkme on macOS); on Linux it only slows the
  # link of a large test binary.
  if ! (cd "$src" && CARGO_TARGET_DIR=$target CARGO_PROFILE_DEV_LTO=false \
        cargo test --locked --features tls,sasl-digest-md5 --test zookeeper --no-run) >"$build_log" 2>&1; then
    tail -40 "$build_log" >&2
    echo "run.sh: building the tests failed (log: $build_log)" >&2
    exit 1
  fi
  test_bin=$(sed -n 's/.*Executable tests\/zookeeper.rs (\(.*\))$/\1/p' "$build_log" | tail -1)
  if [[ -z $test_bin || ! -x $test_bin ]]; then
    echo "run.sh: no test binary named in $build_log" >&2
    exit 1
  fi
  case $test_bin in /*) ;; *) test_bin=$src/$test_bin ;; esac
}

# Runs one test in its own process group; prints `<name> <OUTCOME>`.
run_one() {
  local name=$1 log=$2
  local start=$SECONDS
  setsid "$test_bin" --exact "$name" >"$log" 2>&1 &
  local pid=$! timed_out=false status=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - start >= timeout_s)); then
      timed_out=true
      kill -KILL -- "-$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  wait "$pid" || status=$?
  # Whatever the test left running (arbor servers of a test that crashed) is in its group.
  kill -KILL -- "-$pid" 2>/dev/null || true
  local outcome=ERROR
  if $timed_out; then
    outcome=TIMEOUT
    echo "run.sh: killed after ${timeout_s} s" >>"$log"
  elif grep -q '^test result: .* 1 passed; 0 failed' "$log"; then
    outcome=PASS
  elif grep -q '^test result: .* 0 passed; 1 failed' "$log"; then
    outcome=FAIL
  fi
  echo "$name $outcome $((SECONDS - start))s (exit $status)" >>"$work/progress.txt"
  echo "$name $outcome"
}

run_tests() {
  local skip_file=$here/skipped.toml
  declare -A skipped=()
  local line
  while IFS= read -r line; do
    if [[ $line =~ ^\"([^\"]+)\"\ =\ \"(.*)\"$ ]]; then
      skipped[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
    fi
  done <"$skip_file"

  local names=()
  while IFS= read -r line; do
    [[ $line == *": test" ]] || continue
    local name=${line%: test}
    if [[ -n $filter && $name != *"$filter"* ]]; then continue; fi
    names+=("$name")
  done < <("$test_bin" --list --format terse)
  if [[ ${#names[@]} -eq 0 ]]; then
    echo "run.sh: no tests listed (filter '$filter')" >&2
    exit 1
  fi

  rm -rf "$work/logs" "$work/outcomes" "$work/tmp"
  mkdir -p "$work/logs" "$work/outcomes" "$work/tmp"
  # Clusters live in temporary directories; a test killed at its timeout leaves its own here.
  export TMPDIR=$work/tmp
  : >"$work/progress.txt"
  export ARBOR_BIN=$arbor_bin ARBOR_ZKC_NODES=$nodes
  export ZK_TLS_HOSTNAME_VERIFICATION=true
  if [[ $tls_env == random ]]; then unset ZK_TEST_TLS; else export ZK_TEST_TLS=$tls_env; fi
  # Quiet by default: test-log would otherwise trace every frame into the captured output.
  export RUST_BACKTRACE=${RUST_BACKTRACE:-0}
  export RUST_LOG=${RUST_LOG:-warn}

  # Tests marked #[serial_test::serial] bind fixed ports; serial_test only orders tests within
  # one process, so here they run one after another in a single job slot.
  declare -A serial=()
  while IFS= read -r name; do serial[$name]=1; done < <(awk '
    /^#\[serial_test::serial/ { pending = 1 }
    pending && /^(async )?fn / { sub(/^(async )?fn /, ""); sub(/\(.*/, ""); print; pending = 0 }
  ' "$src/tests/zookeeper.rs")

  local start=$SECONDS running=0 name serial_names=() parallel_names=()
  for name in "${names[@]}"; do
    if [[ -n ${skipped[$name]+set} ]]; then
      echo "SKIP $name: ${skipped[$name]}"
      echo "$name SKIP" >"$work/outcomes/$name"
    elif [[ -n ${serial[$name]+set} ]]; then
      serial_names+=("$name")
    else
      parallel_names+=("$name")
    fi
  done
  if ((${#serial_names[@]} > 0)); then
    (
      for name in "${serial_names[@]}"; do
        run_one "$name" "$work/logs/$name.log" >"$work/outcomes/$name"
      done
    ) &
    running=1
  fi
  for name in "${parallel_names[@]}"; do
    if ((running >= jobs)); then
      wait -n || true
      running=$((running - 1))
    fi
    run_one "$name" "$work/logs/$name.log" >"$work/outcomes/$name" &
    running=$((running + 1))
  done
  wait || true

  local results=$work/results.unsorted
  cat "$work"/outcomes/* | sort >"$results"
  mkdir -p "$(dirname "$out")"
  mv "$results" "$out"
  local passed failed skip
  passed=$(grep -c ' PASS$' "$out" || true)
  failed=$(grep -c -v ' PASS$\| SKIP$' "$out" || true)
  skip=$(grep -c ' SKIP$' "$out" || true)
  grep -v ' PASS$\| SKIP$' "$out" | sed 's/^/not passed: /' || true
  echo "results: $out; logs: $work/logs; $((SECONDS - start)) s"
  echo "zookeeper-client(arbor, $nodes): $passed passed, $failed failed, $skip skipped"
}

main "$@"
