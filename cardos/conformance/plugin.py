"""The pytest plugin of the conformance suite (entry point ``pytest11``).

Loaded by every pytest run in an environment where cardos is installed, so
it stays inert unless the suite itself is collected: ``pytest --pyargs
cardos.conformance`` (or the suite's directory) collects the
``suite/check_*.py`` modules, which no other run picks up.

What it adds:

* options ``--cardos-card IMAGE``, ``--cardos-reader NAME``, ``--cardos-vpcd``,
  ``--cardos-vpcd-port N``, ``--cardos-factory MODULE:CALLABLE``,
  ``--cardos-keys FILE``, ``--cardos-serial S``, ``--cardos-report-json PATH``;
* markers ``family``, ``command``, ``destructive``, ``needs_keys``, ``in_process``
  (the last three are also derived from the fixtures a test uses);
* JUnit properties per test: ``command``, ``family``, ``culprit`` (failures), ``apdu_trace``;
* the per-command summary table at the end of the run (:mod:`cardos.conformance.summary`).
"""
from __future__ import annotations

import json
import time

import pytest

from ..privatefile import write_private
from . import PACKAGE_DIR, SUITE_DIR
from .summary import Result, nonconforming, render, rows, skip_reasons, verdict

STATE_KEY = pytest.StashKey()

DESTRUCTIVE_FIXTURES = {"issued", "scratch", "city", "purse", "interconnect", "spare_card", "emulator_card"}
KEY_FIXTURES = {"issued", "scratch", "city", "purse", "interconnect", "spare_card", "issuer_keys"}
IN_PROCESS_FIXTURES = {"emulator_card", "spare_card"}
# Where destructive tests may run, the ``card`` fixture brings the card into the baseline first.
BASELINE_FIXTURES = {"card"} | KEY_FIXTURES


class State:
    """What the run learned, for the summary and the JSON report."""

    def __init__(self):
        self.results: dict = {}
        self.active = False
        self.target = ""
        self.kind = ""
        self.identity = ""
        self.keys = ""
        self.destructive = ""
        self.started = time.monotonic()
        self.prepared = None  # the target `cardos conformance` opened and checked before the run

    def header(self) -> list:
        lines = [f"cardos conformance: {self.target or 'no target opened'}"]
        if self.identity:
            lines.append(f"card: {self.identity}; key set: {self.keys or 'none'}; destructive tests: "
                         f"{self.destructive}")
        results = list(self.results.values())
        lines.append(f"{len(results)} tests in {time.monotonic() - self.started:.1f} s")
        return lines


def state(config) -> State:
    return config.stash[STATE_KEY]


def pytest_addoption(parser):
    group = parser.getgroup("cardos", "cardos conformance suite (pytest --pyargs cardos.conformance; "
                                      "docs/conformance.md)")
    group.addoption("--cardos-card", metavar="IMAGE", help="judge a copy of this card image (in-process emulator)")
    group.addoption("--cardos-reader", metavar="NAME",
                    help="judge the card in this PC/SC reader (name, index or a unique part of the name)")
    group.addoption("--cardos-vpcd", action="store_true",
                    help="serve the emulated card into the running pcscd (vpcd slot) and test it through PC/SC")
    group.addoption("--cardos-vpcd-port", metavar="PORT", type=int, default=35963,
                    help="vpcd slot port for --cardos-vpcd (default 35963 = 'Virtual PCD 00 00')")
    group.addoption("--cardos-factory", metavar="MODULE:CALLABLE",
                    help="judge the card object this callable returns (test doubles, other emulators)")
    group.addoption("--cardos-keys", metavar="FILE",
                    help="issuer key set (file or shipped name); emulator targets default to the TEST key set")
    group.addoption("--cardos-serial", metavar="SERIAL",
                    help="the serial of the card in the reader (MF 0005, or 'blank'): allows destructive tests; "
                         "a different card stops the run")
    group.addoption("--cardos-report-json", metavar="PATH", help="write the results as JSON")


def pytest_configure(config):
    config.stash[STATE_KEY] = State()
    for line in ("family(name): command family of a conformance test (summary grouping)",
                 "command(label): the command a conformance test judges (summary row)",
                 "destructive: changes the card (runs on a real card only with a matching --cardos-serial)",
                 "needs_keys: needs the issuer key set (--cardos-keys)",
                 "in_process: needs the emulated card object in this process (power-cut hook, spare cards)"):
        config.addinivalue_line("markers", line)


