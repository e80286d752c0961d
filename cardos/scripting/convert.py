"""Converters between cardos scripts and pcsc-tools ``scriptor`` / Java Card ``apdutool`` files.

* from scriptor: hex lines (spaced or not, ``\\`` continuation), ``#``
  comments, and lines containing ``reset`` / ``exit`` (scriptor matches the
  words anywhere in a line; the output has them as whole lines).
* from apdutool: ``;``-terminated statements, ``//`` and ``/* */``
  comments, bytes as ``0x..`` or decimal, positional
  ``CLA INS P1 P2 Lc [data] [Le]``; ``powerup;`` becomes ``reset`` (the
  first one is implied), ``powerdown;`` a comment, other directives too.
* to scriptor / apdutool: every APDU must be computable without a card
  (literals, functions, ``set`` of such values, keys when ``--keys`` is
  given); expectations become comments. Lines that need a response (captures
  used later, steps, ``protect``, ``if``) cannot be converted and are
  reported with their position.
"""
from __future__ import annotations

import re

from ..apdu import CardError, parse
from ..redact import apdu_hex
from .expr import Context, evaluate
from .lexer import Pos, ScriptError
from .parser import (
    Assert,
    Assign,
    Delay,
    Echo,
    Exit,
    Fail,
    If,
    Include,
    Option,
    Repeat,
    Require,
    Reset,
    Script,
    Send,
    StepCall,
)

FORMATS = ("cardos", "scriptor", "apdutool")


def _spaced(b: bytes) -> str:
    return " ".join(f"{x:02X}" for x in b)


# -- from scriptor ---------------------------------------------------------------------

def from_scriptor(text: str, path: str = "<scriptor>") -> str:
    out = [f"# converted from scriptor: {path}"]
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if pending:
            line = pending + " " + line
        else:
            start = number
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        pending = ""
        if not line:
            out.append("")
            continue
        if line.startswith("#"):
            out.append(line)
            continue
        lowered = line.lower()
        if "reset" in lowered:
            out.append("reset")
            continue
        if "exit" in lowered:
            out.append("exit")
            continue
        tokens = line.split() if " " in line else [line]
        values = b""
        for token in tokens:
            # scriptor reads a spaced token as one byte; a single digit is a byte, longer tokens are byte groups
            if not re.fullmatch(r"[0-9A-Fa-f]+", token) or (len(token) % 2 and len(token) > 1):
                col = raw.find(token) + 1 if token in raw else 1
                raise ScriptError(f"not hex: {token!r}", Pos(path, start, max(col, 1)))
            values += bytes.fromhex(token.rjust(2, "0"))
        out.append(_spaced(values))
    return "\n".join(out) + "\n"


# -- from apdutool -------------------------------------------------------------------------

def _apdutool_statements(text: str, path: str):
    """Yield (pos, statement text) with comments removed."""
    i, line, col = 0, 1, 1
    current, start = [], None
    n = len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ScriptError("unterminated /* comment", Pos(path, line, col))
            chunk = text[i:end + 2]
            line += chunk.count("\n")
            col = len(chunk) - chunk.rfind("\n") if "\n" in chunk else col + len(chunk)
            i = end + 2
            continue
        if c == ";":
            yield (start or Pos(path, line, col)), "".join(current).strip()
            current, start = [], None
        else:
            if start is None and not c.isspace():
                start = Pos(path, line, col)
            current.append(c)
        if c == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    if "".join(current).strip():
        raise ScriptError("statement without a closing ';'", start)


def from_apdutool(text: str, path: str = "<apdutool>") -> str:
    out = [f"# converted from apdutool: {path}"]
    powered = False
    for pos, statement in _apdutool_statements(text, path):
        if not statement:
            continue
        word = statement.split()[0].lower()
        if word == "powerup":
            if powered:
                out.append("reset")
            powered = True
            continue
        if word == "powerdown":
            out.append("# powerdown")
            continue
        if re.match(r"[A-Za-z_]", statement) and not statement.lower().startswith("0x"):
            out.append(f"# apdutool directive not converted: {statement}")
            continue
        values = []
        for token in statement.replace(",", " ").split():
            try:
                value = int(token, 16) if token.lower().startswith("0x") else int(token, 10)
            except ValueError:
                raise ScriptError(f"not a byte: {token!r}", pos) from None
            if not 0 <= value <= 255:
                raise ScriptError(f"byte out of range: {token!r}", pos)
            values.append(value)
        if len(values) < 5:
            raise ScriptError("an apdutool APDU is CLA INS P1 P2 LC [data] [LE]", pos)
        lc = values[4]
        data = values[5:5 + lc]
        rest = values[5 + lc:]
        if len(data) < lc or len(rest) > 1:
            raise ScriptError(f"LC {lc:#04x} does not match the {len(values) - 5} byte(s) after it", pos)
        apdu = bytes(values[:4]) + (bytes((lc,)) + bytes(data) if lc else b"") + bytes(rest)
        out.append(_spaced(apdu))
    return "\n".join(out) + "\n"


# -- to scriptor / apdutool ------------------------------------------------------------------------

