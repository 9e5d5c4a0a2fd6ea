#!/usr/bin/env bash
# Run kazoo 2.11.0's own test suite against Apache ZooKeeper or arbor.
#
#   compat/kazoo/run.sh --target zookeeper|arbor [--cluster-size 1|3] [-k EXPR]
#                       [--timeout SECONDS] [--budget SECONDS] [--out FILE] [--work DIR]
#                       [--port-offset N]
#
# kazoo's harness always launches its own servers (there is no "external
# server" mode): `java ... QuorumPeerMain <zoo.cfg>`. For --target arbor,
# java-shim/ is put first on PATH and turns that into
# `$ARBOR_BIN server --zoo-cfg <zoo.cfg> -D...`.
#
# Writes compat/kazoo/results/<target>-<size>.txt (one `<test_id> <OUTCOME>`
# line per test, OUTCOME in PASS FAIL ERROR SKIP NOTRUN) for a full run, or
# <work>/results.txt with -k (or --out FILE); keeps pytest's output, junit XML
# and the servers' directories in <work> (compat/kazoo/work/<target>-<size>);
# prints
# `kazoo(<target>, <size>): N passed, N failed, N skipped`.
# Exit status: 0 when the run completed (whatever the tests did), 1 when the
# harness itself could not run (servers never answered, bad arguments).
#
# Environment:
#   ARBOR_BIN            arbor binary (default: target/release/arbor, else target/debug/arbor)
#   ZOOKEEPER_CLASSPATH  Debian ZooKeeper classpath (default below)
#   KAZOO_ZK_VERSION     value given to kazoo as ZOOKEEPER_VERSION (default: the
#                        version the target reports, 3.8.0 or 3.9.4)
set -euo pipefail

# Everything is in main(), called on the last line: bash reads a script as it
# runs it, so without this, editing run.sh breaks the runs in progress.
main() {
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=$repo/compat/.venv

orig_args=("$@")
target="" size=1 kexpr="" out="" work="" port_offset=""
# kazoo's own pytest settings use 180 s per test.
timeout_s=180
budget_s=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --target) target=$2; shift 2 ;;
    --cluster-size) size=$2; shift 2 ;;
    -k) kexpr=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --budget) budget_s=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --port-offset) port_offset=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 1 ;;
  esac
done
case $target in
  zookeeper | arbor) ;;
  *) echo "run.sh: --target zookeeper|arbor is required" >&2; exit 1 ;;
esac
case $size in
  1 | 3) ;;
  *) echo "run.sh: --cluster-size must be 1 or 3" >&2; exit 1 ;;
esac

label="$target, $size"
name=$target-$size
work=${work:-$repo/compat/kazoo/work/$name}
if [[ -z $out ]]; then
  if [[ -z $kexpr ]]; then out=$here/results/$name.txt; else out=$work/results.txt; fi
fi

# One fixed port block per (target, size), below Linux's ephemeral range
# (32768+) and away from kazoo's default 20000: server i uses
# offset+10*i .. offset+10*i+4 (client, election, leader, admin, secure).
# compat/tests uses 23000+ so its checks never meet a real run.
if [[ -z $port_offset ]]; then
  case $name in
    zookeeper-1) port_offset=21000 ;;
    zookeeper-3) port_offset=21100 ;;
    arbor-1) port_offset=22000 ;;
    arbor-3) port_offset=22100 ;;
  esac
fi

"$here/setup.sh"
mkdir -p "$work" "$(dirname "$out")"
work=$(cd "$work" && pwd)
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
rm -rf "$work/tmp" "$work"/{collected.txt,outcomes.txt,results.txt,junit.xml,pytest.log,preflight.log}
mkdir "$work/tmp"

export CI=true # as on kazoo's CI: runs test_build, waits in test_read_only
# The version of the server under test, as its `envi` reports it: kazoo gates
# tests on >= 3.4 / >= 3.5 only (both values run the same tests), and with
# CI=true test_build.py::test_zookeeper_version checks the server says this.
# Debian's ZooKeeper says 3.8.0-<build>; arbor says 3.9.4-arbor-<version>
# (ZOOKEEPER_COMPATIBLE_VERSION in crates/arbor-server/src/admin.rs).
case $target in
  zookeeper) server_version=3.8.0 ;;
  arbor) server_version=3.9.4 ;;
esac
export ZOOKEEPER_VERSION=${KAZOO_ZK_VERSION:-$server_version}
export ZOOKEEPER_CLASSPATH=${ZOOKEEPER_CLASSPATH:-/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar}
export ZOOKEEPER_CLUSTER_SIZE=$size
export ZOOKEEPER_PORT_OFFSET=$port_offset
unset ZOOKEEPER_PATH ZOOKEEPER_JAAS_AUTH ZOOKEEPER_OBSERVER_START_ID ZOOKEEPER_LOCAL_SESSION_RO
# kazoo makes each server's directory with tempfile.mkdtemp(): keep them here.
export TMPDIR=$work/tmp
export PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1

