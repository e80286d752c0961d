"""Running parsed scripts against a transport, reporting every exchange and check.

One :class:`Runner` runs a list of scripts in order on one card; each
top-level script has its own variables (an ``include`` shares its
includer's). Reporters receive :class:`Exchange`, :class:`Check`,
:class:`Message` events and a :class:`ScriptResult` per script.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..apdu import CardError, parse
from ..crypto import DES, SM4
from ..decoder import decode_command, decode_response
from ..i18n import Messages
from ..redact import apdu_hex
from ..sw import describe
from .expr import Context, LcMark, LeSep, evaluate, join_bounded
from .lexer import Pos, ScriptError
from .limits import ScriptLimits
from .parser import (
    Assert,
    Assign,
    Cond,
    Delay,
    Echo,
    Exit,
    Expect,
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
from .patterns import SwPattern
from .transport import TransportError

GET_RESPONSE_NOTE = "automatic GET RESPONSE"


# -- events --------------------------------------------------------------------------------

@dataclass
class Exchange:
    pos: Pos
    command: bytes
    response: bytes
    seconds: float
    note: str = ""  # why the runner sent it, when the script line did not spell it out
    original: bytes = b""  # for GET RESPONSE: the command whose data this is
    title: str = ""  # what the script line does, when not just this command (a step, a protected command)

    @property
    def sw(self) -> int:
        return int.from_bytes(self.response[-2:], "big")

    @property
    def data(self) -> bytes:
        return self.response[:-2]


@dataclass
class Check:
    pos: Pos
    ok: bool
    expected: str
    actual: str
    message: str = ""  # why it failed (or what was verified)


@dataclass
class Message:
    pos: Pos
    text: str


@dataclass
class ScriptResult:
    path: str
    status: str = "passed"  # passed failed error skipped
    checks: int = 0
    failures: int = 0
    apdus: int = 0
    seconds: float = 0.0
    error: str = ""  # script error / transport error text
    skipped: str = ""
    cases: list = field(default_factory=list)  # (Check or error text, pos)

    @property
    def exit_code(self) -> int:
        return {"passed": 0, "skipped": 0, "failed": 1, "error": 2, "transport": 3}[self.status]


class _Exit(Exception):
    pass


class _Stop(Exception):
    pass


class _Skip(Exception):
    pass


@dataclass
class Outcome:
    """What one statement got back: the final SW, response data, named fields."""

    sw: int
    data: bytes
    fields: dict = field(default_factory=dict)


def sw_bytes(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


class Runner:
    def __init__(self, transport, reporter, *, now=None, get_response: str = "auto", keep_going: bool = False,
                 randbytes=None, messages: Messages | None = None, limits: ScriptLimits | None = None):
        self.transport = transport
        self.msgs = messages or Messages()  # the language of expectation mismatches
        self.limits = limits or ScriptLimits()
        self.reporter = reporter
        self.now = now
        self.default_get_response = get_response
        self.keep_going = keep_going
        self.randbytes = randbytes
        self.mac_failures = 0  # purse MACs the card refused in a row (it blocks the purse at a few)
        self.result: ScriptResult | None = None
        self.ctx: Context | None = None
        self.title = ""

    # -- the card ----------------------------------------------------------------------------
    def raw(self, apdu: bytes, pos: Pos, note: str = "", original: bytes = b"") -> bytes:
        """One APDU, no GET RESPONSE handling; reported."""
        start = time.perf_counter()
        response = self.transport.transmit(bytes(apdu))
        seconds = time.perf_counter() - start
        self.result.apdus += 1
        self.reporter.exchange(Exchange(pos, bytes(apdu), response, seconds, note, original, self.title))
        return response

    def exchange(self, apdu: bytes, pos: Pos, note: str = "", manual: bool = False) -> tuple:
        """One command as a script line means it: 61XX fetched, 6CXX resent (unless manual)."""
        response = self.raw(apdu, pos, note)
        data, sw = response[:-2], int.from_bytes(response[-2:], "big")
        if manual or self.get_response != "auto":
            return data, sw
        if sw >> 8 == 0x6C and len(apdu) >= 5:
            apdu = _with_le(apdu, sw & 0xFF)
            if apdu is not None:
                response = self.raw(apdu, pos, f"resent with Le={sw & 0xFF:02X}")
                data, sw = response[:-2], int.from_bytes(response[-2:], "big")
        original = apdu
        while sw >> 8 == 0x61:
            response = self.raw(bytes((0x00, 0xC0, 0x00, 0x00, sw & 0xFF)), pos, GET_RESPONSE_NOTE, original)
            data, sw = data + response[:-2], int.from_bytes(response[-2:], "big")
        return data, sw

    def reset(self, cold: bool, pos: Pos) -> None:
        atr = self.transport.reset(cold)
        self.ctx.vars["atr"] = atr
        self.reporter.message(Message(pos, f"{'cold' if cold else 'warm'} reset, ATR {atr.hex().upper()}"))

    # -- checks --------------------------------------------------------------------------------
    def check(self, pos: Pos, ok: bool, expected: str, actual: str, message: str = "") -> bool:
        event = Check(pos, ok, expected, actual, message)
        self.result.checks += 1
        self.result.cases.append(event)
        if not ok:
            self.result.failures += 1
        self.reporter.check(event)
        if not ok and not self.keep_going:
            raise _Stop()
        return ok

    def check_expect(self, expect: Expect | None, outcome: Outcome, default_ok: bool = False) -> None:
        if expect is None:
            if not default_ok:
                return
            expect = Expect(None, SwPattern.success(None))
        pos = expect.pos
        sw = outcome.sw
        actual = f"{sw:04X}"
        sw_ok = expect.sw.matches(sw, self.ctx)
        problems = []
        if not sw_ok:
            problems.append(self.msgs("check.sw", sw=f"{sw:04X}", meaning=describe(sw, self.msgs.lang),
                                      expected=expect.sw.text()))
        if expect.data is not None:
            why = expect.data.match(outcome.data, self.ctx)
            if why is not None:
                shown = outcome.data.hex().upper() or self.msgs("check.no_data")
                problems.append(self.msgs("check.data", shown=shown, expected=expect.data.text(),
                                          why=self.msgs.again(why)))
            actual = (outcome.data.hex().upper() + " " if outcome.data else "") + actual
        self.check(pos or self._pos, not problems, expect.text(), actual, "; ".join(problems))

    # -- running ------------------------------------------------------------------------------------
    def run_script(self, script: Script, keys=None) -> ScriptResult:
        self.result = result = ScriptResult(script.path)
        self.ctx = Context({"atr": getattr(self.transport, "atr", b"")}, keys, self.now, self.randbytes,
                           self.limits)
        self.get_response = self.default_get_response
        self.psam_tsn = {}  # terminal id -> next terminal transaction serial (purse steps); per script
        self._pos = Pos(script.path, 0, 0)
        self.reporter.start_script(script.path)
        start = time.perf_counter()
        try:
            self._run_block(script.statements)
        except _Exit:
            pass
        except _Stop:
            pass
        except _Skip as skip:
            result.status = "skipped"
            result.skipped = str(skip)
        except ScriptError as exc:
            if exc.pos is None:  # raised where the position is not known (a variable over the limit)
                exc.pos = self._pos
            result.status = "error"
            result.error = str(exc)
            result.cases.append((str(exc), exc.pos))
            self.reporter.error(exc)
        except TransportError as exc:
            result.status = "transport"
            result.error = str(exc)
            result.cases.append((str(exc), self._pos))
            self.reporter.error(exc)
        if result.status == "passed" and result.failures:
            result.status = "failed"
        result.seconds = time.perf_counter() - start
        self.reporter.end_script(result)
        return result

    def _run_block(self, statements) -> None:
        for stmt in statements:
            self._pos = stmt.pos
            self.title = ""
            self._run(stmt)

    def _run(self, stmt) -> None:
        ctx = self.ctx
        if isinstance(stmt, Send):
            outcome = self._send(stmt)
            self.check_expect(stmt.expect, outcome)
            self._capture(stmt.captures, outcome)
        elif isinstance(stmt, StepCall):
            from .steps import run_step

            self.title = stmt.name
            outcome = run_step(self, stmt)
            self.check_expect(stmt.expect, outcome, default_ok=True)
            self._capture(stmt.captures, outcome)
        elif isinstance(stmt, Assign):
            ctx.vars[stmt.name] = evaluate(stmt.value, ctx)
        elif isinstance(stmt, Reset):
            self.reset(stmt.cold, stmt.pos)
        elif isinstance(stmt, Exit):
            self.reporter.message(Message(stmt.pos, "exit"))
            raise _Exit()
        elif isinstance(stmt, Include):
            self._run_block(stmt.script.statements)
        elif isinstance(stmt, Echo):
            self.reporter.message(Message(stmt.pos, self._text(stmt.template)))
        elif isinstance(stmt, Fail):
            self.check(stmt.pos, False, "", "", self._text(stmt.template))
        elif isinstance(stmt, If):
            if self._cond(stmt.cond):
                self._run(stmt.body)
        elif isinstance(stmt, Assert):
            value = evaluate(stmt.cond.left, ctx)
            why = stmt.cond.right.match(value, ctx)
            ok = (why is None) != stmt.cond.negate
            message = "" if ok else (
                self.msgs("check.matches" if stmt.cond.negate else "check.is_not",
                          value=value.hex().upper() or self.msgs("check.empty"), pattern=stmt.cond.right.text()[1:-1])
                + (f": {self.msgs.again(why)}" if why and not stmt.cond.negate else ""))
            self.check(stmt.pos, ok, stmt.text, value.hex().upper(), message)
        elif isinstance(stmt, Require):
            if stmt.backend != self.transport.backend:
                raise _Skip(f"needs {stmt.backend}, running on {self.transport.backend}")
        elif isinstance(stmt, Delay):
            time.sleep(stmt.ms / 1000)
        elif isinstance(stmt, Repeat):
            for _ in range(stmt.count):
                self._run(stmt.body)
        elif isinstance(stmt, Option):
            setattr(self, stmt.name, stmt.value)
        else:  # pragma: no cover - the parser makes nothing else
            raise ScriptError(f"cannot run {type(stmt).__name__}", stmt.pos)

    def _cond(self, cond: Cond) -> bool:
        value = evaluate(cond.left, self.ctx)
        return (cond.right.match(value, self.ctx) is None) != cond.negate

    def _text(self, template) -> str:
        pieces = (piece.encode() if isinstance(piece, str) else evaluate(piece, self.ctx).hex().upper().encode()
                  for piece in template)
        return join_bounded(pieces, self.ctx, self._pos).decode()

    # -- APDU lines ------------------------------------------------------------------------------------
    def _send(self, stmt: Send) -> Outcome:
        apdu = build_apdu(stmt.parts, self.ctx)
        if len(apdu) < 4:
            raise ScriptError(f"an APDU has at least 4 bytes (CLA INS P1 P2); this one is {apdu.hex().upper() or 'empty'}",
                              stmt.pos)
        if stmt.protect is not None:
            self.title = decode_command(apdu).title() + (" (encrypted)" if stmt.protect.encrypt else "")
            apdu = self._protect(stmt, apdu)
            if isinstance(apdu, Outcome):
                return apdu
        data, sw = self.exchange(apdu, stmt.pos, manual=stmt.manual_get_response)
        return self.outcome(apdu, data, sw)

    def outcome(self, command: bytes, data: bytes, sw: int) -> Outcome:
        ctx = self.ctx
        ctx.vars.update(sw=sw_bytes(sw), sw1=bytes((sw >> 8,)), sw2=bytes((sw & 0xFF,)), data=data,
                        response=data + sw_bytes(sw))
        fields = {f.name: f.value for f in decode_response(command, data) if f.name != "data"}
        return Outcome(sw, data, fields)

    def challenge(self, pos: Pos, note: str, n: int = 4) -> tuple:
        """GET CHALLENGE for the runner's own use: (challenge, sw)."""
        data, sw = self.exchange(bytes((0x00, 0x84, 0x00, 0x00, n)), pos, note)
        return data, sw

    def _protect(self, stmt: Send, plain: bytes):
        from ..terminal.secure import protected_apdu

        protect = stmt.protect
        key = evaluate(protect.key, self.ctx)
        algorithm = SM4 if protect.sm4 else DES
        if len(key) not in ((16,) if protect.sm4 else (8, 16)):
            raise ScriptError(f"a {'SM4' if protect.sm4 else 'DES/3DES'} line-protection key is "
                              f"{'16' if protect.sm4 else '8 or 16'} bytes (got {len(key)})", protect.key.pos)
        try:
            cmd = parse(plain)
        except CardError:
            raise ScriptError(f"{apdu_hex(plain)} is not a well-formed APDU (check Lc)", stmt.pos) from None
        if cmd.extended:
            raise ScriptError("protect works on short APDUs only", stmt.pos)
        challenge, sw = self.challenge(stmt.pos, "challenge for the MAC")
        if sw != 0x9000:
            return self.outcome(b"\x00\x84\x00\x00\x04", challenge, sw)
        le = None if cmd.le is None else cmd.le & 0xFF
        return protected_apdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, key, challenge, protect.encrypt,
                              algorithm, le)

    def _capture(self, captures, outcome: Outcome) -> None:
        from .expr import apply_slice

        sources = {"data": outcome.data, "sw": sw_bytes(outcome.sw), "sw1": bytes((outcome.sw >> 8,)),
                   "sw2": bytes((outcome.sw & 0xFF,)), "response": outcome.data + sw_bytes(outcome.sw)}
        sources.update(outcome.fields)
        for cap in captures:
            if cap.source not in sources:
                known = ", ".join(sorted(sources))
                raise ScriptError(f"nothing called {cap.source!r} in this response (have: {known})", cap.pos)
            value = sources[cap.source]
            if cap.index is not None:
                value = apply_slice(value, cap.index, cap.pos, cap.source)
            self.ctx.vars[cap.name] = value


