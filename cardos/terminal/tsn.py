"""The terminal transaction serial (TSN) of a software PSAM, kept across processes.

A real PSAM counts its TSN in its own EEPROM, so no two purchases at one
terminal ever share one. The software PSAM keeps the next TSN of each
terminal in a small JSON state file — by default beside the key-set file
(``issuer.json`` → ``issuer.tsn.json``) — so that every ``PSAM(...)``, in
any process, continues where the last stopped: two purchases in the same
second then still differ in their TAC input, and ``cardos settle`` does not
take the second for a replayed upload.

The file is read and rewritten under an exclusive lock (``flock`` on its
directory) and replaced atomically (a temporary file, fsync, rename), mode
0600::

    {"format": "cardos-psam-tsn", "version": 1, "next": {"010203040506": 2}}
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

from ..jsonfile import JsonFileProblem, read_json

FORMAT = "cardos-psam-tsn"
VERSION = 1
FILE_MODE = 0o600
TSN_MASK = 0xFFFFFFFF  # 4 bytes


class TsnStateError(Exception):
    """The state file cannot be read or written (one line naming the file and the problem)."""


def default_state_path(keys) -> Path | None:
    """Where the TSN of PSAMs using ``keys`` is kept: beside their key-set file, or None for keys
    that come from no file of the user's (in-memory keys, the shipped test key sets, ``sample``)."""
    path = getattr(keys, "path", None)
    if not path:
        return None
    from ..keyset import SHIPPED_DIR

    path = Path(path)
    if path.resolve().parent == SHIPPED_DIR.resolve():
        return None
    return path.with_name(f"{path.stem}.tsn.json")


class TsnStore:
    """The next TSN per terminal in the state file ``path``."""

    def __init__(self, path):
        self.path = Path(path)

    def peek(self, terminal_id: bytes) -> int:
        """The TSN the next purchase at ``terminal_id`` will get (0 when the file does not exist yet)."""
        return self._read().get(bytes(terminal_id).hex().upper(), 0)

    def take(self, terminal_id: bytes, at_least: int = 0) -> int:
        """Reserve the next TSN of ``terminal_id`` (never below ``at_least``) and store its successor."""
        key = bytes(terminal_id).hex().upper()
        with self._locked():
            state = self._read()
            tsn = max(state.get(key, 0), at_least) & TSN_MASK
            state[key] = (tsn + 1) & TSN_MASK
            self._write(state)
        return tsn

    @contextmanager
    def _locked(self):
        directory = self.path.parent
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise TsnStateError(f"{self.path}: cannot keep the PSAM's TSN here: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        try:
            raw = read_json(self.path, "TSN state file", "no such file", empty="empty (not a TSN state file)")
        except JsonFileProblem as exc:
            raise TsnStateError(f"{self.path}: {exc.problem}") from None
        if not (isinstance(raw, dict) and raw.get("format") == FORMAT):
            raise TsnStateError(f'{self.path}: not a PSAM TSN state file (expected "format": "{FORMAT}")')
        if raw.get("version") != VERSION:
            raise TsnStateError(f"{self.path}: unsupported version {raw.get('version')!r} (this cardos reads "
                                f"{VERSION})")
        counters = raw.get("next")
        if not isinstance(counters, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= TSN_MASK
                for k, v in counters.items()):
            raise TsnStateError(f'{self.path}: "next" must map terminal ids to TSNs from 0 to {TSN_MASK}')
        return dict(counters)

    def _write(self, counters: dict[str, int]) -> None:
        text = json.dumps({"format": FORMAT, "version": VERSION, "next": dict(sorted(counters.items()))}) + "\n"
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
        except OSError as exc:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise TsnStateError(f"{self.path}: cannot save the PSAM's TSN: {exc.strerror}") from None
