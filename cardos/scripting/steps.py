"""Multi-APDU steps: ``name arg=value ...`` lines the runner expands into several commands.

``auth.external`` authenticates with a key; the ``purse.*`` steps run whole
purse transactions through the terminal side (:mod:`cardos.terminal.purse`:
load host, PSAM), so MAC1 is checked, MAC2 / TAC computed and verified with
keys from the key set (never from the script). Every intermediate value
lands in a ``purse.*`` variable; ``mac1=`` / ``mac2=`` replace what the
terminal would send, for negative tests (``purse.load amount=100
mac2=00000000 => 9302``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..decoder import decode_response
from ..terminal import purse as tpurse
from ..terminal.host import HostError, LoadHost
from ..terminal.keys import IssuerKeys
from ..terminal.psam import PSAM, PSAMError
from ..tries import purse_mac_refused
from .expr import Concat, Lit, evaluate, evaluate_amount, evaluate_int
from .lexer import ScriptError
from .runner import Message
from .transport import TransportError

DEFAULT_TERMINAL = bytes.fromhex("010203040506")
PURSE_OUTPUTS = ("purse.balance", "purse.balance_before", "purse.counter", "purse.amount", "purse.random",
                 "purse.mac1", "purse.mac2", "purse.tac", "purse.sk", "purse.serial", "purse.terminal",
                 "purse.tsn", "purse.date", "purse.time")


@dataclass(frozen=True)
class Param:
    kind: str  # bytes int amount key choice
    required: bool = False
    doc: str = ""
    choices: tuple = ()
    length: int | None = None  # for bytes: exact length


@dataclass(frozen=True)
class StepSpec:
    name: str
    params: dict
    outputs: tuple
    run: object
    doc: str

    @property
    def needs_keys(self) -> bool:
        """Transaction steps take their keys from the key source (unless given key=)."""
        return "key" in self.params and self.params["key"].kind == "key" and self.outputs == PURSE_OUTPUTS


STEPS: dict = {}


def _step(name: str, params: dict, outputs: tuple = PURSE_OUTPUTS):
    def register(fn):
        STEPS[name] = StepSpec(name, params, outputs, fn, (fn.__doc__ or "").strip())
        return fn
    return register


_PURSE = Param("choice", doc="ep (default) or ed", choices=("ep", "ed"))
_KID = Param("int", doc="key index sent in INITIALIZE (default 1)")
_TERMINAL = Param("bytes", doc="6-byte terminal id (default 010203040506)", length=6)
_SERIAL = Param("bytes", doc="application serial for key diversification (default: read from 0015)")
_KEY = Param("key", doc="the card's own transaction key (instead of the key set; not diversified)")
_TAC_KEY = Param("key", doc="the card's TAC key (DTK) to verify the TAC with, with key=")
_COMMON = {"purse": _PURSE, "kid": _KID, "terminal": _TERMINAL, "serial": _SERIAL, "key": _KEY, "tac": _TAC_KEY}


def check_step(step) -> None:
    """Static checks of a step line: argument names, required ones, choices."""
    spec = STEPS[step.name]
    for name, (pos, node) in step.args.items():
        if name not in spec.params:
            raise ScriptError(f"{step.name} has no argument {name!r} (arguments: {', '.join(spec.params)})", pos)
        param = spec.params[name]
        if param.kind == "choice":
            text = _choice_text(node)
            if text not in param.choices:
                raise ScriptError(f"{name} is one of {', '.join(param.choices)}", node.pos)
    for name, param in spec.params.items():
        if param.required and name not in step.args:
            raise ScriptError(f"{step.name} needs {name}=", step.pos)


def _choice_text(node) -> str | None:
    if isinstance(node, Concat) and len(node.items) == 1:
        node = node.items[0]
    return node.text.lower() if isinstance(node, Lit) else None


class _Args:
    def __init__(self, runner, step):
        self.runner = runner
        self.step = step
        self.spec = STEPS[step.name]

    def has(self, name: str) -> bool:
        return name in self.step.args

    def get(self, name: str, default=None):
        if name not in self.step.args:
            return default
        pos, node = self.step.args[name]
        param = self.spec.params[name]
        ctx = self.runner.ctx
        if param.kind == "amount":
            value = evaluate_amount(node, ctx)
            if not 0 <= value <= 0xFFFFFFFF:
                raise ScriptError(f"{name}={value} does not fit 4 bytes", pos)
            return value
        if param.kind == "int":
            return evaluate_int(node, ctx)
        if param.kind == "choice":
            return _choice_text(node)
        value = evaluate(node, ctx)
        if param.length is not None and len(value) != param.length:
            raise ScriptError(f"{name} is {param.length} bytes (got {len(value)})", pos)
        return value


# -- the card as the terminal functions see it -----------------------------------------------

class _StepChannel:
    """``transmit`` for :mod:`cardos.terminal.purse`: every APDU reported under the step's line."""

    def __init__(self, runner, step):
        self.runner = runner
        self.pos = step.pos
        self.log: list = []  # (command, response)

    def transmit(self, apdu: bytes) -> bytes:
        original = self.log[-1][0] if apdu[:2] == b"\x00\xc0" and self.log else b""
        response = self.runner.raw(apdu, self.pos, "", original)
        self.log.append((bytes(apdu), response))
        return response

    def find(self, cla: int, ins: int) -> tuple | None:
        for command, response in self.log:
            if command[0] & 0xF0 == cla and command[1] == ins:
                return command, response
        return None

    def last(self) -> tuple:
        return self.log[-1] if self.log else (b"", b"")


