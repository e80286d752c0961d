"""Functions a terminal computes, callable from scripts as ``name(arg, ...)``.

Each takes and returns byte strings (``i`` parameters are numbers). Aliases
carry the names Chinese COS debugging tools use (``des_3des_mac``,
``3des_encode_ecb``, ``fixed80``, ...), so their scripts port directly.
All cryptography goes through :mod:`cardos.crypto`.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from .. import crypto
from ..boundedfile import size_text
from ..crypto import DES, SM4
from .expr import (
    Call,
    Concat,
    Context,
    Lit,
    Num,
    evaluate,
    evaluate_amount,
    evaluate_int,
)
from .lexer import ScriptError


@dataclass(frozen=True)
class Function:
    name: str
    params: str  # b bytes, i number, a amount, d digits; upper case = optional; * = more bytes
    impl: object
    doc: str
    aliases: tuple = ()

    @property
    def signature(self) -> str:
        import inspect

        shown = []
        for i, param in enumerate(list(inspect.signature(self.impl).parameters.values())[1:]):
            if param.kind is param.VAR_POSITIONAL:
                shown.append("...")
            elif self.params[i].isupper():
                shown.append(f"[{param.name}]")
            else:
                shown.append(param.name)
        return f"{self.name}({', '.join(shown)})"


FUNCTIONS: dict = {}
_PRIMARY: list = []


def _function(params: str, *aliases: str):
    def register(impl):
        name = impl.__name__.rstrip("_")
        fn = Function(name, params, impl, (impl.__doc__ or "").strip(), aliases)
        _PRIMARY.append(fn)
        for n in (name, *aliases):
            FUNCTIONS[n.lower()] = fn
        return impl
    return register


class FunctionError(Exception):
    """Raised by a function body; becomes a ScriptError at the call's position."""


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise FunctionError(message)


def _size(ctx: Context, n: int, what: str) -> int:
    """A length the function is asked to produce: within the limit for one value (before building it)."""
    _need(n <= ctx.limits.value_size, f"{what} {n} is more than the limit for one value "
                                      f"({size_text(ctx.limits.value_size)})")
    return n


def _key(key: bytes, sizes=(8, 16), what="key") -> bytes:
    _need(len(key) in sizes, f"{what} must be {' or '.join(map(str, sizes))} bytes (got {len(key)})")
    return key


def _blocks(data: bytes, block: int) -> bytes:
    _need(len(data) % block == 0 and data, f"data must be a non-empty multiple of {block} bytes "
                                           f"(got {len(data)}; pad with fixed80())")
    return data


def _iv(iv: bytes, block: int) -> bytes:
    _need(len(iv) <= block, f"IV longer than {block} bytes")
    return iv + bytes(block - len(iv))  # a 4-byte challenge is zero-extended


# -- block ciphers ---------------------------------------------------------------

@_function("bb", "des_encrypt", "des_encode_ecb")
def des_ecb(_ctx, key, data):
    """Single-DES ECB encryption; the key is 8 bytes."""
    return DES.encrypt(_key(key, (8,)), _blocks(data, 8))


@_function("bb", "des_decrypt", "des_decode_ecb")
def des_ecb_dec(_ctx, key, data):
    """Single-DES ECB decryption."""
    return DES.decrypt(_key(key, (8,)), _blocks(data, 8))


@_function("bb", "3des_encode_ecb", "3des_ecb", "tdes_encrypt")
def tdes_ecb(_ctx, key, data):
    """2-key 3DES (EDE) ECB encryption; a 16-byte key (8 bytes = single DES)."""
    return DES.encrypt(_key(key), _blocks(data, 8))


@_function("bb", "3des_decode_ecb", "tdes_decrypt")
def tdes_ecb_dec(_ctx, key, data):
    """2-key 3DES ECB decryption."""
    return DES.decrypt(_key(key), _blocks(data, 8))


