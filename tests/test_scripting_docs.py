"""Every example in docs/scripts.md runs: ```apdu blocks pass, ```apdu-fail blocks fail an
expectation (exit 1), ```apdu-error blocks are script errors reported before anything is sent."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from cardos import Card
from cardos.scripting import ScriptError, check, parse_text
from cardos.scripting.functions import documented
from cardos.scripting.keysource import open_keys
from cardos.scripting.report import Reporters
from cardos.scripting.runner import Runner
from cardos.scripting.steps import STEPS
from cardos.scripting.transport import EmulatorTransport

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "scripts.md"
_BLOCK = re.compile(r"^```(apdu(?:-fail|-error)?)\n(.*?)^```", re.S | re.M)


class Recorder:
    def __init__(self):
        self.exchanges = []
        self.checks = []

    def exchange(self, ev):
        self.exchanges.append(ev)

    def check(self, ev):
        self.checks.append(ev)

    def __getattr__(self, name):
        return lambda *a: None


def blocks():
    text = DOC.read_text(encoding="utf-8")
    out = []
    for m in _BLOCK.finditer(text):
        line = text.count("\n", 0, m.start(2)) + 1
        out.append(pytest.param(m.group(1), m.group(2), line, id=f"{m.group(1)}@{line}"))
    return out


def run_block(kind, body, line):
    # the block's text keeps its line numbers in the file, so positions point into docs/scripts.md
    text = "\n" * (line - 1) + body
    keys = open_keys("sample")
    script = parse_text(text, "docs/scripts.md", DOC.parent)
    check(script, keys)
    recorder = Recorder()
    runner = Runner(EmulatorTransport(Card.blank(), "doc"), Reporters(recorder))
    return runner.run_script(script, keys), recorder


@pytest.mark.parametrize("kind, body, line", blocks())
def test_doc_example(kind, body, line):
    if kind == "apdu-error":
        with pytest.raises(ScriptError) as info:
            run_block(kind, body, line)
        assert info.value.pos is not None and info.value.pos.file == "docs/scripts.md"
        return
    result, recorder = run_block(kind, body, line)
    if kind == "apdu":
        assert result.status == "passed", [c for c in recorder.checks if not c.ok] or result.error
        assert recorder.checks, "an example should check something"
    else:
        assert result.status == "failed" and result.exit_code == 1


def test_there_are_examples_of_each_kind():
    kinds = [p.values[0] for p in blocks()]
    assert kinds.count("apdu") >= 8 and "apdu-fail" in kinds and "apdu-error" in kinds


def test_error_example_points_at_the_bad_digit():
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"^```apdu-error\n(.*?)^```", text, re.S | re.M)
    line = text.count("\n", 0, m.start(1)) + 1
    with pytest.raises(ScriptError) as info:
        run_block("apdu-error", m.group(1), line)
    bad_line = line + 1
    assert str(info.value) == f"docs/scripts.md:{bad_line}:17: error: bad hex digit 'G' in '3G'"
    assert "docs/scripts.md:LINE:17: error: bad hex digit 'G' in '3G'" in text


def test_every_function_and_step_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for fn in documented():
        assert f"`{fn.name}(" in text or f"`{fn.name}`" in text, fn.name
        for alias in fn.aliases:
            assert f"`{alias}" in text, alias
    for name in STEPS:
        assert f"`{name}" in text, name
