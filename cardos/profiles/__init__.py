"""Issuance profiles: a card described as data (JSON), validated before use.

A profile says what a personalization machine builds on a card: the MF and
its files, applications (FID, AID, rights), EFs (type, size, rights,
protection, key byte), keys by role from an issuer key set (type, id,
header, secure update) and the initial contents of files with their field
layouts, filled from per-card parameters (serial, dates, holder, ...).
The format is documented in ``docs/profiles.md``; shipped profiles live
next to this file (``city``, ``interconnect``, ``multi``, ``campus``).

:func:`load` returns a validated :class:`Profile` or raises
:class:`ProfileError` naming the file, the field and the reason. Turning a
profile into APDUs is :mod:`cardos.personalize`.
"""
from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ..filesystem import DF_HEADER, FILE_HEADER, MF_DEFAULT_NAME, MF_FID, PURSE_BODY
from ..boundedfile import FileRefused, read_bounded
from ..jsonfile import JSON_FILE_LIMIT, JsonFileProblem, read_json
from ..keys import COUNTED_TYPES, KEY_RECORD_OVERHEAD, KeyType

FORMAT = "cardos-profile"
VERSION = 1
SHIPPED_DIR = Path(__file__).parent
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
PARAM_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_RECORD_LENGTH = 248

KEY_TYPES = {
    "encrypt": 0x30, "decrypt": 0x31, "mac": 0x32, "tac": 0x34, "line_protection": 0x36,
    "pin_unblock": 0x37, "pin_reload": 0x38, "external_auth": 0x39, "pin": 0x3A,
    "overdraw": 0x3C, "unload": 0x3D, "purchase": 0x3E, "load": 0x3F,
}
FILE_TYPES = {"binary": 0x28, "fixed": 0x2A, "variable": 0x2C, "cyclic": 0x2E, "purse": 0x2F}
PROTECTIONS = {"none": 0x00, "mac": 0x80, "encrypt": 0x40, "mac+encrypt": 0xC0}
ENCODINGS = ("hex", "bcd", "uint", "text", "gbk")
PARAM_TYPES = ("int", "hex", "digits", "date", "text", "pin")
DATE_EXPR = re.compile(r"^today(?:([+-])(\d{1,3})([ymd]))?$")


class ProfileError(Exception):
    """A profile that cannot be used: names the file, the field and the reason."""

    def __init__(self, path, field_path: str, reason: str):
        where = f"{path}: {field_path}" if field_path else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.field = field_path
        self.reason = reason


# -- the model -------------------------------------------------------------------------

@dataclass
class Param:
    name: str
    type: str
    default: object = None  # None: must be given
    help: str = ""
    length: int | None = None  # bytes (hex, text) or digits (digits)
    min: int | None = None
    max: int | None = None


@dataclass
class Field:
    name: str
    length: int | None
    value: str  # a template
    encoding: str = "hex"
    pad: int = 0x00


@dataclass
class Content:
    """File or record content: a list of fields, or one hex template; ``tag`` makes a TLV record."""

    fields: list | None = None
    hex: str | None = None
    tag: int | None = None
    where: str = ""


@dataclass
class KeySpec:
    name: str
    type: int
    kid: int
    use: int
    change: int
    b3: int  # subsequent state / FF / version
    b4: int | None  # error counter, or the algorithm id (None: from the key set)
    role: str | None = None
    index: int = 1
    diversify: bool = True
    value: str | None = None  # a template (PINs)
    secure_update: bool = False
    where: str = ""

    @property
    def stored_type(self) -> int:
        return self.type | (0xC0 if self.secure_update else 0)


@dataclass
class EFSpec:
    name: str
    fid: int
    kind: str
    protection: int
    read: int
    write: int
    key_byte: int
    size: int = 0  # binary / variable
    count: int = 0  # fixed / cyclic
    record_length: int = 0
    content: Content | None = None
    records: list | str | None = None  # list of Content, or "dir"
    fill: int = 0x00
    tac_key: int = 0  # purse
    log: int = 0x18  # purse: SFI of the transaction log
    where: str = ""

    @property
    def type_byte(self) -> int:
        return FILE_TYPES[self.kind] | self.protection

    def cost(self) -> int:
        if self.kind == "purse":
            return PURSE_BODY + FILE_HEADER
        if self.kind in ("binary", "variable"):
            return self.size + FILE_HEADER
        return self.count * (self.record_length + 1) + FILE_HEADER


@dataclass
class DFSpec:
    name: str
    fid: int
    df_name: bytes
    create: int
    erase: int
    app_file_id: int
    label: str = ""
    space: int | None = None  # None: computed
    spare: int = 0
    serial: str | None = None  # template: the diversification serial of this DF's keys
    key_file_add: int = 0xAA
    key_file_spare: int = 0
    keys: list = field(default_factory=list)
    files: list = field(default_factory=list)
    apdus: list = field(default_factory=list)
    where: str = ""

    @property
    def is_mf(self) -> bool:
        return self.fid == MF_FID

    def key(self, name: str) -> KeySpec | None:
        return next((k for k in self.keys if k.name == name), None)

    def master(self) -> KeySpec | None:
        return next((k for k in self.keys if k.type == KeyType.EXTERNAL_AUTH and k.kid == 0), None)

    def file(self, fid: int) -> EFSpec | None:
        return next((f for f in self.files if f.fid == fid), None)


@dataclass
class Apdu:
    apdu: str  # a template
    expect: tuple = ("9000",)
    label: str = ""
    df: str | None = None
    where: str = ""


@dataclass
class LockKeys:
    df: str
    keys: list  # key names, or ["*"]
    use: int | None = None
    change: int | None = None
    where: str = ""


@dataclass
class Authorize:
    """An application profile: how to get the MF create right on an issued card."""

    role: str
    index: int = 1
    kid: int = 1
    serial_sfi: int = 5
    serial_offset: int = 8
    serial_length: int = 8


