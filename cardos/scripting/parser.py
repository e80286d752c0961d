"""Logical lines → statements (the grammar is in docs/scripts.md).

Everything that can be checked without a card is checked here or in
:func:`check`: syntax, hex digits, function names and argument counts,
step arguments, variables used before any definition, key names. A script
that fails any of these is reported as ``file:line:column`` and nothing is
sent.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..boundedfile import FileRefused, read_bounded
from .expr import (
    Call,
    Concat,
    KeyRef,
    LcMark,
    LeSep,
    Lit,
    Node,
    Num,
    Str,
    Var,
    hex_bytes,
    parse_slice,
    walk,
)
from ..textfile import TextFileProblem, read_text
from .lexer import Line, Pos, ScriptError, Token, logical_lines
from .limits import Expansion, ScriptLimits, check_runs
from .patterns import DataPattern, SwPattern, data_pattern, sw_alternative

SPECIAL_VARS = frozenset({"sw", "sw1", "sw2", "data", "response", "atr"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*$")


# -- statements ---------------------------------------------------------------------

@dataclass
class Stmt:
    pos: Pos


@dataclass
class Expect:
    pos: Pos
    sw: SwPattern
    data: DataPattern | None = None

    def text(self) -> str:
        return (f"{self.data.text()} " if self.data else "") + self.sw.text()


@dataclass
class Capture:
    pos: Pos
    name: str
    source: str
    index: tuple | None = None


@dataclass
class Protect:
    key: Node
    encrypt: bool = False
    sm4: bool = False


@dataclass
class Send(Stmt):
    parts: list
    expect: Expect | None = None
    captures: list = field(default_factory=list)
    protect: Protect | None = None
    manual_get_response: bool = False  # the script's next line fetches the response itself


@dataclass
class StepCall(Stmt):
    name: str
    args: dict
    expect: Expect | None = None
    captures: list = field(default_factory=list)


@dataclass
class Assign(Stmt):
    name: str
    value: Node


@dataclass
class Reset(Stmt):
    cold: bool = True


@dataclass
class Exit(Stmt):
    pass


@dataclass
class Include(Stmt):
    path: str
    script: "Script | None" = None


@dataclass
class Echo(Stmt):
    template: list  # str | Var


@dataclass
class Fail(Stmt):
    template: list


@dataclass
class Cond:
    pos: Pos
    left: Node
    negate: bool
    right: DataPattern

    def text(self) -> str:
        return f"{'!=' if self.negate else '=='} {self.right.text()[1:-1]}"


@dataclass
class If(Stmt):
    cond: Cond
    body: Stmt


@dataclass
class Assert(Stmt):
    cond: Cond
    text: str = ""


@dataclass
class Require(Stmt):
    backend: str


@dataclass
class Delay(Stmt):
    ms: int


@dataclass
class Repeat(Stmt):
    count: int
    body: Stmt


@dataclass
class Option(Stmt):
    name: str
    value: str


@dataclass
class Script:
    path: str
    statements: list
    keys: tuple | None = None  # (spec, pos, base directory) from a `keys` line


OPTIONS = {"get_response": ("auto", "manual")}


# -- token helpers -------------------------------------------------------------------

class _Tokens:
    def __init__(self, tokens: list, end: Pos):
        self.t = tokens
        self.i = 0
        self.end = end  # position reported for "missing ..." at the end of the line

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise ScriptError("unexpected end of line", self.end)
        self.i += 1
        return tok

    def done(self) -> bool:
        return self.i >= len(self.t)

    def expect_op(self, op: str, what: str) -> Token:
        tok = self.peek()
        if tok is None or not tok.is_op(op):
            raise ScriptError(f"expected '{op}' {what}", tok.pos if tok else self.end)
        self.i += 1
        return tok

    def rest(self) -> list:
        out = self.t[self.i:]
        self.i = len(self.t)
        return out


def _end_pos(tokens: list) -> Pos:
    last = tokens[-1]
    return Pos(last.pos.file, last.pos.line, last.end)


def _split_top(tokens: list, *ops: str) -> tuple:
    """Where each op first occurs outside brackets: {op: index}."""
    depth = 0
    cuts = {}
    for k, tok in enumerate(tokens):
        if tok.is_op("(", "["):
            depth += 1
        elif tok.is_op(")", "]"):
            depth -= 1
        elif depth == 0 and tok.kind == "op" and tok.text in ops and tok.text not in cuts:
            cuts[tok.text] = k
    return cuts


def _var(tok: Token) -> Var:
    name, _, rest = tok.text.partition("[")
    index = parse_slice("[" + rest, tok.pos) if rest else None
    return Var(tok.pos, name, index)


# -- expressions -------------------------------------------------------------------------

def _validate_bytes(node: Node) -> None:
    """Literal hex inside a bytes value must be valid now (not when the line runs)."""
    if isinstance(node, Lit):
        hex_bytes(node.text, node.pos)
    elif isinstance(node, Concat):
        for item in node.items:
            _validate_bytes(item)


def parse_atom(ts: _Tokens, in_apdu: bool = False) -> Node:
    from .functions import FUNCTIONS, check_arity

    tok = ts.next()
    if tok.kind == "word":
        nxt = ts.peek()
        if nxt is not None and nxt.is_op("("):
            ts.next()
            args = []
            if ts.peek() is not None and ts.peek().is_op(")"):
                ts.next()
            else:
                while True:
                    args.append(parse_concat(ts, (",", ")")))
                    sep = ts.next()
                    if sep.is_op(")"):
                        break
                    if not sep.is_op(","):
                        raise ScriptError(f"expected ',' or ')' in {tok.text}(...)", sep.pos)
            node = Call(tok.pos, tok.text, args)
            check_arity(node)
            fn = FUNCTIONS[tok.text.lower()]
            for k, arg in enumerate(args):
                kind = fn.params[min(k, len(fn.params) - 1)].lower()
                if kind in "b*":
                    _validate_bytes(arg)
            return node
        return Lit(tok.pos, tok.text)
    if tok.kind == "var":
        return _var(tok)
    if tok.kind == "key":
        return KeyRef(tok.pos, tok.text)
    if tok.kind == "string":
        return Str(tok.pos, tok.text)
    if tok.kind == "number":
        return Num(tok.pos, tok.text)
    if tok.is_op("("):
        inner = parse_concat(ts, (")",))
        ts.expect_op(")", "to close '('")
        return inner
    if tok.kind == "brace":
        if tok.text.lower() != "lc":
            raise ScriptError(f"unknown placeholder {{{tok.text}}} (only {{lc}})", tok.pos)
        if not in_apdu:
            raise ScriptError("{lc} only goes in an APDU line", tok.pos)
        return LcMark(tok.pos)
    if tok.is_op("/"):
        if not in_apdu:
            raise ScriptError("'/' (Le separator) only goes in an APDU line", tok.pos)
        return LeSep(tok.pos)
    raise ScriptError(f"unexpected {tok.raw!r}", tok.pos)


def parse_concat(ts: _Tokens, stops: tuple = (), in_apdu: bool = False) -> Concat:
    start = ts.peek()
    items = []
    while not ts.done():
        tok = ts.peek()
        if tok.kind == "op" and tok.text in stops:
            break
        items.append(parse_atom(ts, in_apdu))
    if not items:
        raise ScriptError("a value is missing here", start.pos if start else ts.end)
    return Concat(items[0].pos, items)


def parse_value(tokens: list) -> Concat:
    ts = _Tokens(tokens, _end_pos(tokens) if tokens else Pos("?", 0, 0))
    node = parse_concat(ts)
    _validate_bytes(node)
    return node


# -- expectations and captures ---------------------------------------------------------------

def parse_expect(tokens: list, arrow: Token) -> Expect:
    pos = arrow.pos
    data = None
    rest = list(tokens)
    if rest and rest[0].is_op("["):
        depth, close = 0, None
        for k, tok in enumerate(rest):
            if tok.is_op("["):
                depth += 1
            elif tok.is_op("]"):
                depth -= 1
                if depth == 0:
                    close = k
                    break
        if close is None:
            raise ScriptError("expected data is missing its closing ']'", rest[0].pos)
        data = data_pattern(rest[1:close], rest[0].pos)
        rest = rest[close + 1:]
    if not rest:
        return Expect(pos, SwPattern.success(pos), data)
    if len(rest) == 1 and rest[0].is_word("ok"):
        return Expect(pos, SwPattern.ok(rest[0].pos), data)
    alternatives = []
    expect_alt = True
    for tok in rest:
        if expect_alt:
            if tok.kind == "var":
                alternatives.append(_var(tok))
            elif tok.kind == "word":
                value, mask = sw_alternative(tok.text, tok.pos)
                alternatives.append((tok.text.upper().replace("?", "X"), value, mask))
            else:
                raise ScriptError(f"expected a status word after '=>', got {tok.raw!r}", tok.pos)
        elif not tok.is_op("|"):
            hint = " (response data goes in [ ] before the status word)" if tok.kind == "word" else ""
            raise ScriptError(f"expected '|' between status words, got {tok.raw!r}{hint}", tok.pos)
        expect_alt = not expect_alt
    if expect_alt:
        raise ScriptError("a status word is missing after '|'", rest[-1].pos)
    return Expect(pos, SwPattern(alternatives, pos), data)


def parse_captures(tokens: list) -> list:
    ts = _Tokens(tokens, _end_pos(tokens) if tokens else Pos("?", 0, 0))
    out = []
    if ts.done():
        raise ScriptError("nothing to capture after '->' (write name=data[0:4])", ts.end)
    while not ts.done():
        name = ts.next()
        if name.kind != "word" or not _NAME.match(name.text):
            raise ScriptError(f"expected a variable name, got {name.raw!r}", name.pos)
        ts.expect_op("=", f"after {name.text} (write {name.text}=data[0:4])")
        source = ts.next()
        if source.kind != "word" or not _NAME.match(source.text):
            raise ScriptError(f"expected what to capture (data, sw, a field name), got {source.raw!r}", source.pos)
        index = None
        if ts.peek() is not None and ts.peek().is_op("["):
            open_tok = ts.next()
            raw = "["
            while True:
                tok = ts.next()
                raw += tok.raw
                if tok.is_op("]"):
                    break
            index = parse_slice(raw, open_tok.pos)
        out.append(Capture(name.pos, name.text, source.text.lower(), index))
    return out


def _split_checks(tokens: list) -> tuple:
    """tokens → (before, expect tokens + arrow, capture tokens)."""
    cuts = _split_top(tokens, "=>", "->")
    expect_at, capture_at = cuts.get("=>"), cuts.get("->")
    if capture_at is not None and expect_at is not None and capture_at < expect_at:
        raise ScriptError("'=>' (expectation) comes before '->' (captures)", tokens[expect_at].pos)
    end = len(tokens)
    head_end = min(x for x in (expect_at, capture_at, end) if x is not None)
    head = tokens[:head_end]
    expect = None
    if expect_at is not None:
        expect = parse_expect(tokens[expect_at + 1:capture_at if capture_at is not None else end], tokens[expect_at])
    captures = parse_captures(tokens[capture_at + 1:]) if capture_at is not None else []
    return head, expect, captures


# -- statements ---------------------------------------------------------------------------------

_TEMPLATE_VAR = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)")


def _template(tokens: list) -> list:
    pieces: list = []
    for k, tok in enumerate(tokens):
        if k:
            pieces.append(" ")
        if tok.kind == "var":
            pieces.append(_var(tok))
        elif tok.kind == "string":
            pos = 0
            for m in _TEMPLATE_VAR.finditer(tok.text):
                pieces.append(tok.text[pos:m.start()])
                body = m.group(1) if m.group(1) is not None else m.group(2)
                where = Pos(tok.pos.file, tok.pos.line, tok.pos.col + 1 + m.start())
                fake = Token("var", body, where)
                pieces.append(_var(fake))
                pos = m.end()
            pieces.append(tok.text[pos:])
        else:
            pieces.append(tok.raw)
    return pieces


def _parse_cond(tokens: list, pos: Pos) -> Cond:
    cuts = _split_top(tokens, "==", "!=")
    if not cuts:
        raise ScriptError("expected a comparison: VALUE == PATTERN or VALUE != PATTERN", pos)
    k = min(cuts.values())
    if k == 0:
        raise ScriptError("a value is missing before the comparison", tokens[0].pos)
    left = parse_value(tokens[:k])
    right_tokens = tokens[k + 1:]
    if not right_tokens:
        raise ScriptError("a pattern is missing after the comparison", tokens[k].pos)
    if right_tokens[0].is_op("[") and right_tokens[-1].is_op("]"):
        right_tokens = right_tokens[1:-1]
    return Cond(tokens[k].pos, left, tokens[k].text == "!=", data_pattern(right_tokens, right_tokens[0].pos
                                                                       if right_tokens else tokens[k].pos))


def _parse_int_token(tok: Token, what: str) -> int:
    if tok.kind != "word" or not tok.text.isdigit():
        raise ScriptError(f"{what} must be a decimal number, got {tok.raw!r}", tok.pos)
    if len(tok.text) > 9:  # beyond every limit below, and int() refuses thousands of digits
        raise ScriptError(f"{what} {tok.text[:12]}... is too large", tok.pos)
    return int(tok.text)


def parse_statement(tokens: list, line: Line | None = None) -> Stmt:
    first = tokens[0]
    pos = first.pos
    end = _end_pos(tokens)
    word = first.text.lower() if first.kind == "word" else None
    rest = tokens[1:]

    if word == "exit":
        if rest:
            raise ScriptError("exit takes no arguments", rest[0].pos)
        return Exit(pos)
    if word == "reset":
        if not rest:
            return Reset(pos, True)
        if len(rest) == 1 and rest[0].is_word("cold", "warm"):
            return Reset(pos, rest[0].text.lower() == "cold")
        raise ScriptError("reset takes 'cold' or 'warm'", rest[0].pos)
    if word == "set" or (first.kind == "word" and len(tokens) > 1 and tokens[1].is_op("=")
                         and _NAME.match(first.text)):
        if word == "set":
            if len(rest) < 2 or rest[0].kind != "word" or not rest[1].is_op("="):
                raise ScriptError("write: set NAME = VALUE", rest[0].pos if rest else end)
            name_tok, value_tokens = rest[0], rest[2:]
        else:
            name_tok, value_tokens = first, tokens[2:]
        if not _NAME.match(name_tok.text):
            raise ScriptError(f"bad variable name {name_tok.text!r}", name_tok.pos)
        if name_tok.text.lower() in SPECIAL_VARS:
            raise ScriptError(f"${name_tok.text} is set by the runner after each APDU", name_tok.pos)
        if not value_tokens:
            raise ScriptError(f"a value is missing after '{name_tok.text} ='", end)
        return Assign(pos, name_tok.text, parse_value(value_tokens))
    if word == "include":
        path = (rest[0].text if len(rest) == 1 and rest[0].kind == "string" else
                _rest_of_line(line) if line is not None else " ".join(t.raw for t in rest))
        if not path:
            raise ScriptError("write: include FILE", end)
        return Include(pos, path)
    if word in ("echo", "print"):
        return Echo(pos, _template(rest))
    if word == "fail":
        return Fail(pos, _template(rest) or ["failed"])
    if word in ("if", "repeat"):
        cuts = _split_top(rest, ":")
        if ":" not in cuts:
            raise ScriptError(f"write: {word} ...: STATEMENT (a ':' is missing)", end)
        k = cuts[":"]
        head, body = rest[:k], rest[k + 1:]
        if not body:
            raise ScriptError(f"a statement is missing after '{word} ...:'", end)
        inner = parse_statement(body)
        if word == "if":
            if not head:
                raise ScriptError("a condition is missing after 'if'", pos)
            return If(pos, _parse_cond(head, head[0].pos), inner)
        if len(head) != 1:
            raise ScriptError("write: repeat N: STATEMENT", pos)
        count = _parse_int_token(head[0], "repeat count")
        if not 1 <= count <= 10000:
            raise ScriptError("repeat count from 1 to 10000", head[0].pos)
        return Repeat(pos, count, inner)
    if word == "expect":
        if not rest:
            raise ScriptError("write: expect VALUE == PATTERN", end)
        return Assert(pos, _parse_cond(rest, rest[0].pos), "expect " + _source(rest, line))
    if word == "require":
        text = " ".join(t.raw for t in rest).replace(" ", "").lower()
        backend = text.split("=", 1)[1] if text.startswith("backend=") else text
        if backend not in ("emulator", "card"):
            raise ScriptError("write: require emulator | require card", rest[0].pos if rest else end)
        return Require(pos, backend)
    if word in ("delay", "pause"):
        if len(rest) != 1:
            raise ScriptError(f"write: {word} MILLISECONDS", end)
        return Delay(pos, _parse_int_token(rest[0], "delay"))
    if word == "option":
        if len(rest) != 3 or not rest[1].is_op("=") or rest[0].text.lower() not in OPTIONS:
            raise ScriptError(f"write: option NAME=VALUE (options: {', '.join(OPTIONS)})", rest[0].pos if rest else end)
        name, value = rest[0].text.lower(), rest[2].text.lower()
        if value not in OPTIONS[name]:
            raise ScriptError(f"option {name} is one of {', '.join(OPTIONS[name])}", rest[2].pos)
        return Option(pos, name, value)
    if word == "protect":
        ts = _Tokens(rest, end)
        flags = {"encrypt": False, "sm4": False}
        while ts.peek() is not None and ts.peek().is_word(*flags):
            flags[ts.next().text.lower()] = True
        if ts.done():
            raise ScriptError("write: protect [encrypt] KEY APDU", end)
        key = parse_atom(ts)
        _validate_bytes(key)
        remaining = ts.rest()
        if not remaining:
            raise ScriptError("the APDU to protect is missing", end)
        send = _parse_send(remaining)
        send.pos = pos
        send.protect = Protect(key, flags["encrypt"], flags["sm4"])
        return send
    if first.kind == "word" and "." in first.text and not _looks_hex(first.text.replace(".", "")):
        return _parse_step(tokens)
    return _parse_send(tokens)


def _source(tokens: list, line: Line | None) -> str:
    """The source text of ``tokens`` (as written, when they are on the line's first physical line)."""
    first, last = tokens[0], tokens[-1]
    if line is not None and first.pos.line == last.pos.line == line.first:
        return line.text[first.pos.col - 1:last.end - 1]
    return " ".join(t.raw for t in tokens)


def _looks_hex(text: str) -> bool:
    return bool(re.fullmatch(r"(0[xX])?[0-9A-Fa-f]+", text))


def _parse_send(tokens: list) -> Send:
    head, expect, captures = _split_checks(tokens)
    if not head:
        raise ScriptError("the APDU is missing before '=>'", tokens[0].pos)
    ts = _Tokens(head, _end_pos(head))
    parts = []
    while not ts.done():
        parts.append(parse_atom(ts, in_apdu=True))
    for part in parts:
        _validate_bytes(part)
    marks = [p for p in parts if isinstance(p, LcMark)]
    if len(marks) > 1:
        raise ScriptError("only one {lc} per APDU", marks[1].pos)
    seps = [p for p in parts if isinstance(p, LeSep)]
    if len(seps) > 1:
        raise ScriptError("only one '/' (Le separator) per APDU", seps[1].pos)
    if seps and parts.index(seps[0]) == len(parts) - 1:
        raise ScriptError("Le is missing after '/'", seps[0].pos)
    for part in parts:
        if isinstance(part, Num):
            raise ScriptError(f"{part.text} is a decimal number, not APDU bytes (use amount({part.text}))", part.pos)
    return Send(tokens[0].pos, parts, expect, captures)


def _parse_step(tokens: list) -> StepCall:
    from .steps import STEPS, check_step

    head, expect, captures = _split_checks(tokens)
    name_tok = head[0]
    name = name_tok.text.lower()
    if name not in STEPS:
        import difflib

        close = difflib.get_close_matches(name, STEPS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else f" (steps: {', '.join(sorted(STEPS))})"
        raise ScriptError(f"unknown step {name_tok.text}{hint}", name_tok.pos)
    ts = _Tokens(head[1:], _end_pos(head))
    args = {}
    while not ts.done():
        key = ts.next()
        if key.kind != "word":
            raise ScriptError(f"expected NAME=VALUE, got {key.raw!r}", key.pos)
        ts.expect_op("=", f"after {key.text} (step arguments are NAME=VALUE)")
        if ts.done():
            raise ScriptError(f"a value is missing after {key.text}=", ts.end)
        if key.text.lower() in args:
            raise ScriptError(f"{key.text} given twice", key.pos)
        args[key.text.lower()] = (key.pos, parse_atom(ts))
    step = StepCall(name_tok.pos, name, args, expect, captures)
    check_step(step)
    return step


# -- files --------------------------------------------------------------------------------

def parse_text(source: str, path: str = "<script>", base_dir: Path | None = None,
               limits: ScriptLimits | None = None) -> Script:
    """Parse a script and the files it includes, within ``limits`` (defaults: :class:`ScriptLimits`)."""
    limits = limits or ScriptLimits()
    expansion = Expansion(limits)
    expansion.add_file(len(source), None)
    script = _parse(source, path, base_dir, (), expansion)
    check_runs(script.statements, limits.statements)
    return script


def _parse(source: str, path: str, base_dir: Path | None, stack: tuple, expansion: Expansion) -> Script:
    statements = []
    script = Script(path, statements)
    for line in logical_lines(source, path):
        if _first_word(line) == "keys":
            spec = _rest_of_line(line)
            if not spec:
                raise ScriptError("write: keys NAME-OR-FILE", line.pos)
            if script.keys is None:
                script.keys = (spec, line.tokens[1].pos, base_dir or Path("."))
            continue
        expansion.add_statement(line.pos)
        try:
            stmt = parse_statement(line.tokens, line)
        except RecursionError:
            raise ScriptError("nested too deeply", line.pos) from None
        innermost = stmt
        while isinstance(innermost, (If, Repeat)):  # `repeat 3: include x.apdu` includes x.apdu too
            innermost = innermost.body
        if isinstance(innermost, Include):
            innermost.script = _include(innermost, base_dir or Path("."), stack + (path,), script, expansion)
        statements.append(stmt)
    _mark_manual_get_response(statements)
    return script


def _rest_of_line(line: Line) -> str:
    """What follows the line's keyword, as written (a file name or key-set name: ``../keys/set-1.json``)."""
    if len(line.tokens) < 2:
        return ""
    text = line.text[line.tokens[1].pos.col - 1:].strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text


def _first_word(line: Line) -> str | None:
    tok = line.tokens[0]
    return tok.text.lower() if tok.kind == "word" else None


def _include(stmt: Include, base_dir: Path, stack: tuple, parent: Script, expansion: Expansion) -> Script:
    target = (base_dir / stmt.path)
    shown = _display(target)
    if shown in stack or expansion.real_path(str(target)) in {expansion.real_path(p) for p in stack}:
        raise ScriptError(f"include cycle: {' -> '.join(stack + (shown,))}", stmt.pos)
    expansion.check_depth(len(stack), stmt.pos)
    try:
        data = read_bounded(target, expansion.limits.file_size, "a script")
        expansion.add_file(len(data), stmt.pos)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ScriptError(f"include: no such file {stmt.path!r} (looked in {_display(base_dir) or '.'})",
                          stmt.pos) from None
    except FileRefused as exc:
        raise ScriptError(f"include: {stmt.path!r}: {exc.problem}", stmt.pos) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"include: cannot read {stmt.path!r}: {exc}", stmt.pos) from None
    sub = _parse(text, shown, target.parent, stack, expansion)
    if sub.keys is not None and parent.keys is None:
        parent.keys = sub.keys
    return sub


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_file(path, limits: ScriptLimits | None = None) -> Script:
    path = Path(path)
    limits = limits or ScriptLimits()
    try:
        text = read_text(path, "script", limits.file_size)
    except TextFileProblem as exc:
        raise ScriptError(f"{path}: {exc.problem}") from None
    kind = _cardos_json_kind(text)
    if kind:
        raise ScriptError(f"{path}: a {kind}, not an APDU script")
    return parse_text(text, str(path), path.parent, limits)


def _cardos_json_kind(text: str) -> str | None:
    """``"cardos card image"`` when ``text`` is one of the JSON files cardos writes (given where a script goes)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        tag = json.loads(text).get("format", "")
    except (ValueError, AttributeError, RecursionError):
        return None
    if not isinstance(tag, str) or not tag.startswith("cardos-"):
        return None
    return tag.replace("-", " ")  # "cardos card image", "cardos keyset"


def _mark_manual_get_response(statements: list) -> None:
    """A scriptor-style script fetches 61XX data by hand with the next line: leave it to it."""
    for current, following in zip(statements, statements[1:]):
        if isinstance(current, Send) and isinstance(following, Send) and following.protect is None:
            first = following.parts[0] if following.parts else None
            if isinstance(first, Concat):
                first = first.items[0]
            if isinstance(first, Lit):
                try:
                    head = b"".join(hex_bytes(p.text, p.pos) for p in following.parts[:4] if isinstance(p, Lit))
                except ScriptError:
                    continue
                if len(head) >= 2 and head[0] & 0xF0 == 0 and head[1] == 0xC0:
                    current.manual_get_response = True


# -- static checks ------------------------------------------------------------------------------

def check(script: Script, keys=None, defined: set | None = None) -> set:
    """Variables before definition, key names; returns the names defined afterwards."""
    from .steps import STEPS

    defined = set(SPECIAL_VARS) if defined is None else defined

    def nodes_of(stmt):
        if isinstance(stmt, Send):
            for p in stmt.parts:
                yield from walk(p)
            if stmt.protect:
                yield from walk(stmt.protect.key)
            if stmt.expect:
                yield from _pattern_vars(stmt.expect)
        elif isinstance(stmt, StepCall):
            for _pos, node in stmt.args.values():
                yield from walk(node)
            if stmt.expect:
                yield from _pattern_vars(stmt.expect)
        elif isinstance(stmt, Assign):
            yield from walk(stmt.value)
        elif isinstance(stmt, (Echo, Fail)):
            yield from (p for p in stmt.template if isinstance(p, Var))
        elif isinstance(stmt, (Assert,)):
            yield from walk(stmt.cond.left)
            yield from (i for i in stmt.cond.right.items if isinstance(i, Var))

    def visit(stmt):
        if isinstance(stmt, If):
            for node in walk(stmt.cond.left):
                use(node)
            for item in stmt.cond.right.items:
                use(item)
            visit(stmt.body)
            return
        if isinstance(stmt, Repeat):
            visit(stmt.body)
            return
        if isinstance(stmt, Include):
            check(stmt.script, keys, defined)
            return
        if isinstance(stmt, StepCall) and STEPS[stmt.name].needs_keys and keys is None and "key" not in stmt.args:
            raise ScriptError(f"{stmt.name} needs keys: give --keys FILE (or a `keys NAME` line), or key=", stmt.pos)
        if isinstance(stmt, StepCall):  # the step's outputs are set before its expectation is checked
            for _pos, node in stmt.args.values():
                for n in walk(node):
                    use(n)
            defined.update(STEPS[stmt.name].outputs)
        for node in nodes_of(stmt):
            use(node)
        if isinstance(stmt, Assign):
            defined.add(stmt.name)
        for cap in getattr(stmt, "captures", ()):
            defined.add(cap.name)

    def use(node):
        if isinstance(node, Var) and node.name not in defined:
            import difflib

            close = difflib.get_close_matches(node.name, defined, n=1)
            hint = f" (did you mean ${{{close[0]}}}?)" if close else ""
            raise ScriptError(f"unknown variable ${{{node.name}}}: not set before this line{hint}", node.pos)
        if isinstance(node, KeyRef):
            if keys is None:
                raise ScriptError(f"@{node.name}: this script needs keys (give --keys FILE, or a `keys NAME` line)",
                                  node.pos)
            keys.lookup(node.name, node.pos)

    for stmt in script.statements:
        visit(stmt)
    return defined


def _pattern_vars(expect: Expect):
    if expect.data:
        yield from (i for i in expect.data.items if isinstance(i, Var))
    yield from (a for a in expect.sw.alternatives if isinstance(a, Var))
