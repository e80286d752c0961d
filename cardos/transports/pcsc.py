"""A card in a PC/SC reader through pyscard: reader choice by name, index or
substring (as ``opensc-tool -r``), and a ``transmit(bytes) -> bytes`` connection.

Used by ``cardos run --reader``, ``cardos issue --reader``, ``cardos demo
--reader`` and the conformance suite.
"""
from __future__ import annotations


class TransportError(Exception):
    """No reader, no card, or the card / reader stopped answering."""


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
        """Disconnect and release the PC/SC context now (not when the object is collected, perhaps after
        pcscd is gone): ``cardos shell``'s ``connect`` opens a new connection each time."""
        try:
            self.connection.release()
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