@dataclass
class Profile:
    name: str
    kind: str  # "card" or "application"
    description: str
    params: dict
    mf: DFSpec | None
    applications: list
    lockdown: list
    authorize: Authorize | None = None
    transport_role: str = "transport"
    path: str = ""
    raw: dict = field(default_factory=dict, repr=False)

    def dfs(self) -> list:
        return ([self.mf] if self.mf else []) + list(self.applications)

    def df(self, name: str) -> DFSpec | None:
        return next((d for d in self.dfs() if d.name == name), None)

    def roles(self) -> set:
        """Key-set roles this profile needs."""
        out = {k.role for d in self.dfs() for k in d.keys if k.role}
        if self.authorize:
            out.add(self.authorize.role)
        return out


# -- templates ---------------------------------------------------------------------------

_FORMATTER = string.Formatter()


def template_names(text: str) -> list[str]:
    """Parameter names a template refers to; raises ValueError on a malformed one."""
    names = []
    for _literal, name, spec, conversion in _FORMATTER.parse(text):
        if name is None:
            continue
        if conversion is not None or not PARAM_PATTERN.match(name):
            raise ValueError(f"bad placeholder {{{name}{'!' + conversion if conversion else ''}}}: "
                             "use {name} or {name:format}")
        if spec and "{" in spec:
            raise ValueError("nested placeholders are not allowed")
        names.append(name)
    return names


def render(text: str, values: dict) -> str:
    """Substitute ``{name}`` / ``{name:spec}`` from ``values`` (nothing else is evaluated)."""
    out = []
    for literal, name, spec, _conversion in _FORMATTER.parse(text):
        out.append(literal)
        if name is not None:
            out.append(format(values[name], spec or ""))
    return "".join(out)


def parse_date(text: str, today: date | None = None) -> str:
    """``YYYYMMDD``, ``today`` or ``today+10y`` / ``today-30d`` / ``today+6m`` → ``YYYYMMDD``."""
    m = DATE_EXPR.match(text)
    if m:
        d = today or date.today()
        if m.group(1):
            n = int(m.group(2)) * (1 if m.group(1) == "+" else -1)
            unit = m.group(3)
            if unit == "d":
                d = date.fromordinal(d.toordinal() + n)
            else:
                months = d.year * 12 + d.month - 1 + (n * 12 if unit == "y" else n)
                year, month = divmod(months, 12)
                day = d.day
                while True:
                    try:
                        d = date(year, month + 1, day)
                        break
                    except ValueError:
                        day -= 1
        return d.strftime("%Y%m%d")
    if not re.fullmatch(r"\d{8}", text):
        raise ValueError("a date is YYYYMMDD, today, or today+N(y|m|d)")
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ValueError(f"{text} is not a calendar date") from None
    return text


def coerce(param: Param, value, today: date | None = None):
    """Check and normalise one parameter value; raises ValueError with the reason."""
    t = param.type
    if t == "int":
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, str):
            if not re.fullmatch(r"\d+", value.strip()):
                raise ValueError(f"expected a decimal integer (got {value!r})")
            value = int(value)
        if not isinstance(value, int):
            raise ValueError("expected an integer")
        if param.min is not None and value < param.min or param.max is not None and value > param.max:
            raise ValueError(f"must be from {param.min} to {param.max} (got {value})")
        return value
    if not isinstance(value, str):
        raise ValueError("expected a string")
    if t == "hex":
        v = value.replace(" ", "").upper()
        if not re.fullmatch(r"([0-9A-F]{2})*", v):
            raise ValueError(f"expected hex digits, an even number (got {value!r})")
        if param.length is not None and len(v) != 2 * param.length:
            raise ValueError(f"expected {param.length} byte(s) = {2 * param.length} hex digits (got {len(v)} digits)")
        return v
    if t == "digits":
        if not re.fullmatch(r"\d*", value):
            raise ValueError(f"expected decimal digits (got {value!r})")
        if param.length is not None and len(value) != param.length:
            raise ValueError(f"expected {param.length} digits (got {len(value)})")
        return value
    if t == "date":
        return parse_date(value, today)
    if t == "pin":
        if not re.fullmatch(r"\d{4,12}", value):
            raise ValueError("a PIN is 4 to 12 decimal digits")
        return value
    # text
    if param.length is not None and len(value.encode("utf-8")) > param.length:
        raise ValueError(f"longer than {param.length} bytes")
    return value


