"""What a script talks to: the in-process emulator, or a PC/SC reader through pyscard.

Both give ``transmit(bytes) -> bytes`` (data ‖ SW1 SW2) and ``reset(cold)``
→ ATR, and raise :class:`TransportError` when there is no card or the
reader fails (``cardos run`` then exits 3).
"""
from __future__ import annotations


class TransportError(Exception):
    """No reader, no card, or the card / reader stopped answering."""


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


class PcscTransport:
    """A card in a PC/SC reader (pcscd, a vpcd slot served by ``cardos serve``, real readers)."""

    backend = "card"

    def __init__(self, spec: str):
        try:
            from smartcard.Exceptions import CardConnectionException, NoCardException
            from smartcard.System import readers
        except ImportError as exc:  # pragma: no cover - pyscard is a dependency
            raise TransportError(f"pyscard is not available: {exc}") from None
        self._errors = (CardConnectionException, NoCardException)
        try:
            available = readers()
        except Exception as exc:  # pcscd not running: EstablishContextException & co.
            raise TransportError(f"cannot list PC/SC readers ({exc}); is pcscd running?") from None
        reader = pick_reader(spec, available)
        self.label = str(reader)
        self.connection = reader.createConnection()
        try:
            self.connection.connect()
        except Exception as exc:
            raise TransportError(f"{self.label}: cannot connect ({_first_line(exc)}); is a card inserted?") from None
        self.atr = bytes(self.connection.getATR())

    def transmit(self, apdu: bytes) -> bytes:
        try:
            data, sw1, sw2 = self.connection.transmit(list(apdu))
        except Exception as exc:
            raise TransportError(f"{self.label}: {_first_line(exc)}") from None
        return bytes(data) + bytes((sw1, sw2))

    def reset(self, cold: bool = True) -> bytes:
        from smartcard.scard import SCARD_RESET_CARD, SCARD_UNPOWER_CARD

        try:
            self.connection.reconnect(disposition=SCARD_UNPOWER_CARD if cold else SCARD_RESET_CARD)
            self.atr = bytes(self.connection.getATR())
        except Exception as exc:
            raise TransportError(f"{self.label}: reset failed ({_first_line(exc)})") from None
        return self.atr

    def close(self) -> None:
        try:
            self.connection.disconnect()
        except Exception:  # pragma: no cover - already gone
            pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def pick_reader(spec: str, available: list):
    """A reader by exact name, by index (``0``), or by a unique case-insensitive substring."""
    names = [str(r) for r in available]
    listing = ", ".join(f"{i}: {n}" for i, n in enumerate(names)) or "none"
    if not names:
        raise TransportError("no PC/SC readers (is pcscd running, is a reader attached?)")
    if spec in names:
        return available[names.index(spec)]
    if spec.isdigit():
        index = int(spec)
        if index < len(names):
            return available[index]
        raise TransportError(f"no reader number {index} (readers: {listing})")
    hits = [i for i, n in enumerate(names) if spec.lower() in n.lower()]
    if len(hits) == 1:
        return available[hits[0]]
    if not hits:
        raise TransportError(f"no reader matches {spec!r} (readers: {listing})")
    raise TransportError(f"{spec!r} matches several readers ({', '.join(names[i] for i in hits)}); be more specific")


def open_transport(card_path: str | None = None, reader: str | None = None):
    """``--card IMAGE``, ``--reader NAME``, or a fresh blank card in memory."""
    if reader is not None:
        return PcscTransport(reader)
    from ..card import Card

    if card_path is not None:
        import os

        if not os.path.exists(card_path):
            raise TransportError(f"{card_path}: no such card image (create one with `cardos new {card_path}`)")
        from ..image import ImageError

        try:
            return EmulatorTransport(Card.open(card_path), f"card image {card_path}")
        except ImageError as exc:
            raise TransportError(str(exc)) from None
    return EmulatorTransport(Card.blank(), "a fresh blank card (in memory)")
