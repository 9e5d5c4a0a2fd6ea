#!/usr/bin/env python3
"""arbor vs Apache ZooKeeper, side by side, on this machine, in one run.

Starts Apache ZooKeeper (Debian's 3.8 package) and arbor with equal durability (both fsync
every write batch: ZooKeeper's forceSync=yes), standalone and as a 3-node ensemble on
loopback, runs each workload of `arbor bench` against both, alternating which goes first,
and reports per workload the median over rounds of the ratio arbor/ZooKeeper for throughput,
p50 and p99, plus the servers' CPU-seconds per 10k operations. Also measures RSS after loading
N znodes of 100 bytes, restart time with them, the longest client-visible stall while a
snapshot is taken, and the machine's references (fsync latency of the data disk, loopback
RTT). Writes results JSON and rewrites the zk-compare section of BENCHMARKS.md.

Normally started through bench/compare.sh, which installs and builds what this needs.
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEGIN = "<!-- zk-compare:begin -->"
END = "<!-- zk-compare:end -->"
ZK_CLASSPATH = ":".join(
    f"/usr/share/java/{jar}"
    for jar in [
        "zookeeper.jar",
        "netty-codec.jar",
        "netty-resolver.jar",
        "slf4j-log4j12.jar",
        "log4j-1.2.jar",
    ]
)
# Same JVM for every ZooKeeper run. zkServer.sh defaults to a 1000 MB heap; 2 GB holds 1M
# znodes of 100 B with headroom. RSS follows the heap the JVM grows into, so say it next to it.
ZK_JVM_OPTS = ["-Xmx2g", "-Dzookeeper.admin.enableServer=false"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_LIMIT_S = 120


def log(message):
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Workloads: name -> (arbor bench arguments, reads or writes). Sizes shrink in quick mode.


# Quick mode runs this subset (one of each kind) unless --workloads says otherwise.
QUICK_SUBSET = {"create", "set", "get", "mixed-90", "churn", "set-1k", "get-100k",
                "children-10k", "fanout-1k"}


def workloads(quick):
    children = 10_000 if quick else 100_000
    watchers = 1_000 if quick else 10_000
    fanout_rounds = 3 if quick else 10
    return [
        ("create", ["--workload", "create"], "write"),
        ("set", ["--workload", "set"], "write"),
        ("get", ["--workload", "get"], "read"),
        ("mixed-0", ["--workload", "mixed", "--read-pct", "0"], "write"),
        ("mixed-50", ["--workload", "mixed", "--read-pct", "50"], "mixed"),
        ("mixed-90", ["--workload", "mixed", "--read-pct", "90"], "read"),
        ("mixed-99", ["--workload", "mixed", "--read-pct", "99"], "read"),
        ("exists-watch", ["--workload", "exists-watch"], "read"),
        ("churn", ["--workload", "churn", "--connections", "8"], "write"),
        ("set-1k", ["--workload", "set", "--value-size", "1024"], "write"),
        ("get-1k", ["--workload", "get", "--value-size", "1024"], "read"),
        (
            "set-100k",
            ["--workload", "set", "--value-size", "102400", "--keys", "100", "--window", "2"],
            "write",
        ),
        (
            "get-100k",
            ["--workload", "get", "--value-size", "102400", "--keys", "100", "--window", "2"],
            "read",
        ),
        (
            f"children-{children // 1000}k",
            ["--workload", "children", "--children", str(children), "--connections", "4",
             "--window", "2"],
            "read",
        ),
        (
            f"fanout-{watchers // 1000}k",
            ["--workload", "fanout", "--watchers", str(watchers), "--ops", str(fanout_rounds)],
            "notify",
        ),
    ]


# --------------------------------------------------------------------------------------------
# Processes


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Unavailable(Exception):
    """The system cannot run this topology (e.g. arbor before clusters exist)."""


class Node:
    def __init__(self, kind, directory, client_port, command):
        self.kind = kind
        self.directory = directory
        self.client_port = client_port
        self.command = command
        self.process = None
        self.log_path = directory / "server.log"

    @property
    def addr(self):
        return f"127.0.0.1:{self.client_port}"

    def spawn(self):
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=self.directory,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log_file.close()

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines=8):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def zoo_cfg(data_dir, client_port, members, extra=()):
    lines = [
        "tickTime=2000",
        f"dataDir={data_dir}",
        f"clientPort={client_port}",
        "clientPortAddress=127.0.0.1",
        "admin.enableServer=false",
        "4lw.commands.whitelist=*",
        "maxClientCnxns=0",
        # ZooKeeper's default; arbor's is 10,000, which the 10k-watcher fan-out exceeds.
        "maxCnxns=0",
        "forceSync=yes",
        "autopurge.purgeInterval=0",
        *extra,
    ]
    if members:
        lines += ["initLimit=10", "syncLimit=5"]
        for node_id, peer, election, _client in members:
            lines.append(f"server.{node_id}=127.0.0.1:{peer}:{election}")
    return "\n".join(lines) + "\n"


class Deployment:
    """One system (zookeeper or arbor) in one topology, on fresh data directories."""

    def __init__(self, system, topology, work_dir, port_base, arbor_bin, extra_cfg=()):
        self.system = system
        self.topology = topology
        self.nodes = []
        size = 1 if topology == "standalone" else 3
        offset = (0 if system == "zookeeper" else 100) + (0 if size == 1 else 10)
        members = []
        if size == 3:
            for i in range(1, 4):
                members.append(
                    (i, port_base + offset + 20 + i, port_base + offset + 30 + i,
                     port_base + offset + i)
                )
        root = work_dir / f"{system}-{topology}"
        shutil.rmtree(root, ignore_errors=True)
        for i in range(1, size + 1):
            directory = root / f"node{i}"
            data = directory / "data"
            data.mkdir(parents=True)
            client_port = port_base + offset + i
            (directory / "zoo.cfg").write_text(zoo_cfg(data, client_port, members, extra_cfg))
            if size == 3:
                (data / "myid").write_text(f"{i}\n")
            if system == "zookeeper":
                # INFO to server.log, as zkServer.sh's default configuration logs.
                (directory / "log4j.properties").write_text(
                    "log4j.rootLogger=INFO, CONSOLE\n"
                    "log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n"
                    "log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.CONSOLE.layout.ConversionPattern="
                    "%d{ISO8601} %-5p [%t] %c{1} - %m%n\n"
                )
                command = ["java", *ZK_JVM_OPTS,
                           f"-Dlog4j.configuration=file:{directory / 'log4j.properties'}",
                           "-cp", ZK_CLASSPATH,
                           "org.apache.zookeeper.server.quorum.QuorumPeerMain", "zoo.cfg"]
            else:
                command = [str(arbor_bin), "server", "--zoo-cfg", "zoo.cfg"]
            self.nodes.append(Node(system, directory, client_port, command))

    @property
    def addrs(self):
        return ",".join(node.addr for node in self.nodes)

    @property
    def data_dirs(self):
        return [node.directory / "data" for node in self.nodes]

    def start(self, bench):
        """Spawns every node and returns seconds until each answered (the slowest)."""
        started = time.monotonic()
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            self.wait_ready(bench, node, started)
        return time.monotonic() - started

    def wait_ready(self, bench, node, started):
        deadline = started + READY_LIMIT_S
        while True:
            if not node.alive():
                raise Unavailable(
                    f"{self.system} {self.topology}: server exited with "
                    f"{node.process.returncode if node.process else '?'}: {node.log_tail(4)}"
                )
            result = bench.run(
                ["--workload", "ready", "--server", node.addr, "--duration", "2s",
                 "--connect-timeout", "1s"],
                check=False,
            )
            if result is not None:
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"{self.system} {self.topology}: not ready in "
                                  f"{READY_LIMIT_S}s: {node.log_tail(4)}")

    def check_replication(self, bench):
        """A node written through the first member must be readable on the others: three
        servers that ignore the server.N lines would each run standalone, and measuring them
        as an ensemble would be a lie."""
        if len(self.nodes) == 1:
            return
        probe = ["--workload", "get", "--keys", "1", "--run-id", "replication-probe"]
        bench.run([*probe, "--server", self.nodes[0].addr, "--setup-only"])
        for node in self.nodes[1:]:
            for _ in range(50):
                report = bench.run([*probe, "--server", node.addr, "--no-setup", "--ops", "1",
                                    "--warmup", "0s", "--connections", "1"], check=False)
                if report is not None and report["errors"] == 0:
                    break
                time.sleep(0.1)
            else:
                raise Unavailable(
                    f"{self.system} {self.topology}: a node created on {self.nodes[0].addr} "
                    f"never appeared on {node.addr}: the members do not replicate")

    def cpu_seconds(self):
        values = [proc_cpu_seconds(node.process.pid) for node in self.nodes if node.alive()]
        if not values or any(v is None for v in values):
            return None
        return sum(values)

    def rss_kib(self):
        values = [proc_rss_kib(node.process.pid) for node in self.nodes if node.alive()]
        return max(values) if values and all(v is not None for v in values) else None

    def alive(self):
        return all(node.alive() for node in self.nodes)

    def stop(self):
        for node in self.nodes:
            node.stop()


# --------------------------------------------------------------------------------------------
# The load generator


class Bench:
    def __init__(self, command, display, out_dir):
        self.command = command
        self.display = display
        self.out_dir = out_dir
        self.counter = 0

    def run(self, args, check=True, label=None):
        """Runs one bench invocation; returns its JSON report (None on failure if not check)."""
        self.counter += 1
        json_path = self.out_dir / f"bench-{self.counter:05d}.json"
        argv = [*self.command, *args, "--quiet", "--json", str(json_path)]
        if label:
            argv += ["--label", label]
        # No backtraces: the error chain anyhow prints first is what a reader needs.
        env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
        result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=env)
        if result.returncode != 0:
            if check:
                error = " ".join(result.stderr.split())[:600]
                raise RuntimeError(f"{self.command_line(args)} failed: {error}")
            return None
        with open(json_path) as f:
            return json.load(f)

    def command_line(self, args):
        return " ".join(shlex.quote(a) for a in [self.display, *args])


# --------------------------------------------------------------------------------------------
# Measurements


def measure_workload(bench, deployment, name, args, timing, seed):
    """One workload on a fresh deployment: setup, then the measured run with server CPU
    sampled around it alone."""
    deployment.start(bench)
    try:
        run_id = f"{name}-{deployment.system}-{seed}"
        common = ["--server", deployment.addrs, "--seed", str(seed), "--run-id", run_id, *args]
        bench.run([*common, "--setup-only"])
        measured = [*common, "--no-setup", *timing]
        cpu_before = deployment.cpu_seconds()
        report = bench.run(measured, label=f"{deployment.system}/{deployment.topology}/{name}")
        cpu_after = deployment.cpu_seconds()
        if not deployment.alive():
            raise RuntimeError(f"{deployment.system} died during {name}")
        server_cpu = (cpu_after - cpu_before) if None not in (cpu_before, cpu_after) else None
        total_ops = report["ops"] + report.get("warmup_ops", 0)
        if report["workload"] == "fanout" and report["ops"]:
            # Fan-out ops are rounds; CPU is per notification delivered (warm-up rounds too).
            total_ops = report["notifications"] * total_ops / report["ops"]
        return {
            "ops": report["ops"],
            "errors": report["errors"],
            "error_codes": report["error_codes"],
            "ops_per_s": report["ops_per_s"],
            "elapsed_s": report["elapsed_s"],
            "p50_us": report["latency"]["p50_us"],
            "p99_us": report["latency"]["p99_us"],
            "p999_us": report["latency"]["p999_us"],
            "max_us": report["latency"]["max_us"],
            "server_cpu_s": server_cpu,
            "client_cpu_s": report["client_cpu_s"],
            "wall_s": report["elapsed_s"] + report["config"]["warmup_s"],
            "cpu_s_per_10k_ops": (server_cpu / total_ops * 10_000)
            if server_cpu is not None and total_ops
            else None,
            "extra": report.get("extra", {}),
            "command": bench.command_line(measured),
        }
    finally:
        deployment.stop()


def snapshot_files(deployment):
    """Names of the snapshot files in the data directories. Both systems name a snapshot after
    its zxid or index, so a snapshot taken later has a new name even where older ones are
    deleted."""
    names = set()
    for data in deployment.data_dirs:
        for path in data.rglob("*"):
            if "snap" in path.name.lower() and path.is_file():
                names.add(str(path.relative_to(data)))
    return names


def measure_memory(bench, system, work_dir, port_base, arbor_bin, znodes, stall_ops,
                   snap_count):
    """RSS after loading `znodes` znodes, the longest stall while snapshots are taken, and the
    restart time with those znodes. `snap_count` (both servers read zoo.cfg's snapCount) is
    below `stall_ops`, so the setData run crosses at least one snapshot."""
    extra = [f"snapCount={snap_count}"] if snap_count else []
    deployment = Deployment(system, "standalone", work_dir, port_base, arbor_bin, extra)
    result = {"znodes": znodes, "snap_count": snap_count or 100_000}
    deployment.start(bench)
    try:
        load_args = ["--server", deployment.addrs, "--workload", "create", "--ops",
                     str(znodes), "--value-size", "100", "--connections", "8",
                     "--window", "64", "--warmup", "0s", "--run-id", "load"]
        load = bench.run(load_args)
        result["load_ops_per_s"] = load["ops_per_s"]
        result["load_command"] = bench.command_line(load_args)
        time.sleep(2)  # let the server settle (GC, group commit) before reading RSS
        result["rss_mib"] = (deployment.rss_kib() or 0) / 1024
        snaps_before = snapshot_files(deployment)
        stall_args = ["--server", deployment.addrs, "--workload", "set", "--ops",
                      str(stall_ops), "--connections", "8", "--window", "8",
                      "--warmup", "0s", "--run-id", "stall"]
        stall = bench.run(stall_args)
        result["snapshots_during_stall_run"] = len(snapshot_files(deployment) - snaps_before)
        result["stall_max_ms"] = stall["latency"]["max_us"] / 1000
        result["stall_p999_ms"] = stall["latency"]["p999_us"] / 1000
        result["stall_p50_ms"] = stall["latency"]["p50_us"] / 1000
        result["stall_command"] = bench.command_line(stall_args)
        deployment.stop()
        result["restart_s"] = deployment.start(bench)
        result["rss_after_restart_mib"] = (deployment.rss_kib() or 0) / 1024
    finally:
        deployment.stop()
    return result


def machine_info(work_dir):
    info = {"kernel": platform.release(), "cores": os.cpu_count()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    df = subprocess.run(["df", "-hT", str(work_dir)], capture_output=True, text=True)
    if df.returncode == 0 and len(df.stdout.splitlines()) > 1:
        fields = df.stdout.splitlines()[1].split()
        info["data_disk"] = f"{fields[0]} ({fields[1]})"
    java = subprocess.run(["java", "-version"], capture_output=True, text=True)
    info["java"] = (java.stderr.splitlines() or ["?"])[0]
    dpkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "zookeeper"],
                          capture_output=True, text=True)
    info["zookeeper"] = dpkg.stdout.strip() or "?"
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    info["arbor_commit"] = git.stdout.strip() or "?"
    return info


# --------------------------------------------------------------------------------------------
# Analysis


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def summarize(results, workload_classes):
    """Per topology and workload: medians per system and median of per-round ratios."""
    table = []
    for topology, per_workload in results["runs"].items():
        for name, per_system in per_workload.items():
            zk = per_system.get("zookeeper", [])
            ar = per_system.get("arbor", [])
            row = {"topology": topology, "workload": name, "class": workload_classes[name]}
            for system, runs in (("zookeeper", zk), ("arbor", ar)):
                ok = [r for r in runs if r and "error" not in r]
                row[system] = None if not ok else {
                    key: median([r[key] for r in ok])
                    for key in ("ops_per_s", "p50_us", "p99_us", "p999_us", "max_us",
                                "cpu_s_per_10k_ops", "server_cpu_s", "client_cpu_s", "wall_s")
                } | {"errors": sum(r["errors"] for r in ok), "rounds": len(ok),
                     "command": ok[0]["command"]}
                failed = [r["error"] for r in runs if r and "error" in r]
                if failed:
                    row[f"{system}_failure"] = failed[0]
            pairs = [(a, z) for a, z in zip(ar, zk)
                     if a and z and "error" not in a and "error" not in z]
            for key, out in (("ops_per_s", "throughput"), ("p50_us", "p50"),
                             ("p99_us", "p99"), ("p999_us", "p999"),
                             ("cpu_s_per_10k_ops", "cpu_per_op")):
                row[f"ratio_{out}"] = median([ratio(a[key], z[key]) for a, z in pairs])
            table.append(row)
    return table


def limit_of(row, system, refs, cores):
    data = row.get(system)
    if not data or not data.get("wall_s"):
        return ""
    used = ((data["server_cpu_s"] or 0) + (data["client_cpu_s"] or 0)) / data["wall_s"]
    if used >= 0.85 * cores:
        return f"CPU ({used:.1f}/{cores} cores)"
    fsync_p50 = refs.get("fsync_p50_us")
    if row["class"] in ("write", "mixed") and fsync_p50 and data["p50_us"] >= fsync_p50:
        return f"fsync/commit path ({used:.1f} cores)"
    return f"latency x window ({used:.1f} cores)"


def goals(summary, memory):
    """The issue's targets, each with what this run measured."""
    out = []

    def rows(cls, topology):
        return [r for r in summary if r["class"] == cls and r["topology"] == topology]

    for topology in ("standalone", "3-node"):
        writes = rows("write", topology)
        thr = [r["ratio_throughput"] for r in writes]
        p99 = [r["ratio_p99"] for r in writes]
        met = None if None in thr + p99 or not writes else all(
            t >= 3 for t in thr) and all(p <= 1 for p in p99)
        out.append({"goal": f"writes {topology}: >= 3x throughput at <= p99",
                    "measured": fmt_range(thr, "x thr") + ", " + fmt_range(p99, "x p99"),
                    "met": met})
        reads = rows("read", topology)
        thr = [r["ratio_throughput"] for r in reads]
        p999 = [r["ratio_p999"] for r in reads]
        met = None if None in thr + p999 or not reads else all(
            t >= 2 for t in thr) and all(p <= 0.25 for p in p999)
        out.append({"goal": f"reads {topology}: >= 2x throughput, p99.9 <= 1/4",
                    "measured": fmt_range(thr, "x thr") + ", " + fmt_range(p999, "x p99.9"),
                    "met": met})
    zk, ar = memory.get("zookeeper"), memory.get("arbor")
    ok = zk and ar and "error" not in zk and "error" not in ar
    rss = ratio(ar["rss_mib"], zk["rss_mib"]) if ok else None
    out.append({"goal": "RSS <= 1/8 of ZooKeeper's", "measured": fmt(rss, "x"),
                "met": None if rss is None else rss <= 1 / 8})
    restart = ratio(ar["restart_s"], zk["restart_s"]) if ok else None
    out.append({"goal": "restart <= 1/5 of ZooKeeper's", "measured": fmt(restart, "x"),
                "met": None if restart is None else restart <= 1 / 5})
    stall = ar.get("stall_max_ms") if ar and "error" not in ar else None
    snapshot_seen = ar and ar.get("snapshots_during_stall_run", 0) > 0
    out.append({"goal": "snapshot stall <= 10 ms",
                "measured": (fmt(stall, " ms max latency") +
                             ("" if snapshot_seen or stall is None
                              else " (no snapshot file appeared during the run)")),
                "met": None if stall is None or not snapshot_seen else stall <= 10})
    return out


def fmt(value, unit=""):
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    if abs(value) >= 100:
        return f"{value:.0f}{unit}"
    return f"{value:.2f}{unit}"


def fmt_range(values, unit):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return f"{min(values):.2f}-{max(values):.2f}{unit}"


def fmt_us(value):
    if value is None:
        return "n/a"
    if value < 1000:
        return f"{value:.0f} us"
    if value < 1_000_000:
        return f"{value / 1000:.2f} ms"
    return f"{value / 1e6:.2f} s"


# --------------------------------------------------------------------------------------------
# Markdown


def reproduce_args(results):
    """The compare.sh options of a run (older results: derived from mode and rounds)."""
    if "options" in results:
        return results["options"]
    quick = results["mode"] == "quick"
    args = ["--quick"] if quick else []
    if results["rounds"] != (1 if quick else 3):
        args += ["--rounds", str(results["rounds"])]
    return args


def render(results):
    refs = results["references"]
    machine = results["machine"]
    cores = machine.get("cores") or 2
    summary = results["summary"]
    lines = [BEGIN, "## arbor vs Apache ZooKeeper, side by side", ""]
    mode = results["mode"]
    lines += [
        f"_Written by `{' '.join(['bench/compare.sh', *reproduce_args(results)])}` on "
        f"{results['date']} (arbor {machine.get('arbor_commit')}); do not edit by hand, "
        "rerun the script. Raw results: "
        f"`{results['results_file']}`._",
        "",
    ]
    if mode == "quick":
        lines += ["**Quick mode**: short runs, one round, smaller sizes, a subset of the "
                  "workloads; it proves the plumbing, it is not the reference measurement (run "
                  "`bench/compare.sh` for that).", ""]
    lines += [
        "### How it was run",
        "",
        f"- Machine: {machine.get('cpu', '?')}, {cores} cores, "
        f"{machine.get('memory_gib', '?')} GiB, Linux {machine.get('kernel')}, data on "
        f"{machine.get('data_disk', '?')}. The load generator runs on the same cores.",
        f"- ZooKeeper {machine.get('zookeeper')} (Debian), {machine.get('java')}, "
        f"`{' '.join(ZK_JVM_OPTS)}`; arbor `target/release/arbor server --zoo-cfg zoo.cfg` "
        "from the same zoo.cfg (`forceSync=yes`: both fsync every write batch).",
        f"- {results['rounds']} round(s) per workload, alternating which system goes first; "
        "every run starts the servers on fresh data directories; warm-up "
        f"{results['timing']['warmup']}, measured {results['timing']['duration']}. "
        "3-node: three processes on loopback, clients spread over all members.",
        f"- Client: `{results['bench_display']}` (the same ZooKeeper-protocol client drives "
        "both); the exact command of each row is in the raw results, e.g. "
        f"`{results['example_command']}`.",
        f"- Reproduce: `{' '.join(['bench/compare.sh', *reproduce_args(results)])}`.",
        "",
        "### Physical references (what the numbers are bounded by)",
        "",
        f"- fsync of a 4 KiB append in the data directory: p50 {fmt_us(refs.get('fsync_p50_us'))}, "
        f"p99 {fmt_us(refs.get('fsync_p99_us'))} (so at most "
        f"~{fmt(1e6 / refs['fsync_p50_us'] if refs.get('fsync_p50_us') else None)} "
        "durable batches/s per log).",
        f"- TCP round trip on loopback: p50 {fmt_us(refs.get('rtt_p50_us'))}, p99 "
        f"{fmt_us(refs.get('rtt_p99_us'))}.",
        "",
        "### Throughput and latency",
        "",
        "Ratios are arbor / ZooKeeper, the median over rounds of the per-round ratio: "
        "throughput > 1 and latency < 1 favour arbor. CPU is the server processes' "
        "user+system seconds per 10k operations (warm-up included in both the seconds and the "
        "operations). *Limit* says what bounded that run: CPU when server and client together "
        "used >= 85 % of the cores, else the fsync/commit path for writes whose p50 is above "
        "the disk's fsync p50, else latency x window (Little's law: outstanding requests / "
        "latency).",
        "",
        "| topology | workload | ZK ops/s | arbor ops/s | thr ratio | ZK p50 | arbor p50 | "
        "p50 ratio | ZK p99 | arbor p99 | p99 ratio | ZK p99.9 | arbor p99.9 | "
        "CPU-s/10k ZK | CPU-s/10k arbor | limit ZK | limit arbor |",
        "|" + "---|" * 17,
    ]
    for row in summary:
        zk, ar = row.get("zookeeper"), row.get("arbor")

        def cell(data, key, formatter):
            return formatter(data[key]) if data and data.get(key) is not None else "n/a"

        arbor_missing = "not available" if not ar else None
        lines.append(
            "| " + " | ".join([
                row["topology"], row["workload"],
                cell(zk, "ops_per_s", lambda v: f"{v:,.0f}"),
                arbor_missing or cell(ar, "ops_per_s", lambda v: f"{v:,.0f}"),
                fmt(row["ratio_throughput"], "x"),
                cell(zk, "p50_us", fmt_us), arbor_missing or cell(ar, "p50_us", fmt_us),
                fmt(row["ratio_p50"], "x"),
                cell(zk, "p99_us", fmt_us), arbor_missing or cell(ar, "p99_us", fmt_us),
                fmt(row["ratio_p99"], "x"),
                cell(zk, "p999_us", fmt_us), arbor_missing or cell(ar, "p999_us", fmt_us),
                cell(zk, "cpu_s_per_10k_ops", lambda v: f"{v:.2f}"),
                arbor_missing or cell(ar, "cpu_s_per_10k_ops", lambda v: f"{v:.2f}"),
                limit_of(row, "zookeeper", refs, cores) or "n/a",
                arbor_missing or limit_of(row, "arbor", refs, cores) or "n/a",
            ]) + " |"
        )
    notes = []
    for row in summary:
        for system in ("zookeeper", "arbor"):
            failure = row.get(f"{system}_failure")
            if failure:
                notes.append(f"- {row['topology']} {row['workload']} on {system}: {failure}")
            data = row.get(system)
            if data and data.get("errors"):
                notes.append(f"- {row['topology']} {row['workload']} on {system}: "
                             f"{data['errors']} error replies")
    for reason in results.get("unavailable", {}).values():
        notes.append(f"- {reason}")
    if notes:
        lines += ["", "Not measured or failed:", ""] + sorted(set(notes))
    lines += ["", f"Fan-out rows: ops/s is notifications delivered per second; latency is "
              "one round, from the write until the last watcher was notified.", ""]
    memory = results["memory"]
    lines += ["### Memory, restart, snapshot stall (standalone)", ""]
    zk, ar = memory.get("zookeeper") or {}, memory.get("arbor") or {}
    znodes = zk.get("znodes") or ar.get("znodes")
    lines += [
        "| measure | ZooKeeper | arbor | ratio |",
        "|---|---|---|---|",
    ]

    def mem_row(label, key, unit):
        z, a = zk.get(key), ar.get(key)
        lines.append(f"| {label} | {fmt(z, unit)} | "
                     f"{fmt(a, unit) if 'error' not in ar else 'not available'} | "
                     f"{fmt(ratio(a, z), 'x')} |")

    mem_row(f"RSS after loading {znodes:,} znodes of 100 B" if znodes else "RSS", "rss_mib",
            " MiB")
    mem_row("load rate (create, 8 x 64 pipelined)", "load_ops_per_s", " ops/s")
    mem_row("restart until the first reply", "restart_s", " s")
    mem_row("RSS after restart", "rss_after_restart_mib", " MiB")
    mem_row("longest stall (max latency) in the setData run", "stall_max_ms", " ms")
    mem_row("p99.9 in the setData run", "stall_p999_ms", " ms")
    mem_row("snapshot files written during that run", "snapshots_during_stall_run", "")
    mem_row("snapCount (zoo.cfg, read by both)", "snap_count", "")
    for system, data in (("zookeeper", zk), ("arbor", ar)):
        if "error" in data:
            lines.append(f"\n{system}: {data['error']}")
    if zk.get("stall_command"):
        lines += ["", f"Load: `{zk['load_command']}`; stall run: `{zk['stall_command']}`. "
                  "The stall figure counts only if a snapshot file appeared during the run."]
    lines += ["", "### Goals of the issue", "", "| goal | measured (arbor/ZooKeeper) | met |",
              "|---|---|---|"]
    for goal in results["goals"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[goal["met"]]
        lines.append(f"| {goal['goal']} | {goal['measured']} | {met} |")
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write_markdown(results, path):
    section = render(results)
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            start = text.index(BEGIN)
            end = text.index(END) + len(END)
            text = text[:start] + section.rstrip("\n") + text[end:]
        else:
            text = text.rstrip("\n") + "\n\n" + section
    else:
        text = section
    path.write_text(text)


# --------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few minutes in all")
    parser.add_argument("--rounds", type=int, help="A/B rounds per workload (3; quick 1)")
    parser.add_argument("--bench", required=True,
                        help="the load generator command, e.g. 'target/release/arbor bench'")
    parser.add_argument("--arbor", required=True, help="the arbor binary")
    parser.add_argument("--systems", default="zookeeper,arbor")
    parser.add_argument("--topologies", default="standalone,3-node")
    parser.add_argument("--workloads", help="comma-separated subset of workload names")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--work-dir", default="/tmp/arbor-compare")
    parser.add_argument("--port-base", type=int, default=23000)
    parser.add_argument("--results", help="results JSON (default bench/results/<mode>.json)")
    parser.add_argument("--markdown", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the markdown from --results without measuring")
    options = parser.parse_args()

    mode = "quick" if options.quick else "full"
    results_path = Path(options.results or REPO / "bench" / "results" / f"{mode}.json")
    if options.render_only:
        results = json.loads(results_path.read_text())
        write_markdown(results, Path(options.markdown))
        return 0

    rounds = options.rounds or (1 if options.quick else 3)
    timing = {"warmup": "1s", "duration": "2s"} if options.quick else {
        "warmup": "3s", "duration": "10s"}
    timing_args = ["--warmup", timing["warmup"], "--duration", timing["duration"]]
    work_dir = Path(options.work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    out_dir = work_dir / "reports"
    out_dir.mkdir()
    bench_cmd = shlex.split(options.bench)
    bench = Bench(bench_cmd, "arbor bench" if bench_cmd[-1] == "bench" else options.bench,
                  out_dir)
    arbor_bin = Path(options.arbor).resolve()
    systems = options.systems.split(",")
    topologies = options.topologies.split(",")
    all_workloads = workloads(options.quick)
    if options.workloads:
        wanted = set(options.workloads.split(","))
        all_workloads = [w for w in all_workloads if w[0] in wanted]
    elif options.quick:
        all_workloads = [w for w in all_workloads if w[0] in QUICK_SUBSET]
    classes = {name: cls for name, _, cls in all_workloads}

    # The options that shape the measurement, for the "Reproduce" line (not paths or ports).
    skip_next = {"--bench", "--arbor", "--results", "--markdown", "--work-dir", "--port-base"}
    shaping, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg.split("=")[0] in skip_next:
            skip = "=" not in arg
        else:
            shaping.append(arg)
    results = {
        "schema": 1,
        "options": shaping,
        "mode": mode,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rounds": rounds,
        "timing": timing,
        "bench_display": bench.display,
        "machine": machine_info(work_dir),
        "references": {},
        "runs": {},
        "memory": {},
        "unavailable": {},
        "results_file": str(results_path.relative_to(REPO)) if results_path.is_relative_to(
            REPO) else str(results_path),
    }

    log("physical references")
    fsync = bench.run(["--workload", "fsync", "--dir", str(work_dir), "--ops",
                       "500" if options.quick else "3000"])
    rtt = bench.run(["--workload", "loopback-rtt", "--ops", "20000"])
    results["references"] = {
        "fsync_p50_us": fsync["latency"]["p50_us"], "fsync_p99_us": fsync["latency"]["p99_us"],
        "rtt_p50_us": rtt["latency"]["p50_us"], "rtt_p99_us": rtt["latency"]["p99_us"],
    }

    # Which (system, topology) can run at all: a system that exits at start-up (arbor before it
    # supports clusters) is reported as not available, not as a failure.
    available = {}
    for topology in topologies:
        for system in systems:
            deployment = Deployment(system, topology, work_dir, options.port_base, arbor_bin)
            try:
                if system == "arbor" and not arbor_bin.exists():
                    raise Unavailable(f"arbor binary {arbor_bin} missing")
                deployment.start(bench)
                deployment.check_replication(bench)
                available[(system, topology)] = True
            except Unavailable as error:
                available[(system, topology)] = False
                results["unavailable"][f"{system} {topology}"] = str(error).replace("\n", " ")
                log(f"not available: {error}")
            finally:
                deployment.stop()

    seed = 1
    for topology in topologies:
        results["runs"][topology] = {}
        for name, args, _ in all_workloads:
            per_system = {system: [] for system in systems}
            results["runs"][topology][name] = per_system
            for round_index in range(rounds):
                order = systems if round_index % 2 == 0 else list(reversed(systems))
                seed += 1
                for system in order:
                    if not available.get((system, topology)):
                        continue
                    log(f"{topology} {name} round {round_index + 1}/{rounds}: {system}")
                    deployment = Deployment(system, topology, work_dir, options.port_base,
                                            arbor_bin)
                    try:
                        run = measure_workload(bench, deployment, name, args, timing_args, seed)
                        log(f"  {run['ops_per_s']:,.0f} ops/s p50 {fmt_us(run['p50_us'])} "
                            f"p99 {fmt_us(run['p99_us'])} errors {run['errors']}")
                    except (RuntimeError, Unavailable) as error:
                        run = {"error": str(error).replace("\n", " ")[:400]}
                        log(f"  failed: {run['error']}")
                    per_system[system].append(run)
    results["example_command"] = next(
        (r["command"] for t in results["runs"].values() for w in t.values()
         for runs in w.values() for r in runs if r and "command" in r), "")

    if not options.skip_memory:
        znodes = 100_000 if options.quick else 1_000_000
        # ZooKeeper snapshots after a random count in [snapCount/2, snapCount], arbor every
        # snapCount entries: the stall run is longer than snapCount so both take one in it.
        stall_ops = 30_000 if options.quick else 150_000
        snap_count = 20_000 if options.quick else None
        for system in systems:
            if not available.get((system, "standalone")):
                results["memory"][system] = {"error": "not available", "znodes": znodes}
                continue
            log(f"memory/restart/stall: {system} with {znodes:,} znodes")
            try:
                results["memory"][system] = measure_memory(
                    bench, system, work_dir, options.port_base, arbor_bin, znodes, stall_ops,
                    snap_count)
                log(f"  {results['memory'][system]}")
            except (RuntimeError, Unavailable) as error:
                results["memory"][system] = {"error": str(error)[:400], "znodes": znodes}
                log(f"  failed: {error}")

    results["summary"] = summarize(results, classes)
    results["goals"] = goals(results["summary"], results["memory"])
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(results, Path(options.markdown))
    log(f"results in {results_path}; {options.markdown} rewritten between its markers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
