"""Command-APDU codec: ISO 7816-4 cases 1-4 in short and extended form.

Kept deliberately small and allocation-light: it runs on every APDU.
"""
from __future__ import annotations

from .sw import SW


class CardError(Exception):
    """Raised by a command handler to answer with a status word.

    Whatever the handler wrote to persistent memory before raising is kept
    (a failed VERIFY must still count the failure); see :mod:`cardos.nvm`.
    """

    __slots__ = ("sw",)

    def __init__(self, sw: int):
        super().__init__(f"{sw:04X}")
        self.sw = sw


class Command:
    """A parsed command APDU.

    ``le`` is ``None`` when absent, otherwise the number of bytes expected
    with the ISO encodings resolved (short ``00`` → 256, extended ``0000`` →
    65536). ``le_zero`` tells that Le was encoded as zero ("as much as
    available").
    """

    __slots__ = ("cla", "ins", "p1", "p2", "data", "le", "le_zero", "extended", "raw", "le_consumed")

    def __init__(self, cla, ins, p1, p2, data=b"", le=None, le_zero=False, extended=False, raw=b""):
        # Set by handlers that interpret Le themselves (e.g. protected reads
        # whose response carries a MAC beyond the Le plain bytes).
        self.le_consumed = False
        self.cla = cla
        self.ins = ins
        self.p1 = p1
        self.p2 = p2
        self.data = data
        self.le = le
        self.le_zero = le_zero
        self.extended = extended
        self.raw = raw

    @property
    def secure(self) -> bool:
        """Line protection requested (CLA low nibble 4: ``04`` or ``84``)."""
        return bool(self.cla & 0x04)

    @property
    def header(self) -> bytes:
        return self.raw[:4]

    def __repr__(self) -> str:
        return (f"Command({self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X}, "
                f"data={self.data.hex().upper()}, le={self.le})")


def parse(apdu: bytes) -> Command:
    """Parse ``apdu``; a length that fits no ISO case raises ``CardError(6700)``."""
    n = len(apdu)
    if n < 4:
        raise CardError(SW.WRONG_LENGTH)
    cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
    if n == 4:  # case 1
        return Command(cla, ins, p1, p2, raw=apdu)
    b4 = apdu[4]
    if n == 5:  # case 2 short
        return Command(cla, ins, p1, p2, le=b4 or 256, le_zero=b4 == 0, raw=apdu)
    if b4:  # short Lc
        if n == 5 + b4:  # case 3 short
            return Command(cla, ins, p1, p2, apdu[5:], raw=apdu)
        if n == 6 + b4:  # case 4 short
            le = apdu[-1]
            return Command(cla, ins, p1, p2, apdu[5:-1], le=le or 256, le_zero=le == 0, raw=apdu)
        raise CardError(SW.WRONG_LENGTH)
    # b4 == 0 and more bytes follow: extended length
    if n < 7:
        raise CardError(SW.WRONG_LENGTH)
    value = (apdu[5] << 8) | apdu[6]
    if n == 7:  # case 2 extended
        return Command(cla, ins, p1, p2, le=value or 65536, le_zero=value == 0, extended=True, raw=apdu)
    if value == 0:
        raise CardError(SW.WRONG_LENGTH)
    if n == 7 + value:  # case 3 extended
        return Command(cla, ins, p1, p2, apdu[7:], extended=True, raw=apdu)
    if n == 9 + value:  # case 4 extended
        le = (apdu[-2] << 8) | apdu[-1]
        return Command(cla, ins, p1, p2, apdu[7:-2], le=le or 65536, le_zero=le == 0,
                       extended=True, raw=apdu)
    raise CardError(SW.WRONG_LENGTH)


def lc_bytes(n: int) -> bytes:
    """Lc as written in a MAC input: one byte, or ``00 hi lo`` when extended."""
    return bytes((n,)) if n < 256 else b"\x00" + n.to_bytes(2, "big")


def build(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    """Encode a command APDU, choosing short or extended form as needed."""
    extended = len(data) > 255 or (le is not None and le > 256)
    out = bytearray((cla, ins, p1, p2))
    if extended:
        out.append(0)
        if data:
            out += len(data).to_bytes(2, "big") + data
        if le is not None:
            out += (0 if le == 65536 else le).to_bytes(2, "big")
    else:
        if data:
            out.append(len(data))
            out += data
        if le is not None:
            out.append(0 if le == 256 else le)
    return bytes(out)