if [[ $target == arbor ]]; then
  if [[ -z ${ARBOR_BIN:-} ]]; then
    for candidate in "$repo/target/release/arbor" "$repo/target/debug/arbor"; do
      if [[ -x $candidate ]]; then ARBOR_BIN=$candidate; break; fi
    done
  fi
  export ARBOR_BIN=${ARBOR_BIN:-$repo/target/release/arbor}
  ARBOR_REAL_JAVA=$(command -v java || echo /usr/bin/java)
  export ARBOR_REAL_JAVA
  export PATH=$here/java-shim:$PATH
  echo "run.sh: target arbor, ARBOR_BIN=$ARBOR_BIN"
  server="arbor $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '(no git)') ($ARBOR_BIN)"
else
  for jar in ${ZOOKEEPER_CLASSPATH//:/ }; do
    [[ -f $jar ]] || { echo "run.sh: missing $jar (apt-get install zookeeper)" >&2; exit 1; }
  done
  server="Debian zookeeper $(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo '?'), $(java -version 2>&1 | head -n 1)"
fi

# Refuse to start when a port of our block is taken (a stray server).
"$venv/bin/python" - "$port_offset" "$size" <<'EOF'
import socket, sys
offset, size = int(sys.argv[1]), int(sys.argv[2])
for port in range(offset, offset + 10 * size):
    if port % 10 > 4:
        continue
    s = socket.socket()
    # As servers do: TIME_WAIT leftovers of the last run must not count.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError as exc:
        sys.exit("run.sh: port %d is in use (%s); stop whatever holds it" % (port, exc))
    finally:
        s.close()
EOF

# Every server the suite starts is a child of pytest; run pytest in a session
# of its own so that whatever it leaves behind (a timed-out test, a crash)
# can be ended by process group, without touching anything else.
pgid=""
cleanup() {
  if [[ -n $pgid ]]; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 -- "-$pgid" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    pgid=""
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

run_in_group() { # run "$@" in a new session, wait for it, then end its group
  setsid "$@" &
  pgid=$!
  local rc=0
  wait "$pgid" || rc=$?
  cleanup
  return "$rc"
}

cd "$work"
pytest_args=(
  -m pytest --pyargs kazoo.tests
  -p kazoo_results -p no:cacheprovider
  --kz-collected="$work/collected.txt" --kz-outcomes="$work/outcomes.txt"
)
[[ -n $kexpr ]] && pytest_args+=(-k "$kexpr")

preflight_ok=true
summary="no summary line"
start=$SECONDS
if ! run_in_group "$venv/bin/python" "$here/preflight.py" >"$work/preflight.log" 2>&1; then
  preflight_ok=false
  cat "$work/preflight.log"
  echo "run.sh: servers did not answer; not running the suite, every test is NOTRUN"
  # Collect only, so that every test is still listed (as NOTRUN).
  run_in_group "$venv/bin/python" "${pytest_args[@]}" --collect-only -q \
    >"$work/pytest.log" 2>&1 || true
else
  echo "run.sh: $(grep "^preflight:" "$work/preflight.log")"
  rc=0
  run_in_group "$venv/bin/python" "${pytest_args[@]}" \
    --timeout="$timeout_s" --kz-budget-seconds="$budget_s" \
    --junitxml="$work/junit.xml" -q -rfE \
    >"$work/pytest.log" 2>&1 || rc=$?
  # pytest: 0 all passed, 1 some failed, 2 interrupted (budget), 5 none ran.
  summary=$(grep -E ' in [0-9.]+s( \([0-9:]+\))?( =+)?$' "$work/pytest.log" | tail -n 1 || true)
  summary="pytest exited $rc after $((SECONDS - start)) s: ${summary:-no summary line}"
  echo "run.sh: $summary"
  if grep -q "time budget exhausted" "$work/pytest.log"; then
    echo "run.sh: the ${budget_s} s budget ran out; tests not reached are NOTRUN"
  fi
fi

$preflight_ok || summary="servers did not answer the preflight check; suite not run"
"$venv/bin/python" "$here/tally.py" "$work/collected.txt" "$work/outcomes.txt" "$out" "$label" \
  "command: compat/kazoo/run.sh ${orig_args[*]}" \
  "finished: $(date -u +%Y-%m-%dT%H:%M:%SZ), load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; server: $server" \
  "kazoo $("$venv/bin/python" -c 'import kazoo.version as v; print(v.__version__)'), ZOOKEEPER_VERSION=$ZOOKEEPER_VERSION, CI=$CI, per-test timeout ${timeout_s} s, budget ${budget_s} s (0: none)" \
  "$summary"
echo "run.sh: results in ${out#"$repo"/}, pytest output in ${work#"$repo"/}/pytest.log"
$preflight_ok
}

main "$@"; exit
