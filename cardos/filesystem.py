"""The card's file tree: MF / DF (ADF, DDF) / EF, with EEPROM space accounting.

Only the data model lives here; the APDUs that read and change it are in
:mod:`cardos.commands`. Every mutation of a persistent attribute goes through
the card's :class:`~cardos.nvm.Journal`.
"""
from __future__ import annotations

from .keys import Key

MF_FID = 0x3F00
MF_DEFAULT_NAME = b"1PAY.SYS.DDF01"
MAX_DF_LEVELS = 3  # MF + two levels below it

TYPE_DF = 0x38
TYPE_BINARY = 0x28
TYPE_FIXED = 0x2A
TYPE_VARIABLE = 0x2C
TYPE_CYCLIC = 0x2E
TYPE_PURSE = 0x2F
TYPE_KEY = 0x3F
PROTECT_MAC = 0x80
PROTECT_ENCRYPT = 0x40
RECORD_TYPES = frozenset({TYPE_FIXED, TYPE_VARIABLE, TYPE_CYCLIC})

FILE_HEADER = 8  # bookkeeping bytes each file costs in EEPROM besides its body
DF_HEADER = 16
PURSE_BODY = 22

BLOCK_NONE, BLOCK_TEMPORARY, BLOCK_PERMANENT = 0, 1, 2


class Node:
    __slots__ = ("fid", "parent")

    @property
    def sfi(self) -> int | None:
        return self.fid if 0 < self.fid <= 0x1F else None


class EF(Node):
    """A working EF. ``ftype`` is the base type; ``protection`` the 0x80/0x40 bits."""

    __slots__ = ("ftype", "protection", "read_right", "write_right", "reserved", "key_byte")

    def __init__(self, fid, ftype, protection, read_right, write_right, reserved, key_byte):
        self.fid = fid
        self.parent = None
        self.ftype = ftype
        self.protection = protection
        self.read_right = read_right
        self.write_right = write_right
        self.reserved = reserved
        self.key_byte = key_byte

    @property
    def type_byte(self) -> int:
        return self.ftype | self.protection

    @property
    def mac_protected(self) -> bool:
        return bool(self.protection & PROTECT_MAC)

    @property
    def encrypted(self) -> bool:
        return bool(self.protection & PROTECT_ENCRYPT)

    @property
    def reads_need_protection(self) -> bool:
        """BYTE7 b8 = 0: reads must be line-protected (reference §1.3)."""
        return self.protection != 0 and not self.key_byte & 0x80

    @property
    def read_key_id(self) -> int:
        return 3 - ((self.key_byte >> 2) & 0x03)

    @property
    def write_key_id(self) -> int:
        return 3 - (self.key_byte & 0x03)

    def cost(self) -> int:
        raise NotImplementedError

    def common_dict(self) -> dict:
        return {"fid": f"{self.fid:04X}", "type": f"{self.type_byte:02X}",
                "read": f"{self.read_right:02X}", "write": f"{self.write_right:02X}",
                "reserved": f"{self.reserved:02X}", "key_byte": f"{self.key_byte:02X}"}


class BinaryEF(EF):
    __slots__ = ("size", "data", "written")

    def __init__(self, fid, protection, read_right, write_right, reserved, key_byte, size,
                 data=None, written=False):
        super().__init__(fid, TYPE_BINARY, protection, read_right, write_right, reserved, key_byte)
        self.size = size
        self.data = data if data is not None else bytes(size)
        self.written = written

    def cost(self) -> int:
        return self.size + FILE_HEADER

    def to_dict(self) -> dict:
        return {**self.common_dict(), "size": self.size, "written": self.written,
                "data": self.data.hex().upper()}


class RecordEF(EF):
    """Fixed (2A), variable TLV (2C) or cyclic (2E) record file.

    ``records`` is a tuple; for cyclic files record 1 (newest) is first.
    Variable files have ``record_count`` = 0 and a byte budget in ``size``.
    """

    __slots__ = ("record_count", "record_length", "size", "records")

    def __init__(self, fid, ftype, protection, read_right, write_right, reserved, key_byte,
                 record_count=0, record_length=0, size=0, records=()):
        super().__init__(fid, ftype, protection, read_right, write_right, reserved, key_byte)
        self.record_count = record_count
        self.record_length = record_length
        self.size = size
        self.records = tuple(records)

    @property
    def variable(self) -> bool:
        return self.ftype == TYPE_VARIABLE

    @property
    def cyclic(self) -> bool:
        return self.ftype == TYPE_CYCLIC

    def capacity(self) -> int:
        if self.variable:
            return self.size
        return self.record_count * (self.record_length + 1)

    def used_bytes(self, records=None) -> int:
        return sum(len(r) + 1 for r in (self.records if records is None else records))

    def cost(self) -> int:
        return self.capacity() + FILE_HEADER

    def to_dict(self) -> dict:
        d = self.common_dict()
        if self.variable:
            d["size"] = self.size
        else:
            d["record_count"] = self.record_count
            d["record_length"] = self.record_length
        d["records"] = [r.hex().upper() for r in self.records]
        return d


