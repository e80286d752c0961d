"""Expressions: literal hex, strings, variables, key references, function calls.

Every value is a byte string. Juxtaposition concatenates: ``${a} 0000
fixed80(${b})``. Where a function wants a *number* (lengths, offsets,
amounts), digits are read as decimal, ``0x..`` as hex, and any other value
as a big-endian unsigned integer.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from ..boundedfile import size_text
from .lexer import Pos, ScriptError
from .limits import ScriptLimits, check_value_size

_HEX = re.compile(r"[0-9A-Fa-f]*")


@dataclass
class Node:
    pos: Pos


@dataclass
class Lit(Node):
    text: str  # hex (``00A4``, ``0x1F``) or decimal digits in a number argument


@dataclass
class Num(Node):
    text: str  # a decimal number with a point: 10.00


@dataclass
class Str(Node):
    value: str


@dataclass
class Var(Node):
    name: str
    index: tuple | None = None  # (start, stop, single) of a slice ``[a:b]`` / ``[i]``


@dataclass
class KeyRef(Node):
    name: str


@dataclass
class Call(Node):
    name: str
    args: list = field(default_factory=list)


@dataclass
class Concat(Node):
    items: list = field(default_factory=list)


@dataclass
class LcMark(Node):
    """``{lc}`` in an APDU: the length of the bytes after it (up to a ``/`` Le separator)."""


@dataclass
class LeSep(Node):
    """``/`` in an APDU: what follows is Le (not counted by ``{lc}``)."""


def walk(node):
    """Yield ``node`` and every node inside it."""
    yield node
    if isinstance(node, Call):
        for arg in node.args:
            yield from walk(arg)
    elif isinstance(node, Concat):
        for item in node.items:
            yield from walk(item)


def parse_slice(text: str, pos: Pos) -> tuple:
    """``[a:b]`` / ``[i]`` / ``[a:]`` / ``[:b]`` (decimal, negative from the end) → (start, stop, single)."""
    body = text.strip()[1:-1].strip()
    try:
        if ":" in body:
            a, b = body.split(":", 1)
            return (int(a) if a.strip() else None, int(b) if b.strip() else None, False)
        return (int(body), None, True)
    except ValueError:
        raise ScriptError(f"bad slice {text!r} (write [start:end] with decimal byte offsets)", pos) from None


def apply_slice(value: bytes, index: tuple, pos: Pos, what: str) -> bytes:
    start, stop, single = index
    n = len(value)
    if single:
        i = start + n if start < 0 else start
        if not 0 <= i < n:
            raise ScriptError(f"{what}[{start}] is outside its {n} bytes", pos)
        return value[i:i + 1]
    s = 0 if start is None else (start + n if start < 0 else start)
    e = n if stop is None else (stop + n if stop < 0 else stop)
    if not 0 <= s <= e <= n:
        shown = f"{'' if start is None else start}:{'' if stop is None else stop}"
        raise ScriptError(f"{what}[{shown}] is outside its {n} bytes", pos)
    return value[s:e]


def hex_bytes(text: str, pos: Pos) -> bytes:
    """A hex literal (optional ``0x``) → bytes; bad digits are reported at their column."""
    body, offset = text, 0
    if text[:2] in ("0x", "0X") and len(text) > 2:
        body, offset = text[2:], 2
    good = _HEX.match(body).end()
    if good < len(body):
        bad = body[good]
        hint = " (wildcards X/? only go in expected data after =>)" if bad in "Xx?" else ""
        raise ScriptError(f"bad hex digit {bad!r} in {text!r}{hint}", Pos(pos.file, pos.line, pos.col + offset + good))
    if len(body) % 2:
        raise ScriptError(f"odd number of hex digits in {text!r}", pos)
    return bytes.fromhex(body)


class Variables(dict):
    """A script's variables, with the total size of their values kept under a limit."""

    def __init__(self, initial: dict, limit: int):
        super().__init__()
        self.limit = limit
        self.size = 0
        self.update(initial)

    def __setitem__(self, name: str, value: bytes) -> None:
        grown = self.size + len(value) - len(self.get(name, b""))
        if grown > self.limit:
            raise ScriptError(f"the variables would hold more than {size_text(self.limit)} (the limit for all "
                              f"variables together; setting ${{{name}}})")
        super().__setitem__(name, value)
        self.size = grown

    def update(self, other=(), **more) -> None:
        for name, value in dict(other, **more).items():
            self[name] = value

    def pop(self, name: str, *default):
        if name in self:
            self.size -= len(self[name])
        return super().pop(name, *default)