@_function("bb", "sm4_encrypt")
def sm4_ecb(_ctx, key, data):
    """SM4 ECB encryption; 16-byte key, data a multiple of 16 bytes."""
    return SM4.encrypt(_key(key, (16,)), _blocks(data, 16))


@_function("bb", "sm4_decrypt")
def sm4_ecb_dec(_ctx, key, data):
    """SM4 ECB decryption."""
    return SM4.decrypt(_key(key, (16,)), _blocks(data, 16))


# -- MACs ------------------------------------------------------------------------

@_function("bbb", "des_des_mac")
def des_mac(_ctx, key, iv, data):
    """PBOC MAC with single DES: fixed80(data), DES-CBC with the key's left 8 bytes from IV, first 4 bytes."""
    return DES.mac(_key(key)[:8], data, _iv(iv, 8))


@_function("bbb", "des_3des_mac", "pboc_mac")
def tdes_mac(_ctx, key, iv, data):
    """PBOC MAC (retail MAC): as des_mac, the last block with 3DES when the key is 16 bytes."""
    return DES.mac(_key(key), data, _iv(iv, 8))


@_function("bbb")
def sm4_mac(_ctx, key, iv, data):
    """SM4 CBC-MAC over 80-padded 16-byte blocks, first 4 bytes (hypothesis, docs/algorithms.md)."""
    return SM4.mac(_key(key, (16,)), data, _iv(iv, 16))


# -- PBOC derivations ----------------------------------------------------------------

@_function("bb")
def session_key(_ctx, key, data):
    """Purse session key: 3DES-ECB(key, 8-byte input), e.g. random ‖ counter ‖ 8000."""
    _need(len(data) == 8, f"session-key input is 8 bytes (got {len(data)})")
    return DES.session_key(_key(key), data)


@_function("bb")
def sm4_session_key(_ctx, key, data):
    """SM4 session key: SM4(key, input ‖ 00…) (hypothesis, docs/algorithms.md)."""
    _need(len(data) in (8, 16), f"session-key input is 8 or 16 bytes (got {len(data)})")
    return SM4.session_key(_key(key, (16,)), data)


@_function("b")
def tac_key(_ctx, key):
    """TAC key: left half XOR right half of a 16-byte DTK (an 8-byte key as is)."""
    return DES.tac_key(_key(key))


@_function("bb")
def diversify(_ctx, key, factor):
    """Key diversification: 3DES(MK, F) ‖ 3DES(MK, NOT F) for an 8-byte factor."""
    _need(len(factor) == 8, f"factor is 8 bytes (got {len(factor)})")
    return DES.diversify(_key(key), factor)


@_function("bb")
def sm4_diversify(_ctx, key, factor):
    """SM4 diversification: SM4(MK, F ‖ NOT F)."""
    _need(len(factor) == 8, f"factor is 8 bytes (got {len(factor)})")
    return SM4.diversify(_key(key, (16,)), factor)


@_function("bb")
def card_key(ctx, master, serial):
    """The card's key from a key-set master: diversified with the serial's rightmost 8 bytes,
    with the key set's algorithm (3DES or SM4)."""
    from ..keyset import factor_of

    _need(len(serial) > 0, "empty serial")
    algorithm = getattr(ctx.keys, "algorithm", DES)
    return algorithm.diversify(_key(master, (16,)), factor_of(serial))


@_function("bb")
def ext_auth(_ctx, key, challenge):
    """EXTERNAL AUTHENTICATE cryptogram: the challenge zero-filled to 8 bytes, (3)DES-encrypted."""
    return DES.encrypt(_key(key), _iv(challenge, 8))


@_function("bb")
def sm_encrypt(_ctx, key, data):
    """Line-protection encryption: LD ‖ data, 80-padded if not aligned, (3)DES-ECB."""
    return DES.sm_encrypt(_key(key), data)


# -- padding, bytes ------------------------------------------------------------------

@_function("bI", "pad80")
def fixed80(ctx, data, block=8):
    """Always append 80, then 00s to a multiple of 8 (a whole 8000000000000000 block when aligned)."""
    _need(block in (8, 16), "block is 8 or 16")
    return crypto.pad80(data, block)


