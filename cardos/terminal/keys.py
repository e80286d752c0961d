"""Issuer master keys as the load host, the PSAM and the settlement check use them.

The terminal side needs any object with

* ``algorithm`` — a :class:`cardos.crypto.Algorithm` (``DES`` or ``SM4``), and
* ``card_key(role, index, serial) -> bytes`` — the card's key of ``role``
  (``"load"``, ``"purchase"``, ``"unload"``, ``"overdraw"``, ``"tac"``) and
  key ``index`` (the key index sent in INITIALIZE; ``None`` for the TAC key),
  diversified from the master with the application serial (reference §4.4).

:class:`cardos.keyset.KeySet` (issuer key-set files) provides exactly that;
:class:`IssuerKeys` is the plain in-memory form, which can also hold keys
that are already the card's (``diversify=False``: sample cards, published
vectors).
"""
from __future__ import annotations

from pathlib import Path

from ..crypto import DES, SM4, Algorithm

ROLES = ("load", "purchase", "unload", "overdraw", "tac")
ALGORITHMS = {"3DES": DES, "SM4": SM4}


def factor_of(serial: bytes) -> bytes:
    """The diversification factor: the serial's rightmost 8 bytes (16 digits), left-padded with 00."""
    if not serial:
        raise ValueError("empty application serial")
    return bytes(serial[-8:]).rjust(8, b"\x00")


class IssuerKeys:
    """Master keys by role; each role holds one key or ``{key index: key}``.

    >>> keys = IssuerKeys(tac=bytes.fromhex("00112233445566778899AABBCCDDEEFF"))
    >>> keys.card_key("tac", None, bytes.fromhex("1122334455667788")).hex().upper()
    '496BD7A3513644533100B54E71196528'
    """

    def __init__(self, *, load=None, purchase=None, unload=None, overdraw=None, tac=None,
                 algorithm: str = "3DES", diversify: bool = True):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
        self.algorithm_name = algorithm
        self.diversify = diversify
        self.keys: dict[str, dict] = {}
        for role, value in (("load", load), ("purchase", purchase), ("unload", unload),
                            ("overdraw", overdraw), ("tac", tac)):
            if value is None:
                continue
            by_index = dict(value) if isinstance(value, dict) else {None: value}
            for key in by_index.values():
                if not isinstance(key, (bytes, bytearray)) or len(key) not in (8, 16):
                    raise ValueError(f"{role}: a key is 8 or 16 bytes")
            self.keys[role] = {i: bytes(k) for i, k in by_index.items()}

    @property
    def algorithm(self) -> Algorithm:
        return ALGORITHMS[self.algorithm_name]

    def has(self, role: str) -> bool:
        return role in self.keys

    def master(self, role: str, index: int | None = None) -> bytes:
        by_index = self.keys.get(role)
        if not by_index:
            raise LookupError(f"no {role} key")
        if None in by_index:
            return by_index[None]
        if index is None:
            if len(by_index) != 1:
                raise LookupError(f"{role}: several keys, give an index")
            return next(iter(by_index.values()))
        try:
            return by_index[index]
        except KeyError:
            raise LookupError(f"no {role} key with index {index}") from None

    def card_key(self, role: str, index: int | None, serial: bytes) -> bytes:
        key = self.master(role, index)
        return self.algorithm.diversify(key, factor_of(serial)) if self.diversify else key

    # -- a small JSON form (the issuer key-set file of cardos.keyset is the full one) --
    def to_dict(self) -> dict:
        return {"algorithm": self.algorithm_name, "diversify": self.diversify,
                "keys": {role: (by_index[None].hex().upper() if None in by_index
                                else {str(i): v.hex().upper() for i, v in sorted(by_index.items())})
                         for role, by_index in self.keys.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> IssuerKeys:
        """``{"algorithm": "3DES", "diversify": true, "keys": {"tac": "<hex>", "load": {"1": "<hex>"}}}``."""
        if not isinstance(d, dict):
            raise ValueError("expected a JSON object")
        raw = d.get("keys")
        if not isinstance(raw, dict) or not raw:
            raise ValueError('"keys" must be an object of role -> hex key (or index -> hex key)')
        kwargs = {}
        for role, value in raw.items():
            if role not in ROLES:
                raise ValueError(f"keys.{role}: unknown role (roles: {', '.join(ROLES)})")
            try:
                if isinstance(value, str):
                    kwargs[role] = bytes.fromhex(value)
                elif isinstance(value, dict):
                    kwargs[role] = {int(i): bytes.fromhex(v) for i, v in value.items()}
                else:
                    raise ValueError
            except (ValueError, TypeError):
                raise ValueError(f"keys.{role}: expected a hex key or an object of index -> hex key") from None
        diversify = d.get("diversify", True)
        if not isinstance(diversify, bool):
            raise ValueError('"diversify" must be true or false')
        return cls(**kwargs, algorithm=d.get("algorithm", "3DES"), diversify=diversify)


def load_keys(path):
    """Read issuer keys: a ``cardos-keyset`` file (or shipped key-set name) or the small JSON form."""
    p = Path(path)
    if p.exists():
        from ..jsonfile import JsonFileProblem, read_json

        try:
            raw = read_json(p, "key file", "no such key file")
        except JsonFileProblem as exc:
            raise ValueError(f"{path}: {exc.problem}") from None
        if not (isinstance(raw, dict) and raw.get("format") == "cardos-keyset"):
            try:
                return IssuerKeys.from_dict(raw)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
    try:
        from .. import keyset
    except ImportError:  # pragma: no cover - key-set support not installed
        raise ValueError(f"{path}: no such key file") from None
    try:
        return keyset.load(path)
    except keyset.KeySetError as exc:
        raise ValueError(str(exc)) from None
