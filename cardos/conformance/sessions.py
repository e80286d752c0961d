"""The two pytest sessions of ``cardos conformance``: a quiet collection (what ``-k``
selects, ``--list``, whether the selected tests need the card and its keys), then the run,
handed the target the pre-flight opened (:class:`Handover`) so it is opened once."""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import pytest

SESSION_ARGS = ["-p", "cardos.conformance.plugin", "--pyargs", "cardos.conformance", "-o", "addopts=",
                "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                # cardos is imported before pytest sees its entry point: nothing to rewrite there, nothing to say
                "-W", "ignore::pytest.PytestAssertRewriteWarning"]


@dataclass
class Collected:
    """A test of the suite as ``--list`` shows it."""

    nodeid: str
    family: str
    command: str
    marks: tuple
    uses_target: bool
    uses_baseline: bool

    def line(self) -> str:
        name = self.nodeid.rsplit("/", 1)[-1]
        marks = f"  ({', '.join(self.marks)})" if self.marks else ""
        return f"{name}  [{self.family} / {self.command}]{marks}"


class Collector:
    """A pytest plugin that records what a ``--collect-only`` session selected."""

    def __init__(self):
        self.selected: list = []
        self.deselected = 0

    def pytest_deselected(self, items) -> None:
        self.deselected += len(items)

    def pytest_collection_finish(self, session) -> None:
        from .plugin import labels, uses_baseline, uses_target

        for item in session.items:
            family, command = labels(item)
            marks = tuple(m for m in ("destructive", "needs_keys", "in_process") if item.get_closest_marker(m))
            self.selected.append(Collected(item.nodeid, family, command, marks, uses_target(item),
                                           uses_baseline(item)))

    @property
    def total(self) -> int:
        return len(self.selected) + self.deselected


class Handover:
    """A pytest plugin that gives the session the target the pre-flight opened."""

    def __init__(self, prepared):
        self.prepared = prepared

    @pytest.hookimpl(trylast=True)  # after the suite plugin made its state
    def pytest_configure(self, config) -> None:
        from .plugin import state

        state(config).prepared = self.prepared


def collect(keyword: str | None) -> tuple:
    """(Collector, pytest exit code, pytest's output) of a quiet ``--collect-only`` session."""
    collector = Collector()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = pytest.main([*SESSION_ARGS, "--collect-only", "-q", *(["-k", keyword] if keyword else [])],
                           plugins=[collector])
    return collector, int(code), out.getvalue()