class _Static:
    """Walks a parsed script and evaluates what needs no card."""

    def __init__(self, keys=None, now=None):
        self.ctx = Context({}, keys, now)
        self.dynamic: dict = {}  # variable -> position of the line that sets it from a response

    def apdus(self, script: Script):
        """Yield ("apdu", bytes, stmt) / ("comment", text) / ("reset"/"exit", None)."""
        for stmt in script.statements:
            yield from self._stmt(stmt)

    def _eval(self, node, stmt):
        from .expr import Var, walk

        for n in walk(node):
            if isinstance(n, Var) and n.name not in self.ctx.vars:
                where = self.dynamic.get(n.name)
                reason = f"set from a card response at {where}" if where else "set from a card response"
                raise ScriptError(f"${{{n.name}}} is {reason}; this line cannot be written without a card", n.pos)
        return evaluate(node, self.ctx)

    def _stmt(self, stmt):
        if isinstance(stmt, Send):
            if stmt.protect is not None:
                raise ScriptError("protect needs the card's challenge; it cannot be written without a card",
                                  stmt.pos)
            from .runner import build_apdu

            for part in stmt.parts:
                if not _marker(part):
                    self._eval(part, stmt)
            apdu = build_apdu(stmt.parts, self.ctx)
            for cap in stmt.captures:
                self.dynamic[cap.name] = f"{cap.pos.file}:{cap.pos.line}"
                self.ctx.vars.pop(cap.name, None)
            yield "apdu", apdu, stmt
        elif isinstance(stmt, Assign):
            try:
                self.ctx.vars[stmt.name] = self._eval(stmt.value, stmt)
                self.dynamic.pop(stmt.name, None)
            except ScriptError:
                self.ctx.vars.pop(stmt.name, None)
                self.dynamic[stmt.name] = f"{stmt.pos.file}:{stmt.pos.line}"
        elif isinstance(stmt, Reset):
            yield "reset", None, stmt
        elif isinstance(stmt, Exit):
            yield "exit", None, stmt
        elif isinstance(stmt, Include):
            yield "comment", f"include {stmt.path}", stmt
            yield from self.apdus(stmt.script)
        elif isinstance(stmt, Echo):
            yield "comment", "".join(p if isinstance(p, str) else f"${{{p.name}}}" for p in stmt.template), stmt
        elif isinstance(stmt, Repeat):
            for _ in range(stmt.count):
                yield from self._stmt(stmt.body)
        elif isinstance(stmt, (Delay, Option, Require)):
            yield "comment", f"(not converted: {type(stmt).__name__.lower()} at line {stmt.pos.line})", stmt
        elif isinstance(stmt, (StepCall, If, Assert, Fail)):
            what = {StepCall: "a step", If: "if", Assert: "expect", Fail: "fail"}[type(stmt)]
            raise ScriptError(f"{what} needs the card's answers; it cannot be written without a card", stmt.pos)


def _marker(part) -> bool:
    from .expr import LcMark, LeSep

    return isinstance(part, (LcMark, LeSep))


def to_scriptor(script: Script, keys=None, now=None) -> str:
    out = [f"# {script.path} converted for scriptor (pcsc-tools) by cardos",
           "# expectations are kept as comments; scriptor does not fetch 61XX responses by itself"]
    for kind, value, stmt in _Static(keys, now).apdus(script):
        if kind == "apdu":
            out.append(_spaced(value))
            if stmt.expect is not None:
                out.append(f"# => {stmt.expect.text()}")
        elif kind in ("reset", "exit"):
            out.append(kind)
        else:
            out.append(f"# {value}")
    return "\n".join(out) + "\n"


def to_apdutool(script: Script, keys=None, now=None) -> str:
    out = [f"// {script.path} converted for apdutool by cardos",
           "// layout CLA INS P1 P2 LC [data] LE; LE 0x7F where the APDU has none", "powerup;"]
    for kind, value, stmt in _Static(keys, now).apdus(script):
        if kind == "apdu":
            try:
                cmd = parse(value)
            except CardError:
                raise ScriptError(f"{apdu_hex(value)} is not a well-formed APDU", stmt.pos) from None
            if cmd.extended:
                raise ScriptError("apdutool scripts hold short APDUs only", stmt.pos)
            body = bytes(value[:4]) + bytes((len(cmd.data),)) + cmd.data
            le = value[-1] if cmd.le is not None else 0x7F
            out.append(" ".join(f"0x{b:02X}" for b in body + bytes((le,))) + ";")
            if stmt.expect is not None:
                out.append(f"// => {stmt.expect.text()}")
        elif kind == "reset":
            out += ["powerdown;", "powerup;"]
        elif kind == "exit":
            break
        else:
            out.append(f"// {value}")
    out.append("powerdown;")
    return "\n".join(out) + "\n"


def convert(text: str, path: str, source: str, target: str, keys=None, now=None, limits=None) -> str:
    """Convert ``text`` from ``source`` to ``target`` format (``cardos``, ``scriptor``, ``apdutool``);
    ``limits``: :class:`~.limits.ScriptLimits` (repeats are written out, so they bound the output too)."""
    from pathlib import Path

    from .parser import parse_text

    if source == "scriptor":
        text = from_scriptor(text, path)
    elif source == "apdutool":
        text = from_apdutool(text, path)
    if target == "cardos":
        if source == "cardos":
            parse_text(text, path, Path(path).parent, limits)  # validate
        return text
    script = parse_text(text, path, Path(path).parent, limits)
    return to_scriptor(script, keys, now) if target == "scriptor" else to_apdutool(script, keys, now)