def _keys(runner, args: _Args, role: str):
    """An issuer key source for the terminal: ``key=``/``tac=`` or the script's key set."""
    if args.has("key"):
        kwargs = {role: args.get("key")}
        if args.has("tac"):
            kwargs["tac"] = args.get("tac")
        return IssuerKeys(**kwargs, diversify=False)
    source = runner.ctx.keys
    if source is None:
        raise ScriptError(f"{args.step.name} needs keys: give --keys FILE (or a `keys NAME` line), or key=",
                          args.step.pos)
    return source.issuer_keys()


class _HostProxy:
    """The load host, with MAC2 replaced when the script says so."""

    def __init__(self, host, mac2: bytes | None):
        self.host = host
        self.mac2 = mac2

    def authorize_load(self, *a, **kw):
        mac2 = self.host.authorize_load(*a, **kw)
        return self.mac2 if self.mac2 is not None else mac2

    def authorize_unload(self, *a, **kw):
        mac2, mac3 = self.host.authorize_unload(*a, **kw)
        return (self.mac2 if self.mac2 is not None else mac2), mac3

    def authorize_overdraw(self, *a, **kw):
        mac2 = self.host.authorize_overdraw(*a, **kw)
        return self.mac2 if self.mac2 is not None else mac2

    def verify_tac(self, record):
        return self.host.verify_tac(record)


class _PsamProxy:
    """The PSAM, with MAC1 replaced when the script says so; the serials it issues are remembered
    per terminal (``tsns``), so the next purchase at that terminal continues from there."""

    def __init__(self, psam, mac1: bytes | None, tsns: dict):
        self.psam = psam
        self.mac1 = mac1
        self.tsns = tsns
        self.terminal_id = psam.terminal_id

    def init_purchase(self, *a, **kw):
        tsn, mac1 = self.psam.init_purchase(*a, **kw)
        self.tsns[self.terminal_id] = self.psam.tsn
        return tsn, (self.mac1 if self.mac1 is not None else mac1)

    @property
    def expected_mac2(self):
        return self.psam.expected_mac2

    def check_mac2(self, mac2):
        return self.psam.check_mac2(mac2)

    def verify_tac(self, record):
        return self.psam.verify_tac(record)


def _now(runner) -> datetime:
    return runner.now or datetime.now()


def _transaction(runner, step, role: str, body):
    """Run ``body(channel, keys, args, serial)`` (a terminal transaction); turn its outcome into
    an :class:`Outcome` with the ``purse.*`` variables set."""
    args = _Args(runner, step)
    keys = _keys(runner, args, role)
    channel = _StepChannel(runner, step)
    when = _now(runner)
    record = None
    failure = None
    try:
        serial = args.get("serial") or tpurse.read_serial(channel)
        record = body(channel, keys, args, serial, when)
    except tpurse.TornTransaction as exc:
        raise TransportError(f"{step.name}: {exc}") from None
    except tpurse.CardMute as exc:
        raise TransportError(f"{step.name}: the card stopped answering ({exc})") from None
    except tpurse.VerificationError as exc:
        failure = str(exc)
        record = exc.record
    except tpurse.TransactionError as exc:
        if exc.sw is None:
            failure = str(exc)
    except (HostError, PSAMError, LookupError, ValueError) as exc:
        failure = f"{step.name}: {exc}"
    command, response = channel.last()
    sw = int.from_bytes(response[-2:], "big") if len(response) >= 2 else 0
    _set_outputs(runner, channel, keys, args, record, role)
    outcome = runner.outcome(command, response[:-2], sw)
    refused = purse_mac_refused(sw, runner.mac_failures + 1)
    if refused:
        runner.mac_failures += 1
        runner.reporter.message(Message(step.pos, f"{step.name}: {refused}"))
    elif sw == 0x9000:  # the card accepted a MAC: its count of failures starts again
        runner.mac_failures = 0
    if failure is not None:
        runner.check(step.pos, False, "verified", "not verified", failure)
    elif record is not None:
        runner.reporter.message(Message(step.pos, runner.msgs.transaction(record)))
    return outcome


