"""Issuer key sets: the master keys a card's keys are diversified from.

A key set is a small JSON file (format in ``docs/keysets.md``)::

    {"format": "cardos-keyset", "version": 1, "algorithm": "3DES", "test": true,
     "keys": {"card_master": {"1": "<32 hex digits>"}, "load": {"1": "...", "2": "..."}, ...}}

Each *role* (``card_master``, ``app_line``, ``purchase``, ``load``, ...) holds
one or more master keys by *index* (1, 2, ...). A card never receives a
master key: its keys are diversified from them with the application serial
(reference §4.4, :meth:`KeySet.card_key`). The terminal side (load host,
PSAM, settlement) is fed from the same file through :meth:`KeySet.master`.

Files are written with mode 0600. A key set that is not marked ``test`` is
refused when group or others can read it (as ssh does with private keys).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import stat
from datetime import datetime, timezone
from pathlib import Path

from .crypto import DES, SM4, Algorithm
from .jsonfile import JsonFileProblem, read_json
from .privatefile import write_failure, write_private

FORMAT = "cardos-keyset"
VERSION = 1
KEY_LENGTH = 16
ALGORITHMS = {"3DES": DES, "SM4": SM4}
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_INDEX = 15

# What ``cardos keys new`` generates: (role, indexes, what it is for).
# Shipped profiles use only these roles (docs/keysets.md has the table).
STANDARD_ROLES = (
    ("card_master", (1,), "MF master key 39/00: card-level external authentication, MF key updates, erase"),
    ("add_app", (1,), "MF key 39/01: external authentication that grants only the MF create right "
                      "(extension applications added after issuance)"),
    ("card_line", (1,), "MF line-protection key 36/00 (0005 writes, CARD BLOCK)"),
    ("app_master", (1,), "ADF master key 39/00 (application external authentication, secure key update)"),
    ("app_line", (1,), "ADF line-protection key 36/00 (0015/0016 writes, APPLICATION BLOCK/UNBLOCK)"),
    ("pin_unblock", (1,), "PIN-unblock key 37/00"),
    ("pin_reload", (1,), "PIN-reload key 38/00"),
    ("purchase", (1, 2), "purchase / cash-withdraw keys 3E/01, 3E/02 (DPK)"),
    ("load", (1, 2), "load keys 3F/01, 3F/02 (DLK)"),
    ("unload", (1,), "unload key 3D/01 (DULK, ED only)"),
    ("overdraw", (1,), "overdraw-limit key 3C/01 (DUK, ED only)"),
    ("tac", (1,), "TAC key 34/00 (DTK)"),
    ("internal", (1,), "internal-authentication (encrypt) key 30/00"),
)


class KeySetError(Exception):
    """A key set that cannot be used: names the file, the field and the reason."""

    def __init__(self, path, field: str, reason: str):
        where = f"{path}: {field}" if field else f"{path}"
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.field = field
        self.reason = reason


def factor_of(serial: bytes) -> bytes:
    """The diversification factor: the rightmost 8 bytes (16 digits) of the serial, left-padded with 00."""
    if not serial:
        raise ValueError("empty application serial")
    return serial[-8:].rjust(8, b"\x00")


def kcv(algorithm: Algorithm, key: bytes) -> str:
    """Key check value: the first 3 bytes of the key encrypting a zero block (hex)."""
    return algorithm.encrypt(key, bytes(algorithm.block))[:3].hex().upper()


class KeySet:
    """Master keys by role and index, one algorithm for the whole set."""

    def __init__(self, keys: dict, algorithm: str = "3DES", test: bool = False, description: str = "",
                 created: str = "", path=None):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
        self.keys: dict[str, dict[int, bytes]] = {role: dict(by_index) for role, by_index in keys.items()}
        self.algorithm_name = algorithm
        self.test = test
        self.description = description
        self.created = created
        self.path = Path(path) if path else None

    # -- access ------------------------------------------------------------------
    @property
    def algorithm(self) -> Algorithm:
        """The algorithm masters are diversified with (``crypto.DES`` or ``crypto.SM4``)."""
        return ALGORITHMS[self.algorithm_name]

    @property
    def sm4(self) -> bool:
        return self.algorithm_name == "SM4"

    def roles(self) -> list[str]:
        return sorted(self.keys)

    def has(self, role: str, index: int | None = None) -> bool:
        by_index = self.keys.get(role)
        if not by_index:
            return False
        return index is None or index in by_index

    def master(self, role: str, index: int | None = None) -> bytes:
        """The master key of ``role`` (``index`` may be omitted when the role has one key).

        >>> ks = KeySet.generate(test=True)
        >>> len(ks.master("load", 1)), len(ks.master("tac"))
        (16, 16)
        """
        by_index = self.keys.get(role)
        name = self._label()
        if not by_index:
            raise KeySetError(name, f"keys.{role}", f"no such role (the key set has: {', '.join(self.roles())})")
        if index is None:
            if len(by_index) != 1:
                raise KeySetError(name, f"keys.{role}",
                                  f"has {len(by_index)} keys; give an index ({', '.join(map(str, sorted(by_index)))})")
            return next(iter(by_index.values()))
        try:
            return by_index[index]
        except KeyError:
            raise KeySetError(name, f"keys.{role}.{index}",
                              f"no key with this index (have {', '.join(map(str, sorted(by_index)))})") from None

    def card_key(self, role: str, index: int | None, serial: bytes) -> bytes:
        """The per-card key: the master diversified with the application serial (reference §4.4).

        ``serial`` is the application serial (or any longer card number);
        its rightmost 8 bytes are the factor, as terminals read it from
        0015 bytes 12..19.
        """
        return self.algorithm.diversify(self.master(role, index), factor_of(serial))

    def kcv(self, role: str, index: int | None = None) -> str:
        return kcv(self.algorithm, self.master(role, index))

    def _label(self) -> str:
        return str(self.path) if self.path else "<key set>"

    # -- creation ------------------------------------------------------------------
    @classmethod
    def generate(cls, sm4: bool = False, test: bool = False, roles=STANDARD_ROLES,
                 description: str = "") -> "KeySet":
        """Fresh random masters (``secrets``) for every standard role."""
        keys = {}
        for role, indexes, _purpose in roles:
            keys[role] = {i: secrets.token_bytes(KEY_LENGTH) for i in indexes}
        created = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        if not description:
            description = ("TEST KEYS - for emulators and test cards only, never for real cards"
                           if test else "issuer master keys - keep secret")
        return cls(keys, "SM4" if sm4 else "3DES", test, description, created)

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "algorithm": self.algorithm_name, "test": self.test,
                "description": self.description, "created": self.created,
                "keys": {role: {str(i): v.hex().upper() for i, v in sorted(by_index.items())}
                         for role, by_index in sorted(self.keys.items())}}

    def dumps(self) -> str:
        """The file text: one line per role, so a key set reads (and diffs) well."""
        d = self.to_dict()
        keys = d.pop("keys")
        head = json.dumps(d, indent=2, ensure_ascii=False)[:-2]
        roles = ",\n".join(f"    {json.dumps(role)}: {json.dumps(by_index)}" for role, by_index in keys.items())
        return f'{head},\n  "keys": {{\n{roles}\n  }}\n}}\n'

    def save(self, path, overwrite: bool = False) -> None:
        """Write the key set with mode 0600; refuses to overwrite unless asked."""
        path = Path(path)
        try:
            write_private(path, self.dumps(), overwrite)
        except OSError as exc:
            reason = ("already exists (refusing to overwrite a key set)" if isinstance(exc, FileExistsError)
                      else write_failure(exc))
            raise KeySetError(path, "", reason) from None
        self.path = path

    @classmethod
    def from_dict(cls, d, path="<key set>") -> "KeySet":
        if not isinstance(d, dict):
            raise KeySetError(path, "", "expected a JSON object at the top level")
        if d.get("format") != FORMAT:
            raise KeySetError(path, "format", f'not a cardos key set (expected "{FORMAT}", got {d.get("format")!r})')
        if d.get("version") != VERSION:
            raise KeySetError(path, "version", f"unsupported version {d.get('version')!r} (this cardos reads {VERSION})")
        unknown = sorted(set(d) - {"format", "version", "algorithm", "test", "description", "created", "keys"})
        if unknown:
            raise KeySetError(path, unknown[0], "unknown field")
        algorithm = d.get("algorithm")
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise KeySetError(path, "algorithm", f"must be one of {', '.join(ALGORITHMS)} (got {algorithm!r})")
        test = d.get("test", False)
        if not isinstance(test, bool):
            raise KeySetError(path, "test", "must be true or false")
        for name in ("description", "created"):
            if not isinstance(d.get(name, ""), str):
                raise KeySetError(path, name, "must be a string")
        raw_keys = d.get("keys")
        if not isinstance(raw_keys, dict) or not raw_keys:
            raise KeySetError(path, "keys", "must be an object of roles")
        keys: dict[str, dict[int, bytes]] = {}
        for role, by_index in raw_keys.items():
            field = f"keys.{role}"
            if not ROLE_PATTERN.match(role):
                raise KeySetError(path, field, "a role is lower case letters, digits and _ (at most 32)")
            if not isinstance(by_index, dict) or not by_index:
                raise KeySetError(path, field, 'must be an object of index → hex key, e.g. {"1": "00112233..."}')
            keys[role] = {}
            for index_text, value in by_index.items():
                where = f"{field}.{index_text}"
                if not (isinstance(index_text, str) and index_text.isdigit()
                        and 1 <= int(index_text) <= MAX_INDEX and index_text == str(int(index_text))):
                    raise KeySetError(path, where, f"an index is a number from 1 to {MAX_INDEX}")
                if not isinstance(value, str):
                    raise KeySetError(path, where, "must be a hex string")
                try:
                    key = bytes.fromhex(value)
                except ValueError:
                    raise KeySetError(path, where, "not valid hex") from None
                if len(key) != KEY_LENGTH:
                    raise KeySetError(path, where, f"a master key is {KEY_LENGTH} bytes (got {len(key)})")
                if key == key[:8] * 2 and algorithm == "3DES":
                    raise KeySetError(path, where, "both halves are equal (single DES); use a real 2-key 3DES key")
                keys[role][int(index_text)] = key
        return cls(keys, algorithm, test, d.get("description", ""), d.get("created", ""), path)


SHIPPED_DIR = Path(__file__).with_name("keysets")


def shipped() -> list[str]:
    """Names of the key sets shipped with cardos (all TEST keys)."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json"))


def load(path_or_name) -> KeySet:
    """Read and validate a key set file, or a shipped test key set by name (``"test"``, ``"test-sm4"``)."""
    path = Path(path_or_name)
    if not path.exists() and isinstance(path_or_name, str) and path_or_name in shipped():
        path = SHIPPED_DIR / f"{path_or_name}.json"
    try:
        raw = read_json(path, "key set", "no such key set (make one with `cardos keys new FILE`)")
    except JsonFileProblem as exc:
        raise KeySetError(path, "", exc.problem) from None
    keyset = KeySet.from_dict(raw, path)
    if not keyset.test and os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeySetError(path, "", f"permissions {mode:04o} are too open for issuer keys "
                                        f"(chmod 600 {path}); only key sets marked test may be shared")
    return keyset