def build_apdu(parts: list, ctx: Context) -> bytes:
    """Evaluate an APDU line: ``{lc}`` becomes the length of what follows it up to ``/``."""
    head, body, le = [], [], []
    target = head
    mark = None
    size = 0
    for part in parts:
        if isinstance(part, LcMark):
            mark = part
            target = body
        elif isinstance(part, LeSep):
            target = le
        else:
            target.append(evaluate(part, ctx))
            size += len(target[-1])
            ctx.bounded(size, part.pos)
    head_bytes, body_bytes, le_bytes = b"".join(head), b"".join(body), b"".join(le)
    if mark is None:
        return head_bytes + body_bytes + le_bytes
    n = len(body_bytes)
    if n == 0:
        lc = b""
    elif n < 256:
        lc = bytes((n,))
    elif n < 65536:
        lc = b"\x00" + n.to_bytes(2, "big")
    else:
        raise ScriptError(f"{n} bytes of data do not fit an APDU", mark.pos)
    return head_bytes + lc + body_bytes + le_bytes


def _with_le(apdu: bytes, le: int) -> bytes | None:
    """The same short APDU with Le = ``le`` (added or replaced)."""
    try:
        cmd = parse(apdu)
    except CardError:
        return None
    if cmd.extended:
        return None
    if cmd.le is None:
        return apdu + bytes((le,))
    return apdu[:-1] + bytes((le,))
