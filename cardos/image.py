"""Card images: a versioned, human-readable JSON file written atomically.

Format (version 1)::

    {"format": "cardos-card-image", "version": 1, "atr": "3B...",
     "config": {...}, "card_blocked": false, "mf": {<DF tree>}}

Hex strings are upper case; numbers are plain JSON integers. A file that is
not valid JSON, has another format tag or version, or a malformed tree is
refused with :class:`ImageError` naming the file and the problem, and is
never written to. Saving writes a temporary file beside the image and
renames it over the old one, so a crash at any moment leaves either the old
or the new image, never a mixture.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .config import CardConfig
from .filesystem import (DF, BLOCK_PERMANENT, PROTECT_ENCRYPT, PROTECT_MAC, RECORD_TYPES, TYPE_BINARY,
                         TYPE_DF, TYPE_KEY, TYPE_PURSE, BinaryEF, KeyFile, PurseEF, RecordEF, attach)
from .keys import Key

FORMAT = "cardos-card-image"
VERSION = 1
FILE_MODE = 0o600


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


def _node_from_dict(d: dict, where: str):
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected an object")
    fid = int.from_bytes(_hex(d, "fid", where, 2), "big")
    type_byte = _byte(d, "type", where)
    if type_byte == TYPE_DF:
        df = DF(fid, _hex(d, "name", where), _int(d, "space", where, 0, 0xFFFF),
                _byte(d, "create", where), _byte(d, "erase", where), _byte(d, "app_file_id", where),
                _hex(d, "reserved", where, 2), _int(d, "block", where, 0, BLOCK_PERMANENT),
                bytes.fromhex(d.get("fci_extra", "")))
        children = d.get("children")
        if not isinstance(children, list):
            raise ValueError(f"{where}.children: expected a list")
        for i, child_dict in enumerate(children):
            child = _node_from_dict(child_dict, f"{where}.children[{i}]")
            if child.fid in df.children:
                raise ValueError(f"{where}.children[{i}]: duplicate FID {child.fid:04X}")
            df.children[child.fid] = child
            attach(df, child)
        return df
    base, protection = type_byte & 0x3F, type_byte & (PROTECT_MAC | PROTECT_ENCRYPT)
    rights = (_byte(d, "read", where), _byte(d, "write", where), _byte(d, "reserved", where),
              _byte(d, "key_byte", where))
    if type_byte == TYPE_KEY:
        keys = {}
        for i, kd in enumerate(d.get("keys", [])):
            try:
                key = Key.from_dict(kd)
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{where}.keys[{i}]: {exc}") from None
            keys[(key.base_type, key.kid)] = key
        return KeyFile(fid, _int(d, "size", where, 0, 0xFFFF), *rights, keys=keys)
    if type_byte == TYPE_PURSE:
        proofs = d.get("proofs", {})
        if not isinstance(proofs, dict):
            raise ValueError(f"{where}.proofs: expected an object")
        return PurseEF(fid, *rights, balance=_int(d, "balance", where, 0, 0xFFFFFFFF),
                       online_counter=_int(d, "online_counter", where, 0, 0xFFFF),
                       offline_counter=_int(d, "offline_counter", where, 0, 0xFFFF),
                       overdraw_limit=_int(d, "overdraw_limit", where, 0, 0xFFFFFF),
                       proofs=proofs, mac_failures=_int(d, "mac_failures", where, 0, 255))
    if base == TYPE_BINARY:
        size = _int(d, "size", where, 0, 0xFFFF)
        data = _hex(d, "data", where, size)
        return BinaryEF(fid, protection, *rights, size, data, bool(d.get("written", False)))
    if base in RECORD_TYPES:
        records = d.get("records")
        if not isinstance(records, list) or not all(isinstance(r, str) for r in records):
            raise ValueError(f"{where}.records: expected a list of hex strings")
        try:
            recs = [bytes.fromhex(r) for r in records]
        except ValueError:
            raise ValueError(f"{where}.records: not valid hex") from None
        if "size" in d:
            return RecordEF(fid, base, protection, *rights, size=_int(d, "size", where, 0, 0xFFFF),
                            records=recs)
        return RecordEF(fid, base, protection, *rights,
                        record_count=_int(d, "record_count", where, 0, 255),
                        record_length=_int(d, "record_length", where, 0, 255), records=recs)
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
    return atr, config, bool(d.get("card_blocked", False)), mf


def read_image(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImageError(path, "no such card image (create one with `cardos new PATH`)") from None
    except UnicodeDecodeError:
        raise ImageError(path, "not a text file (a card image is JSON)") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read: {exc.strerror}") from None
    if not text.strip():
        raise ImageError(path, "empty file (truncated image?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImageError(path, f"corrupt or truncated image: line {exc.lineno} column {exc.colno}: {exc.msg}") from None


class ImageStore:
    """Where a card image lives on disk; ``save`` is the atomic commit.

    ``durable=True`` adds ``fsync`` of the file and its directory, which
    protects against the *host* losing power; without it a crash of the
    process (even SIGKILL) still never loses a committed image.
    """

    def __init__(self, path, durable: bool = False):
        self.path = Path(path)
        self.durable = durable
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")

    def write(self, text: str, tick=None) -> None:
        """Write ``text`` atomically. ``tick`` is called at each write point (tests cut power there)."""
        data = text.encode("utf-8")
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.write(fd, data)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if tick:
            tick()  # power lost after the temporary file: the old image stands
        os.replace(self._tmp, self.path)
        if self.durable:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def create(self, text: str) -> None:
        """Write a new image; refuses to overwrite an existing file."""
        if self.path.exists():
            raise ImageError(self.path, "already exists (refusing to overwrite a card image)")
        self.write(text)
