"""pytest plugin for the kazoo compatibility runs (loaded with ``-p kazoo_results``).

Why a plugin and not only junit XML: junit XML is written when the session
ends, so a run that is killed leaves nothing. This plugin instead

* writes the id of every collected test to ``--kz-collected`` (so a test that
  never ran is visible as NOTRUN rather than silently missing),
* appends one ``<test_id> <OUTCOME>`` line to ``--kz-outcomes`` as soon as a
  test finishes (PASS, FAIL, ERROR or SKIP),
* stops the session cleanly once ``--kz-budget-seconds`` have passed, so a
  server that makes every test hang cannot eat the whole CI time; the tests
  not reached are then reported NOTRUN by the runner.

Test ids are the pytest node ids shortened to start at ``kazoo/tests/``, so
they do not depend on where the venv lives.
"""

import os
import time

import pytest


def short_id(item):
    """Return the id of ``item`` as ``kazoo/tests/<file>::<class>::<test>``.

    pytest's own node id is relative to a rootdir that depends on where it
    was started; this one depends only on the package layout.
    """
    site = os.path.dirname(os.path.dirname(os.path.dirname(str(item.path))))
    path = os.path.relpath(str(item.path), site).replace(os.sep, "/")
    return "::".join([path] + item.nodeid.split("::")[1:])


def pytest_addoption(parser):
    group = parser.getgroup("kazoo-compat")
    group.addoption("--kz-collected", default=None, help="file for collected ids")
    group.addoption("--kz-outcomes", default=None, help="file for outcomes")
    group.addoption(
        "--kz-budget-seconds",
        type=float,
        default=0,
        help="stop starting new tests after this many seconds (0: no limit)",
    )


class _Recorder:
    def __init__(self, config):
        self.config = config
        self.collected_path = config.getoption("--kz-collected")
        self.outcomes_path = config.getoption("--kz-outcomes")
        self.budget = config.getoption("--kz-budget-seconds")
        self.started = time.monotonic()
        # Worst outcome seen so far per test, over setup/call/teardown.
        self.pending = {}
        # pytest node id -> short id, filled at collection.
        self.ids = {}

    def pytest_collection_finish(self, session):
        self.ids = {item.nodeid: short_id(item) for item in session.items}
        if self.collected_path:
            with open(self.collected_path, "w") as f:
                for item in session.items:
                    f.write(self.ids[item.nodeid] + "\n")

    def pytest_runtest_logreport(self, report):
        outcome = self.pending.get(report.nodeid, "PASS")
        if report.failed:
            # A failure in setup or teardown is an ERROR, in the body a FAIL.
            outcome = "FAIL" if report.when == "call" else "ERROR"
        elif report.skipped and outcome == "PASS":
            outcome = "SKIP"
        self.pending[report.nodeid] = outcome
        if report.when == "teardown":
            self.pending.pop(report.nodeid, None)
            if self.outcomes_path:
                with open(self.outcomes_path, "a") as f:
                    test_id = self.ids.get(report.nodeid, report.nodeid)
                    f.write("%s %s\n" % (test_id, outcome))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid, location):
        if self.budget and time.monotonic() - self.started > self.budget:
            session = getattr(self.config, "_kz_session", None)
            if session is not None:
                session.shouldstop = "kazoo compat time budget exhausted"

    def pytest_sessionstart(self, session):
        self.config._kz_session = session


def pytest_configure(config):
    config.pluginmanager.register(_Recorder(config), "kazoo-results-recorder")
