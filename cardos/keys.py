"""Keys as the FMCOS key file holds them (reference §2.3).

A key is ``type ‖ 4 header bytes ‖ value``. What the header bytes mean
depends on the type: version + algorithm id for transaction keys, error
counter for authentication/PIN keys. Keys are unique by (base type, id).
"""
from __future__ import annotations

from enum import IntEnum

from .crypto import Algorithm, algorithm_for


class KeyType(IntEnum):
    DES_ENCRYPT = 0x30
    DES_DECRYPT = 0x31
    DES_MAC = 0x32
    TAC = 0x34  # internal key DTK
    LINE_PROTECTION = 0x36  # DAMK
    PIN_UNBLOCK = 0x37  # DPUK
    PIN_RELOAD = 0x38  # DRPK
    EXTERNAL_AUTH = 0x39  # id 00 = DF master key
    PIN = 0x3A
    OVERDRAW = 0x3C  # DUK
    UNLOAD = 0x3D  # DULK
    PURCHASE = 0x3E  # DPK (also cash withdraw)
    LOAD = 0x3F  # DLK


# Types whose header byte 4 is an error counter (high nibble max, low nibble left).
COUNTED_TYPES = frozenset({0x36, 0x37, 0x38, 0x39, 0x3A})
# Types whose header bytes 3/4 are version and algorithm id.
VERSIONED_TYPES = frozenset({0x30, 0x31, 0x32, 0x34, 0x3C, 0x3D, 0x3E, 0x3F})
KNOWN_TYPES = frozenset(int(t) for t in KeyType)
SECURE_UPDATE_BITS = 0xC0
KEY_RECORD_OVERHEAD = 8  # key file record = key length + 8 (reference §1.3)


class Key:
    __slots__ = ("stored_type", "kid", "use", "change", "b3", "b4", "value")

    def __init__(self, stored_type: int, kid: int, use: int, change: int, b3: int, b4: int, value: bytes):
        self.stored_type = stored_type
        self.kid = kid
        self.use = use
        self.change = change
        self.b3 = b3
        self.b4 = b4
        self.value = value

    @property
    def base_type(self) -> int:
        return self.stored_type & 0x3F

    @property
    def secure_update(self) -> bool:
        """Top bits set (e.g. ``39→F9``): only CLA 84 encrypted+MAC'd WRITE KEY may change it."""
        return bool(self.stored_type & SECURE_UPDATE_BITS)

    @property
    def counted(self) -> bool:
        return self.base_type in COUNTED_TYPES

    @property
    def tries_left(self) -> int:
        return self.b4 & 0x0F if self.counted else 0x0F

    @property
    def max_tries(self) -> int:
        return self.b4 >> 4

    @property
    def blocked(self) -> bool:
        return self.counted and self.b4 & 0x0F == 0

    @property
    def version(self) -> int:
        return self.b3

    @property
    def alg_id(self) -> int:
        return self.b4 if self.base_type in VERSIONED_TYPES else 0xFF

    @property
    def subsequent_state(self) -> int:
        return self.b3 & 0x0F

    @property
    def algorithm(self) -> Algorithm:
        return algorithm_for(self.alg_id if self.base_type in VERSIONED_TYPES else None, self.value)

    @property
    def record_size(self) -> int:
        return len(self.value) + KEY_RECORD_OVERHEAD

    def encode(self) -> bytes:
        """``type ‖ header ‖ value`` exactly as WRITE KEY carries it."""
        return bytes((self.stored_type, self.use, self.change, self.b3, self.b4)) + self.value

    def to_dict(self) -> dict:
        return {"type": f"{self.stored_type:02X}", "id": f"{self.kid:02X}",
                "header": bytes((self.use, self.change, self.b3, self.b4)).hex().upper(),
                "value": self.value.hex().upper()}

    @classmethod
    def from_dict(cls, d: dict) -> "Key":
        header = bytes.fromhex(d["header"])
        if len(header) != 4:
            raise ValueError("key header must be 4 bytes")
        return cls(int(d["type"], 16), int(d["id"], 16), *header, bytes.fromhex(d["value"]))


def key_label(base_type: int) -> str:
    try:
        return KeyType(base_type).name
    except ValueError:
        return f"TYPE_{base_type:02X}"
