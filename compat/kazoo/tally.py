#!/usr/bin/env python3
"""Turn one kazoo run into a sorted per-test result file.

Usage: tally.py COLLECTED OUTCOMES OUT LABEL [HEADER_LINE...]

COLLECTED has one test id per line (every test pytest collected), OUTCOMES
one ``<test_id> <PASS|FAIL|ERROR|SKIP>`` line per finished test (both written
by the kazoo_results plugin). A collected test with no outcome -- the run was
stopped by its time budget or killed -- is written as NOTRUN. Prints
``kazoo(<LABEL>): N passed, N failed, N skipped`` where failed counts FAIL,
ERROR and NOTRUN. Each HEADER_LINE is written first as a ``# `` comment
(how the run was made), for compat-report to quote.
"""

import sys

OUTCOMES = ("PASS", "FAIL", "ERROR", "SKIP", "NOTRUN")


def read_lines(path):
    try:
        with open(path) as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except FileNotFoundError:
        return []


def main(argv):
    collected_path, outcomes_path, out_path, label = argv[1:5]
    headers = argv[5:]
    results = {test_id: "NOTRUN" for test_id in read_lines(collected_path)}
    for line in read_lines(outcomes_path):
        if line.startswith("#"):
            continue
        # Test ids may contain spaces (parametrized ids); the outcome is last.
        test_id, outcome = line.rsplit(" ", 1)
        assert outcome in OUTCOMES, line
        results[test_id] = outcome
    with open(out_path, "w") as f:
        for header in headers:
            f.write("# %s\n" % header)
        for test_id in sorted(results):
            f.write("%s %s\n" % (test_id, results[test_id]))
    counts = {o: 0 for o in OUTCOMES}
    for outcome in results.values():
        counts[outcome] += 1
    failed = counts["FAIL"] + counts["ERROR"] + counts["NOTRUN"]
    detail = ", ".join(
        "%d %s" % (counts[o], o) for o in ("FAIL", "ERROR", "NOTRUN") if counts[o]
    )
    print(
        "kazoo(%s): %d passed, %d failed, %d skipped"
        % (label, counts["PASS"], failed, counts["SKIP"])
    )
    if detail:
        print("kazoo(%s): failed = %s" % (label, detail))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
