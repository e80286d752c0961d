"""Expected status words and response data.

SW: four hex digits where ``X`` or ``?`` matches any nibble, alternatives
separated by ``|``: ``9000``, ``63CX``, ``9000|6283``, ``61XX``; ``ok`` is
``90XX|61XX``. Data: bytes where each nibble may be ``X``/``?``, ``..`` for
any run of bytes (also none), ``${var}`` for a variable's bytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..i18n import Phrase
from .expr import Context, Var, evaluate
from .lexer import Pos, ScriptError

_NIBBLES = re.compile(r"^[0-9A-Fa-fXx?]+$")
OK_ALTERNATIVES = ("90XX", "61XX")


def _nibble_mask(text: str) -> tuple:
    """``6X`` → (value 0x60, mask 0xF0)."""
    value = mask = 0
    for c in text:
        value <<= 4
        mask <<= 4
        if c not in "Xx?":
            value |= int(c, 16)
            mask |= 0xF
    return value, mask


def sw_alternative(text: str, pos: Pos):
    if len(text) != 4 or not _NIBBLES.match(text):
        raise ScriptError(f"bad status word {text!r} (four hex digits, X or ? for any nibble: 9000, 63CX)", pos)
    return _nibble_mask(text)


@dataclass
class SwPattern:
    alternatives: list  # (text, value, mask) or Var
    pos: Pos

    @classmethod
    def ok(cls, pos: Pos) -> "SwPattern":
        return cls([(t, *_nibble_mask(t)) for t in OK_ALTERNATIVES], pos)

    @classmethod
    def success(cls, pos: Pos) -> "SwPattern":
        return cls([("9000", 0x9000, 0xFFFF)], pos)

    def text(self) -> str:
        return "|".join(a[0].upper() if isinstance(a, tuple) else f"${{{a.name}}}" for a in self.alternatives)

    def matches(self, sw: int, ctx: Context) -> bool:
        for alt in self.alternatives:
            if isinstance(alt, tuple):
                _text, value, mask = alt
                if sw & mask == value:
                    return True
            else:
                want = evaluate(alt, ctx)
                if len(want) != 2:
                    raise ScriptError(f"${{{alt.name}}} is {len(want)} bytes, a status word is 2", alt.pos)
                if int.from_bytes(want, "big") == sw:
                    return True
        return False


ANY = "any"


@dataclass
class DataPattern:
    items: list = field(default_factory=list)  # (value, mask) | ANY | Var
    pos: Pos | None = None

    def text(self) -> str:
        out = []
        for item in self.items:
            if item == ANY:
                out.append("..")
            elif isinstance(item, Var):
                out.append(f"${{{item.name}}}")
            else:
                value, mask = item
                out.append("".join("X" if not (mask >> s) & 0xF else f"{(value >> s) & 0xF:X}" for s in (4, 0)))
        return "[" + " ".join(out) + "]"

    def resolve(self, ctx: Context) -> tuple:
        items = []
        for item in self.items:
            if isinstance(item, Var):
                items.extend((b, 0xFF) for b in evaluate(item, ctx))
            else:
                items.append(item)
        return tuple(items)

    def match(self, data: bytes, ctx: Context) -> str | None:
        """``None`` when ``data`` matches, else why not."""
        items = self.resolve(ctx)
        ok, furthest = _match(items, bytes(data))
        if ok:
            return None
        fixed = [i for i in items if i != ANY]
        if ANY not in items:
            for k in range(min(len(fixed), len(data))):
                if data[k] & fixed[k][1] != fixed[k][0]:
                    return Phrase("pattern.byte", k=k, got=f"{data[k]:02X}", want=_show(fixed[k]))
            return Phrase("pattern.length", n=len(data), want=len(fixed))
        if furthest < len(data):
            return Phrase("pattern.from_byte", k=furthest, got=f"{data[furthest]:02X}")
        return Phrase("pattern.too_short", n=len(data))


def _show(item) -> str:
    value, mask = item
    return "".join("X" if not (mask >> s) & 0xF else f"{(value >> s) & 0xF:X}" for s in (4, 0))


def _match(items: tuple, data: bytes) -> tuple:
    furthest = 0

    @lru_cache(maxsize=None)
    def at(i: int, j: int) -> bool:
        nonlocal furthest
        furthest = max(furthest, j)
        if i == len(items):
            return j == len(data)
        item = items[i]
        if item == ANY:
            return any(at(i + 1, k) for k in range(j, len(data) + 1))
        value, mask = item
        return j < len(data) and data[j] & mask == value and at(i + 1, j + 1)

    return at(0, 0), furthest


def data_pattern(tokens: list, pos: Pos) -> DataPattern:
    """Tokens between ``[`` and ``]`` → a pattern."""
    from .expr import parse_slice

    items: list = []
    for tok in tokens:
        if tok.is_op(".."):
            items.append(ANY)
        elif tok.kind == "var":
            name, _, rest = tok.text.partition("[")
            index = parse_slice("[" + rest, tok.pos) if rest else None
            items.append(Var(tok.pos, name, index))
        elif tok.kind == "string":
            items.extend((b, 0xFF) for b in tok.text.encode("utf-8"))
        elif tok.kind == "word" and _NIBBLES.match(tok.text):
            text = tok.text
            if len(text) % 2:
                raise ScriptError(f"odd number of hex digits in {tok.text!r}", tok.pos)
            items.extend(_nibble_mask(text[k:k + 2]) for k in range(0, len(text), 2))
        else:
            raise ScriptError(f"{tok.raw!r} in expected data (use hex bytes, XX, .., \"text\" or ${{var}})", tok.pos)
    return DataPattern(items, pos)