def resolve_params(profile: Profile, given: dict | None = None, today: date | None = None) -> dict:
    """Every parameter's value: given ones (strings from a command line, or Python values),
    else defaults, templates evaluated in dependency order."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(profile.params))
    if unknown:
        raise ProfileError(profile.path, f"parameters.{unknown[0]}",
                           f"no such parameter in profile {profile.name} "
                           f"(it has: {', '.join(sorted(profile.params))})")
    values: dict = {}
    busy: list = []

    def value_of(name: str):
        if name in values:
            return values[name]
        if name in busy:
            raise ProfileError(profile.path, f"parameters.{name}",
                               f"circular default: {' -> '.join(busy + [name])}")
        param = profile.params[name]
        raw = given[name] if name in given else param.default
        where = f"parameters.{name}"
        if raw is None:
            raise ProfileError(profile.path, where, "has no default; give a value"
                               + (f" ({param.help})" if param.help else ""))
        busy.append(name)
        if isinstance(raw, str) and "{" in raw:
            try:
                refs = template_names(raw)
            except ValueError as exc:
                raise ProfileError(profile.path, where, str(exc)) from None
            for ref in refs:
                if ref not in profile.params:
                    raise ProfileError(profile.path, where, f"refers to unknown parameter {ref}")
            try:
                raw = render(raw, {ref: value_of(ref) for ref in refs})
            except (ValueError, TypeError) as exc:
                raise ProfileError(profile.path, where, f"cannot format: {exc}") from None
        busy.pop()
        try:
            values[name] = coerce(param, raw, today)
        except ValueError as exc:
            source = "given value" if name in given else "default"
            raise ProfileError(profile.path, where, f"{source}: {exc}") from None
        return values[name]

    for name in profile.params:
        value_of(name)
    return values


def encode_field(f: Field, values: dict) -> bytes:
    """Render one content field to bytes; raises ValueError with the reason."""
    if f.encoding == "fill":
        return bytes((f.pad,)) * f.length
    text = render(f.value, values)
    if f.encoding in ("hex", "bcd"):
        digits = text.replace(" ", "").upper()
        pattern = r"[0-9A-F]*" if f.encoding == "hex" else r"[0-9]*"
        if not re.fullmatch(pattern, digits) or len(digits) % 2:
            raise ValueError(f"{digits!r} is not {'hex' if f.encoding == 'hex' else 'BCD'}"
                             " (an even number of digits)")
        raw = bytes.fromhex(digits)
        if f.length is not None and len(raw) != f.length:
            raise ValueError(f"is {len(raw)} byte(s) ({digits}), the field is {f.length}")
        return raw
    if f.encoding == "uint":
        if not re.fullmatch(r"\d+", text):
            raise ValueError(f"{text!r} is not a decimal integer")
        try:
            return int(text).to_bytes(f.length, "big")
        except OverflowError:
            raise ValueError(f"{text} does not fit in {f.length} byte(s)") from None
    raw = text.encode("utf-8" if f.encoding == "text" else "gbk")
    if len(raw) > f.length:
        raise ValueError(f"text is {len(raw)} bytes, the field is {f.length}")
    return raw + bytes((f.pad,)) * (f.length - len(raw))


def render_content(content: Content, values: dict) -> bytes:
    if content.hex is not None:
        f = Field("", None, content.hex)
        body = encode_field(f, values)
    else:
        body = b"".join(encode_field(f, values) for f in content.fields)
    if content.tag is not None:
        body = bytes((content.tag, len(body))) + body
    return body


def pin_bytes(pin: str) -> bytes:
    """Packed BCD padded with ``F``: ``12345`` → ``12 34 5F``."""
    digits = pin + ("F" if len(pin) % 2 else "")
    return bytes.fromhex(digits)


# -- loading and validation ------------------------------------------------------------

class _Reader:
    """Walks the raw JSON with a field path, raising ProfileError on the first problem."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, where: str, reason: str):
        raise ProfileError(self.path, where, reason)

    def obj(self, value, where: str, allowed: set, required: set = frozenset()) -> dict:
        if not isinstance(value, dict):
            self.fail(where, "expected an object")
        for key in value:
            if key not in allowed:
                self.fail(f"{where}.{key}" if where else key,
                          f"unknown field (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value:
                self.fail(f"{where}.{key}" if where else key, "missing (required)")
        return value

    def string(self, d: dict, key: str, where: str, default=None, required=False) -> str | None:
        if key not in d:
            if required:
                self.fail(f"{where}.{key}", "missing (required)")
            return default
        value = d[key]
        if not isinstance(value, str):
            self.fail(f"{where}.{key}", "expected a string")
        return value

    def boolean(self, d: dict, key: str, where: str, default: bool) -> bool:
        value = d.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{where}.{key}", "expected true or false")
        return value

    def integer(self, d: dict, key: str, where: str, low: int, high: int, default=None, required=False):
        if key not in d:
            if required:
                self.fail(f"{where}.{key}", "missing (required)")
            return default
        value = d[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(f"{where}.{key}", f"must be an integer from {low} to {high} (got {value!r})")
        return value

    def hexbytes(self, d: dict, key: str, where: str, length: int | None = None, default=None,
                 required=False) -> bytes | None:
        text = self.string(d, key, where, None, required)
        if text is None:
            return default
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            self.fail(f"{where}.{key}", f"not valid hex: {text!r}")
        if length is not None and len(raw) != length:
            self.fail(f"{where}.{key}", f"must be {length} byte(s) = {2 * length} hex digits (got {text!r})")
        return raw

    def byte(self, d: dict, key: str, where: str, default=None, required=False) -> int | None:
        raw = self.hexbytes(d, key, where, 1, None, required)
        return default if raw is None else raw[0]

    def fid(self, d: dict, key: str, where: str, required=True) -> int | None:
        raw = self.hexbytes(d, key, where, 2, None, required)
        return None if raw is None else int.from_bytes(raw, "big")

    def template(self, text, where: str, params: dict) -> str:
        if not isinstance(text, str):
            self.fail(where, "expected a string")
        try:
            names = template_names(text)
        except ValueError as exc:
            self.fail(where, str(exc))
        for name in names:
            if name not in params:
                self.fail(where, f"refers to unknown parameter {{{name}}} "
                                 f"(declared: {', '.join(sorted(params)) or 'none'})")
        return text


def _sample_values(params: dict) -> dict:
    """Representative values for static length checks of templates."""
    out = {}
    for name, p in params.items():
        if p.type == "int":
            out[name] = p.min or 0
        elif p.type == "hex":
            out[name] = "00" * (p.length or 0)
        elif p.type == "digits":
            out[name] = "0" * (p.length or 0)
        elif p.type == "date":
            out[name] = "20260101"
        elif p.type == "pin":
            out[name] = "123456"
        else:
            out[name] = ""
    return out


def _static_length(r: _Reader, f: Field, params: dict, where: str) -> int | None:
    """A field's byte length when it can be known without values (literal values are checked now)."""
    names = template_names(f.value)
    if f.length is not None and names:
        return f.length
    if not names:
        try:
            return len(encode_field(f, {}))
        except ValueError as exc:
            r.fail(f"{where}.value", str(exc))
    if all(params[n].type in ("hex", "digits", "date") and (params[n].length or params[n].type == "date")
           for n in names):
        try:
            return len(encode_field(f, _sample_values(params)))
        except ValueError as exc:
            r.fail(f"{where}.value", str(exc))
    return None


def _parse_param(r: _Reader, name: str, d, where: str) -> Param:
    if not PARAM_PATTERN.match(name):
        r.fail(where, "a parameter name is lower case letters, digits and _ (at most 32)")
    d = r.obj(d, where, {"type", "default", "help", "length", "min", "max"}, {"type"})
    t = d["type"]
    if t not in PARAM_TYPES:
        r.fail(f"{where}.type", f"must be one of {', '.join(PARAM_TYPES)} (got {t!r})")
    default = d.get("default")
    if default is not None:
        if t == "int" and not (isinstance(default, int) and not isinstance(default, bool)) \
                and not (isinstance(default, str) and "{" in default):
            r.fail(f"{where}.default", "expected an integer (or a template string)")
        if t != "int" and not isinstance(default, str):
            r.fail(f"{where}.default", "expected a string")
    p = Param(name, t, default, r.string(d, "help", where, ""),
              r.integer(d, "length", where, 1, 255), r.integer(d, "min", where, 0, 10 ** 20),
              r.integer(d, "max", where, 0, 10 ** 20))
    if t == "int" and (p.min is None or p.max is None):
        r.fail(where, "an int parameter needs min and max")
    return p


def _parse_fields(r: _Reader, items, where: str, params: dict) -> list:
    if not isinstance(items, list) or not items:
        r.fail(where, "expected a non-empty list of fields")
    fields = []
    for i, fd in enumerate(items):
        fw = f"{where}[{i}]"
        fd = r.obj(fd, fw, {"name", "length", "value", "encoding", "pad", "fill"})
        name = r.string(fd, "name", fw, f"#{i}")
        fw = f"{where}.{name}" if "name" in fd else fw
        if "fill" in fd:  # a constant run of one byte: {"length": 45, "fill": "00"}
            if "value" in fd or "encoding" in fd or "pad" in fd:
                r.fail(fw, "a fill field has only name, length and fill")
            fill = r.byte(fd, "fill", fw)
            fields.append(Field(name, r.integer(fd, "length", fw, 1, 65535, required=True), "",
                                "fill", fill))
            continue
        if "value" not in fd:
            r.fail(f"{fw}.value", "missing (or give fill and length for a constant run)")
        encoding = r.string(fd, "encoding", fw, "hex")
        if encoding not in ENCODINGS:
            r.fail(f"{fw}.encoding", f"must be one of {', '.join(ENCODINGS)} (got {encoding!r})")
        length = r.integer(fd, "length", fw, 1, 65535)
        if length is None and encoding not in ("hex", "bcd"):
            r.fail(f"{fw}.length", f"required for encoding {encoding}")
        value = fd["value"]
        if isinstance(value, int) and not isinstance(value, bool) and encoding == "uint":
            value = str(value)
        value = r.template(value, f"{fw}.value", params)
        f = Field(name, length, value, encoding, r.byte(fd, "pad", fw, 0x00))
        size = _static_length(r, f, params, fw)
        if f.length is None and size is not None:
            f.length = size
        fields.append(f)
    return fields


def _parse_content(r: _Reader, value, where: str, params: dict, allow_tag: bool) -> Content:
    if isinstance(value, str):
        text = r.template(value, where, params)
        if not template_names(text):
            try:
                bytes.fromhex(text)
            except ValueError:
                r.fail(where, f"not valid hex: {text!r}")
        return Content(hex=text, where=where)
    if isinstance(value, list):
        return Content(fields=_parse_fields(r, value, where, params), where=where)
    if isinstance(value, dict) and allow_tag:
        d = r.obj(value, where, {"tag", "content"}, {"tag", "content"})
        inner = _parse_content(r, d["content"], f"{where}.content", params, False)
        inner.tag = r.byte(d, "tag", where)
        inner.where = where
        return inner
    r.fail(where, "expected a list of fields or a hex template string"
           + (', or {"tag": .., "content": ..}' if allow_tag else ""))


def content_length(content: Content, params: dict) -> int | None:
    """Static byte length of a content (None if it depends on values)."""
    if content.fields is not None:
        if any(f.length is None for f in content.fields):
            return None
        n = sum(f.length for f in content.fields)
    else:
        if template_names(content.hex):
            return None
        n = len(bytes.fromhex(content.hex))
    return n + (2 if content.tag is not None else 0)


def _key_byte(r: _Reader, d: dict, where: str) -> int:
    value = d.get("key_byte", "FF")
    if isinstance(value, str):
        return r.byte(d, "key_byte", where, 0xFF)
    kb = r.obj(value, f"{where}.key_byte", {"protected_reads", "read_key", "write_key"})
    read_key = r.integer(kb, "read_key", f"{where}.key_byte", 0, 3, 0)
    write_key = r.integer(kb, "write_key", f"{where}.key_byte", 0, 3, 0)
    protected_reads = r.boolean(kb, "protected_reads", f"{where}.key_byte", False)
    # b8 = 1 plain reads; b7..b5 = 1; b4b3 read key, b2b1 write key, each coded 11→0 … 00→3
    return (0x00 if protected_reads else 0x80) | 0x70 | ((3 - read_key) << 2) | (3 - write_key)


def _parse_ef(r: _Reader, d, where: str, params: dict) -> EFSpec:
    if not isinstance(d, dict):
        r.fail(where, "expected an object")
    fid = r.fid(d, "fid", where)
    where = f"{where.rsplit('[', 1)[0]}.{fid:04X}" if fid is not None else where
    common = {"fid", "type", "name", "read", "write", "protection", "key_byte"}
    kind = d.get("type")
    if not isinstance(kind, str) or kind not in FILE_TYPES:
        r.fail(f"{where}.type", f"must be one of {', '.join(FILE_TYPES)} (got {kind!r})")
    extra = {"binary": {"size", "content", "fill"}, "variable": {"size", "records"},
             "fixed": {"count", "record_length", "records", "fill"},
             "cyclic": {"count", "record_length", "records", "fill"},
             "purse": {"use", "tac_key", "log"}}[kind]
    allowed = (common | extra) - ({"read", "write", "protection", "key_byte"} if kind == "purse" else set())
    r.obj(d, where, allowed)
    if fid in (MF_FID, 0x0000, 0xFFFF):
        r.fail(f"{where}.fid", f"{fid:04X} is reserved")
    name = r.string(d, "name", where, f"{fid:04X}")
    if kind == "purse":
        if fid not in (0x0001, 0x0002):
            r.fail(f"{where}.fid", "a purse is 0001 (ED) or 0002 (EP)")
        log = r.fid(d, "log", where, required=False)
        log = 0x0018 if log is None else log
        if not 1 <= log <= 0x1F:
            r.fail(f"{where}.log", "the transaction log must have an SFI (FID 0001..001F)")
        return EFSpec(name, fid, kind, 0, r.byte(d, "use", where, 0xF0), r.integer(d, "tac_key", where, 0, 254, 0),
                      0xFF, tac_key=r.integer(d, "tac_key", where, 0, 254, 0), log=log, where=where)
    protection_name = r.string(d, "protection", where, "none")
    if protection_name not in PROTECTIONS:
        r.fail(f"{where}.protection", f"must be one of {', '.join(PROTECTIONS)} (got {protection_name!r})")
    ef = EFSpec(name, fid, kind, PROTECTIONS[protection_name], r.byte(d, "read", where, required=True),
                r.byte(d, "write", where, required=True), _key_byte(r, d, where), where=where,
                fill=r.byte(d, "fill", where, 0x00))
    if kind in ("binary", "variable"):
        ef.size = r.integer(d, "size", where, 1, 0x7FFF, required=True)
    else:
        ef.count = r.integer(d, "count", where, 2 if kind == "cyclic" else 1, 254, required=True)
        ef.record_length = r.integer(d, "record_length", where, 1, MAX_RECORD_LENGTH, required=True)
    if kind == "binary" and "content" in d:
        ef.content = _parse_content(r, d["content"], f"{where}.content", params, False)
        n = content_length(ef.content, params)
        if n is not None and n > ef.size:
            r.fail(f"{where}.content", f"is {n} bytes, the file is {ef.size}")
    if kind != "binary" and "records" in d:
        records = d["records"]
        if records == "dir":
            ef.records = "dir"
        elif not isinstance(records, list):
            r.fail(f"{where}.records", 'expected a list of records or "dir"')
        else:
            if kind in ("fixed", "cyclic") and len(records) > ef.count:
                r.fail(f"{where}.records", f"{len(records)} records, the file holds {ef.count}")
            ef.records = []
            used = 0
            for i, rec in enumerate(records):
                rw = f"{where}.records[{i}]"
                c = _parse_content(r, rec, rw, params, kind == "variable")
                n = content_length(c, params)
                if n is not None:
                    if kind == "variable":
                        if n > MAX_RECORD_LENGTH:
                            r.fail(rw, f"is {n} bytes, a record is at most {MAX_RECORD_LENGTH}")
                        used += n + 1
                    elif n > ef.record_length:
                        r.fail(rw, f"is {n} bytes, records are {ef.record_length}")
                ef.records.append(c)
            if kind == "variable" and used > ef.size:
                r.fail(f"{where}.records", f"need {used} bytes (each record + 1), the file has {ef.size}")
    return ef


def _parse_key(r: _Reader, d, where: str, params: dict) -> KeySpec:
    d = r.obj(d, where, {"name", "type", "id", "role", "index", "diversify", "value", "use", "change",
                         "state", "tries", "version", "alg_id", "secure_update"}, {"type"})
    raw_type = d["type"]
    key_type = KEY_TYPES.get(raw_type) if isinstance(raw_type, str) else None
    if key_type is None and isinstance(raw_type, str) and re.fullmatch(r"[0-9A-Fa-f]{2}", raw_type):
        key_type = int(raw_type, 16)
    if key_type not in KEY_TYPES.values():
        r.fail(f"{where}.type", f"must be one of {', '.join(KEY_TYPES)} or their hex type (got {raw_type!r})")
    kid = r.integer(d, "id", where, 0, 254, 0)
    name = r.string(d, "name", where, f"{key_type:02X}/{kid:02X}")
    where = f"{where.rsplit('[', 1)[0]}.{name}" if "name" in d else where
    role = r.string(d, "role", where)
    value = d.get("value")
    if key_type == KeyType.PIN:
        if role is not None:
            r.fail(f"{where}.role", "a PIN takes a value (e.g. \"{pin}\"), not a key-set role")
        if value is None:
            r.fail(f"{where}.value", 'missing: a PIN needs a value, e.g. "{pin}"')
        value = r.template(value, f"{where}.value", params)
    else:
        if value is not None:
            r.fail(f"{where}.value", "keys come from the key set (give a role); only PINs take a value")
        if role is None:
            r.fail(f"{where}.role", "missing: which key-set role this key is diversified from")
        if not ROLE_PATTERN.match(role):
            r.fail(f"{where}.role", "a role is lower case letters, digits and _")
    use = r.byte(d, "use", where, 0xF0)
    change = r.byte(d, "change", where, 0xEF if key_type == KeyType.PIN else 0xAA)
    if key_type in COUNTED_TYPES:
        for bad in ("version", "alg_id"):
            if bad in d:
                r.fail(f"{where}.{bad}", f"type {key_type:02X} has an error counter, not a version/algorithm")
        if key_type in (KeyType.EXTERNAL_AUTH, KeyType.PIN):
            state = r.byte(d, "state", where, required=True)
        else:
            if "state" in d:
                r.fail(f"{where}.state", f"type {key_type:02X} has no subsequent state (its byte is FF)")
            state = 0xFF
        tries = r.integer(d, "tries", where, 1, 15, 3)
        b3, b4 = state, (tries << 4) | tries
    else:
        for bad in ("state", "tries"):
            if bad in d:
                r.fail(f"{where}.{bad}", f"type {key_type:02X} has a version and algorithm id, not {bad}")
        b3 = r.integer(d, "version", where, 0, 255, 1)
        b4 = r.byte(d, "alg_id", where)
    return KeySpec(name, key_type, kid, use, change, b3, b4, role, r.integer(d, "index", where, 1, 15, 1),
                   r.boolean(d, "diversify", where, True), value, r.boolean(d, "secure_update", where, False),
                   where)


def _parse_apdu(r: _Reader, d, where: str, params: dict, with_df: bool) -> Apdu:
    d = r.obj(d, where, {"apdu", "expect", "label"} | ({"df"} if with_df else set()), {"apdu"})
    apdu = r.template(d["apdu"], f"{where}.apdu", params)
    expect = d.get("expect", "9000")
    expects = expect.split("|") if isinstance(expect, str) else None
    if not expects or not all(re.fullmatch(r"[0-9A-Fa-fXx]{4}", e) for e in expects):
        r.fail(f"{where}.expect", 'status words like "9000" or "9000|6A82" (X = any nibble)')
    return Apdu(apdu, tuple(e.upper() for e in expects), r.string(d, "label", where, ""),
                r.string(d, "df", where) if with_df else None, where)


def _df_name(r: _Reader, d: dict, where: str) -> bytes:
    if "aid" in d and "df_name" in d:
        r.fail(where, "give aid (hex) or df_name (text), not both")
    if "aid" in d:
        name = r.hexbytes(d, "aid", where)
        field_name = "aid"
    elif "df_name" in d:
        text = r.string(d, "df_name", where)
        name = text.encode("ascii", "replace")
        field_name = "df_name"
    else:
        r.fail(where, "missing aid (hex) or df_name (text)")
    if not 5 <= len(name) <= 16:
        r.fail(f"{where}.{field_name}", f"a DF name is 5 to 16 bytes (got {len(name)})")
    return name


def _parse_df(r: _Reader, d, where: str, params: dict, is_mf: bool) -> DFSpec:
    allowed = {"create", "erase", "app_file_id", "space", "spare", "serial", "key_file", "keys", "files",
               "apdus"}
    if is_mf:
        allowed |= {"df_name", "aid"}
    else:
        allowed |= {"name", "fid", "aid", "df_name", "label"}
    d = r.obj(d, where, allowed)
    if is_mf:
        name, fid = "mf", MF_FID
        df_name = _df_name(r, d, where) if ("aid" in d or "df_name" in d) else MF_DEFAULT_NAME
    else:
        name = r.string(d, "name", where, required=True)
        if not NAME_PATTERN.match(name):
            r.fail(f"{where}.name", "an application name is lower case letters, digits, - and _")
        where = f"applications.{name}"
        fid = r.fid(d, "fid", where)
        if fid in (MF_FID, 0x0000, 0xFFFF) or 1 <= fid <= 0x1F:
            r.fail(f"{where}.fid", f"{fid:04X} cannot be an application (reserved or an SFI)")
        df_name = _df_name(r, d, where)
    space = d.get("space", "auto")
    if space != "auto":
        space = r.integer(d, "space", where, 1, 0xFFFF)
    elif is_mf:
        space = 0xFFFF
    else:
        space = None
    df = DFSpec(name, fid, df_name, r.byte(d, "create", where, required=True), r.byte(d, "erase", where, required=True),
                r.byte(d, "app_file_id", where, 0x01 if is_mf else 0x95), r.string(d, "label", where, ""),
                space, r.integer(d, "spare", where, 0, 0xFFFF, 0), where=where)
    if not df.label.isascii() or len(df.label) > 16:
        r.fail(f"{where}.label", "an application label is ASCII, at most 16 characters")
    if "serial" in d:
        df.serial = r.template(d["serial"], f"{where}.serial", params)
    kf = r.obj(d.get("key_file", {}), f"{where}.key_file", {"add", "spare"})
    df.key_file_add = r.byte(kf, "add", f"{where}.key_file", 0xAA)
    df.key_file_spare = r.integer(kf, "spare", f"{where}.key_file", 0, 0xFFFF, 0)
    keys = d.get("keys", [])
    if not isinstance(keys, list):
        r.fail(f"{where}.keys", "expected a list of keys")
    seen_names, seen_ids = {}, {}
    for i, kd in enumerate(keys):
        k = _parse_key(r, kd, f"{where}.keys[{i}]", params)
        if k.name in seen_names:
            r.fail(k.where, f"duplicate key name {k.name}")
        if (k.type, k.kid) in seen_ids:
            r.fail(k.where, f"key type {k.type:02X} id {k.kid:02X} is already {seen_ids[(k.type, k.kid)]}")
        seen_names[k.name] = k
        seen_ids[(k.type, k.kid)] = k.name
        df.keys.append(k)
    if df.keys and (KeyType.EXTERNAL_AUTH, 0) not in seen_ids:
        r.fail(f"{where}.keys", "a DF with keys needs its master key (external_auth id 0) to be re-entered "
                                "after personalization")
    secure = [k for k in df.keys if k.secure_update]
    if secure and df.master() is None:
        r.fail(secure[0].where, "secure_update needs the DF master key (external_auth id 0)")
    if df.serial is None and any(k.role and k.diversify for k in df.keys):
        r.fail(f"{where}.serial", "missing: the serial the keys of this DF are diversified with")
    files = d.get("files", [])
    if not isinstance(files, list):
        r.fail(f"{where}.files", "expected a list of files")
    for i, fd in enumerate(files):
        ef = _parse_ef(r, fd, f"{where}.files[{i}]", params)
        if df.file(ef.fid):
            r.fail(ef.where, f"duplicate FID {ef.fid:04X}")
        df.files.append(ef)
    lines = {k.kid for k in df.keys if k.type == KeyType.LINE_PROTECTION}
    for ef in df.files:
        if ef.kind == "purse":
            log = df.file(ef.log)
            if log is None or log.kind != "cyclic" or log.record_length != 23:
                r.fail(f"{ef.where}.log", f"{ef.log:04X} must be a cyclic file of this DF with 23-byte records")
            if not any(k.type == KeyType.TAC and k.kid == ef.tac_key for k in df.keys):
                r.fail(f"{ef.where}.tac_key", f"no tac key with id {ef.tac_key} in this DF")
            continue
        if ef.protection:
            kid = 3 - (ef.key_byte & 0x03)
            if kid not in lines:
                r.fail(f"{ef.where}.protection", f"writes need line-protection key id {kid} in this DF "
                                                 "(a key of type line_protection)")
            kid = 3 - ((ef.key_byte >> 2) & 0x03)
            if not ef.key_byte & 0x80 and kid not in lines:
                r.fail(f"{ef.where}.key_byte", f"protected reads need line-protection key id {kid} in this DF")
        if ef.records == "dir" and not is_mf:
            r.fail(f"{ef.where}.records", '"dir" records belong to a DIR file of the MF')
    if df.app_file_id & 0x80:
        target = df.file(df.app_file_id & 0x1F)
        if target is None or target.kind != "binary":
            r.fail(f"{where}.app_file_id", f"{df.app_file_id:02X} names SFI {df.app_file_id & 0x1F:02X} "
                                           "for the FCI (9F0C), but there is no such binary file")
    elif is_mf and df.app_file_id & 0x1F:
        target = df.file(df.app_file_id & 0x1F)
        if target is not None and target.kind not in ("variable", "fixed"):
            r.fail(f"{where}.app_file_id", "the DIR file it names must be a record file")
    apdus = d.get("apdus", [])
    if not isinstance(apdus, list):
        r.fail(f"{where}.apdus", "expected a list")
    df.apdus = [_parse_apdu(r, a, f"{where}.apdus[{i}]", params, False) for i, a in enumerate(apdus)]
    return df


def key_file_size(df: DFSpec, pin_length: int = 6) -> int:
    """Bytes of the DF's key file: each key record is value length + 8, plus the spare."""
    total = 0
    for k in df.keys:
        length = pin_length if k.type == KeyType.PIN else 16
        total += length + KEY_RECORD_OVERHEAD
    return total + df.key_file_spare


def df_space(df: DFSpec, pin_length: int = 6) -> int:
    """What the DF reserves: its own files (key file included) plus its spare, unless fixed."""
    if df.space is not None:
        return df.space
    used = (key_file_size(df, pin_length) + FILE_HEADER if df.keys else 0) + sum(f.cost() for f in df.files)
    return used + df.spare


def df_cost(df: DFSpec, pin_length: int = 6) -> int:
    return df_space(df, pin_length) + DF_HEADER


def _source_profile(r: _Reader, ref, where: str) -> tuple:
    """The raw JSON of a profile named in ``from`` (shipped name, or a path relative to this file)."""
    if not isinstance(ref, str) or not ref:
        r.fail(where, "expected a profile name or path")
    base = Path(r.path).parent if r.path and not r.path.startswith("<") else Path.cwd()
    try:
        candidate = base / ref
        if not candidate.suffix and not candidate.exists():
            candidate = candidate.with_suffix(".json")
        if not candidate.exists() and ref in shipped():
            candidate = SHIPPED_DIR / f"{ref}.json"
        raw = json.loads(read_bounded(candidate, JSON_FILE_LIMIT, "a profile").decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, FileRefused) as exc:  # ValueError: a NUL in the name, …
        if isinstance(exc, json.JSONDecodeError):
            r.fail(where, f"profile {ref!r} is not valid JSON: line {exc.lineno}: {exc.msg}")
        r.fail(where, f"cannot read profile {ref!r}: {getattr(exc, 'strerror', None) or exc}")
    except RecursionError:
        r.fail(where, f"profile {ref!r} is nested too deeply")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        r.fail(where, f"{candidate} is not a cardos profile")
    return raw, str(candidate)


def _expand_includes(r: _Reader, d: dict) -> dict:
    """Resolve ``{"from": PROFILE, "application": NAME, ...overrides}`` entries of ``applications``.

    The named application of the other profile is copied (top-level fields
    given next to ``from`` replace its own), with the parameters it needs
    (unless this profile declares them) and its lock-down steps.
    """
    apps = d.get("applications")
    if not isinstance(apps, list) or not any(isinstance(a, dict) and "from" in a for a in apps):
        return d
    d = dict(d)
    if not isinstance(d.get("parameters") or {}, dict):
        r.fail("parameters", "expected an object")
    if not isinstance(d.get("lockdown") or [], list):
        r.fail("lockdown", "expected a list of steps")
    params = dict(d.get("parameters") or {})
    lockdown = list(d.get("lockdown") or [])
    out = []
    for i, entry in enumerate(apps):
        if not (isinstance(entry, dict) and "from" in entry):
            out.append(entry)
            continue
        where = f"applications[{i}]"
        source, source_path = _source_profile(r, entry["from"], f"{where}.from")
        source_apps, source_params = source.get("applications"), source.get("parameters")
        if not isinstance(source_apps, list) or not isinstance(source_params or {}, dict) \
                or not isinstance(source.get("lockdown") or [], list):
            r.fail(f"{where}.from", f"{source_path} is not a valid profile (check it on its own)")
        candidates = [a for a in source_apps if isinstance(a, dict)]
        wanted = entry.get("application")
        if wanted is None and len(candidates) == 1:
            app = candidates[0]
        else:
            app = next((a for a in candidates if a.get("name") == wanted), None)
        if app is None:
            names = ", ".join(str(a.get("name")) for a in candidates)
            r.fail(f"{where}.application", f"{source_path} has no application {wanted!r} (it has: {names})")
        if "from" in app:
            r.fail(f"{where}.from", "the source application itself uses from (one level only)")
        original = app.get("name")
        app = json.loads(json.dumps(app))
        for key, value in entry.items():
            if key not in ("from", "application"):
                app[key] = value
        out.append(app)
        for name, spec in (source.get("parameters") or {}).items():
            params.setdefault(name, spec)
        for step in source.get("lockdown") or []:
            if isinstance(step, dict) and step.get("df") == original:
                step = dict(step)
                step["df"] = app.get("name")
                lockdown.append(step)
    d["applications"] = out
    d["parameters"] = params
    d["lockdown"] = lockdown
    return d


def from_dict(raw, path: str = "<profile>") -> Profile:
    """Validate a profile's JSON object."""
    r = _Reader(path)
    if isinstance(raw, dict):
        raw = _expand_includes(r, raw)
    d = r.obj(raw, "", {"format", "version", "name", "kind", "description", "parameters", "mf", "applications",
                        "lockdown", "authorize", "transport_key_role", "notes"},
              {"format", "version", "name", "kind"})
    if d["format"] != FORMAT:
        r.fail("format", f'not a cardos profile (expected "{FORMAT}", got {d["format"]!r})')
    if d["version"] != VERSION:
        r.fail("version", f"unsupported version {d['version']!r} (this cardos reads {VERSION})")
    name = r.string(d, "name", "")
    if not NAME_PATTERN.match(name):
        r.fail("name", "lower case letters, digits, - and _ (at most 32)")
    kind = d["kind"]
    if kind not in ("card", "application"):
        r.fail("kind", f'must be "card" (a whole card) or "application" (added to an issued card), got {kind!r}')
    if not isinstance(d.get("parameters", {}), dict):
        r.fail("parameters", "expected an object")
    raw_params = r.obj(d.get("parameters", {}), "parameters", set(d.get("parameters", {}) or {}))
    params = {pn: _parse_param(r, pn, pd, f"parameters.{pn}") for pn, pd in raw_params.items()}
    for pn, p in params.items():
        if isinstance(p.default, str) and "{" in p.default:
            r.template(p.default, f"parameters.{pn}.default", params)
    mf = None
    if kind == "card":
        if "mf" not in d:
            r.fail("mf", 'missing: a "card" profile describes the MF')
        if "authorize" in d:
            r.fail("authorize", 'only an "application" profile authorizes itself on an issued card')
        mf = _parse_df(r, d["mf"], "mf", params, True)
        if mf.master() is None:
            r.fail("mf.keys", "the MF needs its master key (external_auth id 0)")
    elif "mf" in d:
        r.fail("mf", 'an "application" profile adds applications under an existing MF; it has no mf')
    apps_raw = d.get("applications", [])
    if not isinstance(apps_raw, list) or (kind == "application" and not apps_raw):
        r.fail("applications", "expected a list of applications" + (" (at least one)" if kind == "application" else ""))
    apps = []
    for i, ad in enumerate(apps_raw):
        app = _parse_df(r, ad, f"applications[{i}]", params, False)
        for other in apps:
            if other.name == app.name:
                r.fail(app.where, "duplicate application name")
            if other.fid == app.fid:
                r.fail(f"{app.where}.fid", f"{app.fid:04X} is already application {other.name}")
            if other.df_name == app.df_name:
                r.fail(f"{app.where}.aid", f"same AID as application {other.name}")
        if mf and mf.file(app.fid):
            r.fail(f"{app.where}.fid", f"{app.fid:04X} is already a file of the MF")
        if not app.keys:
            r.fail(f"{app.where}.keys", "an application needs a key file with at least its master key")
        apps.append(app)
    authorize = None
    if kind == "application":
        ad = r.obj(d.get("authorize"), "authorize", {"role", "index", "id", "serial_sfi", "serial_offset",
                                                     "serial_length"}, {"role"})
        authorize = Authorize(r.string(ad, "role", "authorize"), r.integer(ad, "index", "authorize", 1, 15, 1),
                              r.integer(ad, "id", "authorize", 0, 254, 1),
                              r.integer(ad, "serial_sfi", "authorize", 1, 30, 5),
                              r.integer(ad, "serial_offset", "authorize", 0, 255, 8),
                              r.integer(ad, "serial_length", "authorize", 1, 10, 8))
        if "card_serial" not in params:
            r.fail("parameters", 'an application profile declares "card_serial" (hex, read from the card)')
    lockdown = []
    lock_raw = d.get("lockdown", [])
    if not isinstance(lock_raw, list):
        r.fail("lockdown", "expected a list of steps")
    dfs = {x.name: x for x in ([mf] if mf else []) + apps}
    for i, step in enumerate(lock_raw):
        where = f"lockdown[{i}]"
        if isinstance(step, dict) and "apdu" in step:
            a = _parse_apdu(r, step, where, params, True)
            if a.df is not None and a.df not in dfs:
                r.fail(f"{where}.df", f"no DF named {a.df} (have {', '.join(dfs)})")
            lockdown.append(a)
            continue
        s = r.obj(step, where, {"df", "keys", "use", "change"}, {"df", "keys"})
        target = dfs.get(s["df"]) if isinstance(s["df"], str) else None
        if target is None:
            r.fail(f"{where}.df", f"no DF named {s['df']!r} (have {', '.join(dfs)})")
        names = s["keys"]
        if names == "*":
            names = [k.name for k in target.keys if k.type != KeyType.PIN]
        if not isinstance(names, list) or not names:
            r.fail(f"{where}.keys", 'a list of key names of that DF, or "*"')
        for kn in names:
            key = target.key(kn) if isinstance(kn, str) else None
            if key is None:
                r.fail(f"{where}.keys", f"no key named {kn!r} in {target.name}")
            if key.type == KeyType.PIN:
                r.fail(f"{where}.keys", f"{kn} is a PIN: its change right is fixed (EF)")
        if "use" not in s and "change" not in s:
            r.fail(where, "say what to lock: use and/or change (access-right bytes)")
        lockdown.append(LockKeys(target.name, list(names), r.byte(s, "use", where), r.byte(s, "change", where),
                                 where))
    profile = Profile(name, kind, r.string(d, "description", "", ""), params, mf, apps, lockdown, authorize,
                      r.string(d, "transport_key_role", "", "transport"), path, d)
    _check_space(r, profile)
    return profile


def _check_space(r: _Reader, profile: Profile) -> None:
    for df in profile.dfs():
        if df.space is None or df.is_mf:
            continue
        need = df_space(DFSpec(**{**df.__dict__, "space": None}))
        if df.space < need:
            r.fail(f"{df.where}.space", f"{df.space} bytes, but its files need {need}")


def load(name_or_path) -> Profile:
    """A shipped profile by name (``"city"``) or a profile file by path."""
    path = Path(name_or_path)
    if not path.exists() and isinstance(name_or_path, str) and name_or_path in shipped():
        path = SHIPPED_DIR / f"{name_or_path}.json"
    try:
        raw = read_json(path, "profile", f"no such profile file (shipped profiles: {', '.join(shipped())})")
    except JsonFileProblem as exc:
        raise ProfileError(path, "", exc.problem) from None
    return from_dict(raw, str(path))


def shipped() -> list[str]:
    """Names of the profiles shipped with cardos."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json"))
