"""Reports of a run: the decoded human trace, JSON lines, JUnit XML.

All three receive the same events from the runner (``start_script``,
``exchange``, ``check``, ``message``, ``error``, ``end_script``,
``end_run``); :class:`Reporters` fans them out.
"""
from __future__ import annotations

import io
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from ..decoder import (
    DecodedCommand,
    decode_command,
    decode_response,
    describe_sw,
    hex_spaced,
)
from ..i18n import Messages
from ..privatefile import write_failure, write_private
from ..redact import apdu_hex
from ..ui import Style as _Style  # colour shared by every cardos command (cardos/ui.py)
from ..ui import use_color  # noqa: F401  (re-exported: cardos.scripting.report.use_color)

WRAP = 16  # bytes per line of undivided data




def _fields_text(fields, msgs: Messages | None = None, command: bytes = b"") -> str:
    """``name=HEX (reading)`` for split data; nothing when there is only one field without a reading.

    Names and transaction-type readings in the language of ``msgs`` (``command``: the APDU the fields belong to).
    """
    named = [f for f in fields if f.name != "data"]
    if len(named) == 1 and not named[0].note and len(fields) == 1:
        return ""
    msgs = msgs or Messages()

    def note(f) -> str:
        if f.name == "type" and f.note:
            return msgs.tx_type(f.value[0], f.note)
        return f.note
    return " ".join(f"{msgs.field(f.name, command)}={f.hex()}" + (f" ({note(f)})" if f.note else "")
                    for f in fields if f.name != "data")


def _data_groups(fields) -> list:
    """Data as lines: named fields compact and side by side, undivided data wrapped at 16 spaced bytes."""
    if not fields:
        return []
    if len(fields) == 1 or all(f.name == "data" for f in fields):
        shown = [text for f in fields for text in f.byte_texts()]  # a PIN's bytes as ** (cardos/redact.py)
        return [" ".join(shown[i:i + WRAP]) for i in range(0, len(shown), WRAP)]
    return [" ".join(f.hex() for f in fields)]


def command_lines(dc: DecodedCommand) -> list:
    """``80 50 00 02 | 0B | 01 00000064 010203040506 | 10`` (long data on further lines)."""
    head = [hex_spaced(dc.header)]
    if dc.lc:
        head.append(hex_spaced(dc.lc))
    if not dc.valid and dc.fields:
        head.append(" ".join(dc.fields[0].byte_texts()))
        return [" | ".join(head)]
    groups = _data_groups(dc.fields)
    le = hex_spaced(dc.le_bytes) if dc.le_bytes else ""
    if len(groups) <= 1:
        parts = head + groups + ([le] if le else [])
        return [" | ".join(parts)]
    lines = [" | ".join(head) + " | " + groups[0]]
    lines += groups[1:-1]
    lines.append(groups[-1] + (f" | {le}" if le else ""))
    return lines