class Context:
    """What evaluation sees: variables, the key source, the clock, the size limits."""

    def __init__(self, variables: dict | None = None, keys=None, now=None, randbytes=None,
                 limits: ScriptLimits | None = None):
        self.limits = limits or ScriptLimits()
        self.vars: dict = Variables(variables or {}, self.limits.variables_size)
        self.keys = keys  # a keysource.KeySource or None
        self._now = now  # fixed datetime or None
        self.randbytes = randbytes or secrets.token_bytes

    def bounded(self, size: int, pos: Pos | None) -> None:
        """A value being built has reached ``size`` bytes: stop it past the limit for one value."""
        check_value_size(size, self.limits.value_size, pos)

    def now(self) -> datetime:
        return self._now or datetime.now()

    def key(self, ref: KeyRef) -> bytes:
        if self.keys is None:
            raise ScriptError(f"@{ref.name}: no key set (give --keys FILE, or a `keys NAME` line)", ref.pos)
        return self.keys.lookup(ref.name, ref.pos)


def evaluate(node: Node, ctx: Context) -> bytes:
    if isinstance(node, Lit):
        return hex_bytes(node.text, node.pos)
    if isinstance(node, Concat):
        return join_bounded((evaluate(item, ctx) for item in node.items), ctx, node.pos)
    if isinstance(node, Var):
        try:
            value = ctx.vars[node.name]
        except KeyError:
            raise ScriptError(f"unknown variable ${{{node.name}}}", node.pos) from None
        if node.index is not None:
            value = apply_slice(value, node.index, node.pos, f"${{{node.name}}}")
        return value
    if isinstance(node, Str):
        return node.value.encode("utf-8")
    if isinstance(node, KeyRef):
        return ctx.key(node)
    if isinstance(node, Call):
        from .functions import call

        return call(node, ctx)
    if isinstance(node, Num):
        raise ScriptError(f"{node.text} is a decimal number, not bytes (use amount({node.text}))", node.pos)
    raise ScriptError(f"{type(node).__name__} is not a value here", node.pos)


def join_bounded(values, ctx: Context, pos: Pos | None) -> bytes:
    """``b"".join(values)``, stopped as soon as the result would pass the limit for one value."""
    out, size = [], 0
    for value in values:
        size += len(value)
        ctx.bounded(size, pos)
        out.append(value)
    return b"".join(out)


def _decimal(text: str, pos: Pos) -> int:
    if len(text) > 30:  # more than any amount, length or offset; int() refuses thousands of digits anyway
        raise ScriptError(f"{text[:12]}...: a number of {len(text)} digits is too large", pos)
    return int(text)


def evaluate_int(node: Node, ctx: Context) -> int:
    """A number argument: decimal digits, ``0x`` hex, or bytes read big-endian."""
    if isinstance(node, Concat) and len(node.items) == 1:
        node = node.items[0]
    if isinstance(node, Lit) and node.text.isdigit():
        return _decimal(node.text, node.pos)
    if isinstance(node, Lit) and node.text[:2] in ("0x", "0X"):
        return int.from_bytes(hex_bytes(node.text, node.pos), "big")
    if isinstance(node, Num):
        raise ScriptError(f"{node.text}: a whole number is needed here", node.pos)
    return int.from_bytes(evaluate(node, ctx), "big")


def evaluate_amount(node: Node, ctx: Context) -> int:
    """An amount in fen (分): ``1000`` (fen), ``10.00`` (yuan, point required), or 4 bytes."""
    if isinstance(node, Concat) and len(node.items) == 1:
        node = node.items[0]
    if isinstance(node, Num):
        whole, _, frac = node.text.partition(".")
        if len(frac) > 2:
            raise ScriptError(f"{node.text}: at most two decimals (fen)", node.pos)
        return _decimal(whole, node.pos) * 100 + int(frac.ljust(2, "0"))
    return evaluate_int(node, ctx)
