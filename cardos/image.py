"""Card images: a versioned, human-readable JSON file written atomically.

Format (version 1)::

    {"format": "cardos-card-image", "version": 1, "atr": "3B...",
     "config": {...}, "card_blocked": false, "mf": {<DF tree>}}

Hex strings are upper case; numbers are plain JSON integers. A file that is
not valid JSON, has another format tag or version, or a malformed tree is
refused with :class:`ImageError` naming the file and the problem, and is
never written to. Saving (:mod:`cardos.store`) writes a temporary file beside
the image and renames it over the old one, so a crash at any moment leaves
either the old or the new image, never a mixture.
"""
from __future__ import annotations

import json

from .config import CardConfig
from .jsonfile import JsonFileProblem, read_json
from .filesystem import (DF, BLOCK_PERMANENT, MAX_DF_LEVELS, MF_FID, PROTECT_ENCRYPT, PROTECT_MAC, RECORD_TYPES,
                         TYPE_BINARY, TYPE_CYCLIC, TYPE_DF, TYPE_KEY, TYPE_PURSE, TYPE_VARIABLE, BinaryEF, KeyFile,
                         PurseEF, RecordEF, attach)
from .keys import KNOWN_TYPES, Key, KeyType

FORMAT = "cardos-card-image"
VERSION = 1