class PurseEF(EF):
    """ED (0001) / EP (0002) purse. ``read_right`` is the purse's *use right*;
    ``write_right`` holds BYTE5 (the TAC key id) and ``key_byte`` the SFI of
    the transaction-detail cyclic file. Balances and counters are ints.

    ``proofs`` maps ``"TT:CCCC"`` (transaction type, counter) to the hex of
    MAC ‖ TAC of the last completed transaction of that kind, for GET
    TRANSACTION PROOF. ``mac_failures`` counts consecutive MAC failures.
    """

    __slots__ = ("balance", "online_counter", "offline_counter", "overdraw_limit",
                 "proofs", "mac_failures")

    def __init__(self, fid, use_right, tac_key_id, reserved, log_sfi, balance=0,
                 online_counter=0, offline_counter=0, overdraw_limit=0, proofs=None, mac_failures=0):
        super().__init__(fid, TYPE_PURSE, 0, use_right, tac_key_id, reserved, log_sfi)
        self.balance = balance
        self.online_counter = online_counter
        self.offline_counter = offline_counter
        self.overdraw_limit = overdraw_limit
        self.proofs = dict(proofs or {})
        self.mac_failures = mac_failures

    @property
    def use_right(self) -> int:
        return self.read_right

    @property
    def tac_key_id(self) -> int:
        return self.write_right

    @property
    def log_sfi(self) -> int:
        return self.key_byte

    def cost(self) -> int:
        return PURSE_BODY + FILE_HEADER

    def to_dict(self) -> dict:
        return {**self.common_dict(), "balance": self.balance, "online_counter": self.online_counter,
                "offline_counter": self.offline_counter, "overdraw_limit": self.overdraw_limit,
                "proofs": dict(self.proofs), "mac_failures": self.mac_failures}


class KeyFile(EF):
    """The DF's internal key file (type 3F). ``read_right`` holds the DF-SFI
    byte, ``write_right`` the add-key right. ``keys`` maps (base type, id)."""

    __slots__ = ("size", "keys")

    def __init__(self, fid, size, df_sfi, add_right, reserved, key_byte, keys=None):
        super().__init__(fid, TYPE_KEY, 0, df_sfi, add_right, reserved, key_byte)
        self.size = size
        self.keys: dict[tuple[int, int], Key] = dict(keys or {})

    @property
    def add_right(self) -> int:
        return self.write_right

    def used_bytes(self) -> int:
        return sum(k.record_size for k in self.keys.values())

    def find(self, base_type: int, kid: int) -> Key | None:
        return self.keys.get((base_type, kid))

    def cost(self) -> int:
        return self.size + FILE_HEADER

    def to_dict(self) -> dict:
        return {**self.common_dict(), "size": self.size,
                "keys": [k.to_dict() for k in self.keys.values()]}


class DF(Node):
    """MF or DF. ``children`` maps FID to node (the key file included)."""

    __slots__ = ("name", "space", "create_right", "erase_right", "app_file_id", "reserved",
                 "children", "key_file", "block", "fci_extra")

    def __init__(self, fid, name, space, create_right, erase_right, app_file_id, reserved=b"\xff\xff",
                 block=BLOCK_NONE, fci_extra=b""):
        self.fid = fid
        self.parent = None
        self.name = name
        self.space = space
        self.create_right = create_right
        self.erase_right = erase_right
        self.app_file_id = app_file_id
        self.reserved = reserved
        self.children: dict[int, Node] = {}
        self.key_file: KeyFile | None = None
        self.block = block
        self.fci_extra = fci_extra

    @property
    def is_mf(self) -> bool:
        return self.parent is None

    @property
    def level(self) -> int:
        n, node = 1, self
        while node.parent is not None:
            n, node = n + 1, node.parent
        return n

    @property
    def empty(self) -> bool:
        return not self.children

    def child_dfs(self):
        return [c for c in self.children.values() if isinstance(c, DF)]

    def find_sfi(self, sfi: int) -> EF | None:
        node = self.children.get(sfi)
        return node if isinstance(node, EF) else None

    def used(self) -> int:
        return sum(c.cost() for c in self.children.values())

    def cost(self) -> int:
        return self.space + DF_HEADER

    def to_dict(self) -> dict:
        d = {"fid": f"{self.fid:04X}", "type": "38", "name": self.name.hex().upper(),
             "space": self.space, "create": f"{self.create_right:02X}",
             "erase": f"{self.erase_right:02X}", "app_file_id": f"{self.app_file_id:02X}",
             "reserved": self.reserved.hex().upper(), "block": self.block}
        if self.fci_extra:
            d["fci_extra"] = self.fci_extra.hex().upper()
        d["children"] = [c.to_dict() for c in self.children.values()]
        return d


def attach(parent: DF, child: Node) -> None:
    """Link ``child`` under ``parent`` in memory (journaling is the caller's job)."""
    child.parent = parent
    if isinstance(child, KeyFile):
        parent.key_file = child


def capacity(df: DF, eeprom_size: int) -> int:
    """Bytes available to the files of ``df``; the MF's ``FFFF`` means the whole EEPROM."""
    if df.is_mf:
        return min(df.space, eeprom_size)
    return df.space


def walk(df: DF):
    """Yield every node of the subtree, depth first, the DF itself first."""
    yield df
    for child in df.children.values():
        if isinstance(child, DF):
            yield from walk(child)
        else:
            yield child
