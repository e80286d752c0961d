"""Script text → logical lines of tokens, each token knowing its file:line:column.

A logical line is one physical line, or several joined by a trailing ``\\``
(scriptor's continuation). Comments start with ``#`` or ``//`` at the start
of a line or after white space, outside a quoted string.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pos:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class ScriptError(Exception):
    """A script that cannot run: syntax, bad hex, unknown name, ... with its position."""

    def __init__(self, message: str, pos: Pos | None = None):
        super().__init__(message)
        self.message = message
        self.pos = pos

    def __str__(self) -> str:
        return f"{self.pos}: error: {self.message}" if self.pos else f"error: {self.message}"


@dataclass(frozen=True)
class Token:
    kind: str  # word number var key string brace op
    text: str  # for var/key: the name (with a slice for var); string: the value
    pos: Pos
    end: int = 0  # column just after the token (same physical line)
    raw: str = ""  # the source text of the token

    def is_op(self, *ops: str) -> bool:
        return self.kind == "op" and self.text in ops

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*"
_TOKEN = re.compile(r"""
  (?P<ws>\s+)
| (?P<string>"(?:[^"\\]|\\.)*")
| (?P<var>\$\{[^}]*\}|\$""" + NAME + r""")
| (?P<key>@""" + NAME + r""")
| (?P<brace>\{[^}]*\})
| (?P<number>\d+\.\d+(?![A-Za-z0-9_?.]))
| (?P<word>[A-Za-z0-9_?]+(?:\.[A-Za-z_][A-Za-z0-9_?]*)*)
| (?P<op>=>|->|==|!=|\.\.|[=|(),\[\]:/\-])
""", re.VERBOSE)
_VAR_BODY = re.compile(r"^(" + NAME + r")(\[[^\]]*\])?$")


def _strip_comment(text: str) -> str:
    in_string = False
    i = 0
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif (c == "#" or text.startswith("//", i)) and (i == 0 or text[i - 1].isspace()):
            return text[:i]
        i += 1
    return text


def tokenize_piece(text: str, file: str, line: int, col0: int = 1) -> list[Token]:
    """Tokens of one (comment-stripped) physical line piece."""
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        where = Pos(file, line, col0 + pos)
        if m is None:
            c = text[pos]
            if c == '"':
                raise ScriptError("unterminated string", where)
            if c == "$":
                raise ScriptError("bad variable reference (write ${name} or $name)", where)
            raise ScriptError(f"unexpected character {c!r}", where)
        kind = m.lastgroup
        raw = m.group()
        end = col0 + m.end()
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", raw[1:-1])
            out.append(Token("string", value, where, end, raw))
        elif kind == "var":
            body = raw[2:-1] if raw.startswith("${") else raw[1:]
            if not _VAR_BODY.match(body):
                raise ScriptError(f"bad variable reference {raw!r}", where)
            out.append(Token("var", body, where, end, raw))
        elif kind == "key":
            out.append(Token("key", raw[1:], where, end, raw))
        elif kind == "brace":
            out.append(Token("brace", raw[1:-1].strip(), where, end, raw))
        else:
            out.append(Token(kind, raw, where, end, raw))
    return out


@dataclass
class Line:
    """One logical line: its tokens and the physical source lines it spans."""

    tokens: list
    first: int  # physical line number
    text: str  # comment-stripped text of the first physical line

    @property
    def pos(self) -> Pos:
        return self.tokens[0].pos


def logical_lines(source: str, file: str) -> list[Line]:
    lines: list[Line] = []
    pending: Line | None = None
    for number, physical in enumerate(source.splitlines(), start=1):
        if number == 1 and physical.startswith("\ufeff"):
            physical = physical[1:]
        text = _strip_comment(physical).rstrip()
        continued = text.endswith("\\")
        if continued:
            text = text[:-1]
        tokens = tokenize_piece(text, file, number)
        if pending is None:
            pending = Line(tokens, number, text)
        else:
            pending.tokens.extend(tokens)
        if not continued:
            if pending.tokens:
                lines.append(pending)
            pending = None
    if pending is not None and pending.tokens:
        lines.append(pending)
    return lines