@_function("b")
def unpad80(_ctx, data):
    """Remove 80 00… padding."""
    try:
        return crypto.unpad80(data)
    except ValueError as exc:
        raise FunctionError(str(exc)) from None


@_function("bb*")
def xor(_ctx, first, *rest):
    """Bytewise XOR of equal-length values."""
    for other in rest:
        _need(len(other) == len(first), f"xor of {len(first)} and {len(other)} bytes")
        first = crypto.xor(first, other)
    return first


@_function("b", "inv")
def not_(_ctx, data):
    """Bitwise complement."""
    return bytes(b ^ 0xFF for b in data)


@_function("biI")
def mid(_ctx, data, offset, length=None):
    """Bytes [offset, offset+length) counted in BYTES from 0 (length omitted: to the end)."""
    end = len(data) if length is None else offset + length
    _need(0 <= offset <= end <= len(data), f"mid({offset}, {length}) outside {len(data)} bytes")
    return data[offset:end]


@_function("biI")
def midc(_ctx, data, offset, length=None):
    """Like mid but offset and length count HEX CHARACTERS (some tools do); must cut whole bytes."""
    text = data.hex().upper()
    end = len(text) if length is None else offset + length
    _need(0 <= offset <= end <= len(text), f"midc({offset}, {length}) outside {len(text)} hex digits")
    _need(offset % 2 == 0 and end % 2 == 0, "midc must cut whole bytes (even offsets and lengths)")
    return bytes.fromhex(text[offset:end])


@_function("bi")
def left(_ctx, data, n):
    """The first n bytes."""
    _need(0 <= n <= len(data), f"left({n}) of {len(data)} bytes")
    return data[:n]


@_function("bi")
def right(_ctx, data, n):
    """The last n bytes."""
    _need(0 <= n <= len(data), f"right({n}) of {len(data)} bytes")
    return data[len(data) - n:]


@_function("biB")
def rpad(ctx, data, n, fill=b"\x00"):
    """data filled on the right to n bytes with fill (default 00): rpad("ABC", 5) = 4142430000."""
    _size(ctx, n, "length")
    _need(len(fill) == 1, "fill is one byte")
    _need(len(data) <= n, f"{len(data)} bytes are already longer than {n}")
    return data + fill * (n - len(data))


@_function("biB")
def lpad(ctx, data, n, fill=b"\x00"):
    """data filled on the left to n bytes: lpad(01, 4) = 00000001."""
    _size(ctx, n, "length")
    _need(len(fill) == 1, "fill is one byte")
    _need(len(data) <= n, f"{len(data)} bytes are already longer than {n}")
    return fill * (n - len(data)) + data


@_function("bI")
def len_(ctx, data, width=1):
    """The length of data as a width-byte number (default 1)."""
    _size(ctx, width, "width")
    _need(len(data) < 256 ** width, f"length {len(data)} does not fit {width} byte(s)")
    return len(data).to_bytes(width, "big")


@_function("iI", "num")
def hex_(ctx, n, width=1):
    """A number as width big-endian bytes: hex(1000, 4) = 000003E8."""
    _size(ctx, width, "width")
    _need(0 <= n < 256 ** width, f"{n} does not fit {width} byte(s)")
    return n.to_bytes(width, "big")


@_function("iI")
def bcd(ctx, n, width=None):
    """Packed BCD of a decimal number, left-padded with 0 to width bytes: bcd(2026, 2) = 2026."""
    _need(n.bit_length() <= 4096, "a number of more than 4096 bits has too many digits for bcd()")
    digits = str(n)
    if width is None:
        width = (len(digits) + 1) // 2
    _size(ctx, width, "width")
    _need(len(digits) <= 2 * width, f"{n} has more than {2 * width} digits")
    return bytes.fromhex(digits.rjust(2 * width, "0"))