class HumanReporter:
    """The decoded trace (scriptor-like ``>``/``<`` lines, fields split, SW meanings, timing)."""

    def __init__(self, out=sys.stdout, err=sys.stderr, color: bool = False, lang: str = "en", quiet: bool = False,
                 summary: bool = True, show_keys: bool = False):
        self.show_keys = show_keys
        self.out = out
        self.err = err
        self.s = _Style(color)
        self.lang = lang
        self.msgs = Messages(lang)
        self.quiet = quiet
        self.summary = summary
        self._header = None
        self.failures: list = []
        self.errors: list = []

    def _print(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.out)

    def start_run(self, info: dict) -> None:
        self._print(self.s("2", self.msgs("run.card", card=info.get('card', '?'))))

    def start_script(self, path: str) -> None:
        self._header = None
        self._print(self.s("1", f"== {path}"))

    def _head(self, pos, title: str) -> None:
        key = (pos.file, pos.line, pos.col)
        if key != self._header:
            self._header = key
            self._print(f"{self.s('36', f'{pos.file}:{pos.line}')}  {self.s('1', title)}")

    def exchange(self, ev) -> None:
        if self.quiet:
            return
        if ev.command:
            dc = decode_command(ev.command, self.show_keys)
            self._head(ev.pos, ev.title or dc.title(self.lang))
            note = f"  {self.s('2', '(' + ev.note + ')')}" if ev.note else ""
            name = f"  {self.s('2', dc.title(self.lang))}" if ev.note or ev.title else ""
            lines = command_lines(dc)
            self._print(f"  > {lines[0]}{name}{note}")
            for extra in lines[1:]:
                self._print(f"    {extra}")
            labels = _fields_text(dc.fields, self.msgs, ev.command)
            if labels:
                self._print(self.s("2", f"    {labels}"))
        else:
            self._head(ev.pos, self.msgs("trace.response"))
        if len(ev.response) < 2:
            return
        data = ev.data
        fields = decode_response(ev.original or ev.command, data) if data else []
        sw = ev.sw
        sw_text = self.s.sw(sw, f"{sw >> 8:02X} {sw & 0xFF:02X}")
        timing = f"  {self.s('2', f'{ev.seconds * 1000:.1f} ms')}" if ev.seconds is not None else ""
        tail = f"{sw_text}  {describe_sw(sw, self.lang)}{timing}"
        groups = _data_groups(fields)
        if not groups:
            self._print(f"  < {tail}")
        elif len(groups) == 1 and len(groups[0]) <= 3 * WRAP:
            self._print(f"  < {groups[0]} | {tail}")
        else:
            self._print(f"  < {groups[0]}")
            for extra in groups[1:]:
                self._print(f"    {extra}")
            self._print(f"    {tail}")
        labels = _fields_text(fields, self.msgs, ev.original or ev.command)
        if labels:
            self._print(self.s("2", f"    {labels}"))

    def check(self, ev) -> None:
        where = f"{ev.pos.file}:{ev.pos.line}"
        if ev.ok:
            shown = ev.expected if ev.expected.startswith("expect ") else f"=> {ev.expected}"
            self._print(f"  {self.s('32', self.msgs('run.ok'))}   {shown if ev.expected else ev.message}")
        else:
            text = ev.message or self.msgs("run.expected_got", expected=ev.expected, actual=ev.actual)
            self.failures.append(f"{where}: {text}")
            self._print(f"  {self.s('1;31', self.msgs('run.fail'))} {where}: {text}")

    def message(self, ev) -> None:
        self._print(self.s("35", f"  # {ev.text}"))

    def error(self, exc) -> None:
        self.errors.append(str(exc))
        print(self.s("1;31", str(exc)), file=self.err)

    def end_script(self, result) -> None:
        if result.status == "skipped":
            self._print(self.s("33", "  " + self.msgs("run.skipped", why=result.skipped)))

    def end_run(self, summary: dict) -> None:
        if not self.summary:
            return
        counts = summary["counts"]
        msgs = self.msgs
        parts = [msgs("run.count", n=counts[k], status=msgs(f"run.status.{k}"))
                 for k in ("passed", "failed", "error", "skipped", "transport") if counts.get(k)]
        line = msgs("run.summary", scripts=summary["scripts"],
                    counts=msgs("run.count_separator").join(parts) or msgs("run.none_run"), apdus=summary["apdus"],
                    checks=summary["checks"], failures=summary["failures"], seconds=f"{summary['seconds']:.2f}")
        colour = "1;32" if summary["exit"] == 0 else "1;31"
        print(self.s(colour, f"== {line}"), file=self.out)
        if self.failures and not self.quiet:
            print(msgs("run.failed_list"), file=self.out)
        for failure in self.failures:
            print(f"  {failure}", file=self.out)


class JsonReporter:
    """One JSON object per line: script, exchange, check, message, error, end, summary events."""

    def __init__(self, out, lang: str = "en", show_keys: bool = False):
        self.out = out
        self.lang = lang
        self.show_keys = show_keys
        self.script = None

    def _emit(self, event: str, **fields) -> None:
        self.out.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
        self.out.flush()

    def start_run(self, info: dict) -> None:
        self._emit("run", **info)

    def start_script(self, path: str) -> None:
        self.script = path
        self._emit("script", file=path)

    def exchange(self, ev) -> None:
        dc = decode_command(ev.command, self.show_keys)
        fields = decode_response(ev.original or ev.command, ev.data)
        self._emit("exchange", file=ev.pos.file, line=ev.pos.line,
                   command=ev.command.hex().upper() if self.show_keys else apdu_hex(ev.command),
                   name=dc.title(self.lang), command_fields={f.name: f.hex() for f in dc.fields},
                   response=ev.response.hex().upper(), data=ev.data.hex().upper(), sw=f"{ev.sw:04X}",
                   meaning=describe_sw(ev.sw, self.lang),
                   response_fields={f.name: f.hex() for f in fields if f.name != "data"},
                   ms=round(ev.seconds * 1000, 3), note=ev.note, title=ev.title)

    def check(self, ev) -> None:
        self._emit("check", file=ev.pos.file, line=ev.pos.line, ok=ev.ok, expected=ev.expected, actual=ev.actual,
                   message=ev.message)

    def message(self, ev) -> None:
        self._emit("message", file=ev.pos.file, line=ev.pos.line, text=ev.text)

    def error(self, exc) -> None:
        pos = getattr(exc, "pos", None)
        self._emit("error", file=pos.file if pos else self.script, line=pos.line if pos else None,
                   column=pos.col if pos else None, message=getattr(exc, "message", str(exc)),
                   kind="script" if hasattr(exc, "pos") else "transport")

    def end_script(self, result) -> None:
        self._emit("end", file=result.path, status=result.status, checks=result.checks, failures=result.failures,
                   apdus=result.apdus, seconds=round(result.seconds, 4), error=result.error or None,
                   skipped=result.skipped or None)

    def end_run(self, summary: dict) -> None:
        self._emit("summary", **summary)


