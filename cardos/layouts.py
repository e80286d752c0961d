"""Byte layouts at the card's edges, declared with ``construct`` and compiled.

CREATE FILE data (reference §1.3), WRITE KEY data (§2.3), the FCI returned by
SELECT (§1.4) and the 23-byte transaction-detail record (§3.12).
"""
from __future__ import annotations

from construct import Bytes, Const, GreedyBytes, Int8ub, Int16ub, Int24ub, Int32ub, Prefixed, Struct


def _compiled(struct):
    try:
        return struct.compile()
    except Exception:  # pragma: no cover - construct without compiler support
        return struct


DF_CREATE = _compiled(Struct(
    "type" / Int8ub,
    "space" / Int16ub,
    "create_right" / Int8ub,
    "erase_right" / Int8ub,
    "app_file_id" / Int8ub,
    "reserved" / Bytes(2),
    "name" / GreedyBytes,
))
DF_CREATE_MIN = 8

# BYTE2-3 is a size (binary, variable record, key file, purse) or
# record count + record length (fixed and cyclic record files).
EF_CREATE = _compiled(Struct(
    "type" / Int8ub,
    "b2" / Int8ub,
    "b3" / Int8ub,
    "b4" / Int8ub,
    "b5" / Int8ub,
    "b6" / Int8ub,
    "b7" / Int8ub,
))
EF_CREATE_LENGTH = 7

KEY_DATA = _compiled(Struct(
    "type" / Int8ub,
    "use" / Int8ub,
    "change" / Int8ub,
    "b3" / Int8ub,
    "b4" / Int8ub,
    "value" / GreedyBytes,
))
KEY_HEADER_LENGTH = 5

TLV1 = _compiled(Struct("tag" / Int8ub, "value" / Prefixed(Int8ub, GreedyBytes)))
TLV2 = _compiled(Struct("tag" / Int16ub, "value" / Prefixed(Int8ub, GreedyBytes)))

FCI = _compiled(Struct(
    Const(b"\x6f"),
    "body" / Prefixed(Int8ub, Struct(
        Const(b"\x84"),
        "name" / Prefixed(Int8ub, GreedyBytes),
        Const(b"\xa5"),
        "proprietary" / Prefixed(Int8ub, GreedyBytes),
    )),
))

TRANSACTION_RECORD = _compiled(Struct(
    "counter" / Int16ub,
    "overdraw_limit" / Int24ub,
    "amount" / Int32ub,
    "type" / Int8ub,
    "terminal" / Bytes(6),
    "date" / Bytes(4),
    "time" / Bytes(3),
))
TRANSACTION_RECORD_LENGTH = 23


def fci(name: bytes, proprietary: bytes) -> bytes:
    """``6F L 84 L name A5 L proprietary``."""
    return FCI.build({"body": {"name": name, "proprietary": proprietary}})


def tlv(tag: int, value: bytes) -> bytes:
    return (TLV2 if tag > 0xFF else TLV1).build({"tag": tag, "value": value})
