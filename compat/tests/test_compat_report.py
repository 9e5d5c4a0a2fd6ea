"""Tests of the compatibility tooling itself: tally.py and compat-report.

These check the checkers: each feeds a known-bad input and asserts that the
tool objects, as well as the good cases.
"""

import os
import subprocess
import sys

COMPAT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = os.path.join(COMPAT, "compat-report")
TALLY = os.path.join(COMPAT, "kazoo", "tally.py")

A = "kazoo/tests/test_a.py::T::test_a"
B = "kazoo/tests/test_a.py::T::test_b"
C = "kazoo/tests/test_a.py::T::test_c"
D = "kazoo/tests/test_a.py::T::test_d [param with space]"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def results(path, outcomes, headers=()):
    lines = ["# %s" % h for h in headers]
    lines += ["%s %s" % (t, o) for t, o in outcomes.items()]
    return write(path, "\n".join(lines) + "\n")


def check(tmp_path, arbor, known=""):
    arbor_file = results(tmp_path / "arbor.txt", arbor)
    known_file = write(tmp_path / "known.toml", known)
    proc = subprocess.run(
        [sys.executable, REPORT, "--check", arbor_file, "--size", "1",
         "--results-dir", str(tmp_path / "results"), "--known", known_file],
        capture_output=True, text=True,
    )
    return proc.returncode, proc.stdout


def baseline(tmp_path, *runs):
    (tmp_path / "results").mkdir()
    for i, run in enumerate(runs):
        name = "zookeeper-1.txt" if i == 0 else "zookeeper-1.run%d.txt" % (i + 1)
        results(tmp_path / "results" / name, run)


def test_all_required_pass(tmp_path):
    baseline(tmp_path, {A: "PASS", B: "PASS", C: "FAIL"})
    rc, out = check(tmp_path, {A: "PASS", B: "PASS", C: "FAIL"})
    assert rc == 0, out
    assert out.splitlines()[-1] == "kazoo-vs-arbor: 2 passed, 0 failed, 0 skipped"


def test_regression_is_named_and_fails(tmp_path):
    baseline(tmp_path, {A: "PASS", B: "PASS"})
    rc, out = check(tmp_path, {A: "PASS", B: "ERROR"})
    assert rc == 1
    assert "REGRESSION %s ERROR" % B in out
    assert out.splitlines()[-1] == "kazoo-vs-arbor: 1 passed, 1 failed, 0 skipped"


def test_missing_test_is_a_regression(tmp_path):
    baseline(tmp_path, {A: "PASS", D: "PASS"})
    rc, out = check(tmp_path, {A: "PASS"})
    assert rc == 1
    assert "REGRESSION %s NOTRUN" % D in out


def test_known_difference_excuses(tmp_path):
    baseline(tmp_path, {A: "PASS", B: "PASS"})
    known = '[differences]\n"%s" = "arbor has no TLS yet"\n' % B
    rc, out = check(tmp_path, {A: "PASS", B: "FAIL"}, known)
    assert rc == 0, out
    assert "arbor has no TLS yet" in out
    assert out.splitlines()[-1] == "kazoo-vs-arbor: 1 passed, 0 failed, 1 skipped"


def test_a_note_does_not_excuse(tmp_path):
    baseline(tmp_path, {A: "PASS", B: "PASS"})
    known = '[notes]\n"%s" = "only an explanation"\n' % B
    rc, out = check(tmp_path, {A: "PASS", B: "FAIL"}, known)
    assert rc == 1
    assert "REGRESSION %s FAIL" % B in out


def test_stale_known_difference_is_reported(tmp_path):
    baseline(tmp_path, {A: "PASS"})
    known = '[differences]\n"%s" = "old reason"\n"kazoo/tests/nope.py::x" = "typo"\n' % A
    rc, out = check(tmp_path, {A: "PASS"}, known)
    assert rc == 0
    assert "%s passes now" % A in out
    assert "unknown test kazoo/tests/nope.py::x" in out


def test_flaky_on_zookeeper_is_not_required(tmp_path):
    baseline(tmp_path, {A: "PASS", B: "PASS"}, {A: "PASS", B: "FAIL"})
    rc, out = check(tmp_path, {A: "PASS", B: "FAIL"})
    assert rc == 0, out
    assert out.splitlines()[-1] == "kazoo-vs-arbor: 1 passed, 0 failed, 0 skipped"


def test_no_baseline_fails(tmp_path):
    (tmp_path / "results").mkdir()
    rc, out = check(tmp_path, {A: "PASS"})
    assert rc == 1
    assert out.splitlines()[-1] == "kazoo-vs-arbor: 0 passed, 1 failed"


def test_bad_result_line_is_rejected(tmp_path):
    baseline(tmp_path, {A: "PASS"})
    rc, _ = check(tmp_path, {A: "MAYBE"})
    assert rc != 0


def test_report_puts_differences_first_and_says_not_run(tmp_path):
    baseline(tmp_path, {A: "PASS", B: "PASS"})
    out = tmp_path / "COMPAT.md"
    known = write(tmp_path / "known.toml", "")
    args = [sys.executable, REPORT, "--output", str(out),
            "--results-dir", str(tmp_path / "results"), "--known", known]
    subprocess.run(args, check=True, capture_output=True)
    text = out.read_text()
    assert "| `%s` | PASS | not run |" % A in text

    results(tmp_path / "results" / "arbor-1.txt", {A: "PASS", B: "FAIL"})
    subprocess.run(args, check=True, capture_output=True)
    rows = [line for line in out.read_text().splitlines() if line.startswith("| `kazoo")]
    assert rows[0] == "| `%s` | PASS | FAIL | **regression** |" % B
    assert rows[1] == "| `%s` | PASS | PASS |  |" % A


def test_tally_marks_unfinished_tests_notrun(tmp_path):
    collected = write(tmp_path / "collected", "%s\n%s\n%s\n" % (A, B, D))
    outcomes = write(tmp_path / "outcomes", "%s PASS\n%s SKIP\n" % (B, D))
    out = tmp_path / "out.txt"
    proc = subprocess.run(
        [sys.executable, TALLY, collected, outcomes, str(out), "x, 1", "made by a test"],
        capture_output=True, text=True, check=True,
    )
    assert out.read_text() == "# made by a test\n%s NOTRUN\n%s PASS\n%s SKIP\n" % (A, B, D)
    assert proc.stdout.splitlines()[0] == "kazoo(x, 1): 1 passed, 1 failed, 1 skipped"


def test_report_counts_zookeeper_client_results_and_names_what_does_not_pass(tmp_path):
    baseline(tmp_path, {A: "PASS"})
    zkc = tmp_path / "zkc"
    (zkc / "results").mkdir(parents=True)
    write(zkc / "results" / "arbor-3.txt", "test_x PASS\ntest_y FAIL\ntest_z SKIP\n")
    write(zkc / "skipped.toml", '[skip]\n"test_z" = "needs an old server"\n')
    out = tmp_path / "COMPAT.md"
    known = write(tmp_path / "known.toml", "")
    subprocess.run(
        [sys.executable, REPORT, "--output", str(out), "--results-dir",
         str(tmp_path / "results"), "--known", known, "--zkc-dir", str(zkc)],
        check=True, capture_output=True,
    )
    text = out.read_text()
    assert "| `%s` | 1 | 1 | 0 | 1 | 3 |" % os.path.relpath(
        str(zkc / "results" / "arbor-3.txt"), os.path.dirname(COMPAT)) in text
    assert "- `test_y`: arbor-3.txt" in text
    assert "- `test_z`: needs an old server" in text
