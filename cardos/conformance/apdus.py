"""Command APDUs as the reference (``cjt304-reference.md``) describes them.

Written from the reference's tables, independently of the emulator: short
APDUs only (every CJ/T 304 command fits), CREATE FILE data per §1.3,
WRITE KEY data per §2.3, access rights per §2.2, the EF key byte per §1.3.

>>> create_binary(0x0015, 30, read=0xF0, write=0xF0, protection=MAC).hex().upper()
'80E0001507A8001EF0F0FFFF'
>>> create_key_file(0x0050, df_sfi=0x01, add=0xF0).hex().upper()
'80E00000073F005001F0FFFF'
>>> create_records(0x0018, CYCLIC, 10, 23, read=0xF1, write=0xEF).hex().upper()
'80E00018072E0A17F1EFFFFF'
>>> create_purse(0x0002, use=0xF0, tac_key=0x00, log_sfi=0x18).hex().upper()
'80E00002072F0208F000FF18'
>>> key_byte(protected_reads=True, read_key=0, write_key=1)
126
"""
from __future__ import annotations

# File types (reference §1.2) and protection bits OR-ed into a working EF's type.
DF_TYPE, BINARY, FIXED, VARIABLE, CYCLIC, PURSE, KEY_FILE = 0x38, 0x28, 0x2A, 0x2C, 0x2E, 0x2F, 0x3F
MAC, ENCRYPT = 0x80, 0x40

# Key types (reference §2.3).
ENCRYPT_KEY, DECRYPT_KEY, MAC_KEY, TAC_KEY = 0x30, 0x31, 0x32, 0x34
LINE_KEY, UNBLOCK_KEY, RELOAD_KEY, AUTH_KEY, PIN = 0x36, 0x37, 0x38, 0x39, 0x3A
OVERDRAW_KEY, UNLOAD_KEY, PURCHASE_KEY, LOAD_KEY = 0x3C, 0x3D, 0x3E, 0x3F

FREE, NEVER = 0xF0, 0xEF

SELECT_MF = bytes.fromhex("00A40000023F0000")


def apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    """A short APDU (case 1-4)."""
    if len(data) > 255:
        raise ValueError("short APDUs carry at most 255 data bytes")
    out = bytes((cla, ins, p1, p2))
    if data:
        out += bytes((len(data),)) + bytes(data)
    if le is not None:
        out += bytes((le & 0xFF,))
    return out


# -- SELECT (§1.4) ------------------------------------------------------------------------

def select_fid(fid: int, le: int | None = 0) -> bytes:
    return apdu(0x00, 0xA4, 0x00, 0x00, fid.to_bytes(2, "big"), le)


def select_name(name: bytes, le: int | None = 0) -> bytes:
    return apdu(0x00, 0xA4, 0x04, 0x00, name, le)


def tlv_find(data: bytes, tag: int) -> bytes | None:
    """A tag's value in a BER-TLV blob (FCI), descending into 6F and A5."""
    i = 0
    while i + 2 <= len(data):
        t = data[i]
        if t & 0x1F == 0x1F and i + 1 < len(data):
            t = (t << 8) | data[i + 1]
            i += 1
        if i + 1 >= len(data):
            return None
        length = data[i + 1]
        value = data[i + 2:i + 2 + length]
        if t == tag:
            return value
        if t in (0x6F, 0xA5):
            found = tlv_find(value, tag)
            if found is not None:
                return found
        i += 2 + length
    return None


# -- CREATE FILE (§1.3) ------------------------------------------------------------------

def create_df(fid: int, name: bytes, space: int, create: int = FREE, erase: int = FREE,
              app_file_id: int = 0x01) -> bytes:
    data = bytes((DF_TYPE,)) + space.to_bytes(2, "big") + bytes((create, erase, app_file_id)) + b"\xff\xff" + name
    return apdu(0x80, 0xE0, fid >> 8, fid & 0xFF, data)