@_function("a")
def amount(_ctx, fen):
    """A 4-byte amount: amount(1000) = 1000 fen, amount(10.00) = 10 yuan = 1000 fen."""
    _need(0 <= fen <= 0xFFFFFFFF, f"amount {fen} does not fit 4 bytes")
    return fen.to_bytes(4, "big")


@_function("d")
def pin(_ctx, text):
    """A PIN as FMCOS stores it: packed BCD padded with F: pin(12345) = 12345F."""
    _need(text.isdigit() and 2 <= len(text) <= 12, f"PIN {text!r}: 2 to 12 decimal digits")
    return bytes.fromhex(text + "F" * (len(text) % 2))


@_function("b")
def ascii_(_ctx, data):
    """The bytes of a string as is ("ABC" already means 414243)."""
    return data


@_function("b")
def crc32(_ctx, data):
    """CRC-32 (zlib, big-endian 4 bytes), as in transit composite records."""
    return zlib.crc32(data).to_bytes(4, "big")


@_function("i")
def random(ctx, n):
    """n random bytes from the host."""
    _need(0 < n <= 256, "random(n): n from 1 to 256")
    return ctx.randbytes(n)


@_function("", "date")
def now_date(ctx):
    """Today as BCD YYYYMMDD (4 bytes); fixed by `cardos run --now`."""
    return bytes.fromhex(ctx.now().strftime("%Y%m%d"))


@_function("", "time")
def now_time(ctx):
    """Now as BCD hhmmss (3 bytes)."""
    return bytes.fromhex(ctx.now().strftime("%H%M%S"))


@_function("", "datetime")
def now_datetime(ctx):
    """Date and time, BCD YYYYMMDDhhmmss (7 bytes)."""
    return bytes.fromhex(ctx.now().strftime("%Y%m%d%H%M%S"))


# -- dispatch ------------------------------------------------------------------------

def lookup(call: Call) -> Function:
    fn = FUNCTIONS.get(call.name.lower())
    if fn is None:
        import difflib

        close = difflib.get_close_matches(call.name.lower(), FUNCTIONS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ScriptError(f"unknown function {call.name}(){hint}", call.pos)
    return fn


def check_arity(call: Call) -> None:
    fn = lookup(call)
    params = fn.params
    required = sum(1 for p in params if p.islower() and p != "*")
    most = None if "*" in params else len(params)
    n = len(call.args)
    if n < required or (most is not None and n > most):
        want = f"{required}" if most == required else (f"{required} or more" if most is None else f"{required} to {most}")
        raise ScriptError(f"{fn.signature} takes {want} argument(s), got {n}", call.pos)


def _digits(arg, ctx: Context) -> str:
    """Decimal digits written as is (``123456``), as a string, or in a variable holding ASCII."""
    if isinstance(arg, Concat) and len(arg.items) == 1:
        arg = arg.items[0]
    if isinstance(arg, Lit):
        if not arg.text.isdigit():
            raise ScriptError(f"{arg.text!r}: a PIN is decimal digits", arg.pos)
        return arg.text
    return evaluate(arg, ctx).decode("ascii", "replace")


def call(node: Call, ctx: Context) -> bytes:
    fn = lookup(node)
    check_arity(node)
    values = []
    for i, arg in enumerate(node.args):
        kind = fn.params[min(i, len(fn.params) - 1)].lower()
        if kind == "*":
            kind = "b"
        if kind == "i":
            values.append(evaluate_int(arg, ctx))
        elif kind == "a":
            values.append(evaluate_amount(arg, ctx))
        elif kind == "d":
            values.append(_digits(arg, ctx))
        else:
            if isinstance(arg, Num):
                raise ScriptError(f"{arg.text} is a decimal number; {fn.name}() wants bytes here", arg.pos)
            values.append(evaluate(arg, ctx))
    try:
        return fn.impl(ctx, *values)
    except FunctionError as exc:
        raise ScriptError(f"{fn.name}(): {exc}", node.pos) from None


def documented() -> list:
    """Every function once, in definition order (for docs and --help)."""
    return list(_PRIMARY)
