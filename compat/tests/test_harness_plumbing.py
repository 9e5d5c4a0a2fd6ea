"""End-to-end checks of the arbor path of compat/kazoo/run.sh.

The real arbor may not serve yet, so these put stand-ins behind ARBOR_BIN:
one that always fails (the run must report failures, never passes) and one
that is Java ZooKeeper in disguise (the shim must start a working server with
kazoo's config and -D properties, and stop it with SIGTERM).
"""

import os
import subprocess

import pytest

COMPAT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(COMPAT, "kazoo", "run.sh")
TESTDATA = os.path.join(COMPAT, "kazoo", "testdata")
SELECTION = "test_zookeeper_version or (TestClient and test_create_acl_duplicate)"
SELECTED = {
    "kazoo/tests/test_build.py::TestBuildEnvironment::test_zookeeper_version",
    "kazoo/tests/test_client.py::TestClient::test_create_acl_duplicate",
}
ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
# Not one of run.sh's own blocks (21000-22100), so these checks can run while
# a real kazoo run is going on.
PORT_OFFSET = "23000"


def run_arbor_target(tmp_path, arbor_bin, **env_overrides):
    env = dict(os.environ, ARBOR_BIN=os.path.join(TESTDATA, arbor_bin), **env_overrides)
    proc = subprocess.run(
        [RUN, "--target", "arbor", "-k", SELECTION, "--timeout", "60",
         "--work", str(tmp_path / "work"), "--out", str(tmp_path / "results.txt"),
         "--port-offset", PORT_OFFSET],
        env=env, capture_output=True, text=True, timeout=300,
    )
    outcomes = {}
    for line in (tmp_path / "results.txt").read_text().splitlines():
        if not line.startswith("#"):
            test_id, outcome = line.rsplit(" ", 1)
            outcomes[test_id] = outcome
    return proc, outcomes


def test_failing_server_is_reported_as_failures(tmp_path):
    proc, outcomes = run_arbor_target(tmp_path, "failing-arbor")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert outcomes == {test_id: "NOTRUN" for test_id in SELECTED}
    assert "kazoo(arbor, 1): 0 passed, 2 failed, 0 skipped" in proc.stdout
    # The shim passed kazoo's zoo.cfg and -D properties to the binary.
    assert "failing-arbor: called with: server --zoo-cfg " in proc.stdout
    assert "/zoo.cfg -D" in proc.stdout
    assert "-Dzookeeper.DigestAuthenticationProvider.superDigest=super:" in proc.stdout


@pytest.mark.skipif(not os.path.exists(ZOOKEEPER_JAR), reason="needs Debian's zookeeper")
def test_shim_starts_and_stops_a_working_server(tmp_path):
    # It is ZooKeeper 3.8.0 inside, and says so in `envi`.
    proc, outcomes = run_arbor_target(tmp_path, "zookeeper-as-arbor", KAZOO_ZK_VERSION="3.8.0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outcomes == {test_id: "PASS" for test_id in SELECTED}
    assert "kazoo(arbor, 1): 2 passed, 0 failed, 0 skipped" in proc.stdout
