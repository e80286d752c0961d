"""Making a shared card's broken purse transactions visible in ``cardos serve``.

pcscd lets several PC/SC clients use one card at once (``SCARD_SHARE_SHARED``);
vpcd then hands the card one stream of commands with no client named. A purse
transaction is two commands in a row — INITIALIZE FOR PURCHASE/LOAD/… then its
DEBIT/CREDIT — and the card drops the pending transaction at any other command
(GET RESPONSE aside). When two terminals interleave their transactions without
``SCardBeginTransaction``, one's completing command meets the other's session:
its MAC fails and counts towards blocking the purse, for good after a few.

The card's APDU core is not touched: :class:`PurseSessionWatch` wraps the card
of a vpcd slot, watches CLA/INS of the command stream and logs a warning
(naming the commands with :mod:`cardos.decoder`'s names) whenever an
INITIALIZE is followed by anything but its completion, or a completion comes
without its INITIALIZE. A single terminal that abandons a transaction on
purpose shows the same pattern; the warning says what happened and the usual
cause. docs/pcsc.md tells terminal developers what to do.
"""
from __future__ import annotations

import logging

from ..decoder import decode_command

log = logging.getLogger(__name__)

PURSE_CLA = 0x80
INITIALIZE = 0x50
UPDATE_CAPP_DATA_CACHE = 0xDC
GET_RESPONSE = 0xC0
# INITIALIZE's P1 → the INS that completes it (the card refuses other pairs anyway)
COMPLETION = {0x00: 0x52, 0x01: 0x54, 0x02: 0x54, 0x03: 0x54, 0x04: 0x58, 0x05: 0x54}
COMPLETING = frozenset(COMPLETION.values())
CAPP_PURCHASE = 0x03
ADVICE = ("two PC/SC clients sharing the card? each terminal must hold SCardBeginTransaction from the INITIALIZE "
          "to its completion (docs/pcsc.md)")


def _opened(response: bytes) -> bool:
    """INITIALIZE answered with its data (9000) or with 61XX (data waiting for GET RESPONSE)."""
    return len(response) >= 2 and (response[-2] == 0x61 or response[-2:] == b"\x90\x00")


def _name(apdu: bytes) -> str:
    return decode_command(apdu).title()


class PurseSessionWatch:
    """A vpcd slot's card, watched for purse transactions that another command interrupted."""

    def __init__(self, card, label: str):
        self._card = card
        self._label = label
        self._open: bytes | None = None  # header of the INITIALIZE still waiting for its completion

    def __getattr__(self, name: str):
        return getattr(self._card, name)

    @property
    def atr(self) -> bytes:
        return self._card.atr

    def power_on(self):
        self._open = None  # a power cycle ends any transaction: nothing to warn about
        return self._card.power_on()

    def reset(self):
        self._open = None
        return self._card.reset()

    def power_off(self):
        self._open = None
        return self._card.power_off()

    def transmit(self, apdu) -> bytes:
        response = self._card.transmit(apdu)
        if len(apdu) >= 4:
            self._watch(bytes(apdu[:4]), response)
        return response

    def _watch(self, header: bytes, response: bytes) -> None:
        cla, ins, p1 = header[0], header[1], header[2]
        purse = cla & 0xF0 == PURSE_CLA
        pending = self._open
        if pending is not None:
            if ins == GET_RESPONSE and cla & 0xF0 == 0x00:
                return  # the INITIALIZE's own data: the card keeps the transaction
            if purse and ins == UPDATE_CAPP_DATA_CACHE and pending[2] == CAPP_PURCHASE:
                return  # a CAPP purchase updates its record between INITIALIZE and DEBIT
            self._open = None
            if not (purse and ins == COMPLETION.get(pending[2])):
                log.warning("%s: %s came before the %s was completed, so the card dropped that transaction; %s",
                            self._label, _name(header), _name(pending), ADVICE)
        elif purse and ins in COMPLETING:
            log.warning("%s: %s without its INITIALIZE just before it; %s", self._label, _name(header), ADVICE)
        if purse and ins == INITIALIZE and p1 in COMPLETION and _opened(response):
            self._open = header