def _set_outputs(runner, channel, keys, args, record, role) -> None:
    out = {"purse.terminal": args.get("terminal", DEFAULT_TERMINAL)}
    init = channel.find(0x80, 0x50)
    serial = None
    read = channel.find(0x00, 0xB0)
    if args.has("serial"):
        serial = args.get("serial")
    elif read is not None and len(read[1]) >= 22:
        serial = read[1][12:20]
    if serial is not None:
        out["purse.serial"] = serial
    if init is not None:
        fields = {f.name: f.value for f in decode_response(init[0], init[1][:-2])}
        for name in ("balance", "counter", "random", "mac1"):
            if name in fields:
                out["purse.balance_before" if name == "balance" else f"purse.{name}"] = fields[name]
        if len(init[0]) >= 10:
            out["purse.amount"] = init[0][6:10] if init[0][2] != 0x04 else b""
    if record is not None:
        out.update({"purse.balance": record.balance.to_bytes(4, "big"), "purse.tac": record.tac,
                    "purse.mac2": record.mac, "purse.date": record.date, "purse.time": record.time})
        if record.tsn:
            out["purse.tsn"] = record.tsn
        random, counter = out.get("purse.random"), out.get("purse.counter")
        if random is not None and counter is not None and serial is not None:
            tail = record.tsn[2:] if record.tsn else b"\x80\x00"
            try:
                key = keys.card_key(role, args.get("kid", 1), serial)
                out["purse.sk"] = keys.algorithm.session_key(key, random + counter + tail)
            except Exception:  # no such key in the source: the card refused anyway
                pass
    runner.ctx.vars.update(out)


# -- steps ---------------------------------------------------------------------------------------

@_step("auth.external", {"key": Param("key", True, "the external-authentication key"),
                         "kid": Param("int", doc="key id (default 0)"),
                         "alg": Param("choice", doc="des (default) or sm4", choices=("des", "sm4"))}, ())
def auth_external(runner, step):
    """GET CHALLENGE, then EXTERNAL AUTHENTICATE with the challenge encrypted under key."""
    from ..crypto import DES, SM4
    from ..terminal.secure import external_auth_cryptogram

    args = _Args(runner, step)
    key = args.get("key")
    algorithm = SM4 if args.get("alg") == "sm4" else DES
    kid = args.get("kid", 0)
    challenge, sw = runner.challenge(step.pos, "")
    if sw != 0x9000:
        return runner.outcome(b"\x00\x84\x00\x00\x04", challenge, sw)
    cryptogram = external_auth_cryptogram(key, challenge, algorithm)
    apdu = bytes((0x00, 0x82, 0x00, kid & 0xFF, len(cryptogram))) + cryptogram
    data, sw = runner.exchange(apdu, step.pos)
    return runner.outcome(apdu, data, sw)


@_step("purse.load", {"amount": Param("amount", True, "amount in fen (1000) or yuan (10.00)"), **_COMMON,
                      "mac2": Param("bytes", doc="send this MAC2 instead of the host's", length=4)})
def purse_load(runner, step):
    """圈存: INITIALIZE FOR LOAD, MAC1 checked by the load host, CREDIT FOR LOAD with its MAC2, TAC verified."""
    def body(channel, keys, args, serial, when):
        host = _HostProxy(LoadHost(keys), args.get("mac2"))
        return tpurse.load(channel, host, args.get("amount"), terminal=args.get("terminal", DEFAULT_TERMINAL),
                           purse=_purse(args), key_index=args.get("kid", 1), when=when, serial=serial)
    return _transaction(runner, step, "load", body)