class ImageError(Exception):
    """A card image that cannot be used; the message names the file and the problem."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def card_to_dict(card) -> dict:
    return {"format": FORMAT, "version": VERSION, "atr": card.atr.hex().upper(),
            "config": card.config.to_dict(), "card_blocked": card.card_blocked,
            "mf": card.mf.to_dict()}


# json's C encoder is used only without ``indent`` (with it, json falls back to
# pure Python, ~5x slower: the largest cost of a commit). So each file node,
# key and top-level entry is one C-encoded line; DFs' children and key files'
# keys are laid out one per line by hand. Same JSON value as before.
_encode = json.JSONEncoder(ensure_ascii=False).encode
try:  # one C encoder for all the lines (JSONEncoder.encode builds one per call)
    _c_encoder = json.encoder.c_make_encoder(None, None, json.encoder.encode_basestring, None, ": ", ", ",
                                             False, False, True)
    if "".join(_c_encoder({"a": [1, "é"]}, 0)) == '{"a": [1, "é"]}':
        _encode = lambda value: "".join(_c_encoder(value, 0))  # noqa: E731
except (AttributeError, TypeError):  # no C accelerator, or another signature
    pass
_EXPANDED = ("keys", "children")


def _node_text(node: dict, pad: str, out: list) -> None:
    lists = [k for k in _EXPANDED if node.get(k)]
    if not lists:
        out.append(_encode(node))
        return
    head = _encode({k: v for k, v in node.items() if k not in lists})
    out.append(head[:-1] if head != "{}" else "{")
    inner = pad + " "
    for n, key in enumerate(lists):
        out.append(f'{", " if head != "{}" or n else ""}"{key}": [\n{inner}')
        for i, item in enumerate(node[key]):
            if i:
                out.append(f",\n{inner}")
            _node_text(item, inner, out)
        out.append("]")
    out.append("}")


def dumps(card) -> str:
    d = card_to_dict(card)
    out = ["{\n"]
    last = len(d) - 1
    for i, (key, value) in enumerate(d.items()):
        out.append(f" {_encode(key)}: ")
        if key == "mf":
            _node_text(value, " ", out)
        else:
            out.append(_encode(value))
        out.append(",\n" if i < last else "\n")
    out.append("}\n")
    return "".join(out)


# -- loading -------------------------------------------------------------------

def _hex(d: dict, key: str, where: str, length: int | None = None) -> bytes:
    value = d.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key}: expected a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{where}.{key}: not valid hex") from None
    if length is not None and len(raw) != length:
        raise ValueError(f"{where}.{key}: expected {length} byte(s), got {len(raw)}")
    return raw


def _byte(d: dict, key: str, where: str) -> int:
    return _hex(d, key, where, 1)[0]


def _int(d: dict, key: str, where: str, low: int, high: int) -> int:
    value = d.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{where}.{key}: expected an integer from {low} to {high}")
    return value


def _bool(d: dict, key: str, where: str) -> bool:
    value = d.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{where}.{key}: expected true or false")
    return value


def _key_from_dict(kd, where: str) -> Key:
    """A key as WRITE KEY could have stored it: known type, id 00-FE, a value of a usable length."""
    try:
        key = Key.from_dict(kd)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    if not 0 <= key.stored_type <= 0xFF or key.base_type not in KNOWN_TYPES:
        raise ValueError(f"{where}.type: not a key type")
    if not 0 <= key.kid <= 0xFE:
        raise ValueError(f"{where}.id: a key id is 00 to FE")
    n = len(key.value)
    if key.base_type == KeyType.PIN:
        ok = 1 <= n <= 8
    else:
        ok = n == 16 if key.alg_id == 0x04 else n in (8, 16)
    if not ok:
        raise ValueError(f"{where}.value: {n} bytes is not a valid length for this key")
    return key


def _check_records(ef: RecordEF, where: str) -> None:
    """Records as the record commands could have written them."""
    records = ef.records
    if ef.ftype == TYPE_VARIABLE:
        for i, r in enumerate(records):
            if len(r) < 2 or r[1] != len(r) - 2:
                raise ValueError(f"{where}.records[{i}]: not a TLV record (tag, length, value)")
        if ef.used_bytes() > ef.size:
            raise ValueError(f"{where}.records: {ef.used_bytes()} bytes do not fit the file ({ef.size})")
        return
    if not 1 <= ef.record_length <= 248 or ef.record_count < (2 if ef.ftype == TYPE_CYCLIC else 1):
        raise ValueError(f"{where}: impossible record_count/record_length")
    if len(records) > ef.record_count:
        raise ValueError(f"{where}.records: {len(records)} records, the file holds {ef.record_count}")
    for i, r in enumerate(records):
        if len(r) != ef.record_length:
            raise ValueError(f"{where}.records[{i}]: {len(r)} bytes, the records are {ef.record_length}")


def _check_proofs(proofs: dict, where: str) -> None:
    for name, value in proofs.items():
        ok = isinstance(value, str) and len(name) == 7 and name[2] == ":"
        try:
            ok = ok and len(bytes.fromhex(name[:2] + name[3:])) == 3 and len(bytes.fromhex(value)) == 8
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{where}.proofs: expected \"TT:CCCC\": 16 hex digits (MAC and TAC)")


def _node_from_dict(d: dict, where: str, level: int = 1):
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected an object")
    fid = int.from_bytes(_hex(d, "fid", where, 2), "big")
    if (fid == MF_FID) != (level == 1):
        raise ValueError(f"{where}.fid: 3F00 is the MF and only the MF")
    type_byte = _byte(d, "type", where)
    if type_byte == TYPE_DF:
        if level > MAX_DF_LEVELS:
            raise ValueError(f"{where}: DFs nest at most {MAX_DF_LEVELS} levels deep (MF included)")
        df = DF(fid, _hex(d, "name", where), _int(d, "space", where, 0, 0xFFFF),
                _byte(d, "create", where), _byte(d, "erase", where), _byte(d, "app_file_id", where),
                _hex(d, "reserved", where, 2), _int(d, "block", where, 0, BLOCK_PERMANENT),
                _hex(d, "fci_extra", where) if "fci_extra" in d else b"")
        if not 1 <= len(df.name) <= 16:
            raise ValueError(f"{where}.name: a DF name is 1 to 16 bytes")
        children = d.get("children")
        if not isinstance(children, list):
            raise ValueError(f"{where}.children: expected a list")
        for i, child_dict in enumerate(children):
            child = _node_from_dict(child_dict, f"{where}.children[{i}]", level + 1)
            if child.fid in df.children:
                raise ValueError(f"{where}.children[{i}]: duplicate FID {child.fid:04X}")
            if isinstance(child, KeyFile) and df.key_file is not None:
                raise ValueError(f"{where}.children[{i}]: a second key file in one DF")
            df.children[child.fid] = child
            attach(df, child)
        return df
    base, protection = type_byte & 0x3F, type_byte & (PROTECT_MAC | PROTECT_ENCRYPT)
    rights = (_byte(d, "read", where), _byte(d, "write", where), _byte(d, "reserved", where),
              _byte(d, "key_byte", where))
    if type_byte == TYPE_KEY:
        keys = {}
        key_list = d.get("keys", [])
        if not isinstance(key_list, list):
            raise ValueError(f"{where}.keys: expected a list")
        for i, kd in enumerate(key_list):
            key = _key_from_dict(kd, f"{where}.keys[{i}]")
            if (key.base_type, key.kid) in keys:
                raise ValueError(f"{where}.keys[{i}]: duplicate key {key.base_type:02X}/{key.kid:02X}")
            keys[(key.base_type, key.kid)] = key
        return KeyFile(fid, _int(d, "size", where, 0, 0xFFFF), *rights, keys=keys)
    if type_byte == TYPE_PURSE:
        proofs = d.get("proofs", {})
        if not isinstance(proofs, dict):
            raise ValueError(f"{where}.proofs: expected an object")
        _check_proofs(proofs, where)
        return PurseEF(fid, *rights, balance=_int(d, "balance", where, 0, 0xFFFFFFFF),
                       online_counter=_int(d, "online_counter", where, 0, 0xFFFF),
                       offline_counter=_int(d, "offline_counter", where, 0, 0xFFFF),
                       overdraw_limit=_int(d, "overdraw_limit", where, 0, 0xFFFFFF),
                       proofs=proofs, mac_failures=_int(d, "mac_failures", where, 0, 255))
    if base == TYPE_BINARY:
        size = _int(d, "size", where, 0, 0xFFFF)
        data = _hex(d, "data", where, size)
        return BinaryEF(fid, protection, *rights, size, data, _bool(d, "written", where))
    if base in RECORD_TYPES:
        records = d.get("records")
        if not isinstance(records, list) or not all(isinstance(r, str) for r in records):
            raise ValueError(f"{where}.records: expected a list of hex strings")
        try:
            recs = [bytes.fromhex(r) for r in records]
        except ValueError:
            raise ValueError(f"{where}.records: not valid hex") from None
        if base == TYPE_VARIABLE:
            ef = RecordEF(fid, base, protection, *rights, size=_int(d, "size", where, 0, 0xFFFF), records=recs)
        else:
            ef = RecordEF(fid, base, protection, *rights, record_count=_int(d, "record_count", where, 0, 255),
                          record_length=_int(d, "record_length", where, 0, 255), records=recs)
        _check_records(ef, where)
        return ef
    raise ValueError(f"{where}.type: unknown file type {type_byte:02X}")


def card_state_from_dict(d: dict):
    """Validate an image dict; returns ``(atr, config, card_blocked, mf)``."""
    if not isinstance(d, dict):
        raise ValueError("top level: expected a JSON object")
    if d.get("format") != FORMAT:
        raise ValueError(f'not a cardos card image (format is {d.get("format")!r}, expected "{FORMAT}")')
    if d.get("version") != VERSION:
        raise ValueError(f"unsupported image version {d.get('version')!r} (this cardos reads version {VERSION})")
    atr = _hex(d, "atr", "top level")
    if not 2 <= len(atr) <= 33:
        raise ValueError("atr: an ATR is 2 to 33 bytes")
    config_dict = d.get("config", {})
    if not isinstance(config_dict, dict):
        raise ValueError("config: expected an object")
    try:
        config = CardConfig.from_dict(config_dict)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config: {exc}") from None
    mf = _node_from_dict(d.get("mf"), "mf")
    if not isinstance(mf, DF):
        raise ValueError("mf: the root must be a DF (type 38)")
    return atr, config, _bool(d, "card_blocked", "top level"), mf


def read_image(path, shown=None) -> dict:
    """The JSON of the image at ``path``; errors name ``shown`` (the path as the user typed it)."""
    try:
        return read_json(path, "card image", "no such card image (create one with `cardos new PATH`)",
                         invalid="corrupt or truncated image", empty="empty file (truncated image?)")
    except JsonFileProblem as exc:
        raise ImageError(path if shown is None else shown, exc.problem) from None


def load_card_state(path, shown=None):
    """``(atr, config, card_blocked, mf)`` of the image at ``path``, validated."""
    shown = path if shown is None else shown
    raw = read_image(path, shown)
    try:
        return card_state_from_dict(raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise ImageError(shown, str(exc)) from None
