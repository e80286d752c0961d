"""Bounds on what one script may cost, so a hostile script stops with one line
instead of exhausting memory or time (the defaults are in docs/scripts.md).

* files: each script or included file is a regular file of at most
  ``file_size`` bytes (``include /dev/zero`` or a FIFO is refused unopened);
* includes: nested at most ``include_depth`` deep; all the text read for one
  script (each include counted every time it is included) at most
  ``expanded_size`` bytes and ``expanded_statements`` statements — nine tiny
  files including each other ten times would otherwise expand to billions;
* values: no value (variable, expression, APDU, echo text) longer than
  ``value_size`` bytes, all variables together at most ``variables_size`` —
  a variable doubling itself would otherwise fill memory;
* running: at most ``statements`` statements run, counted before anything is
  sent with every ``repeat`` count multiplied out (``cardos run
  --max-statements N`` raises it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..boundedfile import MIB, size_text
from .lexer import Pos, ScriptError

MAX_STATEMENTS_OPTION = "--max-statements"


@dataclass(frozen=True)
class ScriptLimits:
    include_depth: int = 16
    file_size: int = 1 * MIB
    expanded_size: int = 16 * MIB
    expanded_statements: int = 50_000
    value_size: int = 1 * MIB
    variables_size: int = 16 * MIB
    statements: int = 1_000_000


class Expansion:
    """What parsing one top-level script has read so far, includes counted each time."""

    def __init__(self, limits: ScriptLimits):
        self.limits = limits
        self.size = 0
        self.statements = 0
        self._real_paths: dict = {}

    def real_path(self, path: str) -> str:
        """``os.path.realpath``, once per name (the include-cycle check asks for every file on the stack)."""
        if path not in self._real_paths:
            self._real_paths[path] = os.path.realpath(path)
        return self._real_paths[path]

    def add_file(self, size: int, pos: Pos | None) -> None:
        self.size += size
        if self.size > self.limits.expanded_size:
            raise ScriptError(f"includes expand to more than {size_text(self.limits.expanded_size)} of script text",
                              pos)

    def add_statement(self, pos: Pos) -> None:
        self.statements += 1
        if self.statements > self.limits.expanded_statements:
            raise ScriptError(f"includes expand to more than {self.limits.expanded_statements} statements", pos)

    def check_depth(self, depth: int, pos: Pos) -> None:
        if depth > self.limits.include_depth:
            raise ScriptError(f"include nesting deeper than {self.limits.include_depth}", pos)


def check_value_size(size: int, limit: int, pos: Pos | None) -> None:
    """A value being built has reached ``size`` bytes: stop it past ``limit``."""
    if size > limit:
        raise ScriptError(f"a value longer than {size_text(limit)} (the limit for one value)", pos)


def runs(stmt) -> int:
    """How many statements running ``stmt`` can execute (itself, repeat bodies multiplied, includes)."""
    body = getattr(stmt, "body", None)
    if body is not None:
        return 1 + getattr(stmt, "count", 1) * runs(body)
    included = getattr(stmt, "script", None)
    if included is not None:
        return 1 + sum(runs(s) for s in included.statements)
    return 1


def check_runs(statements: list, limit: int, budget: int | None = None) -> None:
    """Refuse, before anything runs, a script that could run more than ``limit`` statements;
    the error points at the statement (inside includes) where the count passes the limit."""
    left = limit if budget is None else budget
    for stmt in statements:
        n = runs(stmt)
        if n > left:
            included = getattr(stmt, "script", None)
            if included is not None and getattr(stmt, "body", None) is None:
                check_runs(included.statements, limit, left - 1)
            raise ScriptError(f"the script would run more than {limit} statements here (repeat counts "
                              f"multiplied); {MAX_STATEMENTS_OPTION} N raises the limit", stmt.pos)
        left -= n