class JUnitReporter:
    """JUnit XML: one ``testsuite`` per script, one ``testcase`` per checked line; the trace in system-out."""

    def __init__(self, path, lang: str = "en", show_keys: bool = False):
        self.path = Path(path)
        self.lang = lang
        self.show_keys = show_keys
        self.suites: list = []
        self.write_error = ""  # why the report could not be written, if it could not
        self._trace = None
        self._titles: dict = {}

    def start_run(self, info: dict) -> None:
        self.info = info

    def start_script(self, path: str) -> None:
        self._buffer = io.StringIO()
        self._trace = HumanReporter(self._buffer, self._buffer, color=False, lang=self.lang, summary=False)
        self._trace.start_script(path)
        self._titles = {}

    def exchange(self, ev) -> None:
        self._trace.exchange(ev)
        key = (ev.pos.file, ev.pos.line)
        if key not in self._titles:
            dc = decode_command(ev.command, self.show_keys)
            self._titles[key] = ev.title or dc.title(self.lang)

    def check(self, ev) -> None:
        self._trace.check(ev)

    def message(self, ev) -> None:
        self._trace.message(ev)

    def error(self, exc) -> None:
        self._trace.error(exc)

    def end_script(self, result) -> None:
        self._trace.end_script(result)
        self.suites.append((result, self._buffer.getvalue(), dict(self._titles)))

    def add_static_error(self, path: str, exc) -> None:
        """A script that failed to parse: a suite with one error case."""
        from .runner import ScriptResult

        result = ScriptResult(path, "error", error=str(exc))
        result.cases.append((str(exc), getattr(exc, "pos", None)))
        self.suites.append((result, "", {}))

    def end_run(self, summary: dict) -> None:
        root = ET.Element("testsuites", name="cardos run")
        totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        total_time = 0.0
        for result, trace, titles in self.suites:
            suite = ET.SubElement(root, "testsuite", name=result.path)
            classname = _classname(result.path)
            counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
            for case in result.cases:
                counts["tests"] += 1
                if isinstance(case, tuple):  # an error: (text, pos)
                    text, pos = case
                    line = f"line {pos.line}: " if pos is not None and getattr(pos, "line", 0) else ""
                    tc = ET.SubElement(suite, "testcase", name=f"{line}error", classname=classname, time="0")
                    ET.SubElement(tc, "error", message=text.splitlines()[0], type="error").text = text
                    counts["errors"] += 1
                    continue
                title = titles.get((case.pos.file, case.pos.line), "")
                expected = (case.expected if case.expected.startswith(("expect ", "verified")) else
                            f"=> {case.expected}" if case.expected else "fail")
                name = f"line {case.pos.line}: {title + ' ' if title else ''}{expected}"
                if case.pos.file != result.path:
                    name = f"{case.pos.file}:{case.pos.line}: {title + ' ' if title else ''}{expected}"
                tc = ET.SubElement(suite, "testcase", name=name, classname=classname, time="0")
                if not case.ok:
                    text = case.message or f"expected {case.expected}, got {case.actual}"
                    ET.SubElement(tc, "failure", message=text, type="expectation").text = \
                        f"{case.pos.file}:{case.pos.line}: {text}"
                    counts["failures"] += 1
            if result.status == "skipped":
                tc = ET.SubElement(suite, "testcase", name="script", classname=classname, time="0")
                ET.SubElement(tc, "skipped", message=result.skipped)
                counts["tests"] += 1
                counts["skipped"] += 1
            if counts["tests"] == 0:  # a script without checks passes if it ran through
                ET.SubElement(suite, "testcase", name="run", classname=classname, time=f"{result.seconds:.4f}")
                counts["tests"] = 1
            for k, v in counts.items():
                suite.set(k, str(v))
                totals[k] += v
            suite.set("time", f"{result.seconds:.4f}")
            total_time += result.seconds
            if trace:
                ET.SubElement(suite, "system-out").text = trace
        for k, v in totals.items():
            root.set(k, str(v))
        root.set("time", f"{total_time:.4f}")
        tree = ET.ElementTree(root)
        if hasattr(ET, "indent"):
            ET.indent(tree)
        buffer = io.BytesIO()
        tree.write(buffer, encoding="utf-8", xml_declaration=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_private(self.path, buffer.getvalue())  # the trace inside may hold key references: 0600
        except OSError as exc:
            self.write_error = f"--junit-xml {self.path}: {write_failure(exc)}"
            print(f"cardos run: error: {self.write_error}", file=sys.stderr)


def _classname(path: str) -> str:
    p = Path(path).with_suffix("")
    parts = [part for part in p.parts if part not in (p.anchor, "..", ".")]
    return ".".join(parts) or "script"


class Reporters:
    """Fan events out to several reporters."""

    def __init__(self, *reporters):
        self.reporters = [r for r in reporters if r is not None]

    def __getattr__(self, name):
        def fan_out(*args):
            for r in self.reporters:
                getattr(r, name)(*args)
        return fan_out
