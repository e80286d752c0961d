"""The dispatch table: (CLA class, INS) → handler, or → {P1: handler} where
FMCOS overloads an INS by P1 (``80 5E``, ``80 50``, ``80 54``).

A handler is ``handler(card, cmd) -> bytes | (bytes, sw)`` and raises
:class:`~cardos.apdu.CardError` to answer an error status word. CLA class is
``0x00`` (CLA 00/04) or ``0x80`` (CLA 80/84); bit 0x04 asks for line
protection, which each handler checks.
"""
from __future__ import annotations

from . import auth, binary, blocking, manage, pin, purse, record, select, writekey

DISPATCH: dict = {}
for _module in (select, binary, record, manage, writekey, auth, pin, blocking, purse):
    DISPATCH.update(_module.HANDLERS)

KNOWN_INS = frozenset(ins for _cls, ins in DISPATCH)

# Commands a blocked application still answers (everything else: 6A81).
WORKS_WHEN_APP_BLOCKED = frozenset({(0x00, 0xA4), (0x00, 0x84), (0x80, 0x18)})
