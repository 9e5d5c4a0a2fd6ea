#!/usr/bin/env bash
# Runs the arbor-raft throughput benchmark and rewrites its section of BENCHMARKS.md
# (between the raft-bench markers; nothing else in the file is touched).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out="$(mktemp)"
cpu="$(mktemp)"
cargo bench -p arbor-raft --bench throughput 2>/dev/null | tee "$out"
ARBOR_BENCH_CPU=1 cargo bench -p arbor-raft --bench throughput 2>/dev/null | tee "$cpu"
python3 - "$out" "$root/BENCHMARKS.md" "$cpu" <<'PY'
import re, sys, platform, subprocess, datetime
out, path, cpu_path = sys.argv[1], sys.argv[2], sys.argv[3]
cpu_rows = {}
for line in open(cpu_path).read().splitlines():
    m = re.match(r'cpu: batch=(\d+) entries=(\d+) cpu_us_per_entry=(\S+) entries_per_cpu_s=(\d+)', line)
    if m:
        cpu_rows[m.group(1)] = (m.group(2), m.group(3), m.group(4))
lines = open(out).read().splitlines()
rows = []
for i, line in enumerate(lines):
    m = re.match(r'^\s*[├╰]─\s+(\d+)\s+(\S+ \S+)\s+│\s+(\S+ \S+)\s+│\s+(\S+ \S+)\s+│\s+(\S+ \S+)', line)
    if m and i + 1 < len(lines):
        batch, fastest, slowest, median, mean = m.groups()
        t = re.findall(r'(\S+ \S*item/s)', lines[i + 1])
        if len(t) >= 3:
            rows.append((batch, median, t[2], fastest, t[0]))
def per_entry(time_text):
    value, unit = time_text.split()
    scale = {'ns': 1e-9, 'µs': 1e-6, 'us': 1e-6, 'ms': 1e-3, 's': 1.0}[unit]
    return f"{float(value) * scale / 1000 * 1e6:.2f} µs"
cpu = subprocess.run(['sh', '-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                     capture_output=True, text=True).stdout.strip()
body = [
    "<!-- raft-bench:begin -->",
    "## arbor-raft: entries through an in-memory 3-node cluster",
    "",
    f"Measured {datetime.date.today()} on {cpu or platform.machine()} ({subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, shared with other jobs).",
    "Command: `bash crates/arbor-raft/bench.sh` (runs `cargo bench -p arbor-raft --bench throughput`).",
    "",
    "Entries of 128 bytes are proposed on the leader in batches of the given size, replicated,",
    "persisted into `MemStorage`, committed and applied on all three nodes, in one thread: the",
    "figures are the work of all three nodes together, with no fsync, network or encoding.",
    "CPU time is the process's user+system time (`/proc/self/stat`) over 200,000 entries, so",
    "it does not depend on other jobs; the divan wall-clock figures (1000 entries per",
    "iteration) do, and on this shared machine their median is mostly time spent preempted.",
    "",
    "| batch | CPU per entry | entries per CPU-second | divan fastest (wall) | divan median (wall) |",
    "|---|---|---|---|---|",
]
for batch, median, median_tp, fastest, fastest_tp in rows:
    entries, cpu_us, per_cpu_s = cpu_rows.get(batch, ("?", "?", "?"))
    body.append(f"| {batch} | {cpu_us} µs | {int(per_cpu_s):,} | {fastest_tp} | {median_tp} |" if per_cpu_s != "?" else f"| {batch} | ? | ? | {fastest_tp} | {median_tp} |")
body.append("<!-- raft-bench:end -->")
section = "\n".join(body)
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
pattern = re.compile(r"<!-- raft-bench:begin -->.*?<!-- raft-bench:end -->", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = (text.rstrip() + "\n\n" if text.strip() else "") + section + "\n"
open(path, "w").write(text)
print(section)
PY
