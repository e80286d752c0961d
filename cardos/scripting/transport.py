"""What a script talks to: the in-process emulator, or a PC/SC reader through pyscard.

Both give ``transmit(bytes) -> bytes`` (data ‖ SW1 SW2) and ``reset(cold)``
→ ATR, and raise :class:`TransportError` when there is no card or the
reader fails (``cardos run`` then exits 3).
"""
from __future__ import annotations

from ..transports.pcsc import PcscTransport, TransportError, pick_reader  # noqa: F401 (re-exported)


class EmulatorTransport:
    """A :class:`cardos.Card` in this process (a fresh blank card, or an image file)."""

    backend = "emulator"

    def __init__(self, card, label: str):
        self.card = card
        self.label = label
        self.atr = card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        response = self.card.transmit(apdu)
        if len(response) < 2:
            raise TransportError("the card answered nothing (power lost)")
        return response

    def reset(self, cold: bool = True) -> bytes:
        if cold:
            self.card.power_off()
        self.atr = self.card.power_on()
        return self.atr

    def close(self) -> None:
        self.card.power_off()
        self.card.close()  # an image's lock goes with it


def open_transport(card_path: str | None = None, reader: str | None = None):
    """``--card IMAGE``, ``--reader NAME``, or a fresh blank card in memory."""
    if reader is not None:
        return PcscTransport(reader)
    from ..card import Card

    if card_path is not None:  # a missing or bad image raises ImageError (a usage error, exit 2)
        import os

        if not os.path.exists(card_path):
            from ..image import ImageError

            raise ImageError(card_path, f"no such card image (create one with `cardos new {card_path}`)")
        return EmulatorTransport(Card.open(card_path), f"card image {card_path}")
    return EmulatorTransport(Card.blank(), "a fresh blank card (in memory)")