def _requested(session) -> bool:
    return session.isinitpath(SUITE_DIR) or session.isinitpath(PACKAGE_DIR)


def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".py" or not file_path.name.startswith("check_") or file_path.parent != SUITE_DIR:
        return None
    session = parent.session
    if session.isinitpath(file_path) or not _requested(session):
        return None  # named on the command line: pytest's own collector takes it
    return pytest.Module.from_parent(parent, path=file_path)


def _in_suite(item) -> bool:
    return getattr(item, "path", None) is not None and item.path.parent == SUITE_DIR


def uses_target(item) -> bool:
    """The test talks to the card (the pre-flight has something to check)."""
    return "target" in getattr(item, "fixturenames", ())


def uses_baseline(item) -> bool:
    """The test may bring the card into the baseline (needs the card's key set)."""
    return bool(set(getattr(item, "fixturenames", ())) & BASELINE_FIXTURES)


def labels(item) -> tuple:
    family = item.get_closest_marker("family")
    command = item.get_closest_marker("command")
    return (family.args[0] if family else "other"), (command.args[0] if command else item.name)


def pytest_collection_modifyitems(session, config, items):
    st = state(config)
    for item in items:
        if not _in_suite(item):
            continue
        st.active = True
        names = set(getattr(item, "fixturenames", ()))
        if names & DESTRUCTIVE_FIXTURES:
            item.add_marker(pytest.mark.destructive)
        if names & KEY_FIXTURES:
            item.add_marker(pytest.mark.needs_keys)
        if names & IN_PROCESS_FIXTURES:
            item.add_marker(pytest.mark.in_process)
        family, command = labels(item)
        item.user_properties.append(("family", family))
        item.user_properties.append(("command", command))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if not _in_suite(item):
        return
    rep = outcome.get_result()
    st = state(item.config)
    family, command = labels(item)
    trace = getattr(item, "cardos_trace", None)
    if rep.when == "call" or rep.failed or (rep.when == "setup" and rep.skipped):
        if rep.passed:
            result = Result(item.nodeid, family, command, "passed", duration=rep.duration)
        elif rep.skipped:
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            reason = reason.removeprefix("Skipped: ")
            result = Result(item.nodeid, family, command, "skipped", message=reason)
        else:
            exc = call.excinfo.value if call.excinfo is not None else None
            culprit = getattr(exc, "command", "") or command
            message = str(exc) if exc is not None else str(rep.longrepr).splitlines()[-1]
            if rep.when != "call":
                message = f"{rep.when}: {message}"
            result = Result(item.nodeid, family, command, "failed", culprit, message, rep.duration)
            rep.user_properties.append(("culprit", culprit))
            if trace is not None and trace.entries:
                rep.sections.append(("APDU trace", trace.text()))
        previous = st.results.get(item.nodeid)
        if previous is None or previous.outcome != "failed":
            st.results[item.nodeid] = result
    if rep.when == "teardown" and trace is not None and item.config.option.xmlpath:
        rep.user_properties.append(("apdu_trace", trace.text()))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    st = state(config)
    if not st.active or not st.results:
        return
    results = list(st.results.values())
    terminalreporter.write_sep("=", "cardos conformance summary")
    for line in render(results, st.header()).splitlines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session, exitstatus):
    st = state(session.config)
    path = session.config.getoption("cardos_report_json", None)
    if not path or not st.active:
        return
    results = list(st.results.values())
    report = {"target": st.target, "kind": st.kind, "card": st.identity, "keys": st.keys,
              "destructive": st.destructive, "verdict": verdict(results), "nonconforming": nonconforming(results),
              "skipped": [{"reason": reason, "tests": n} for n, reason in skip_reasons(results)],
              "commands": [{"family": f, "command": c, "passed": p, "failed": x, "skipped": s, "result": v}
                           for f, c, p, x, s, v in rows(results)],
              "tests": [r.to_dict() for r in results]}
    # 0600: with --keys the card's keys are in play, and failure messages quote APDUs
    write_private(path, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