def create_ef(fid: int, file_type: int, b23: bytes, b4: int, b5: int, b7: int = 0xFF) -> bytes:
    data = bytes((file_type,)) + bytes(b23) + bytes((b4, b5, 0xFF, b7))
    return apdu(0x80, 0xE0, fid >> 8, fid & 0xFF, data)


def create_key_file(size: int, df_sfi: int = 0x01, add: int = FREE, fid: int = 0x0000) -> bytes:
    return create_ef(fid, KEY_FILE, size.to_bytes(2, "big"), df_sfi, add, 0xFF)


def create_binary(fid: int, size: int, read: int = FREE, write: int = FREE, protection: int = 0,
                  key: int = 0xFF) -> bytes:
    return create_ef(fid, BINARY | protection, size.to_bytes(2, "big"), read, write, key)


def create_records(fid: int, kind: int, count: int, length: int, read: int = FREE, write: int = FREE,
                   protection: int = 0, key: int = 0xFF) -> bytes:
    """Fixed (2A) or cyclic (2E): ``count`` records of ``length`` bytes."""
    return create_ef(fid, kind | protection, bytes((count, length)), read, write, key)


def create_variable(fid: int, size: int, read: int = FREE, write: int = FREE, protection: int = 0,
                    key: int = 0xFF) -> bytes:
    return create_ef(fid, VARIABLE | protection, size.to_bytes(2, "big"), read, write, key)


def create_purse(fid: int, use: int = FREE, tac_key: int = 0x00, log_sfi: int = 0x18) -> bytes:
    return create_ef(fid, PURSE, b"\x02\x08", use, tac_key, log_sfi)


def key_byte(protected_reads: bool = False, read_key: int = 0, write_key: int = 0) -> int:
    """BYTE7 of a working EF: b8 = 0 → reads must be line-protected; b4b3 read key
    id, b2b1 write key id, each coded ``11→00, 10→01, 01→02, 00→03``."""
    return (0x00 if protected_reads else 0x80) | 0x70 | ((3 - read_key) << 2) | (3 - write_key)


def right(low: int, high: int) -> int:
    """Access right ``XY`` for "current register in low..high" (X = high, Y = low)."""
    return (high << 4) | low


# -- WRITE KEY (§2.3) ---------------------------------------------------------------------

def key_record(key_type: int, b1: int, b2: int, b3: int, b4: int, value: bytes) -> bytes:
    return bytes((key_type, b1, b2, b3, b4)) + bytes(value)


def add_key(kid: int, record: bytes) -> bytes:
    return apdu(0x80, 0xD4, 0x01, kid, record)


def modify_key(kid: int, record: bytes) -> bytes:
    return apdu(0x80, 0xD4, record[0], kid, record)


def counter(tries: int) -> int:
    """An error-counter byte: ``tries`` allowed, all left."""
    return (tries << 4) | tries


def pin_bcd(digits: str) -> bytes:
    """A PIN as the card stores it: packed BCD, padded with F."""
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex(digits)


# -- data commands (§1.5) -------------------------------------------------------------------

def read_binary(sfi: int | None, offset: int, le: int) -> bytes:
    if sfi is None:
        return apdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=le)
    return apdu(0x00, 0xB0, 0x80 | sfi, offset, le=le)


def update_binary(sfi: int | None, offset: int, data: bytes) -> bytes:
    if sfi is None:
        return apdu(0x00, 0xD6, offset >> 8, offset & 0xFF, data)
    return apdu(0x00, 0xD6, 0x80 | sfi, offset, data)


def read_record(sfi: int, number: int, le: int = 0) -> bytes:
    return apdu(0x00, 0xB2, number, (sfi << 3) | 0b100, le=le)


def read_record_by_tag(sfi: int, tag: int, le: int = 0) -> bytes:
    return apdu(0x00, 0xB2, tag, (sfi << 3) | 0b000, le=le)


def update_record(sfi: int, number: int, data: bytes) -> bytes:
    return apdu(0x00, 0xDC, number, (sfi << 3) | 0b100, data)


def append_record(sfi: int, data: bytes) -> bytes:
    return apdu(0x00, 0xE2, 0x00, sfi << 3, data)
