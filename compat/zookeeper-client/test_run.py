"""Checks of compat/zookeeper-client/run.sh itself, with a server that never starts.

A harness that reported passes without a server, or a gate that let a regression through,
would make the recorded results worthless; these make both fail loudly. They build the
patched test binary (cached after the first run) but boot no arbor.
"""

import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "run.sh")
# Passes in every committed result file, so a gate against them must object when it fails.
TEST = "test_create_root"


def run(tmp_path, *args):
    env = dict(os.environ, ARBOR_BIN="/bin/false")
    out = tmp_path / "results.txt"
    proc = subprocess.run(
        [RUN, "--filter", TEST, "--timeout", "60", "--out", str(out),
         "--work", str(tmp_path / "work"), *args],
        env=env, capture_output=True, text=True, timeout=1800,
    )
    return proc, out


def test_a_server_that_never_starts_fails_the_test(tmp_path):
    proc, out = run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_text() == f"{TEST} FAIL\n"
    assert "zookeeper-client(arbor, 1): 0 passed, 1 failed, 0 skipped" in proc.stdout


def test_the_gate_objects_to_a_test_that_passed_before(tmp_path):
    expected = os.path.join(HERE, "results", "arbor-1.txt")
    proc, _ = run(tmp_path, "--expect", expected)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"passing in {expected}, not now:\n  {TEST} FAIL" in proc.stdout