@_step("purse.unload", {"amount": Param("amount", True, "amount"), **{k: v for k, v in _COMMON.items() if k != "purse"},
                        "mac2": Param("bytes", doc="send this MAC2 instead of the host's", length=4)})
def purse_unload(runner, step):
    """圈提 (ED): INITIALIZE FOR UNLOAD, DEBIT FOR UNLOAD, MAC3 checked."""
    def body(channel, keys, args, serial, when):
        host = _HostProxy(LoadHost(keys), args.get("mac2"))
        return tpurse.unload(channel, host, args.get("amount"), terminal=args.get("terminal", DEFAULT_TERMINAL),
                             key_index=args.get("kid", 1), when=when, serial=serial)
    return _transaction(runner, step, "unload", body)


def _purse(args) -> int:
    return 0x01 if args.get("purse") == "ed" else 0x02


def _psam(runner, keys, args, mac1):
    terminal = args.get("terminal", DEFAULT_TERMINAL)
    tsn = args.get("tsn", runner.psam_tsn.get(terminal, 0))
    return _PsamProxy(PSAM(keys, terminal, tsn=tsn), mac1, runner.psam_tsn)


_DEBIT = {"amount": Param("amount", True, "amount in fen (1000) or yuan (10.00)"), **_COMMON,
          "tsn": Param("int", doc="terminal transaction serial (default: counts from 0 per terminal and script)"),
          "mac1": Param("bytes", doc="send this MAC1 instead of the PSAM's", length=4)}


@_step("purse.purchase", _DEBIT)
def purse_purchase(runner, step):
    """消费: INITIALIZE FOR PURCHASE, MAC1 from the PSAM, DEBIT FOR PURCHASE, MAC2 and TAC verified."""
    def body(channel, keys, args, serial, when):
        return tpurse.purchase(channel, _psam(runner, keys, args, args.get("mac1")), args.get("amount"),
                               purse=_purse(args), key_index=args.get("kid", 1), when=when, serial=serial)
    return _transaction(runner, step, "purchase", body)


@_step("purse.withdraw", {k: v for k, v in _DEBIT.items() if k != "purse"})
def purse_withdraw(runner, step):
    """取现 (ED): INITIALIZE FOR CASH WITHDRAW, then the purchase debit."""
    def body(channel, keys, args, serial, when):
        return tpurse.cash_withdraw(channel, _psam(runner, keys, args, args.get("mac1")), args.get("amount"),
                                    key_index=args.get("kid", 1), when=when, serial=serial)
    return _transaction(runner, step, "purchase", body)


@_step("purse.capp_purchase", {**{k: v for k, v in _DEBIT.items() if k != "purse"},
                               "record": Param("bytes", True, "the composite record to cache"),
                               "sfi": Param("int", True, "SFI of the composite file (e.g. 0x1A or 26)"),
                               "tag": Param("int", doc="record tag (P1; default: first byte of record)"),
                               "number": Param("int", doc="record number (P1) instead of a tag"),
                               "line_key": Param("key", doc="line-protection key if the file is MAC-protected")})
def purse_capp_purchase(runner, step):
    """复合消费 (EP): INITIALIZE FOR CAPP PURCHASE, UPDATE CAPP DATA CACHE, DEBIT; MAC2 and TAC verified."""
    def body(channel, keys, args, serial, when):
        record = args.get("record")
        by_number = args.has("number")
        p1 = args.get("number") if by_number else args.get("tag", record[0] if record else 0)
        update = tpurse.CappUpdate(args.get("sfi"), p1, record, by_number, args.get("line_key"))
        return tpurse.capp_purchase(channel, _psam(runner, keys, args, args.get("mac1")), args.get("amount"),
                                    [update], key_index=args.get("kid", 1), when=when, serial=serial)
    return _transaction(runner, step, "purchase", body)


@_step("purse.balance", {"purse": _PURSE}, ("purse.balance",))
def purse_balance(runner, step):
    """GET BALANCE of the EP (or purse=ed)."""
    args = _Args(runner, step)
    apdu = bytes((0x80, 0x5C, 0x00, _purse(args), 0x04))
    data, sw = runner.exchange(apdu, step.pos)
    if sw == 0x9000:
        runner.ctx.vars["purse.balance"] = data
    return runner.outcome(apdu, data, sw)


def run_step(runner, step):
    return STEPS[step.name].run(runner, step)
