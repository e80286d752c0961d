"""A reusable APDU decoder: command names, field-split data, status-word meanings.

Used by the script runner's trace (``cardos run``) and by ``cardos decode``.
It never raises on odd input: what it cannot split stays one ``data`` field.

>>> cmd = decode_command(bytes.fromhex("805000020B0100000064112233445566" "10"))
>>> cmd.name
'INITIALIZE FOR LOAD (EP)'
>>> [(f.name, f.value.hex().upper()) for f in cmd.fields]
[('key_id', '01'), ('amount', '00000064'), ('terminal', '112233445566')]
>>> cmd.le
16
>>> rsp = decode_response(bytes.fromhex("805000020B0100000064112233445566" "10"),
...                       bytes.fromhex("000003E8000101" "00" "0A0B0C0D" "01020304"))
>>> [(f.name, f.note) for f in rsp][:2]
[('balance', '10.00'), ('counter', '')]
>>> describe_sw(0x9401, "zh")
'金额不足'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from .apdu import CardError, parse
from .redact import secret_span
from .sw import describe

Layout = Sequence  # of (name, length) with length -1 = "the rest"


@dataclass
class Field:
    name: str
    value: bytes
    note: str = ""  # a human reading: amount in yuan, BCD date, ...
    secret: bool = False  # a PIN or key value: shown as ``*`` (cardos never prints secrets unasked)

    def hex(self) -> str:
        if self.secret:
            return "*" * (2 * len(self.value))
        return self.value.hex().upper()

    def byte_texts(self) -> list:
        """``["12", "34"]``, or ``["**", "**"]`` for a secret: one text per byte, for spaced output."""
        return ["**" if self.secret else f"{b:02X}" for b in self.value]


@dataclass
class DecodedCommand:
    raw: bytes
    name: str
    name_zh: str
    header: bytes
    lc: bytes = b""  # the Lc bytes as sent (1 or 3 bytes)
    fields: list = field(default_factory=list)
    le: int | None = None  # None: no Le
    le_bytes: bytes = b""
    valid: bool = True  # False: no ISO case fits the length

    def title(self, lang: str = "en") -> str:
        return self.name_zh if lang == "zh" else self.name


# -- field readings -----------------------------------------------------------

def _money(b: bytes) -> str:
    n = int.from_bytes(b, "big")
    return f"{n // 100}.{n % 100:02d}"


def _bcd_date(b: bytes) -> str:
    h = b.hex()
    return f"{h[0:4]}-{h[4:6]}-{h[6:8]}" if len(b) == 4 and h.isdigit() else ""


def _bcd_time(b: bytes) -> str:
    h = b.hex()
    return f"{h[0:2]}:{h[2:4]}:{h[4:6]}" if len(b) == 3 and h.isdigit() else ""


_TX_TYPES = {0x01: "ED load", 0x02: "EP load", 0x03: "unload", 0x04: "cash withdraw", 0x05: "ED purchase",
             0x06: "EP purchase", 0x07: "overdraw limit", 0x09: "CAPP purchase"}

NOTES: dict = {
    "amount": _money, "balance": _money, "overdraw_limit": _money, "limit": _money,
    "date": _bcd_date, "time": _bcd_time,
    "type": lambda b: _TX_TYPES.get(b[0], "") if len(b) == 1 else "",
    "name": lambda b: b.decode("ascii") if b and all(0x20 <= c < 0x7F for c in b) else "",
}


def split(data: bytes, layout: Layout) -> list:
    """Cut ``data`` by ``layout``; anything left over (or missing) goes in a last field."""
    out, pos = [], 0
    for name, length in layout:
        if pos >= len(data):
            break
        chunk = data[pos:] if length < 0 else data[pos:pos + length]
        if length >= 0 and len(chunk) < length:
            out.append(Field("data", data[pos:]))
            return out
        note = NOTES.get(name)
        out.append(Field(name, chunk, note(chunk) if note else ""))
        pos += len(chunk)
    if pos < len(data):
        out.append(Field("data", data[pos:]))
    return out


# -- command table --------------------------------------------------------------

def _create_layout(data: bytes) -> Layout:
    if data[:1] == b"\x38":
        return (("file_type", 1), ("size", 2), ("create_right", 1), ("erase_right", 1),
                ("app_file_id", 1), ("reserved", 2), ("name", -1))
    if data[:1] == b"\x3f":
        return (("file_type", 1), ("size", 2), ("df_sfi", 1), ("add_right", 1), ("reserved", 2))
    if data[:1] == b"\x2f":
        return (("file_type", 1), ("size", 2), ("use_right", 1), ("tac_key_id", 1), ("reserved", 1),
                ("record_sfi", 1))
    return (("file_type", 1), ("size", 2), ("read_right", 1), ("write_right", 1), ("reserved", 1),
            ("protection", 1))


def _change_pin_layout(data: bytes) -> Layout:
    cut = data.find(b"\xff")
    if cut < 0:
        return (("data", -1),)
    return (("old_pin", cut), ("separator", 1), ("new_pin", -1))


_INIT_REQ = (("key_id", 1), ("amount", 4), ("terminal", 6))
_INIT_LOAD_RSP = (("balance", 4), ("counter", 2), ("key_version", 1), ("algorithm", 1), ("random", 4),
                  ("mac1", 4))
_INIT_PURCHASE_RSP = (("balance", 4), ("counter", 2), ("overdraw_limit", 3), ("key_version", 1),
                      ("algorithm", 1), ("random", 4))
_RECORD_23 = (("counter", 2), ("overdraw_limit", 3), ("amount", 4), ("type", 1), ("terminal", 6),
              ("date", 4), ("time", 3))


@dataclass(frozen=True)
class CommandSpec:
    name: str
    name_zh: str
    request: Layout | Callable | None = None
    response: Layout | None = None
    purse: bool = False  # P2 names the purse (01 ED, 02 EP)


# (CLA class, INS) -> spec, or -> {P1: spec}
COMMANDS: dict = {
    (0x00, 0xA4): {0x00: CommandSpec("SELECT (FID)", "选择文件（文件标识）", (("fid", 2),), (("fci", -1),)),
                   0x02: CommandSpec("SELECT (EF)", "选择文件（EF）", (("fid", 2),), (("fci", -1),)),
                   0x04: CommandSpec("SELECT (name)", "选择文件（名称）", (("df_name", -1),), (("fci", -1),))},
    (0x00, 0xB0): CommandSpec("READ BINARY", "读二进制文件"),
    (0x00, 0xD6): CommandSpec("UPDATE BINARY", "修改二进制文件"),
    (0x00, 0xB2): CommandSpec("READ RECORD", "读记录文件"),
    (0x00, 0xDC): CommandSpec("UPDATE RECORD", "修改记录文件"),
    (0x00, 0xE2): CommandSpec("APPEND RECORD", "追加记录"),
    (0x00, 0xC0): CommandSpec("GET RESPONSE", "取响应数据"),
    (0x00, 0x84): CommandSpec("GET CHALLENGE", "取随机数", None, (("random", -1),)),
    (0x00, 0x82): CommandSpec("EXTERNAL AUTHENTICATE", "外部认证", (("cryptogram", 8),)),
    (0x00, 0x88): CommandSpec("INTERNAL AUTHENTICATE", "内部认证", None, (("result", -1),)),
    (0x00, 0x20): CommandSpec("VERIFY", "校验口令", (("pin", -1),)),
    (0x80, 0x24): CommandSpec("PIN UNBLOCK", "个人密码解锁", (("encrypted_pin", -1),)),
    (0x80, 0x5E): {0x01: CommandSpec("CHANGE PIN", "修改口令", _change_pin_layout),
                   0x00: CommandSpec("RELOAD PIN", "重装口令", (("data", -1),))},
    (0x80, 0x1E): CommandSpec("APPLICATION BLOCK", "应用锁定"),
    (0x80, 0x18): CommandSpec("APPLICATION UNBLOCK", "应用解锁"),
    (0x80, 0x16): CommandSpec("CARD BLOCK", "卡片锁定"),
    (0x80, 0xE0): CommandSpec("CREATE FILE", "建立文件", _create_layout),
    (0x80, 0x0E): CommandSpec("ERASE DF", "擦除目录文件"),
    (0x80, 0xD4): CommandSpec("WRITE KEY", "增加或修改密钥",
                              (("key_type", 1), ("use_right", 1), ("change_right", 1), ("header3", 1),
                               ("header4", 1), ("key", -1))),
    (0x80, 0x50): {0x00: CommandSpec("INITIALIZE FOR LOAD", "圈存初始化", _INIT_REQ, _INIT_LOAD_RSP, True),
                   0x01: CommandSpec("INITIALIZE FOR PURCHASE", "消费初始化", _INIT_REQ, _INIT_PURCHASE_RSP, True),
                   0x02: CommandSpec("INITIALIZE FOR CASH WITHDRAW", "取现初始化", _INIT_REQ, _INIT_PURCHASE_RSP,
                                     True),
                   0x03: CommandSpec("INITIALIZE FOR CAPP PURCHASE", "复合消费初始化", _INIT_REQ,
                                     _INIT_PURCHASE_RSP, True),
                   0x04: CommandSpec("INITIALIZE FOR UPDATE", "修改透支限额初始化",
                                     (("key_id", 1), ("terminal", 6)),
                                     (("balance", 4), ("counter", 2), ("overdraw_limit", 3), ("key_version", 1),
                                      ("algorithm", 1), ("random", 4), ("mac1", 4)), True),
                   0x05: CommandSpec("INITIALIZE FOR UNLOAD", "圈提初始化", _INIT_REQ, _INIT_LOAD_RSP, True)},
    (0x80, 0x52): CommandSpec("CREDIT FOR LOAD", "圈存", (("date", 4), ("time", 3), ("mac2", 4)),
                              (("tac", 4),)),
    (0x80, 0x54): {0x01: CommandSpec("DEBIT FOR PURCHASE", "消费", (("tsn", 4), ("date", 4), ("time", 3),
                                                                    ("mac1", 4)), (("tac", 4), ("mac2", 4))),
                   0x03: CommandSpec("DEBIT FOR UNLOAD", "圈提", (("date", 4), ("time", 3), ("mac2", 4)),
                                     (("mac3", 4),))},
    (0x80, 0x58): CommandSpec("UPDATE OVERDRAW LIMIT", "修改透支限额",
                              (("overdraw_limit", 3), ("date", 4), ("time", 3), ("mac2", 4)), (("tac", 4),)),
    (0x80, 0x5A): CommandSpec("GET TRANSACTION PROOF", "取交易认证", (("counter", 2),),
                              (("mac", 4), ("tac", 4)), True),
    (0x80, 0x5C): CommandSpec("GET BALANCE", "读余额", None, (("balance", 4),), True),
    (0x80, 0xDC): CommandSpec("UPDATE CAPP DATA CACHE", "更新复合应用数据缓存"),
    (0x80, 0xE2): CommandSpec("APPEND RECORD", "追加记录"),  # some FMCOS scripts send it with CLA 80
}

_PURSE_NAMES = {0x01: ("ED", "电子存折"), 0x02: ("EP", "电子钱包")}


def _spec(cla: int, ins: int, p1: int) -> CommandSpec | None:
    entry = COMMANDS.get((cla & 0xF0, ins))
    if isinstance(entry, dict):
        entry = entry.get(p1)
    return entry


def _names(spec: CommandSpec | None, cla: int, ins: int, p1: int, p2: int) -> tuple:
    if spec is None:
        return f"INS {ins:02X}", f"指令 {ins:02X}"
    en, zh = spec.name, spec.name_zh
    if spec.purse and p2 in _PURSE_NAMES:
        en, zh = f"{en} ({_PURSE_NAMES[p2][0]})", f"{zh}（{_PURSE_NAMES[p2][1]}）"
    if ins in (0xB0, 0xD6) and p1 & 0x80:
        en, zh = f"{en} (SFI {p1 & 0x1F:02X})", f"{zh}（SFI {p1 & 0x1F:02X}）"
    elif ins in (0xB2, 0xDC, 0xE2) and p2 >> 3:
        en, zh = f"{en} (SFI {p2 >> 3:02X})", f"{zh}（SFI {p2 >> 3:02X}）"
    if cla & 0x04:
        en, zh = f"{en} + MAC", f"{zh}（线路保护）"
    return en, zh


def decode_command(apdu: bytes, show_keys: bool = False) -> DecodedCommand:
    """Name and split a command APDU; PINs and key values (:mod:`cardos.redact`) are masked unless ``show_keys``."""
    apdu = bytes(apdu)
    if len(apdu) < 4:
        return DecodedCommand(apdu, "(too short)", "（过短）", apdu, valid=False)
    cla, ins, p1, p2 = apdu[:4]
    spec = _spec(cla, ins, p1)
    en, zh = _names(spec, cla, ins, p1, p2)
    try:
        cmd = parse(apdu)
    except CardError:
        fields = [Field("data", apdu[4:])] if apdu[4:] else []
        if not show_keys:
            _mark_secrets(apdu, fields, 4)
        return DecodedCommand(apdu, en, zh, apdu[:4], fields=fields, valid=False)
    data = cmd.data
    if cmd.extended:
        lc = apdu[4:7] if data else b""
        le_bytes = apdu[-2:] if cmd.le is not None else b""
        if cmd.le is not None and not data:
            le_bytes = apdu[5:7]
    else:
        lc = apdu[4:5] if data else b""
        le_bytes = apdu[-1:] if cmd.le is not None else b""
    fields = []
    if data:
        mac = b""
        if cla & 0x04 and len(data) >= 4:
            data, mac = data[:-4], data[-4:]
        layout = spec.request if spec is not None and not (cla & 0x04 and ins in (0xD4, 0x24)) else None
        if callable(layout):
            layout = layout(data)
        fields = split(data, layout) if layout else ([Field("data", data)] if data else [])
        if mac:
            fields.append(Field("mac", mac))
        if not show_keys:
            _mark_secrets(apdu, fields, 4 + len(lc))
    return DecodedCommand(apdu, en, zh, apdu[:4], lc, fields, cmd.le, le_bytes)


def _mark_secrets(apdu: bytes, fields: list, offset: int) -> None:
    """Mark the fields (laid end to end from ``offset``) that overlap the APDU's PIN or key value."""
    span = secret_span(apdu)
    if span is None:
        return
    for f in fields:
        f.secret = offset < span[1] and span[0] < offset + len(f.value)
        offset += len(f.value)


def decode_response(command: bytes, data: bytes) -> list:
    """Split response ``data`` (without SW) of ``command`` into named fields."""
    if not data:
        return []
    if len(command) < 4:
        return [Field("data", data)]
    cla, ins, p1, p2 = command[:4]
    spec = _spec(cla, ins, p1)
    layout = spec.response if spec is not None else None
    if ins == 0xB2 and len(data) == 23 and (p2 >> 3) == 0x18:
        layout = _RECORD_23
    if layout is None:
        return [Field("data", data)]
    return split(data, layout)


def describe_sw(sw: int, lang: str = "en") -> str:
    """The meaning of a status word in English or Chinese (``lang="zh"``)."""
    return describe(sw, lang)


def hex_spaced(b: bytes) -> str:
    return " ".join(f"{x:02X}" for x in b)
