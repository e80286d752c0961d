"""Where ``@name`` key references in scripts come from — never from the script itself.

* an issuer key-set file (``cardos.keyset``, docs/keysets.md): ``@load.1`` is
  master key 1 of role ``load``; ``@tac`` the only key of role ``tac``.
  Card keys are diversified from masters: ``card_key(@load.1, ${serial})``.
* ``sample``: the published TEST keys of the sample card (``cardos.sample``),
  ``@load``, ``@purchase``, ``@tac``, ``@app_line``, ``@pin`` ... as written by
  the sample issuance (not diversified), and ``@transport`` (FF×8, a blank card's).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..crypto import DES
from .lexer import Pos, ScriptError


class KeySource:
    label = "keys"
    algorithm = DES

    def names(self) -> list:
        raise NotImplementedError

    def issuer_keys(self):
        """What the terminal side (load host, PSAM) takes: ``algorithm`` + ``card_key(role, index, serial)``."""
        raise NotImplementedError

    def get(self, name: str) -> bytes:
        """The key, or raise ``KeyError``/``ValueError`` with a reason."""
        raise NotImplementedError

    def lookup(self, name: str, pos: Pos | None = None) -> bytes:
        try:
            return self.get(name)
        except KeyError as exc:
            reason = exc.args[0] if exc.args and exc.args[0] != name else "no such key"
            import difflib

            close = difflib.get_close_matches(name, self.names(), n=3)
            hint = f"; did you mean {', '.join('@' + c for c in close)}?" if close else \
                f"; {self.label} has {', '.join('@' + n for n in self.names())}"
            raise ScriptError(f"@{name}: {reason} in {self.label}{hint}", pos) from None


class SampleSource(KeySource):
    label = "the sample TEST keys"

    def __init__(self):
        from ..sample import TRANSPORT_KEY, SampleKeys

        self._keys = dict(dataclasses.asdict(SampleKeys()), transport=TRANSPORT_KEY)

    def names(self) -> list:
        return sorted(self._keys)

    def issuer_keys(self):
        from ..terminal.keys import IssuerKeys

        k = self._keys
        return IssuerKeys(load=k["load"], purchase=k["purchase"], unload=k["unload"], overdraw=k["overdraw"],
                          tac=k["tac"], diversify=False)

    def get(self, name: str) -> bytes:
        return self._keys[name]


class KeySetSource(KeySource):
    """An issuer key set (``cardos.keyset.KeySet``): ``@role`` or ``@role.index``."""

    def __init__(self, keyset):
        self.keyset = keyset
        self.label = f"key set {keyset.path}" if getattr(keyset, "path", None) else "the key set"
        self.algorithm = keyset.algorithm

    def names(self) -> list:
        out = []
        for role in self.keyset.roles():
            indexes = sorted(self.keyset.keys[role])
            if len(indexes) == 1:
                out.append(role)
            out.extend(f"{role}.{i}" for i in indexes)
        return out

    def issuer_keys(self):
        return self.keyset

    def get(self, name: str) -> bytes:
        from ..keyset import KeySetError

        role, _, index = name.partition(".")
        if index and not index.isdigit():
            raise KeyError(name)
        try:
            return self.keyset.master(role, int(index) if index else None)
        except KeySetError as exc:
            raise KeyError(exc.reason) from None


def open_keys(spec: str, base_dir: Path | None = None) -> KeySource:
    """``sample``, a key-set file (relative to ``base_dir`` first), or a shipped key set name.

    Raises ``ValueError`` with a one-line reason.
    """
    from .. import keyset as keyset_module

    candidates = []
    if base_dir is not None:
        candidates.append(Path(base_dir) / spec)
    candidates.append(Path(spec))
    for path in candidates:
        if path.is_file():
            try:
                return KeySetSource(keyset_module.load(path))
            except keyset_module.KeySetError as exc:
                raise ValueError(str(exc)) from None
    if spec == "sample":
        return SampleSource()
    try:
        return KeySetSource(keyset_module.load(spec))
    except keyset_module.KeySetError as exc:
        raise ValueError(str(exc)) from None
